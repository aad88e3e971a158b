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

from typing import TYPE_CHECKING

from pyvswitch.dpif.actions import (
    OdpOutput,
    OdpPopVlan,
    OdpPushVlan,
    OdpSetField,
    OdpSetMasked,
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
    if isinstance(action, OdpUserspace):
        rest = f",{action.reason}" if action.reason else ""
        return f"userspace(pid={action.pid}{rest})"
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
    pyvswitch's datapath does not have (``ct``, ``recirc``, ``clone``...) are
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
        elif item == "drop":
            raise FlowParseError(f"{text}: drop must be the only action")
        else:
            name = item.partition("(")[0]
            raise FlowParseError(f"{item}: pyvswitch's datapath has no {name!r} action")
    return tuple(actions)
