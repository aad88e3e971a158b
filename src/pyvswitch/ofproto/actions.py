"""OpenFlow actions, as data: what a rule does to a packet.

These are Open vSwitch's *ofpacts* (lib/ofp-actions.h), one frozen dataclass
each. Translation (xlate) interprets them; ``ofproto/actions_text.py`` reads and
prints them in ovs-ofctl's syntax. An empty action list means drop.

Port numbers are OpenFlow port numbers; the reserved ports use OpenFlow 1.0's
16-bit values, as ovs-ofctl prints them (``OFPP_*`` below).
"""

from __future__ import annotations

from dataclasses import dataclass

OFPP_IN_PORT = 0xFFF8
OFPP_TABLE = 0xFFF9
OFPP_NORMAL = 0xFFFA
OFPP_FLOOD = 0xFFFB
OFPP_ALL = 0xFFFC
OFPP_CONTROLLER = 0xFFFD
OFPP_LOCAL = 0xFFFE
OFPP_NONE = 0xFFFF
#: The highest ordinary port number; numbers above are reserved.
OFPP_MAX = 0xFF00


@dataclass(frozen=True, slots=True)
class FieldRef:
    """Bits ``ofs``..``ofs+n_bits-1`` of the OpenFlow field ``field`` (``reg0[0..3]``).

    ``field`` is a name from :data:`pyvswitch.flow.ofp_text.META_FIELDS`.
    """

    field: str
    ofs: int
    n_bits: int


@dataclass(frozen=True, slots=True)
class Output:
    """``output:PORT``, ``NORMAL``, ``FLOOD``, ``ALL``, ``IN_PORT``, ``LOCAL``...

    ``port`` is an OpenFlow port number, ordinary or reserved; ``max_len``
    applies to the controller only.
    """

    port: int
    max_len: int = 0


@dataclass(frozen=True, slots=True)
class OutputTrunc:
    """``output(port=PORT,max_len=N)``: output at most the first ``max_len`` bytes.

    ``port`` is an ordinary port number, ``LOCAL`` or ``IN_PORT`` (Open
    vSwitch refuses the other reserved ports when it parses the action).
    """

    port: int
    max_len: int


@dataclass(frozen=True, slots=True)
class OutputReg:
    """``output:FIELD[a..b]``: output to the port number held in a field."""

    src: FieldRef


@dataclass(frozen=True, slots=True)
class Controller:
    """``controller``/``CONTROLLER:max_len``: send to the controller (packet-in)."""

    max_len: int = 65535
    reason: str = "action"


@dataclass(frozen=True, slots=True)
class SetVlanVid:
    """``mod_vlan_vid:VID`` (pushes a tag when there is none) or ``set_field:...->vlan_vid``."""

    vid: int
    push_if_missing: bool = True


@dataclass(frozen=True, slots=True)
class SetVlanPcp:
    """``mod_vlan_pcp:PCP`` (pushes a tag when there is none)."""

    pcp: int
    push_if_missing: bool = True


@dataclass(frozen=True, slots=True)
class StripVlan:
    """``strip_vlan`` (OpenFlow 1.0) or ``pop_vlan`` (1.1+); ``pop`` says which was written."""

    pop: bool = False


@dataclass(frozen=True, slots=True)
class PushVlan:
    """``push_vlan:ETHERTYPE`` (0x8100 or 0x88a8)."""

    ethertype: int = 0x8100


@dataclass(frozen=True, slots=True)
class SetField:
    """``set_field:VALUE[/MASK]->FIELD``, and the ``mod_*`` actions that are sugar for it.

    ``field`` is a meta field name; ``value`` and ``mask`` are in that field's
    own width (as :class:`pyvswitch.flow.ofp_text.MetaField` defines it).
    ``sugar`` keeps the spelling the user wrote (``mod_dl_src`` ...), so that
    printing gives back what ovs-ofctl would print.

    One exception: ``tun_flags`` is one bit wide (oam) but its mask is kept at
    Open vSwitch's 16 bits, 0xffff for ``set_field:oam->tun_flags`` and 0x1
    for ``+oam``, because Open vSwitch carries the two differently across
    OpenFlow versions (:func:`pyvswitch.ofproto.actions_text.set_field_is_exact`).
    Writing it changes only the oam flag.
    """

    field: str
    value: int
    mask: int
    sugar: str = ""


@dataclass(frozen=True, slots=True)
class RegLoad:
    """``load:VALUE->FIELD[a..b]``."""

    value: int
    dst: FieldRef


@dataclass(frozen=True, slots=True)
class RegMove:
    """``move:SRC[a..b]->DST[c..d]``."""

    src: FieldRef
    dst: FieldRef


@dataclass(frozen=True, slots=True)
class DecTtl:
    """``dec_ttl``: decrement the IP TTL / hop limit; at 0 or 1 the packet is not forwarded."""


@dataclass(frozen=True, slots=True)
class Resubmit:
    """``resubmit(PORT,TABLE)``: look the packet up again; None means "the same"."""

    in_port: int | None = None
    table: int | None = None


@dataclass(frozen=True, slots=True)
class GotoTable:
    """``goto_table:N`` (an instruction: continue in a later table)."""

    table: int


@dataclass(frozen=True, slots=True)
class SetTunnel:
    """``set_tunnel:ID`` / ``set_tunnel64:ID``: set the tunnel ID.

    Like ``set_field:ID->tun_id``, it leaves the tunnel flags alone: the
    tunnel port that sends the packet with ``key=flow`` puts the ID in its
    header.
    """

    tun_id: int
    wide: bool = False


@dataclass(frozen=True, slots=True)
class Note:
    """``note:HEX``: does nothing; carries bytes for the controller."""

    data: bytes


Action = (
    Output
    | OutputTrunc
    | OutputReg
    | Controller
    | SetVlanVid
    | SetVlanPcp
    | StripVlan
    | PushVlan
    | SetField
    | RegLoad
    | RegMove
    | DecTtl
    | Resubmit
    | GotoTable
    | SetTunnel
    | Note
)
