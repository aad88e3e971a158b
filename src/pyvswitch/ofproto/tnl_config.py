"""A tunnel port's configuration, read from its options as Open vSwitch 3.1 reads them.

This is ``set_tunnel_config()`` and ``get_tunnel_config()`` of OVS's
lib/netdev-vport.c for the three tunnel types pyvswitch provides (``vxlan``,
``gre``, ``geneve``), without I/O so that every layer can use it: the netdev
providers (:mod:`pyvswitch.netdev.vport`) parse with it, the tunnel port map
(:mod:`pyvswitch.ofproto.tnl_ports`) and translation read the result.

OVS's behaviour is kept down to its quirks, because users see them:

* Options are visited in the order of OVS's hash map (see
  :func:`pyvswitch.ofproto.hmap.smap_order`), which decides the order of the
  warnings and whether a fatal one comes before or after another.
* Problems that do not stop the port (an unknown option, a bad ``tos``, an
  unknown VXLAN extension, an unparsable ``local_ip``) are warnings; OVS
  logs them all in one message and goes on. When something does stop the
  port, the message in its ``error`` column is every line gathered so far,
  joined by newlines.
* Numbers are read as C reads them (``atoi``, ``strtoul``, ``strtoull`` with
  base 0), so ``ttl=300`` is 44 and ``key=0x10`` is 16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Literal

from pyvswitch.ofproto.hmap import smap_order
from pyvswitch.packet.addr import ip6_to_str

if TYPE_CHECKING:
    from collections.abc import Mapping

IPAddress = IPv4Address | IPv6Address
FromFlow = Literal["flow"]
Inherit = Literal["inherit"]

#: The tunnel types, and the default UDP destination port of each (None: not UDP).
DEFAULT_DST_PORT: dict[str, int | None] = {"vxlan": 4789, "geneve": 6081, "gre": None}
#: OVS's name for the datapath port the tunnels of one type (and UDP port) share.
DPIF_PORT_PREFIX = {"vxlan": "vxlan_sys", "geneve": "genev_sys", "gre": "gre_sys"}
#: The TTL of the outer header when none is configured.
DEFAULT_TTL = 64
#: The ``packet_type`` values, as OVS names them.
PACKET_TYPES = ("legacy_l2", "legacy_l3", "ptap")
#: The options OVS accepts for each type (others are warned about and ignored).
#: ``remote_cert``, ``remote_name`` and ``psk`` belong to the IPsec monitor and
#: are accepted silently; ``erspan_*`` and ``payload_type`` are checked for
#: every type, as OVS checks them, though only other types use them.
_COMMON_OPTIONS = (
    "remote_ip",
    "local_ip",
    "key",
    "in_key",
    "out_key",
    "tos",
    "ttl",
    "df_default",
    "csum",
    "packet_type",
    "egress_pkt_mark",
    "erspan_idx",
    "erspan_ver",
    "erspan_dir",
    "erspan_hwid",
    "payload_type",
    "remote_cert",
    "remote_name",
    "psk",
)
ACCEPTED_OPTIONS: dict[str, frozenset[str]] = {
    "vxlan": frozenset((*_COMMON_OPTIONS, "dst_port", "exts")),
    "geneve": frozenset((*_COMMON_OPTIONS, "dst_port")),
    "gre": frozenset((*_COMMON_OPTIONS, "seq")),
}

_IP_DSCP_MASK = 0xFC
_ERSPAN_IDX_MASK = 0xFFFFF
_ERSPAN_HWID_MASK = 0x3F
_EXT_GBP = 1 << 1  # 1 << OVS_VXLAN_EXT_GBP, also 1 << OVS_BAREUDP_EXT_MULTIPROTO_MODE
_EXT_GPE = 1 << 8  # 1 << OVS_VXLAN_EXT_GPE


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """One tunnel port's parsed configuration (OVS's ``struct netdev_tunnel_config``).

    ``remote_ip`` and ``local_ip`` are addresses or ``"flow"`` (taken from the
    flow's ``tun_dst``/``tun_src`` when sending, matched by the flow table when
    receiving); ``local_ip`` None means any. An IPv4 address written in its
    IPv6-mapped form is kept as IPv4, since OVS treats them alike.
    ``in_key``/``out_key`` are the tunnel ID matched on receive and set on
    send, ``"flow"``, or None when no key is configured (receive matches ID 0,
    send sets ID 0 without the key flag). ``dst_port`` None means the type's
    default (4789 for vxlan, 6081 for geneve); gre has none. ``tos`` holds the
    DSCP bits (the ECN bits always come from the inner packet).
    """

    type: str
    remote_ip: IPAddress | FromFlow
    local_ip: IPAddress | FromFlow | None = None
    in_key: int | FromFlow | None = None
    out_key: int | FromFlow | None = None
    dst_port: int | None = None
    tos: int | Inherit = 0
    ttl: int | Inherit = DEFAULT_TTL
    df_default: bool = True
    csum: bool = False
    seq: bool = False
    packet_type: str = "legacy_l2"
    egress_pkt_mark: int | None = None
    exts: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.type not in DEFAULT_DST_PORT:
            raise ValueError(f"unknown tunnel type {self.type!r} (known: geneve, gre, vxlan)")
        default = DEFAULT_DST_PORT[self.type]
        if default is None and self.dst_port is not None:
            raise ValueError(f"a {self.type} tunnel has no UDP destination port")
        if self.dst_port is None and default is not None:
            # A frozen dataclass sets fields through object.__setattr__.
            object.__setattr__(self, "dst_port", default)
        if self.packet_type not in PACKET_TYPES:
            raise ValueError(f"unknown packet_type {self.packet_type!r}")

    @property
    def dpif_port(self) -> str:
        """The shared datapath port's name: ``vxlan_sys_4789``, ``genev_sys_6081``, ``gre_sys``."""
        prefix = DPIF_PORT_PREFIX[self.type]
        return prefix if self.dst_port is None else f"{prefix}_{self.dst_port}"


@dataclass(frozen=True, slots=True)
class ParsedTunnelOptions:
    """What :func:`parse_tunnel_options` found: the configuration and what OVS would log.

    ``warnings`` are the lines of the one warning OVS logs (module
    ``netdev_vport``, lines joined by newlines), in OVS's order; ``unknown``
    names the options it ignored as unknown, in the same order.
    """

    config: TunnelConfig
    warnings: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


class TunnelConfigError(ValueError):
    """OVS refuses the options; ``str()`` is the port's ``error`` column, word for word.

    ``lines`` are the lines gathered (the last one is the reason); OVS logs
    them as one warning. It has none when OVS refuses without a message
    (a bad ``payload_type``); the column then reads ``NAME: could not set
    configuration (Invalid argument)``, which OVS logs too.
    """

    def __init__(self, name: str, lines: list[str]) -> None:
        self.lines = tuple(lines)
        text = "\n".join(lines) or f"{name}: could not set configuration (Invalid argument)"
        super().__init__(text)


# -- C number parsing ---------------------------------------------------------


def _strto(text: str, base: int, *, signed: bool) -> tuple[int, int]:
    """C's strtol/strtoul (64-bit long): the value and how many characters it used.

    No digits: (0, 0). Overflow clamps as C does; a minus sign on an unsigned
    conversion wraps, as C does.
    """
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    negative = i < n and text[i] == "-"
    if i < n and text[i] in "+-":
        i += 1
    if (
        base in (0, 16)
        and text[i : i + 2] in ("0x", "0X")
        and i + 2 < n
        and text[i + 2] in "0123456789abcdefABCDEF"
    ):
        base, i = 16, i + 2
    elif base == 0:
        base = 8 if text[i : i + 1] == "0" else 10
    start = i
    value = 0
    while i < n:
        digit = "0123456789abcdefghijklmnopqrstuvwxyz".find(text[i].lower())
        if not 0 <= digit < base or not text[i].isascii():
            break
        value = value * base + digit
        i += 1
    if i == start:
        return 0, 0
    if signed:
        value = -value if negative else value
        return max(-(1 << 63), min(value, (1 << 63) - 1)), i
    if value >= 1 << 64:
        return (1 << 64) - 1, i
    return (-value) % (1 << 64) if negative else value, i


def _c_int(value: int) -> int:
    """A C long stored in an int: the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _atoi(text: str) -> int:
    """C's atoi: strtol base 10, stored in an int."""
    return _c_int(_strto(text, 10, signed=True)[0])


def _str_to_u16(text: str) -> int | None:
    """OVS's str_to_u16(): the whole text a number (base 0) in 0..65535, or None."""
    value, used = _strto(text, 0, signed=True)
    if used == 0 or used != len(text) or not 0 <= value <= 0xFFFF:
        return None
    return value


# -- addresses ------------------------------------------------------------------


def _parse_ip(text: str) -> IPAddress | None:
    """inet_pton(): IPv6 when the text has a colon (OVS's test), else IPv4; None if invalid.

    Python's parser accepts scope IDs (``fe80::1%eth0``) and non-ASCII
    digits, which inet_pton refuses; those are refused here first.
    """
    if not text.isascii() or "%" in text or "/" in text:
        return None
    try:
        return IPv6Address(text) if ":" in text else IPv4Address(text)
    except ValueError:
        return None


def as_ipv6_int(addr: IPAddress) -> int:
    """The address as OVS stores it: an IPv6 integer, IPv4 as ``::ffff:a.b.c.d``."""
    if isinstance(addr, IPv4Address):
        return 0xFFFF_0000_0000 | int(addr)
    return int(addr)


def format_ipv6(value: int) -> str:
    """inet_ntop(AF_INET6) as glibc writes it (``::a.b.c.d`` and ``::ffff:a.b.c.d`` dotted)."""
    return ip6_to_str(value.to_bytes(16, "big"))


def format_ipv6_mapped(value: int) -> str:
    """OVS's ipv6_format_mapped(): a mapped IPv4 address dotted, anything else as IPv6."""
    if value >> 32 == 0xFFFF:
        return str(IPv4Address(value & 0xFFFFFFFF))
    return format_ipv6(value)


def _format_ip(addr: IPAddress) -> str:
    """OVS's ipv6_string_mapped(), which get_config() uses.

    It prints a mapped address dotted only when its IPv4 part is not zero:
    0.0.0.0 comes out as ``::ffff:0.0.0.0``.
    """
    if isinstance(addr, IPv4Address) and int(addr):
        return str(addr)
    return format_ipv6(as_ipv6_int(addr))


# -- parsing --------------------------------------------------------------------


@dataclass
class _State:
    """The fields of OVS's ``struct netdev_tunnel_config`` while they are parsed."""

    remote: int = 0
    remote_flow: bool = False
    local: int = 0
    local_flow: bool = False
    tos: int = 0
    tos_inherit: bool = False
    ttl: int = 0
    ttl_inherit: bool = False
    dst_port: int = 0
    csum: bool = False
    seq: bool = False
    df: bool = True
    exts: int = 0
    mark: int | None = None


class _RefusedError(Exception):
    """Parsing stops here (OVS's ``goto out`` with an error)."""


def _parse_address(value: str, *, accept_multicast: bool) -> tuple[int, int, bool] | None:
    """OVS's parse_tunnel_ip(): (address as IPv6 int, family ethertype, multicast).

    ``"flow"`` gives (0, 0, False); None means the text is not an address.
    """
    if value == "flow":
        return 0, 0, False
    addr = _parse_ip(value)
    if addr is None:
        return None
    if isinstance(addr, IPv6Address):
        # Only ff00::/8 is multicast for an address written as IPv6, even a
        # mapped one (OVS tests the first byte).
        return int(addr), 0x86DD, not accept_multicast and int(addr) >> 120 == 0xFF
    return as_ipv6_int(addr), 0x0800, not accept_multicast and addr.is_multicast


def _parse_key(options: Mapping[str, str], name: str) -> int | FromFlow | None:
    """OVS's parse_key(): ``in_key``/``out_key``, else ``key``; strtoull base 0."""
    text = options.get(name, options.get("key"))
    if text is None:
        return None
    if text == "flow":
        return "flow"
    return _strto(text, 0, signed=False)[0]


def parse_tunnel_options(name: str, type_: str, options: Mapping[str, str]) -> ParsedTunnelOptions:
    """Read a tunnel port's ``options`` column as OVS 3.1's set_tunnel_config() does.

    ``name`` is the interface name (every message starts with it); ``type_``
    is ``vxlan``, ``gre`` or ``geneve``. Raises :class:`TunnelConfigError`
    with OVS's words when OVS would refuse the port. The VXLAN-GBP check,
    which needs the other VXLAN ports, is the provider's
    (:mod:`pyvswitch.netdev.vport`).
    """
    if type_ not in DEFAULT_DST_PORT:
        raise ValueError(f"unknown tunnel type {type_!r} (known: geneve, gre, vxlan)")
    lines: list[str] = []
    unknown: list[str] = []
    st = _State(dst_port=DEFAULT_DST_PORT[type_] or 0)
    protos = {"remote": 0, "local": 0}
    try:
        for key in smap_order(options):
            _parse_one(name, type_, key, options[key], st, protos, lines, unknown)
        packet_type = _packet_type(name, type_, options.get("packet_type"), st, lines)
        _check_endpoints(name, type_, st, protos, lines)
    except _RefusedError:
        raise TunnelConfigError(name, lines) from None

    config = TunnelConfig(
        type=type_,
        remote_ip="flow" if st.remote_flow else _from_ipv6_int(st.remote),
        local_ip="flow" if st.local_flow else (_from_ipv6_int(st.local) if st.local else None),
        in_key=_parse_key(options, "in_key"),
        out_key=_parse_key(options, "out_key"),
        dst_port=st.dst_port if type_ != "gre" else None,
        tos="inherit" if st.tos_inherit else st.tos,
        ttl="inherit" if st.ttl_inherit else (st.ttl or DEFAULT_TTL),
        df_default=st.df,
        csum=st.csum,
        seq=st.seq,
        packet_type=packet_type,
        egress_pkt_mark=st.mark,
        exts=frozenset(
            ext for ext, bit in (("gbp", _EXT_GBP), ("gpe", _EXT_GPE)) if st.exts & bit
        ),
    )
    return ParsedTunnelOptions(config, tuple(lines), tuple(unknown))


def _from_ipv6_int(value: int) -> IPAddress:
    if value >> 32 == 0xFFFF:
        return IPv4Address(value & 0xFFFFFFFF)
    return IPv6Address(value)


def _parse_one(
    name: str,
    type_: str,
    key: str,
    value: str,
    st: _State,
    protos: dict[str, int],
    lines: list[str],
    unknown: list[str],
) -> None:
    """One option, as one arm of the loop in OVS's set_tunnel_config()."""
    if key in ("remote_ip", "local_ip"):
        remote = key == "remote_ip"
        parsed = _parse_address(value, accept_multicast=not remote)
        if parsed is None:
            lines.append(f"{name}: bad {type_} '{key}'")
            return
        addr, proto, multicast = parsed
        if multicast:
            lines.append(f"{name}: multicast remote_ip={value} not allowed")
            raise _RefusedError
        if remote:
            st.remote, st.remote_flow = addr, value == "flow"
            protos["remote"] = proto
        else:
            st.local, st.local_flow = addr, value == "flow"
            protos["local"] = proto
    elif key == "tos":
        if value == "inherit":
            st.tos_inherit = True
        else:
            long_tos, used = _strto(value, 0, signed=True)
            tos = _c_int(long_tos)
            if used == len(value) and tos == tos & _IP_DSCP_MASK:
                st.tos = tos
            else:
                lines.append(f"{name}: invalid TOS {value}")
    elif key == "ttl":
        if value == "inherit":
            st.ttl_inherit = True
        else:
            st.ttl = _atoi(value) & 0xFF
    elif key == "dst_port" and type_ != "gre":
        st.dst_port = _atoi(value) & 0xFFFF
    elif key == "csum":
        if value == "true":
            st.csum = True
    elif key == "seq" and type_ == "gre":
        if value == "true":
            st.seq = True
    elif key == "df_default":
        if value == "false":
            st.df = False
    elif key in ("key", "in_key", "out_key", "packet_type"):
        pass  # read after the loop, as OVS does
    elif key == "exts" and type_ == "vxlan":
        st.exts = 0
        for ext in (part for part in value.split(",") if part):
            if ext == "gbp":
                st.exts |= _EXT_GBP
            elif ext == "gpe":
                st.exts |= _EXT_GPE
            else:
                lines.append(f"{name}: unknown extension '{ext}'")
    elif key == "egress_pkt_mark":
        st.mark = _strto(value, 10, signed=False)[0] & 0xFFFFFFFF
    elif key.startswith("erspan_") and key[7:] in ("idx", "ver", "dir", "hwid"):
        _check_erspan(name, key[7:], value, lines)
    elif key == "payload_type":
        if value in ("mpls", "ip"):
            # The bareUDP bit OVS sets here is the VXLAN GBP bit.
            st.exts |= _EXT_GBP
        elif _str_to_u16(value) is None:
            raise _RefusedError
    elif key in ("remote_cert", "remote_name", "psk"):
        pass  # read by ovs-monitor-ipsec, silently accepted by OVS
    else:
        lines.append(f"{name}: unknown {type_} argument '{key}'")
        unknown.append(key)


def _check_erspan(name: str, what: str, value: str, lines: list[str]) -> None:
    """OVS checks the ERSPAN options of every tunnel type; a bad one refuses the port."""
    if value == "flow":
        return
    if what == "idx":
        bad = _strto(value, 16, signed=True)[0] & 0xFFFFFFFF & ~_ERSPAN_IDX_MASK
        message = "invalid erspan index"
    elif what == "ver":
        bad = _atoi(value) & 0xFF not in (1, 2)
        message = "invalid erspan version"
    elif what == "dir":
        bad = _atoi(value) & 0xFF not in (0, 1)
        message = "invalid erspan direction"
    else:
        bad = _strto(value, 16, signed=True)[0] & 0xFF & ~_ERSPAN_HWID_MASK
        message = "invalid erspan hardware ID"
    if bad:
        lines.append(f"{name}: {message}: {value}")
        raise _RefusedError


def _packet_type(name: str, type_: str, value: str | None, st: _State, lines: list[str]) -> str:
    """``packet_type``: legacy_l3 only where the type carries L3 (gre, VXLAN-GPE)."""
    gpe = type_ == "vxlan" and bool(st.exts & _EXT_GPE)
    carries_l3 = type_ == "gre" or gpe
    if value is None or value in ("legacy_l2", "ptap"):
        # Every type here carries L2, so legacy_l2 is always accepted.
        return value or "legacy_l2"
    if value == "legacy_l3":
        if not carries_l3:
            full = type_ if type_ != "vxlan" else ("VXLAN-GPE" if gpe else "VXLAN (without GPE)")
            lines.append(
                f"{name}: legacy_l3 configured on {full} tunnel that cannot carry L3 traffic"
            )
            raise _RefusedError
        return value
    lines.append(f"{name}: unknown packet_type '{value}'")
    raise _RefusedError


def _check_endpoints(
    name: str, type_: str, st: _State, protos: dict[str, int], lines: list[str]
) -> None:
    if not st.remote and not st.remote_flow:
        lines.append(f"{name}: {type_} type requires valid 'remote_ip' argument")
        raise _RefusedError
    if st.local_flow and not st.remote_flow:
        lines.append(f"{name}: {type_} type requires 'remote_ip=flow' with 'local_ip=flow'")
        raise _RefusedError
    if protos["remote"] and protos["local"] and protos["remote"] != protos["local"]:
        lines.append(f"{name}: 'remote_ip' and 'local_ip' has to be of the same address family")
        raise _RefusedError


# -- printing ---------------------------------------------------------------------


def key_state(key: int | FromFlow | None) -> tuple[bool, bool, int]:
    """A key as OVS stores it: (present, flow, value); a flow key's value is 0."""
    if key is None:
        return False, False, 0
    if key == "flow":
        return True, True, 0
    return True, False, key


def tunnel_get_config(config: TunnelConfig) -> dict[str, str]:
    """OVS's get_tunnel_config(): the options as the netdev reports them back.

    This is what ``dpif/show`` prints (sorted), so defaults are left out,
    ``key`` stands for equal ``in_key`` and ``out_key``, keys are decimal and
    ``tos`` is hexadecimal.
    """
    out: dict[str, str] = {}
    out["remote_ip"] = "flow" if config.remote_ip == "flow" else _format_ip(config.remote_ip)
    if config.local_ip is not None:
        out["local_ip"] = "flow" if config.local_ip == "flow" else _format_ip(config.local_ip)
    in_present, in_flow, in_value = key_state(config.in_key)
    out_present, out_flow, out_value = key_state(config.out_key)
    if in_flow and out_flow:
        out["key"] = "flow"
    elif in_present and out_present and in_value == out_value:
        # OVS compares the stored values, and a flow key's is 0, so in_key=flow
        # with out_key=0 prints as key=0.
        out["key"] = str(in_value)
    else:
        if in_present:
            out["in_key"] = "flow" if in_flow else str(in_value)
        if out_present:
            out["out_key"] = "flow" if out_flow else str(out_value)
    if config.ttl == "inherit":
        out["ttl"] = "inherit"
    elif config.ttl != DEFAULT_TTL:
        out["ttl"] = str(config.ttl)
    if config.tos == "inherit":
        out["tos"] = "inherit"
    elif config.tos:
        out["tos"] = f"0x{config.tos:x}"
    if config.dst_port and config.dst_port != DEFAULT_DST_PORT[config.type]:
        out["dst_port"] = str(config.dst_port)
    if config.csum:
        out["csum"] = "true"
    if config.seq:
        out["seq"] = "true"
    if config.packet_type != "legacy_l2":
        out["packet_type"] = config.packet_type
    if not config.df_default:
        out["df_default"] = "false"
    if config.egress_pkt_mark is not None:
        out["egress_pkt_mark"] = str(config.egress_pkt_mark)
    return out


def format_dpif_show(config: TunnelConfig) -> str:
    """What ``dpif/show`` prints in the port's parentheses.

    For example ``vxlan: key=123, remote_ip=192.0.2.92``: the type, then
    :func:`tunnel_get_config` sorted by name.
    """
    options = tunnel_get_config(config)
    pairs = ", ".join(f"{k}={options[k]}" for k in sorted(options, key=lambda k: k.encode()))
    return f"{config.type}: {pairs}" if pairs else config.type
