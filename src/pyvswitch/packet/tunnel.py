"""Tunnel headers on the wire: VXLAN, GRE and Geneve, and whole encapsulations.

The three codecs follow their RFCs (VXLAN RFC 7348, GRE RFC 2784 with keys
and sequence numbers from RFC 2890, Geneve RFC 8926). :class:`TunnelHeader`
is a whole outer header as Open vSwitch's native tunnelling builds it:
Ethernet, then IPv4 or IPv6, then UDP and VXLAN or Geneve, or GRE directly on
IP. It is also what the datapath action ``tnl_push(...,header(...),...)``
describes, so :meth:`TunnelHeader.template` gives the bytes OVS keeps for that
action (lengths zero, IPv4 checksum over that), and :meth:`TunnelHeader.encapsulate`
fills in lengths and checksums for one inner frame. :func:`decapsulate` checks
an outer header as OVS's receive side does and splits it from the inner frame.

Every parser raises :class:`TunnelError`, and nothing else, on any input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyvswitch.packet.addr import ip4_to_bytes, ip4_to_str, ip6_to_bytes, ip6_to_str, mac_to_str
from pyvswitch.packet.addr import mac_to_bytes as _mac_to_bytes
from pyvswitch.packet.checksum import checksum, ones_complement_sum

ETH_TYPE_TEB = 0x6558
"""Transparent Ethernet bridging: the protocol type of an Ethernet payload in GRE and Geneve."""
VXLAN_FLAG_I = 0x08000000
"""The VXLAN flags word with only the I (valid VNI) bit, the only one RFC 7348 allows."""
VXLAN_PORT = 4789
GENEVE_PORT = 6081
GRE_CSUM = 0x8000
GRE_KEY = 0x2000
GRE_SEQ = 0x1000
IPPROTO_UDP = 17
IPPROTO_GRE = 47
IPV4_DF = 0x4000

# The datapath's tunnel types (OVS_VPORT_TYPE_*), printed as header(type=...).
VPORT_TYPE_GRE = 3
VPORT_TYPE_VXLAN = 4
VPORT_TYPE_GENEVE = 5
VPORT_TYPE_IP6GRE = 109

_ETH_LEN = 14
_IPV4_LEN = 20
_IPV6_LEN = 40
_UDP_LEN = 8
_VXLAN_LEN = 8
_GENEVE_LEN = 8
_GRE_BASE_LEN = 4
_ETH_TYPE_IP = 0x0800
_ETH_TYPE_IPV6 = 0x86DD
_GENEVE_OPT_MAX = 124  # bytes of data in one option: 5 bits of 4-byte words
_GENEVE_OPTS_MAX = 252  # bytes of all options: 6 bits of 4-byte words


class TunnelError(ValueError):
    """A tunnel header is malformed or fails a check; the message says which."""


def _need(data: bytes, length: int, what: str) -> None:
    if len(data) < length:
        raise TunnelError(f"truncated {what}: {len(data)} bytes, need {length}")


def _check_range(value: int, bits: int, what: str) -> None:
    if not 0 <= value < (1 << bits):
        raise TunnelError(f"{what} {value} does not fit in {bits} bits")


# -- VXLAN ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VXLAN:
    """A VXLAN header: the flags word as a whole (I bit is 0x08000000) and the 24-bit VNI."""

    vni: int
    flags: int = VXLAN_FLAG_I

    def build(self) -> bytes:
        _check_range(self.vni, 24, "VXLAN VNI")
        _check_range(self.flags, 32, "VXLAN flags")
        return struct.pack("!II", self.flags, self.vni << 8)

    @classmethod
    def parse(cls, data: bytes) -> tuple[VXLAN, bytes]:
        """The header and the inner frame; refuses flags other than exactly I, as OVS does."""
        _need(data, _VXLAN_LEN, "VXLAN header")
        flags, word = struct.unpack_from("!II", data)
        if flags != VXLAN_FLAG_I or word & 0xFF:
            raise TunnelError(
                f"VXLAN flags are {flags:#x}, not exactly the I flag {VXLAN_FLAG_I:#x}"
            )
        return cls(word >> 8, flags), data[_VXLAN_LEN:]


# -- Geneve ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneveOption:
    """One Geneve option TLV; ``data`` is a multiple of 4 bytes, at most 124.

    The critical bit is the top bit of ``type`` (RFC 8926 section 3.5).
    """

    opt_class: int
    type: int
    data: bytes = b""

    @property
    def critical(self) -> bool:
        return bool(self.type & 0x80)

    def build(self) -> bytes:
        _check_range(self.opt_class, 16, "Geneve option class")
        _check_range(self.type, 8, "Geneve option type")
        if len(self.data) % 4 or len(self.data) > _GENEVE_OPT_MAX:
            raise TunnelError(
                f"Geneve option data is {len(self.data)} bytes, "
                f"not a multiple of 4 up to {_GENEVE_OPT_MAX}"
            )
        return struct.pack("!HBB", self.opt_class, self.type, len(self.data) // 4) + self.data


def _parse_geneve_options(data: bytes) -> tuple[GeneveOption, ...]:
    options: list[GeneveOption] = []
    pos = 0
    while pos < len(data):
        _need(data[pos:], 4, "Geneve option header")
        opt_class, opt_type, words = struct.unpack_from("!HBB", data, pos)
        if words & 0xE0:
            raise TunnelError(f"Geneve option reserved bits set: {words:#x}")
        end = pos + 4 + words * 4
        if end > len(data):
            raise TunnelError(
                f"Geneve option length {words * 4} overruns the options by {end - len(data)} bytes"
            )
        options.append(GeneveOption(opt_class, opt_type, data[pos + 4 : end]))
        pos = end
    return tuple(options)


@dataclass(frozen=True, slots=True)
class Geneve:
    """A Geneve header: VNI, options, the O (control) and C (critical options) bits."""

    vni: int
    options: tuple[GeneveOption, ...] = ()
    oam: bool = False
    critical: bool = False
    protocol: int = ETH_TYPE_TEB

    def options_bytes(self) -> bytes:
        raw = b"".join(option.build() for option in self.options)
        if len(raw) > _GENEVE_OPTS_MAX:
            raise TunnelError(f"Geneve options are {len(raw)} bytes, more than {_GENEVE_OPTS_MAX}")
        return raw

    def build(self) -> bytes:
        _check_range(self.vni, 24, "Geneve VNI")
        _check_range(self.protocol, 16, "Geneve protocol type")
        opts = self.options_bytes()
        first = len(opts) // 4  # version 0 in the top two bits
        second = (0x80 if self.oam else 0) | (0x40 if self.critical else 0)
        return struct.pack("!BBHI", first, second, self.protocol, self.vni << 8) + opts

    @classmethod
    def parse(cls, data: bytes) -> tuple[Geneve, bytes]:
        """The header and what follows; refuses other versions and overrunning lengths."""
        _need(data, _GENEVE_LEN, "Geneve header")
        first, second, protocol, word = struct.unpack_from("!BBHI", data)
        if first >> 6:
            raise TunnelError(f"Geneve version {first >> 6}, only version 0 is known")
        opt_len = (first & 0x3F) * 4
        if len(data) < _GENEVE_LEN + opt_len:
            raise TunnelError(
                f"truncated Geneve options: {len(data) - _GENEVE_LEN} bytes, need {opt_len}"
            )
        options = _parse_geneve_options(data[_GENEVE_LEN : _GENEVE_LEN + opt_len])
        header = cls(word >> 8, options, bool(second & 0x80), bool(second & 0x40), protocol)
        return header, data[_GENEVE_LEN + opt_len :]


# -- GRE ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GRE:
    """A GRE header (RFC 2784/2890) with the optional checksum, key and sequence number.

    ``csum`` is ``None`` without the C bit, else the checksum field's value:
    what the wire said when parsed; :meth:`build` computes it over header and
    payload when ``compute_csum`` is true, and writes it as given otherwise.
    """

    protocol: int = ETH_TYPE_TEB
    key: int | None = None
    seq: int | None = None
    csum: int | None = None

    @property
    def flags(self) -> int:
        """The flags and version word, as OVS prints it (``flags=0x2000`` for K)."""
        return (
            (GRE_CSUM if self.csum is not None else 0)
            | (GRE_KEY if self.key is not None else 0)
            | (GRE_SEQ if self.seq is not None else 0)
        )

    @property
    def length(self) -> int:
        return _GRE_BASE_LEN + 4 * self.flags.bit_count()

    def build(self, payload: bytes = b"", *, compute_csum: bool = True) -> bytes:
        """The header followed by ``payload``."""
        _check_range(self.protocol, 16, "GRE protocol type")
        raw = bytearray(struct.pack("!HH", self.flags, self.protocol))
        if self.csum is not None:
            _check_range(self.csum, 16, "GRE checksum")
            raw += struct.pack("!HH", 0 if compute_csum else self.csum, 0)
        for value, what in ((self.key, "GRE key"), (self.seq, "GRE sequence number")):
            if value is not None:
                _check_range(value, 32, what)
                raw += struct.pack("!I", value)
        raw += payload
        if self.csum is not None and compute_csum:
            struct.pack_into("!H", raw, _GRE_BASE_LEN, checksum(raw))
        return bytes(raw)

    @classmethod
    def parse(cls, data: bytes) -> tuple[GRE, bytes]:
        """The header and the payload; verifies the checksum when the C bit is set."""
        _need(data, _GRE_BASE_LEN, "GRE header")
        flags, protocol = struct.unpack_from("!HH", data)
        if flags & ~(GRE_CSUM | GRE_KEY | GRE_SEQ):
            raise TunnelError(
                f"GRE flags {flags:#x}: only C, K and S are allowed (no routing, version 0)"
            )
        pos = _GRE_BASE_LEN
        fields: dict[str, int] = {}
        for bit, name in ((GRE_CSUM, "csum"), (GRE_KEY, "key"), (GRE_SEQ, "seq")):
            if flags & bit:
                _need(data, pos + 4, "GRE header")
                word = struct.unpack_from("!I", data, pos)[0]
                fields[name] = word >> 16 if name == "csum" else word
                pos += 4
        if "csum" in fields and checksum(data):
            raise TunnelError(f"bad GRE checksum {fields['csum']:#06x}")
        return cls(protocol, fields.get("key"), fields.get("seq"), fields.get("csum")), data[pos:]


# -- outer headers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OuterIPv4:
    """An outer IPv4 header as the ``tnl_push`` header describes it.

    ``frag`` is the whole flags-and-offset word: 0x4000 is DF.
    """

    src: str
    dst: str
    proto: int
    tos: int = 0
    ttl: int = 64
    frag: int = IPV4_DF

    def build(self, total_length: int) -> bytes:
        """The 20-byte header, identification 0, checksum computed."""
        for value, bits, what in (
            (self.proto, 8, "IPv4 protocol"),
            (self.tos, 8, "IPv4 ToS"),
            (self.ttl, 8, "IPv4 TTL"),
            (self.frag, 16, "IPv4 frag"),
            (total_length, 16, "IPv4 total length"),
        ):
            _check_range(value, bits, what)
        raw = bytearray(
            struct.pack(
                "!BBHHHBBH", 0x45, self.tos, total_length, 0, self.frag, self.ttl, self.proto, 0
            )
        )
        raw += _ip4(self.src) + _ip4(self.dst)
        struct.pack_into("!H", raw, 10, checksum(raw))
        return bytes(raw)


@dataclass(frozen=True, slots=True)
class OuterIPv6:
    """An outer IPv6 header as the ``tnl_push`` header describes it."""

    src: str
    dst: str
    proto: int
    tclass: int = 0
    label: int = 0
    hlimit: int = 64

    def build(self, payload_length: int) -> bytes:
        for value, bits, what in (
            (self.proto, 8, "IPv6 next header"),
            (self.tclass, 8, "IPv6 traffic class"),
            (self.label, 20, "IPv6 flow label"),
            (self.hlimit, 8, "IPv6 hop limit"),
            (payload_length, 16, "IPv6 payload length"),
        ):
            _check_range(value, bits, what)
        word = (6 << 28) | (self.tclass << 20) | self.label
        return (
            struct.pack("!IHBB", word, payload_length, self.proto, self.hlimit)
            + _ip6(self.src)
            + _ip6(self.dst)
        )


@dataclass(frozen=True, slots=True)
class OuterUDP:
    """The outer UDP header: ports, and the checksum field (non-zero: compute it)."""

    src: int
    dst: int
    csum: int = 0


def _ip4(text: str) -> bytes:
    try:
        return ip4_to_bytes(text)
    except ValueError as exc:
        raise TunnelError(str(exc)) from None


def _ip6(text: str) -> bytes:
    try:
        return ip6_to_bytes(text)
    except ValueError as exc:
        raise TunnelError(str(exc)) from None


def _mac(text: str) -> bytes:
    try:
        return _mac_to_bytes(text)
    except ValueError as exc:
        raise TunnelError(str(exc)) from None


def _pseudo_sum(ip: OuterIPv4 | OuterIPv6, length: int, proto: int) -> int:
    """The ones'-complement sum of the UDP pseudo-header."""
    if isinstance(ip, OuterIPv4):
        pseudo = _ip4(ip.src) + _ip4(ip.dst) + struct.pack("!BBH", 0, proto, length)
    else:
        pseudo = _ip6(ip.src) + _ip6(ip.dst) + struct.pack("!IxxxB", length, proto)
    return ones_complement_sum(pseudo)


@dataclass(frozen=True, slots=True)
class TunnelHeader:
    """A whole outer header: Ethernet, IP, UDP (not for GRE), then the tunnel header."""

    eth_dst: str
    eth_src: str
    ip: OuterIPv4 | OuterIPv6
    udp: OuterUDP | None
    tunnel: VXLAN | Geneve | GRE

    def __post_init__(self) -> None:
        if isinstance(self.tunnel, GRE) != (self.udp is None):
            raise TunnelError("VXLAN and Geneve ride on UDP and GRE directly on IP")

    @property
    def size(self) -> int:
        """The header's length in bytes (``header(size=...)``)."""
        ip_len = _IPV4_LEN if isinstance(self.ip, OuterIPv4) else _IPV6_LEN
        if isinstance(self.tunnel, GRE):
            return _ETH_LEN + ip_len + self.tunnel.length
        if isinstance(self.tunnel, VXLAN):
            return _ETH_LEN + ip_len + _UDP_LEN + _VXLAN_LEN
        return _ETH_LEN + ip_len + _UDP_LEN + _GENEVE_LEN + len(self.tunnel.options_bytes())

    @property
    def type(self) -> int:
        """The datapath tunnel type (``header(type=...)``): GRE over IPv6 is ip6gre."""
        if isinstance(self.tunnel, VXLAN):
            return VPORT_TYPE_VXLAN
        if isinstance(self.tunnel, Geneve):
            return VPORT_TYPE_GENEVE
        return VPORT_TYPE_GRE if isinstance(self.ip, OuterIPv4) else VPORT_TYPE_IP6GRE

    @property
    def eth_type(self) -> int:
        return _ETH_TYPE_IP if isinstance(self.ip, OuterIPv4) else _ETH_TYPE_IPV6

    def template(self) -> bytes:
        """The bytes OVS keeps for the action: lengths 0, IPv4's checksum over that."""
        return self._build(b"", template=True)

    def encapsulate(self, inner: bytes) -> bytes:
        """``inner`` behind this header, with lengths and checksums filled in.

        UDP's checksum is computed when the header's is non-zero and always
        under IPv6 (a computed zero is sent as 0xffff); GRE's when it has the C bit.
        """
        return self._build(inner, template=False)

    def _build(self, inner: bytes, *, template: bool) -> bytes:
        ip_len = _IPV4_LEN if isinstance(self.ip, OuterIPv4) else _IPV6_LEN
        if isinstance(self.tunnel, GRE):
            l4 = self.tunnel.build(inner, compute_csum=not template)
        else:
            l4 = self._udp(self.tunnel.build() + inner, template=template)
        length = 0 if template else len(l4) + (ip_len if isinstance(self.ip, OuterIPv4) else 0)
        ip = self.ip.build(length)
        return _mac(self.eth_dst) + _mac(self.eth_src) + struct.pack("!H", self.eth_type) + ip + l4

    def _udp(self, payload: bytes, *, template: bool) -> bytes:
        assert self.udp is not None  # __post_init__ pairs UDP with VXLAN and Geneve
        _check_range(self.udp.src, 16, "UDP source port")
        _check_range(self.udp.dst, 16, "UDP destination port")
        _check_range(self.udp.csum, 16, "UDP checksum")
        length = _UDP_LEN + len(payload)
        if template:
            return struct.pack("!HHHH", self.udp.src, self.udp.dst, 0, self.udp.csum) + payload
        raw = struct.pack("!HHHH", self.udp.src, self.udp.dst, length, 0) + payload
        if not self.udp.csum and isinstance(self.ip, OuterIPv4):
            return raw
        csum = checksum(raw, _pseudo_sum(self.ip, length, IPPROTO_UDP)) or 0xFFFF
        return raw[:6] + struct.pack("!H", csum) + raw[_UDP_LEN:]


# -- decapsulation ----------------------------------------------------------------------


def _parse_ipv4(data: bytes) -> tuple[OuterIPv4, bytes]:
    _need(data, _IPV4_LEN, "IPv4 header")
    ver_ihl, tos, total, _, frag, ttl, proto = struct.unpack_from("!BBHHHBB", data)
    if ver_ihl >> 4 != 4:
        raise TunnelError(f"IP version {ver_ihl >> 4} in an IPv4 packet")
    if ver_ihl & 0xF != 5:
        raise TunnelError(
            f"IPv4 header length {(ver_ihl & 0xF) * 4}: tunnels take no IPv4 options"
        )
    if checksum(data[:_IPV4_LEN]):
        raise TunnelError("bad IPv4 header checksum")
    if not _IPV4_LEN <= total <= len(data):
        raise TunnelError(f"IPv4 total length {total} does not fit the {len(data)} bytes received")
    if frag & 0x3FFF:
        raise TunnelError("IPv4 fragment: tunnels do not reassemble")
    ip = OuterIPv4(ip4_to_str(data[12:16]), ip4_to_str(data[16:20]), proto, tos, ttl, frag)
    # Bytes past the total length are Ethernet padding.
    return ip, data[_IPV4_LEN:total]


def _parse_ipv6(data: bytes) -> tuple[OuterIPv6, bytes]:
    _need(data, _IPV6_LEN, "IPv6 header")
    word, plen, proto, hlimit = struct.unpack_from("!IHBB", data)
    if word >> 28 != 6:
        raise TunnelError(f"IP version {word >> 28} in an IPv6 packet")
    if plen > len(data) - _IPV6_LEN:
        raise TunnelError(
            f"IPv6 payload length {plen} exceeds the {len(data) - 40} bytes received"
        )
    ip = OuterIPv6(
        ip6_to_str(data[8:24]),
        ip6_to_str(data[24:40]),
        proto,
        (word >> 20) & 0xFF,
        word & 0xFFFFF,
        hlimit,
    )
    return ip, data[_IPV6_LEN : _IPV6_LEN + plen]


def _parse_udp(ip: OuterIPv4 | OuterIPv6, data: bytes) -> tuple[OuterUDP, bytes]:
    _need(data, _UDP_LEN, "UDP header")
    src, dst, length, csum = struct.unpack_from("!HHHH", data)
    if not _UDP_LEN <= length <= len(data):
        raise TunnelError(f"UDP length {length} does not fit the {len(data)} bytes received")
    if csum and checksum(data[:length], _pseudo_sum(ip, length, IPPROTO_UDP)):
        raise TunnelError(f"bad UDP checksum {csum:#06x}")
    return OuterUDP(src, dst, csum), data[_UDP_LEN:length]


def decapsulate(
    frame: bytes, udp_ports: dict[int, str] | None = None
) -> tuple[TunnelHeader, bytes]:
    """Check a tunnelled frame and split it into its outer header and the inner frame.

    ``udp_ports`` maps UDP destination ports to ``"vxlan"`` or ``"geneve"``
    (default: the IANA ports, 4789 and 6081). The checks are those of OVS's
    receive side: IPv4 checksum, lengths, no IPv4 options, a non-zero UDP
    checksum verified, and each tunnel header's own.
    """
    ports = udp_ports if udp_ports is not None else {VXLAN_PORT: "vxlan", GENEVE_PORT: "geneve"}
    _need(frame, _ETH_LEN, "Ethernet header")
    eth_type = struct.unpack_from("!H", frame, 12)[0]
    ip: OuterIPv4 | OuterIPv6
    if eth_type == _ETH_TYPE_IP:
        ip, rest = _parse_ipv4(frame[_ETH_LEN:])
    elif eth_type == _ETH_TYPE_IPV6:
        ip, rest = _parse_ipv6(frame[_ETH_LEN:])
    else:
        raise TunnelError(f"ethertype {eth_type:#06x} is not IPv4 or IPv6")
    dst, src = mac_to_str(frame[0:6]), mac_to_str(frame[6:12])
    tunnel: VXLAN | Geneve | GRE
    if ip.proto == IPPROTO_GRE:
        tunnel, inner = GRE.parse(rest)
        return TunnelHeader(dst, src, ip, None, tunnel), inner
    if ip.proto != IPPROTO_UDP:
        raise TunnelError(f"IP protocol {ip.proto} is neither UDP nor GRE")
    udp, rest = _parse_udp(ip, rest)
    kind = ports.get(udp.dst)
    if kind == "vxlan":
        tunnel, inner = VXLAN.parse(rest)
    elif kind == "geneve":
        tunnel, inner = Geneve.parse(rest)
    else:
        raise TunnelError(f"no tunnel listens on UDP port {udp.dst}")
    return TunnelHeader(dst, src, ip, udp, tunnel), inner
