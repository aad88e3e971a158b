"""Header classes for building, parsing and displaying packets.

Each header is a small dataclass whose fields use the names of the protocol's
RFC, with addresses as text (``"192.0.2.1"``, ``"50:54:00:00:00:01"``) so tests
and displays read naturally. Fields that are usually derived (lengths, next
protocol numbers, checksums) default to ``None``, meaning "compute it when
building"; parsing fills them with what the wire said, so a packet with a bad
checksum parses and rebuilds byte for byte.

A packet is a list of headers, outermost first, optionally ending in
:class:`Raw`. :func:`build` turns such a list into bytes and :func:`parse`
turns bytes back into one. These classes are for the slow path, tests and
display; the datapath reads header bytes directly (:mod:`pyvswitch.flow.extract`).
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from pyvswitch.packet.addr import (
    ip4_to_bytes,
    ip4_to_str,
    ip6_to_bytes,
    ip6_to_str,
    mac_to_bytes,
    mac_to_str,
)
from pyvswitch.packet.checksum import checksum, ones_complement_sum

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_RARP = 0x8035
ETH_TYPE_VLAN = 0x8100
ETH_TYPE_VLAN_8021AD = 0x88A8
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_MIN = 0x0600
VLAN_TPIDS = frozenset((ETH_TYPE_VLAN, ETH_TYPE_VLAN_8021AD))

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPV6_EXT_HEADERS = frozenset(
    (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH, IPPROTO_DSTOPTS)
)

ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136
ND_OPT_SOURCE_LINKADDR = 1
ND_OPT_TARGET_LINKADDR = 2

TCP_FIN = 0x001
TCP_SYN = 0x002
TCP_RST = 0x004
TCP_PSH = 0x008
TCP_ACK = 0x010
TCP_URG = 0x020
TCP_ECE = 0x040
TCP_CWR = 0x080
TCP_NS = 0x100


class ParseError(ValueError):
    """A header is truncated or inconsistent; the message says which and where."""


@dataclass
class Header:
    """Base of every header class.

    ``next_type`` is the protocol number this header announces for what
    follows it (an ethertype or an IP protocol), or ``None`` when it has no
    such field; :func:`build` uses ``wire_id`` of the next header to fill it.
    """

    #: The ethertype (for L2.5/L3 headers) or IP protocol (for L4 and IPv6
    #: extension headers) that announces this header, used to fill the
    #: previous header's type field when building.
    wire_id: ClassVar[int | None] = None

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:
        """Return this header's bytes followed by ``payload``.

        ``ip`` is the nearest enclosing IP header, for checksums that cover a
        pseudo-header.
        """
        raise NotImplementedError

    def set_next(self, ident: int) -> None:
        """Fill this header's next-protocol field if it was left to be computed."""


@dataclass
class Raw(Header):
    """Bytes no header class describes: an application payload or padding."""

    data: bytes = b""

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        return self.data + payload


@dataclass
class Ethernet(Header):
    """Ethernet II header. ``type`` below 0x0600 is an 802.3 length field."""

    dst: str = "ff:ff:ff:ff:ff:ff"
    src: str = "00:00:00:00:00:00"
    type: int | None = None

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        etype = self.type if self.type is not None else len(payload)
        return mac_to_bytes(self.dst) + mac_to_bytes(self.src) + struct.pack("!H", etype) + payload

    def set_next(self, ident: int) -> None:
        if self.type is None:
            self.type = ident


@dataclass
class VLAN(Header):
    """An 802.1Q (TPID 0x8100) or 802.1ad (TPID 0x88a8) tag.

    ``tpid`` is the ethertype that announces this tag (it is written into the
    previous header's type field); ``type`` is the ethertype of what follows.
    """

    vid: int = 0
    pcp: int = 0
    dei: int = 0
    type: int | None = None
    tpid: int = ETH_TYPE_VLAN

    @property
    def tci(self) -> int:
        """The tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits)."""
        return (self.pcp << 13) | (self.dei << 12) | self.vid

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        if not 0 <= self.vid <= 0xFFF or not 0 <= self.pcp <= 7 or self.dei not in (0, 1):
            raise ValueError(f"VLAN tag out of range: vid={self.vid} pcp={self.pcp}")
        etype = self.type if self.type is not None else len(payload)
        return struct.pack("!HH", self.tci, etype) + payload

    def set_next(self, ident: int) -> None:
        if self.type is None:
            self.type = ident


@dataclass
class ARP(Header):
    """ARP (RFC 826) for Ethernet and IPv4; RARP uses the same layout."""

    wire_id: ClassVar[int | None] = ETH_TYPE_ARP
    op: int = 1
    sha: str = "00:00:00:00:00:00"
    spa: str = "0.0.0.0"  # noqa: S104 - an ARP field, not a socket binding
    tha: str = "00:00:00:00:00:00"
    tpa: str = "0.0.0.0"  # noqa: S104 - an ARP field, not a socket binding
    htype: int = 1
    ptype: int = ETH_TYPE_IP

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        return (
            struct.pack("!HHBBH", self.htype, self.ptype, 6, 4, self.op)
            + mac_to_bytes(self.sha)
            + ip4_to_bytes(self.spa)
            + mac_to_bytes(self.tha)
            + ip4_to_bytes(self.tpa)
            + payload
        )


@dataclass
class IPv4(Header):
    """IPv4 (RFC 791). ``frag`` is the fragment offset in 8-octet units."""

    wire_id: ClassVar[int | None] = ETH_TYPE_IP
    src: str = "0.0.0.0"  # noqa: S104 - an address field, not a socket binding
    dst: str = "0.0.0.0"  # noqa: S104 - an address field, not a socket binding
    proto: int | None = None
    tos: int = 0
    ttl: int = 64
    id: int = 0
    df: bool = False
    mf: bool = False
    frag: int = 0
    options: bytes = b""
    ihl: int | None = None
    len: int | None = None
    chksum: int | None = None
    reserved_flag: bool = False

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        options = self.options + b"\0" * (-len(self.options) % 4)
        ihl = self.ihl if self.ihl is not None else 5 + len(options) // 4
        total = self.len if self.len is not None else 20 + len(options) + len(payload)
        flags = (self.reserved_flag << 15) | (self.df << 14) | (self.mf << 13) | self.frag
        hdr = bytearray(
            struct.pack(
                "!BBHHHBBH4s4s",
                0x40 | ihl,
                self.tos,
                total,
                self.id,
                flags,
                self.ttl,
                self.proto if self.proto is not None else 0,
                0,
                ip4_to_bytes(self.src),
                ip4_to_bytes(self.dst),
            )
            + options
        )
        csum = self.chksum if self.chksum is not None else checksum(hdr)
        hdr[10:12] = csum.to_bytes(2, "big")
        return bytes(hdr) + payload

    def set_next(self, ident: int) -> None:
        if self.proto is None:
            self.proto = ident

    def pseudo_sum(self, proto: int, length: int) -> int:
        """Ones'-complement sum of the pseudo-header for an upper layer of ``length`` bytes."""
        return ones_complement_sum(
            ip4_to_bytes(self.src) + ip4_to_bytes(self.dst) + struct.pack("!BBH", 0, proto, length)
        )


@dataclass
class IPv6(Header):
    """The IPv6 fixed header (RFC 8200). ``nh`` is the next header number."""

    wire_id: ClassVar[int | None] = ETH_TYPE_IPV6
    src: str = "::"
    dst: str = "::"
    nh: int | None = None
    tc: int = 0
    fl: int = 0
    hlim: int = 64
    plen: int | None = None

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        word = (6 << 28) | (self.tc << 20) | self.fl
        plen = self.plen if self.plen is not None else len(payload)
        nh = self.nh if self.nh is not None else IPPROTO_NONE
        return (
            struct.pack("!IHBB", word, plen, nh, self.hlim)
            + ip6_to_bytes(self.src)
            + ip6_to_bytes(self.dst)
            + payload
        )

    def set_next(self, ident: int) -> None:
        if self.nh is None:
            self.nh = ident

    def pseudo_sum(self, proto: int, length: int) -> int:
        """Ones'-complement sum of the pseudo-header (RFC 8200, section 8.1)."""
        return ones_complement_sum(
            ip6_to_bytes(self.src) + ip6_to_bytes(self.dst) + struct.pack("!IxxxB", length, proto)
        )


@dataclass
class IPv6ExtHeader(Header):
    """A hop-by-hop, routing, destination-options or authentication header.

    ``kind`` is its own protocol number (0, 43, 60 or 51). ``data`` is what
    follows the two first octets; building pads it with zeros to the unit the
    kind requires (8 octets, or 4 for AH).
    """

    kind: int = IPPROTO_DSTOPTS
    nh: int | None = None
    data: bytes = b"\0" * 6

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        unit = 4 if self.kind == IPPROTO_AH else 8
        body = self.data + b"\0" * (-(len(self.data) + 2) % unit)
        units = (len(body) + 2) // unit
        hdr_len = units - 2 if self.kind == IPPROTO_AH else units - 1
        nh = self.nh if self.nh is not None else IPPROTO_NONE
        return struct.pack("!BB", nh, hdr_len) + body + payload

    def set_next(self, ident: int) -> None:
        if self.nh is None:
            self.nh = ident


@dataclass
class IPv6Fragment(Header):
    """The IPv6 fragment header.

    ``offset`` is in 8-octet units; ``res1`` (8 bits) and ``res2`` (2 bits)
    are the reserved fields, kept so that a parsed header rebuilds exactly.
    """

    wire_id: ClassVar[int | None] = IPPROTO_FRAGMENT
    nh: int | None = None
    offset: int = 0
    m: bool = False
    id: int = 0
    res1: int = 0
    res2: int = 0

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        nh = self.nh if self.nh is not None else IPPROTO_NONE
        word = (self.offset << 3) | (self.res2 << 1) | self.m
        return struct.pack("!BBHI", nh, self.res1, word, self.id) + payload

    def set_next(self, ident: int) -> None:
        if self.nh is None:
            self.nh = ident


def _l4_checksum(ip: IPv4 | IPv6 | None, proto: int, segment: bytes) -> int:
    if ip is None:
        raise ValueError(f"IP protocol {proto} needs an enclosing IP header for its checksum")
    return checksum(segment, ip.pseudo_sum(proto, len(segment)))


def _with_checksum(
    msg: bytearray, at: int, chksum: int | None, ip: IPv4 | IPv6 | None, proto: int
) -> bytes:
    """Write ``chksum``, or the computed L4 checksum when None, at offset ``at``."""
    csum = chksum if chksum is not None else _l4_checksum(ip, proto, bytes(msg))
    msg[at : at + 2] = csum.to_bytes(2, "big")
    return bytes(msg)


@dataclass
class ICMP(Header):
    """ICMPv4 (RFC 792).

    ``rest`` is the 4-octet field after the checksum (identifier and sequence
    number for echo); :attr:`id` and :attr:`seq` read it that way.
    """

    wire_id: ClassVar[int | None] = IPPROTO_ICMP
    type: int = 8
    code: int = 0
    rest: bytes = b"\0\0\0\0"
    chksum: int | None = None

    @classmethod
    def echo(cls, ident: int = 0, seq: int = 0, request: bool = True) -> ICMP:
        """An echo request (or reply) with the given identifier and sequence number."""
        return cls(type=8 if request else 0, code=0, rest=struct.pack("!HH", ident, seq))

    @property
    def id(self) -> int:
        """The echo identifier."""
        return int.from_bytes(self.rest[:2], "big")

    @property
    def seq(self) -> int:
        """The echo sequence number."""
        return int.from_bytes(self.rest[2:4], "big")

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:  # noqa: ARG002
        msg = bytearray(struct.pack("!BBH", self.type, self.code, 0) + self.rest[:4] + payload)
        csum = self.chksum if self.chksum is not None else checksum(msg)
        msg[2:4] = csum.to_bytes(2, "big")
        return bytes(msg)


@dataclass
class ICMPV6(Header):
    """ICMPv6 (RFC 4443) other than neighbour discovery.

    ``body`` is what follows the checksum (4 octets of identifier and
    sequence number for echo).
    """

    wire_id: ClassVar[int | None] = IPPROTO_ICMPV6
    type: int = 128
    code: int = 0
    body: bytes = b"\0\0\0\0"
    chksum: int | None = None

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:
        msg = bytearray(struct.pack("!BBH", self.type, self.code, 0) + self.body + payload)
        return _with_checksum(msg, 2, self.chksum, ip, IPPROTO_ICMPV6)


@dataclass
class NeighborDiscovery(Header):
    """A neighbour solicitation (135) or advertisement (136), RFC 4861.

    ``sll`` and ``tll`` are the source and target link-layer address options
    (``None`` when absent); ``options`` holds any other options as
    ``(type, value)`` pairs, the value without the type and length octets.
    ``flags`` is the first 32-bit word (router, solicited, override bits).
    Building puts ``sll`` and ``tll`` first, except that a parsed message
    remembers where its options were (``layout``, not part of equality), so
    it rebuilds byte for byte.
    """

    wire_id: ClassVar[int | None] = IPPROTO_ICMPV6
    type: int = ND_NEIGHBOR_SOLICIT
    code: int = 0
    target: str = "::"
    sll: str | None = None
    tll: str | None = None
    flags: int = 0
    options: list[tuple[int, bytes]] = field(default_factory=list)
    chksum: int | None = None
    #: Wire order of the options as parsed: "sll", "tll", or an index into
    #: ``options``. Ignored when it no longer fits ``options``.
    layout: tuple[str | int, ...] | None = field(default=None, compare=False, repr=False)

    def _wire_options(self) -> list[tuple[int, bytes]]:
        links = {
            "sll": (ND_OPT_SOURCE_LINKADDR, self.sll),
            "tll": (ND_OPT_TARGET_LINKADDR, self.tll),
        }
        indexes = sorted(x for x in self.layout or () if isinstance(x, int))
        order: tuple[str | int, ...] = ("sll", "tll", *range(len(self.options)))
        if self.layout is not None and indexes == list(range(len(self.options))):
            order = (*(n for n in ("sll", "tll") if n not in self.layout), *self.layout)
        out = []
        for slot in order:
            if isinstance(slot, int):
                out.append(self.options[slot])
            elif links[slot][1] is not None:
                out.append((links[slot][0], mac_to_bytes(links[slot][1] or "")))
        return out

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:
        opts = b""
        for kind, value in self._wire_options():
            raw = value + b"\0" * (-(len(value) + 2) % 8)
            opts += struct.pack("!BB", kind, (len(raw) + 2) // 8) + raw
        msg = bytearray(
            struct.pack("!BBHI", self.type, self.code, 0, self.flags)
            + ip6_to_bytes(self.target)
            + opts
            + payload
        )
        return _with_checksum(msg, 2, self.chksum, ip, IPPROTO_ICMPV6)


@dataclass
class TCP(Header):
    """TCP (RFC 9293).

    ``flags`` holds the 12 bits below the data offset: the 9 flags (NS..FIN)
    and the 3 reserved bits above them, as OVS's ``tcp_flags`` does.
    ``dataofs`` is the header length in 32-bit words (computed from the
    options if None).
    """

    wire_id: ClassVar[int | None] = IPPROTO_TCP
    sport: int = 0
    dport: int = 0
    seq: int = 0
    ack: int = 0
    flags: int = TCP_SYN
    window: int = 8192
    urgptr: int = 0
    options: bytes = b""
    dataofs: int | None = None
    chksum: int | None = None

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:
        options = self.options + b"\0" * (-len(self.options) % 4)
        dataofs = self.dataofs if self.dataofs is not None else 5 + len(options) // 4
        seg = bytearray(
            struct.pack(
                "!HHIIHHHH",
                self.sport,
                self.dport,
                self.seq,
                self.ack,
                (dataofs << 12) | (self.flags & 0xFFF),
                self.window,
                0,
                self.urgptr,
            )
            + options
            + payload
        )
        csum = (
            self.chksum if self.chksum is not None else _l4_checksum(ip, IPPROTO_TCP, bytes(seg))
        )
        seg[16:18] = csum.to_bytes(2, "big")
        return bytes(seg)


@dataclass
class UDP(Header):
    """UDP (RFC 768). Over IPv4 a computed checksum of 0 is sent as 0xffff."""

    wire_id: ClassVar[int | None] = IPPROTO_UDP
    sport: int = 0
    dport: int = 0
    len: int | None = None
    chksum: int | None = None

    def encode(self, payload: bytes, ip: IPv4 | IPv6 | None) -> bytes:
        length = self.len if self.len is not None else 8 + len(payload)
        seg = bytearray(struct.pack("!HHHH", self.sport, self.dport, length, 0) + payload)
        if self.chksum is not None:
            csum = self.chksum
        else:
            csum = _l4_checksum(ip, IPPROTO_UDP, bytes(seg)) or 0xFFFF
        seg[6:8] = csum.to_bytes(2, "big")
        return bytes(seg)


def _wire_id(header: Header) -> int | None:
    if isinstance(header, VLAN):
        return header.tpid
    if isinstance(header, IPv6ExtHeader):
        return header.kind
    return header.wire_id


def build(*layers: Header | bytes) -> bytes:
    """Build a packet from headers given outermost first.

    ``bytes`` arguments are payload. Type fields, lengths and checksums left
    as ``None`` are computed; values given explicitly are written as they are
    (so tests can build wrong checksums or lengths on purpose). The header
    objects passed in get their ``None`` next-protocol fields filled.
    """
    hdrs = [Raw(x) if isinstance(x, bytes | bytearray) else x for x in layers]
    for outer, inner in itertools.pairwise(hdrs):
        ident = _wire_id(inner)
        if ident is not None:
            outer.set_next(ident)
    data = b""
    for i in range(len(hdrs) - 1, -1, -1):
        data = hdrs[i].encode(data, _pseudo_header_ip(hdrs[:i]))
    return data


def _pseudo_header_ip(outer: list[Header]) -> IPv4 | IPv6 | None:
    """The IP header whose addresses an upper layer's checksum covers.

    It is the nearest enclosing IP header, except that behind a routing
    header with segments left the destination is the final one the routing
    header names (RFC 8200, section 8.1).
    """
    final: str | None = None
    for hdr in reversed(outer):
        if isinstance(hdr, IPv6ExtHeader) and hdr.kind == IPPROTO_ROUTING and final is None:
            final = _routing_final_destination(hdr.data)
        if isinstance(hdr, IPv4):
            return hdr
        if isinstance(hdr, IPv6):
            return hdr if final is None else dataclasses.replace(hdr, dst=final)
    return None


def _routing_final_destination(data: bytes) -> str | None:
    """The final destination a routing header names, or None when it is the packet's own.

    ``data`` starts at the routing type octet. Types 0 and 2 list the
    addresses still to visit, the final one last; a segment routing header
    (type 4) lists segments in reverse, the final one first.
    """
    if len(data) < 22 or data[1] == 0:
        return None
    addresses = data[6:]
    if data[0] in (0, 2):
        last = (len(addresses) // 16 - 1) * 16
        return ip6_to_str(addresses[last : last + 16])
    if data[0] == 4:
        return ip6_to_str(addresses[:16])
    return None


# -- parsing ---------------------------------------------------------------


def _need(buf: bytes, off: int, size: int, what: str) -> None:
    if len(buf) - off < size:
        raise ParseError(
            f"{what} truncated at offset {off}: need {size} bytes, have {max(len(buf) - off, 0)}"
        )


def _parse_l4(
    buf: bytes, off: int, proto: int, end: int, later_fragment: bool, out: list[Header]
) -> int:
    if later_fragment:
        return off
    if proto == IPPROTO_TCP:
        _need(buf, off, 20, "TCP header")
        sport, dport, seq, ack, offflags, window, csum, urg = struct.unpack_from(
            "!HHIIHHHH", buf, off
        )
        dataofs: int = offflags >> 12
        hlen = dataofs * 4
        if hlen < 20:
            raise ParseError(f"TCP data offset {dataofs} is below 5 at offset {off}")
        _need(buf, off, hlen, "TCP options")
        out.append(
            TCP(
                sport,
                dport,
                seq,
                ack,
                offflags & 0xFFF,
                window,
                urg,
                bytes(buf[off + 20 : off + hlen]),
                dataofs,
                csum,
            )
        )
        return off + hlen
    if proto == IPPROTO_UDP:
        _need(buf, off, 8, "UDP header")
        sport, dport, length, csum = struct.unpack_from("!HHHH", buf, off)
        out.append(UDP(sport, dport, length, csum))
        return off + 8
    if proto == IPPROTO_ICMP:
        _need(buf, off, 8, "ICMP header")
        typ, code, csum = struct.unpack_from("!BBH", buf, off)
        out.append(ICMP(typ, code, bytes(buf[off + 4 : off + 8]), csum))
        return off + 8
    if proto == IPPROTO_ICMPV6:
        _need(buf, off, 4, "ICMPv6 header")
        typ, code, csum = struct.unpack_from("!BBH", buf, off)
        if typ in (ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT) and code == 0:
            _need(buf, off, 24, "neighbour discovery message")
            nd = NeighborDiscovery(
                typ,
                code,
                ip6_to_str(bytes(buf[off + 8 : off + 24])),
                flags=struct.unpack_from("!I", buf, off + 4)[0],
                chksum=csum,
            )
            pos = off + 24
            layout: list[str | int] = []
            message = buf[:end]
            while pos < end:
                _need(message, pos, 2, "neighbour discovery option")
                kind, units = buf[pos], buf[pos + 1]
                if units == 0:
                    raise ParseError(f"neighbour discovery option of length 0 at offset {pos}")
                _need(message, pos, units * 8, "neighbour discovery option")
                value = bytes(buf[pos + 2 : pos + units * 8])
                if kind == ND_OPT_SOURCE_LINKADDR and units == 1 and nd.sll is None:
                    nd.sll = mac_to_str(value)
                    layout.append("sll")
                elif kind == ND_OPT_TARGET_LINKADDR and units == 1 and nd.tll is None:
                    nd.tll = mac_to_str(value)
                    layout.append("tll")
                else:
                    layout.append(len(nd.options))
                    nd.options.append((kind, value))
                pos += units * 8
            nd.layout = tuple(layout)
            out.append(nd)
            return pos
        _need(buf, off, 8, "ICMPv6 message")
        out.append(ICMPV6(typ, code, bytes(buf[off + 4 : off + 8]), csum))
        return off + 8
    return off


def _parse_ipv4(buf: bytes, off: int, out: list[Header]) -> tuple[int, int]:
    _need(buf, off, 20, "IPv4 header")
    vihl, tos, total, ident, flags, ttl, proto, csum = struct.unpack_from("!BBHHHBBH", buf, off)
    if vihl >> 4 != 4:
        raise ParseError(f"IPv4 header with version {vihl >> 4} at offset {off}")
    ihl = vihl & 0xF
    if ihl < 5:
        raise ParseError(f"IPv4 header length {ihl} is below 5 at offset {off}")
    _need(buf, off, ihl * 4, "IPv4 options")
    out.append(
        IPv4(
            ip4_to_str(bytes(buf[off + 12 : off + 16])),
            ip4_to_str(bytes(buf[off + 16 : off + 20])),
            proto,
            tos,
            ttl,
            ident,
            bool(flags & 0x4000),
            bool(flags & 0x2000),
            flags & 0x1FFF,
            bytes(buf[off + 20 : off + ihl * 4]),
            ihl,
            total,
            csum,
            bool(flags & 0x8000),
        )
    )
    end = min(len(buf), off + total) if total >= ihl * 4 else len(buf)
    return _parse_l4(buf, off + ihl * 4, proto, end, bool(flags & 0x1FFF), out), end


def _parse_ipv6(buf: bytes, off: int, out: list[Header]) -> tuple[int, int]:
    _need(buf, off, 40, "IPv6 header")
    word, plen, nh, hlim = struct.unpack_from("!IHBB", buf, off)
    if word >> 28 != 6:
        raise ParseError(f"IPv6 header with version {word >> 28} at offset {off}")
    out.append(
        IPv6(
            ip6_to_str(bytes(buf[off + 8 : off + 24])),
            ip6_to_str(bytes(buf[off + 24 : off + 40])),
            nh,
            (word >> 20) & 0xFF,
            word & 0xFFFFF,
            hlim,
            plen,
        )
    )
    end = min(len(buf), off + 40 + plen)
    off += 40
    later = False
    while nh in IPV6_EXT_HEADERS and not later:
        if nh == IPPROTO_FRAGMENT:
            _need(buf, off, 8, "IPv6 fragment header")
            nxt, _, offm, ident = struct.unpack_from("!BBHI", buf, off)
            out.append(
                IPv6Fragment(nxt, offm >> 3, bool(offm & 1), ident, buf[off + 1], (offm >> 1) & 3)
            )
            later = (offm >> 3) != 0
            size = 8
        else:
            _need(buf, off, 2, "IPv6 extension header")
            nxt, hlen = buf[off], buf[off + 1]
            size = (hlen + 2) * 4 if nh == IPPROTO_AH else (hlen + 1) * 8
            _need(buf, off, size, "IPv6 extension header")
            out.append(IPv6ExtHeader(nh, nxt, bytes(buf[off + 2 : off + size])))
        nh = nxt
        off += size
    return _parse_l4(buf, off, nh, end, later, out), end


def parse(frame: bytes | bytearray | memoryview) -> list[Header]:
    """Parse an Ethernet frame into headers, outermost first.

    Everything after the last recognised header, including Ethernet padding,
    becomes one trailing :class:`Raw`. A truncated or inconsistent header
    raises :class:`ParseError` naming it; the datapath never calls this (its
    extractor does not raise), it is for tests, tools and display.
    """
    buf = bytes(frame)
    out: list[Header] = []
    _need(buf, 0, 14, "Ethernet header")
    etype = struct.unpack_from("!H", buf, 12)[0]
    out.append(Ethernet(mac_to_str(buf[0:6]), mac_to_str(buf[6:12]), etype))
    off = 14
    while etype in VLAN_TPIDS:
        _need(buf, off, 4, "VLAN tag")
        tci, inner = struct.unpack_from("!HH", buf, off)
        out.append(VLAN(tci & 0xFFF, tci >> 13, (tci >> 12) & 1, inner, etype))
        etype = inner
        off += 4
    if etype == ETH_TYPE_IP:
        off, _ = _parse_ipv4(buf, off, out)
    elif etype == ETH_TYPE_IPV6:
        off, _ = _parse_ipv6(buf, off, out)
    elif etype in (ETH_TYPE_ARP, ETH_TYPE_RARP):
        _need(buf, off, 28, "ARP header")
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", buf, off)
        if hlen != 6 or plen != 4:
            raise ParseError(f"ARP with address lengths {hlen}/{plen} at offset {off}")
        out.append(
            ARP(
                op,
                mac_to_str(buf[off + 8 : off + 14]),
                ip4_to_str(buf[off + 14 : off + 18]),
                mac_to_str(buf[off + 18 : off + 24]),
                ip4_to_str(buf[off + 24 : off + 28]),
                htype,
                ptype,
            )
        )
        off += 28
    if off < len(buf):
        out.append(Raw(buf[off:]))
    return out
