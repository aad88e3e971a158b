"""Actions across OpenFlow versions: what a rule holds and what each dump prints.

Every expected string below was recorded from Open vSwitch 3.1: a flow added
with ``ovs-ofctl -O OpenFlow1N add-flow`` and dumped with ``ovs-ofctl -O
OpenFlow1M --no-stats dump-flows``, for N in 1.0, 1.3, 1.5 and M in 1.0, 1.3
and 1.5. A rule added over version N holds ``carry(actions, N)``; a dump over
M prints ``format_actions(held, version=M)``; ``ofproto/trace`` prints what
the rule holds (``format_actions_as_written``), which is also what a dump
over the version the flow was added with prints.
``tests/interop/test_ovs_action_versions.py`` re-checks these against the
real program, with the trace and the other versions.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.ofp_text import parse_match
from pyvswitch.ofproto.actions import (
    Action,
    FieldRef,
    GotoTable,
    PushVlan,
    RegLoad,
    Resubmit,
    SetVlanVid,
    StripVlan,
)
from pyvswitch.ofproto.actions_text import check_actions, format_actions_as_written, parse_actions
from pyvswitch.ofproto.actions_wire import (
    OF10,
    OF11,
    OF13,
    OF15,
    carry,
    check_version,
    format_actions,
)
from tests.unit.test_actions_text import action_cases

# (match, actions as written, version added with, printed by a dump over
# OpenFlow 1.0, 1.3, 1.5), recorded from Open vSwitch 3.1.
BY_VERSION = [
    (
        "ip",
        "set_field:10.0.0.9->nw_dst",
        10,
        "mod_nw_dst:10.0.0.9",
        "set_field:10.0.0.9->ip_dst",
        "set_field:10.0.0.9->ip_dst",
    ),
    (
        "ip",
        "set_field:10.0.0.9->ip_src",
        10,
        "mod_nw_src:10.0.0.9",
        "set_field:10.0.0.9->ip_src",
        "set_field:10.0.0.9->ip_src",
    ),
    (
        "ip",
        "mod_nw_src:10.0.0.9",
        10,
        "mod_nw_src:10.0.0.9",
        "set_field:10.0.0.9->ip_src",
        "set_field:10.0.0.9->ip_src",
    ),
    (
        "ip",
        "load:0xa000009->NXM_OF_IP_DST[]",
        10,
        "load:0xa000009->NXM_OF_IP_DST[]",
        "load:0xa000009->NXM_OF_IP_DST[]",
        "set_field:10.0.0.9->ip_dst",
    ),
    (
        "ip",
        "load:0xa000009->NXM_OF_IP_DST[]",
        15,
        "mod_nw_dst:10.0.0.9",
        "set_field:10.0.0.9->ip_dst",
        "set_field:10.0.0.9->ip_dst",
    ),
    (
        "ip",
        "load:0x9->NXM_OF_IP_DST[0..7]",
        10,
        "load:0x9->NXM_OF_IP_DST[0..7]",
        "load:0x9->NXM_OF_IP_DST[0..7]",
        "set_field:0.0.0.9/0.0.0.255->ip_dst",
    ),
    (
        "ip",
        "move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[]",
        10,
        "move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[]",
        "move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[]",
        "move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[]",
    ),
    (
        "tcp",
        "set_field:80->tcp_dst",
        10,
        "mod_tp_dst:80",
        "set_field:80->tcp_dst",
        "set_field:80->tcp_dst",
    ),
    (
        "tcp",
        "mod_tp_dst:80",
        10,
        "mod_tp_dst:80",
        "set_field:80->tcp_dst",
        "set_field:80->tcp_dst",
    ),
    (
        "tcp",
        "mod_tp_src:80",
        10,
        "mod_tp_src:80",
        "set_field:80->tcp_src",
        "set_field:80->tcp_src",
    ),
    (
        "udp",
        "mod_tp_src:80",
        10,
        "mod_tp_src:80",
        "set_field:80->udp_src",
        "set_field:80->udp_src",
    ),
    (
        "udp",
        "set_field:80->udp_dst",
        10,
        "mod_tp_dst:80",
        "set_field:80->udp_dst",
        "set_field:80->udp_dst",
    ),
    (
        "sctp",
        "mod_tp_dst:80",
        10,
        "mod_tp_dst:80",
        "set_field:80->sctp_dst",
        "set_field:80->sctp_dst",
    ),
    (
        "sctp",
        "mod_tp_dst:80",
        13,
        "load:0x50->OXM_OF_SCTP_DST[]",
        "set_field:80->sctp_dst",
        "set_field:80->sctp_dst",
    ),
    (
        "tcp",
        "load:0x50->NXM_OF_TCP_DST[]",
        10,
        "load:0x50->NXM_OF_TCP_DST[]",
        "load:0x50->NXM_OF_TCP_DST[]",
        "set_field:80->tcp_dst",
    ),
    (
        "tcp",
        "load:0x50->NXM_OF_TCP_DST[]",
        15,
        "mod_tp_dst:80",
        "set_field:80->tcp_dst",
        "set_field:80->tcp_dst",
    ),
    (
        "tcp",
        "load:0x50->OXM_OF_TCP_DST[]",
        10,
        "load:0x50->NXM_OF_TCP_DST[]",
        "load:0x50->NXM_OF_TCP_DST[]",
        "set_field:80->tcp_dst",
    ),
    (
        "tcp",
        "load:0x50->OXM_OF_TCP_DST[]",
        15,
        "mod_tp_dst:80",
        "set_field:80->tcp_dst",
        "set_field:80->tcp_dst",
    ),
    (
        "in_port=1",
        "mod_dl_src:00:11:22:33:44:55",
        10,
        "mod_dl_src:00:11:22:33:44:55",
        "set_field:00:11:22:33:44:55->eth_src",
        "set_field:00:11:22:33:44:55->eth_src",
    ),
    (
        "in_port=1",
        "set_field:00:11:22:33:44:55->eth_dst",
        10,
        "mod_dl_dst:00:11:22:33:44:55",
        "set_field:00:11:22:33:44:55->eth_dst",
        "set_field:00:11:22:33:44:55->eth_dst",
    ),
    (
        "in_port=1",
        "set_field:00:11:22:33:44:55->dl_src",
        10,
        "mod_dl_src:00:11:22:33:44:55",
        "set_field:00:11:22:33:44:55->eth_src",
        "set_field:00:11:22:33:44:55->eth_src",
    ),
    (
        "in_port=1",
        "load:0x1122334455->NXM_OF_ETH_SRC[]",
        10,
        "load:0x1122334455->NXM_OF_ETH_SRC[]",
        "load:0x1122334455->NXM_OF_ETH_SRC[]",
        "set_field:00:11:22:33:44:55->eth_src",
    ),
    (
        "in_port=1",
        "load:0x1122334455->NXM_OF_ETH_SRC[]",
        15,
        "mod_dl_src:00:11:22:33:44:55",
        "set_field:00:11:22:33:44:55->eth_src",
        "set_field:00:11:22:33:44:55->eth_src",
    ),
    (
        "in_port=1",
        "mod_vlan_vid:5",
        10,
        "mod_vlan_vid:5",
        "push_vlan:0x8100,set_field:4101->vlan_vid",
        "push_vlan:0x8100,set_field:4101->vlan_vid",
    ),
    (
        "dl_vlan=7",
        "set_field:4101->vlan_vid",
        10,
        "mod_vlan_vid:5",
        "set_field:4101->vlan_vid",
        "set_field:4101->vlan_vid",
    ),
    (
        "in_port=1",
        "mod_vlan_pcp:3",
        10,
        "mod_vlan_pcp:3",
        "push_vlan:0x8100,set_field:3->vlan_pcp",
        "push_vlan:0x8100,set_field:3->vlan_pcp",
    ),
    (
        "dl_vlan=7",
        "set_field:3->vlan_pcp",
        10,
        "mod_vlan_pcp:3",
        "set_field:3->vlan_pcp",
        "set_field:3->vlan_pcp",
    ),
    ("in_port=1", "strip_vlan", 10, "strip_vlan", "pop_vlan", "pop_vlan"),
    ("in_port=1", "pop_vlan", 10, "strip_vlan", "pop_vlan", "pop_vlan"),
    ("in_port=1", "push_vlan:0x8100", 13, "drop", "push_vlan:0x8100", "push_vlan:0x8100"),
    (
        "in_port=1",
        "push_vlan:0x8100,set_field:4101->vlan_vid",
        13,
        "mod_vlan_vid:5",
        "push_vlan:0x8100,set_field:4101->vlan_vid",
        "push_vlan:0x8100,set_field:4101->vlan_vid",
    ),
    (
        "in_port=1",
        "load:0x1005->NXM_OF_VLAN_TCI[]",
        10,
        "load:0x1005->NXM_OF_VLAN_TCI[]",
        "load:0x1005->NXM_OF_VLAN_TCI[]",
        "set_field:0x1005->vlan_tci",
    ),
    (
        "in_port=1",
        "load:0x1005->NXM_OF_VLAN_TCI[]",
        15,
        "mod_vlan_vid:5,mod_vlan_pcp:0",
        "set_field:0x1005->vlan_tci",
        "set_field:0x1005->vlan_tci",
    ),
    (
        "in_port=1",
        "set_field:0x1005->vlan_tci",
        10,
        "mod_vlan_vid:5,mod_vlan_pcp:0",
        "push_vlan:0x8100,set_field:4101->vlan_vid,set_field:0->vlan_pcp",
        "push_vlan:0x8100,set_field:4101->vlan_vid,set_field:0->vlan_pcp",
    ),
    (
        "in_port=1",
        "set_field:0x1005->vlan_tci",
        13,
        "mod_vlan_vid:5,mod_vlan_pcp:0",
        "set_field:0x1005->vlan_tci",
        "set_field:0x1005->vlan_tci",
    ),
    ("ip", "mod_nw_tos:8", 10, "mod_nw_tos:8", "set_field:2->ip_dscp", "set_field:2->ip_dscp"),
    (
        "ip",
        "set_field:2->ip_dscp",
        10,
        "mod_nw_tos:8",
        "set_field:2->ip_dscp",
        "set_field:2->ip_dscp",
    ),
    (
        "ip",
        "set_field:8->nw_tos",
        10,
        "mod_nw_tos:8",
        "set_field:2->ip_dscp",
        "set_field:2->ip_dscp",
    ),
    (
        "ip",
        "set_field:8->nw_tos",
        13,
        "mod_nw_tos:8",
        "set_field:8->nw_tos",
        "set_field:8->nw_tos",
    ),
    (
        "ip",
        "mod_nw_ecn:1",
        13,
        "load:0x1->NXM_NX_IP_ECN[]",
        "set_field:1->nw_ecn",
        "set_field:1->nw_ecn",
    ),
    (
        "ip",
        "set_field:1->nw_ecn",
        13,
        "load:0x1->NXM_NX_IP_ECN[]",
        "set_field:1->nw_ecn",
        "set_field:1->nw_ecn",
    ),
    (
        "ip",
        "set_field:1->ip_ecn",
        13,
        "load:0x1->NXM_NX_IP_ECN[]",
        "set_field:1->nw_ecn",
        "set_field:1->nw_ecn",
    ),
    (
        "ip",
        "mod_nw_ttl:5",
        10,
        "load:0x5->NXM_NX_IP_TTL[]",
        "load:0x5->NXM_NX_IP_TTL[]",
        "set_field:5->nw_ttl",
    ),
    ("ip", "mod_nw_ttl:5", 13, "load:0x5->NXM_NX_IP_TTL[]", "mod_nw_ttl:5", "mod_nw_ttl:5"),
    (
        "ip",
        "set_field:5->nw_ttl",
        10,
        "load:0x5->NXM_NX_IP_TTL[]",
        "load:0x5->NXM_NX_IP_TTL[]",
        "set_field:5->nw_ttl",
    ),
    (
        "ip",
        "set_field:5->nw_ttl",
        13,
        "load:0x5->NXM_NX_IP_TTL[]",
        "set_field:5->nw_ttl",
        "set_field:5->nw_ttl",
    ),
    (
        "ip",
        "load:5->NXM_NX_IP_TTL[]",
        10,
        "load:0x5->NXM_NX_IP_TTL[]",
        "load:0x5->NXM_NX_IP_TTL[]",
        "set_field:5->nw_ttl",
    ),
    (
        "ip",
        "load:5->NXM_NX_IP_TTL[]",
        15,
        "load:0x5->NXM_NX_IP_TTL[]",
        "set_field:5->nw_ttl",
        "set_field:5->nw_ttl",
    ),
    ("ip", "dec_ttl", 10, "dec_ttl", "dec_ttl", "dec_ttl"),
    (
        "in_port=1",
        "load:5->NXM_NX_REG0[]",
        10,
        "load:0x5->NXM_NX_REG0[]",
        "load:0x5->NXM_NX_REG0[]",
        "set_field:0x5->reg0",
    ),
    (
        "in_port=1",
        "load:5->NXM_NX_REG0[]",
        15,
        "load:0x5->NXM_NX_REG0[]",
        "set_field:0x5->reg0",
        "set_field:0x5->reg0",
    ),
    (
        "in_port=1",
        "set_field:5->reg0",
        10,
        "load:0x5->NXM_NX_REG0[]",
        "load:0x5->NXM_NX_REG0[]",
        "set_field:0x5->reg0",
    ),
    (
        "in_port=1",
        "set_field:5->reg0",
        13,
        "load:0x5->NXM_NX_REG0[]",
        "set_field:0x5->reg0",
        "set_field:0x5->reg0",
    ),
    (
        "in_port=1",
        "load:5->NXM_NX_REG0[0..3]",
        10,
        "load:0x5->NXM_NX_REG0[0..3]",
        "load:0x5->NXM_NX_REG0[0..3]",
        "set_field:0x5/0xf->reg0",
    ),
    (
        "in_port=1",
        "set_field:5/0xf->reg0",
        10,
        "load:0x5->NXM_NX_REG0[0..3]",
        "load:0x5->NXM_NX_REG0[0..3]",
        "set_field:0x5/0xf->reg0",
    ),
    (
        "in_port=1",
        "load:5->OXM_OF_METADATA[]",
        10,
        "load:0x5->OXM_OF_METADATA[]",
        "load:0x5->OXM_OF_METADATA[]",
        "set_field:0x5->metadata",
    ),
    (
        "in_port=1",
        "load:5->OXM_OF_METADATA[]",
        15,
        "load:0x5->OXM_OF_METADATA[]",
        "set_field:0x5->metadata",
        "set_field:0x5->metadata",
    ),
    (
        "in_port=1",
        "set_field:5->metadata",
        10,
        "load:0x5->OXM_OF_METADATA[]",
        "load:0x5->OXM_OF_METADATA[]",
        "set_field:0x5->metadata",
    ),
    (
        "in_port=1",
        "set_field:5->metadata",
        13,
        "load:0x5->OXM_OF_METADATA[]",
        "set_field:0x5->metadata",
        "set_field:0x5->metadata",
    ),
    (
        "in_port=1",
        "move:NXM_NX_REG0[]->NXM_NX_REG1[]",
        10,
        "move:NXM_NX_REG0[]->NXM_NX_REG1[]",
        "move:NXM_NX_REG0[]->NXM_NX_REG1[]",
        "move:NXM_NX_REG0[]->NXM_NX_REG1[]",
    ),
    (
        "in_port=1",
        "set_tunnel:5",
        10,
        "set_tunnel:0x5",
        "set_field:0x5->tun_id",
        "set_field:0x5->tun_id",
    ),
    (
        "in_port=1",
        "set_tunnel:5",
        13,
        "load:0x5->NXM_NX_TUN_ID[]",
        "set_field:0x5->tun_id",
        "set_field:0x5->tun_id",
    ),
    (
        "in_port=1",
        "set_tunnel64:5",
        10,
        "set_tunnel64:0x5",
        "set_field:0x5->tun_id",
        "set_field:0x5->tun_id",
    ),
    (
        "in_port=1",
        "set_tunnel64:5",
        13,
        "load:0x5->NXM_NX_TUN_ID[]",
        "set_field:0x5->tun_id",
        "set_field:0x5->tun_id",
    ),
    (
        "in_port=1",
        "set_field:5->tun_id",
        10,
        "load:0x5->NXM_NX_TUN_ID[]",
        "load:0x5->NXM_NX_TUN_ID[]",
        "set_field:0x5->tun_id",
    ),
    (
        "in_port=1",
        "set_field:5->tun_id",
        13,
        "load:0x5->NXM_NX_TUN_ID[]",
        "set_field:0x5->tun_id",
        "set_field:0x5->tun_id",
    ),
    (
        "in_port=1",
        "load:5->NXM_NX_TUN_ID[]",
        10,
        "load:0x5->NXM_NX_TUN_ID[]",
        "load:0x5->NXM_NX_TUN_ID[]",
        "set_field:0x5->tun_id",
    ),
    (
        "in_port=1",
        "load:5->NXM_NX_TUN_ID[]",
        15,
        "load:0x5->NXM_NX_TUN_ID[]",
        "set_field:0x5->tun_id",
        "set_field:0x5->tun_id",
    ),
    (
        "ipv6",
        "set_field:2001:db8::1->ipv6_src",
        10,
        "load:0x1->NXM_NX_IPV6_SRC[0..63],load:0x20010db800000000->NXM_NX_IPV6_SRC[64..127]",
        "load:0x1->NXM_NX_IPV6_SRC[0..63],load:0x20010db800000000->NXM_NX_IPV6_SRC[64..127]",
        "set_field:::1/::ffff:ffff:ffff:ffff->ipv6_src,set_field:2001:db8::/64->ipv6_src",
    ),
    (
        "ipv6",
        "set_field:2001:db8::1->ipv6_src",
        13,
        "load:0x1->NXM_NX_IPV6_SRC[0..63],load:0x20010db800000000->NXM_NX_IPV6_SRC[64..127]",
        "set_field:2001:db8::1->ipv6_src",
        "set_field:2001:db8::1->ipv6_src",
    ),
    (
        "in_port=1",
        "output:NXM_NX_REG0[0..15]",
        10,
        "output:NXM_NX_REG0[0..15]",
        "output:NXM_NX_REG0[0..15]",
        "output:NXM_NX_REG0[0..15]",
    ),
    (
        "in_port=1",
        "note:01.02",
        10,
        "note:01.02.00.00.00.00",
        "note:01.02.00.00.00.00",
        "note:01.02.00.00.00.00",
    ),
    ("in_port=1", "controller", 10, "CONTROLLER:65535", "CONTROLLER:65535", "CONTROLLER:65535"),
    ("in_port=1", "resubmit(,1)", 10, "resubmit(,1)", "resubmit(,1)", "resubmit(,1)"),
    ("in_port=1", "goto_table:1", 10, "resubmit(,1)", "resubmit(,1)", "resubmit(,1)"),
    ("in_port=1", "goto_table:1", 13, "resubmit(,1)", "goto_table:1", "goto_table:1"),
    (
        "in_port=1",
        "set_field:1->in_port",
        10,
        "load:0x1->NXM_OF_IN_PORT[]",
        "load:0x1->NXM_OF_IN_PORT[]",
        "set_field:1->in_port",
    ),
    (
        "in_port=1",
        "set_field:1->in_port",
        13,
        "load:0x1->NXM_OF_IN_PORT[]",
        "set_field:1->in_port",
        "set_field:1->in_port",
    ),
    (
        "arp",
        "set_field:1->arp_op",
        10,
        "load:0x1->NXM_OF_ARP_OP[]",
        "load:0x1->NXM_OF_ARP_OP[]",
        "set_field:1->arp_op",
    ),
    (
        "arp",
        "set_field:1->arp_op",
        13,
        "load:0x1->NXM_OF_ARP_OP[]",
        "set_field:1->arp_op",
        "set_field:1->arp_op",
    ),
    (
        "arp",
        "set_field:10.0.0.1->arp_spa",
        10,
        "load:0xa000001->NXM_OF_ARP_SPA[]",
        "load:0xa000001->NXM_OF_ARP_SPA[]",
        "set_field:10.0.0.1->arp_spa",
    ),
    (
        "arp",
        "set_field:10.0.0.1->arp_spa",
        13,
        "load:0xa000001->NXM_OF_ARP_SPA[]",
        "set_field:10.0.0.1->arp_spa",
        "set_field:10.0.0.1->arp_spa",
    ),
]
DUMP_VERSIONS = (OF10, OF13, OF15)
ALL_VERSIONS = (10, 11, 12, 13, 14, 15)


def added(match: str, text: str, version: int) -> tuple[Action, ...]:
    """What a rule holds after ``MATCH,actions=TEXT`` was added over ``version``."""
    flow_match = parse_match(match)[0]
    actions = parse_actions(text)
    check_actions(actions, flow_match)
    check_version(actions, version)
    return carry(actions, version, flow_match)


@pytest.mark.parametrize(("match", "text", "version", "of10", "of13", "of15"), BY_VERSION)
def test_dumps_print_what_ovs_prints_for_each_version(
    match: str, text: str, version: int, of10: str, of13: str, of15: str
) -> None:
    held = added(match, text, version)
    flow_match = parse_match(match)[0]
    printed = [format_actions(held, version=v, match=flow_match) for v in DUMP_VERSIONS]
    assert printed == [of10, of13, of15]


@pytest.mark.parametrize(("match", "text", "version", "of10", "of13", "of15"), BY_VERSION)
def test_the_rule_holds_what_a_dump_over_its_own_version_prints(
    match: str, text: str, version: int, of10: str, of13: str, of15: str
) -> None:
    # ofproto/trace prints what the rule holds; a dump over the version the
    # flow came with carries it back unchanged, so they agree.
    own = {OF10: of10, OF13: of13, OF15: of15}[version]
    held = added(match, text, version)
    assert format_actions_as_written(held) == own
    # What the rule holds reads back to itself: flows.json keeps it that way.
    assert parse_actions(own) == held


def test_actions_carried_twice_are_carried_once() -> None:
    match = parse_match("ip")[0]
    for text in ("mod_vlan_vid:5,mod_nw_ttl:3,set_field:1->nw_ecn", "set_tunnel:5,goto_table:2"):
        for version in ALL_VERSIONS:
            once = carry(parse_actions(text), version, match)
            assert carry(once, version, match) == once


@given(action_cases(), st.sampled_from(ALL_VERSIONS))
def test_what_a_rule_holds_prints_and_reads_back_to_itself(
    case: tuple[str, tuple[Action, ...]], version: int
) -> None:
    match_text, actions = case
    match = parse_match(match_text)[0]
    if version == OF10 and any(isinstance(a, PushVlan) for a in actions):
        return
    held = carry(actions, version, match)
    assert carry(held, version, match) == held
    assert parse_actions(format_actions_as_written(held)) == held


def test_push_vlan_is_refused_over_openflow10_as_ovs_ofctl_refuses_it() -> None:
    # Recorded from ovs-ofctl add-flow br0 in_port=1,actions=push_vlan:0x8100.
    with pytest.raises(FlowParseError) as excinfo:
        check_version(parse_actions("push_vlan:0x8100,set_field:4101->vlan_vid"), OF10)
    assert str(excinfo.value) == (
        "none of the usable flow formats (OXM,OpenFlow11) is among the allowed flow formats "
        "(OpenFlow10,NXM)"
    )
    check_version(parse_actions("push_vlan:0x8100"), OF11)


def test_a_dump_over_openflow10_leaves_push_vlan_out_as_ovs_does() -> None:
    # OpenFlow 1.0 has no push_vlan: Open vSwitch encodes nothing for it.
    held = (PushVlan(), SetVlanVid(5, push_if_missing=False))
    assert format_actions(held, version=OF10) == "mod_vlan_vid:5"
    assert format_actions((PushVlan(),), version=OF10) == "drop"


def test_goto_table_is_a_resubmit_over_openflow10() -> None:
    assert carry((GotoTable(3),), OF10) == (Resubmit(None, 3),)
    assert carry((GotoTable(3),), OF13) == (GotoTable(3),)


def test_strip_vlan_and_pop_vlan_are_each_others_spelling() -> None:
    assert carry((StripVlan(pop=True),), OF10) == (StripVlan(pop=False),)
    assert carry((StripVlan(pop=False),), OF11) == (StripVlan(pop=True),)


def test_a_masked_set_field_keeps_its_mask_over_openflow10() -> None:
    # Open vSwitch sends this as mod_nw_dst:192.0.2.9 over OpenFlow 1.0 (and
    # prints that), which writes all 32 bits; we keep the mask, as loads.
    match = parse_match("ip")[0]
    held = added("ip", "set_field:192.0.2.9/255.255.255.0->ip_dst", OF10)
    assert held == (RegLoad(0xC00002, FieldRef("ip_dst", 8, 24)),)
    assert format_actions(held, version=OF10, match=match) == "load:0xc00002->NXM_OF_IP_DST[8..31]"
    # Over OpenFlow 1.5 it stays one masked set_field, printed as mf_format() does.
    over15 = added("ip", "set_field:192.0.2.9/255.255.255.0->ip_dst", OF15)
    assert format_actions_as_written(over15) == "set_field:192.0.2.0/24->ip_dst"


def test_mod_tp_without_a_known_protocol_keeps_its_legacy_spelling() -> None:
    # Without the match, OpenFlow 1.3 cannot name the field.
    held = carry(parse_actions("mod_tp_dst:80"), OF13)
    assert format_actions_as_written(held) == "mod_tp_dst:80"
