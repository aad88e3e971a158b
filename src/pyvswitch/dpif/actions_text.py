"""The text form of datapath actions, as Open vSwitch 3.1 prints and reads it.

This is the ``Datapath actions:`` line of ``ofproto/trace`` and the
``actions:`` of ``dpctl/dump-flows``::

    push_vlan(vid=10,pcp=0),2,pop_vlan,set(eth(src=00:11:22:33:44:55)),3
    set(ipv4(src=192.0.2.1,ttl=63)),set(tcp(dst=8080)),2
    set(ipv4(tos=0x20/0xfc)),userspace(pid=0,slow_path(action))

The forms were recorded from Open vSwitch 3.1 (``dpctl/parse-actions``,
``dpctl/add-flow`` then ``dpctl/dump-flows``, and ``ofproto/trace``), and the
``ovs``-marked tests compare with it. What OVS does, and so what we do:

* No action at all prints ``drop``; ``drop`` is read only alone.
* A ``set()`` names one header and lists its fields in a fixed order (ipv4:
  src, dst, tos, ttl), whatever order they were written in; a field written
  twice keeps the last value. A field set under a partial mask is printed
  ``value/mask`` and a full mask is not printed. Numbers are decimal except
  ToS, traffic class and flow label, which are hexadecimal (``0`` for zero,
  as C's ``%#x``); masks of decimal fields are hexadecimal.
* ``push_vlan`` prints ``tpid=`` only when it is not 0x8100.

pyvswitch keeps one action per field (:class:`OdpSetField`,
:class:`OdpSetMasked`), so printing joins consecutive set actions on one
header into one ``set()`` when their fields come in OVS's order, as
translation commits them; reading splits a ``set()`` into its fields. Two
consequences: ``set(eth(src=A)),set(eth(dst=B))`` reads back as one
``set(eth(src=A,dst=B))`` (the same change), and the unmasked ``set()`` that
``dpctl`` accepts with ``proto`` and ``frag`` (which no datapath writes) is read
without them. ``push_vlan``'s ``cfi=`` is read and dropped (the datapath
clears it when pushing). ``userspace()`` keeps its text after the pid as it is.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pyvswitch.dpif.actions import (
    OdpClone,
    OdpOutput,
    OdpPopVlan,
    OdpPushVlan,
    OdpSetField,
    OdpSetMasked,
    OdpTnlPop,
    OdpTnlPush,
    OdpTrunc,
    OdpUserspace,
)
from pyvswitch.dpif.execute import FIELD_HEADERS, field_bits
from pyvswitch.flow.match import FlowParseError
from pyvswitch.packet.addr import (
    ip4_to_bytes,
    ip4_to_str,
    ip6_to_bytes,
    ip6_to_str,
    mac_to_bytes,
    mac_to_str,
)
from pyvswitch.packet.headers import ETH_TYPE_IP, ETH_TYPE_IPV6
from pyvswitch.packet.tunnel import (
    GRE,
    GRE_CSUM,
    GRE_KEY,
    GRE_SEQ,
    VXLAN,
    Geneve,
    GeneveOption,
    OuterIPv4,
    OuterIPv6,
    OuterUDP,
    TunnelError,
    TunnelHeader,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyvswitch.dpif.actions import OdpAction

# Each settable header's fields in the order OVS prints them: (name in the
# text, storage field or None for the read-only ones, how the value is written).
_PORTS = (("src", "tp_src", "dec"), ("dst", "tp_dst", "dec"))
_ICMP = (("type", "tp_src", "dec"), ("code", "tp_dst", "dec"))
_HEADERS: dict[str, tuple[tuple[str, str | None, str], ...]] = {
    "eth": (("src", "dl_src", "mac"), ("dst", "dl_dst", "mac")),
    "ipv4": (
        ("src", "nw_src", "ip4"),
        ("dst", "nw_dst", "ip4"),
        ("proto", None, "dec"),
        ("tos", "nw_tos", "hex"),
        ("ttl", "nw_ttl", "dec"),
        ("frag", None, "frag"),
    ),
    "ipv6": (
        ("src", "ipv6_src", "ip6"),
        ("dst", "ipv6_dst", "ip6"),
        ("label", "ipv6_label", "hex"),
        ("proto", None, "dec"),
        ("tclass", "nw_tos", "hex"),
        ("hlimit", "nw_ttl", "dec"),
        ("frag", None, "frag"),
    ),
    "tcp": _PORTS,
    "udp": _PORTS,
    "sctp": _PORTS,
    "icmp": _ICMP,
    "icmpv6": _ICMP,
}
# (header, storage field) -> (position in the header's order, name, kind).
_BY_FIELD: dict[tuple[str, str], tuple[int, str, str]] = {
    (header, field): (i, name, kind)
    for header, subs in _HEADERS.items()
    for i, (name, field, kind) in enumerate(subs)
    if field is not None
}
_FRAG_NAMES = frozenset(("no", "first", "later"))
_VLAN_TPID = 0x8100


# -- printing -------------------------------------------------------------------


def _c_hex(value: int) -> str:
    """C's ``%#x``, which OVS uses: zero prints as ``0``, not ``0x0``."""
    return f"{value:#x}" if value else "0"


def _format_value(kind: str, value: int) -> str:
    if kind == "mac":
        return mac_to_str(value.to_bytes(6, "big"))
    if kind == "ip4":
        return ip4_to_str(value.to_bytes(4, "big"))
    if kind == "ip6":
        return ip6_to_str(value.to_bytes(16, "big"))
    if kind == "hex":
        return _c_hex(value)
    return str(value)


def _format_set_field(action: OdpSetField | OdpSetMasked, header: str, kind: str) -> str:
    """``value`` or ``value/mask``; empty for a mask of zero, which OVS leaves out."""
    bits = field_bits(action.field, header)
    full = (1 << bits) - 1
    value = action.value & full
    mask = full if isinstance(action, OdpSetField) else action.mask & full
    if not mask:
        return ""
    text = _format_value(kind, value)
    if mask == full:
        return text
    # Decimal fields show their masks in hexadecimal; the others in their own form.
    mask_kind = "hex" if kind == "dec" else kind
    return f"{text}/{_format_value(mask_kind, mask)}"


def _resolve(action: OdpSetField | OdpSetMasked) -> tuple[str, int, str, str]:
    """The header a set action is printed in, and the field's position, name and kind."""
    allowed = FIELD_HEADERS.get(action.field)
    if allowed is None:
        raise ValueError(f"a datapath set action cannot set {action.field}")
    header = action.header or allowed[0]
    place = _BY_FIELD.get((header, action.field))
    if place is None:
        raise ValueError(f"a datapath set action cannot set {action.field} in {header}")
    return header, *place


def _format_other(action: OdpAction) -> str:
    if isinstance(action, OdpOutput):
        return str(action.port)
    if isinstance(action, OdpPushVlan):
        tpid = "" if action.tpid == _VLAN_TPID else f"tpid=0x{action.tpid:04x},"
        return f"push_vlan({tpid}vid={action.vid},pcp={action.pcp})"
    if isinstance(action, OdpPopVlan):
        return "pop_vlan"
    if isinstance(action, OdpTrunc):
        return f"trunc({action.max_len})"
    if isinstance(action, OdpUserspace):
        rest = f",{action.reason}" if action.reason else ""
        return f"userspace(pid={action.pid}{rest})"
    if isinstance(action, OdpTnlPush):
        return format_tnl_push(action)
    if isinstance(action, OdpTnlPop):
        return f"tnl_pop({action.port})"
    if isinstance(action, OdpClone):
        return f"clone({format_odp_actions(action.actions)})"
    raise ValueError(f"not a datapath action: {action!r}")


def format_odp_actions(actions: Sequence[OdpAction]) -> str:
    """Print datapath actions as OVS 3.1 does (``drop`` when there are none)."""
    if not actions:
        return "drop"
    parts: list[str] = []
    # The set() being built: its header, the last field's position, the fields.
    open_header = ""
    last = -1
    fields: list[str] = []
    for action in actions:
        if isinstance(action, OdpSetField | OdpSetMasked):
            header, place, name, kind = _resolve(action)
            if header != open_header or place <= last:
                if open_header:
                    parts.append(f"set({open_header}({','.join(fields)}))")
                open_header, fields = header, []
            last = place
            text = _format_set_field(action, header, kind)
            if text:
                fields.append(f"{name}={text}")
            continue
        if open_header:
            parts.append(f"set({open_header}({','.join(fields)}))")
            open_header, last, fields = "", -1, []
        parts.append(_format_other(action))
    if open_header:
        parts.append(f"set({open_header}({','.join(fields)}))")
    return ",".join(parts)


# -- reading --------------------------------------------------------------------------


def _split(text: str, delimiters: str = ",") -> list[str]:
    """Split at the delimiters that are not inside parentheses."""
    items: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FlowParseError(f"unbalanced ')' in datapath actions {text!r}")
        elif depth == 0 and ch in delimiters:
            items.append(text[start:i].strip())
            start = i + 1
    if depth:
        raise FlowParseError(f"unbalanced '(' in datapath actions {text!r}")
    items.append(text[start:].strip())
    return items


def _call(item: str, name: str) -> str:
    """The text inside ``name(...)``, which must end ``item``."""
    if not item.endswith(")"):
        raise FlowParseError(f"{item}: missing ')' after {name}(")
    return item[len(name) + 1 : -1].strip()


def _int(text: str, what: str, limit: int) -> int:
    """A number as C's ``strtoul(..., 0)`` reads it: ``0x`` hexadecimal, ``0`` octal."""
    try:
        if text[:2].lower() == "0x":
            value = int(text, 0)
        elif text[:1] == "0" and len(text) > 1:
            value = int(text[1:], 8)
        else:
            value = int(text, 10)
    except ValueError:
        raise FlowParseError(f"{text}: bad number in {what}") from None
    if not 0 <= value <= limit:
        raise FlowParseError(f"{text}: out of range in {what}")
    return value


def _parse_address(kind: str, text: str, what: str) -> int:
    """A MAC, IPv4 or IPv6 address (masks are addresses too: OVS reads no prefix lengths)."""
    conv = {"mac": mac_to_bytes, "ip4": ip4_to_bytes, "ip6": ip6_to_bytes}[kind]
    try:
        return int.from_bytes(conv(text), "big")
    except ValueError as exc:
        raise FlowParseError(f"{exc} in {what}") from None


def _parse_value(kind: str, text: str, what: str, bits: int) -> tuple[int, int]:
    full = (1 << bits) - 1
    vtext, slash, mtext = text.partition("/")
    if kind in ("mac", "ip4", "ip6"):
        value = _parse_address(kind, vtext, what)
        mask = _parse_address(kind, mtext, what) if slash else full
    else:
        value = _int(vtext, what, full)
        mask = _int(mtext, what, full) if slash else full
    return value, mask


def _parse_set(body: str) -> list[OdpAction]:
    paren = body.find("(")
    header = body[:paren].strip() if paren >= 0 else body
    if paren < 0 or header not in _HEADERS:
        raise FlowParseError(f"set({body}): pyvswitch sets only {', '.join(_HEADERS)} headers")
    inner = _call(body, header)
    subs = {name: (field, kind) for name, field, kind in _HEADERS[header]}
    found: dict[str, tuple[int, int]] = {}
    for item in _split(inner) if inner else []:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or name not in subs:
            raise FlowParseError(f"{item}: unknown field in set({header}(...))")
        field, kind = subs[name]
        what = f"set({header}({name}=...))"
        text = text.strip()
        if field is None:
            # proto and frag are part of the key but no datapath writes them:
            # checked, then dropped.
            if kind == "frag":
                if text.partition("/")[0] not in _FRAG_NAMES:
                    raise FlowParseError(f"{text}: unknown fragment type in {what}")
            else:
                _parse_value(kind, text, what, 8)
            continue
        # A field written twice keeps the last value, as in OVS.
        found[field] = _parse_value(kind, text, what, field_bits(field, header))
    actions: list[OdpAction] = []
    for _, field, _ in _HEADERS[header]:
        if field is None or field not in found:
            continue
        canonical = "" if FIELD_HEADERS[field][0] == header else header
        value, mask = found[field]
        if mask == (1 << field_bits(field, header)) - 1:
            actions.append(OdpSetField(field, value, canonical))
        else:
            actions.append(OdpSetMasked(field, value, mask, canonical))
    return actions


def _parse_push_vlan(body: str) -> OdpPushVlan:
    values: dict[str, int] = {}
    limits = {"tpid": 0xFFFF, "vid": 0x0FFF, "pcp": 7, "cfi": 1}
    for item in _split(body) if body else []:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or name not in limits:
            raise FlowParseError(f"{item}: unknown field in push_vlan(...)")
        values[name] = _int(text.strip(), f"push_vlan({name}=...)", limits[name])
    if "vid" not in values or "pcp" not in values:
        raise FlowParseError(f"push_vlan({body}): vid and pcp are required")
    return OdpPushVlan(values["vid"], values["pcp"], values.get("tpid", _VLAN_TPID))


def _parse_userspace(body: str) -> OdpUserspace:
    first, _, rest = body.partition(",")
    name, eq, text = first.partition("=")
    if name.strip() != "pid" or not eq:
        raise FlowParseError(f"userspace({body}): expected pid= first")
    return OdpUserspace(rest.strip(), _int(text.strip(), "userspace(pid=...)", 0xFFFFFFFF))


def parse_odp_actions(text: str) -> tuple[OdpAction, ...]:
    """Read datapath actions written as OVS prints them; raises :class:`FlowParseError`.

    The empty string and ``drop`` are no actions. As in OVS, actions are
    separated by commas or white space, and empty ones are skipped. Actions
    pyvswitch's datapath does not have (``ct``, ``recirc``...) are
    refused by name.
    """
    text = text.strip()
    if not text or text == "drop":
        return ()
    actions: list[OdpAction] = []
    for item in _split(text, ", \t\r\n"):
        if not item:
            continue
        if item.isdigit():
            actions.append(OdpOutput(_int(item, "an output port", 0xFFFFFFFF)))
        elif item == "pop_vlan":
            actions.append(OdpPopVlan())
        elif item.startswith("push_vlan("):
            actions.append(_parse_push_vlan(_call(item, "push_vlan")))
        elif item.startswith("set("):
            actions.extend(_parse_set(_call(item, "set")))
        elif item.startswith("userspace("):
            actions.append(_parse_userspace(_call(item, "userspace")))
        elif item.startswith("tnl_push("):
            actions.append(parse_tnl_push(_call(item, "tnl_push")))
        elif item.startswith("trunc("):
            actions.append(OdpTrunc(_int(_call(item, "trunc"), "trunc(...)", 0xFFFFFFFF)))
        elif item.startswith("tnl_pop("):
            actions.append(OdpTnlPop(_int(_call(item, "tnl_pop"), "tnl_pop(...)", 0xFFFFFFFF)))
        elif item.startswith("clone("):
            actions.append(OdpClone(parse_odp_actions(_call(item, "clone"))))
        elif item == "drop":
            raise FlowParseError(f"{text}: drop must be the only action")
        else:
            name = item.partition("(")[0]
            raise FlowParseError(f"{item}: pyvswitch's datapath has no {name!r} action")
    return tuple(actions)


# -- tunnel actions -------------------------------------------------------------------
#
# tnl_push's header(...) describes the bytes of an outer header field by field,
# in the fixed order OVS's lib/odp-util.c prints and reads them; size= and
# type= must agree with the header that follows, as OVS checks. Numbers that
# OVS prints as 0x%x must be written with 0x; the others are read as C's %i.


def _format_tunnel(tunnel: VXLAN | Geneve | GRE) -> str:
    if isinstance(tunnel, VXLAN):
        return f"vxlan(flags={tunnel.flags:#x},vni={tunnel.vni:#x})"
    if isinstance(tunnel, Geneve):
        bits = ("oam," if tunnel.oam else "") + ("crit," if tunnel.critical else "")
        opts = "".join(_format_geneve_option(opt) for opt in tunnel.options)
        return f"geneve({bits}vni={tunnel.vni:#x}" + (f",options({opts})" if opts else "") + ")"
    text = f"gre((flags={tunnel.flags:#x},proto={tunnel.protocol:#x})"
    for name, value in (("csum", tunnel.csum), ("key", tunnel.key), ("seq", tunnel.seq)):
        if value is not None:
            text += f",{name}={value:#x}"
    return text + ")"


def _format_geneve_option(opt: GeneveOption) -> str:
    # OVS prints the data as one hexadecimal number without leading zeros.
    data = ""
    if opt.data:
        value = int.from_bytes(opt.data, "big")
        data = f",{value:#x}" if value else ",0"
    # Class and type as C's %#x, which prints zero as 0 (format_geneve_opts()).
    return f"{{class={_c_hex(opt.opt_class)},type={_c_hex(opt.type)},len={len(opt.data)}{data}}}"


def format_tnl_push(action: OdpTnlPush) -> str:
    """``tnl_push(tnl_port(N),header(...),out_port(M))`` as OVS 3.1 prints it."""
    h = action.header
    ip = h.ip
    if isinstance(ip, OuterIPv4):
        ip_text = (
            f"ipv4(src={ip.src},dst={ip.dst},proto={ip.proto},tos={_c_hex(ip.tos)},"
            f"ttl={ip.ttl},frag={ip.frag:#x})"
        )
    else:
        ip_text = (
            f"ipv6(src={ip6_to_str(ip6_to_bytes(ip.src))},dst={ip6_to_str(ip6_to_bytes(ip.dst))},"
            f"label={ip.label},proto={ip.proto},tclass={ip.tclass:#x},hlimit={ip.hlimit})"
        )
    udp = f"udp(src={h.udp.src},dst={h.udp.dst},csum={h.udp.csum:#x})," if h.udp else ""
    return (
        f"tnl_push(tnl_port({action.tnl_port}),header(size={h.size},type={h.type},"
        f"eth(dst={h.eth_dst},src={h.eth_src},dl_type=0x{h.eth_type:04x}),{ip_text},"
        f"{udp}{_format_tunnel(h.tunnel)}),out_port({action.out_port}))"
    )


def _fields(body: str, names: tuple[str, ...], what: str) -> list[str]:
    """The values of ``name=value`` items, which must be exactly ``names`` in that order."""
    items = _split(body) if body else []
    got = [item.partition("=")[0].strip() for item in items]
    if tuple(got) != names or not all("=" in item for item in items):
        raise FlowParseError(f"{what}({body}): expected {'=,'.join(names)}= in this order")
    return [item.partition("=")[2].strip() for item in items]


def _hex(text: str, what: str, bits: int) -> int:
    """A number OVS reads as ``0x%x``: the 0x is required."""
    if text[:2].lower() != "0x":
        raise FlowParseError(f"{text}: {what} must be hexadecimal, starting 0x")
    return _int(text, what, (1 << bits) - 1)


def _named(item: str, name: str) -> str:
    if not item.startswith(f"{name}("):
        raise FlowParseError(f"{item}: expected {name}(...)")
    return _call(item, name)


def _address(kind: str, text: str, what: str) -> str:
    """Check an address and keep it in its printed form."""
    raw = _parse_address(kind, text, what).to_bytes(16 if kind == "ip6" else 4, "big")
    return ip6_to_str(raw) if kind == "ip6" else ip4_to_str(raw)


def _parse_outer_ip(item: str, eth_type: int) -> OuterIPv4 | OuterIPv6:
    if eth_type == ETH_TYPE_IP:
        src, dst, proto, tos, ttl, frag = _fields(
            _named(item, "ipv4"), ("src", "dst", "proto", "tos", "ttl", "frag"), "ipv4"
        )
        return OuterIPv4(
            _address("ip4", src, "ipv4(src=...)"),
            _address("ip4", dst, "ipv4(dst=...)"),
            _int(proto, "ipv4(proto=...)", 0xFF),
            _int(tos, "ipv4(tos=...)", 0xFF),
            _int(ttl, "ipv4(ttl=...)", 0xFF),
            _hex(frag, "ipv4(frag=...)", 16),
        )
    if eth_type != ETH_TYPE_IPV6:
        raise FlowParseError(f"dl_type=0x{eth_type:04x}: a tunnel header is IPv4 or IPv6")
    src, dst, label, proto, tclass, hlimit = _fields(
        _named(item, "ipv6"), ("src", "dst", "label", "proto", "tclass", "hlimit"), "ipv6"
    )
    return OuterIPv6(
        _address("ip6", src, "ipv6(src=...)"),
        _address("ip6", dst, "ipv6(dst=...)"),
        _int(proto, "ipv6(proto=...)", 0xFF),
        _hex(tclass, "ipv6(tclass=...)", 8),
        _int(label, "ipv6(label=...)", 0xFFFFF),
        _int(hlimit, "ipv6(hlimit=...)", 0xFF),
    )


_GENEVE_OPTION = re.compile(
    r"\{class=(0x[0-9a-fA-F]+|0),type=(0x[0-9a-fA-F]+|0),len=([0-9]+)(?:,(0x[0-9a-fA-F]+|0))?\}"
)


def _parse_geneve_options(text: str) -> tuple[GeneveOption, ...]:
    options: list[GeneveOption] = []
    pos = 0
    while pos < len(text):
        match = _GENEVE_OPTION.match(text, pos)
        if match is None:
            raise FlowParseError(f"{text[pos:]}: expected {{class=0x..,type=0x..,len=N[,0x..]}}")
        length = int(match[3])
        if length % 4 or length > 124:  # 31 words of 4 bytes
            raise FlowParseError(f"len={length}: Geneve option lengths are multiples of 4 to 124")
        value = int(match[4], 16) if match[4] else 0
        if value >> (8 * length):
            raise FlowParseError(f"{match[4]}: more than len={length} bytes of Geneve option data")
        options.append(
            GeneveOption(
                0 if match[1] == "0" else _hex(match[1], "a Geneve option class", 16),
                0 if match[2] == "0" else _hex(match[2], "a Geneve option type", 8),
                value.to_bytes(length, "big"),
            )
        )
        pos = match.end()
    return tuple(options)


def _parse_geneve(body: str) -> Geneve:
    oam = body.startswith("oam,")
    body = body.removeprefix("oam,")
    crit = body.startswith("crit,")
    body = body.removeprefix("crit,")
    vni_text, _, rest = body.partition(",")
    if not vni_text.startswith("vni="):
        raise FlowParseError(f"geneve({body}): expected [oam,][crit,]vni=...")
    options: tuple[GeneveOption, ...] = ()
    if rest:
        options = _parse_geneve_options(_named(rest, "options"))
    return Geneve(_int(vni_text[4:], "geneve(vni=...)", 0xFFFFFF), options, oam, crit)


def _parse_gre(body: str) -> GRE:
    items = _split(body)
    flags_text, proto_text = _fields(
        items[0].removeprefix("(").removesuffix(")"), ("flags", "proto"), "gre("
    )
    flags = _hex(flags_text, "gre(flags=...)", 16)
    if flags & ~(GRE_CSUM | GRE_KEY | GRE_SEQ):
        raise FlowParseError(f"gre(flags={flags_text}): pyvswitch sends only the C, K and S flags")
    wanted = tuple(
        name
        for bit, name in ((GRE_CSUM, "csum"), (GRE_KEY, "key"), (GRE_SEQ, "seq"))
        if flags & bit
    )
    values = _fields(",".join(items[1:]), wanted, f"gre(flags={flags_text}),")
    found = dict(zip(wanted, values, strict=True))
    limits = {"csum": 16, "key": 32, "seq": 32}
    parsed = {name: _hex(text, f"gre({name}=...)", limits[name]) for name, text in found.items()}
    return GRE(
        _hex(proto_text, "gre(proto=...)", 16),
        parsed.get("key"),
        parsed.get("seq"),
        parsed.get("csum"),
    )


def _parse_tunnel(items: list[str]) -> tuple[OuterUDP | None, VXLAN | Geneve | GRE]:
    if len(items) == 1 and items[0].startswith("gre("):
        return None, _parse_gre(_call(items[0], "gre"))
    if len(items) != 2:  # udp(...) then the tunnel header
        raise FlowParseError(f"{','.join(items)}: expected udp(...),vxlan|geneve(...) or gre(...)")
    src, dst, csum = _fields(_named(items[0], "udp"), ("src", "dst", "csum"), "udp")
    udp = OuterUDP(
        _int(src, "udp(src=...)", 0xFFFF),
        _int(dst, "udp(dst=...)", 0xFFFF),
        _hex(csum, "udp(csum=...)", 16),
    )
    if items[1].startswith("vxlan("):
        flags, vni = _fields(_call(items[1], "vxlan"), ("flags", "vni"), "vxlan")
        return udp, VXLAN(_hex(vni, "vxlan(vni=...)", 24), _hex(flags, "vxlan(flags=...)", 32))
    return udp, _parse_geneve(_named(items[1], "geneve"))


def _parse_header(body: str) -> TunnelHeader:
    items = _split(body)
    if len(items) < 4:  # size, type, eth and ip come first
        raise FlowParseError(f"header({body}): expected size=,type=,eth(...),ip...")
    size, kind = _fields(",".join(items[:2]), ("size", "type"), "header")
    dst, src, dl_type = _fields(_named(items[2], "eth"), ("dst", "src", "dl_type"), "eth")
    eth_type = _hex(dl_type, "eth(dl_type=...)", 16)
    ip = _parse_outer_ip(items[3], eth_type)
    udp, tunnel = _parse_tunnel(items[4:])
    try:
        header = TunnelHeader(
            _address_mac(dst, "eth(dst=...)"), _address_mac(src, "eth(src=...)"), ip, udp, tunnel
        )
        derived = (header.size, header.type)
    except TunnelError as exc:
        raise FlowParseError(f"header(...): {exc}") from None
    given = (
        _int(size, "header(size=...)", 0xFFFFFFFF),
        _int(kind, "header(type=...)", 0xFFFFFFFF),
    )
    if given != derived:
        raise FlowParseError(
            f"header(size={size},type={kind}): the header described has "
            f"size={derived[0]},type={derived[1]}"
        )
    return header


def _address_mac(text: str, what: str) -> str:
    return mac_to_str(_parse_address("mac", text, what).to_bytes(6, "big"))


def parse_tnl_push(body: str) -> OdpTnlPush:
    """Read the inside of ``tnl_push(...)``; raises :class:`FlowParseError`."""
    items = _split(body)
    if len(items) != 3:  # tnl_port, header, out_port
        raise FlowParseError(f"tnl_push({body}): expected tnl_port(N),header(...),out_port(M)")
    tnl_port = _int(_named(items[0], "tnl_port"), "tnl_port(...)", 0xFFFFFFFF)
    header = _parse_header(_named(items[1], "header"))
    out_port = _int(_named(items[2], "out_port"), "out_port(...)", 0xFFFFFFFF)
    return OdpTnlPush(tnl_port, header, out_port)
