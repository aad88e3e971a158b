"""The datapath (ODP) text form of flow keys, as Open vSwitch prints and reads it.

``in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),
ipv4(src=192.0.2.1,dst=192.0.2.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)``

A packet that came out of a tunnel starts with ``tunnel(tun_id=0x7b,
src=1.1.2.92,dst=1.1.2.88,ttl=64,flags(-df-csum+key))``: its items are those
Open vSwitch's datapath key carries (a zero value is not carried, the TTL
always is), and a text without ``ttl=`` is refused as Open vSwitch refuses
it (:class:`OdpKeyError`). A Geneve packet's options follow, as the wire had
them: ``geneve({class=0xffff,type=0x80,len=4,0xa}{class=0xffff,type=0,len=4,0xb})``
(a megaflow shows each option's data under its mask, ``0xa/0xf``, and leaves
out data it does not match); they need no TLV map.

This is what ``dpctl/dump-flows`` shows for a megaflow (with ``/mask`` after
partially masked values, wildcarded values and attributes left out), and what
Open vSwitch's tests hand to ``netdev-dummy/receive`` to inject a packet; so
this module also composes a packet from a key (:func:`compose_packet`), the
way OVS's ``flow_compose()`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvswitch.flow.flow import Flow
from pyvswitch.flow.layout import (
    DL_TYPE_NONE,
    FIELDS,
    FRAG_ANY,
    FRAG_LATER,
    GENEVE_OPTS_MAX,
    KEY_BITS,
    TNL_F_CSUM,
    TNL_F_DONT_FRAGMENT,
    TNL_F_KEY,
    TNL_F_OAM,
    TUNNEL_FIELDS,
    VLAN_CFI,
)
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.ofp_text import (
    META_FIELDS,
    TNL_F_MASK,
    TNL_FLAG_NAMES,
    c_int,
    format_flags,
    format_flags_masked,
    format_tcp_flags,
    has_tunnel,
    parse_flags,
    parse_tcp_flags,
)
from pyvswitch.packet.addr import ip6_to_bytes, ip6_to_str, mac_to_bytes, mac_to_str

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_FULL = (1 << KEY_BITS) - 1

# ODP's fragment type numbers and their names; FLOW's nw_frag bits map onto them.
_FRAG_NAMES = ("no", "first", "later")
_FRAG_TO_ODP = {0: 0, FRAG_ANY: 1, FRAG_ANY | FRAG_LATER: 2, FRAG_LATER: 2}


@dataclass(frozen=True, slots=True)
class _Sub:
    """One ``name=value`` inside an attribute: its storage field and how it is written."""

    name: str
    storage: str
    kind: str  # mac, ip4, ip6, dec, hex, frag, flags
    shift: int = 0
    bits: int = 0  # 0: the whole storage field


# Attribute name -> its sub-fields, in the order OVS prints them. Attributes
# with a single unnamed value (in_port(1), eth_type(0x0800)) have one _Sub
# with an empty name.
_ATTRS: dict[str, tuple[_Sub, ...]] = {
    "in_port": (_Sub("", "in_port", "dec"),),
    "eth": (_Sub("src", "dl_src", "mac"), _Sub("dst", "dl_dst", "mac")),
    "eth_type": (_Sub("", "dl_type", "hex4"),),
    "ipv4": (
        _Sub("src", "nw_src", "ip4"),
        _Sub("dst", "nw_dst", "ip4"),
        _Sub("proto", "nw_proto", "dec"),
        _Sub("tos", "nw_tos", "dec"),
        _Sub("ttl", "nw_ttl", "dec"),
        _Sub("frag", "nw_frag", "frag"),
    ),
    "ipv6": (
        _Sub("src", "ipv6_src", "ip6"),
        _Sub("dst", "ipv6_dst", "ip6"),
        _Sub("label", "ipv6_label", "hex"),
        _Sub("proto", "nw_proto", "dec"),
        _Sub("tclass", "nw_tos", "hex"),
        _Sub("hlimit", "nw_ttl", "dec"),
        _Sub("frag", "nw_frag", "frag"),
    ),
    "arp": (
        _Sub("sip", "nw_src", "ip4"),
        _Sub("tip", "nw_dst", "ip4"),
        _Sub("op", "nw_proto", "dec"),
        _Sub("sha", "arp_sha", "mac"),
        _Sub("tha", "arp_tha", "mac"),
    ),
    "tcp": (_Sub("src", "tp_src", "dec"), _Sub("dst", "tp_dst", "dec")),
    "udp": (_Sub("src", "tp_src", "dec"), _Sub("dst", "tp_dst", "dec")),
    "sctp": (_Sub("src", "tp_src", "dec"), _Sub("dst", "tp_dst", "dec")),
    "tcp_flags": (_Sub("", "tcp_flags", "flags"),),
    "icmp": (_Sub("type", "tp_src", "dec", 0, 8), _Sub("code", "tp_dst", "dec", 0, 8)),
    "icmpv6": (_Sub("type", "tp_src", "dec", 0, 8), _Sub("code", "tp_dst", "dec", 0, 8)),
    "nd": (
        _Sub("target", "nd_target", "ip6"),
        _Sub("sll", "arp_sha", "mac"),
        _Sub("tll", "arp_tha", "mac"),
    ),
}
# The items of tunnel(), in the order OVS prints them (flags() comes last).
# OVS's datapath key has an item only when the packet's value is not zero
# (the TTL always), which is how it prints; tun_id prints as "0x%x".
_TUNNEL_SUBS: tuple[_Sub, ...] = (
    _Sub("tun_id", "tun_id", "hex64"),
    _Sub("src", "tun_src", "ip4"),
    _Sub("dst", "tun_dst", "ip4"),
    _Sub("ipv6_src", "tun_ipv6_src", "ip6"),
    _Sub("ipv6_dst", "tun_ipv6_dst", "ip6"),
    _Sub("tos", "tun_tos", "hex"),
    _Sub("ttl", "tun_ttl", "dec"),
    _Sub("tp_src", "tun_tp_src", "dec"),
    _Sub("tp_dst", "tun_tp_dst", "dec"),
)
_TUNNEL_BY_NAME = {sub.name: sub for sub in _TUNNEL_SUBS}
# The flags the datapath carries as flag attributes; "key" is not one: the
# datapath sets it when the tunnel has an ID, whatever flags() says.
_TNL_ATTR_FLAGS = TNL_F_OAM | TNL_F_DONT_FRAGMENT | TNL_F_CSUM
# Tunnel options OVS reads inside tunnel() that pyvswitch has no fields for.
_TUNNEL_OPTIONS = ("vxlan", "erspan", "gtpu")
# VLAN tags are printed as vlan(vid=,pcp=[,cfi=0]) from vlan_tci; handled apart.
# Attributes OVS prints that pyvswitch keeps no state for: accepted when zero.
_ZERO_ATTRS = frozenset(
    (
        "recirc_id",
        "dp_hash",
        "skb_priority",
        "skb_mark",
        "ct_state",
        "ct_zone",
        "ct_mark",
        "ct_label",
    )
)


def _sub_get(sub: _Sub, word: int) -> int:
    fld = FIELDS[sub.storage]
    bits = sub.bits or fld.bits
    return (word >> (fld.shift + sub.shift)) & ((1 << bits) - 1)


def _sub_width(sub: _Sub) -> int:
    return sub.bits or FIELDS[sub.storage].bits


def _c_hex(value: int) -> str:
    """C's ``%#x``, which OVS uses: zero prints as ``0``, not ``0x0``."""
    return f"{value:#x}" if value else "0"


def _fmt_value(sub: _Sub, value: int, mask: int) -> str:
    full = (1 << _sub_width(sub)) - 1
    exact = mask == full
    kind = sub.kind
    if kind == "mac":
        text = mac_to_str(value.to_bytes(6, "big"))
        return text if exact else f"{text}/{mac_to_str(mask.to_bytes(6, 'big'))}"
    if kind == "ip4":
        text = ".".join(str(b) for b in value.to_bytes(4, "big"))
        return text if exact else text + "/" + ".".join(str(b) for b in mask.to_bytes(4, "big"))
    if kind == "ip6":
        text = ip6_to_str(value.to_bytes(16, "big"))
        return text if exact else f"{text}/{ip6_to_str(mask.to_bytes(16, 'big'))}"
    if kind == "frag":
        text = _FRAG_NAMES[_FRAG_TO_ODP[value & mask]]
        if exact:
            return text
        odp_mask = 0xFC | (1 if mask & FRAG_ANY else 0) | (2 if mask & FRAG_LATER else 0)
        return f"{text}/{odp_mask:#x}"
    if kind == "flags":
        # Open vSwitch's format_flags_masked() shows wildcarded flags as 0/0.
        return format_tcp_flags(value, mask) if mask else "0/0"
    if kind == "hex4":
        return f"0x{value:04x}" if exact else f"0x{value:04x}/0x{mask:04x}"
    if kind == "hex":
        return _c_hex(value) if exact else f"{_c_hex(value)}/{_c_hex(mask)}"
    if kind == "hex64":
        return f"0x{value:x}" if exact else f"0x{value:x}/{_c_hex(mask)}"
    return str(value) if exact else f"{value}/{_c_hex(mask)}"


def _fmt_attr(name: str, key: int, mask: int, out: list[str], verbose: bool = False) -> None:
    """Append ``name(...)``: the parts the mask covers, or, ``verbose``, every part."""
    subs = _ATTRS[name]
    parts = []
    for sub in subs:
        m = _sub_get(sub, mask)
        if not m and not verbose:
            continue
        text = _fmt_value(sub, _sub_get(sub, key), m)
        parts.append(f"{sub.name}={text}" if sub.name else text)
    if parts:
        out.append(f"{name}({','.join(parts)})")


def _tunnel_has_id(key: int) -> bool:
    """Whether the datapath key of ``key`` has a tunnel ID item (OVS's ``tun_key_to_attr()``)."""
    return bool(FIELDS["tun_id"].get(key) or FIELDS["tun_flags"].get(key) & TNL_F_KEY)


def _fmt_tunnel(key: int, mask: int | None, verbose: bool, *, ttl_carried: bool = True) -> str:
    """``tunnel(...)`` as OVS's ``format_odp_tun_attr()`` prints it, under ``mask`` if given.

    An item the key does not carry (a zero value; the TTL is always carried)
    is not printed whatever the mask; one the mask wildcards is printed only
    ``verbose``. ``flags()`` shows the flag items and ``key`` when there is
    an ID; a mask covers ``key`` whenever there is an ID.
    """
    parts = []
    for sub in _TUNNEL_SUBS:
        value = _sub_get(sub, key)
        if sub.name == "tun_id":
            carried = _tunnel_has_id(key)
        else:
            carried = bool(value) or (sub.name == "ttl" and ttl_carried)
        if not carried:
            continue
        full = (1 << _sub_width(sub)) - 1
        sub_mask = full if mask is None else _sub_get(sub, mask)
        if sub_mask or verbose:
            parts.append(f"{sub.name}={_fmt_value(sub, value, sub_mask)}")
    if _GNV_LEN.get(key):
        parts.append(f"geneve({_fmt_geneve(key, mask, verbose)})")
    has_id = TNL_F_KEY if _tunnel_has_id(key) else 0
    flags = FIELDS["tun_flags"].get(key) & _TNL_ATTR_FLAGS | has_id
    if mask is None:
        parts.append(f"flags({format_flags(flags, TNL_FLAG_NAMES)})")
    else:
        flags_mask = FIELDS["tun_flags"].get(mask) & _TNL_ATTR_FLAGS | has_id
        if flags_mask or verbose:
            text = format_flags_masked(flags, flags_mask, TNL_F_MASK, TNL_FLAG_NAMES)
            parts.append(f"flags({text})")
    return f"tunnel({','.join(parts)})"


_TUNNEL_STORAGE_MASK = sum(FIELDS[name].mask for name in TUNNEL_FIELDS)
_GNV_LEN = FIELDS["tun_gnv_len"]
_GNV_OPTS = FIELDS["tun_gnv_opts"]
_GENEVE_OPT_DATA_MAX = 124


def geneve_raw(key: int) -> bytes:
    """The Geneve options a key carries, as the wire had them (empty for none)."""
    length = _GNV_LEN.get(key)
    return _GNV_OPTS.get(key).to_bytes(GENEVE_OPTS_MAX, "big")[GENEVE_OPTS_MAX - length :]


def geneve_bits(raw: bytes) -> int:
    """The key bits of Geneve options ``raw`` (at most 252 bytes, as the wire had them)."""
    return _GNV_LEN.put(len(raw)) | _GNV_OPTS.put(int.from_bytes(raw, "big"))


def _fmt_part(name: str, text: str, mask: int | None, full: int, verbose: bool) -> str:
    """OVS's ``format_u8x()`` and kin: ``name=value[/mask],``, nothing when wildcarded."""
    if mask is None or mask == full:
        return f"{name}={text},"
    if not mask and not verbose:
        return ""
    return f"{name}={text}/{_c_hex(mask)},"


def _fmt_geneve(key: int, mask: int | None, verbose: bool) -> str:
    """The options inside ``geneve(...)``, as OVS's ``format_geneve_opts()`` prints them."""
    raw = geneve_raw(key)
    raw_mask = None
    if mask is not None:
        raw_mask = _GNV_OPTS.get(mask).to_bytes(GENEVE_OPTS_MAX, "big")[-len(raw) :]
    out = []
    pos = 0
    while pos < len(raw):
        if len(raw) - pos < 4:
            out.append(f"opt len {len(raw) - pos} less than minimum 4")
            break
        data_len = (raw[pos + 3] & 0x1F) * 4
        if pos + 4 + data_len > len(raw):
            out.append(f"opt len {4 + data_len} greater than remaining {len(raw) - pos}")
            break
        opt_class = int.from_bytes(raw[pos : pos + 2], "big")
        data = int.from_bytes(raw[pos + 4 : pos + 4 + data_len], "big")
        class_mask = type_mask = len_mask = data_mask = None
        if raw_mask is not None:
            class_mask = int.from_bytes(raw_mask[pos : pos + 2], "big")
            type_mask = raw_mask[pos + 2]
            # The length is 5 bits of its byte: all five mean "exact".
            len_mask = 0xFF if raw_mask[pos + 3] & 0x1F == 0x1F else raw_mask[pos + 3] & 0x1F
            data_mask = int.from_bytes(raw_mask[pos + 4 : pos + 4 + data_len], "big")
        text = (
            _fmt_part("class", _c_hex(opt_class), class_mask, 0xFFFF, verbose)
            + _fmt_part("type", _c_hex(raw[pos + 2]), type_mask, 0xFF, verbose)
            + _fmt_part("len", str(data_len), len_mask, 0xFF, verbose)
        )
        if data_len and (verbose or data_mask is None or data_mask):
            text += _c_hex(data)
            if data_mask is not None and data_mask != (1 << (8 * data_len)) - 1:
                text += f"/{_c_hex(data_mask)}"
        else:
            text = text.removesuffix(",")
        out.append(f"{{{text}}}")
        pos += 4 + data_len
    return "".join(out)


def _tunnel_masked(mask: int) -> bool:
    return bool(mask & _TUNNEL_STORAGE_MASK)


#: What ``dpctl/dump-flows -m`` shows before ``recirc_id``: metadata the
#: datapath keeps (pyvswitch keeps none of it), all wildcarded. A tunnel
#: comes after the first.
_VERBOSE_METADATA = (
    "skb_priority(0/0)",
    "skb_mark(0/0)",
    "ct_state(0/0)",
    "ct_zone(0/0)",
    "ct_mark(0/0)",
    "ct_label(0/0)",
)


def _fmt_vlan(key: int, mask: int, tci_name: str, verbose: bool) -> str:
    """``vlan(vid=V,pcp=P[,cfi=0])`` as OVS's ``format_vlan_tci()`` prints it.

    A part is shown when the key or the mask has any of its bits (always in
    a full key); a partial mask follows as ``/0x..``.
    """
    fld = FIELDS[tci_name]
    tci, tmask = fld.get(key), fld.get(mask)
    parts = []
    vid, vid_mask = tci & 0x0FFF, tmask & 0x0FFF
    if verbose or vid or vid_mask:
        parts.append(f"vid={vid}" + ("" if vid_mask == 0x0FFF else f"/0x{vid_mask:x}"))
    pcp, pcp_mask = tci >> 13, tmask >> 13
    if verbose or pcp or pcp_mask:
        parts.append(f"pcp={pcp}" + ("" if pcp_mask == 7 else f"/0x{pcp_mask:x}"))
    if not tci & VLAN_CFI:
        parts.append("cfi=0")
    return f"vlan({','.join(parts)})"


def format_odp_flow(
    key: int,
    mask: int | None = None,
    megaflow: bool = False,
    *,
    verbose: bool = False,
    port_names: Mapping[int, str] | None = None,
) -> str:
    """Print a datapath flow key, under ``mask`` when given (a megaflow).

    With ``megaflow``, the ``recirc_id(0)`` and ``packet_type(ns=0,id=0)``
    attributes that Open vSwitch's userspace datapath shows in
    ``dpctl/dump-flows`` are included; ``verbose`` is ``dump-flows -m``:
    every attribute of the key, wildcarded parts too (``proto=1/0``).
    ``port_names`` gives the names ``in_port()`` shows instead of numbers.
    """
    m = _FULL if mask is None else mask
    flow = Flow.from_key(key)
    out: list[str] = []
    verbose_metadata = verbose and megaflow
    if verbose_metadata:
        out.append(_VERBOSE_METADATA[0])
    # The datapath key has a tunnel when the packet came out of one (it has
    # a tunnel destination); a mask that covers none of it leaves it out.
    if has_tunnel(flow) and (mask is None or verbose or _tunnel_masked(mask)):
        out.append(_fmt_tunnel(key, mask, verbose))
    if verbose_metadata:
        out += _VERBOSE_METADATA[1:]
    if megaflow:
        out.append("recirc_id(0)")
    if verbose and megaflow:
        out.append("dp_hash(0/0)")
    if port_names and flow.in_port in port_names:
        out.append(f"in_port({port_names[flow.in_port]})")
    else:
        _fmt_attr("in_port", key, m, out)
    if megaflow:
        out.append("packet_type(ns=0,id=0)")
    _fmt_attr("eth", key, m, out, verbose)
    closing = 0
    for tpid_name, tci_name in (("vlan_tpid", "vlan_tci"), ("vlan_tpid1", "vlan_tci1")):
        tpid = FIELDS[tpid_name].get(key)
        if not FIELDS[tci_name].get(key) & VLAN_CFI:
            break
        out.append(f"eth_type(0x{tpid:04x})")
        out.append(_fmt_vlan(key, m, tci_name, mask is None))
        out.append("encap(")
        closing += 1
    dl_type = flow.dl_type
    if dl_type != DL_TYPE_NONE:
        _fmt_attr("eth_type", key, m, out)
    elif mask is not None and FIELDS["dl_type"].get(m):
        # An 802.3 frame with no SNAP ethertype has no eth_type attribute in
        # its key; a megaflow's mask still covers it, shown against zero.
        out.append("eth_type(0/0xffff)")
    l4 = None
    if dl_type == 0x0800:
        _fmt_attr("ipv4", key, m, out, verbose)
        l4 = flow.nw_proto
    elif dl_type == 0x86DD:
        _fmt_attr("ipv6", key, m, out, verbose)
        l4 = flow.nw_proto
    elif dl_type in (0x0806, 0x8035):
        _fmt_attr("arp", key, m, out, verbose)
    if l4 is not None and not flow.nw_frag & FRAG_LATER:
        if l4 == 6:
            _fmt_attr("tcp", key, m, out, verbose)
            # A full key leaves out tcp_flags() when no flag is set, as OVS does.
            if mask is not None or flow.tcp_flags:
                _fmt_attr("tcp_flags", key, m, out, verbose)
        elif l4 == 17:
            _fmt_attr("udp", key, m, out, verbose)
        elif l4 == 132:
            _fmt_attr("sctp", key, m, out, verbose)
        elif l4 == 1 and dl_type == 0x0800:
            _fmt_attr("icmp", key, m, out, verbose)
        elif l4 == 58 and dl_type == 0x86DD:
            _fmt_attr("icmpv6", key, m, out, verbose)
            if flow.tp_src in (135, 136) and flow.tp_dst == 0:
                _fmt_attr("nd", key, m, out, verbose)
    text = ""
    for piece in out:
        if text and not text.endswith("("):
            text += ","
        text += piece
    return text + ")" * closing


# -- parsing -------------------------------------------------------------------


class OdpKeyError(FlowParseError):
    """The text is a datapath flow but not one the datapath takes (OVS's ``ODP_FIT_ERROR``).

    The message is Open vSwitch's, with the key it refused: ``tunnel options
    missing TTL; the flow key in error is: tunnel(tun_id=0x7b,flags(key)),...``.
    """


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        # A tunnel() without ttl=: OVS parses it, then refuses the key.
        self.tunnel_without_ttl = False

    def error(self, msg: str) -> FlowParseError:
        return FlowParseError(f"{msg} (at offset {self.pos} in {self.text!r})")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] == "_"
        ):
            self.pos += 1
        return self.text[start : self.pos]

    def value(self) -> str:
        """Read up to the next unnested ',' or ')'."""
        start = self.pos
        depth = 0
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                break
            self.pos += 1
        return self.text[start : self.pos].strip()

    def skip_to_close(self) -> None:
        """Skip everything up to the ')' that closes the current attribute."""
        while self.peek() not in ("", ")"):
            self.value()
            if self.peek() == ",":
                self.pos += 1

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise self.error(f"expected {ch!r}")
        self.pos += 1


def _parse_sub_value(attr: str, sub: _Sub, text: str) -> tuple[int, int]:
    full = (1 << _sub_width(sub)) - 1
    vtext, slash, mtext = text.partition("/")
    label = f"{attr}({sub.name}=...)" if sub.name else f"{attr}(...)"
    conv: Callable[[str], int]
    if sub.kind == "mac":

        def conv(t: str) -> int:
            return int.from_bytes(mac_to_bytes(t), "big")
    elif sub.kind == "ip4":

        def conv(t: str) -> int:
            parts = t.split(".")
            if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
                raise ValueError(f"{t}: invalid IP address")
            return int.from_bytes(bytes(int(p) for p in parts), "big")
    elif sub.kind == "ip6":

        def conv(t: str) -> int:
            return int.from_bytes(ip6_to_bytes(t), "big")
    elif sub.kind == "frag":
        if vtext not in _FRAG_NAMES:
            raise FlowParseError(f"{text}: unknown fragment type in {label}")
        value = (0, FRAG_ANY, FRAG_ANY | FRAG_LATER)[_FRAG_NAMES.index(vtext)]
        mask = full
        if slash:
            odp_mask = int(mtext, 0)
            mask = (FRAG_ANY if odp_mask & 1 else 0) | (FRAG_LATER if odp_mask & 2 else 0)
        return value & mask, mask
    elif sub.kind == "flags":
        return parse_tcp_flags(text, META_FIELDS["tcp_flags"])
    else:

        def conv(t: str) -> int:
            return int(t, 0) if sub.kind != "dec" or t.startswith("0x") else int(t, 10)

    try:
        value = conv(vtext)
        mask = conv(mtext) if slash else full
    except ValueError as exc:
        raise FlowParseError(f"{text}: bad value in {label}: {exc}") from None
    if value > full or mask > full or value < 0:
        raise FlowParseError(f"{text}: value out of range in {label}")
    # The key keeps the value as written, under its mask: dpctl/dump-flows
    # prints megaflows that way (dst=50:54:00:00:00:07/01:00:00:00:00:00).
    return value, mask


def parse_odp_flow(text: str) -> tuple[int, int]:
    """Parse a datapath flow key into (key, mask).

    Values without ``/mask`` are exact; attributes and values left out are
    wildcarded. Raises :class:`FlowParseError` naming the bad attribute.
    """
    reader = _Reader(text.strip())
    key, mask = _parse_attrs(reader, 0)
    if reader.pos != len(reader.text):
        raise reader.error("unexpected text")
    dl_type = FIELDS["dl_type"]
    if mask & FIELDS["dl_src"].mask and not mask & dl_type.mask:
        # A key with eth() but no eth_type() is an 802.3 frame, as in OVS.
        key |= dl_type.put(DL_TYPE_NONE)
        mask |= dl_type.mask
    if reader.tunnel_without_ttl:
        # Every datapath tunnel has a TTL; OVS refuses the key, whatever uses it.
        tunnel = _fmt_tunnel(key, None, verbose=False, ttl_carried=False)
        rest = format_odp_flow(key & ~_TUNNEL_STORAGE_MASK, mask & ~_TUNNEL_STORAGE_MASK)
        shown = f"{tunnel},{rest}" if rest else tunnel
        raise OdpKeyError(f"tunnel options missing TTL; the flow key in error is: {shown}")
    return key, mask


def _parse_attrs(r: _Reader, vlan_depth: int) -> tuple[int, int]:
    key = mask = 0
    pending_tpid: int | None = None
    while r.pos < len(r.text) and r.peek() != ")":
        name = r.name()
        if not name:
            raise r.error("expected an attribute name")
        r.expect("(")
        if name == "encap":
            if pending_tpid is None:
                raise r.error("encap() without a vlan() before it")
            inner_key, inner_mask = _parse_attrs(r, vlan_depth + 1)
            key |= inner_key
            mask |= inner_mask
            pending_tpid = None
        elif name == "vlan":
            if vlan_depth > 1:
                raise r.error("more than two VLAN tags")
            tci_name = "vlan_tci" if vlan_depth == 0 else "vlan_tci1"
            tpid_name = "vlan_tpid" if vlan_depth == 0 else "vlan_tpid1"
            k, m = _parse_vlan(r, tci_name)
            tpid_fld = FIELDS[tpid_name]
            dl_fld = FIELDS["dl_type"]
            # The eth_type(0x8100) before vlan() is this tag's TPID, not the
            # packet's dl_type: move it across.
            tpid = dl_fld.get(key) if dl_fld.get(mask) else 0x8100
            key = (key & ~dl_fld.mask) | tpid_fld.put(tpid) | k
            mask = (mask & ~dl_fld.mask) | tpid_fld.mask | m
            pending_tpid = tpid
        elif name in _ATTRS:
            k, m = _parse_attr(r, name)
            key |= k
            mask |= m
        elif name == "tunnel":
            k, m = _parse_tunnel(r)
            key |= k
            mask |= m
        elif name == "packet_type":
            r.skip_to_close()
        elif name in _ZERO_ATTRS:
            value = r.value()
            if value.partition("/")[0] not in ("0", "0x0", ""):
                raise FlowParseError(f"{name}({value}): pyvswitch supports only {name}(0)")
        else:
            raise r.error(f"unknown attribute {name!r}")
        r.expect(")")
        if r.peek() == ",":
            r.pos += 1
    return key, mask


def _parse_vlan(r: _Reader, tci_name: str) -> tuple[int, int]:
    tci = VLAN_CFI
    tmask = VLAN_CFI
    while r.peek() != ")":
        name = r.name()
        r.expect("=")
        text = r.value()
        vtext, slash, mtext = text.partition("/")
        try:
            v = int(vtext, 0)
            mv = int(mtext, 0) if slash else None
        except ValueError:
            raise FlowParseError(f"{text}: bad value in vlan({name}=...)") from None
        if name == "vid":
            if v > 0xFFF:
                raise FlowParseError(f"{text}: VLAN ID out of range in vlan(vid=...)")
            m = 0xFFF if mv is None else mv & 0xFFF
            tci = (tci & ~0xFFF) | v
            tmask |= m
        elif name == "pcp":
            if v > 7:
                raise FlowParseError(f"{text}: VLAN priority out of range in vlan(pcp=...)")
            m = 7 if mv is None else mv & 7
            tci = (tci & ~0xE000) | (v << 13)
            tmask |= m << 13
        elif name == "cfi":
            if not v:
                tci &= ~VLAN_CFI
        else:
            raise r.error(f"unknown vlan field {name!r}")
        if r.peek() == ",":
            r.pos += 1
    fld = FIELDS[tci_name]
    return fld.put(tci), fld.put(tmask)


def _parse_tunnel(r: _Reader) -> tuple[int, int]:
    """The items of ``tunnel(...)``, in any order, as OVS reads them.

    Items left out are wildcarded. ``flags()`` sets the flag items (oam, df,
    csum); ``key`` there means nothing, because a tunnel has the key flag
    exactly when it has a ``tun_id``.
    """
    key = mask = 0
    flags_fld = FIELDS["tun_flags"]
    has_ttl = has_id = False
    while r.peek() not in ("", ")"):
        name = r.name()
        if name == "flags":
            r.expect("(")
            text = r.value()
            r.expect(")")
            try:
                value, given = parse_flags(text, TNL_FLAG_NAMES, "tunnel", TNL_F_MASK)
            except FlowParseError as exc:
                raise FlowParseError(f"{exc} in tunnel(flags(...))") from None
            fmask = TNL_F_MASK if given is None else given
            key |= flags_fld.put(value & fmask & _TNL_ATTR_FLAGS)
            mask |= flags_fld.put(fmask & _TNL_ATTR_FLAGS)
        elif name == "geneve":
            r.expect("(")
            k, m = _parse_geneve(r)
            key = (key & ~_GENEVE_MASK) | k
            mask = (mask & ~_GENEVE_MASK) | m
        elif name in _TUNNEL_OPTIONS:
            raise FlowParseError(
                f"tunnel({name}(...)): {name} tunnel options are not supported by pyvswitch"
            )
        elif name in _TUNNEL_BY_NAME:
            sub = _TUNNEL_BY_NAME[name]
            r.expect("=")
            value, m = _parse_sub_value("tunnel", sub, r.value())
            fld = FIELDS[sub.storage]
            key = (key & ~fld.mask) | fld.put(value)
            mask = (mask & ~fld.mask) | fld.put(m)
            has_ttl |= name == "ttl"
            has_id |= name == "tun_id"
        else:
            raise r.error(f"unknown field {name!r} in tunnel()")
        if r.peek() == ",":
            r.pos += 1
    if has_id:
        key |= flags_fld.put(TNL_F_KEY)
        mask |= flags_fld.put(TNL_F_KEY)
    r.tunnel_without_ttl |= not has_ttl
    return key, mask


_GENEVE_MASK = _GNV_LEN.mask | _GNV_OPTS.mask


def _geneve_number(text: str, what: str, limit: int) -> int:
    """A number in ``geneve(...)``, read as OVS's ``scan_be16()``/``scan_u8()`` read one."""
    try:
        value = c_int(text)
    except ValueError:
        raise FlowParseError(f"{text}: bad {what} in tunnel(geneve(...))") from None
    if value > limit:
        # OVS keeps the low bits of a number too large; we refuse it.
        raise FlowParseError(f"{text}: {what} out of range 0..{limit:#x} in tunnel(geneve(...))")
    return value


def _parse_geneve(r: _Reader) -> tuple[int, int]:
    """The options of ``geneve({class=..,type=..,len=..,DATA[/MASK]}...)``, then its ')'.

    As OVS's ``scan_geneve()``: a part may be left out (it is then zero and
    wildcarded), a part given without ``/mask`` is matched exactly; lengths
    are multiples of 4 up to 124, and 252 bytes at most in all. The length
    of the whole is always matched.
    """
    raw = bytearray()
    raw_mask = bytearray()
    while r.peek() == "{":
        end = r.text.find("}", r.pos)
        if end < 0:
            raise r.error("missing '}' in tunnel(geneve(...))")
        body = r.text[r.pos + 1 : end]
        r.pos = end + 1
        limits = {"class": 0xFFFF, "type": 0xFF, "len": 0xFF}
        parts = dict.fromkeys(limits, (0, 0))
        data_text: str | None = None
        for item in body.split(",") if body else []:
            name, eq, value = item.partition("=")
            if eq and name in limits:
                vtext, slash, mtext = value.partition("/")
                full = limits[name]
                number = _geneve_number(vtext, f"option {name}", full)
                given = _geneve_number(mtext, f"option {name} mask", full) if slash else full
                parts[name] = (number, given)
            elif not eq and data_text is None:
                data_text = item
            else:
                raise FlowParseError(f"{{{body}}}: bad Geneve option in tunnel(geneve(...))")
        length, length_mask = parts["len"]
        if length % 4 or length > _GENEVE_OPT_DATA_MAX:
            raise FlowParseError(
                f"len={length}: Geneve option lengths are multiples of 4 up to 124"
            )
        data = data_mask = 0
        if data_text is not None:
            full = (1 << (8 * length)) - 1
            dtext, slash, mtext = data_text.partition("/")
            data = _geneve_number(dtext, "option data", full)
            data_mask = _geneve_number(mtext, "option data mask", full) if slash else full
        (opt_class, class_mask), (opt_type, type_mask) = parts["class"], parts["type"]
        raw += opt_class.to_bytes(2, "big") + bytes((opt_type, length // 4))
        raw += data.to_bytes(length, "big")
        raw_mask += class_mask.to_bytes(2, "big")
        raw_mask += bytes((type_mask, 0x1F if length_mask == 0xFF else length_mask & 0x1F))
        raw_mask += data_mask.to_bytes(length, "big")
        if len(raw) > GENEVE_OPTS_MAX:
            raise FlowParseError(
                f"Geneve options of {len(raw)} bytes in tunnel(geneve(...)): "
                f"a header carries at most {GENEVE_OPTS_MAX}"
            )
    r.expect(")")
    mask = _GNV_LEN.mask | _GNV_OPTS.put(int.from_bytes(raw_mask, "big"))
    return geneve_bits(bytes(raw)), mask


def _parse_attr(r: _Reader, name: str) -> tuple[int, int]:
    subs = _ATTRS[name]
    key = mask = 0
    if len(subs) == 1 and not subs[0].name:
        text = r.value()
        items = [(subs[0], text)]
    else:
        by_name = {s.name: s for s in subs}
        items = []
        while r.peek() != ")":
            sub_name = r.name()
            if sub_name not in by_name:
                raise r.error(f"unknown field {sub_name!r} in {name}()")
            r.expect("=")
            items.append((by_name[sub_name], r.value()))
            if r.peek() == ",":
                r.pos += 1
    for sub, text in items:
        value, m = _parse_sub_value(name, sub, text)
        fld = FIELDS[sub.storage]
        key |= value << (fld.shift + sub.shift)
        mask |= m << (fld.shift + sub.shift)
    return key, mask


# -- composing packets -----------------------------------------------------------


def _mac(value: int) -> str:
    return mac_to_str(value.to_bytes(6, "big"))


def _ip4(value: int) -> str:
    return ".".join(str(b) for b in value.to_bytes(4, "big"))


def _ip6(value: int) -> str:
    return ip6_to_str(value.to_bytes(16, "big"))


def _wants_payload(flow: Flow) -> bool:
    """Whether OVS's ``flow_compose()`` adds application data to this kind of packet.

    It does for UDP, for TCP segments without SYN, FIN or RST, and for ICMP
    and ICMPv6 echo messages; everything else is sent bare.
    """
    proto = flow.nw_proto
    if flow.dl_type not in (0x0800, 0x86DD) or flow.nw_frag & FRAG_LATER:
        return False
    if proto == 17:
        return True
    if proto == 6:
        return not flow.tcp_flags & 0x007
    if proto == 1 and flow.dl_type == 0x0800:
        return flow.tp_src in (0, 8) and flow.tp_dst == 0
    if proto == 58 and flow.dl_type == 0x86DD:
        return flow.tp_src in (128, 129) and flow.tp_dst == 0
    return False


def compose_packet(key: int, payload: bytes | None = None, l7_len: int = 64) -> bytes:
    """Build a frame whose extracted key equals ``key`` (for the fields a frame carries).

    This follows Open vSwitch's ``flow_compose()``, which its tests use to
    inject packets written as datapath keys, so the same key gives the same
    bytes: L4 checksums computed (SCTP's left 0), IPv4 identification 0, TCP
    window 0, a first fragment with MF set and a later one with MF and offset
    100 (no L4 header), ARP addresses only for requests and replies, and
    ``l7_len`` bytes counting up from 0 as data for UDP, for TCP without
    SYN/FIN/RST and for echo messages (``payload`` replaces them). One
    difference: for an IPv6 fragment we add a fragment header, which OVS
    leaves out, so that the frame's key really says ``frag=first``/``later``.
    """
    from pyvswitch.packet import headers as h  # noqa: PLC0415 - composing is a rare slow path

    flow = Flow.from_key(key)
    if payload is None:
        payload = bytes(i & 0xFF for i in range(l7_len)) if _wants_payload(flow) else b""
    l2: list[h.Ethernet | h.VLAN] = [h.Ethernet(_mac(flow.dl_dst), _mac(flow.dl_src))]
    for tpid, tci in ((flow.vlan_tpid, flow.vlan_tci), (flow.vlan_tpid1, flow.vlan_tci1)):
        if not tci & VLAN_CFI:
            break
        l2.append(h.VLAN(vid=tci & 0xFFF, pcp=tci >> 13, tpid=tpid or 0x8100))
    later = bool(flow.nw_frag & FRAG_LATER)
    upper: list[h.Header] = []
    if flow.dl_type == 0x0800:
        upper.append(
            h.IPv4(
                _ip4(flow.nw_src),
                _ip4(flow.nw_dst),
                flow.nw_proto,
                flow.nw_tos,
                flow.nw_ttl,
                mf=bool(flow.nw_frag & FRAG_ANY),
                frag=100 if later else 0,
            )
        )
    elif flow.dl_type == 0x86DD:
        upper.append(
            h.IPv6(
                _ip6(flow.ipv6_src),
                _ip6(flow.ipv6_dst),
                None,
                flow.nw_tos,
                flow.ipv6_label,
                flow.nw_ttl,
            )
        )
        if flow.nw_frag & FRAG_ANY:
            upper.append(h.IPv6Fragment(flow.nw_proto, 100 if later else 0, not later))
        else:
            upper[-1].set_next(flow.nw_proto)
    elif flow.dl_type in (0x0806, 0x8035):
        l2[-1].type = flow.dl_type
        if flow.nw_proto in (1, 2):
            arp = h.ARP(
                flow.nw_proto,
                _mac(flow.arp_sha),
                _ip4(flow.nw_src),
                _mac(flow.arp_tha),
                _ip4(flow.nw_dst),
            )
        else:
            arp = h.ARP(flow.nw_proto)
        return h.build(*l2, arp)
    else:
        if flow.dl_type != DL_TYPE_NONE:
            l2[-1].type = flow.dl_type
        return h.build(*l2, payload)
    is_ip4 = flow.dl_type == 0x0800
    if not later:
        proto = flow.nw_proto
        if proto == 6:
            upper.append(h.TCP(flow.tp_src, flow.tp_dst, flags=flow.tcp_flags, window=0))
        elif proto == 17:
            upper.append(h.UDP(flow.tp_src, flow.tp_dst))
        elif proto == 132:
            # OVS composes SCTP with a zero verification tag and checksum.
            payload = flow.tp_src.to_bytes(2, "big") + flow.tp_dst.to_bytes(2, "big") + bytes(8)
        elif proto == 1 and is_ip4:
            upper.append(h.ICMP(flow.tp_src, flow.tp_dst))
        elif proto == 58 and not is_ip4:
            if flow.tp_src in (135, 136) and flow.tp_dst == 0:
                nd = h.NeighborDiscovery(
                    flow.tp_src,
                    0,
                    _ip6(flow.nd_target),
                    sll=_mac(flow.arp_sha) if flow.arp_sha else None,
                    tll=_mac(flow.arp_tha) if flow.arp_tha else None,
                )
                return h.build(*l2, *upper, nd)
            upper.append(h.ICMPV6(flow.tp_src, flow.tp_dst))
    return h.build(*l2, *upper, payload)
