"""The OpenFlow text form of actions, as ovs-ofctl reads and prints it.

``output:1,mod_vlan_vid:10,set_field:192.0.2.1->ip_src,resubmit(,3)``: the
part of a flow after ``actions=``. :func:`parse_actions` reads Open vSwitch's
syntax into the dataclasses of :mod:`pyvswitch.ofproto.actions`,
:func:`format_actions_as_written` prints them, and :func:`check_actions` checks
them against the flow's match. Error messages are Open vSwitch 3.1's, word for
word (without the ``ovs-ofctl:`` prefix).

**Which form is printed.** The actions keep the spelling Open vSwitch's own
decoded actions keep: :class:`~pyvswitch.ofproto.actions.StripVlan` ``pop``,
:class:`~pyvswitch.ofproto.actions.SetField` ``sugar`` (``mod_nw_dst`` and
the other legacy set actions), :class:`~pyvswitch.ofproto.actions.SetTunnel`
``wide``, and :class:`~pyvswitch.ofproto.actions.RegLoad` for a ``load``.
:func:`format_actions_as_written` prints each in that spelling, which is what
``ofproto/trace`` shows for a rule, and ``parse_actions`` reads it back to
the same actions. Which spelling a rule holds, and which one a dump shows,
depends on the OpenFlow version the flow was added and dumped with:
:mod:`pyvswitch.ofproto.actions_wire` converts between them.

Other normalisations are Open vSwitch's own: a ``load`` wider than 64 bits
becomes one ``load`` per run of at most 64 contiguous bits (we parse it into
one :class:`RegLoad` each, so that what is stored is what is printed); field
names become Open vSwitch's (``nw_src`` is ``ip_src``, ``NXM_OF_TCP_DST`` in
``load`` and ``move``); ``note`` data is
padded with zero bytes to the length the OpenFlow encoding gives it; every way
of sending to the controller (``controller``, ``output:CONTROLLER``,
``controller(max_len=N)``) is a :class:`Controller`.

**Checks.** :func:`parse_actions` also makes the checks Open vSwitch makes
when a flow is added that do not depend on the match (output to a port that
does not exist, writing a read-only field, an impossible table), after the
syntax checks, in Open vSwitch's order. :func:`check_actions` makes all of
them plus those that depend on the match (a field's prerequisites, a VLAN
tag that must be there, the table the flow is in).

**Error messages.** A :class:`FlowParseError`'s message is what ovs-ofctl
prints after ``ovs-ofctl:``. When a check fails, ovs-ofctl prints only
``actions are invalid with specified match (OFPBAC_...)`` and logs the reason
on the line before (``set_field tcp_dst lacks correct prerequisites``); we
put that reason first, joined by "; ". Log lines about a value that the
error names anyway (``port 70000 is outside the supported range...``) are
left out. One difference of order: an action list with both a
match-independent and a match-dependent error reports the former first
(:func:`parse_actions` makes its checks before :func:`check_actions` sees the
match), where Open vSwitch reports whichever comes first in the list.

**Where we refuse what Open vSwitch 3.1 accepts.** Each of these would change
what a flow does without anyone noticing:

- trailing garbage and signs in numbers (``load:5x->reg0[]`` loads 5 in OVS,
  ``load:-1->metadata[]`` loads all ones, ``set_tunnel:-1`` sets all ones,
  ``mod_dl_src:00:11:22:33:44:55xyz`` ignores ``xyz``);
- ``set_field:5->vlan_vid`` without the 0x1000 "present" bit (OVS accepts it
  and produces an action it cannot decode);
- ``set_field:...->dl_vlan`` and ``->dl_vlan_pcp``, which OVS 3.1 encodes as
  a write to ``in_port``;
- a masked ``set_field`` whose mask is zero (OVS stores no action at all);
- writing bits 0 and 1 of ``nw_tos`` (OVS silently ignores them: a write to
  ``nw_tos`` changes only the DSCP bits) and bits 8..15 of ``arp_op`` (OVS
  keeps 8 bits: ``load:0x12c->NXM_OF_ARP_OP[]`` sets opcode 44);
- ``goto_table:255`` (there is no table 255: OVS accepts the flow and drops
  every packet that reaches the action);
- ``output:FIELD`` from more than 64 bits (OVS 3.1 prints
  ``output:ipv6_src[]`` back as ``output:NXM_NX_IPV6_SRC[1..64]``);
- header-changing ``mod_*`` actions whose header the match does not
  guarantee (``mod_nw_src`` without ``ip``): OVS accepts them only over
  OpenFlow 1.0, and their OpenFlow 1.3 form, which a dump prints, would be
  refused.

Not supported (refused with a message saying so): Open vSwitch actions
outside the data model (``group``, ``learn``, ``ct``, ``enqueue``...),
``dec_ttl`` with controller ids, ``controller`` with ``id``, ``userdata`` or
``pause``, ``resubmit`` with ``ct``, ``output(port=...,max_len=...)``, table
names, and fields outside :data:`pyvswitch.flow.ofp_text.META_FIELDS`
(``pkt_mark``, ``xreg0``, ``vlan_vid`` in ``load`` and ``move``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvswitch.flow.layout import TNL_F_OAM, VLAN_CFI
from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.flow.ofp_text import (
    META_FIELDS,
    PORT_NAMES,
    PREREQS,
    TNL_FLAG_NAMES,
    MetaField,
    c_hex,
    c_int,
    format_flags,
    parse_field_value,
)
from pyvswitch.ofproto.actions import (
    OFPP_ALL,
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_IN_PORT,
    OFPP_LOCAL,
    OFPP_MAX,
    OFPP_NORMAL,
    OFPP_TABLE,
    Action,
    Controller,
    DecTtl,
    FieldRef,
    GotoTable,
    Note,
    Output,
    OutputReg,
    OutputTrunc,
    PushVlan,
    RegLoad,
    RegMove,
    Resubmit,
    SetField,
    SetTunnel,
    SetVlanPcp,
    SetVlanVid,
    StripVlan,
)
from pyvswitch.packet.addr import ip6_to_str, mac_to_bytes, mac_to_str

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "check_actions",
    "format_actions_as_written",
    "format_port",
    "is_tun_metadata",
    "parse_actions",
    "set_field_is_exact",
]

#: The mask of a set_field that writes all 16 bits of tun_flags.
_TNL_FLAGS_EXACT = 0xFFFF

# The second line ovs-ofctl prints after a check fails; the first (the
# reason) is a log message, which we put in front of it.
_INVALID = "actions are invalid with specified match"
_MATCH_INCONSISTENT = f"{_INVALID} (OFPBAC_MATCH_INCONSISTENT)"
_BAD_OUT_PORT = f"{_INVALID} (OFPBAC_BAD_OUT_PORT)"
_BAD_SET_ARGUMENT = f"{_INVALID} (OFPBAC_BAD_SET_ARGUMENT)"
_BAD_SET_LEN = f"{_INVALID} (OFPBAC_BAD_SET_LEN)"
_BAD_TAG = f"{_INVALID} (OFPBAC_BAD_TAG)"
_BAD_TABLE_ID = f"{_INVALID} (OFPBIC_BAD_TABLE_ID)"


# -- fields ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """A field as Open vSwitch's actions see it (its ``struct mf_field``).

    ``name`` is Open vSwitch's name for it, which is also a key of
    :data:`META_FIELDS`; ``nxm`` the name ``load`` and ``move`` print;
    ``bits`` its width in subfields (``[]``) and ``nbytes`` the width values
    are parsed at. ``limit`` is the largest value ``set_field`` accepts.
    """

    name: str
    nxm: str
    bits: int
    nbytes: int
    kind: str
    writable: bool = True
    maskable: bool = True
    prereq: str | None = None
    limit: int | None = None


def _f(
    name: str,
    nxm: str,
    bits: int,
    kind: str,
    *,
    writable: bool = True,
    maskable: bool = True,
    prereq: str | None = None,
    limit: int | None = None,
) -> _Field:
    """A field whose values are parsed at its width rounded up to whole bytes."""
    return _Field(name, nxm, bits, (bits + 7) // 8, kind, writable, maskable, prereq, limit)


_FIELD_LIST = [
    # Open vSwitch's in_port is the 16-bit OpenFlow 1.0 port number.
    _f("in_port", "NXM_OF_IN_PORT", 16, "port", maskable=False),
    _f("eth_src", "NXM_OF_ETH_SRC", 48, "mac"),
    _f("eth_dst", "NXM_OF_ETH_DST", 48, "mac"),
    _f("eth_type", "NXM_OF_ETH_TYPE", 16, "hex", writable=False, maskable=False),
    _f("vlan_tci", "NXM_OF_VLAN_TCI", 16, "hex"),
    _f("ip_src", "NXM_OF_IP_SRC", 32, "ip4", prereq="ip4"),
    _f("ip_dst", "NXM_OF_IP_DST", 32, "ip4", prereq="ip4"),
    _f("ipv6_src", "NXM_NX_IPV6_SRC", 128, "ip6", prereq="ip6"),
    _f("ipv6_dst", "NXM_NX_IPV6_DST", 128, "ip6", prereq="ip6"),
    # ipv6_label is parsed as 4 bytes and then checked against its 20 bits,
    # which is where Open vSwitch's "is not a valid value" message comes from.
    _Field("ipv6_label", "NXM_NX_IPV6_LABEL", 20, 4, "hex", prereq="ip6", limit=0xFFFFF),
    _f("nw_proto", "NXM_OF_IP_PROTO", 8, "dec", writable=False, maskable=False, prereq="ip"),
    _f("nw_tos", "NXM_OF_IP_TOS", 8, "dec", maskable=False, prereq="ip"),
    _Field("ip_dscp", "OXM_OF_IP_DSCP", 6, 1, "dec", maskable=False, prereq="ip", limit=63),
    _Field("nw_ecn", "NXM_NX_IP_ECN", 2, 1, "dec", maskable=False, prereq="ip", limit=3),
    _f("nw_ttl", "NXM_NX_IP_TTL", 8, "dec", maskable=False, prereq="ip"),
    _Field("ip_frag", "NXM_NX_IP_FRAG", 2, 1, "hex", writable=False, prereq="ip"),
    # The ARP opcode is 16 bits on the wire but Open vSwitch keeps 8.
    _f("arp_op", "NXM_OF_ARP_OP", 16, "dec", maskable=False, prereq="arp", limit=255),
    _f("arp_spa", "NXM_OF_ARP_SPA", 32, "ip4", prereq="arp"),
    _f("arp_tpa", "NXM_OF_ARP_TPA", 32, "ip4", prereq="arp"),
    _f("arp_sha", "NXM_NX_ARP_SHA", 48, "mac", prereq="arp"),
    _f("arp_tha", "NXM_NX_ARP_THA", 48, "mac", prereq="arp"),
    _f("tcp_src", "NXM_OF_TCP_SRC", 16, "dec", prereq="tcp"),
    _f("tcp_dst", "NXM_OF_TCP_DST", 16, "dec", prereq="tcp"),
    _f("udp_src", "NXM_OF_UDP_SRC", 16, "dec", prereq="udp"),
    _f("udp_dst", "NXM_OF_UDP_DST", 16, "dec", prereq="udp"),
    _f("sctp_src", "OXM_OF_SCTP_SRC", 16, "dec", prereq="sctp"),
    _f("sctp_dst", "OXM_OF_SCTP_DST", 16, "dec", prereq="sctp"),
    _Field("tcp_flags", "NXM_NX_TCP_FLAGS", 12, 2, "hex", writable=False, prereq="tcp"),
    _f("icmp_type", "NXM_OF_ICMP_TYPE", 8, "dec", maskable=False, prereq="icmp4"),
    _f("icmp_code", "NXM_OF_ICMP_CODE", 8, "dec", maskable=False, prereq="icmp4"),
    _f("icmpv6_type", "NXM_NX_ICMPV6_TYPE", 8, "dec", maskable=False, prereq="icmp6"),
    _f("icmpv6_code", "NXM_NX_ICMPV6_CODE", 8, "dec", maskable=False, prereq="icmp6"),
    _f("nd_target", "NXM_NX_ND_TARGET", 128, "ip6", prereq="nd"),
    _f("nd_sll", "NXM_NX_ND_SLL", 48, "mac", prereq="nd_ns"),
    _f("nd_tll", "NXM_NX_ND_TLL", 48, "mac", prereq="nd_na"),
    _f("tun_id", "NXM_NX_TUN_ID", 64, "hex"),
    _f("tun_src", "NXM_NX_TUN_IPV4_SRC", 32, "ip4"),
    _f("tun_dst", "NXM_NX_TUN_IPV4_DST", 32, "ip4"),
    _f("tun_ipv6_src", "NXM_NX_TUN_IPV6_SRC", 128, "ip6"),
    _f("tun_ipv6_dst", "NXM_NX_TUN_IPV6_DST", 128, "ip6"),
    # A 16-bit field of which OpenFlow reaches one bit (oam): subfields
    # count 1 bit, set_field values are 16 bits (see set_field_is_exact()).
    _Field("tun_flags", "NXM_NX_TUN_FLAGS", 1, 2, "tunflags", limit=TNL_F_OAM),
    # Geneve options by the bridge's TLV map: 124 bytes here, as ovs-ofctl
    # reads them; the switch checks them against the option's mapped length.
    *(_f(f"tun_metadata{i}", f"NXM_NX_TUN_METADATA{i}", 992, "hex") for i in range(64)),
    _f("metadata", "OXM_OF_METADATA", 64, "hex"),
    *(_f(f"reg{i}", f"NXM_NX_REG{i}", 32, "hex") for i in range(16)),
]
_FIELDS: dict[str, _Field] = {f.name: f for f in _FIELD_LIST}

#: Names ``set_field`` and subfields accept (Open vSwitch's ``mf_from_name()``).
_BY_NAME: dict[str, _Field] = {
    **_FIELDS,
    "dl_src": _FIELDS["eth_src"],
    "dl_dst": _FIELDS["eth_dst"],
    "dl_type": _FIELDS["eth_type"],
    "nw_src": _FIELDS["ip_src"],
    "nw_dst": _FIELDS["ip_dst"],
    "ip_proto": _FIELDS["nw_proto"],
    "ip_ecn": _FIELDS["nw_ecn"],
    "nw_frag": _FIELDS["ip_frag"],
    "tp_src": _FIELDS["tcp_src"],
    "tp_dst": _FIELDS["tcp_dst"],
    "tunnel_id": _FIELDS["tun_id"],
}
# Every name is also a META_FIELDS name, so the data model can carry it.
assert all(name in META_FIELDS for name in _BY_NAME)
#: NXM and OXM names, which only subfields (``load``, ``move``, ``output``) accept.
_BY_NXM: dict[str, _Field] = {f.nxm: f for f in _FIELD_LIST}
for _oxm, _name in {
    "OXM_OF_ETH_DST": "eth_dst",
    "OXM_OF_ETH_SRC": "eth_src",
    "OXM_OF_ETH_TYPE": "eth_type",
    "OXM_OF_IP_ECN": "nw_ecn",
    "OXM_OF_IP_PROTO": "nw_proto",
    "OXM_OF_IPV4_SRC": "ip_src",
    "OXM_OF_IPV4_DST": "ip_dst",
    "OXM_OF_TCP_SRC": "tcp_src",
    "OXM_OF_TCP_DST": "tcp_dst",
    "OXM_OF_UDP_SRC": "udp_src",
    "OXM_OF_UDP_DST": "udp_dst",
    "OXM_OF_ICMPV4_TYPE": "icmp_type",
    "OXM_OF_ICMPV4_CODE": "icmp_code",
    "OXM_OF_ARP_OP": "arp_op",
    "OXM_OF_ARP_SPA": "arp_spa",
    "OXM_OF_ARP_TPA": "arp_tpa",
    "OXM_OF_ARP_SHA": "arp_sha",
    "OXM_OF_ARP_THA": "arp_tha",
    "OXM_OF_IPV6_SRC": "ipv6_src",
    "OXM_OF_IPV6_DST": "ipv6_dst",
    "OXM_OF_IPV6_FLABEL": "ipv6_label",
    "OXM_OF_ICMPV6_TYPE": "icmpv6_type",
    "OXM_OF_ICMPV6_CODE": "icmpv6_code",
    "OXM_OF_IPV6_ND_TARGET": "nd_target",
    "OXM_OF_IPV6_ND_SLL": "nd_sll",
    "OXM_OF_IPV6_ND_TLL": "nd_tll",
    "OXM_OF_TUNNEL_ID": "tun_id",
    "OXM_OF_TCP_FLAGS": "tcp_flags",
    "ONFOXM_ET_TCP_FLAGS": "tcp_flags",
}.items():
    _BY_NXM[_oxm] = _FIELDS[_name]

# The outer ToS and TTL of a tunnel: Open vSwitch has them as read-only
# fields with no OpenFlow encoding, so they can be neither set nor matched.
_READ_ONLY_TUNNEL = frozenset(("tun_tos", "tun_ttl"))

# Fields Open vSwitch has and pyvswitch does not, so that refusing them can
# say "not supported" rather than Open vSwitch's "unknown field".
_UNSUPPORTED_FIELDS = frozenset(
    {
        "vlan_vid",
        "vlan_pcp",
        "dl_vlan",
        "dl_vlan_pcp",
        "in_port_oxm",
        "pkt_mark",
        "skb_priority",
        "actset_output",
        "packet_type",
        "conj_id",
        "recirc_id",
        "dp_hash",
        "ct_state",
        "ct_zone",
        "ct_mark",
        "ct_label",
        "mpls_label",
        "mpls_tc",
        "mpls_bos",
        "mpls_ttl",
        "tun_tos",
        "tun_ttl",
        "tun_gbp_id",
        "tun_gbp_flags",
        "ipv6_exthdr",
        "OXM_OF_IN_PORT",
        "OXM_OF_VLAN_VID",
        "OXM_OF_VLAN_PCP",
        "NXM_NX_PKT_MARK",
        *(f"xreg{i}" for i in range(8)),
        *(f"OXM_OF_PKT_REG{i}" for i in range(8)),
        *(f"xxreg{i}" for i in range(4)),
        *(f"NXM_NX_XXREG{i}" for i in range(4)),
    }
)


def _nw_proto_is(m: Match, proto: int) -> bool:
    value, mask = m.get("nw_proto")
    return mask == 0xFF and value == proto


def _dl_type_is(m: Match, dl_type: int) -> bool:
    value, mask = m.get("dl_type")
    return mask == 0xFFFF and value == dl_type


#: Prerequisite name -> (check, what it needs), ofp_text's plus the per-protocol
#: ones that only actions distinguish (a udp_src set_field needs udp, not tcp).
_PREREQS: dict[str, tuple[Callable[[Match], bool], str]] = {
    **PREREQS,
    "udp": (
        lambda m: PREREQS["tp"][0](m) and _nw_proto_is(m, 17),
        "udp or udp6, not a later fragment",
    ),
    "sctp": (
        lambda m: PREREQS["tp"][0](m) and _nw_proto_is(m, 132),
        "sctp or sctp6, not a later fragment",
    ),
    "icmp4": (
        lambda m: PREREQS["icmp"][0](m) and _dl_type_is(m, 0x0800),
        "icmp, not a later fragment",
    ),
    "icmp6": (
        lambda m: PREREQS["icmp"][0](m) and _dl_type_is(m, 0x86DD),
        "icmp6, not a later fragment",
    ),
}

# The legacy header-changing actions, which are set_field under another name:
# action -> the field it sets. mod_nw_tos takes the whole ToS byte but sets
# the DSCP field, as Open vSwitch does; mod_tp_src and mod_tp_dst set the L4
# port of whichever protocol the match has, which only "tp_src" can say.
_MOD_ACTIONS: dict[str, str] = {
    "mod_dl_src": "eth_src",
    "mod_dl_dst": "eth_dst",
    "mod_nw_src": "ip_src",
    "mod_nw_dst": "ip_dst",
    "mod_nw_tos": "ip_dscp",
    "mod_nw_ecn": "nw_ecn",
    "mod_nw_ttl": "nw_ttl",
    "mod_tp_src": "tp_src",
    "mod_tp_dst": "tp_dst",
}
# What the sugared tp_src/tp_dst need: any of the three L4 protocols.
_SUGAR_PREREQ = {"tp_src": "tp", "tp_dst": "tp"}


def _lookup(name: str) -> _Field | None:
    """The field a set_field or subfield name refers to, by any of its names."""
    return _BY_NAME.get(name)


def _meta_field(f: _Field) -> MetaField:
    """A MetaField for ofp_text's value parser, at the width Open vSwitch parses at.

    The width is the field's whole bytes, as in Open vSwitch, so that a value
    too large for a 6-bit field is reported as "not a valid value" by the
    caller, as Open vSwitch does, rather than as too large.
    """
    bits = {"mac": 48, "ip4": 32, "ip6": 128}.get(f.kind, f.nbytes * 8)
    return MetaField(f.name, META_FIELDS[f.name].storage, f.kind, bits)


# -- splitting the text into actions ----------------------------------------------------


def _value_len(s: str, pos: int, delims: str) -> int:
    """Open vSwitch's ``parse_value()``: the length of a value, parentheses nested."""
    n = pos
    while n < len(s) and s[n] not in delims:
        if s[n] == "(":
            level = 0
            while True:
                if n >= len(s):
                    return n - pos
                if s[n] == "(":
                    level += 1
                elif s[n] == ")":
                    level -= 1
                n += 1
                if level <= 0:
                    break
        else:
            n += 1
    return n - pos


def _split(text: str) -> list[tuple[str, str]]:
    """Split an action list into (key, value) pairs as ``ofputil_parse_key_value()`` does.

    ``output:1``, ``output=1`` and ``output(1)`` all give ("output", "1"); a
    comma or white space ends a value given after ``:`` or ``=``, the closing
    parenthesis one given in parentheses (which may hold commas).
    """
    out: list[tuple[str, str]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in ", \t\r\n":
            pos += 1
        if pos >= len(text):
            return out
        start = pos
        while pos < len(text) and text[pos] not in ":=(, \t\r\n":
            pos += 1
        key = text[start:pos]
        delim = text[pos] if pos < len(text) else ""
        if delim:
            pos += 1
        if delim in (":", "="):
            delims = ", \t\r\n"
        elif delim == "(":
            delims = ")"
        else:
            out.append((key, ""))
            continue
        n = _value_len(text, pos, delims)
        # Open vSwitch's special case for "key(x)->y": the value runs on to
        # the next comma or space.
        if delim == "(" and text[pos + n : pos + n + 3] == ")->":
            n += _value_len(text, pos + n, ", \t\r\n")
        out.append((key, text[pos : pos + n]))
        pos += n + (1 if pos + n < len(text) else 0)


# -- numbers and ports ----------------------------------------------------------------


def _uint(text: str, name: str, limit: int) -> int:
    """Open vSwitch's ``str_to_u8``/``str_to_u16``: C syntax, 0 to ``limit``."""
    try:
        value = c_int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= limit:
        raise FlowParseError(f'invalid {name} "{text}"')
    return value


def _decimal(text: str) -> int | None:
    """C's ``strtoul(text, 10)`` over the whole text, or None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    return int(text, 10)


_RESERVED_PORTS = {name.lower(): port for name, port in PORT_NAMES.items()}
# OFPP_UNSET, which Open vSwitch reads by name and then refuses as an output.
_RESERVED_PORTS["unset"] = 0xFFF7
_PORT_PRINT = {port: name for name, port in PORT_NAMES.items() if name != "NONE"}
# The reserved ports an output action may name (``ofpact_check_output_port()``).
_OUTPUT_OK = frozenset(
    {OFPP_IN_PORT, OFPP_TABLE, OFPP_NORMAL, OFPP_FLOOD, OFPP_ALL, OFPP_CONTROLLER, OFPP_LOCAL}
)


def _port(text: str, port_names: Mapping[str, int] | None) -> int | None:
    """Open vSwitch's ``ofputil_port_from_string()``, or None when it fails.

    Decimal numbers up to 0xffff (OpenFlow 1.0 numbering) and OpenFlow 1.1's
    0xffffff00 and up, which are converted; reserved names in any case; the
    caller's port names, exactly.
    """
    number = _decimal(text)
    if number is not None:
        if number <= 0xFFFF:
            return number
        if 0xFFFFFF00 <= number <= 0xFFFFFFFF:
            return number - 0xFFFF0000
        return None
    reserved = _RESERVED_PORTS.get(text.lower())
    if reserved is not None:
        return reserved
    if port_names and text in port_names:
        return port_names[text]
    return None


def format_port(port: int, port_names: Mapping[int, str] | None = None) -> str:
    """A port as ``ofputil_format_port()`` prints it: its name, a reserved name, or the number."""
    if port_names and port in port_names:
        return port_names[port]
    return _PORT_PRINT.get(port, str(port))


def _table(text: str) -> int | None:
    """Open vSwitch's ``ofputil_table_from_string()`` without table names."""
    number = _decimal(text)
    return number if number is not None and number <= 255 else None


# -- values of fields ---------------------------------------------------------------------


def _fmt_value(f: _Field, value: int, port_names: Mapping[int, str] | None = None) -> str:
    """A field's value as ``mf_format()`` prints it."""
    if f.kind == "mac":
        return mac_to_str(value.to_bytes(6, "big"))
    if f.kind == "ip4":
        return ".".join(str(b) for b in value.to_bytes(4, "big"))
    if f.kind == "ip6":
        return ip6_to_str(value.to_bytes(16, "big"))
    if f.kind == "port":
        return format_port(value, port_names)
    if f.kind == "hex":
        return c_hex(value)
    if f.kind == "tunflags":
        return format_flags(value, TNL_FLAG_NAMES)
    return str(value)


def _meta_full(name: str) -> int:
    """The all-ones mask of META_FIELDS field ``name``."""
    return (1 << META_FIELDS[name].bits) - 1


def _parse_field_value(
    f: _Field, text: str, port_names: Mapping[str, int] | None
) -> tuple[int, int]:
    """Parse ``value[/mask]`` for a set_field to ``f`` (``mf_parse()``)."""
    full = (1 << f.bits) - 1
    if f.kind == "port":
        # Open vSwitch reads the whole text as a port, so a mask makes it
        # an unknown port.
        port = _port(text, port_names)
        if port is None:
            raise FlowParseError(f"{text}: invalid or unknown port for in_port")
        return port, full
    if "/" in text and not f.maskable:
        raise FlowParseError(f"{text}: invalid mask for field {f.name}")
    value, mask = parse_field_value(_meta_field(f), text, None, f.name)
    return value, mask


def _subfields(f: _Field, value: int, mask: int) -> list[RegLoad]:
    """Split a masked write into loads, as Open vSwitch prints it (``next_load_segment()``).

    One load per run of contiguous mask bits, each at most 64 bits long.
    """
    loads: list[RegLoad] = []
    ofs = 0
    while ofs < f.bits:
        if not mask >> ofs & 1:
            ofs += 1
            continue
        end = ofs + 1
        while end < min(ofs + 64, f.bits) and mask >> end & 1:
            end += 1
        n_bits = end - ofs
        loads.append(RegLoad((value >> ofs) & ((1 << n_bits) - 1), FieldRef(f.name, ofs, n_bits)))
        ofs = end
    return loads


# -- subfields --------------------------------------------------------------------------

_BITS_RE = re.compile(r"\[([0-9]+)(?:\.\.([0-9]+))?\]")


def _subfield_name(name: str, whole: str) -> _Field:
    wild = len(name) > 2 and name.endswith("_W")
    f = _BY_NXM.get(name[:-2] if wild else name) or _lookup(name)
    if f is not None:
        return f
    if name in _UNSUPPORTED_FIELDS or (wild and name[:-2] in _UNSUPPORTED_FIELDS):
        raise FlowParseError(f"{whole}: field `{name}' is not supported by pyvswitch")
    raise FlowParseError(f"{whole}: unknown field `{name}'")


def _parse_subfield(s: str) -> tuple[FieldRef, str]:
    """``mf_parse_subfield__()``: ``name[a..b]``, ``name[n]``, ``name[]`` or ``name``.

    Returns the reference and the text after it.
    """
    name_len = 0
    while name_len < len(s) and s[name_len] not in "[-":
        name_len += 1
    name = s[:name_len]
    f = _subfield_name(name, s)
    rest = s[name_len:]
    start, end = 0, f.bits - 1
    if rest.startswith("[]"):
        rest = rest[2:]
    elif rest.startswith("["):
        m = _BITS_RE.match(rest)
        if m is None:
            raise FlowParseError(f"{s}: syntax error expecting [] or [<bit>] or [<start>..<end>]")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        rest = rest[m.end() :]
    if start > end:
        raise FlowParseError(f"{s}: starting bit {start} is after ending bit {end}")
    if start >= f.bits:
        raise FlowParseError(
            f"{s}: starting bit {start} is not valid because field is only {f.bits} bits wide"
        )
    if end >= f.bits:
        raise FlowParseError(
            f"{s}: ending bit {end} is not valid because field is only {f.bits} bits wide"
        )
    return FieldRef(f.name, start, end - start + 1), rest


def _parse_subfield_all(s: str) -> FieldRef:
    ref, rest = _parse_subfield(s)
    if rest:
        raise FlowParseError("unexpected input following field syntax")
    return ref


def _fmt_ref(ref: FieldRef) -> str:
    f = _lookup(ref.field)
    if f is None:
        raise ValueError(f"{ref.field}: no OpenFlow name for this field")
    if ref.ofs == 0 and ref.n_bits == f.bits:
        bits = "[]"
    elif ref.n_bits == 1:
        bits = f"[{ref.ofs}]"
    else:
        bits = f"[{ref.ofs}..{ref.ofs + ref.n_bits - 1}]"
    return f.nxm + bits


# -- the actions ------------------------------------------------------------------------


def _output_to(port: int) -> Action:
    # Every way of naming the controller port is the controller action, so
    # that one action prints one way (CONTROLLER:65535).
    return Controller() if port == OFPP_CONTROLLER else Output(port)


def _parse_output(_key: str, arg: str, port_names: Mapping[str, int] | None) -> list[Action]:
    if "port" in arg and "max_len" in arg:
        # Open vSwitch's test for the truncating form, substrings and all.
        return [_parse_output_trunc(arg, port_names)]
    port = _port(arg, port_names)
    if port is not None:
        return [_output_to(port)]
    try:
        ref = _parse_subfield_all(arg)
    except FlowParseError:
        raise FlowParseError(f"{arg}: output to unknown port") from None
    return [OutputReg(ref)]


#: The fewest bytes a truncated output may keep: an Ethernet header.
_TRUNC_MIN = 14


def _parse_output_trunc(arg: str, port_names: Mapping[str, int] | None) -> OutputTrunc:
    """``output(port=P,max_len=N)``, checked as ``parse_truncate_subfield()`` checks it."""
    port = 0
    max_len = 0
    for name, value in _split(arg):
        if name == "port":
            found = _port(value, port_names)
            if found is None:
                raise FlowParseError(f"output to unknown truncate port: {value}")
            if found > OFPP_MAX and found not in (OFPP_LOCAL, OFPP_IN_PORT):
                raise FlowParseError(f"output to unsupported truncate port: {value}")
            port = found
        elif name == "max_len":
            max_len = _str_to_u32(value)
        else:
            raise FlowParseError(f"invalid key '{name}' in output_trunc argument")
    if max_len < _TRUNC_MIN:
        raise FlowParseError(f"max_len {max_len} is less than the minimum value {_TRUNC_MIN}")
    return OutputTrunc(port, max_len)


def _str_to_u32(text: str) -> int:
    """Open vSwitch's ``str_to_u32()``: C's ``strtoul(text, 0)`` kept to 32 bits.

    As in C, a sign is allowed (``-1`` is 4294967295) and a value past 32
    bits keeps its low bits; only one past 64 bits, or trailing text, is an
    error.
    """
    if not text:
        raise FlowParseError("missing required numeric argument")
    body = text.lstrip(" \t\n\v\f\r")
    negative = body[:1] == "-"
    if body[:1] in "+-":
        body = body[1:]
    try:
        value = c_int(body)
    except ValueError:
        raise FlowParseError(f"invalid numeric format {text}") from None
    if value >= 1 << 64:
        raise FlowParseError(f"invalid numeric format {text}")
    if negative:
        value = -value
    return value & 0xFFFFFFFF


_PACKET_IN_REASONS = ("no_match", "action", "invalid_ttl", "action_set", "group", "packet_out")


def _parse_controller(_key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    reason = "action"
    max_len = 65535
    if arg and arg.isascii() and arg.isdigit():
        return [Controller(_uint(arg, "max_len", 0xFFFF))]
    for name, value in _split(arg):
        if name == "reason":
            if value not in _PACKET_IN_REASONS:
                raise FlowParseError(f'unknown reason "{value}"')
            reason = value
        elif name == "max_len":
            max_len = _uint(value, "max_len", 0xFFFF)
        elif name == "id":
            if _uint(value, "id", 0xFFFF):
                raise FlowParseError("controller(id=...) is not supported by pyvswitch")
        elif name in ("userdata", "pause"):
            raise FlowParseError(f"controller({name}) is not supported by pyvswitch")
        else:
            raise FlowParseError(f'unknown key "{name}" parsing controller action')
    return [Controller(max_len, reason)]


def _split_arrow(arg: str) -> tuple[str, str]:
    """``set_field_split_str()``: ``VALUE->FIELD``."""
    at = arg.find("->")
    if at < 0:
        raise FlowParseError(f"{arg}: missing `->'")
    if len(arg) - at <= 2:
        raise FlowParseError(f"{arg}: missing field name following `->'")
    return arg[:at], arg[at + 2 :]


def _parse_set_field(_key: str, arg: str, port_names: Mapping[str, int] | None) -> list[Action]:
    text, name = _split_arrow(arg)
    if name in ("vlan_vid", "vlan_pcp"):
        return [_parse_set_vlan_field(name, text)]
    if name in ("dl_vlan", "dl_vlan_pcp"):
        # Open vSwitch 3.1 accepts these and encodes them as a write to in_port.
        raise FlowParseError(
            f"{name} cannot be set with set_field (Open vSwitch 3.1 turns it into a write "
            "to in_port); use mod_vlan_vid, mod_vlan_pcp, or set_field to vlan_vid or vlan_pcp"
        )
    f = _lookup(name)
    if f is None:
        if name in _READ_ONLY_TUNNEL:
            raise FlowParseError(f"{name} is read-only")
        if name in _UNSUPPORTED_FIELDS:
            raise FlowParseError(f"{name}: field not supported by pyvswitch")
        raise FlowParseError(f"{name} is not a valid OXM field name")
    if not f.writable:
        raise FlowParseError(f"{name} is read-only")
    value, mask = _parse_field_value(f, text, port_names)
    if f.kind == "tunflags":
        # The mask stays at the field's 16 bits: "oam" writes the whole field
        # (0xffff), "+oam" only the flag (0x1), and Open vSwitch carries the
        # two differently across OpenFlow versions.
        if not mask:
            raise FlowParseError(
                f"{text}: the mask is zero, so set_field to {name} would do nothing"
            )
        return [SetField(f.name, value & mask, mask)]
    if (f.limit is not None and value > f.limit) or (f.name == "nw_tos" and value & 0x03):
        raise FlowParseError(f"{text} is not a valid value for field {name}")
    # Values are parsed at whole bytes: a 6-bit field's full mask is 0xff.
    mask &= (1 << f.bits) - 1
    if mask == (1 << f.bits) - 1:
        # The data model keeps values and masks at the width of the key's
        # storage, which is narrower than Open vSwitch's for arp_op and wider
        # for in_port.
        return [SetField(f.name, value, _meta_full(f.name))]
    if not mask:
        # Open vSwitch stores no action at all for a zero mask.
        raise FlowParseError(f"{text}: the mask is zero, so set_field to {name} would do nothing")
    # Every maskable field has the same width here as in Open vSwitch.
    return [SetField(f.name, value & mask, mask)]


def _parse_set_vlan_field(name: str, text: str) -> Action:
    if "/" in text:
        if name == "vlan_pcp":
            raise FlowParseError(f"{text}: invalid mask for field vlan_pcp")
        raise FlowParseError(f"{text}: a masked set_field to vlan_vid is not supported")
    # The VLAN fields are not in META_FIELDS; only the parser's width and
    # kind matter here.
    width = 16 if name == "vlan_vid" else 8
    value, _ = parse_field_value(MetaField(name, "vlan_tci", "dec", width), text, None, name)
    if name == "vlan_pcp":
        if value > 7:
            raise FlowParseError(f"{text} is not a valid value for field vlan_pcp")
        return SetVlanPcp(value, push_if_missing=False)
    if value & ~0x1FFF:
        raise FlowParseError(f"{text} is not a valid value for field vlan_vid")
    if not value & VLAN_CFI:
        # Open vSwitch accepts this and then cannot decode what it sent.
        raise FlowParseError(
            f"{text} is not a valid value for field vlan_vid (OpenFlow needs the 0x1000 "
            f'"present" bit: {value | VLAN_CFI} sets VLAN {value})'
        )
    return SetVlanVid(value & 0x0FFF, push_if_missing=False)


def _load_int(text: str, f: _Field) -> int | None:
    """``parse_int_string()`` for a load into ``f``, strictly: no sign, no trailing text."""
    try:
        value = c_int(text)
    except ValueError:
        return None
    is_hex = text[:2].lower() == "0x"
    if value >> (f.nbytes * 8) or (not is_hex and value >> 64):
        return None
    return value


def _parse_load(_key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    text, dst_text = _split_arrow(arg)
    dst = _parse_subfield_all(dst_text)
    f = _FIELDS[dst.field]
    value = _load_int(text, f)
    if value is None:
        raise FlowParseError(f"{arg}: cannot parse integer value")
    if value >> dst.n_bits:
        raise FlowParseError(
            f"{arg}: value {_fmt_value(f, value)} does not fit into {dst.n_bits} bits"
        )
    mask = ((1 << dst.n_bits) - 1) << dst.ofs
    if is_tun_metadata(f.name):
        # Open vSwitch sends a load to a Geneve option field as a masked
        # set_field (NXAST_REG_LOAD2), and that is what the switch keeps.
        return [SetField(f.name, value << dst.ofs, mask)]
    return list(_subfields(f, value << dst.ofs, mask))


def _parse_move(_key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    src, rest = _parse_subfield(arg)
    if not rest.startswith("->"):
        raise FlowParseError(f"{arg}: missing `->' following source")
    dst = _parse_subfield_all(rest[2:])
    if src.n_bits != dst.n_bits:
        raise FlowParseError(
            f"{arg}: source field is {src.n_bits} bits wide but destination is "
            f"{dst.n_bits} bits wide"
        )
    return [RegMove(src, dst)]


def _parse_vlan_vid(key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    vid = _uint(arg, "VLAN VID", 0xFFFF)
    if vid > 0x0FFF:
        raise FlowParseError(f"{arg}: not a valid VLAN VID")
    return [SetVlanVid(vid, push_if_missing=key == "mod_vlan_vid")]


def _parse_vlan_pcp(key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    pcp = _uint(arg, "VLAN PCP", 0xFF)
    if pcp > 7:
        raise FlowParseError(f"{arg}: not a valid VLAN PCP")
    return [SetVlanPcp(pcp, push_if_missing=key == "mod_vlan_pcp")]


def _parse_strip_vlan(key: str, _arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    # Open vSwitch ignores any argument.
    return [StripVlan(pop=key == "pop_vlan")]


def _parse_push_vlan(_key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    ethertype = _uint(arg, "ethertype", 0xFFFF)
    if ethertype not in (0x8100, 0x88A8):
        raise FlowParseError(f"{arg}: not a valid VLAN ethertype")
    return [PushVlan(ethertype)]


def _inet_pton4(text: str) -> int | None:
    """Read an IPv4 address as glibc's ``inet_pton()`` does: no leading zeros."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if (
            not part.isascii()
            or not part.isdigit()
            or len(part) > 3
            or (len(part) > 1 and part[0] == "0")
            or int(part) > 255
        ):
            return None
        value = (value << 8) | int(part)
    return value


def _parse_mod(key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    field = _MOD_ACTIONS[key]
    full = (1 << META_FIELDS[field].bits) - 1
    value: int | None
    if key in ("mod_dl_src", "mod_dl_dst"):
        try:
            value = int.from_bytes(mac_to_bytes(arg), "big")
        except ValueError:
            raise FlowParseError(f"invalid mac address {arg}") from None
    elif key in ("mod_nw_src", "mod_nw_dst"):
        # Unlike set_field, which reads 01.2.3.4 as 1.2.3.4, Open vSwitch reads
        # these addresses with inet_pton().
        value = _inet_pton4(arg)
        if value is None:
            raise FlowParseError(f"{arg}: could not convert to IP address")
    elif key == "mod_nw_tos":
        tos = _uint(arg, "TOS", 0xFF)
        if tos & 0x03:
            raise FlowParseError(f"{arg}: not a valid TOS")
        value = tos >> 2
    elif key == "mod_nw_ecn":
        value = _uint(arg, "ECN", 0xFF)
        if value > 3:
            raise FlowParseError(f"{arg}: not a valid ECN")
    elif key == "mod_nw_ttl":
        value = _uint(arg, "TTL", 0xFF)
    else:
        what = "source port" if key == "mod_tp_src" else "destination port"
        value = _uint(arg, what, 0xFFFF)
    return [SetField(field, value, full, sugar=key)]


def _parse_dec_ttl(_key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    if arg:
        raise FlowParseError(f"dec_ttl({arg}): controller ids are not supported by pyvswitch")
    return [DecTtl()]


def _parse_resubmit(_key: str, arg: str, port_names: Mapping[str, int] | None) -> list[Action]:
    parts = arg.split(",", 2)
    port_text = parts[0]
    table_text = parts[1] if len(parts) > 1 else ""
    extra = parts[2].split(",", 1)[0] if len(parts) > 2 else ""
    in_port: int | None = None
    table: int | None = None
    if port_text:
        in_port = _port(port_text, port_names)
        if in_port is None:
            raise FlowParseError(f"{port_text}: resubmit to unknown port")
    if table_text:
        table = _table(table_text)
        if table is None:
            raise FlowParseError(f"{table_text}: resubmit to unknown table")
    if extra:
        if extra != "ct":
            raise FlowParseError(f"{extra}: unknown parameter")
        raise FlowParseError("resubmit(...,ct) is not supported by pyvswitch")
    # IN_PORT and table 255 are how Open vSwitch says "the same".
    if in_port == OFPP_IN_PORT:
        in_port = None
    if table == 255:
        table = None
    if in_port is None and table is None:
        raise FlowParseError('at least one "in_port" or "table" must be specified on resubmit')
    return [Resubmit(in_port, table)]


def _parse_goto_table(_key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    table = _table(arg)
    if table is None:
        raise FlowParseError(f'unknown table "{arg}"')
    return [GotoTable(table)]


def _parse_set_tunnel(key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    if not arg:
        raise FlowParseError("missing required numeric argument")
    try:
        tun_id = c_int(arg)
    except ValueError:
        tun_id = -1
    if not 0 <= tun_id < 1 << 64:
        raise FlowParseError(f"invalid numeric format {arg}")
    # Open vSwitch sends a 32-bit set_tunnel as set_tunnel64 when it must.
    return [SetTunnel(tun_id, wide=key == "set_tunnel64" or tun_id > 0xFFFFFFFF)]


def _parse_note(_key: str, arg: str, _names: Mapping[str, int] | None) -> list[Action]:
    data = bytearray()
    pos = 0
    while True:
        while pos < len(arg) and arg[pos] == ".":
            pos += 1
        if pos >= len(arg):
            break
        pair = arg[pos : pos + 2]
        if len(pair) < 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            raise FlowParseError("bad hex digit in `note' argument")
        data.append(int(pair, 16))
        pos += 2
    return [Note(_pad_note(bytes(data)))]


def _pad_note(data: bytes) -> bytes:
    """The note as the switch stores it: zero-padded so the action is a multiple of 8 bytes.

    The action has a 10-byte header, so the data is 6 bytes, 14, 22...
    """
    return data + bytes(-(10 + len(data)) % 8)


_PARSERS: dict[str, Callable[[str, str, Mapping[str, int] | None], list[Action]]] = {
    "output": _parse_output,
    "output_reg": _parse_output,
    "controller": _parse_controller,
    "set_field": _parse_set_field,
    "load": _parse_load,
    "move": _parse_move,
    "mod_vlan_vid": _parse_vlan_vid,
    "set_vlan_vid": _parse_vlan_vid,
    "mod_vlan_pcp": _parse_vlan_pcp,
    "set_vlan_pcp": _parse_vlan_pcp,
    "strip_vlan": _parse_strip_vlan,
    "pop_vlan": _parse_strip_vlan,
    "push_vlan": _parse_push_vlan,
    **dict.fromkeys(_MOD_ACTIONS, _parse_mod),
    "set_nw_ttl": lambda _k, a, n: _parse_mod("mod_nw_ttl", a, n),
    "dec_ttl": _parse_dec_ttl,
    "resubmit": _parse_resubmit,
    "goto_table": _parse_goto_table,
    "set_tunnel": _parse_set_tunnel,
    "set_tunnel64": _parse_set_tunnel,
    "note": _parse_note,
}

# Open vSwitch's other actions and instructions: refused as not supported
# rather than as unknown, which would suggest a typing mistake.
_OVS_ONLY = frozenset(
    {
        "group",
        "enqueue",
        "bundle",
        "bundle_load",
        "push",
        "pop",
        "set_mpls_label",
        "set_mpls_tc",
        "set_mpls_ttl",
        "dec_mpls_ttl",
        "push_mpls",
        "pop_mpls",
        "dec_nsh_ttl",
        "delete_field",
        "encap",
        "decap",
        "set_queue",
        "pop_queue",
        "fin_timeout",
        "learn",
        "conjunction",
        "multipath",
        "exit",
        "sample",
        "ct",
        "ct_clear",
        "nat",
        "clone",
        "check_pkt_larger",
        "meter",
        "clear_actions",
        "write_actions",
        "write_metadata",
    }
)


def parse_actions(text: str, port_names: Mapping[str, int] | None = None) -> tuple[Action, ...]:
    """Parse an OpenFlow action list (what follows ``actions=``) as ovs-ofctl does.

    ``port_names`` maps port names to numbers for ``output:NAME`` and the
    like. ``drop`` and the empty string give the empty tuple. Raises
    :class:`FlowParseError` with Open vSwitch's message for what is wrong,
    or with ours where Open vSwitch would accept something that would not do
    what was written (see the module's docstring).
    """
    actions: list[Action] = []
    drop = False
    for key, value in _split(text):
        name = key.lower()
        if name == "drop":
            drop = True
            continue
        if name == "apply_actions":
            raise FlowParseError("apply_actions is the default instruction")
        parser = _PARSERS.get(name)
        if parser is not None:
            actions.extend(parser(name, value, port_names))
            continue
        if name in _OVS_ONLY:
            raise FlowParseError(f"{key}: action not supported by pyvswitch")
        port = _port(key, port_names)
        if port is None:
            raise FlowParseError(f"unknown action {key}")
        actions.append(_output_to(port))
    if drop and actions:
        raise FlowParseError('"drop" must not be accompanied by any other action or instruction')
    _check_order(actions)
    _check(actions, None, 0)
    return tuple(actions)


def _check_order(actions: list[Action]) -> None:
    """goto_table is an instruction: it comes last and once (``ofpacts_verify()``)."""
    seen_goto = False
    for action in actions:
        if isinstance(action, GotoTable):
            if seen_goto:
                raise FlowParseError(
                    "duplicate goto_table instruction not allowed, for OpenFlow 1.1+ compatibility"
                )
            seen_goto = True
        elif seen_goto:
            raise FlowParseError(
                "invalid instruction ordering: apply_actions must appear before goto_table, "
                "for OpenFlow 1.1+ compatibility"
            )


# -- checking against the match ---------------------------------------------------------


def check_actions(actions: Iterable[Action], match: Match, *, table_id: int = 0) -> None:
    """Check actions against the match of their flow, as Open vSwitch does when it is added.

    A field an action reads or writes must be guaranteed by the match
    (``set_field:80->tcp_dst`` needs ``tcp``), a VLAN field needs a tag, a
    ``push_vlan`` may not make a third tag, output must go to a real port,
    ``goto_table`` must go forward from ``table_id``. The VLAN tag is
    followed through the list (``push_vlan:0x8100,set_field:4101->vlan_vid``
    is fine without a tag in the match). Raises :class:`FlowParseError` with
    Open vSwitch's two lines, the reason and the error, joined by "; ".
    """
    action_list = list(actions)
    _check_order(action_list)
    _check(action_list, match, table_id)


def _fails(prereq: str | None, flow_match: Match | None) -> bool:
    """Whether ``flow_match`` fails prerequisite ``prereq`` (never, without a match)."""
    if prereq is None or flow_match is None:
        return False
    return not _PREREQS[prereq][0](flow_match)


def _field_of(name: str, kind: str) -> _Field:
    f = _lookup(name)
    if f is None:
        raise FlowParseError(f"unknown {kind} field {name}; {_INVALID} (OFPBAC_BAD_SET_TYPE)")
    return f


def _check_ref(ref: FieldRef, kind: str, flow_match: Match | None) -> _Field:
    """``mf_check_src()``/``mf_check_dst()`` for a subfield; returns its field."""
    f = _field_of(ref.field, kind)
    if ref.n_bits <= 0:
        raise FlowParseError(f"zero bit {kind} field {f.name}; {_BAD_SET_LEN}")
    if not 0 <= ref.ofs < f.bits:
        raise FlowParseError(
            f"bit offset {ref.ofs} exceeds {f.bits}-bit width of {kind} field {f.name}; "
            f"{_BAD_SET_LEN}"
        )
    if ref.ofs + ref.n_bits > f.bits:
        raise FlowParseError(
            f"bit offset {ref.ofs} and width {ref.n_bits} exceeds {f.bits}-bit width of "
            f"{kind} field {f.name}; {_BAD_SET_LEN}"
        )
    if _fails(f.prereq, flow_match):
        raise FlowParseError(
            f"{kind} field {f.name} lacks correct prerequisites; {_MATCH_INCONSISTENT}"
        )
    return f


def _check_writable(f: _Field) -> None:
    if not f.writable:
        raise FlowParseError(f"destination field {f.name} is not writable; {_BAD_SET_ARGUMENT}")


def _check_bits_written(f: _Field, low: int, high: int, value: int | None, what: str) -> None:
    """Refuse writing bits ``low``..``high-1`` of ``f`` where Open vSwitch would drop them.

    ``value`` is the value written there, shifted into place, or None when it
    is not known (a move): then any write to those bits is refused.
    """
    if f.name == "nw_tos" and low < 2 and (value is None or value & 0x03):
        # Open vSwitch writes only the DSCP bits of the ToS byte.
        raise FlowParseError(
            f"{what}: nw_tos holds the DSCP bits of the ToS byte, so its bits 0 and 1 "
            "cannot be written (use nw_ecn)"
        )
    if f.name == "arp_op" and high > 8 and (value is None or value >> 8):
        raise FlowParseError(
            f"{what}: Open vSwitch keeps only 8 bits of arp_op, so bits 8..15 cannot be written"
        )


def _check_set_prereq(
    f: _Field, flow_match: Match | None, sugar: str = "", prereq: str | None = None
) -> None:
    """``check_SET_FIELD()``'s prerequisite check, or ours for the ``mod_*`` spellings."""
    prereq = prereq or f.prereq
    if prereq is None or flow_match is None or _PREREQS[prereq][0](flow_match):
        return
    if sugar:
        # Open vSwitch accepts these over OpenFlow 1.0 only; we print their
        # OpenFlow 1.3 form, which a switch would refuse, so we refuse them.
        raise FlowParseError(
            f"{sugar} lacks correct prerequisites (it needs {_PREREQS[prereq][1]})"
        )
    raise FlowParseError(f"set_field {f.name} lacks correct prerequisites; {_MATCH_INCONSISTENT}")


def _check(actions: list[Action], flow_match: Match | None, table_id: int) -> None:
    """Open vSwitch's ``ofpacts_check()``; without a match, its match-independent part.

    The VLAN tags are followed through the list as Open vSwitch does: a push
    adds one, a pop removes one, a mod_vlan_vid makes sure there is one, a
    write to vlan_tci sets whether there is one.
    """
    tags = [False, False]
    if flow_match is not None:
        tags = [
            bool(flow_match.get("vlan_tci")[0] & VLAN_CFI),
            bool(flow_match.get("vlan_tci1")[0] & VLAN_CFI),
        ]
    for written in actions:
        action = as_vlan_action(written)
        if isinstance(action, Output | OutputTrunc):
            if action.port >= OFPP_MAX and action.port not in _OUTPUT_OK:
                raise FlowParseError(_BAD_OUT_PORT)
        elif isinstance(action, OutputReg):
            _check_ref(action.src, "source", flow_match)
            if action.src.n_bits > 64:
                # The OpenFlow encoding has 6 bits for the width: Open vSwitch
                # 3.1 turns output:NXM_NX_IPV6_SRC[] into [1..64].
                raise FlowParseError(
                    f"output:{_fmt_ref(action.src)}: an output port is read from at most "
                    "64 bits (Open vSwitch 3.1 encodes a wider field as a different one)"
                )
        elif isinstance(action, RegMove):
            _check_ref(action.src, "source", flow_match)
            f = _check_ref(action.dst, "destination", flow_match)
            _check_writable(f)
            dst = action.dst
            what = f"move:{_fmt_ref(action.src)}->{_fmt_ref(dst)}"
            _check_bits_written(f, dst.ofs, dst.ofs + dst.n_bits, None, what)
        elif isinstance(action, RegLoad):
            # A load is a set_field with a mask to Open vSwitch, and checked as one.
            dst = action.dst
            f = _check_ref(dst, "destination", None)
            what = f"load:{c_hex(action.value)}->{_fmt_ref(dst)}"
            if action.value >> dst.n_bits:
                raise FlowParseError(
                    f"{what}: value {_fmt_value(f, action.value)} does not fit into "
                    f"{dst.n_bits} bits"
                )
            _check_writable(f)
            shifted = action.value << dst.ofs
            _check_bits_written(f, dst.ofs, dst.ofs + dst.n_bits, shifted, what)
            _check_set_prereq(f, flow_match)
            if f.name == "vlan_tci":
                # Open vSwitch takes the loaded value as the whole TCI.
                tags[0] = bool(shifted & VLAN_CFI)
        elif isinstance(action, SetField):
            _check_set_field(action, flow_match)
            if action.field == "vlan_tci":
                tags[0] = bool(action.value & VLAN_CFI)
        elif isinstance(action, SetVlanVid | SetVlanPcp):
            if flow_match is not None and not action.push_if_missing and not tags[0]:
                which = "vlan_vid" if isinstance(action, SetVlanVid) else "vlan_pcp"
                raise FlowParseError(
                    f"set_field {which} lacks correct prerequisites; {_MATCH_INCONSISTENT}"
                )
            tags[0] = True
        elif isinstance(action, StripVlan):
            tags = [tags[1], False]
        elif isinstance(action, PushVlan):
            if flow_match is not None and tags[1]:
                raise FlowParseError(_BAD_TAG)
            tags = [True, tags[0]]
        elif isinstance(action, GotoTable) and (
            action.table >= 255 or (flow_match is not None and action.table <= table_id)
        ):
            raise FlowParseError(_BAD_TABLE_ID)


def as_vlan_action(action: Action) -> Action:
    """A SetField of a VLAN field as the VLAN action it stands for (code may build those)."""
    if isinstance(action, SetField) and action.field in ("dl_vlan", "dl_vlan_pcp", "vlan_pcp"):
        if action.field == "dl_vlan":
            return SetVlanVid(action.value & 0x0FFF, push_if_missing=False)
        return SetVlanPcp(action.value & 7, push_if_missing=False)
    return action


def _check_set_field(action: SetField, flow_match: Match | None) -> None:
    name = action.field
    f = _field_of(name, "destination")
    _check_writable(f)
    value = action.value & action.mask
    if value > _meta_full(name) or (f.limit is not None and value > f.limit):
        raise FlowParseError(f"{value} is not a valid value for field {f.name}")
    what = f"set_field:{_fmt_value(f, value)}->{f.name}"
    _check_bits_written(f, 0, f.bits, value, what)
    # mod_tp_src and mod_tp_dst accept any of the three L4 protocols.
    sugar = action.sugar if action.sugar in _MOD_ACTIONS else ""
    prereq = _SUGAR_PREREQ.get(name) if sugar else None
    _check_set_prereq(f, flow_match, sugar, prereq)


# -- printing ---------------------------------------------------------------------------


def format_actions_as_written(
    actions: Iterable[Action], port_names: Mapping[int, str] | None = None
) -> str:
    """Print actions as Open vSwitch prints the actions a rule holds (``drop`` for none).

    This is what ``ofproto/trace`` prints and what :func:`parse_actions`
    reads back to the same actions: each action in its own spelling
    (``strip_vlan`` or ``pop_vlan``, ``mod_nw_dst:...`` or
    ``set_field:...->ip_dst``, ``load:...``). What ``dump-flows`` prints
    depends on the OpenFlow version too: see
    :func:`pyvswitch.ofproto.actions_wire.format_actions`. ``port_names``
    maps port numbers to the names to print.
    """
    parts = [_format(a, port_names) for a in actions]
    return ",".join(parts) if parts else "drop"


def _format(action: Action, port_names: Mapping[int, str] | None) -> str:
    match action:
        case Output(port=port, max_len=max_len):
            if port == OFPP_CONTROLLER:
                return f"CONTROLLER:{max_len}"
            name = format_port(port, port_names)
            return f"output:{name}" if port < OFPP_MAX else name
        case Controller(max_len=max_len, reason=reason):
            if reason == "action":
                return f"CONTROLLER:{max_len}"
            params = [f"reason={reason}"]
            if max_len != 65535:
                params.append(f"max_len={max_len}")
            return f"controller({','.join(params)})"
        case OutputTrunc(port=port, max_len=max_len):
            return f"output(port={format_port(port, port_names)},max_len={max_len})"
        case OutputReg(src=src):
            return f"output:{_fmt_ref(src)}"
        case SetVlanVid(vid=vid, push_if_missing=push):
            return f"mod_vlan_vid:{vid}" if push else f"set_field:{vid | VLAN_CFI}->vlan_vid"
        case SetVlanPcp(pcp=pcp, push_if_missing=push):
            return f"mod_vlan_pcp:{pcp}" if push else f"set_field:{pcp}->vlan_pcp"
        case StripVlan(pop=pop):
            return "pop_vlan" if pop else "strip_vlan"
        case PushVlan(ethertype=ethertype):
            return f"push_vlan:{ethertype:#x}"
        case SetField():
            return _format_set_field(action, port_names)
        case RegLoad(value=value, dst=dst):
            # Open vSwitch prints a load of more than 64 bits as several.
            mask = ((1 << dst.n_bits) - 1) << dst.ofs
            return _format_loads(_subfields(_known(dst.field), value << dst.ofs, mask))
        case RegMove(src=src, dst=dst):
            return f"move:{_fmt_ref(src)}->{_fmt_ref(dst)}"
        case DecTtl():
            return "dec_ttl"
        case Resubmit(in_port=in_port, table=table):
            # None, IN_PORT and table 255 all mean "the same".
            port_text = ""
            if in_port is not None and in_port != OFPP_IN_PORT:
                port_text = format_port(in_port, port_names)
            table_text = "" if table is None or table == 255 else str(table)
            if port_text and not table_text:
                return f"resubmit:{port_text}"
            return f"resubmit({port_text},{table_text})"
        case GotoTable(table=table):
            return f"goto_table:{table}"
        case SetTunnel(tun_id=tun_id, wide=wide):
            return f"set_tunnel{'64' if wide else ''}:{c_hex(tun_id)}"
        case Note(data=data):
            return "note:" + ".".join(f"{b:02x}" for b in _pad_note(data))
    raise TypeError(f"not an action: {action!r}")


def _known(name: str) -> _Field:
    f = _lookup(name)
    if f is None or name not in META_FIELDS:
        raise ValueError(f"{name}: no OpenFlow name for this field")
    return f


def _format_loads(loads: Iterable[RegLoad]) -> str:
    return ",".join(f"load:{c_hex(load.value)}->{_fmt_ref(load.dst)}" for load in loads)


def _format_set_field(action: SetField, port_names: Mapping[int, str] | None) -> str:
    vlan = as_vlan_action(action)
    if vlan is not action:
        return _format(vlan, port_names)
    if action.sugar:
        return f"{action.sugar}:{_sugar_value(action, port_names)}"
    f = _known(action.field)
    full = _meta_full(action.field)
    value, mask = action.value & action.mask & full, action.mask & full
    if mask == full:
        return f"set_field:{_fmt_value(f, value, port_names)}->{f.name}"
    return f"set_field:{_fmt_masked(f, value, mask)}->{f.name}"


def _fmt_masked(f: _Field, value: int, mask: int) -> str:
    """A value with a mask as ``mf_format()`` prints it: CIDR prefixes where they fit."""
    if f.kind == "mac":
        return f"{_fmt_value(f, value)}/{_fmt_value(f, mask)}"
    if f.kind in ("ip4", "ip6"):
        width = 32 if f.kind == "ip4" else 128
        inverted = ~mask & ((1 << width) - 1)
        if inverted & (inverted + 1) == 0:
            return f"{_fmt_value(f, value)}/{width - inverted.bit_length()}"
        return f"{_fmt_value(f, value)}/{_fmt_value(f, mask)}"
    if f.kind == "hex":
        return f"{c_hex(value)}/{c_hex(mask)}"
    return f"{value}/{c_hex(mask)}"


def _sugar_value(action: SetField, port_names: Mapping[int, str] | None) -> str:
    if action.sugar == "mod_nw_tos":
        # Stored as the DSCP (ip_dscp); written as the ToS byte's upper bits.
        return str(action.value << 2)
    if action.sugar in ("mod_nw_ecn", "mod_nw_ttl", "mod_tp_src", "mod_tp_dst"):
        return str(action.value)
    return _fmt_value(_known(action.field), action.value, port_names)


# -- helpers for other modules ------------------------------------------------------------


def is_tun_metadata(name: str) -> bool:
    """Whether field ``name`` is one of the Geneve option fields, ``tun_metadata0..63``."""
    return name.startswith("tun_metadata") and name[12:].isdigit()


def ovs_field_bits(name: str) -> int:
    """The width Open vSwitch gives field ``name`` (16 bits for ``in_port`` and ``arp_op``)."""
    return _known(name).bits


def set_field_is_exact(action: SetField) -> bool:
    """Whether a set_field writes its whole field, as Open vSwitch decides it.

    Open vSwitch sends an exact set_field as one over OpenFlow 1.2 to 1.4 and
    a masked one as loads. For ``tun_flags`` exact means the 16-bit mask of
    ``set_field:oam->tun_flags``; ``+oam`` and a load of the field's one bit
    are masked. For the other fields it is a mask covering the field.
    """
    if action.field == "tun_flags":
        return action.mask & _TNL_FLAGS_EXACT == _TNL_FLAGS_EXACT
    full = _meta_full(action.field)
    return action.mask & full == full


def ovs_field_maskable(name: str) -> bool:
    """Whether ``set_field`` takes a mask for field ``name``, as in Open vSwitch."""
    return _known(name).maskable


def set_field_as_loads(action: SetField) -> list[RegLoad]:
    """A set_field as the loads Open vSwitch sends it as (``set_field_to_nxast()``).

    One load per run of at most 64 contiguous bits of the mask; writing the
    whole field writes it at Open vSwitch's width.
    """
    f = _known(action.field)
    full = _meta_full(action.field)
    mask = action.mask & full
    if mask == full:
        mask = (1 << f.bits) - 1
    return _subfields(f, action.value & mask, mask)
