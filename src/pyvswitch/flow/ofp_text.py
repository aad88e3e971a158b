"""The OpenFlow text form of matches and flows, as ovs-ofctl reads and prints it.

``tcp,in_port=1,dl_vlan=10,nw_src=192.0.2.0/24,tp_dst=80``: comma- or
space-separated ``field=value[/mask]`` items and protocol shorthands (``ip``,
``tcp6``, ``arp``...). Parsing checks every value and every field's
prerequisites (``tp_dst`` needs a TCP, UDP or SCTP match) and refuses what is
wrong with a message naming it; where ovs-ofctl would silently truncate an
out-of-range value, we refuse it instead. Printing follows Open vSwitch's
``match_format()``: its field order, its shorthands, and its normalisations
(``dl_vlan`` for a tag match, CIDR prefixes, ``nw_frag`` words, TCP flag names).

``tun_metadata0`` .. ``tun_metadata63`` (Geneve options, once a bridge's TLV
map names them) are read as ovs-ofctl reads them, without the map: a value
is as long as its significant bytes (``0xa`` is one byte), a mask may be
given, and the field alone (``tun_metadata0``) matches only the option's
presence. The switch then checks them against its map
(:mod:`pyvswitch.ofproto.tlv_map`). Such a match also requires the field
present (``tun_md_present``), and printing shows ``tun_metadata0=NP`` where
a megaflow requires it absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvswitch.flow.layout import (
    FIELDS,
    FRAG_ANY,
    FRAG_LATER,
    OFPP_LOCAL,
    TNL_F_KEY,
    TNL_F_OAM,
    TUN_METADATA_NUM,
    TUN_METADATA_TOT_SIZE,
    TUNNEL_FIELDS,
    VLAN_CFI,
    VLAN_PCP_MASK,
    VLAN_VID_MASK,
)
from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.packet.addr import ip4_to_bytes, ip6_to_bytes, ip6_to_str, mac_to_bytes

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from pyvswitch.flow.flow import Flow

ETH_IP = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
ETH_RARP = 0x8035

# -- prerequisites -----------------------------------------------------------


def _dl(m: Match) -> int | None:
    value, mask = m.get("dl_type")
    return value if mask == 0xFFFF else None


def _proto(m: Match) -> int | None:
    value, mask = m.get("nw_proto")
    return value if mask == 0xFF else None


def _is_ip(m: Match) -> bool:
    return _dl(m) in (ETH_IP, ETH_IPV6)


def _is_l4(m: Match, *protos: int) -> bool:
    # A later fragment carries no L4 header, so OVS refuses L4 fields there.
    return _is_ip(m) and _proto(m) in protos and not m.get("nw_frag")[0] & FRAG_LATER


def _icmp_type(m: Match) -> int | None:
    value, mask = m.get("tp_src")
    return value if mask & 0xFF == 0xFF else None


def _is_icmp(m: Match) -> bool:
    if m.get("nw_frag")[0] & FRAG_LATER:
        return False
    return (_dl(m) == ETH_IP and _proto(m) == 1) or (_dl(m) == ETH_IPV6 and _proto(m) == 58)


def _is_nd(m: Match, *types: int) -> bool:
    return _dl(m) == ETH_IPV6 and _is_icmp(m) and _icmp_type(m) in types


#: name -> (check, what to say when it fails)
PREREQS: dict[str, tuple[Callable[[Match], bool], str]] = {
    "ip4": (lambda m: _dl(m) == ETH_IP, "ip"),
    "ip6": (lambda m: _dl(m) == ETH_IPV6, "ipv6"),
    "ip": (_is_ip, "ip or ipv6"),
    "arp": (lambda m: _dl(m) in (ETH_ARP, ETH_RARP), "arp or rarp"),
    # OpenFlow 1.0's nw_src, nw_dst and nw_proto mean arp_spa, arp_tpa and
    # arp_op in an ARP flow, as in Open vSwitch (they share the storage).
    "ip4_arp": (lambda m: _dl(m) in (ETH_IP, ETH_ARP, ETH_RARP), "ip, arp or rarp"),
    "ip_arp": (lambda m: _is_ip(m) or _dl(m) in (ETH_ARP, ETH_RARP), "ip, ipv6, arp or rarp"),
    "tp": (lambda m: _is_l4(m, 6, 17, 132), "tcp, udp or sctp, not a later fragment"),
    "tcp": (lambda m: _is_l4(m, 6), "tcp or tcp6, not a later fragment"),
    "icmp": (_is_icmp, "icmp or icmp6, not a later fragment"),
    "nd": (lambda m: _is_nd(m, 135, 136), "icmp6 with icmp_type=135 or 136"),
    "nd_ns": (lambda m: _is_nd(m, 135), "icmp6 with icmp_type=135"),
    "nd_na": (lambda m: _is_nd(m, 136), "icmp6 with icmp_type=136"),
}


# -- fields ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaField:
    """One field as OpenFlow users name it, mapped onto the key's storage.

    ``bits`` bits at ``shift`` inside storage field ``storage``; ``kind``
    says how values are written (mac, ip4, ip6, dec, hex, port, frag, flags,
    vid, pcp) and ``hexw`` the digits hex values print with.
    """

    name: str
    storage: str
    kind: str
    bits: int
    shift: int = 0
    prereq: str | None = None
    maskable: bool = True
    hexw: int = 0


_FIELD_LIST = [
    MetaField("in_port", "in_port", "port", 32, maskable=False),
    MetaField("dl_src", "dl_src", "mac", 48),
    MetaField("dl_dst", "dl_dst", "mac", 48),
    MetaField("dl_type", "dl_type", "hex", 16, maskable=False, hexw=4),
    MetaField("vlan_tci", "vlan_tci", "hex", 16, hexw=4),
    MetaField("dl_vlan", "vlan_tci", "vid", 16, maskable=False),
    MetaField("dl_vlan_pcp", "vlan_tci", "pcp", 3, shift=13, maskable=False),
    # The inner tag of a QinQ frame. ovs-ofctl only prints these three; we
    # also read them, so that every match we print can be read back.
    MetaField("vlan_tci1", "vlan_tci1", "hex", 16, hexw=4),
    MetaField("dl_vlan1", "vlan_tci1", "vid", 16, maskable=False),
    MetaField("dl_vlan_pcp1", "vlan_tci1", "pcp", 3, shift=13, maskable=False),
    MetaField("nw_src", "nw_src", "ip4", 32, prereq="ip4_arp"),
    MetaField("nw_dst", "nw_dst", "ip4", 32, prereq="ip4_arp"),
    MetaField("ipv6_src", "ipv6_src", "ip6", 128, prereq="ip6"),
    MetaField("ipv6_dst", "ipv6_dst", "ip6", 128, prereq="ip6"),
    MetaField("ipv6_label", "ipv6_label", "hex", 20, prereq="ip6", hexw=5),
    MetaField("nw_proto", "nw_proto", "dec", 8, prereq="ip_arp", maskable=False),
    MetaField("nw_tos", "nw_tos", "dec", 8, prereq="ip", maskable=False),
    MetaField("ip_dscp", "nw_tos", "dec", 6, shift=2, prereq="ip", maskable=False),
    MetaField("nw_ecn", "nw_tos", "dec", 2, prereq="ip", maskable=False),
    MetaField("nw_ttl", "nw_ttl", "dec", 8, prereq="ip", maskable=False),
    MetaField("nw_frag", "nw_frag", "frag", 2, prereq="ip"),
    MetaField("arp_op", "nw_proto", "dec", 8, prereq="arp", maskable=False),
    MetaField("arp_spa", "nw_src", "ip4", 32, prereq="arp"),
    MetaField("arp_tpa", "nw_dst", "ip4", 32, prereq="arp"),
    MetaField("arp_sha", "arp_sha", "mac", 48, prereq="arp"),
    MetaField("arp_tha", "arp_tha", "mac", 48, prereq="arp"),
    MetaField("tp_src", "tp_src", "dec", 16, prereq="tp"),
    MetaField("tp_dst", "tp_dst", "dec", 16, prereq="tp"),
    MetaField("tcp_flags", "tcp_flags", "flags", 12, prereq="tcp"),
    MetaField("icmp_type", "tp_src", "dec", 8, prereq="icmp", maskable=False),
    MetaField("icmp_code", "tp_dst", "dec", 8, prereq="icmp", maskable=False),
    MetaField("nd_target", "nd_target", "ip6", 128, prereq="nd"),
    MetaField("nd_sll", "arp_sha", "mac", 48, prereq="nd_ns"),
    MetaField("nd_tll", "arp_tha", "mac", 48, prereq="nd_na"),
    MetaField("tun_id", "tun_id", "hex", 64),
    MetaField("tun_src", "tun_src", "ip4", 32),
    MetaField("tun_dst", "tun_dst", "ip4", 32),
    MetaField("tun_ipv6_src", "tun_ipv6_src", "ip6", 128),
    MetaField("tun_ipv6_dst", "tun_ipv6_dst", "ip6", 128),
    # OpenFlow reaches only the public tunnel flags (OAM, bit 0); the others
    # (df, csum, key) describe the encapsulation and are the datapath's.
    MetaField("tun_flags", "tun_flags", "tunflags", 1),
    # Geneve options by their TLV map: 124 bytes, the largest option, as in
    # Open vSwitch; the map says how many of them an option really has.
    *(MetaField(f"tun_metadata{i}", f"tun_metadata{i}", "tunmd", 992) for i in range(64)),
    MetaField("metadata", "metadata", "hex", 64),
    *(MetaField(f"reg{i}", f"reg{i}", "hex", 32) for i in range(16)),
]

#: Every field by its canonical name and by each alias ovs-ofctl accepts.
META_FIELDS: dict[str, MetaField] = {f.name: f for f in _FIELD_LIST}
_ALIASES = {
    "eth_src": "dl_src",
    "eth_dst": "dl_dst",
    "eth_type": "dl_type",
    "ip_src": "nw_src",
    "ip_dst": "nw_dst",
    "ip_proto": "nw_proto",
    "ip_ecn": "nw_ecn",
    "nw_tos_shifted": "ip_dscp",
    "ip_frag": "nw_frag",
    "tcp_src": "tp_src",
    "tcp_dst": "tp_dst",
    "udp_src": "tp_src",
    "udp_dst": "tp_dst",
    "sctp_src": "tp_src",
    "sctp_dst": "tp_dst",
    "icmpv6_type": "icmp_type",
    "icmpv6_code": "icmp_code",
    "tunnel_id": "tun_id",
    "vlan_pcp": "dl_vlan_pcp",
}
for _alias, _target in _ALIASES.items():
    META_FIELDS[_alias] = META_FIELDS[_target]
# Aliases that carry a stricter prerequisite than the field they name.
_ALIAS_PREREQ = {
    "tcp_src": "tcp",
    "tcp_dst": "tcp",
}

#: Protocol shorthands: name -> (dl_type, nw_proto or None).
SHORTHANDS: dict[str, tuple[int, int | None]] = {
    "ip": (ETH_IP, None),
    "ipv4": (ETH_IP, None),
    "icmp": (ETH_IP, 1),
    "tcp": (ETH_IP, 6),
    "udp": (ETH_IP, 17),
    "sctp": (ETH_IP, 132),
    "ipv6": (ETH_IPV6, None),
    "icmp6": (ETH_IPV6, 58),
    "tcp6": (ETH_IPV6, 6),
    "udp6": (ETH_IPV6, 17),
    "sctp6": (ETH_IPV6, 132),
    "arp": (ETH_ARP, None),
    "rarp": (ETH_RARP, None),
}
_SHORT_NAMES: dict[tuple[int, int | None], str] = {
    (ETH_IP, 1): "icmp",
    (ETH_IP, 6): "tcp",
    (ETH_IP, 17): "udp",
    (ETH_IP, 132): "sctp",
    (ETH_IPV6, 58): "icmp6",
    (ETH_IPV6, 6): "tcp6",
    (ETH_IPV6, 17): "udp6",
    (ETH_IPV6, 132): "sctp6",
}

# Open vSwitch's match fields and shorthands that pyvswitch does not have: a
# flow using one is refused as not supported rather than as a typing mistake
# ("unknown keyword"), and Open vSwitch's own spelling of each is kept.
_UNSUPPORTED_FIELDS = frozenset(
    {
        "conj_id",
        "recirc_id",
        "dp_hash",
        "ct_state",
        "ct_zone",
        "ct_mark",
        "ct_label",
        "ct_nw_src",
        "ct_nw_dst",
        "ct_ipv6_src",
        "ct_ipv6_dst",
        "ct_nw_proto",
        "ct_tp_src",
        "ct_tp_dst",
        "tun_tos",
        "tun_ttl",
        "tun_gbp_id",
        "tun_gbp_flags",
        "tun_erspan_ver",
        "tun_erspan_idx",
        "tun_erspan_dir",
        "tun_erspan_hwid",
        "tun_gtpu_flags",
        "tun_gtpu_msgtype",
        "in_port_oxm",
        "skb_priority",
        "pkt_mark",
        "actset_output",
        "packet_type",
        "vlan_vid",
        "mpls_label",
        "mpls_tc",
        "mpls_bos",
        "mpls_ttl",
        "nd_reserved",
        "nd_options_type",
        "nsh_flags",
        "nsh_ttl",
        "nsh_mdtype",
        "nsh_np",
        "nsh_spi",
        "nsp",
        "nsh_si",
        "nsi",
        *(f"nsh_c{i}" for i in range(1, 5)),
        *(f"nshc{i}" for i in range(1, 5)),
        *(f"xreg{i}" for i in range(8)),
        *(f"xxreg{i}" for i in range(4)),
    }
)
_UNSUPPORTED_SHORTHANDS = frozenset({"mpls", "mplsm"})
# What to use instead, where pyvswitch has another way to say it.
_INSTEAD = {
    "vlan_vid": "use dl_vlan or vlan_tci",
    "in_port_oxm": "use in_port",
    # Open vSwitch 3.1 knows these names but has no OpenFlow encoding for them.
    "tun_tos": "Open vSwitch cannot match it in OpenFlow either",
    "tun_ttl": "Open vSwitch cannot match it in OpenFlow either",
    **{f"xreg{i}": f"use reg{2 * i} and reg{2 * i + 1}" for i in range(8)},
}


def unsupported_keyword(name: str) -> str | None:
    """Why a match keyword of Open vSwitch's is refused here, or None if it is not one."""
    if name in _UNSUPPORTED_SHORTHANDS:
        return f"{name}: protocol not supported by pyvswitch"
    if name not in _UNSUPPORTED_FIELDS:
        return None
    instead = _INSTEAD.get(name)
    return f"{name}: field not supported by pyvswitch" + (f" ({instead})" if instead else "")


#: OpenFlow's reserved port names (OpenFlow 1.0 numbering, as OVS prints them).
PORT_NAMES: dict[str, int] = {
    "IN_PORT": 0xFFF8,
    "TABLE": 0xFFF9,
    "NORMAL": 0xFFFA,
    "FLOOD": 0xFFFB,
    "ALL": 0xFFFC,
    "CONTROLLER": 0xFFFD,
    "LOCAL": OFPP_LOCAL,
    "ANY": 0xFFFF,
    "NONE": 0xFFFF,
}
_PORT_PRINT = {v: k for k, v in PORT_NAMES.items() if k != "NONE"}
_PORT_PRINT[0xFFFF] = "ANY"

TCP_FLAG_NAMES = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns")

# (name, mask, value) in the order Open vSwitch searches them.
_FRAGS = (
    ("no", FRAG_ANY | FRAG_LATER, 0),
    ("first", FRAG_ANY | FRAG_LATER, FRAG_ANY),
    ("later", FRAG_ANY | FRAG_LATER, FRAG_ANY | FRAG_LATER),
    ("no", FRAG_ANY, 0),
    ("yes", FRAG_ANY, FRAG_ANY),
    ("not_later", FRAG_LATER, 0),
    ("later", FRAG_LATER, FRAG_LATER),
)


# -- value parsing -------------------------------------------------------------


def c_int(text: str) -> int:
    """Read an integer as C's ``strtol(..., 0)`` does, as ovs-ofctl does.

    Decimal, ``0x`` hexadecimal, and a leading ``0`` for octal (``010`` is 8).
    Raises ValueError for anything else, including a sign.
    """
    body = text.lower()
    if body.startswith("0x"):
        digits = body[2:]
        if not digits or any(c not in "0123456789abcdef" for c in digits):
            raise ValueError(text)
        return int(digits, 16)
    if not body.isdigit():
        raise ValueError(text)
    return int(body, 8) if len(body) > 1 and body[0] == "0" else int(body, 10)


#: What C's strtol() takes in base 10, with nothing after it.
_C_DECIMAL = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+")
_C_INT_MIN, _C_INT_MAX = -(1 << 31), (1 << 31) - 1


def str_to_int(text: str) -> int | None:
    """``text`` read as a C int the way Open vSwitch's str_to_int does; None when it is not one.

    Leading white space and a sign are allowed and digits are decimal
    (``010`` is ten); anything after them, or a value out of ``int`` range,
    makes it no number at all (how OVS reads integer options and
    ``other_config`` values).
    """
    if _C_DECIMAL.fullmatch(text) is None:
        return None
    value = int(text)
    return value if _C_INT_MIN <= value <= _C_INT_MAX else None


def _parse_int(text: str, field: MetaField, label: str, what: str, full: str) -> int:
    """Read ``text`` as an integer for ``field`` (called ``label`` by the user).

    ``what`` is "value" or "mask", ``full`` the whole ``value/mask`` text,
    both for the error message.
    """
    try:
        value = c_int(text)
    except ValueError:
        raise FlowParseError(f"{full}: bad syntax for {label} {what}") from None
    if value >> field.bits:
        size = f"{field.bits // 8}-byte" if field.bits % 8 == 0 else f"{field.bits}-bit"
        raise FlowParseError(f"{full}: {what} too large for {size} field {label}")
    return value


def _prefix_mask(bits: int, width: int, text: str, family: str) -> int:
    if not 0 <= bits <= width:
        raise FlowParseError(
            f"{text}: {family} network prefix bits not between 0 and {width}, inclusive"
        )
    return ((1 << bits) - 1) << (width - bits)


def _parse_addr(text: str, conv: Callable[[str], bytes]) -> int:
    try:
        return int.from_bytes(conv(text), "big")
    except ValueError as exc:
        raise FlowParseError(str(exc)) from None


def parse_field_value(
    field: MetaField, text: str, port_names: Mapping[str, int] | None, label: str
) -> tuple[int, int]:
    """Parse ``value[/mask]`` for ``field`` into (value, mask) at the field's width."""
    full = (1 << field.bits) - 1
    value_text, slash, mask_text = text.partition("/")
    if slash and not field.maskable:
        raise FlowParseError(f"{text}: field {label} does not support masking")
    kind = field.kind
    if kind == "mac":
        value = _parse_addr(value_text, mac_to_bytes)
        mask = _parse_addr(mask_text, mac_to_bytes) if slash else full
    elif kind in ("ip4", "ip6"):
        width, conv, family = (
            (32, ip4_to_bytes, "IPv4") if kind == "ip4" else (128, ip6_to_bytes, "IPv6")
        )
        value = _parse_addr(value_text, conv)
        if not slash:
            mask = full
        elif mask_text.isdigit():
            mask = _prefix_mask(int(mask_text), width, text, family)
        else:
            try:
                mask = int.from_bytes(conv(mask_text), "big")
            except ValueError:
                raise FlowParseError(
                    f"{text}: invalid {family.replace('v4', '')} address"
                ) from None
    elif kind == "port":
        value = _parse_port(value_text, port_names)
        mask = full
    elif kind == "frag":
        for name, fmask, fvalue in _FRAGS:
            if name == text:
                return fvalue, fmask
        raise FlowParseError(
            f'{text}: unknown fragment type (valid types are "no", "yes", "first", '
            '"later", "not_later")'
        )
    elif kind == "flags":
        return parse_tcp_flags(text, field)
    elif kind == "tunflags":
        value, given = parse_flags(text, TNL_FLAG_NAMES, "tunnel", _TNL_F_PUBLIC)
        # Unmasked flags set the whole field: what "whole" is depends on the
        # width the caller reads at (the public bit in a match, 16 bits in
        # set_field, which tells an exact write from a masked one).
        mask = full if given is None else given
        return value & mask, mask
    else:
        value = _parse_int(value_text, field, label, "value", text)
        mask = _parse_int(mask_text, field, label, "mask", text) if slash else full
    return value & mask, mask


def _parse_port(text: str, port_names: Mapping[str, int] | None) -> int:
    if text in PORT_NAMES:
        return PORT_NAMES[text]
    if port_names and text in port_names:
        return port_names[text]
    if text.isdigit():
        port = int(text)
        # OpenFlow 1.0 numbers above 0xff00 are reserved: only the names above
        # may stand for them, and a decimal that equals one of them is read
        # as that name (ovs-ofctl prints in_port=65534 as LOCAL).
        if port < 0xFF00 or port in _PORT_PRINT:
            return port
    raise FlowParseError(f"{text}: invalid or unknown port for in_port")


def parse_tcp_flags(text: str, field: MetaField) -> tuple[int, int]:
    full = (1 << field.bits) - 1
    if text[:1] in "+-":
        value = mask = 0
        for token in _split_signed(text):
            sign, name = token[0], token[1:]
            bit = _tcp_flag_bit(name, text)
            if mask & bit:
                raise FlowParseError(f"{name}: Each TCP flag can be specified only once")
            mask |= bit
            if sign == "+":
                value |= bit
        return value, mask
    if text[:1].isdigit():
        vtext, slash, mtext = text.partition("/")
        try:
            value = c_int(vtext)
            mask = c_int(mtext) if slash else full
        except ValueError:
            raise FlowParseError(f"{text}: unknown TCP flag(s)") from None
        if value > full or mask > full:
            raise FlowParseError(f"{text}: unknown TCP flag(s)")
        return value & mask, mask
    value = 0
    for name in text.split("|"):
        value |= _tcp_flag_bit(name, text)
    return value, full


#: The tunnel flags by bit, as Open vSwitch names them (``flow_tun_flag_to_string()``).
TNL_FLAG_NAMES = ("oam", "df", "csum", "key")
#: Every tunnel flag a match or the datapath shows (OVS's FLOW_TNL_F_MASK).
TNL_F_MASK = 0xF
# Matches and set_field reach only the public flags (FLOW_TNL_PUB_F_MASK).
_TNL_F_PUBLIC = TNL_F_OAM
# A number as C's strtoll(..., 0) reads one: hex, octal or decimal, signed.
_C_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def parse_flags(
    text: str, names: Sequence[str], what: str, allowed: int
) -> tuple[int, int | None]:
    """Read flags as Open vSwitch's ``parse_flags()`` does: (value, mask or None).

    Three forms: ``VALUE/MASK`` in numbers, ``+name-name`` (the flags named
    are matched, set or unset, the others wildcarded), and ``name|name|number``
    (exactly these flags: the mask is None, meaning the whole field).
    ``names`` holds the flag names by bit, ``what`` is the word the messages
    use ("tunnel"), ``allowed`` the bits that may be given.
    """
    value_text, slash, mask_text = text.partition("/")
    if slash:
        try:
            value, mask = _c_signed(value_text), _c_signed(mask_text)
        except ValueError:
            pass
        else:
            if value & ~allowed or mask & ~allowed:
                raise FlowParseError(f"{text}: unknown {what} flag(s)")
            return value, mask
    if text[:1] in ("+", "-"):
        return _parse_signed_flags(text, names, what, allowed)
    value = 0
    pos = 0
    while pos < len(text):
        number = _C_NUMBER.match(text, pos)
        if number is not None:
            bits = _c_signed(number.group())
            if bits & ~allowed:
                raise FlowParseError(f"{text}: unknown {what} flag(s)")
            value |= bits
            pos = number.end() + (text[number.end() : number.end() + 1] == "|")
            continue
        for bit, name in _named_bits(names):
            after = pos + len(name)
            if text.startswith(name, pos) and text[after : after + 1] in ("|", ""):
                if not bit & allowed:
                    raise FlowParseError(f"{text}: unknown {what} flag(s)")
                value |= bit
                pos = after + (text[after : after + 1] == "|")
                break
        else:
            raise FlowParseError(f"{text}: unknown {what} flag(s)")
    return value, None


def _parse_signed_flags(
    text: str, names: Sequence[str], what: str, allowed: int
) -> tuple[int, int]:
    """``+name-name``: the flags named, each set (+) or unset (-).

    Each step starts at a sign: the text does, and a name is taken only when
    a sign or the end follows it.
    """
    value = mask = 0
    pos = 0
    while pos < len(text):
        sign = text[pos]
        pos += 1
        named = next(
            (
                (bit, pos + len(name))
                for bit, name in _named_bits(names)
                if text.startswith(name, pos)
                and text[pos + len(name) : pos + len(name) + 1] in ("+", "-", "")
            ),
            None,
        )
        if named is None:
            raise FlowParseError(f"{text[pos:]}: unknown {what} flag(s)")
        bit, after = named
        if not bit & allowed:
            raise FlowParseError(f"{text[pos:]}: unknown {what} flag(s)")
        if mask & bit:
            raise FlowParseError(f"{text[pos:]}: Each {what} flag can be specified only once")
        mask |= bit
        if sign == "+":
            value |= bit
        pos = after
    return value, mask


def _named_bits(names: Sequence[str]) -> list[tuple[int, str]]:
    return [(1 << i, name) for i, name in enumerate(names)]


def _c_signed(text: str) -> int:
    """C's ``strtol(..., 0)`` over the whole text, a sign allowed; ValueError otherwise."""
    if _C_NUMBER.fullmatch(text) is None:
        raise ValueError(text)
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    return sign * c_int(body)


def format_flags(value: int, names: Sequence[str]) -> str:
    """Flags as Open vSwitch's ``format_flags()`` prints them: ``oam|key``, ``0`` for none.

    Bits without a name are printed together as one hexadecimal number, last.
    """
    if not value:
        return "0"
    parts = []
    unnamed = 0
    for i in range(value.bit_length()):
        bit = 1 << i
        if value & bit:
            if i < len(names):
                parts.append(names[i])
            else:
                unnamed |= bit
    if unnamed:
        parts.append(f"0x{unnamed:x}")
    return "|".join(parts)


def format_flags_masked(value: int, mask: int, max_mask: int, names: Sequence[str]) -> str:
    """Open vSwitch's ``format_flags_masked()``: ``+df-csum``, or plain flags when exact."""
    if mask == max_mask:
        return format_flags(value, names)
    if not mask:
        return "0/0"
    out = []
    for i in range(mask.bit_length()):
        bit = 1 << i
        if mask & bit:
            name = names[i] if i < len(names) else "[Unknown]"
            out.append(("+" if value & bit else "-") + name)
    return "".join(out)


def _split_signed(text: str) -> list[str]:
    tokens: list[str] = []
    for ch in text:
        if ch in "+-":
            tokens.append(ch)
        elif not tokens:
            raise FlowParseError(f"{text}: unknown TCP flag(s)")
        else:
            tokens[-1] += ch
    return tokens


def _tcp_flag_bit(name: str, text: str) -> int:
    if name in TCP_FLAG_NAMES:
        return 1 << TCP_FLAG_NAMES.index(name)
    if name.startswith("[") and name.endswith("]"):
        try:
            bit = int(name[1:-1], 16)
        except ValueError:
            bit = 0
        if bit and bit & (bit - 1) == 0 and bit <= 0x800:
            return bit
    raise FlowParseError(f"{text}: unknown TCP flag(s)")


# -- applying fields to a match ------------------------------------------------


def _apply(match: Match, field: MetaField, value: int, mask: int) -> Match:
    if field.kind == "vid":
        if value == 0xFFFF:
            # dl_vlan=0xffff is OpenFlow 1.0's "no VLAN tag".
            return match.with_field(field.storage, 0, 0xFFFF)
        if value > VLAN_VID_MASK:
            # ovs-ofctl silently keeps the low 12 bits; a wrong VLAN is worse
            # than a refused flow.
            raise FlowParseError(f"{value}: VLAN ID out of range 0..4095 in {field.name}")
        return match.with_field(field.storage, value | VLAN_CFI, VLAN_VID_MASK | VLAN_CFI)
    if field.kind == "pcp":
        return match.with_field(field.storage, (value << 13) | VLAN_CFI, VLAN_PCP_MASK | VLAN_CFI)
    if field.name == "nw_tos":
        # nw_tos is the DSCP part of the ToS byte, written unshifted. ovs-ofctl
        # drops low bits silently; we refuse them, so nothing is lost unseen.
        if value & 0x03:
            raise FlowParseError(
                f"{value}: nw_tos holds the DSCP bits of the ToS byte, so it must be a "
                "multiple of 4 (use nw_ecn for the low two bits)"
            )
        return match.with_field("nw_tos", value, 0xFC)
    if field.shift == 0 and field.bits == FIELDS[field.storage].bits:
        # Setting a whole field replaces what an earlier item set (the last
        # one wins, as in ovs-ofctl); fields that share storage (nw_tos and
        # nw_ecn, dl_vlan and dl_vlan_pcp) combine instead.
        match = match.without_field(field.storage)
    return match.with_field(field.storage, value << field.shift, mask << field.shift)


def with_protocol(match: Match, dl_type: int, proto: int | None) -> Match:
    """``match`` with a protocol shorthand's fields (``tcp``: dl_type and nw_proto)."""
    match = match.with_field("dl_type", dl_type)
    return match if proto is None else match.with_field("nw_proto", proto)


def parse_match(
    text: str, port_names: Mapping[str, int] | None = None, extra: Iterable[str] = ()
) -> tuple[Match, dict[str, str]]:
    """Parse an OpenFlow match string.

    Items in ``extra`` (such as ``priority`` or ``actions`` for a flow) are not
    match fields: they are returned, unparsed, in the dict. Raises
    :class:`FlowParseError` naming the bad keyword, value or prerequisite.
    """
    extra_names = set(extra)
    others: dict[str, str] = {}
    match = Match()
    used: list[tuple[str, MetaField]] = []
    tun_md = _TunMetadataSpace()
    for item in text.replace(",", " ").split():
        name, eq, value_text = item.partition("=")
        name = name.strip()
        if name in extra_names:
            others[name] = value_text
            continue
        refusal = unsupported_keyword(name)
        if refusal is not None:
            raise FlowParseError(refusal)
        field = META_FIELDS.get(name)
        if field is not None and field.kind == "tunmd" and (not eq or value_text):
            match = tun_md.apply(match, field, value_text if eq else None)
            continue
        if not eq:
            if name not in SHORTHANDS:
                if name in META_FIELDS:
                    raise FlowParseError(f"field {name} missing value")
                raise FlowParseError(f"unknown keyword {name}")
            match = with_protocol(match, *SHORTHANDS[name])
            continue
        if field is None:
            raise FlowParseError(f"unknown keyword {name}")
        if not value_text:
            raise FlowParseError(f"field {name} missing value")
        value, mask = parse_field_value(field, value_text, port_names, name)
        match = _apply(match, field, value, mask)
        used.append((name, field))
    for name, field in used:
        prereq = _ALIAS_PREREQ.get(name, field.prereq)
        if prereq is not None:
            check, needs = PREREQS[prereq]
            if not check(match):
                raise FlowParseError(f"{name}: prerequisites not met (the match needs {needs})")
    return match, others


_SLOT_BITS = FIELDS["tun_metadata0"].bits
#: The slot mask of an exact match on a tun_metadata field (whatever its mapped length).
TUN_METADATA_EXACT = (1 << _SLOT_BITS) - 1


def _field_len(value: int) -> int:
    """The bytes a value takes once its leading zero bytes are gone (OVS's ``field_len()``)."""
    return (value.bit_length() + 7) // 8


class _TunMetadataSpace:
    """The option space a match's ``tun_metadataN`` items use, as ovs-ofctl counts it.

    Without the switch's TLV map, ovs-ofctl gives each field as many bytes
    as its value (or mask) needs, and refuses a match that needs more than
    the 256 bytes a map has, or names one field twice.
    """

    def __init__(self) -> None:
        self.used = 0
        self.seen: set[str] = set()

    def apply(self, match: Match, field: MetaField, text: str | None) -> Match:
        """``match`` with ``field`` set from ``text`` (None: the field alone, presence only)."""
        name = field.name
        value = mask = 0
        if text is not None:
            value, mask = parse_field_value(field, text, None, name)
            if mask == TUN_METADATA_EXACT:
                length = _field_len(value)
            else:
                length = max(_field_len(value), _field_len(mask))
        else:
            length = 0
        if self.used + length > TUN_METADATA_TOT_SIZE:
            raise FlowParseError(
                f"field {name} exceeds maximum size for tunnel metadata "
                f"(used {self.used + length}, max {TUN_METADATA_TOT_SIZE})"
            )
        if name in self.seen:
            raise FlowParseError(f"field {name} set multiple times")
        self.seen.add(name)
        self.used += length
        index = int(name.removeprefix("tun_metadata"))
        present = 1 << index
        match = match.with_field(field.storage, value & mask, mask)
        old_value, old_mask = match.get("tun_md_present")
        return match.with_field("tun_md_present", old_value | present, old_mask | present)


# -- printing ----------------------------------------------------------------


def _fmt_tun_metadata(match: Match, out: list[str]) -> None:
    """``tun_metadataN=...`` for each field whose presence the match looks at.

    As Open vSwitch's ``tun_metadata_match_format()``: ``=NP`` when the field
    must be absent, nothing after the name when only its presence matters,
    else the value (leading zero bytes left out) and any mask but a full one.
    """
    present, present_mask = match.get("tun_md_present")
    if not present_mask:
        return
    for index in range(TUN_METADATA_NUM):
        if not present_mask >> index & 1:
            continue
        name = f"tun_metadata{index}"
        if not present >> index & 1:
            out.append(f"{name}=NP")
            continue
        value, mask = match.get(name)
        if not mask:
            out.append(name)
        elif mask == TUN_METADATA_EXACT:
            out.append(f"{name}={c_hex(value)}")
        else:
            out.append(f"{name}={c_hex(value)}/{c_hex(mask)}")


def _fmt_ip4(value: int, mask: int) -> str:
    text = f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return text + _fmt_prefix(mask, 32, lambda m: _fmt_ip4(m, 0xFFFFFFFF))


def _fmt_ip6(value: int, mask: int) -> str:
    text = ip6_to_str(value.to_bytes(16, "big"))
    return text + _fmt_prefix(mask, 128, lambda m: ip6_to_str(m.to_bytes(16, "big")))


def _fmt_prefix(mask: int, width: int, fmt: Callable[[int], str]) -> str:
    full = (1 << width) - 1
    if mask == full:
        return ""
    inverted = ~mask & full
    if inverted & (inverted + 1) == 0:
        return f"/{width - inverted.bit_length()}"
    return "/" + fmt(mask)


def _fmt_mac(value: int, mask: int) -> str:
    text = ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))
    if mask == (1 << 48) - 1:
        return text
    return text + "/" + ":".join(f"{b:02x}" for b in mask.to_bytes(6, "big"))


def _fmt_int(field: MetaField, value: int, mask: int) -> str:
    full = (1 << field.bits) - 1
    if field.kind == "hex":
        if field.hexw:
            text = f"0x{value:0{field.hexw}x}"
            return text if mask == full else f"{text}/0x{mask:0{field.hexw}x}"
        # C's %#x, as OVS prints registers, metadata and tun_id: zero is "0".
        return c_hex(value) if mask == full else f"{c_hex(value)}/{c_hex(mask)}"
    return str(value) if mask == full else f"0x{value:x}/0x{mask:x}"


def c_hex(value: int) -> str:
    """C's ``%#x``, which OVS uses for many fields: zero prints as ``0``, not ``0x0``."""
    return f"{value:#x}" if value else "0"


def format_tcp_flags(value: int, mask: int) -> str:
    """TCP flags as OVS prints them: ``syn|ack`` when exact, ``+syn-ack`` when masked."""
    if mask == 0xFFF:
        if not value:
            return "0"
        names = [
            TCP_FLAG_NAMES[i] if i < len(TCP_FLAG_NAMES) else f"[{1 << i:x}]"
            for i in range(12)
            if value & (1 << i)
        ]
        return "|".join(names)
    out = []
    for i in range(12):
        bit = 1 << i
        if mask & bit:
            name = TCP_FLAG_NAMES[i] if i < len(TCP_FLAG_NAMES) else f"[{bit:x}]"
            out.append(("+" if value & bit else "-") + name)
    return "".join(out)


def _fmt_port(port: int, port_names: Mapping[int, str] | None) -> str:
    if port_names and port in port_names:
        return port_names[port]
    return _PORT_PRINT.get(port, str(port))


def _fmt_vlan(match: Match, out: list[str], suffix: str) -> bool:
    """Print one tag's match; return False when it is not matched at all."""
    value, mask = match.get("vlan_tci" + suffix)
    vid_mask = mask & VLAN_VID_MASK
    pcp_mask = mask & VLAN_PCP_MASK
    if (
        mask & VLAN_CFI
        and value & VLAN_CFI
        and vid_mask in (0, VLAN_VID_MASK)
        and pcp_mask in (0, VLAN_PCP_MASK)
        and (vid_mask or pcp_mask)
    ):
        if vid_mask:
            out.append(f"dl_vlan{suffix}={value & VLAN_VID_MASK}")
        if pcp_mask:
            out.append(f"dl_vlan_pcp{suffix}={value >> 13}")
    elif mask == 0xFFFF:
        out.append(f"vlan_tci{suffix}=0x{value:04x}")
    elif mask:
        out.append(f"vlan_tci{suffix}=0x{value:04x}/0x{mask:04x}")
    return bool(mask)


def format_match(
    match: Match,
    priority: int | None = None,
    port_names: Mapping[int, str] | None = None,
    megaflow: bool = False,
) -> str:
    """Print a match the way ovs-ofctl does (``match_format()``).

    ``priority`` is printed first when given and not the default 32768.
    ``megaflow`` adds the ``recirc_id=0,eth,`` that ofproto/trace's
    ``Megaflow:`` line starts with. An empty match prints as the empty string.
    """
    return _format_match(match, priority, port_names, megaflow=megaflow)


def _format_match(
    match: Match,
    priority: int | None = None,
    port_names: Mapping[int, str] | None = None,
    *,
    megaflow: bool = False,
    packet_tunnel: bool = False,
) -> str:
    """:func:`format_match`; ``packet_tunnel`` prints a tunnelled packet's constant fields.

    Open vSwitch's flow has tunnel fields pyvswitch does not keep (VXLAN
    group policy, ERSPAN, GTP-U); a packet's flow matches all of them, so
    ``flow_format()`` prints each, always zero, where they belong.
    """
    out: list[str] = []
    if priority is not None and priority != 32768:
        out.append(f"priority={priority}")
    if megaflow:
        out += ["recirc_id=0", "eth"]

    def put(name: str) -> None:
        field = META_FIELDS[name]
        value, mask = match.get(field.storage)
        value = (value >> field.shift) & ((1 << field.bits) - 1)
        mask = (mask >> field.shift) & ((1 << field.bits) - 1)
        if not mask:
            return
        if field.kind == "mac":
            out.append(f"{name}={_fmt_mac(value, mask)}")
        elif field.kind == "ip4":
            out.append(f"{name}={_fmt_ip4(value, mask)}")
        elif field.kind == "ip6":
            out.append(f"{name}={_fmt_ip6(value, mask)}")
        elif field.kind == "port":
            out.append(f"{name}={_fmt_port(value, port_names)}")
        else:
            out.append(f"{name}={_fmt_int(field, value, mask)}")

    dl_type = _dl(match)
    proto = _proto(match)
    skip_type = skip_proto = False
    if dl_type is not None:
        if dl_type in (ETH_IP, ETH_IPV6):
            short = _SHORT_NAMES.get((dl_type, proto)) if proto is not None else None
            if short is not None:
                out.append(short)
                skip_proto = True
            else:
                out.append("ip" if dl_type == ETH_IP else "ipv6")
            skip_type = True
        elif dl_type in (ETH_ARP, ETH_RARP):
            out.append("arp" if dl_type == ETH_ARP else "rarp")
            skip_type = True
    for i in range(16):
        put(f"reg{i}")
    for name in ("tun_id", "tun_src", "tun_dst", "tun_ipv6_src", "tun_ipv6_dst"):
        put(name)
    if packet_tunnel:
        out += ["tun_gbp_id=0", "tun_gbp_flags=0"]
    # The outer ToS and TTL are no OpenFlow fields, but a megaflow or a
    # packet matches them; OVS prints the ToS in hexadecimal without "0x".
    tos, tos_mask = match.get("tun_tos")
    if tos_mask:
        out.append(f"tun_tos={tos:x}")
    ttl, ttl_mask = match.get("tun_ttl")
    if ttl_mask:
        out.append(f"tun_ttl={ttl}")
    if packet_tunnel:
        out += ["tun_erspan_ver=0", "gtpu_flags=0", "gtpu_msgtype=0"]
    # All four flags show here (a megaflow matches df, csum and key too),
    # though OpenFlow can match only oam.
    tnl_flags, tnl_mask = match.get("tun_flags")
    if tnl_mask & TNL_F_MASK:
        text = format_flags_masked(tnl_flags, tnl_mask & TNL_F_MASK, TNL_F_MASK, TNL_FLAG_NAMES)
        out.append(f"tun_flags={text}")
    _fmt_tun_metadata(match, out)
    put("metadata")
    put("in_port")
    if _fmt_vlan(match, out, ""):
        _fmt_vlan(match, out, "1")
    put("dl_src")
    put("dl_dst")
    if not skip_type:
        put("dl_type")
    is_arp = dl_type in (ETH_ARP, ETH_RARP)
    if dl_type == ETH_IPV6:
        for name in ("ipv6_src", "ipv6_dst", "ipv6_label"):
            put(name)
    elif is_arp:
        put("arp_spa")
        put("arp_tpa")
    else:
        put("nw_src")
        put("nw_dst")
    if not skip_proto:
        put("arp_op" if is_arp else "nw_proto")
    if is_arp:
        put("arp_sha")
        put("arp_tha")
    tos, tos_mask = match.get("nw_tos")
    if tos_mask & 0xFC:
        out.append(f"nw_tos={tos & 0xFC}")
    if tos_mask & 0x03:
        out.append(f"nw_ecn={tos & 0x03}")
    put("nw_ttl")
    frag, frag_mask = match.get("nw_frag")
    if frag_mask:
        out.append("nw_frag=" + next(n for n, m, v in _FRAGS if m == frag_mask and v == frag))
    if _is_icmp(match):
        put("icmp_type")
        put("icmp_code")
        if dl_type == ETH_IPV6:
            put("nd_target")
            put("nd_sll")
            put("nd_tll")
    else:
        put("tp_src")
        put("tp_dst")
    flags, flags_mask = match.get("tcp_flags")
    if flags_mask and _is_l4(match, 6):
        out.append(f"tcp_flags={format_tcp_flags(flags, flags_mask)}")
    return ",".join(out)


def packet_mask(flow: Flow) -> int:
    """The mask of every field that describes ``flow`` as a packet.

    This is Open vSwitch's ``flow_wildcards_init_for_packet()``: the fields
    present in a packet of this kind, and the metadata that is set.
    """
    names = ["in_port", "dl_src", "dl_dst", "dl_type", "vlan_tpid", "vlan_tci"]
    if flow.vlan_tci:
        names += ["vlan_tpid1", "vlan_tci1"]
    mask = 0
    if has_tunnel(flow):
        # A tunnelled packet: all its tunnel metadata, but the tunnel ID only
        # when the tunnel carries a key; of its Geneve options, the fields
        # the bridge's map gave them (the options themselves are not fields).
        names += [n for n in TUNNEL_FIELDS if n != "tun_id" or flow.tun_flags & TNL_F_KEY]
        names = [n for n in names if n not in _GENEVE_STORAGE]
        present = flow.tun_md_present
        mask |= FIELDS["tun_md_present"].put(present)
        for index in range(TUN_METADATA_NUM):
            if present >> index & 1:
                mask |= FIELDS[f"tun_metadata{index}"].mask
    elif flow.tun_id:
        names.append("tun_id")
    for name in ("metadata", *(f"reg{i}" for i in range(16))):
        if getattr(flow, name):
            names.append(name)
    if flow.dl_type == ETH_IP:
        names += ["nw_src", "nw_dst"]
    elif flow.dl_type == ETH_IPV6:
        names += ["ipv6_src", "ipv6_dst", "ipv6_label"]
    elif flow.dl_type in (ETH_ARP, ETH_RARP):
        names += ["nw_src", "nw_dst", "nw_proto", "arp_sha", "arp_tha"]
    if flow.dl_type in (ETH_IP, ETH_IPV6):
        names += ["nw_proto", "nw_tos", "nw_ttl", "nw_frag"]
        if not flow.nw_frag & FRAG_LATER and flow.nw_proto in (1, 2, 6, 17, 58, 132):
            names += ["tp_src", "tp_dst"]
            if flow.nw_proto == 6:
                names.append("tcp_flags")
            if flow.nw_proto == 58 and flow.tp_src in (135, 136) and flow.tp_dst == 0:
                names += ["nd_target", "arp_sha", "arp_tha"]
    for name in names:
        mask |= FIELDS[name].mask
    return mask


_GENEVE_STORAGE = frozenset(("tun_md_present", "tun_gnv_opts", "tun_gnv_len"))


def has_tunnel(flow: Flow) -> bool:
    """Whether ``flow`` came out of a tunnel, that is, has a tunnel destination.

    This is Open vSwitch's ``flow_tnl_dst_is_set()``. Only then do the other
    tunnel fields count; a tunnel ID alone is metadata an action wrote.
    """
    return bool(flow.tun_dst or flow.tun_ipv6_dst)


def format_flow(flow: Flow, port_names: Mapping[int, str] | None = None) -> str:
    """Print a flow as ``ofproto/trace`` prints its ``Flow:`` line (``flow_format()``)."""
    mask = packet_mask(flow)
    if not flow.in_port:
        mask &= ~FIELDS["in_port"].mask
    match = Match.exact(flow.to_key(), mask)
    return _format_match(match, port_names=port_names, packet_tunnel=has_tunnel(flow))
