"""The datapath (ODP) text form of flow keys, as Open vSwitch prints and reads it.

``in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),
ipv4(src=192.0.2.1,dst=192.0.2.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)``

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
from pyvswitch.flow.layout import FIELDS, FRAG_ANY, FRAG_LATER, KEY_BITS, VLAN_CFI
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.ofp_text import format_tcp_flags
from pyvswitch.packet.addr import ip6_to_bytes, ip6_to_str, mac_to_bytes, mac_to_str

if TYPE_CHECKING:
    from collections.abc import Callable

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
    "tunnel": (_Sub("tun_id", "tun_id", "hex"), _Sub("src", "tun_src", "ip4"),
               _Sub("dst", "tun_dst", "ip4")),
    "in_port": (_Sub("", "in_port", "dec"),),
    "eth": (_Sub("src", "dl_src", "mac"), _Sub("dst", "dl_dst", "mac")),
    "eth_type": (_Sub("", "dl_type", "hex4"),),
    "ipv4": (_Sub("src", "nw_src", "ip4"), _Sub("dst", "nw_dst", "ip4"),
             _Sub("proto", "nw_proto", "dec"), _Sub("tos", "nw_tos", "dec"),
             _Sub("ttl", "nw_ttl", "dec"), _Sub("frag", "nw_frag", "frag")),
    "ipv6": (_Sub("src", "ipv6_src", "ip6"), _Sub("dst", "ipv6_dst", "ip6"),
             _Sub("label", "ipv6_label", "hex"), _Sub("proto", "nw_proto", "dec"),
             _Sub("tclass", "nw_tos", "hex"), _Sub("hlimit", "nw_ttl", "dec"),
             _Sub("frag", "nw_frag", "frag")),
    "arp": (_Sub("sip", "nw_src", "ip4"), _Sub("tip", "nw_dst", "ip4"),
            _Sub("op", "nw_proto", "dec"), _Sub("sha", "arp_sha", "mac"),
            _Sub("tha", "arp_tha", "mac")),
    "tcp": (_Sub("src", "tp_src", "dec"), _Sub("dst", "tp_dst", "dec")),
    "udp": (_Sub("src", "tp_src", "dec"), _Sub("dst", "tp_dst", "dec")),
    "sctp": (_Sub("src", "tp_src", "dec"), _Sub("dst", "tp_dst", "dec")),
    "tcp_flags": (_Sub("", "tcp_flags", "flags"),),
    "icmp": (_Sub("type", "tp_src", "dec", 0, 8), _Sub("code", "tp_dst", "dec", 0, 8)),
    "icmpv6": (_Sub("type", "tp_src", "dec", 0, 8), _Sub("code", "tp_dst", "dec", 0, 8)),
    "nd": (_Sub("target", "nd_target", "ip6"), _Sub("sll", "arp_sha", "mac"),
           _Sub("tll", "arp_tha", "mac")),
}
# VLAN tags are printed as vlan(vid=,pcp=[,cfi=0]) from vlan_tci; handled apart.
# Attributes OVS prints that pyvswitch keeps no state for: accepted when zero.
_ZERO_ATTRS = frozenset(("recirc_id", "dp_hash", "skb_priority", "skb_mark", "ct_state",
                         "ct_zone", "ct_mark", "ct_label"))


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
        return format_tcp_flags(value, mask)
    if kind == "hex4":
        return f"0x{value:04x}" if exact else f"0x{value:04x}/0x{mask:04x}"
    if kind == "hex":
        return _c_hex(value) if exact else f"{_c_hex(value)}/{_c_hex(mask)}"
    return str(value) if exact else f"{value}/{_c_hex(mask)}"


def _fmt_attr(name: str, key: int, mask: int, out: list[str]) -> None:
    subs = _ATTRS[name]
    parts = []
    for sub in subs:
        m = _sub_get(sub, mask)
        if not m:
            continue
        text = _fmt_value(sub, _sub_get(sub, key), m)
        parts.append(f"{sub.name}={text}" if sub.name else text)
    if parts:
        out.append(f"{name}({','.join(parts)})")


def _fmt_vlan(key: int, mask: int, tci_name: str) -> str:
    fld = FIELDS[tci_name]
    tci, tmask = fld.get(key), fld.get(mask)
    parts = []
    if tmask & 0x0FFF:
        vid = tci & 0x0FFF
        parts.append(f"vid={vid}" if tmask & 0x0FFF == 0x0FFF else
                     f"vid={vid}/{tmask & 0x0FFF:#x}")
    if tmask & 0xE000:
        pcp = tci >> 13
        parts.append(f"pcp={pcp}" if tmask & 0xE000 == 0xE000 else
                     f"pcp={pcp}/{(tmask >> 13):#x}")
    if tmask & VLAN_CFI and not tci & VLAN_CFI:
        parts.append("cfi=0")
    return f"vlan({','.join(parts)})"


def format_odp_flow(key: int, mask: int | None = None, megaflow: bool = False) -> str:
    """Print a datapath flow key, under ``mask`` when given (a megaflow).

    With ``megaflow``, the ``recirc_id(0)`` and ``packet_type(ns=0,id=0)``
    attributes that Open vSwitch's userspace datapath shows in
    ``dpctl/dump-flows`` are included.
    """
    m = _FULL if mask is None else mask
    flow = Flow.from_key(key)
    out: list[str] = []
    if flow.tun_id or flow.tun_src or flow.tun_dst:
        _fmt_attr("tunnel", key, m, out)
    if megaflow:
        out.append("recirc_id(0)")
    _fmt_attr("in_port", key, m, out)
    if megaflow:
        out.append("packet_type(ns=0,id=0)")
    _fmt_attr("eth", key, m, out)
    closing = 0
    for tpid_name, tci_name in (("vlan_tpid", "vlan_tci"), ("vlan_tpid1", "vlan_tci1")):
        tpid = FIELDS[tpid_name].get(key)
        if not FIELDS[tci_name].get(key) & VLAN_CFI:
            break
        out.append(f"eth_type(0x{tpid:04x})")
        out.append(_fmt_vlan(key, m, tci_name))
        out.append("encap(")
        closing += 1
    _fmt_attr("eth_type", key, m, out)
    dl_type = flow.dl_type
    l4 = None
    if dl_type == 0x0800:
        _fmt_attr("ipv4", key, m, out)
        l4 = flow.nw_proto
    elif dl_type == 0x86DD:
        _fmt_attr("ipv6", key, m, out)
        l4 = flow.nw_proto
    elif dl_type in (0x0806, 0x8035):
        _fmt_attr("arp", key, m, out)
    if l4 is not None and not flow.nw_frag & FRAG_LATER:
        if l4 == 6:
            _fmt_attr("tcp", key, m, out)
            _fmt_attr("tcp_flags", key, m, out)
        elif l4 == 17:
            _fmt_attr("udp", key, m, out)
        elif l4 == 132:
            _fmt_attr("sctp", key, m, out)
        elif l4 == 1 and dl_type == 0x0800:
            _fmt_attr("icmp", key, m, out)
        elif l4 == 58 and dl_type == 0x86DD:
            _fmt_attr("icmpv6", key, m, out)
            if flow.tp_src in (135, 136) and flow.tp_dst == 0:
                _fmt_attr("nd", key, m, out)
    text = ""
    for piece in out:
        if text and not text.endswith("("):
            text += ","
        text += piece
    return text + ")" * closing


# -- parsing -------------------------------------------------------------------


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, msg: str) -> FlowParseError:
        return FlowParseError(f"{msg} (at offset {self.pos} in {self.text!r})")

    def peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum()
                                             or self.text[self.pos] == "_"):
            self.pos += 1
        return self.text[start:self.pos]

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
        return self.text[start:self.pos].strip()

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
        from pyvswitch.flow.ofp_text import META_FIELDS, _parse_tcp_flags  # noqa: PLC0415

        return _parse_tcp_flags(text, META_FIELDS["tcp_flags"])
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
    return value & mask, mask


def parse_odp_flow(text: str) -> tuple[int, int]:
    """Parse a datapath flow key into (key, mask).

    Values without ``/mask`` are exact; attributes and values left out are
    wildcarded. Raises :class:`FlowParseError` naming the bad attribute.
    """
    reader = _Reader(text.strip())
    key, mask = _parse_attrs(reader, 0)
    if reader.pos != len(reader.text):
        raise reader.error("unexpected text")
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
            tci = (tci & ~0xFFF) | (v & m)
            tmask |= m
        elif name == "pcp":
            if v > 7:
                raise FlowParseError(f"{text}: VLAN priority out of range in vlan(pcp=...)")
            m = 7 if mv is None else mv & 7
            tci = (tci & ~0xE000) | ((v & m) << 13)
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


def compose_packet(key: int, payload: bytes | None = None, l7_len: int = 64) -> bytes:
    """Build a frame whose extracted key equals ``key`` (for the fields a frame carries).

    As Open vSwitch's ``flow_compose()``: L4 checksums are computed, the
    IPv4 identification is 0, a later fragment gets offset 100 (in 8-octet
    units) and carries no L4 header, and when ``payload`` is None the
    application data is ``l7_len`` bytes counting up from 0.
    """
    from pyvswitch.packet import headers as h  # noqa: PLC0415 - composing is a rare slow path

    flow = Flow.from_key(key)
    data = bytes(i & 0xFF for i in range(l7_len)) if payload is None else payload
    layers: list[h.Header | bytes] = [
        h.Ethernet(mac_to_str(flow.dl_dst.to_bytes(6, "big")),
                   mac_to_str(flow.dl_src.to_bytes(6, "big")))]
    for tpid, tci in ((flow.vlan_tpid, flow.vlan_tci), (flow.vlan_tpid1, flow.vlan_tci1)):
        if not tci & VLAN_CFI:
            break
        layers.append(h.VLAN(vid=tci & 0xFFF, pcp=tci >> 13, tpid=tpid or 0x8100))
    later = bool(flow.nw_frag & FRAG_LATER)
    ip6 = lambda v: ip6_to_str(v.to_bytes(16, "big"))  # noqa: E731
    ip4 = lambda v: ".".join(str(b) for b in v.to_bytes(4, "big"))  # noqa: E731
    mac = lambda v: mac_to_str(v.to_bytes(6, "big"))  # noqa: E731
    if flow.dl_type == 0x0800:
        layers.append(h.IPv4(ip4(flow.nw_src), ip4(flow.nw_dst), flow.nw_proto, flow.nw_tos,
                             flow.nw_ttl, mf=bool(flow.nw_frag & FRAG_ANY) and not later,
                             frag=100 if later else 0))
    elif flow.dl_type == 0x86DD:
        layers.append(h.IPv6(ip6(flow.ipv6_src), ip6(flow.ipv6_dst), None, flow.nw_tos,
                             flow.ipv6_label, flow.nw_ttl))
        if flow.nw_frag & FRAG_ANY:
            layers.append(h.IPv6Fragment(flow.nw_proto, 100 if later else 0, not later))
    elif flow.dl_type in (0x0806, 0x8035):
        layers.append(h.ARP(flow.nw_proto, mac(flow.arp_sha), ip4(flow.nw_src),
                            mac(flow.arp_tha), ip4(flow.nw_dst)))
        layers[0].type = flow.dl_type  # type: ignore[attr-defined]
        return h.build(*layers)
    else:
        layers[-1].type = flow.dl_type  # type: ignore[attr-defined]
        return h.build(*layers, data)
    if not later:
        proto = flow.nw_proto
        if proto == 6:
            layers.append(h.TCP(flow.tp_src, flow.tp_dst, flags=flow.tcp_flags))
        elif proto == 17:
            layers.append(h.UDP(flow.tp_src, flow.tp_dst))
        elif proto == 1 and flow.dl_type == 0x0800:
            layers.append(h.ICMP(flow.tp_src, flow.tp_dst))
        elif proto == 58 and flow.dl_type == 0x86DD:
            if flow.tp_src in (135, 136) and flow.tp_dst == 0:
                layers.append(h.NeighborDiscovery(
                    flow.tp_src, 0, ip6(flow.nd_target),
                    sll=mac(flow.arp_sha) if flow.arp_sha else None,
                    tll=mac(flow.arp_tha) if flow.arp_tha else None))
                return h.build(*layers)
            layers.append(h.ICMPV6(flow.tp_src, flow.tp_dst))
        elif isinstance(layers[-1], h.IPv4 | h.IPv6Fragment):
            layers[-1].set_next(proto)
        elif isinstance(layers[-1], h.IPv6):
            layers[-1].nh = proto
    elif isinstance(layers[-1], h.IPv4):
        layers[-1].proto = flow.nw_proto
    return h.build(*layers, data)
