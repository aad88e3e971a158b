"""``ofproto/trace``: its arguments read as ovs-vswitchd 3.1 reads them.

The forms are Open vSwitch's (``ofproto/ofproto-dpif-trace.c``)::

    ofproto/trace [OPTIONS] [DP] ODP_FLOW [-generate | PACKET]
    ofproto/trace [OPTIONS] BRIDGE BR_FLOW [-generate | PACKET]

Options may stand anywhere among the words. ``PACKET`` is an Ethernet frame
in hex: its fields are traced, and only the metadata (the input port, the
tunnel) comes from the flow. ``-generate`` traces the flow as written, as if
a packet made from it had arrived. Either way the trace has a real packet's
side effects (NORMAL learns the source MAC), as in Open vSwitch.

A ``BR_FLOW`` is read as Open vSwitch reads it (``parse_ofp_exact_flow()``),
not as ``add-flow`` reads a match: each field must have its prerequisites
before it (``ip,nw_src=...``, not ``nw_src=...,ip``), may be given once, and
takes no mask; the errors are that function's (``unknown field``, ``bad
value for``, ``prerequisites not met for setting``). Values Open vSwitch
would silently cut (``nw_src=1.2.3.400``, ``dl_vlan=5000``, ``nw_tos=3``)
are refused, as pvs-ofctl refuses them.

Open vSwitch composes the ``-generate`` packet (``--l7`` and ``--l7-len``
shape its payload) only for what it does with real packets beyond
translation: executing controller and sampling actions, which pyvswitch
does not have. So no packet is composed here, and those two options are
checked as Open vSwitch checks them and change nothing, there as here.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from pyvswitch.flow.layout import (
    DL_TYPE_NONE,
    FIELDS,
    FRAG_LATER,
    VLAN_CFI,
    VLAN_PCP_MASK,
    VLAN_VID_MASK,
)
from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.flow.odp_text import OdpKeyError, parse_odp_flow
from pyvswitch.flow.ofp_text import (
    ETH_ARP,
    ETH_IP,
    ETH_IPV6,
    ETH_RARP,
    META_FIELDS,
    SHORTHANDS,
    TNL_FLAG_NAMES,
    MetaField,
    parse_field_value,
    parse_flags,
    unsupported_keyword,
    with_protocol,
)
from pyvswitch.ofproto.ofproto import OfprotoError
from pyvswitch.vswitchd.unixctl import UnixctlError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from pyvswitch.vswitchd.daemon import Daemon, Datapath

#: What ``list-commands`` shows, word for word Open vSwitch's.
USAGE = "{[dp_name] odp_flow | bridge br_flow} [OPTIONS...] [-generate|packet]"

#: The datapath port number of "no port", which a key without in_port() has.
ODPP_NONE = 0xFFFFFFFF
#: The most L7 data ``--l7-len`` may ask for.
MAX_L7_LEN = 64000

# Pairs of hex digits, with blanks allowed between pairs but not inside one,
# as Open vSwitch's ofpbuf_put_hex() reads them.
_HEX = re.compile(r"(?:[ \t\r\n]*[0-9a-fA-F]{2})*[ \t\r\n]*")
# The number atoi() reads at the start of a string.
_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_ETH_HEADER_LEN = 14


def trace(daemon: Daemon, args: list[str]) -> str:
    """Run ``ofproto/trace`` with its arguments; errors are Open vSwitch's texts."""
    words, generate = _split_options(args)
    packet = None
    if not generate and len(words) > 1:
        # The last word is the packet if it reads as one; with three words it must.
        try:
            packet = _eth_from_hex(words[-1])
        except UnixctlError:
            if len(words) > 2:
                raise
        else:
            words.pop()
    if len(words) not in (1, 2):
        raise UnixctlError("Syntax error")
    try:
        key, mask = parse_odp_flow(words[-1])
    except OdpKeyError as exc:
        # A datapath flow, but not a usable key: OVS says so as it is.
        raise UnixctlError(str(exc)) from None
    except FlowParseError as exc:
        # Not a datapath flow: then it is an OpenFlow flow after a bridge name.
        if len(words) != 2:
            raise UnixctlError(f"{exc} (or the bridge name was omitted)") from None
        return _trace_bridge(daemon, words[0], words[1], packet, generate)
    dp = _datapath(daemon, words)
    if dp is None:
        raise UnixctlError("Cannot find the datapath")
    try:
        text = dp.ofp.trace(_full_key(key, mask), daemon.clock(), packet, generated=generate)
    except OfprotoError as exc:
        raise UnixctlError(str(exc)) from None
    return text + "\n"


def _split_options(args: list[str]) -> tuple[list[str], bool]:
    """The words that are not options, and whether ``-generate`` was given."""
    words: list[str] = []
    generate = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-generate", "--generate"):
            generate = True
        elif arg in ("--l7", "--l7-len", "--ct-next"):
            if i + 1 >= len(args):
                raise UnixctlError(f"Missing argument for option {arg}")
            i += 1
            _check_option(arg, args[i])
        elif arg.startswith("-"):
            raise UnixctlError(f"{arg}: unknown option")
        elif len(words) >= 3:
            raise UnixctlError("too many arguments")
        else:
            words.append(arg)
        i += 1
    return words, generate


def _check_option(option: str, value: str) -> None:
    """Refuse what Open vSwitch refuses in an option's value."""
    if option == "--ct-next":
        # The states it sets are read only after a ct() action recirculates.
        raise UnixctlError("--ct-next: not supported: pyvswitch has no connection tracking")
    if option == "--l7":
        _put_hex(value)
        return
    found = _ATOI.match(value)
    length = int(found.group(1)) if found else 0
    # Open vSwitch keeps the length unsigned, so a negative one is too much too.
    if not 0 <= length <= MAX_L7_LEN:
        raise UnixctlError(f"{value}: too much L7 data")


def _put_hex(text: str) -> bytes:
    """Bytes written in hex as Open vSwitch reads them, or its error."""
    if _HEX.fullmatch(text) is None:
        raise UnixctlError("Trailing garbage in packet data")
    return bytes.fromhex("".join(text.split()))


def _eth_from_hex(text: str) -> bytes:
    """An Ethernet frame written in hex, as ``eth_from_hex()`` accepts it."""
    frame = _put_hex(text)
    if len(frame) < _ETH_HEADER_LEN:
        raise UnixctlError("Packet data too short for Ethernet")
    return frame


def _datapath(daemon: Daemon, words: list[str]) -> Datapath | None:
    """The datapath named by the first of two words, or the only one when one word."""
    if len(words) == 2:
        return daemon.datapaths.get(words[0].removeprefix("ovs-"))
    if len(daemon.datapaths) == 1:
        return next(iter(daemon.datapaths.values()))
    return None


def _full_key(key: int, mask: int) -> int:
    """A datapath flow read as a whole packet's key, as ``odp_flow_key_to_flow()`` reads it.

    A key without ``in_port()`` comes from no port, and one without
    ``eth_type()`` is an 802.3 frame.
    """
    if not mask & FIELDS["in_port"].mask:
        key |= FIELDS["in_port"].put(ODPP_NONE)
    if not mask & FIELDS["dl_type"].mask:
        key |= FIELDS["dl_type"].put(DL_TYPE_NONE)
    return key


def _trace_bridge(
    daemon: Daemon, name: str, flow_text: str, packet: bytes | None, generate: bool
) -> str:
    """``BRIDGE BR_FLOW``: the flow in OpenFlow terms, its ports by number or name."""
    dp = next((d for d in daemon.datapaths.values() if name in d.ofp.bridges), None)
    if dp is None:
        raise UnixctlError(f"{name}: unknown bridge")
    names = {p.name: p.ofport for p in dp.ofp.bridges[name].ports.values()}
    try:
        key = parse_trace_flow(flow_text, port_names=names)
    except FlowParseError as exc:
        raise UnixctlError(f"Bad openflow flow syntax: {exc}") from None
    text = dp.ofp.trace_openflow(name, key, daemon.clock(), packet, generated=generate)
    return text + "\n"


# -- BR_FLOW, as parse_ofp_exact_flow() reads it ---------------------------------------

#: OpenFlow 1.0's "no port": the input port of a flow that names none.
OFPP_NONE = 0xFFFF
_OFP10_VLAN_NONE = 0xFFFF
_IPPROTO_TCP, _IPPROTO_UDP, _IPPROTO_SCTP = 6, 17, 132
_IPPROTO_ICMP, _IPPROTO_ICMPV6 = 1, 58
_ND_SOLICIT, _ND_ADVERT = 135, 136

#: Protocol keywords: add-flow's, and two more spellings the trace accepts.
_PROTOCOLS = {**SHORTHANDS, "ip4": SHORTHANDS["ip"], "ip6": SHORTHANDS["ipv6"]}

# Open vSwitch's name for a field when it is not the one typed (an alias): the
# value errors name the field so ("bad syntax for eth_type value").
_OVS_NAMES = {
    "dl_type": "eth_type",
    "ip_proto": "nw_proto",
    "ip_ecn": "nw_ecn",
    "nw_tos_shifted": "ip_dscp",
    "tp_src": "tcp_src",
    "tp_dst": "tcp_dst",
    "tunnel_id": "tun_id",
}

# Where the trace's prerequisite differs from add-flow's. The trace reads
# Open vSwitch's fields as they are: nw_src is IPv4's (add-flow also takes it
# for ARP), tp_src is tcp_src, udp_src is UDP's, icmp_type is ICMPv4's, and
# vlan_pcp (OpenFlow 1.2's) needs a VLAN tag.
_TRACE_PREREQS = {
    "nw_src": "ip4",
    "nw_dst": "ip4",
    "ip_src": "ip4",
    "ip_dst": "ip4",
    "nw_proto": "ip",
    "ip_proto": "ip",
    "tp_src": "tcp",
    "tp_dst": "tcp",
    "tcp_src": "tcp",
    "tcp_dst": "tcp",
    "udp_src": "udp",
    "udp_dst": "udp",
    "sctp_src": "sctp",
    "sctp_dst": "sctp",
    "icmp_type": "icmp4",
    "icmp_code": "icmp4",
    "icmpv6_type": "icmp6",
    "icmpv6_code": "icmp6",
    "vlan_pcp": "vlan",
}


def _value(m: Match, storage: str) -> int:
    return m.get(storage)[0]


def _l4(m: Match, dl_types: tuple[int, ...], proto: int) -> bool:
    # Open vSwitch refuses TCP, UDP and SCTP ports on a later fragment, which
    # has no L4 header; ICMP's type and code it allows there.
    return (
        _value(m, "dl_type") in dl_types
        and _value(m, "nw_proto") == proto
        and not _value(m, "nw_frag") & FRAG_LATER
    )


def _nd(m: Match, types: tuple[int, ...]) -> bool:
    # Neighbour discovery: ICMPv6 of type solicit or advert, code 0.
    return (
        _value(m, "dl_type") == ETH_IPV6
        and _value(m, "nw_proto") == _IPPROTO_ICMPV6
        and _value(m, "tp_src") in types
        and _value(m, "tp_dst") == 0
    )


_IP_ANY = (ETH_IP, ETH_IPV6)
#: Each prerequisite (``mf_are_prereqs_ok()``), checked on the flow read so far.
_PREREQ_OK: dict[str, Callable[[Match], bool]] = {
    "ip4": lambda m: _value(m, "dl_type") == ETH_IP,
    "ip6": lambda m: _value(m, "dl_type") == ETH_IPV6,
    "ip": lambda m: _value(m, "dl_type") in _IP_ANY,
    "arp": lambda m: _value(m, "dl_type") in (ETH_ARP, ETH_RARP),
    "tcp": lambda m: _l4(m, _IP_ANY, _IPPROTO_TCP),
    "udp": lambda m: _l4(m, _IP_ANY, _IPPROTO_UDP),
    "sctp": lambda m: _l4(m, _IP_ANY, _IPPROTO_SCTP),
    "icmp4": lambda m: _value(m, "dl_type") == ETH_IP and _value(m, "nw_proto") == _IPPROTO_ICMP,
    "icmp6": lambda m: (
        _value(m, "dl_type") == ETH_IPV6 and _value(m, "nw_proto") == _IPPROTO_ICMPV6
    ),
    "nd": lambda m: _nd(m, (_ND_SOLICIT, _ND_ADVERT)),
    "nd_ns": lambda m: _nd(m, (_ND_SOLICIT,)),
    "nd_na": lambda m: _nd(m, (_ND_ADVERT,)),
    "vlan": lambda m: bool(_value(m, "vlan_tci") & VLAN_CFI),
}

_PAIR_DELIMS = ", \t\r\n"


def _value_end(text: str, pos: int, delims: str) -> int:
    """Where a value that starts at ``pos`` ends: at a delimiter outside parentheses."""
    while pos < len(text) and text[pos] not in delims:
        if text[pos] != "(":
            pos += 1
            continue
        level = 0
        while True:
            if pos >= len(text):
                return pos
            level += {"(": 1, ")": -1}.get(text[pos], 0)
            pos += 1
            if level <= 0:
                break
    return pos


def _key_values(text: str) -> Iterator[tuple[str, str]]:
    """The ``KEY=VALUE`` pairs of a flow, split as ``ofputil_parse_key_value()`` splits.

    A key ends at ``=``, ``:``, ``(`` or a delimiter (then its value is
    empty); a value after ``(`` runs to the matching ``)``.
    """
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _PAIR_DELIMS:
            pos += 1
        if pos >= len(text):
            return
        start = pos
        while pos < len(text) and text[pos] not in ":=(" + _PAIR_DELIMS:
            pos += 1
        key = text[start:pos]
        delim = text[pos : pos + 1]
        pos += len(delim)
        if delim in (":", "="):
            value_delims = _PAIR_DELIMS
        elif delim == "(":
            value_delims = ")"
        else:
            yield key, ""
            continue
        start = pos
        pos = _value_end(text, pos, value_delims)
        if delim == "(" and text[pos : pos + 3] == ")->":
            pos = _value_end(text, pos, _PAIR_DELIMS)
        yield key, text[start:pos]
        pos += pos < len(text)


def _field_value(m: Match, field: MetaField) -> int:
    """The field's value in the flow so far, as Open vSwitch reads the field."""
    if field.kind == "tunmd":
        index = int(field.name.removeprefix("tun_metadata"))
        return _value(m, "tun_md_present") >> index & 1
    if field.kind == "vid":
        return _value(m, field.storage) & VLAN_VID_MASK
    return _value(m, field.storage) >> field.shift & ((1 << field.bits) - 1)


def _parse_exact(field: MetaField, text: str, ports: Mapping[str, int] | None, name: str) -> int:
    """The value ``text`` gives ``field``, refusing a mask that is not all ones."""
    full = (1 << field.bits) - 1
    if field.kind == "port":
        if "/" in text:
            # A port takes no mask: the whole text is read as the port.
            raise FlowParseError(f"{text}: invalid or unknown port for in_port")
        return parse_field_value(field, text, ports, name)[0]
    if field.kind == "tunflags":
        # Flags given with a mask ("+oam", "1/1") leave the others wildcarded.
        value, given = parse_flags(text, TNL_FLAG_NAMES, "tunnel", full)
        mask = full if given is None else 0
    elif "/" in text and not field.maskable:
        # A field without masks still takes an all-ones (or all-zeros) one.
        value, mask = parse_field_value(
            dataclasses.replace(field, maskable=True), text, None, name
        )
        if mask not in (0, full):
            raise FlowParseError(f"{text}: invalid mask for field {name}")
    else:
        value, mask = parse_field_value(field, text, ports, name)
    if mask != full:
        raise FlowParseError(f"{text}: wildcards not allowed here")
    return value


def _set(m: Match, field: MetaField, value: int) -> Match:
    """The flow with ``field`` set to ``value``, as ``mf_set_flow_value()`` sets it."""
    if field.kind == "tunmd":
        index = int(field.name.removeprefix("tun_metadata"))
        present = _value(m, "tun_md_present") | 1 << index
        return m.with_field(field.storage, value).with_field("tun_md_present", present)
    if field.kind == "vid":
        if value == _OFP10_VLAN_NONE:
            # dl_vlan=0xffff is OpenFlow 1.0's "no VLAN tag".
            return m.with_field(field.storage, 0)
        if value > VLAN_VID_MASK:
            # Open vSwitch keeps the low 12 bits; tracing another VLAN than
            # the one typed would mislead more than a refusal.
            raise FlowParseError(f"{value}: VLAN ID out of range 0..4095 in {field.name}")
        return m.with_field(field.storage, value | VLAN_CFI, VLAN_VID_MASK | VLAN_CFI)
    if field.kind == "pcp":
        return m.with_field(field.storage, value << 13 | VLAN_CFI, VLAN_PCP_MASK | VLAN_CFI)
    if field.name == "nw_tos" and value & 0x03:
        raise FlowParseError(
            f"{value}: nw_tos holds the DSCP bits of the ToS byte, so it must be a "
            "multiple of 4 (use nw_ecn for the low two bits)"
        )
    if field.name == "nw_tos":
        return m.with_field("nw_tos", value, 0xFC)
    mask = (1 << field.bits) - 1
    return m.with_field(field.storage, value << field.shift, mask << field.shift)


def parse_trace_flow(text: str, port_names: Mapping[str, int] | None = None) -> int:
    """The flow key of ``ofproto/trace BRIDGE BR_FLOW``, read as Open vSwitch 3.1 reads it.

    Raises :class:`FlowParseError` with Open vSwitch's message (the flow,
    then what is wrong with it); fields pyvswitch lacks are refused by name.
    A flow without an input port comes from ``OFPP_NONE``.
    """
    m = Match()
    for key, value_text in _key_values(text):
        if key in _PROTOCOLS:
            if _value(m, "dl_type"):
                raise FlowParseError(f"{text}: Ethernet type set multiple times")
            m = with_protocol(m, *_PROTOCOLS[key])
            continue
        refusal = unsupported_keyword(key)
        if refusal is not None:
            raise FlowParseError(f"{text}: {refusal}")
        field = META_FIELDS.get(key)
        if field is None:
            raise FlowParseError(f"{text}: unknown field {key}")
        prereq = _TRACE_PREREQS.get(key, field.prereq)
        if prereq is not None and not _PREREQ_OK[prereq](m):
            raise FlowParseError(f"{text}: prerequisites not met for setting {key}")
        if _field_value(m, field):
            raise FlowParseError(f"{text}: field {key} set multiple times")
        try:
            value = _parse_exact(field, value_text, port_names, _OVS_NAMES.get(key, key))
            m = _set(m, field, value)
        except FlowParseError as exc:
            raise FlowParseError(f"{text}: bad value for {key} ({exc})") from None
    if not _value(m, "in_port"):
        m = m.with_field("in_port", OFPP_NONE)
    for tpid, tci in (("vlan_tpid", "vlan_tci"), ("vlan_tpid1", "vlan_tci1")):
        # A tag given by its VLAN is an 802.1Q tag, as OVS's flow has it; the
        # key records a tag's presence by its TPID (translation reads it).
        if _value(m, tci) & VLAN_CFI and not _value(m, tpid):
            m = m.with_field(tpid, 0x8100)
    return m.value
