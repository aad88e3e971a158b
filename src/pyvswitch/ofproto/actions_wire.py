"""What an action list becomes when it crosses OpenFlow version N, as in Open vSwitch.

ovs-ofctl sends actions to the switch in the wire format of the OpenFlow
version it speaks, and the switch keeps what it decodes from that format; a
dump encodes the rule's actions in the dump's version and ovs-ofctl prints
what it decodes. The wire formats differ: OpenFlow 1.0 has ``mod_nw_dst`` but
no ``set_field``, OpenFlow 1.2 and later have ``set_field`` but no
``mod_nw_dst``, OpenFlow 1.5 has no ``load``. So the spelling a user sees
depends on both versions: ``set_field:192.0.2.9->nw_dst`` added over
OpenFlow 1.0 is kept as ``mod_nw_dst:192.0.2.9`` (that is also what
``ofproto/trace`` shows) and dumped as ``set_field:192.0.2.9->ip_dst`` over
OpenFlow 1.3.

:func:`carry` is that round trip, one encoding and one decoding, for the
actions of :mod:`pyvswitch.ofproto.actions` (which record the spelling where
Open vSwitch's decoded actions do: ``SetField.sugar``, ``StripVlan.pop``,
``SetTunnel.wide``, and ``RegLoad`` for what came in as a load). Adding a
flow over version N stores ``carry(actions, N)``; dumping over version M
prints ``carry(stored, M)`` (:func:`format_actions`). The rules are Open
vSwitch 3.1's ``encode_*``/``decode_*`` functions (lib/ofp-actions.c):

- legacy actions (``mod_dl_src``, ``mod_nw_src``/``dst``, ``mod_nw_tos``,
  ``mod_tp_src``/``dst``) stay over 1.0 and 1.1 and become ``set_field``
  over 1.2 and later, ``mod_tp_*`` naming the L4 protocol of the match;
  ``mod_nw_ecn`` is a load over 1.0, ``mod_nw_ttl`` a load over 1.0 only;
- a whole-field ``set_field`` becomes the legacy action for that field over
  1.0 and 1.1 (``mod_vlan_vid``, ``mod_dl_src``, ``mod_nw_tos``...) or, for a
  field without one, loads; a masked ``set_field`` is loads before 1.5;
- a load stays a load before 1.5 and becomes ``set_field`` over 1.5 (one
  to part of a field that ``set_field`` cannot mask stays a load: see
  :func:`_load_as_set_field`);
- ``mod_vlan_vid``/``mod_vlan_pcp`` become ``push_vlan:0x8100`` (when no tag
  is there at that point) and a ``set_field`` over 1.1 and later;
- ``strip_vlan`` and ``pop_vlan`` are each other over 1.0 and later versions;
  ``goto_table:N`` is ``resubmit(,N)`` over 1.0, where ``push_vlan`` has no
  encoding at all (a dump leaves it out; adding it is refused, as ovs-ofctl
  refuses it); ``set_tunnel`` is ``set_field:...->tun_id`` over 1.2 and later;
- "whole field" is Open vSwitch's: ``set_field:+oam->tun_flags`` (and a load
  of its one bit) is masked, since the field is 16 bits, so it travels as a
  load before 1.5, where ``set_field:oam->tun_flags`` does not;
- a write to a Geneve option field (``tun_metadataN``), masked or not and
  whether written as ``load`` or ``set_field``, is ``set_field`` in every
  version: Open vSwitch encodes it as NXAST_REG_LOAD2, which decodes so.

One difference, on purpose: Open vSwitch sends a masked ``set_field`` to a
field that OpenFlow 1.0 has an action for (Ethernet and IPv4 addresses)
over 1.0 or 1.1 as that action, which writes the whole field; we keep the
mask, as loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvswitch.flow.layout import VLAN_CFI
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.ofp_text import META_FIELDS
from pyvswitch.ofproto.actions import (
    FieldRef,
    GotoTable,
    PushVlan,
    RegLoad,
    Resubmit,
    SetField,
    SetTunnel,
    SetVlanPcp,
    SetVlanVid,
    StripVlan,
)
from pyvswitch.ofproto.actions_text import (
    as_vlan_action,
    format_actions_as_written,
    is_tun_metadata,
    ovs_field_bits,
    ovs_field_maskable,
    set_field_as_loads,
    set_field_is_exact,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from pyvswitch.flow.match import Match
    from pyvswitch.ofproto.actions import Action

#: OpenFlow versions as ovs-ofctl's ``-O`` names them, by minor number (10 is 1.0).
VERSIONS = {f"OpenFlow1{minor}": 10 + minor for minor in range(6)}
OF10, OF11, OF12, OF13, OF15 = 10, 11, 12, 13, 15

# Whole-field set_fields that OpenFlow 1.0 and 1.1 carry as a legacy action:
# field -> (the action, the field it then sets).
_LEGACY = {
    "eth_src": ("mod_dl_src", "eth_src"),
    "eth_dst": ("mod_dl_dst", "eth_dst"),
    "ip_src": ("mod_nw_src", "ip_src"),
    "ip_dst": ("mod_nw_dst", "ip_dst"),
    "ip_dscp": ("mod_nw_tos", "ip_dscp"),
    "tcp_src": ("mod_tp_src", "tp_src"),
    "udp_src": ("mod_tp_src", "tp_src"),
    "tcp_dst": ("mod_tp_dst", "tp_dst"),
    "udp_dst": ("mod_tp_dst", "tp_dst"),
}
# Legacy actions that OpenFlow 1.2 and later carry as a set_field of the same field.
_BECOME_SET_FIELD = frozenset(
    ("mod_dl_src", "mod_dl_dst", "mod_nw_src", "mod_nw_dst", "mod_nw_tos")
)
_L4_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}


def format_actions(
    actions: Iterable[Action],
    port_names: Mapping[int, str] | None = None,
    *,
    version: int = OF13,
    match: Match | None = None,
) -> str:
    """The actions as ``ovs-ofctl -O VERSION dump-flows`` prints them for a rule holding them.

    ``match`` is the rule's match: Open vSwitch takes the L4 protocol for
    ``mod_tp_src`` and whether a VLAN tag is there from it. Without it, no
    tag and no protocol are assumed.
    """
    return format_actions_as_written(carry(actions, version, match), port_names)


def check_version(actions: Iterable[Action], version: int) -> None:
    """Refuse actions that have no encoding in ``version``, as ovs-ofctl does before sending."""
    if version == OF10 and any(isinstance(a, PushVlan) for a in actions):
        raise FlowParseError(
            "none of the usable flow formats (OXM,OpenFlow11) is among the allowed flow "
            "formats (OpenFlow10,NXM)"
        )


def carry(
    actions: Iterable[Action], version: int, match: Match | None = None
) -> tuple[Action, ...]:
    """The actions as a switch holds them after they crossed OpenFlow ``version``.

    ``match`` is the flow's match (see :func:`format_actions`). Carrying twice
    over the same version changes nothing more.
    """
    tags = [False, False]
    proto = None
    if match is not None:
        tags = [
            bool(match.get("vlan_tci")[0] & VLAN_CFI),
            bool(match.get("vlan_tci1")[0] & VLAN_CFI),
        ]
        value, mask = match.get("nw_proto")
        proto = value if mask == 0xFF else None
    out: list[Action] = []
    for written in actions:
        action = as_vlan_action(written)
        out += _carry_one(action, version, proto, tagged=tags[0])
        tags = _tags_after(action, tags)
    return tuple(out)


def _tags_after(action: Action, tags: list[bool]) -> list[bool]:
    """The VLAN tags after ``action``, followed as Open vSwitch's action checks follow them."""
    if isinstance(action, PushVlan):
        return [True, tags[0]]
    if isinstance(action, StripVlan):
        return [tags[1], False]
    if isinstance(action, SetVlanVid | SetVlanPcp) and action.push_if_missing:
        return [True, tags[1]]
    if isinstance(action, SetField) and action.field == "vlan_tci":
        return [bool(action.value & VLAN_CFI), tags[1]]
    return tags


def _carry_one(action: Action, version: int, proto: int | None, *, tagged: bool) -> list[Action]:
    if isinstance(action, GotoTable) and version == OF10:
        # OpenFlow 1.0 has no instructions: Open vSwitch sends a resubmit.
        return [Resubmit(None, action.table)]
    if isinstance(action, PushVlan) and version == OF10:
        return []
    if isinstance(action, StripVlan):
        return [StripVlan(pop=version > OF10)]
    if isinstance(action, SetVlanVid | SetVlanPcp):
        return _carry_vlan(action, version, tagged=tagged)
    if isinstance(action, SetTunnel) and version >= OF12:
        return [SetField("tun_id", action.tun_id, (1 << 64) - 1)]
    if isinstance(action, RegLoad) and version >= OF15:
        return [_load_as_set_field(action)]
    if isinstance(action, SetField):
        if action.sugar:
            return _carry_legacy(action, version, proto)
        return _carry_set_field(action, version, tagged=tagged)
    return [action]


def _carry_vlan(action: SetVlanVid | SetVlanPcp, version: int, *, tagged: bool) -> list[Action]:
    if version == OF10:
        # OpenFlow 1.0's VLAN actions add a tag when there is none.
        return [_vlan_with_push(action, push=True)]
    # Later versions set a tag that must be there, pushing one first if the
    # action would have.
    push: list[Action] = [PushVlan()] if action.push_if_missing and not tagged else []
    return [*push, _vlan_with_push(action, push=False)]


def _vlan_with_push(action: SetVlanVid | SetVlanPcp, *, push: bool) -> Action:
    if isinstance(action, SetVlanVid):
        return SetVlanVid(action.vid, push_if_missing=push)
    return SetVlanPcp(action.pcp, push_if_missing=push)


def _load_as_set_field(load: RegLoad) -> Action:
    """A load as OpenFlow 1.5 carries it: a set_field, masked unless it loads the whole field.

    A part of a field that set_field cannot mask (``in_port``, ``nw_ttl``...)
    stays a load: Open vSwitch prints ``set_field:1/0xf->nw_ttl`` for it,
    which neither it nor we can read back.
    """
    dst = load.dst
    full = (1 << META_FIELDS[dst.field].bits) - 1
    if dst.ofs == 0 and dst.n_bits == ovs_field_bits(dst.field):
        return SetField(dst.field, load.value & full, full)
    if not ovs_field_maskable(dst.field):
        return load
    mask = (((1 << dst.n_bits) - 1) << dst.ofs) & full
    return SetField(dst.field, (load.value << dst.ofs) & mask, mask)


def _carry_legacy(action: SetField, version: int, proto: int | None) -> list[Action]:
    """A legacy set action (``mod_nw_dst``...) over ``version``."""
    sugar = action.sugar
    if sugar == "mod_nw_ttl":
        # OpenFlow 1.1 has a set-TTL action, 1.0 only the load.
        return [RegLoad(action.value, FieldRef("nw_ttl", 0, 8))] if version == OF10 else [action]
    if sugar == "mod_nw_ecn":
        if version == OF10:
            return [RegLoad(action.value, FieldRef("nw_ecn", 0, 2))]
        return [action] if version == OF11 else [SetField("nw_ecn", action.value, action.mask)]
    if version <= OF11:
        return [action]
    if sugar in _BECOME_SET_FIELD:
        return [SetField(action.field, action.value, action.mask)]
    # mod_tp_src/mod_tp_dst: the field is the L4 protocol's, from the match.
    l4 = _L4_NAMES.get(proto) if proto is not None else None
    if l4 is None:
        return [action]
    side = action.field.removeprefix("tp_")
    return [SetField(f"{l4}_{side}", action.value, action.mask)]


def _carry_set_field(action: SetField, version: int, *, tagged: bool) -> list[Action]:
    """A ``set_field`` as it arrived (not a legacy action, not a load) over ``version``."""
    if is_tun_metadata(action.field):
        return [action]
    whole = set_field_is_exact(action)
    if version >= OF15 or (version >= OF12 and whole):
        return [action]
    if not whole:
        return list(set_field_as_loads(action))
    if action.field == "vlan_tci":
        return _carry_vlan_tci(action.value, version, tagged=tagged)
    if action.field == "nw_tos":
        return [SetField("ip_dscp", action.value >> 2, 0x3F, "mod_nw_tos")]
    if action.field == "nw_ecn" and version == OF11:
        return [SetField("nw_ecn", action.value, action.mask, "mod_nw_ecn")]
    legacy = _LEGACY.get(action.field)
    if legacy is None:
        return list(set_field_as_loads(action))
    sugar, field = legacy
    return [SetField(field, action.value, action.mask, sugar)]


def _carry_vlan_tci(tci: int, version: int, *, tagged: bool) -> list[Action]:
    """A whole VLAN TCI written over OpenFlow 1.0 or 1.1: set VID and PCP, or strip."""
    if not tci & VLAN_CFI:
        return [StripVlan(pop=version > OF10)]
    vid, pcp = tci & 0x0FFF, tci >> 13
    if version == OF10:
        return [SetVlanVid(vid), SetVlanPcp(pcp)]
    push: list[Action] = [] if tagged else [PushVlan()]
    return [
        *push,
        SetVlanVid(vid, push_if_missing=False),
        SetVlanPcp(pcp, push_if_missing=False),
    ]
