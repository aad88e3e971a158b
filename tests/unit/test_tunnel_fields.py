"""Tunnel metadata in every text form: datapath flows, OpenFlow matches, traces, actions.

Every expected string below was recorded from Open vSwitch 3.1 (its sandbox,
``tests/interop/ovs_sandbox.py``): datapath flows added with ``dpctl/add-flow``
and printed by ``dpctl/dump-flows`` (``-m`` for the verbose column), matches
normalised by ``ovs-ofctl parse-flow``, ``Flow:``/``Final flow:``/``Megaflow:``
lines from ``ofproto/trace``, and actions added with ``ovs-ofctl -O
OpenFlow1N add-flow`` and dumped over OpenFlow 1.0, 1.3 and 1.5.
``tests/interop/test_ovs_tunnel_fields.py`` asks the real program again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pyvswitch.flow.flow import Flow
from pyvswitch.flow.layout import FIELDS, TNL_F_CSUM, TNL_F_DONT_FRAGMENT, TNL_F_KEY, TNL_F_OAM
from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.flow.odp_text import OdpKeyError, format_odp_flow, parse_odp_flow
from pyvswitch.flow.ofp_text import format_flow, format_match, parse_flags, parse_match
from pyvswitch.ofproto.actions import FieldRef, RegLoad, SetField
from pyvswitch.ofproto.actions_text import (
    format_actions_as_written,
    parse_actions,
    set_field_is_exact,
)
from pyvswitch.ofproto.actions_wire import carry, format_actions
from tests.scenario.core_helpers import add_flow, switch

if TYPE_CHECKING:
    from pyvswitch.ofproto.ofproto import Ofproto

PACKET = (
    "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=192.0.2.1,dst=192.0.2.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)"
)
REST = (
    "recirc_id(0),in_port(1),packet_type(ns=0,id=0),"
    "eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=192.0.2.1,dst=192.0.2.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)"
)

# -- datapath flows ---------------------------------------------------------------

# (tunnel() as given to dpctl/add-flow, as dpctl/dump-flows prints it, as
# dump-flows -m prints it)
DATAPATH_TUNNELS = [
    (
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,tos=0x1a,ttl=64,tp_src=1234,tp_dst=4789,"
        "flags(oam|df|csum|key))",
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,tos=0x1a,ttl=64,tp_src=1234,tp_dst=4789,"
        "flags(oam|df|csum|key))",
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,tos=0x1a,ttl=64,tp_src=1234,tp_dst=4789,"
        "flags(oam|df|csum|key))",
    ),
    (
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64/0,flags(-df-csum+key))",
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,flags(-df-csum+key))",
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64/0,flags(-df-csum+key))",
    ),
    (
        "tunnel(tun_id=0x7b/0xff,src=1.1.2.0/255.255.255.0,dst=1.1.2.88,tos=0/0xff,ttl=64/0,"
        "flags(-df))",
        "tunnel(tun_id=0x7b/0xff,src=1.1.2.0/255.255.255.0,dst=1.1.2.88,flags(-df+key))",
        "tunnel(tun_id=0x7b/0xff,src=1.1.2.0/255.255.255.0,dst=1.1.2.88,ttl=64/0,flags(-df+key))",
    ),
    (
        "tunnel(src=1.1.2.92,dst=1.1.2.88,ttl=1,flags(0))",
        "tunnel(src=1.1.2.92,dst=1.1.2.88,ttl=1,flags(-oam-df-csum))",
        "tunnel(src=1.1.2.92,dst=1.1.2.88,ttl=1,flags(-oam-df-csum))",
    ),
    (
        "tunnel(dst=1.1.2.88,ttl=0/0,tp_dst=4789/0xff00)",
        "tunnel(dst=1.1.2.88,tp_dst=4789/0xff00)",
        "tunnel(dst=1.1.2.88,ttl=0/0,tp_dst=4789/0xff00,flags(0/0))",
    ),
    (
        "tunnel(tun_id=0,dst=1.1.2.88,ttl=0/0,flags(+df))",
        "tunnel(tun_id=0x0,dst=1.1.2.88,flags(+df+key))",
        "tunnel(tun_id=0x0,dst=1.1.2.88,ttl=0/0,flags(+df+key))",
    ),
    (
        "tunnel(tun_id=0x7b/0,dst=1.1.2.88,ttl=64/0xf0,flags(-oam))",
        "tunnel(dst=1.1.2.88,ttl=64/0xf0,flags(-oam+key))",
        "tunnel(tun_id=0x7b/0,dst=1.1.2.88,ttl=64/0xf0,flags(-oam+key))",
    ),
    (
        "tunnel(tun_id=0/0x0,ipv6_dst=2001:db8::2/ffff::,ipv6_src=::1,tos=0x3/0x1,ttl=64,"
        "tp_src=1/0,flags(0/0))",
        "tunnel(ipv6_src=::1,ipv6_dst=2001:db8::2/ffff::,tos=0x3/0x1,ttl=64,flags(+key))",
        "tunnel(tun_id=0x0/0,ipv6_src=::1,ipv6_dst=2001:db8::2/ffff::,tos=0x3/0x1,ttl=64,"
        "tp_src=1/0,flags(+key))",
    ),
    (
        "tunnel(dst=1.1.2.88,src=1.1.2.1/0.0.0.0,ttl=64,flags(csum))",
        "tunnel(dst=1.1.2.88,ttl=64,flags(-oam-df+csum))",
        "tunnel(src=1.1.2.1/0.0.0.0,dst=1.1.2.88,ttl=64,flags(-oam-df+csum))",
    ),
]


@pytest.mark.parametrize(("given", "dumped", "verbose"), DATAPATH_TUNNELS)
def test_datapath_tunnels_print_as_dpctl_dump_flows_prints_them(
    given: str, dumped: str, verbose: str
) -> None:
    key, mask = parse_odp_flow(f"{given},{PACKET}")
    assert format_odp_flow(key, mask, megaflow=True) == f"{dumped},{REST}"
    long = format_odp_flow(key, mask, megaflow=True, verbose=True)
    # The tunnel comes after skb_priority, before the other metadata.
    assert long.startswith(f"skb_priority(0/0),{verbose},skb_mark(0/0),")


@pytest.mark.parametrize(("given", "dumped", "verbose"), DATAPATH_TUNNELS)
def test_a_printed_datapath_flow_reads_back_to_the_same_flow(
    given: str, dumped: str, verbose: str
) -> None:
    key, mask = parse_odp_flow(f"{given},{PACKET}")
    again = parse_odp_flow(format_odp_flow(key, mask, megaflow=True, verbose=True))
    assert format_odp_flow(*again, megaflow=True) == f"{dumped},{REST}"


def test_a_full_key_prints_every_item_it_carries() -> None:
    key, _ = parse_odp_flow(
        f"tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64,flags(-key)),{PACKET}"
    )
    # A tunnel ID sets the key flag: flags(-key) does not take it away.
    assert format_odp_flow(key).startswith(
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64,flags(key)),in_port(1),"
    )
    flow = Flow.from_key(key)
    assert flow.tun_flags == TNL_F_KEY
    assert (flow.tun_id, flow.tun_src, flow.tun_dst, flow.tun_ttl) == (
        0x7B,
        0x0101025C,
        0x01010258,
        64,
    )


def test_flags_set_the_flag_items_and_the_key_flag_follows_the_id() -> None:
    key, mask = parse_odp_flow(f"tunnel(dst=1.1.2.88,ttl=1,flags(oam|df|csum|key)),{PACKET}")
    fld = FIELDS["tun_flags"]
    assert fld.get(key) == TNL_F_OAM | TNL_F_DONT_FRAGMENT | TNL_F_CSUM
    assert fld.get(mask) == TNL_F_OAM | TNL_F_DONT_FRAGMENT | TNL_F_CSUM


def test_a_packet_without_a_tunnel_destination_has_no_tunnel_attribute() -> None:
    flow = Flow(tun_id=5, tun_src=1, in_port=1, dl_type=0x0806)
    assert format_odp_flow(flow.to_key()).startswith("in_port(1),eth(")


def test_a_megaflow_that_matches_no_tunnel_field_prints_no_tunnel() -> None:
    key, _ = parse_odp_flow(f"tunnel(tun_id=0x7b,dst=1.1.2.88,ttl=64),{PACKET}")
    _, mask = parse_odp_flow(PACKET)
    assert format_odp_flow(key, mask, megaflow=True) == REST


@pytest.mark.parametrize(
    ("tunnel", "message"),
    [
        (
            "tunnel(tun_id=0x7b)",
            "tunnel options missing TTL; the flow key in error is: tunnel(tun_id=0x7b,flags(key)),"
            + PACKET,
        ),
        (
            "tunnel(src=1.1.2.92,dst=1.1.2.88)",
            "tunnel options missing TTL; the flow key in error is: "
            "tunnel(src=1.1.2.92,dst=1.1.2.88,flags(0))," + PACKET,
        ),
    ],
)
def test_a_tunnel_without_ttl_is_refused_with_ovs_words(tunnel: str, message: str) -> None:
    with pytest.raises(OdpKeyError) as info:
        parse_odp_flow(f"{tunnel},{PACKET}")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("tunnel", "words"),
    [
        ("tunnel(dst=1.1.1.1,ttl=1,flags(bogus))", "bogus: unknown tunnel flag(s)"),
        ("tunnel(dst=1.1.1.1,ttl=1,vni=5)", "unknown field 'vni' in tunnel()"),
        ("tunnel(dst=1.1.1.1,ttl=256)", "value out of range in tunnel(ttl=...)"),
        ("tunnel(dst=1.1.1,ttl=1)", "bad value in tunnel(dst=...)"),
        ("tunnel(dst=1.1.1.1,ttl=1,erspan(ver=1))", "erspan tunnel options are not supported"),
    ],
)
def test_bad_tunnel_items_are_refused_naming_them(tunnel: str, words: str) -> None:
    with pytest.raises(FlowParseError) as info:
        parse_odp_flow(f"{tunnel},{PACKET}")
    assert words in str(info.value)
    assert not isinstance(info.value, OdpKeyError)


# -- OpenFlow matches -------------------------------------------------------------

MATCHES = [
    ("tun_flags=oam", "tun_flags=+oam"),
    ("tun_flags=+oam", "tun_flags=+oam"),
    ("tun_flags=-oam", "tun_flags=-oam"),
    ("tun_flags=0", "tun_flags=-oam"),
    ("tun_flags=1", "tun_flags=+oam"),
    ("tun_flags=0x1/0x1", "tun_flags=+oam"),
    ("tun_flags=oam|oam", "tun_flags=+oam"),
    ("tun_flags=0/0", ""),
    ("tun_flags=+oam,tun_flags=-oam", "tun_flags=-oam"),
    ("tun_ipv6_src=2001:db8::1/64", "tun_ipv6_src=2001:db8::/64"),
    ("tun_ipv6_dst=2001:db8::1", "tun_ipv6_dst=2001:db8::1"),
    ("tun_ipv6_src=::1/::ff", "tun_ipv6_src=::1/::ff"),
    ("tun_ipv6_dst=2001:db8::1/ffff::", "tun_ipv6_dst=2001::/16"),
    (
        "tun_src=1.2.3.0/24,tun_dst=1.2.3.4/255.0.255.0",
        "tun_src=1.2.3.0/24,tun_dst=1.0.3.0/255.0.255.0",
    ),
    ("tun_dst=1.1.1.1/0", ""),
    ("tun_id=0x7b/0xff", "tun_id=0x7b/0xff"),
    ("tun_id=0", "tun_id=0"),
    ("tun_id=5/0", ""),
    ("tunnel_id=5", "tun_id=0x5"),
    (
        "tun_flags=+oam,tun_id=5,tun_ipv6_src=::1,tun_src=1.1.1.1,reg0=1,metadata=1,in_port=1",
        "reg0=0x1,tun_id=0x5,tun_src=1.1.1.1,tun_ipv6_src=::1,tun_flags=+oam,metadata=0x1,in_port=1",
    ),
]


@pytest.mark.parametrize(("text", "normalised"), MATCHES)
def test_tunnel_matches_normalise_as_ovs_ofctl_does(text: str, normalised: str) -> None:
    match, _ = parse_match(text)
    assert format_match(match) == normalised
    assert parse_match(normalised)[0] == match


MATCH_ERRORS = [
    ("tun_flags=key", "key: unknown tunnel flag(s)"),
    ("tun_flags=+df", "df: unknown tunnel flag(s)"),
    ("tun_flags=oam/1", "oam/1: unknown tunnel flag(s)"),
    ("tun_flags=2", "2: unknown tunnel flag(s)"),
    ("tun_flags=+oam+oam", "oam: Each tunnel flag can be specified only once"),
    ("tun_flags=+bogus", "bogus: unknown tunnel flag(s)"),
    ("tun_flags=oam+", "oam+: unknown tunnel flag(s)"),
    ("tun_flags=0x2/0x2", "0x2/0x2: unknown tunnel flag(s)"),
    ("tun_flags=0x10000", "0x10000: unknown tunnel flag(s)"),
    ("tun_flags=1/0xffff", "1/0xffff: unknown tunnel flag(s)"),
    ("tun_ipv6_src=zz", "zz: invalid IPv6 address"),
    ("tun_ipv6_src=::1/129", "::1/129: IPv6 network prefix bits not between 0 and 128, inclusive"),
    ("tun_src=1.1.1.1/33", "1.1.1.1/33: IPv4 network prefix bits not between 0 and 32, inclusive"),
    ("tun_id=0x10000000000000000", "0x10000000000000000: value too large for 8-byte field tun_id"),
    ("tun_ipv4_src=1.1.1.1", "unknown keyword tun_ipv4_src"),
]


@pytest.mark.parametrize(("text", "message"), MATCH_ERRORS)
def test_bad_tunnel_matches_get_ovs_messages(text: str, message: str) -> None:
    with pytest.raises(FlowParseError) as info:
        parse_match(text)
    assert str(info.value) == message


@pytest.mark.parametrize("name", ["tun_tos", "tun_ttl"])
def test_outer_tos_and_ttl_are_no_openflow_match_fields(name: str) -> None:
    # Open vSwitch 3.1 knows the names but cannot encode a match on them.
    with pytest.raises(FlowParseError, match=f"^{name}: field not supported by pyvswitch"):
        parse_match(f"{name}=1")


def test_flags_parser_reads_ovs_three_forms() -> None:
    names = ("oam", "df", "csum", "key")
    assert parse_flags("df|key", names, "tunnel", 0xF) == (10, None)
    assert parse_flags("+df-key", names, "tunnel", 0xF) == (2, 10)
    assert parse_flags("0x3/0x7", names, "tunnel", 0xF) == (3, 7)
    assert parse_flags("1|df", names, "tunnel", 0xF) == (3, None)
    assert parse_flags("", names, "tunnel", 0xF) == (0, None)
    with pytest.raises(FlowParseError, match=r"^df\?: unknown tunnel flag\(s\)$"):
        parse_flags("+df?", names, "tunnel", 0xF)


# -- trace lines --------------------------------------------------------------------

_TAIL = (
    "vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,nw_src=192.0.2.1,"
    "nw_dst=192.0.2.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,icmp_type=8,icmp_code=0"
)
_CONSTANTS = "tun_gbp_id=0,tun_gbp_flags=0"
_MORE = "tun_erspan_ver=0,gtpu_flags=0,gtpu_msgtype=0"


@pytest.mark.parametrize(
    ("tunnel", "flow_line"),
    [
        (
            "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64,flags(-df-csum+key))",
            "icmp,tun_id=0x7b,tun_src=1.1.2.92,tun_dst=1.1.2.88,tun_ipv6_src=::,tun_ipv6_dst=::,"
            f"{_CONSTANTS},tun_tos=0,tun_ttl=64,{_MORE},tun_flags=key,in_port=10,{_TAIL}",
        ),
        (
            "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,tos=0x1a,ttl=64,tp_src=1234,"
            "tp_dst=4789,flags(oam|df|csum|key))",
            "icmp,tun_id=0x7b,tun_src=1.1.2.92,tun_dst=1.1.2.88,tun_ipv6_src=::,tun_ipv6_dst=::,"
            f"{_CONSTANTS},tun_tos=1a,tun_ttl=64,{_MORE},tun_flags=oam|df|csum|key,in_port=10,"
            f"{_TAIL}",
        ),
        (
            "tunnel(tun_id=0x7b,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,ttl=64,flags(key))",
            "icmp,tun_id=0x7b,tun_src=0.0.0.0,tun_dst=0.0.0.0,tun_ipv6_src=2001:db8::1,"
            f"tun_ipv6_dst=2001:db8::2,{_CONSTANTS},tun_tos=0,tun_ttl=64,{_MORE},tun_flags=key,"
            f"in_port=10,{_TAIL}",
        ),
    ],
)
def test_trace_flow_line_shows_the_tunnel_as_ovs_does(tunnel: str, flow_line: str) -> None:
    key, _ = parse_odp_flow(f"{tunnel},{PACKET}")
    flow = Flow.from_key(key)
    flow.in_port = 10
    assert format_flow(flow) == flow_line


def test_trace_flow_line_shows_a_lone_tunnel_id_and_no_id_without_the_key_flag() -> None:
    base = "in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00"
    assert format_flow(Flow(tun_id=0x7B, in_port=1)) == f"tun_id=0x7b,{base},dl_type=0x0000"
    # A tunnel without the key flag: its ID is not part of the packet.
    assert format_flow(Flow(tun_id=0x7B, tun_dst=0x02020202, in_port=1)) == (
        "tun_src=0.0.0.0,tun_dst=2.2.2.2,tun_ipv6_src=::,tun_ipv6_dst=::,"
        f"{_CONSTANTS},tun_tos=0,tun_ttl=0,{_MORE},tun_flags=0,{base},dl_type=0x0000"
    )
    # Tunnel fields without a destination are no tunnel.
    assert format_flow(Flow(tun_src=0x01010101, in_port=1)) == f"{base},dl_type=0x0000"


def test_megaflow_line_tunnel_part_as_ovs_prints_it() -> None:
    key, _ = parse_odp_flow(
        f"tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,tos=0x1a,ttl=64,flags(df|csum|key)),"
        f"{PACKET}"
    )
    mask = sum(FIELDS[n].mask for n in ("tun_id", "tun_src", "tun_dst", "tun_tos", "in_port"))
    mask |= FIELDS["tun_flags"].put(TNL_F_DONT_FRAGMENT | TNL_F_CSUM | TNL_F_KEY)
    assert format_match(Match.exact(key, mask), megaflow=True) == (
        "recirc_id=0,eth,tun_id=0x7b,tun_src=1.1.2.92,tun_dst=1.1.2.88,tun_tos=1a,"
        "tun_flags=+df+csum+key,in_port=1"
    )


# -- actions ------------------------------------------------------------------------

# (actions as written, version added with, printed by a dump over OpenFlow
# 1.0, 1.3, 1.5), recorded from Open vSwitch 3.1.
BY_VERSION = [
    ("set_tunnel:0x7b", 10, "set_tunnel:0x7b", "set_field:0x7b->tun_id", "set_field:0x7b->tun_id"),
    (
        "set_tunnel:0x7b",
        13,
        "load:0x7b->NXM_NX_TUN_ID[]",
        "set_field:0x7b->tun_id",
        "set_field:0x7b->tun_id",
    ),
    (
        "set_field:1.1.1.0/24->tun_dst",
        13,
        "load:0x10101->NXM_NX_TUN_IPV4_DST[8..31]",
        "load:0x10101->NXM_NX_TUN_IPV4_DST[8..31]",
        "set_field:1.1.1.0/24->tun_dst",
    ),
    (
        "set_field:2001:db8::1->tun_ipv6_src",
        10,
        "load:0x1->NXM_NX_TUN_IPV6_SRC[0..63],load:0x20010db800000000->NXM_NX_TUN_IPV6_SRC[64..127]",
        "load:0x1->NXM_NX_TUN_IPV6_SRC[0..63],load:0x20010db800000000->NXM_NX_TUN_IPV6_SRC[64..127]",
        "set_field:::1/::ffff:ffff:ffff:ffff->tun_ipv6_src,set_field:2001:db8::/64->tun_ipv6_src",
    ),
    (
        "set_field:2001:db8::1->tun_ipv6_dst",
        13,
        "load:0x1->NXM_NX_TUN_IPV6_DST[0..63],load:0x20010db800000000->NXM_NX_TUN_IPV6_DST[64..127]",
        "set_field:2001:db8::1->tun_ipv6_dst",
        "set_field:2001:db8::1->tun_ipv6_dst",
    ),
    (
        "set_field:2001:db8::/64->tun_ipv6_dst",
        15,
        "load:0x20010db800000000->NXM_NX_TUN_IPV6_DST[64..127]",
        "load:0x20010db800000000->NXM_NX_TUN_IPV6_DST[64..127]",
        "set_field:2001:db8::/64->tun_ipv6_dst",
    ),
    (
        "set_field:oam->tun_flags",
        10,
        "load:0x1->NXM_NX_TUN_FLAGS[]",
        "load:0x1->NXM_NX_TUN_FLAGS[]",
        "set_field:oam->tun_flags",
    ),
    (
        "set_field:oam->tun_flags",
        13,
        "load:0x1->NXM_NX_TUN_FLAGS[]",
        "set_field:oam->tun_flags",
        "set_field:oam->tun_flags",
    ),
    # A masked write of the one flag is carried as a load before OpenFlow 1.5.
    (
        "set_field:+oam->tun_flags",
        13,
        "load:0x1->NXM_NX_TUN_FLAGS[]",
        "load:0x1->NXM_NX_TUN_FLAGS[]",
        "set_field:oam->tun_flags",
    ),
    (
        "set_field:-oam->tun_flags",
        15,
        "load:0->NXM_NX_TUN_FLAGS[]",
        "load:0->NXM_NX_TUN_FLAGS[]",
        "set_field:0->tun_flags",
    ),
    (
        "set_field:0->tun_flags",
        15,
        "load:0->NXM_NX_TUN_FLAGS[]",
        "set_field:0->tun_flags",
        "set_field:0->tun_flags",
    ),
    (
        "load:0x1->NXM_NX_TUN_FLAGS[0]",
        15,
        "load:0x1->NXM_NX_TUN_FLAGS[]",
        "load:0x1->NXM_NX_TUN_FLAGS[]",
        "set_field:oam->tun_flags",
    ),
    (
        "load:0x7b->NXM_NX_TUN_ID[]",
        15,
        "load:0x7b->NXM_NX_TUN_ID[]",
        "set_field:0x7b->tun_id",
        "set_field:0x7b->tun_id",
    ),
    (
        "load:0x1->NXM_NX_TUN_IPV6_DST[64..127]",
        13,
        "load:0x1->NXM_NX_TUN_IPV6_DST[64..127]",
        "load:0x1->NXM_NX_TUN_IPV6_DST[64..127]",
        "set_field:0:0:0:1::/64->tun_ipv6_dst",
    ),
    (
        "move:OXM_OF_TUNNEL_ID[]->NXM_NX_TUN_ID[]",
        13,
        "move:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[]",
        "move:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[]",
        "move:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[]",
    ),
    (
        "move:NXM_NX_TUN_IPV6_SRC[]->NXM_NX_TUN_IPV6_DST[]",
        10,
        "move:NXM_NX_TUN_IPV6_SRC[]->NXM_NX_TUN_IPV6_DST[]",
        "move:NXM_NX_TUN_IPV6_SRC[]->NXM_NX_TUN_IPV6_DST[]",
        "move:NXM_NX_TUN_IPV6_SRC[]->NXM_NX_TUN_IPV6_DST[]",
    ),
    (
        "move:NXM_NX_TUN_FLAGS[]->NXM_NX_REG0[0]",
        10,
        "move:NXM_NX_TUN_FLAGS[]->NXM_NX_REG0[0]",
        "move:NXM_NX_TUN_FLAGS[]->NXM_NX_REG0[0]",
        "move:NXM_NX_TUN_FLAGS[]->NXM_NX_REG0[0]",
    ),
    (
        "output:tun_src[0..15]",
        10,
        "output:NXM_NX_TUN_IPV4_SRC[0..15]",
        "output:NXM_NX_TUN_IPV4_SRC[0..15]",
        "output:NXM_NX_TUN_IPV4_SRC[0..15]",
    ),
    (
        "set_field:0->tun_flags,set_tunnel:5,set_field:::1->tun_ipv6_src",
        10,
        "load:0->NXM_NX_TUN_FLAGS[],set_tunnel:0x5,load:0x1->NXM_NX_TUN_IPV6_SRC[0..63],"
        "load:0->NXM_NX_TUN_IPV6_SRC[64..127]",
        "load:0->NXM_NX_TUN_FLAGS[],set_field:0x5->tun_id,load:0x1->NXM_NX_TUN_IPV6_SRC[0..63],"
        "load:0->NXM_NX_TUN_IPV6_SRC[64..127]",
        "set_field:0->tun_flags,set_field:0x5->tun_id,"
        "set_field:::1/::ffff:ffff:ffff:ffff->tun_ipv6_src,set_field:::/64->tun_ipv6_src",
    ),
]


@pytest.mark.parametrize(("text", "added", "of10", "of13", "of15"), BY_VERSION)
def test_tunnel_actions_dump_as_ovs_ofctl_dumps_them(
    text: str, added: int, of10: str, of13: str, of15: str
) -> None:
    held = carry(parse_actions(text), added)
    assert [format_actions(held, version=v) for v in (10, 13, 15)] == [of10, of13, of15]
    # What a rule holds reads back to itself, except a masked write of
    # tun_flags: Open vSwitch prints it as the exact one ("oam", not "+oam").
    written = format_actions_as_written(held)
    masked_flags = any(
        isinstance(a, SetField) and a.field == "tun_flags" and not set_field_is_exact(a)
        for a in held
    )
    assert (parse_actions(written) == held) != masked_flags


def test_tun_flags_set_field_keeps_whether_it_was_masked() -> None:
    (exact,) = parse_actions("set_field:oam->tun_flags")
    (masked,) = parse_actions("set_field:+oam->tun_flags")
    assert exact == SetField("tun_flags", 1, 0xFFFF)
    assert masked == SetField("tun_flags", 1, 1)
    assert set_field_is_exact(exact)
    assert not set_field_is_exact(masked)
    assert parse_actions("load:1->NXM_NX_TUN_FLAGS[]") == (
        RegLoad(1, FieldRef("tun_flags", 0, 1)),
    )


ACTION_ERRORS = [
    ("set_field:1->tun_tos", "tun_tos is read-only"),
    ("set_field:1->tun_ttl", "tun_ttl is read-only"),
    ("set_field:0x3->tun_flags", "0x3: unknown tunnel flag(s)"),
    ("set_field:0xffff->tun_flags", "0xffff: unknown tunnel flag(s)"),
    ("set_field:0x1/0x3->tun_flags", "0x1/0x3: unknown tunnel flag(s)"),
    ("set_field:+oam+oam->tun_flags", "oam: Each tunnel flag can be specified only once"),
    ("set_field:+oam-oam->tun_flags", "oam: Each tunnel flag can be specified only once"),
    ("set_field:oam/1->tun_flags", "oam/1: unknown tunnel flag(s)"),
    ("set_field:bogus->tun_flags", "bogus: unknown tunnel flag(s)"),
    ("set_field:1.2.3.4.5->tun_src", "1.2.3.4.5: invalid IP address"),
    ("set_field:zz->tun_ipv6_dst", "zz: invalid IPv6 address"),
    (
        "set_field:0x10000000000000000->tun_id",
        "0x10000000000000000: value too large for 8-byte field tun_id",
    ),
    (
        "load:0x1ffffffff->NXM_NX_TUN_IPV4_SRC[]",
        "0x1ffffffff->NXM_NX_TUN_IPV4_SRC[]: cannot parse integer value",
    ),
    ("load:2->NXM_NX_TUN_FLAGS[]", "2->NXM_NX_TUN_FLAGS[]: value df does not fit into 1 bits"),
    (
        "load:1->NXM_NX_TUN_FLAGS[1]",
        "NXM_NX_TUN_FLAGS[1]: starting bit 1 is not valid because field is only 1 bits wide",
    ),
    (
        "move:tun_flags[]->reg1[0..15]",
        "tun_flags[]->reg1[0..15]: source field is 1 bits wide but destination is 16 bits wide",
    ),
    (
        "move:NXM_NX_TUN_TOS[]->reg0[0..7]",
        "NXM_NX_TUN_TOS[]->reg0[0..7]: unknown field `NXM_NX_TUN_TOS'",
    ),
]


@pytest.mark.parametrize(("text", "message"), ACTION_ERRORS)
def test_bad_tunnel_actions_get_ovs_messages(text: str, message: str) -> None:
    with pytest.raises(FlowParseError) as info:
        parse_actions(text)
    assert str(info.value) == message


def test_outer_tos_is_refused_in_subfields_where_ovs_encodes_garbage() -> None:
    with pytest.raises(FlowParseError, match="not supported by pyvswitch"):
        parse_actions("move:tun_tos[]->reg0[0..7]")


# -- translation --------------------------------------------------------------------

FLOWS = [
    "table=0,in_port=1,actions=set_field:1.1.1.1->tun_dst,set_tunnel:0x7b,"
    "set_field:2001:db8::1->tun_ipv6_src,set_field:oam->tun_flags,resubmit(,1)",
    "table=1,tun_id=0x7b,tun_dst=1.1.1.1,tun_flags=+oam,"
    "actions=move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG0[],output:2",
    "table=0,in_port=2,actions=load:0x5->NXM_NX_TUN_ID[],resubmit(,2)",
    "table=2,tun_id=0x5,actions=output:3",
]


def tunnel_bridge() -> tuple[Ofproto, dict[int, int]]:
    ofp = switch()
    ofp.add_bridge("br0")
    odp = {}
    for i in (1, 2, 3):
        port = ofp.add_port("br0", f"p{i}", "dummy", i)
        assert port.odp_port is not None
        odp[i] = port.odp_port
    for text in FLOWS:
        add_flow(ofp, "br0", text)
    return ofp, odp


def trace_lines(ofp: Ofproto, odp_port: int) -> dict[str, str]:
    key, _ = parse_odp_flow(PACKET.replace("in_port(1)", f"in_port({odp_port})"))
    lines = ofp.trace(key, 0.0).splitlines()
    return dict(line.split(": ", 1) for line in lines if line.startswith(("Final", "Mega")))


def test_tunnel_fields_set_by_actions_are_matched_after_resubmit() -> None:
    ofp, odp = tunnel_bridge()
    out = trace_lines(ofp, odp[1])
    # As Open vSwitch: the tunnel has a destination now, so the final flow
    # shows it, without the ID (no key flag); the megaflow does not match
    # tunnel fields of a packet that came out of no tunnel.
    assert out["Final flow"] == (
        "icmp,reg0=0x7b,tun_src=0.0.0.0,tun_dst=1.1.1.1,tun_ipv6_src=2001:db8::1,"
        f"tun_ipv6_dst=::,{_CONSTANTS},tun_tos=0,tun_ttl=0,{_MORE},tun_flags=oam,in_port=1,"
        f"{_TAIL}"
    )
    assert out["Megaflow"] == "recirc_id=0,eth,ip,in_port=1,nw_frag=no"


def test_a_load_to_the_tunnel_id_is_matched_in_the_next_table() -> None:
    ofp, odp = tunnel_bridge()
    out = trace_lines(ofp, odp[2])
    assert out["Final flow"] == f"icmp,tun_id=0x5,in_port=2,{_TAIL}"
    assert out["Megaflow"] == "recirc_id=0,eth,ip,in_port=2,nw_frag=no"


def test_set_field_on_tun_flags_writes_only_the_oam_flag() -> None:
    ofp = switch()
    ofp.add_bridge("br0")
    ofp.add_port("br0", "p1", "dummy", 1)
    add_flow(ofp, "br0", "in_port=1,actions=set_field:0->tun_flags,resubmit(,1)")
    add_flow(ofp, "br0", "table=1,actions=drop")
    key, _ = parse_odp_flow(
        f"tunnel(tun_id=0x7b,dst=1.1.2.88,ttl=64,flags(oam|df)),{PACKET}".replace(
            "in_port(1)", f"in_port({ofp.bridges['br0'].ports[1].odp_port})"
        )
    )
    out = dict(
        line.split(": ", 1)
        for line in ofp.trace(key, 0.0).splitlines()
        if line.startswith("Final flow")
    )
    # df and key belong to the encapsulation: set_field leaves them.
    assert "tun_flags=df|key," in out["Final flow"]
