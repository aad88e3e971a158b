"""The OpenFlow action text form: parsing, printing, checking and errors.

Every expected string below was recorded from Open vSwitch 3.1: the printed
forms are what ``ovs-ofctl -O OpenFlow13 parse-flow 'MATCH,actions=TEXT'``
prints, which is also what ``ovs-ofctl -O OpenFlow13 dump-flows`` prints for
the flow on a bridge that speaks OpenFlow 1.3 (our ``format_actions`` of
:mod:`pyvswitch.ofproto.actions_wire`, which carries the actions over
OpenFlow 1.3 first; ``tests/unit/test_actions_wire.py`` covers the other
versions); the error messages are what
ovs-ofctl prints after ``ovs-ofctl:`` (with, for a failed check, the reason
it logs on the line before, as ``actions_text`` documents). The few places
where we print or refuse differently are tested separately, each saying what
Open vSwitch does. ``tests/interop/test_ovs_actions.py`` re-checks these and
generated action lists against the real program.
"""

from __future__ import annotations

import contextlib
import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.flow.ofp_text import META_FIELDS, parse_match
from pyvswitch.ofproto.actions import (
    OFPP_ALL,
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_IN_PORT,
    OFPP_LOCAL,
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
from pyvswitch.ofproto.actions_text import check_actions, format_actions_as_written, parse_actions
from pyvswitch.ofproto.actions_wire import OF13, carry, format_actions


def roundtrip(text: str, match: str = "") -> str:
    """Parse, check against ``match`` and print, as adding and dumping a flow over OF1.3 does."""
    actions = parse_actions(text)
    flow_match = parse_match(match)[0]
    check_actions(actions, flow_match)
    return format_actions(actions, match=flow_match)


# (match, actions as written, actions as Open vSwitch 3.1 prints them)
PRINTED = [
    ("", "output:1", "output:1"),
    ("", "1", "output:1"),
    ("", "NORMAL", "NORMAL"),
    ("", "normal", "NORMAL"),
    ("", "FLOOD,ALL,IN_PORT,LOCAL,in_port,local", "FLOOD,ALL,IN_PORT,LOCAL,IN_PORT,LOCAL"),
    ("", "TABLE", "TABLE"),
    ("", "CONTROLLER", "CONTROLLER:65535"),
    ("", "controller", "CONTROLLER:65535"),
    ("", "controller:100", "CONTROLLER:100"),
    ("", "controller(max_len=100)", "CONTROLLER:100"),
    ("", "controller(reason=no_match)", "controller(reason=no_match)"),
    ("", "controller(reason=no_match,max_len=100)", "controller(reason=no_match,max_len=100)"),
    ("", "controller(reason=action,max_len=12)", "CONTROLLER:12"),
    ("", "controller:max_len=5", "CONTROLLER:5"),
    ("", "output:CONTROLLER", "CONTROLLER:65535"),
    ("", "output:65533", "CONTROLLER:65535"),
    ("", "output:65534", "LOCAL"),
    ("", "output:4294967294", "LOCAL"),
    ("", "output:010", "output:10"),
    ("", "drop", "drop"),
    ("", "", "drop"),
    ("", ",", "drop"),
    ("", "drop,drop", "drop"),
    ("", "push_vlan:0x8100", "push_vlan:0x8100"),
    ("", "push_vlan:0x88a8", "push_vlan:0x88a8"),
    ("", "push_vlan:34984", "push_vlan:0x88a8"),
    ("dl_vlan=3", "strip_vlan", "pop_vlan"),
    ("dl_vlan=3", "pop_vlan", "pop_vlan"),
    ("dl_vlan=3", "strip_vlan:1", "pop_vlan"),
    ("ip", "mod_dl_src:00:11:22:33:44:55", "set_field:00:11:22:33:44:55->eth_src"),
    ("ip", "mod_dl_dst:0:1:2:3:4:5", "set_field:00:01:02:03:04:05->eth_dst"),
    ("ip", "mod_nw_src:1.2.3.4", "set_field:1.2.3.4->ip_src"),
    ("ip", "mod_nw_dst:1.2.3.4", "set_field:1.2.3.4->ip_dst"),
    ("ip", "mod_nw_tos:8", "set_field:2->ip_dscp"),
    ("ip", "mod_nw_tos:0x10", "set_field:4->ip_dscp"),
    ("ip", "mod_nw_ecn:2", "set_field:2->nw_ecn"),
    ("ip", "mod_nw_ttl:9", "mod_nw_ttl:9"),
    ("ip", "set_nw_ttl:9", "mod_nw_ttl:9"),
    ("ip", "mod_nw_ttl:010", "mod_nw_ttl:8"),
    ("ip", "set_field:1.2.3.4->nw_src", "set_field:1.2.3.4->ip_src"),
    ("ip", "set_field:1.2.3.4->ip_dst", "set_field:1.2.3.4->ip_dst"),
    ("ip", "set_field:1.2.3.4/24->nw_src", "load:0x10203->NXM_OF_IP_SRC[8..31]"),
    (
        "ip",
        "set_field:1.2.3.4/255.0.255.0->nw_src",
        "load:0x3->NXM_OF_IP_SRC[8..15],load:0x1->NXM_OF_IP_SRC[24..31]",
    ),
    (
        "ip",
        "set_field:00:11:22:33:44:55/ff:ff:ff:00:00:00->eth_src",
        "load:0x1122->NXM_OF_ETH_SRC[24..47]",
    ),
    ("ip", "set_field:00:11:22:33:44:55->dl_src", "set_field:00:11:22:33:44:55->eth_src"),
    (
        "ip",
        "set_field:00:11:22:33:44:55/ff:ff:ff:ff:ff:ff->eth_src",
        "set_field:00:11:22:33:44:55->eth_src",
    ),
    ("ip", "set_field:8->nw_tos", "set_field:8->nw_tos"),
    ("ip", "set_field:2->ip_dscp", "set_field:2->ip_dscp"),
    ("ip", "set_field:2->nw_ecn", "set_field:2->nw_ecn"),
    ("ip", "set_field:2->ip_ecn", "set_field:2->nw_ecn"),
    ("ip", "set_field:2->nw_ttl", "set_field:2->nw_ttl"),
    ("ip", "set_field:0x10->nw_ttl", "set_field:16->nw_ttl"),
    ("tcp", "set_field:80->tcp_dst", "set_field:80->tcp_dst"),
    ("tcp", "set_field:80->tp_dst", "set_field:80->tcp_dst"),
    ("tcp", "set_field:80/0xff->tcp_dst", "load:0x50->NXM_OF_TCP_DST[0..7]"),
    ("tcp", "set_field:010->tcp_dst", "set_field:8->tcp_dst"),
    ("udp", "set_field:80->udp_src", "set_field:80->udp_src"),
    ("sctp", "set_field:80->sctp_dst", "set_field:80->sctp_dst"),
    ("icmp", "set_field:3->icmp_type", "set_field:3->icmp_type"),
    ("icmp", "set_field:3->icmp_code", "set_field:3->icmp_code"),
    ("icmp6", "set_field:3->icmpv6_type", "set_field:3->icmpv6_type"),
    ("icmp6", "set_field:3->icmpv6_code", "set_field:3->icmpv6_code"),
    ("icmp6,icmp_type=135", "set_field:::1->nd_target", "set_field:::1->nd_target"),
    (
        "icmp6,icmp_type=135",
        "set_field:00:00:00:00:00:01->nd_sll",
        "set_field:00:00:00:00:00:01->nd_sll",
    ),
    (
        "icmp6,icmp_type=136",
        "set_field:00:00:00:00:00:01->nd_tll",
        "set_field:00:00:00:00:00:01->nd_tll",
    ),
    ("arp", "set_field:2->arp_op", "set_field:2->arp_op"),
    ("arp", "set_field:0x10->arp_op", "set_field:16->arp_op"),
    ("arp", "set_field:1.2.3.4->arp_spa", "set_field:1.2.3.4->arp_spa"),
    ("arp", "set_field:1.2.3.4->arp_tpa", "set_field:1.2.3.4->arp_tpa"),
    ("arp", "set_field:00:00:00:00:00:01->arp_sha", "set_field:00:00:00:00:00:01->arp_sha"),
    ("arp", "set_field:00:00:00:00:00:01->arp_tha", "set_field:00:00:00:00:00:01->arp_tha"),
    ("ipv6", "set_field:::1->ipv6_src", "set_field:::1->ipv6_src"),
    ("ipv6", "set_field:1::/64->ipv6_src", "load:0x1000000000000->NXM_NX_IPV6_SRC[64..127]"),
    ("ipv6", "set_field:5->ipv6_label", "set_field:0x5->ipv6_label"),
    ("ipv6", "set_field:0xfffff/0xf->ipv6_label", "load:0xf->NXM_NX_IPV6_LABEL[0..3]"),
    ("", "set_field:5->tun_id", "set_field:0x5->tun_id"),
    ("", "set_field:5->tunnel_id", "set_field:0x5->tun_id"),
    ("", "set_field:0->tun_id", "set_field:0->tun_id"),
    ("", "set_field:1.2.3.4->tun_src", "set_field:1.2.3.4->tun_src"),
    ("", "set_field:1.2.3.4->tun_dst", "set_field:1.2.3.4->tun_dst"),
    ("", "set_field:5->metadata", "set_field:0x5->metadata"),
    ("", "set_field:0x10/0xf0->metadata", "load:0x1->OXM_OF_METADATA[4..7]"),
    ("", "set_field:5->reg0", "set_field:0x5->reg0"),
    ("", "set_field:0->reg15", "set_field:0->reg15"),
    ("", "set_field:0x10/0xf->reg0", "load:0->NXM_NX_REG0[0..3]"),
    ("", "set_field:5->in_port", "set_field:5->in_port"),
    ("", "set_field:LOCAL->in_port", "set_field:LOCAL->in_port"),
    ("", "set_field:65535->in_port", "set_field:ANY->in_port"),
    ("", "set_field:IN_PORT->in_port", "set_field:IN_PORT->in_port"),
    ("", "set_field:0x1005->vlan_tci", "set_field:0x1005->vlan_tci"),
    ("", "set_field:5->vlan_tci", "set_field:0x5->vlan_tci"),
    ("", "set_field:0->vlan_tci", "set_field:0->vlan_tci"),
    ("", "set_field:0x1005/0x0fff->vlan_tci", "load:0x5->NXM_OF_VLAN_TCI[0..11]"),
    ("dl_vlan=5", "set_field:4101->vlan_vid", "set_field:4101->vlan_vid"),
    ("dl_vlan=5", "set_field:3->vlan_pcp", "set_field:3->vlan_pcp"),
    ("dl_vlan=5", "set_vlan_vid:6", "set_field:4102->vlan_vid"),
    ("dl_vlan=5", "set_vlan_pcp:6", "set_field:6->vlan_pcp"),
    ("", "push_vlan:0x8100,set_field:4101->vlan_vid", "push_vlan:0x8100,set_field:4101->vlan_vid"),
    ("", "push_vlan:0x8100,set_field:3->vlan_pcp", "push_vlan:0x8100,set_field:3->vlan_pcp"),
    (
        "",
        "set_field:0x1005->vlan_tci,set_field:4101->vlan_vid",
        "set_field:0x1005->vlan_tci,set_field:4101->vlan_vid",
    ),
    ("", "load:5->NXM_NX_REG1[0..3]", "load:0x5->NXM_NX_REG1[0..3]"),
    ("", "load:5->reg1[]", "load:0x5->NXM_NX_REG1[]"),
    ("", "load:5->reg1", "load:0x5->NXM_NX_REG1[]"),
    ("", "load:1->reg0[3]", "load:0x1->NXM_NX_REG0[3]"),
    ("", "load:0->reg0[]", "load:0->NXM_NX_REG0[]"),
    ("", "load:010->reg0[]", "load:0x8->NXM_NX_REG0[]"),
    ("", "load:0xffffffffffffffff->metadata[]", "load:0xffffffffffffffff->OXM_OF_METADATA[]"),
    ("", "load:1->OXM_OF_METADATA[]", "load:0x1->OXM_OF_METADATA[]"),
    ("", "load:1->NXM_NX_REG0_W[]", "load:0x1->NXM_NX_REG0[]"),
    ("", "load:1->NXM_OF_ETH_SRC[]", "load:0x1->NXM_OF_ETH_SRC[]"),
    ("", "load:1->dl_dst[]", "load:0x1->NXM_OF_ETH_DST[]"),
    ("ip", "load:1->OXM_OF_IPV4_SRC[]", "load:0x1->NXM_OF_IP_SRC[]"),
    ("ip", "load:1->nw_tos[2..7]", "load:0x1->NXM_OF_IP_TOS[2..7]"),
    ("ip", "load:1->ip_dscp[]", "load:0x1->OXM_OF_IP_DSCP[]"),
    ("tcp", "load:1->tp_dst[]", "load:0x1->NXM_OF_TCP_DST[]"),
    (
        "ipv6",
        "load:1->ipv6_src[]",
        "load:0x1->NXM_NX_IPV6_SRC[0..63],load:0->NXM_NX_IPV6_SRC[64..127]",
    ),
    (
        "ipv6",
        "load:0xffffffffffffffffffffffffffffffff->ipv6_src[]",
        "load:0xffffffffffffffff->NXM_NX_IPV6_SRC[0..63],load:0xffffffffffffffff->NXM_NX_IPV6_SRC[64..127]",
    ),
    ("ipv6", "load:0x1234->ipv6_src[60..75]", "load:0x1234->NXM_NX_IPV6_SRC[60..75]"),
    (
        "ipv6",
        "load:0x1->ipv6_src[10..100]",
        "load:0x1->NXM_NX_IPV6_SRC[10..73],load:0->NXM_NX_IPV6_SRC[74..100]",
    ),
    ("ipv6", "load:1->OXM_OF_IPV6_FLABEL[]", "load:0x1->NXM_NX_IPV6_LABEL[]"),
    ("arp", "load:2->NXM_OF_ARP_OP[]", "load:0x2->NXM_OF_ARP_OP[]"),
    ("", "load:1->in_port[]", "load:0x1->NXM_OF_IN_PORT[]"),
    ("", "load:1->NXM_NX_TUN_IPV4_SRC[]", "load:0x1->NXM_NX_TUN_IPV4_SRC[]"),
    ("", "load:1->vlan_tci[]", "load:0x1->NXM_OF_VLAN_TCI[]"),
    ("", "move:reg0[]->reg1[]", "move:NXM_NX_REG0[]->NXM_NX_REG1[]"),
    (
        "",
        "move:NXM_OF_IN_PORT[]->NXM_NX_REG0_W[0..15]",
        "move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]",
    ),
    ("", "move:reg0->reg1", "move:NXM_NX_REG0[]->NXM_NX_REG1[]"),
    ("tcp", "move:tcp_flags[]->reg0[0..11]", "move:NXM_NX_TCP_FLAGS[]->NXM_NX_REG0[0..11]"),
    ("ip", "move:nw_proto[]->reg0[0..7]", "move:NXM_OF_IP_PROTO[]->NXM_NX_REG0[0..7]"),
    ("", "move:dl_type[]->reg0[0..15]", "move:NXM_OF_ETH_TYPE[]->NXM_NX_REG0[0..15]"),
    ("ip", "move:ip_frag[]->reg0[0..1]", "move:NXM_NX_IP_FRAG[]->NXM_NX_REG0[0..1]"),
    ("ip", "move:reg0[0..5]->ip_dscp[]", "move:NXM_NX_REG0[0..5]->OXM_OF_IP_DSCP[]"),
    ("arp", "move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]", "move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]"),
    ("arp", "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]", "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]"),
    ("", "output:reg0[0..15]", "output:NXM_NX_REG0[0..15]"),
    ("", "output:reg0", "output:NXM_NX_REG0[]"),
    ("", "output:reg0[1]", "output:NXM_NX_REG0[1]"),
    ("", "output:NXM_OF_IN_PORT[]", "output:NXM_OF_IN_PORT[]"),
    ("", "output:dl_type[]", "output:NXM_OF_ETH_TYPE[]"),
    ("ip", "dec_ttl", "dec_ttl"),
    ("ip", "dec_ttl:", "dec_ttl"),
    ("ip", "dec_ttl()", "dec_ttl"),
    ("ip", "DEC_TTL", "dec_ttl"),
    ("", "resubmit:3", "resubmit:3"),
    ("", "resubmit(,3)", "resubmit(,3)"),
    ("", "resubmit(1,)", "resubmit:1"),
    ("", "resubmit(1,2)", "resubmit(1,2)"),
    ("", "resubmit(,254)", "resubmit(,254)"),
    ("", "resubmit(,03)", "resubmit(,3)"),
    ("", "resubmit(IN_PORT,3)", "resubmit(,3)"),
    ("", "resubmit:LOCAL", "resubmit:LOCAL"),
    ("", "resubmit:0", "resubmit:0"),
    ("", "resubmit=3", "resubmit:3"),
    ("", "resubmit:1,2", "resubmit:1,output:2"),
    ("", "goto_table:3", "goto_table:3"),
    ("", "goto_table:254", "goto_table:254"),
    ("", "output:1,goto_table:3", "output:1,goto_table:3"),
    ("", "resubmit(,3),goto_table:5", "resubmit(,3),goto_table:5"),
    ("", "set_tunnel:5", "set_field:0x5->tun_id"),
    ("", "set_tunnel64:5", "set_field:0x5->tun_id"),
    ("", "set_tunnel:0x100000000", "set_field:0x100000000->tun_id"),
    ("", "set_tunnel:010", "set_field:0x8->tun_id"),
    ("", "set_tunnel64:0x1234567890abcdef", "set_field:0x1234567890abcdef->tun_id"),
    (
        "",
        "set_tunnel:5,set_tunnel64:0x100000000",
        "set_field:0x5->tun_id,set_field:0x100000000->tun_id",
    ),
    (
        "",
        "set_field:0x1234->tun_id,set_tunnel:7",
        "set_field:0x1234->tun_id,set_field:0x7->tun_id",
    ),
    ("", "note:01.02.03", "note:01.02.03.00.00.00"),
    ("", "note:0102030405060708", "note:01.02.03.04.05.06.07.08.00.00.00.00.00.00"),
    ("", "note:01.02.03.04.05.06", "note:01.02.03.04.05.06"),
    ("", "note:AB.cd", "note:ab.cd.00.00.00.00"),
    ("", "note:.01", "note:01.00.00.00.00.00"),
    ("", "note:01..02", "note:01.02.00.00.00.00"),
    ("", "note", "note:00.00.00.00.00.00"),
    ("", "note:", "note:00.00.00.00.00.00"),
    ("", "note:01,note:", "note:01.00.00.00.00.00,note:00.00.00.00.00.00"),
    ("", "note:01 02", "note:01.00.00.00.00.00,output:2"),
    ("", "output=1", "output:1"),
    ("", "output(1)", "output:1"),
    ("", "Output:1", "output:1"),
    ("", "NoRmAl", "NORMAL"),
    ("", "LOAD:1->reg0[]", "load:0x1->NXM_NX_REG0[]"),
    ("", "Set_Field:1->reg0", "set_field:0x1->reg0"),
    ("", "output:1 output:2", "output:1,output:2"),
    ("", "output:1,,output:2", "output:1,output:2"),
    (
        "ip",
        "output:1,mod_nw_src:1.2.3.4,dec_ttl,resubmit(,2),goto_table:5",
        "output:1,set_field:1.2.3.4->ip_src,dec_ttl,resubmit(,2),goto_table:5",
    ),
    # mod_vlan_vid pushes a tag only when there is none; OpenFlow 1.3 cannot
    # say that, so it becomes an unconditional push unless the match has a tag.
    ("", "mod_vlan_vid:5", "push_vlan:0x8100,set_field:4101->vlan_vid"),
    ("dl_vlan=3", "mod_vlan_vid:5", "set_field:4101->vlan_vid"),
    ("", "mod_vlan_pcp:5", "push_vlan:0x8100,set_field:5->vlan_pcp"),
    (
        "dl_vlan=3",
        "strip_vlan,mod_vlan_vid:5",
        "pop_vlan,push_vlan:0x8100,set_field:4101->vlan_vid",
    ),
    # The L4 protocol of mod_tp_src and mod_tp_dst comes from the match.
    ("tcp", "mod_tp_src:1,mod_tp_dst:2", "set_field:1->tcp_src,set_field:2->tcp_dst"),
    ("udp6", "mod_tp_src:1", "set_field:1->udp_src"),
    ("sctp", "mod_tp_dst:3", "set_field:3->sctp_dst"),
]


@pytest.mark.parametrize(("match", "text", "printed"), PRINTED)
def test_actions_print_as_ovs_ofctl_prints_them(match: str, text: str, printed: str) -> None:
    assert roundtrip(text, match) == printed


FULL48 = (1 << 48) - 1
FULL32 = (1 << 32) - 1
FULL64 = (1 << 64) - 1


@pytest.mark.parametrize(
    ("text", "actions"),
    [
        ("output:1", (Output(1),)),
        (
            "1,LOCAL,in_port,TABLE,normal,FLOOD,ALL",
            (
                Output(1),
                Output(OFPP_LOCAL),
                Output(OFPP_IN_PORT),
                Output(OFPP_TABLE),
                Output(OFPP_NORMAL),
                Output(OFPP_FLOOD),
                Output(OFPP_ALL),
            ),
        ),
        ("output:4294967294", (Output(OFPP_LOCAL),)),
        ("output:010", (Output(10),)),
        # Every way of naming the controller is the controller action.
        ("controller", (Controller(),)),
        ("output:CONTROLLER", (Controller(),)),
        ("output:65533", (Controller(),)),
        ("controller:100", (Controller(100),)),
        ("controller(reason=no_match,max_len=10)", (Controller(10, "no_match"),)),
        ("drop", ()),
        ("", ()),
        (" , ", ()),
        ("mod_vlan_vid:5", (SetVlanVid(5),)),
        ("set_vlan_vid:5", (SetVlanVid(5, push_if_missing=False),)),
        ("set_field:4101->vlan_vid", (SetVlanVid(5, push_if_missing=False),)),
        ("mod_vlan_pcp:3", (SetVlanPcp(3),)),
        ("set_field:3->vlan_pcp", (SetVlanPcp(3, push_if_missing=False),)),
        # The spelling is recorded, though both print as pop_vlan.
        ("strip_vlan", (StripVlan(pop=False),)),
        ("pop_vlan", (StripVlan(pop=True),)),
        ("push_vlan:0x88a8", (PushVlan(0x88A8),)),
        ("mod_dl_src:00:00:00:00:00:01", (SetField("eth_src", 1, FULL48, "mod_dl_src"),)),
        ("set_field:00:00:00:00:00:01->dl_src", (SetField("eth_src", 1, FULL48),)),
        ("mod_nw_src:1.2.3.4", (SetField("ip_src", 0x01020304, FULL32, "mod_nw_src"),)),
        # mod_nw_tos takes the ToS byte; it is a set_field of the 6 DSCP bits.
        ("mod_nw_tos:8", (SetField("ip_dscp", 2, 0x3F, "mod_nw_tos"),)),
        ("mod_nw_ecn:1", (SetField("nw_ecn", 1, 3, "mod_nw_ecn"),)),
        ("mod_nw_ttl:9", (SetField("nw_ttl", 9, 0xFF, "mod_nw_ttl"),)),
        ("set_nw_ttl:9", (SetField("nw_ttl", 9, 0xFF, "mod_nw_ttl"),)),
        ("mod_tp_dst:80", (SetField("tp_dst", 80, 0xFFFF, "mod_tp_dst"),)),
        ("set_field:80->tp_dst", (SetField("tcp_dst", 80, 0xFFFF),)),
        # Values and masks are at the width of the key's storage.
        ("set_field:5->in_port", (SetField("in_port", 5, FULL32),)),
        ("set_field:2->arp_op", (SetField("arp_op", 2, 0xFF),)),
        ("set_field:5->tunnel_id", (SetField("tun_id", 5, FULL64),)),
        # A masked set_field keeps its mask (it travels as loads before OpenFlow 1.5).
        (
            "set_field:1.2.3.4/255.0.255.0->nw_src",
            (SetField("ip_src", 0x01000300, 0xFF00FF00),),
        ),
        ("load:5->NXM_NX_REG1[0..3]", (RegLoad(5, FieldRef("reg1", 0, 4)),)),
        ("load:1->reg1[31]", (RegLoad(1, FieldRef("reg1", 31, 1)),)),
        ("load:2->arp_op", (RegLoad(2, FieldRef("arp_op", 0, 16)),)),
        (
            "load:1->ipv6_src[]",
            (RegLoad(1, FieldRef("ipv6_src", 0, 64)), RegLoad(0, FieldRef("ipv6_src", 64, 64))),
        ),
        (
            "move:NXM_OF_ETH_SRC[]->eth_dst[]",
            (RegMove(FieldRef("eth_src", 0, 48), FieldRef("eth_dst", 0, 48)),),
        ),
        ("output:reg0[0..15]", (OutputReg(FieldRef("reg0", 0, 16)),)),
        ("dec_ttl", (DecTtl(),)),
        ("dec_ttl()", (DecTtl(),)),
        ("resubmit:3", (Resubmit(3),)),
        ("resubmit(,3)", (Resubmit(None, 3),)),
        ("resubmit(IN_PORT,3)", (Resubmit(None, 3),)),
        ("resubmit(1,255)", (Resubmit(1),)),
        ("goto_table:3", (GotoTable(3),)),
        ("set_tunnel:5", (SetTunnel(5),)),
        ("set_tunnel64:5", (SetTunnel(5, wide=True),)),
        ("set_tunnel:0x100000000", (SetTunnel(1 << 32, wide=True),)),
        # Notes are padded as the switch stores them.
        ("note:01.02", (Note(b"\x01\x02\0\0\0\0"),)),
        ("note:0102030405060708", (Note(bytes(range(1, 9)) + bytes(6)),)),
    ],
)
def test_parsed_actions(text: str, actions: tuple[Action, ...]) -> None:
    assert parse_actions(text) == actions


def test_port_names_are_read_and_printed_when_given() -> None:
    names = {"p1": 1, "uplink": 7}
    actions = parse_actions(
        "output:p1,uplink,resubmit(uplink,2),set_field:p1->in_port", port_names=names
    )
    assert actions == (Output(1), Output(7), Resubmit(7, 2), SetField("in_port", 1, FULL32))
    printed = format_actions(actions, port_names={1: "p1", 7: "uplink"})
    assert printed == "output:p1,output:uplink,resubmit(uplink,2),set_field:p1->in_port"
    assert parse_actions(printed, port_names=names) == actions
    with pytest.raises(FlowParseError, match=r"^p2: output to unknown port$"):
        parse_actions("output:p2", port_names=names)


# Actions built in code, in spellings the parser does not produce, print as
# Open vSwitch would print the action they stand for.
@pytest.mark.parametrize(
    ("actions", "printed"),
    [
        ((), "drop"),
        ((Output(OFPP_CONTROLLER, 100),), "CONTROLLER:100"),
        ((Output(0xFF00),), "65280"),
        ((Controller(65535, "invalid_ttl"),), "controller(reason=invalid_ttl)"),
        ((StripVlan(pop=False),), "pop_vlan"),
        ((SetTunnel(5, wide=True),), "set_field:0x5->tun_id"),
        ((Note(b""),), "note:00.00.00.00.00.00"),
        ((Note(b"\x01" * 7),), "note:01.01.01.01.01.01.01.00.00.00.00.00.00.00"),
        ((Resubmit(OFPP_IN_PORT, 3),), "resubmit(,3)"),
        ((Resubmit(4, 255),), "resubmit:4"),
        ((SetField("nw_src", 0x01020304, 0xFFFFFF00),), "load:0x10203->NXM_OF_IP_SRC[8..31]"),
        ((SetField("ip_src", 0x01020304, FULL32, "mod_nw_src"),), "set_field:1.2.3.4->ip_src"),
        ((SetField("nw_ttl", 5, 0xFF),), "set_field:5->nw_ttl"),
        ((SetField("tp_src", 5, 0xFFFF),), "set_field:5->tcp_src"),
        ((SetField("dl_vlan_pcp", 3, 7),), "set_field:3->vlan_pcp"),
        (
            (RegLoad(1 << 100, FieldRef("ipv6_dst", 0, 128)),),
            "load:0->NXM_NX_IPV6_DST[0..63],load:0x1000000000->NXM_NX_IPV6_DST[64..127]",
        ),
    ],
)
def test_built_actions_print_as_ovs_would(actions: tuple[Action, ...], printed: str) -> None:
    assert format_actions(actions) == printed


def test_format_refuses_what_has_no_openflow_form() -> None:
    with pytest.raises(ValueError, match="no OpenFlow name"):
        format_actions([RegLoad(1, FieldRef("vlan_tci1", 0, 16))])
    with pytest.raises(TypeError, match="not an action"):
        format_actions(["output:1"])  # type: ignore[list-item]


MATCH_INCONSISTENT = "actions are invalid with specified match (OFPBAC_MATCH_INCONSISTENT)"

# -- errors -----------------------------------------------------------------------------

# (match, actions, message): Open vSwitch 3.1 refuses these, with this message.
ERRORS = [
    ("", "output:bogus", "bogus: output to unknown port"),
    ("", "bogus", "unknown action bogus"),
    ("", "drop,1", '"drop" must not be accompanied by any other action or instruction'),
    ("", "1,drop", '"drop" must not be accompanied by any other action or instruction'),
    ("", "output:bogus,drop", "bogus: output to unknown port"),
    ("", "drop,output:bogus", "bogus: output to unknown port"),
    ("", "output", ": output to unknown port"),
    ("", "output:", ": output to unknown port"),
    ("", "output:1x", "1x: output to unknown port"),
    ("", "output:0x10", "0x10: output to unknown port"),
    ("", "output:ANY", "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)"),
    ("", "output:NONE", "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)"),
    ("", "output:UNSET", "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)"),
    ("", "output:4294967040", "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)"),
    ("", "output:ANY,output:bogus", "bogus: output to unknown port"),
    ("", "output:reg0[0..40]", "reg0[0..40]: output to unknown port"),
    ("", "output:foo[]", "foo[]: output to unknown port"),
    ("", "controller:abc", 'unknown key "abc" parsing controller action'),
    ("", "controller:70000", 'invalid max_len "70000"'),
    ("", "controller:65536", 'invalid max_len "65536"'),
    ("", "CONTROLLER:0x10", 'unknown key "0x10" parsing controller action'),
    ("", "controller(reason=bogus)", 'unknown reason "bogus"'),
    ("", "controller(max_len=abc)", 'invalid max_len "abc"'),
    ("", "controller(foo=1)", 'unknown key "foo" parsing controller action'),
    ("", "mod_vlan_vid", 'invalid VLAN VID ""'),
    ("", "mod_vlan_vid:", 'invalid VLAN VID ""'),
    ("", "mod_vlan_vid:4096", "4096: not a valid VLAN VID"),
    ("", "mod_vlan_vid:abc", 'invalid VLAN VID "abc"'),
    ("", "mod_vlan_vid:-1", 'invalid VLAN VID "-1"'),
    ("", "mod_vlan_vid:65536", 'invalid VLAN VID "65536"'),
    ("", "mod_vlan_pcp:8", "8: not a valid VLAN PCP"),
    ("", "mod_vlan_pcp:abc", 'invalid VLAN PCP "abc"'),
    ("", "mod_vlan_pcp:256", 'invalid VLAN PCP "256"'),
    ("", "push_vlan", 'invalid ethertype ""'),
    ("", "push_vlan:", 'invalid ethertype ""'),
    ("", "push_vlan:0x0800", "0x0800: not a valid VLAN ethertype"),
    ("", "push_vlan:0x9100", "0x9100: not a valid VLAN ethertype"),
    ("", "push_vlan:abc", 'invalid ethertype "abc"'),
    ("", "push_vlan:0x10000", 'invalid ethertype "0x10000"'),
    ("ip", "mod_dl_src:zz", "invalid mac address zz"),
    ("ip", "mod_dl_src:00:11:22:33:44", "invalid mac address 00:11:22:33:44"),
    ("ip", "mod_dl_src:00-11-22-33-44-55", "invalid mac address 00-11-22-33-44-55"),
    ("ip", "mod_nw_tos:3", "3: not a valid TOS"),
    ("ip", "mod_nw_tos:256", 'invalid TOS "256"'),
    ("ip", "mod_nw_tos:", 'invalid TOS ""'),
    ("ip", "mod_nw_ecn:4", "4: not a valid ECN"),
    ("ip", "mod_nw_ecn:x", 'invalid ECN "x"'),
    ("ip", "mod_nw_ttl:256", 'invalid TTL "256"'),
    ("ip", "mod_nw_ttl:abc", 'invalid TTL "abc"'),
    ("tcp", "mod_tp_src:70000", 'invalid source port "70000"'),
    ("tcp", "mod_tp_dst:x", 'invalid destination port "x"'),
    ("tcp", "mod_tp_src:-1", 'invalid source port "-1"'),
    ("", "set_field", ": missing `->'"),
    ("", "set_field:", ": missing `->'"),
    ("", "set_field:1", "1: missing `->'"),
    ("", "set_field:1->", "1->: missing field name following `->'"),
    ("", "set_field:1->foo", "foo is not a valid OXM field name"),
    ("", "set_field:1->nw_proto", "nw_proto is read-only"),
    ("", "set_field:0x0800->dl_type", "dl_type is read-only"),
    ("", "set_field:no->nw_frag", "nw_frag is read-only"),
    ("", "set_field:no->ip_frag", "ip_frag is read-only"),
    ("tcp", "set_field:2->tcp_flags", "tcp_flags is read-only"),
    ("tcp", "set_field:abc->tcp_dst", "abc: bad syntax for tcp_dst value"),
    ("tcp", "set_field:abc->tp_dst", "abc: bad syntax for tcp_dst value"),
    ("tcp", "set_field:70000->tcp_dst", "70000: value too large for 2-byte field tcp_dst"),
    ("tcp", "set_field:70000->tp_dst", "70000: value too large for 2-byte field tcp_dst"),
    (
        "tcp",
        "set_field:80/0x1ff00->tcp_dst",
        "80/0x1ff00: mask too large for 2-byte field tcp_dst",
    ),
    ("ip", "set_field:3->nw_tos", "3 is not a valid value for field nw_tos"),
    ("ip", "set_field:64->ip_dscp", "64 is not a valid value for field ip_dscp"),
    ("ip", "set_field:300->ip_dscp", "300: value too large for 1-byte field ip_dscp"),
    ("ip", "set_field:4->nw_ecn", "4 is not a valid value for field nw_ecn"),
    ("ip", "set_field:4->ip_ecn", "4 is not a valid value for field ip_ecn"),
    ("ip", "set_field:5/0xf->nw_ttl", "5/0xf: invalid mask for field nw_ttl"),
    ("ip", "set_field:4/0xfc->nw_tos", "4/0xfc: invalid mask for field nw_tos"),
    ("ip", "set_field:1/1->nw_ecn", "1/1: invalid mask for field nw_ecn"),
    ("ip", "set_field:1/1->ip_ecn", "1/1: invalid mask for field nw_ecn"),
    ("ip", "set_field:1/3->ip_dscp", "1/3: invalid mask for field ip_dscp"),
    ("", "set_field:foo->in_port", "foo: invalid or unknown port for in_port"),
    ("", "set_field:0xfffe->in_port", "0xfffe: invalid or unknown port for in_port"),
    ("", "set_field:1/1->in_port", "1/1: invalid or unknown port for in_port"),
    ("arp", "set_field:300->arp_op", "300 is not a valid value for field arp_op"),
    ("arp", "set_field:1/1->arp_op", "1/1: invalid mask for field arp_op"),
    (
        "ipv6",
        "set_field:0x123456->ipv6_label",
        "0x123456 is not a valid value for field ipv6_label",
    ),
    ("dl_vlan=5", "set_field:8->vlan_pcp", "8 is not a valid value for field vlan_pcp"),
    ("dl_vlan=5", "set_field:1/1->vlan_pcp", "1/1: invalid mask for field vlan_pcp"),
    ("dl_vlan=5", "set_field:8192->vlan_vid", "8192 is not a valid value for field vlan_vid"),
    ("", "set_field:5->TCP_DST", "TCP_DST is not a valid OXM field name"),
    ("", "set_field:5->NXM_OF_TCP_DST", "NXM_OF_TCP_DST is not a valid OXM field name"),
    ("", "set_field:5->tcp_dst[]", "tcp_dst[] is not a valid OXM field name"),
    ("", "set_field:5->reg0[0..3]", "reg0[0..3] is not a valid OXM field name"),
    ("", "set_field:1->nw_tos_shifted", "nw_tos_shifted is not a valid OXM field name"),
    ("", "set_field:1->tun_ipv4_src", "tun_ipv4_src is not a valid OXM field name"),
    ("", "set_field:5->tun_src", "5: invalid IP address"),
    ("ip", "set_field:1.2.3->ip_src", "1.2.3: invalid IP address"),
    ("ip", "set_field:1.2.3.4x->ip_src", "1.2.3.4x: invalid IP address"),
    (
        "ip",
        "set_field:00:11:22:33:44:55xyz->eth_src",
        "00:11:22:33:44:55xyz: invalid Ethernet address",
    ),
    (
        "ip",
        "set_field:1.2.3.4/33->ip_src",
        "1.2.3.4/33: IPv4 network prefix bits not between 0 and 32, inclusive",
    ),
    ("", "load", ": missing `->'"),
    ("", "load:5", "5: missing `->'"),
    ("", "load:5->", "5->: missing field name following `->'"),
    ("", "load:1->reg0[", "reg0[: syntax error expecting [] or [<bit>] or [<start>..<end>]"),
    ("", "load:1->reg0[x]", "reg0[x]: syntax error expecting [] or [<bit>] or [<start>..<end>]"),
    ("", "load:1->reg0[3..2]", "reg0[3..2]: starting bit 3 is after ending bit 2"),
    (
        "",
        "load:1->reg0[32]",
        "reg0[32]: starting bit 32 is not valid because field is only 32 bits wide",
    ),
    (
        "",
        "load:1->reg0[0..32]",
        "reg0[0..32]: ending bit 32 is not valid because field is only 32 bits wide",
    ),
    ("", "load:1->reg0[0..31]x", "unexpected input following field syntax"),
    ("", "load:1->foo[]", "foo[]: unknown field `foo'"),
    ("", "load:1->REG0[]", "REG0[]: unknown field `REG0'"),
    ("", "load:16->reg0[0..3]", "16->reg0[0..3]: value 0x10 does not fit into 4 bits"),
    ("", "load:0x10->reg0[0..3]", "0x10->reg0[0..3]: value 0x10 does not fit into 4 bits"),
    ("", "load:-1->reg0[]", "-1->reg0[]: cannot parse integer value"),
    ("", "load:abc->reg0[]", "abc->reg0[]: cannot parse integer value"),
    (
        "",
        "load:0x1234567890abcdef1->reg0[]",
        "0x1234567890abcdef1->reg0[]: cannot parse integer value",
    ),
    ("", "load:300->tcp_dst[0..7]", "300->tcp_dst[0..7]: value 300 does not fit into 8 bits"),
    (
        "",
        "load:0x1ff->eth_src[0..7]",
        "0x1ff->eth_src[0..7]: value 00:00:00:00:01:ff does not fit into 8 bits",
    ),
    (
        "",
        "load:0x1ff->ip_src[0..7]",
        "0x1ff->ip_src[0..7]: value 0.0.1.255 does not fit into 8 bits",
    ),
    ("", "load:0x1ff->in_port[0..7]", "0x1ff->in_port[0..7]: value 511 does not fit into 8 bits"),
    ("", "load:0x1ff->nw_ttl[0..7]", "0x1ff->nw_ttl[0..7]: cannot parse integer value"),
    ("", "load:0x1ff->reg0[0..7]", "0x1ff->reg0[0..7]: value 0x1ff does not fit into 8 bits"),
    (
        "",
        "load:0x12345678901234567->ipv6_src[0..63]",
        "0x12345678901234567->ipv6_src[0..63]: value ::1:2345:6789:123:4567 does not fit "
        "into 64 bits",
    ),
    (
        "",
        "load:1->in_port[16]",
        "in_port[16]: starting bit 16 is not valid because field is only 16 bits wide",
    ),
    ("", "load:1->tun_ipv4_src[]", "tun_ipv4_src[]: unknown field `tun_ipv4_src'"),
    (
        "",
        "move:reg0[]->reg1[0..15]",
        "reg0[]->reg1[0..15]: source field is 32 bits wide but destination is 16 bits wide",
    ),
    (
        "",
        "move:reg0[0..15]->reg1",
        "reg0[0..15]->reg1: source field is 16 bits wide but destination is 32 bits wide",
    ),
    ("", "move:reg0", "reg0: missing `->' following source"),
    ("", "move:reg0[]", "reg0[]: missing `->' following source"),
    ("", "move:reg0[]->", ": unknown field `'"),
    ("", "move:reg0[]->reg1[]x", "unexpected input following field syntax"),
    (
        "",
        "move:reg0[]->nw_proto[]",
        "reg0[]->nw_proto[]: source field is 32 bits wide but destination is 8 bits wide",
    ),
    ("", "move:foo[]->reg0[]", "foo[]->reg0[]: unknown field `foo'"),
    (
        "",
        "move:reg0[0..15]->dl_type[]",
        "destination field eth_type is not writable; actions are invalid with specified match "
        "(OFPBAC_BAD_SET_ARGUMENT)",
    ),
    (
        "",
        "move:tcp_flags[]->reg0[0..15]",
        "tcp_flags[]->reg0[0..15]: source field is 12 bits wide but destination is 16 bits wide",
    ),
    (
        "",
        "move:ip_frag[]->reg0[0..7]",
        "ip_frag[]->reg0[0..7]: source field is 2 bits wide but destination is 8 bits wide",
    ),
    (
        "",
        "move:nw_tos_shifted[]->nw_tos_shifted[]",
        "nw_tos_shifted[]->nw_tos_shifted[]: unknown field `nw_tos_shifted'",
    ),
    ("", "resubmit", 'at least one "in_port" or "table" must be specified on resubmit'),
    ("", "resubmit:", 'at least one "in_port" or "table" must be specified on resubmit'),
    ("", "resubmit:foo", "foo: resubmit to unknown port"),
    ("", "resubmit:IN_PORT", 'at least one "in_port" or "table" must be specified on resubmit'),
    ("", "resubmit(,255)", 'at least one "in_port" or "table" must be specified on resubmit'),
    ("", "resubmit(,abc)", "abc: resubmit to unknown table"),
    ("", "resubmit(,0x3)", "0x3: resubmit to unknown table"),
    ("", "resubmit(,)", 'at least one "in_port" or "table" must be specified on resubmit'),
    ("", "resubmit()", 'at least one "in_port" or "table" must be specified on resubmit'),
    ("", "resubmit(1,2,x)", "x: unknown parameter"),
    ("", "resubmit(foo,2)", "foo: resubmit to unknown port"),
    ("", "goto_table", 'unknown table ""'),
    ("", "goto_table:", 'unknown table ""'),
    ("", "goto_table:abc", 'unknown table "abc"'),
    ("", "goto_table:0x3", 'unknown table "0x3"'),
    (
        "",
        "goto_table:1,goto_table:2",
        "duplicate goto_table instruction not allowed, for OpenFlow 1.1+ compatibility",
    ),
    (
        "",
        "goto_table:1,output:1",
        "invalid instruction ordering: apply_actions must appear before goto_table, for "
        "OpenFlow 1.1+ compatibility",
    ),
    (
        "",
        "goto_table:1,goto_table:2,output:1",
        "duplicate goto_table instruction not allowed, for OpenFlow 1.1+ compatibility",
    ),
    (
        "",
        "goto_table:1,output:1,goto_table:2",
        "invalid instruction ordering: apply_actions must appear before goto_table, for "
        "OpenFlow 1.1+ compatibility",
    ),
    ("", "goto_table:1,output:bogus", "bogus: output to unknown port"),
    ("", "goto_table:1,drop", '"drop" must not be accompanied by any other action or instruction'),
    ("", "drop,goto_table:1", '"drop" must not be accompanied by any other action or instruction'),
    ("", "set_tunnel", "missing required numeric argument"),
    ("", "set_tunnel:", "missing required numeric argument"),
    ("", "set_tunnel:abc", "invalid numeric format abc"),
    ("", "set_tunnel:5x", "invalid numeric format 5x"),
    ("", "set_tunnel64:0x1234567890abcdef1", "invalid numeric format 0x1234567890abcdef1"),
    ("", "note:1", "bad hex digit in `note' argument"),
    ("", "note:123", "bad hex digit in `note' argument"),
    ("", "note:01.02.x", "bad hex digit in `note' argument"),
    ("", "note:01:02", "bad hex digit in `note' argument"),
    ("", "note:xx", "bad hex digit in `note' argument"),
    ("", "note:0.1", "bad hex digit in `note' argument"),
    ("", "apply_actions", "apply_actions is the default instruction"),
    ("", "apply_actions(1)", "apply_actions is the default instruction"),
    (
        "tcp",
        "set_field:80->udp_src",
        f"set_field udp_src lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "tcp",
        "output:ANY,set_field:1->udp_src",
        "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)",
    ),
    (
        "",
        "set_field:80->tcp_dst",
        f"set_field tcp_dst lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "load:1->tcp_dst[]",
        f"set_field tcp_dst lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "load:1->NXM_OF_TCP_DST[]",
        f"set_field tcp_dst lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "move:NXM_OF_TCP_DST[]->reg0[0..15]",
        f"source field tcp_dst lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "move:reg0[0..15]->tcp_dst[]",
        f"destination field tcp_dst lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "output:tcp_dst[]",
        f"source field tcp_dst lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "set_field:1.2.3.4->ip_src",
        f"set_field ip_src lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "arp",
        "set_field:1.2.3.4->ip_src",
        f"set_field ip_src lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "ipv6",
        "set_field:1.2.3.4->ip_src",
        f"set_field ip_src lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "ip",
        "set_field:::1->ipv6_src",
        f"set_field ipv6_src lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "tcp",
        "set_field:1->icmp_type",
        f"set_field icmp_type lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "icmp6",
        "set_field:1->icmp_type",
        f"set_field icmp_type lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "icmp",
        "set_field:1->icmpv6_type",
        f"set_field icmpv6_type lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "icmp6",
        "set_field:::1->nd_target",
        f"set_field nd_target lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "icmp6,icmp_type=136",
        "set_field:00:00:00:00:00:01->nd_sll",
        f"set_field nd_sll lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "icmp6,icmp_type=135",
        "set_field:00:00:00:00:00:01->nd_tll",
        f"set_field nd_tll lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "tcp,nw_frag=later",
        "set_field:1->tcp_dst",
        f"set_field tcp_dst lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "ip",
        "set_field:1->arp_op",
        f"set_field arp_op lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "set_field:4101->vlan_vid",
        f"set_field vlan_vid lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "set_field:3->vlan_pcp",
        f"set_field vlan_pcp lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "dl_vlan=5",
        "strip_vlan,set_field:4101->vlan_vid",
        f"set_field vlan_vid lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "dl_vlan=5",
        "set_field:0->vlan_tci,set_field:3->vlan_pcp",
        f"set_field vlan_pcp lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "dl_vlan=5",
        "load:5->vlan_tci[0..11],set_field:3->vlan_pcp",
        f"set_field vlan_pcp lacks correct prerequisites; {MATCH_INCONSISTENT}",
    ),
    (
        "",
        "push_vlan:0x8100,push_vlan:0x8100,push_vlan:0x8100",
        "actions are invalid with specified match (OFPBAC_BAD_TAG)",
    ),
    (
        "dl_vlan=3",
        "push_vlan:0x8100,push_vlan:0x8100",
        "actions are invalid with specified match (OFPBAC_BAD_TAG)",
    ),
    (
        "",
        "move:reg0[0..15]->reg1",
        "reg0[0..15]->reg1: source field is 16 bits wide but destination is 32 bits wide",
    ),
    # Open vSwitch logs a warning about the port or table before these
    # errors, which name it anyway.
    ("", "output:-1", "-1: output to unknown port"),
    ("", "output:70000", "70000: output to unknown port"),
    ("", "output:4294967039", "4294967039: output to unknown port"),
    ("", "output:65280", "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)"),
    ("", "output:65535", "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)"),
    ("", "output:65280,bogus", "unknown action bogus"),
    ("", "set_field:70000->in_port", "70000: invalid or unknown port for in_port"),
    ("", "resubmit(,256)", "256: resubmit to unknown table"),
    ("", "resubmit(-1,2)", "-1: resubmit to unknown port"),
    ("", "goto_table:256", 'unknown table "256"'),
    ("", "goto_table:-1", 'unknown table "-1"'),
    ("", "output:65280,drop", '"drop" must not be accompanied by any other action or instruction'),
    # ... and it logs glibc's complaint about an IP address.
    ("ip", "mod_nw_src:1.2.3", "1.2.3: could not convert to IP address"),
    ("ip", "mod_nw_src:01.2.3.4", "01.2.3.4: could not convert to IP address"),
    ("ip", "mod_nw_src", ": could not convert to IP address"),
    ("ip", "mod_dl_src", "invalid mac address "),
    # Writing read-only fields, and going backwards in the tables.
    (
        "ip",
        "move:reg0[0..7]->nw_proto[]",
        "destination field nw_proto is not writable; actions are invalid with specified match "
        "(OFPBAC_BAD_SET_ARGUMENT)",
    ),
    (
        "ip",
        "move:reg0[0..1]->ip_frag[]",
        "destination field ip_frag is not writable; actions are invalid with specified match "
        "(OFPBAC_BAD_SET_ARGUMENT)",
    ),
    (
        "tcp",
        "move:reg0[0..11]->tcp_flags[]",
        "destination field tcp_flags is not writable; actions are invalid with specified match "
        "(OFPBAC_BAD_SET_ARGUMENT)",
    ),
]

# (match, actions, message): ovs-ofctl parse-flow lets these through, but the
# switch refuses them when the flow is added, with this error (and reason).
SWITCH_ERRORS = [
    (
        "ip",
        "load:1->nw_proto[]",
        "destination field nw_proto is not writable; actions are invalid with specified match "
        "(OFPBAC_BAD_SET_ARGUMENT)",
    ),
    ("", "goto_table:0", "actions are invalid with specified match (OFPBIC_BAD_TABLE_ID)"),
]


@pytest.mark.parametrize(("match", "text", "message"), ERRORS + SWITCH_ERRORS)
def test_errors_are_ovs_ofctls(match: str, text: str, message: str) -> None:
    with pytest.raises(FlowParseError) as excinfo:
        roundtrip(text, match)
    assert str(excinfo.value) == message


HEX_DUMP = "<hex dump>"
NO_USABLE_PROTOCOL = "no usable protocol"

# (match, actions, our message, what Open vSwitch 3.1 does over OpenFlow 1.3):
# it accepts these, or fails only with a hex dump of what it could not
# decode, but each would do something other than what was written.
REFUSED = [
    ("", "load:5x->reg0[]", "5x->reg0[]: cannot parse integer value", "load:0x5->NXM_NX_REG0[]"),
    ("", "load:0x->reg0[]", "0x->reg0[]: cannot parse integer value", "load:0->NXM_NX_REG0[]"),
    (
        "",
        "load:-1->metadata[]",
        "-1->metadata[]: cannot parse integer value",
        "load:0xffffffffffffffff->OXM_OF_METADATA[]",
    ),
    ("", "set_tunnel:-1", "invalid numeric format -1", "set_field:0xffffffffffffffff->tun_id"),
    (
        "",
        "mod_dl_src:00:11:22:33:44:55xyz",
        "invalid mac address 00:11:22:33:44:55xyz",
        "set_field:00:11:22:33:44:55->eth_src",
    ),
    (
        "dl_vlan=5",
        "set_field:5->vlan_vid",
        '5 is not a valid value for field vlan_vid (OpenFlow needs the 0x1000 "present" bit: '
        "4101 sets VLAN 5)",
        HEX_DUMP,
    ),
    (
        "dl_vlan=5",
        "set_field:5->dl_vlan",
        "dl_vlan cannot be set with set_field (Open vSwitch 3.1 turns it into a write to "
        "in_port); use mod_vlan_vid, mod_vlan_pcp, or set_field to vlan_vid or vlan_pcp",
        "set_field:5->in_port",
    ),
    (
        "dl_vlan=5",
        "set_field:3->dl_vlan_pcp",
        "dl_vlan_pcp cannot be set with set_field (Open vSwitch 3.1 turns it into a write to "
        "in_port); use mod_vlan_vid, mod_vlan_pcp, or set_field to vlan_vid or vlan_pcp",
        HEX_DUMP,
    ),
    (
        "",
        "set_field:0/0->reg0",
        "0/0: the mask is zero, so set_field to reg0 would do nothing",
        "drop",
    ),
    (
        "ip",
        "set_field:1.2.3.4/0.0.0.0->ip_src",
        "1.2.3.4/0.0.0.0: the mask is zero, so set_field to ip_src would do nothing",
        "drop",
    ),
    (
        "ip",
        "load:5->nw_tos[]",
        "load:0x5->NXM_OF_IP_TOS[]: nw_tos holds the DSCP bits of the ToS byte, so its bits 0 "
        "and 1 cannot be written (use nw_ecn)",
        "load:0x5->NXM_OF_IP_TOS[]",
    ),
    (
        "ip",
        "move:reg0[0..7]->nw_tos[]",
        "move:NXM_NX_REG0[0..7]->NXM_OF_IP_TOS[]: nw_tos holds the DSCP bits of the ToS byte, "
        "so its bits 0 and 1 cannot be written (use nw_ecn)",
        "move:NXM_NX_REG0[0..7]->NXM_OF_IP_TOS[]",
    ),
    (
        "arp",
        "load:300->arp_op[]",
        "load:0x12c->NXM_OF_ARP_OP[]: Open vSwitch keeps only 8 bits of arp_op, so bits 8..15 "
        "cannot be written",
        "load:0x12c->NXM_OF_ARP_OP[]",
    ),
    (
        "arp",
        "move:reg0[0..15]->arp_op[]",
        "move:NXM_NX_REG0[0..15]->NXM_OF_ARP_OP[]: Open vSwitch keeps only 8 bits of arp_op, so "
        "bits 8..15 cannot be written",
        "move:NXM_NX_REG0[0..15]->NXM_OF_ARP_OP[]",
    ),
    (
        "",
        "goto_table:255",
        "actions are invalid with specified match (OFPBIC_BAD_TABLE_ID)",
        "goto_table:255",
    ),
    (
        "ipv6",
        "output:ipv6_src[]",
        "output:NXM_NX_IPV6_SRC[]: an output port is read from at most 64 bits (Open vSwitch "
        "3.1 encodes a wider field as a different one)",
        "output:NXM_NX_IPV6_SRC[1..64]",
    ),
    # Open vSwitch takes these over OpenFlow 1.0 only, where they do nothing
    # to packets without the header; their OpenFlow 1.3 form would be refused.
    (
        "",
        "mod_nw_src:1.2.3.4",
        "mod_nw_src lacks correct prerequisites (it needs ip)",
        NO_USABLE_PROTOCOL,
    ),
    (
        "arp",
        "mod_nw_tos:4",
        "mod_nw_tos lacks correct prerequisites (it needs ip or ipv6)",
        NO_USABLE_PROTOCOL,
    ),
    (
        "ip",
        "mod_tp_dst:80",
        "mod_tp_dst lacks correct prerequisites (it needs tcp, udp or sctp, not a later fragment)",
        NO_USABLE_PROTOCOL,
    ),
    (
        "",
        "set_vlan_vid:5",
        "set_field vlan_vid lacks correct prerequisites; actions are invalid with specified "
        "match (OFPBAC_MATCH_INCONSISTENT)",
        NO_USABLE_PROTOCOL,
    ),
]


@pytest.mark.parametrize(("match", "text", "message", "ovs_does"), REFUSED)
def test_we_refuse_what_ovs_would_get_wrong(
    match: str, text: str, message: str, ovs_does: str
) -> None:
    with pytest.raises(FlowParseError) as excinfo:
        roundtrip(text, match)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("group:1", "group: action not supported by pyvswitch"),
        ("learn(table=1)", "learn: action not supported by pyvswitch"),
        ("ct(commit)", "ct: action not supported by pyvswitch"),
        ("enqueue:1:2", "enqueue: action not supported by pyvswitch"),
        ("write_metadata:1", "write_metadata: action not supported by pyvswitch"),
        ("exit", "exit: action not supported by pyvswitch"),
        ("dec_ttl(1,2)", "dec_ttl(1,2): controller ids are not supported by pyvswitch"),
        ("controller(id=3)", "controller(id=...) is not supported by pyvswitch"),
        ("controller(userdata=01.02)", "controller(userdata) is not supported by pyvswitch"),
        ("controller(pause)", "controller(pause) is not supported by pyvswitch"),
        ("resubmit(1,2,ct)", "resubmit(...,ct) is not supported by pyvswitch"),
        ("set_field:1->pkt_mark", "pkt_mark: field not supported by pyvswitch"),
        ("load:1->xreg0[]", "xreg0[]: field `xreg0' is not supported by pyvswitch"),
        (
            "move:NXM_NX_PKT_MARK[]->reg0[]",
            "NXM_NX_PKT_MARK[]->reg0[]: field `NXM_NX_PKT_MARK' is not supported by pyvswitch",
        ),
        (
            "set_field:4101/0xfff->vlan_vid",
            "4101/0xfff: a masked set_field to vlan_vid is not supported",
        ),
    ],
)
def test_unsupported_actions_say_so(text: str, message: str) -> None:
    with pytest.raises(FlowParseError) as excinfo:
        parse_actions(text)
    assert str(excinfo.value) == message


# -- check_actions ----------------------------------------------------------------------


def check(text: str, match: str, table_id: int = 0) -> None:
    check_actions(parse_actions(text), parse_match(match)[0], table_id=table_id)


def test_goto_table_must_go_forward_from_the_flows_table() -> None:
    check("goto_table:4", "", table_id=3)
    for table in (0, 3):
        with pytest.raises(FlowParseError, match=r"OFPBIC_BAD_TABLE_ID"):
            check(f"goto_table:{table}", "", table_id=3)


def test_the_vlan_tag_is_followed_through_the_actions() -> None:
    check("push_vlan:0x8100,set_field:4101->vlan_vid", "")
    check("mod_vlan_vid:5,set_field:3->vlan_pcp", "")
    check("set_field:0x1005->vlan_tci,set_field:4101->vlan_vid", "")
    check("push_vlan:0x8100,push_vlan:0x88a8", "")
    check("pop_vlan,pop_vlan", "")
    message = f"set_field vlan_vid lacks correct prerequisites; {MATCH_INCONSISTENT}"
    for text, match in [
        ("set_field:4101->vlan_vid", ""),
        ("pop_vlan,set_field:4101->vlan_vid", "dl_vlan=5"),
        ("set_field:0->vlan_tci,set_field:4101->vlan_vid", "dl_vlan=5"),
        # Open vSwitch takes a load into the TCI as the whole TCI.
        ("load:5->vlan_tci[0..11],set_field:4101->vlan_vid", "dl_vlan=5"),
    ]:
        with pytest.raises(FlowParseError) as excinfo:
            check(text, match)
        assert str(excinfo.value) == message
    with pytest.raises(FlowParseError, match=r"OFPBAC_BAD_TAG"):
        check("push_vlan:0x8100,push_vlan:0x8100", "dl_vlan=5")


def test_prerequisites_use_the_l4_protocol_of_the_field() -> None:
    check("set_field:1->udp_src,set_field:1->udp_dst", "udp6")
    check("mod_tp_src:1", "sctp")
    check("move:NXM_OF_UDP_SRC[]->NXM_OF_UDP_DST[]", "udp")
    for text, match in [("set_field:1->udp_src", "tcp"), ("set_field:1->sctp_dst", "udp")]:
        with pytest.raises(FlowParseError, match="lacks correct prerequisites"):
            check(text, match)


@pytest.mark.parametrize(
    ("actions", "match", "message"),
    [
        (
            [SetField("tcp_dst", 80, 0xFFFF)],
            "udp",
            f"set_field tcp_dst lacks correct prerequisites; {MATCH_INCONSISTENT}",
        ),
        (
            [RegLoad(1, FieldRef("reg0", 30, 4))],
            "",
            "bit offset 30 and width 4 exceeds 32-bit width of destination field reg0; "
            "actions are invalid with specified match (OFPBAC_BAD_SET_LEN)",
        ),
        (
            [RegMove(FieldRef("reg0", 32, 1), FieldRef("reg1", 0, 1))],
            "",
            "bit offset 32 exceeds 32-bit width of source field reg0; "
            "actions are invalid with specified match (OFPBAC_BAD_SET_LEN)",
        ),
        (
            [OutputReg(FieldRef("reg0", 0, 0))],
            "",
            "zero bit source field reg0; "
            "actions are invalid with specified match (OFPBAC_BAD_SET_LEN)",
        ),
        (
            [RegLoad(1, FieldRef("dl_vlan", 0, 12))],
            "",
            "unknown destination field dl_vlan; "
            "actions are invalid with specified match (OFPBAC_BAD_SET_TYPE)",
        ),
        (
            [RegLoad(16, FieldRef("reg0", 0, 4))],
            "",
            "load:0x10->NXM_NX_REG0[0..3]: value 0x10 does not fit into 4 bits",
        ),
        (
            [SetField("nw_proto", 6, 0xFF)],
            "ip",
            "destination field nw_proto is not writable; "
            "actions are invalid with specified match (OFPBAC_BAD_SET_ARGUMENT)",
        ),
        ([SetField("ip_dscp", 64, 0xFF)], "ip", "64 is not a valid value for field ip_dscp"),
        (
            [SetField("nw_tos", 5, 0xFF)],
            "ip",
            "set_field:5->nw_tos: nw_tos holds the DSCP bits of the ToS byte, so its bits 0 and 1 "
            "cannot be written (use nw_ecn)",
        ),
        (
            [SetVlanPcp(3, push_if_missing=False)],
            "",
            f"set_field vlan_pcp lacks correct prerequisites; {MATCH_INCONSISTENT}",
        ),
        ([Output(0xFFFF)], "", "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)"),
        (
            [GotoTable(2), Output(1)],
            "",
            "invalid instruction ordering: apply_actions must appear before goto_table, for "
            "OpenFlow 1.1+ compatibility",
        ),
    ],
)
def test_check_actions_checks_actions_built_in_code(
    actions: list[Action], match: str, message: str
) -> None:
    with pytest.raises(FlowParseError) as excinfo:
        check_actions(actions, parse_match(match)[0])
    assert str(excinfo.value) == message


# -- round trips ----------------------------------------------------------------------

# Matches to draw actions for. Most carry a VLAN tag, so that the VLAN actions
# Open vSwitch accepts over OpenFlow 1.3 only with a tag can be drawn.
MATCHES = [
    "ip,dl_vlan=5",
    "tcp,dl_vlan=5",
    "udp6,dl_vlan=5",
    "sctp,dl_vlan=5",
    "icmp,dl_vlan=5",
    "icmp6,icmp_type=135,dl_vlan=5",
    "icmp6,icmp_type=136,dl_vlan=5",
    "arp,dl_vlan=5",
    "dl_vlan=5",
    "tcp",
    "arp",
    "",
]

_mac = st.integers(0, FULL48)
_ip4 = st.integers(0, FULL32)
_ip6 = st.integers(0, (1 << 128) - 1)
_byte = st.integers(0, 255)
_u16 = st.integers(0, 0xFFFF)
_ports = st.integers(1, 0xFEFF)
_reserved = st.sampled_from(
    [OFPP_IN_PORT, OFPP_TABLE, OFPP_NORMAL, OFPP_FLOOD, OFPP_ALL, OFPP_LOCAL]
)

#: Writable fields (Open vSwitch's names) and the values set_field takes for them.
SET_VALUES: dict[str, st.SearchStrategy[int]] = {
    "in_port": st.one_of(_ports, _reserved),
    "eth_src": _mac,
    "eth_dst": _mac,
    "ip_src": _ip4,
    "ip_dst": _ip4,
    "ipv6_src": _ip6,
    "ipv6_dst": _ip6,
    "ipv6_label": st.integers(0, 0xFFFFF),
    "nw_tos": st.integers(0, 63).map(lambda v: v << 2),
    "ip_dscp": st.integers(0, 63),
    "nw_ecn": st.integers(0, 3),
    "nw_ttl": _byte,
    "arp_op": _byte,
    "arp_spa": _ip4,
    "arp_tpa": _ip4,
    "arp_sha": _mac,
    "arp_tha": _mac,
    **dict.fromkeys(["tcp_src", "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst"], _u16),
    **dict.fromkeys(["icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code"], _byte),
    "nd_target": _ip6,
    "nd_sll": _mac,
    "nd_tll": _mac,
    "tun_id": st.integers(0, FULL64),
    "tun_src": _ip4,
    "tun_dst": _ip4,
    "metadata": st.integers(0, FULL64),
    **{f"reg{i}": st.integers(0, FULL32) for i in range(16)},
}
#: Open vSwitch's width of each field, where it differs from the key's.
OVS_BITS = {
    "in_port": 16,
    "arp_op": 16,
    "eth_type": 16,
    "nw_proto": 8,
    "ip_frag": 2,
    "tcp_flags": 12,
}
READ_ONLY = ["eth_type", "nw_proto", "ip_frag", "tcp_flags"]


def ovs_bits(name: str) -> int:
    return OVS_BITS.get(name, META_FIELDS[name].bits)


def valid(actions: list[Action], match: Match) -> bool:
    try:
        check_actions(actions, match)
    except FlowParseError:
        return False
    return True


@functools.cache
def fields_for(match: Match) -> tuple[list[str], list[str]]:
    """The fields actions may write and read under ``match`` (their prerequisites met)."""
    writable = [n for n in SET_VALUES if valid([SetField(n, 0, 1)], match)]
    readable = writable + [n for n in READ_ONLY if valid([OutputReg(FieldRef(n, 0, 1))], match)]
    return writable, readable


def _ref(draw: st.DrawFn, name: str, max_bits: int = 64) -> FieldRef:
    width = ovs_bits(name)
    n_bits = draw(st.integers(1, min(width, max_bits)))
    return FieldRef(name, draw(st.integers(0, width - n_bits)), n_bits)


def _one_action(draw: st.DrawFn, match: Match, converted: bool) -> Action:
    writable, readable = fields_for(match)
    kinds = ["output", "reserved", "controller", "set_field", "load", "move", "output_reg"]
    kinds += ["resubmit", "note"]
    # Open vSwitch accepts these over OpenFlow 1.3 only for IP.
    if valid([SetField("nw_ttl", 0, 0xFF)], match):
        kinds += ["dec_ttl", "mod_nw_ttl"]
    if converted and valid([SetField("tp_src", 0, 0xFFFF, "mod_tp_src")], match):
        kinds.append("mod_tp")
    kind = draw(st.sampled_from(kinds))
    if kind == "output":
        return Output(draw(_ports))
    if kind == "reserved":
        return Output(draw(_reserved))
    if kind == "controller":
        reason = draw(st.sampled_from(["action", "no_match", "invalid_ttl", "group"]))
        return Controller(draw(_u16), reason)
    if kind == "set_field":
        name = draw(st.sampled_from(writable))
        return SetField(name, draw(SET_VALUES[name]), (1 << META_FIELDS[name].bits) - 1)
    if kind == "load":
        dst = _ref(draw, draw(st.sampled_from(writable)))
        return RegLoad(draw(st.integers(0, (1 << dst.n_bits) - 1)), dst)
    if kind == "move":
        src_name = draw(st.sampled_from(readable))
        dst_name = draw(st.sampled_from(writable))
        src = _ref(draw, src_name, min(ovs_bits(src_name), ovs_bits(dst_name)))
        dst_ofs = draw(st.integers(0, ovs_bits(dst_name) - src.n_bits))
        return RegMove(src, FieldRef(dst_name, dst_ofs, src.n_bits))
    if kind == "output_reg":
        return OutputReg(_ref(draw, draw(st.sampled_from(readable)), 32))
    if kind == "resubmit":
        in_port = draw(st.one_of(st.none(), _ports, st.just(OFPP_LOCAL)))
        table = draw(st.one_of(st.none(), st.integers(0, 254)))
        if in_port is None and table is None:
            table = 0
        return Resubmit(in_port, table)
    if kind == "note":
        length = draw(st.sampled_from([6, 14, 22]))
        return Note(draw(st.binary(min_size=length, max_size=length)))
    if kind == "dec_ttl":
        return DecTtl()
    if kind == "mod_nw_ttl":
        return SetField("nw_ttl", draw(_byte), 0xFF, "mod_nw_ttl")
    sugar = draw(st.sampled_from(["mod_tp_src", "mod_tp_dst"]))
    return SetField(sugar.removeprefix("mod_"), draw(_u16), 0xFFFF, sugar)


@st.composite
def action_cases(draw: st.DrawFn, converted: bool = True) -> tuple[str, tuple[Action, ...]]:
    """A match and an action list valid for it.

    Open vSwitch accepts every list over OpenFlow 1.3. Without ``converted``
    the list is in the spelling OpenFlow 1.3 carries back unchanged, which
    format_actions prints; with it, it may also hold actions that OpenFlow
    1.3 carries in another form (mod_vlan_vid, mod_tp_src...).
    """
    match_text = draw(st.sampled_from(MATCHES))
    match = parse_match(match_text)[0]
    actions: list[Action] = []
    for _ in range(draw(st.integers(0, 6))):
        action = _one_action(draw, match, converted)
        if valid([*actions, action], match):
            actions.append(action)
    # One VLAN operation at most, so that the tags are where the match says.
    tagged = valid([SetVlanVid(1, push_if_missing=False)], match)
    vid, pcp = draw(st.integers(0, 4095)), draw(st.integers(0, 7))
    ops: list[list[Action]] = [[], [PushVlan(draw(st.sampled_from([0x8100, 0x88A8])))]]
    if tagged:
        ops += [
            [StripVlan(pop=True)],
            [SetVlanVid(vid, push_if_missing=False)],
            [SetVlanPcp(pcp, push_if_missing=False)],
        ]
    else:
        ops.append([PushVlan(0x8100), SetVlanVid(vid, push_if_missing=False)])
    if converted:
        ops += [[SetVlanVid(vid)], [SetVlanPcp(pcp)]]
    at = draw(st.integers(0, len(actions)))
    actions[at:at] = draw(st.sampled_from(ops))
    if draw(st.booleans()):
        actions.append(GotoTable(draw(st.integers(1, 254))))
    assert valid(actions, match), actions
    return match_text, tuple(actions)


@given(action_cases())
def test_parse_of_format_gives_the_actions_back(case: tuple[str, tuple[Action, ...]]) -> None:
    match_text, actions = case
    match = parse_match(match_text)[0]
    printed = format_actions(actions, match=match)
    assert parse_actions(printed) == carry(actions, OF13, match), printed
    check_actions(parse_actions(printed), match)


def _respell(data: st.DataObject, action: Action) -> Action:
    """Another spelling of ``action`` that prints the same."""
    draw = data.draw
    if not draw(st.booleans()):
        return action
    if isinstance(action, StripVlan):
        return StripVlan(pop=False)
    if isinstance(action, Controller) and action.reason == "action":
        return Output(OFPP_CONTROLLER, action.max_len)
    if isinstance(action, Resubmit) and action.in_port is None:
        return Resubmit(OFPP_IN_PORT, action.table)
    if isinstance(action, Resubmit) and action.table is None:
        return Resubmit(action.in_port, 255)
    if isinstance(action, Note):
        # Trailing zeros are padding as long as the length pads back the same.
        keep = max(len(action.data.rstrip(b"\0")), len(action.data) - 7)
        return Note(action.data[:keep])
    if isinstance(action, SetField) and action.field == "tun_id":
        return SetTunnel(action.value, wide=draw(st.booleans()))
    sugars = {
        "eth_src": "mod_dl_src",
        "eth_dst": "mod_dl_dst",
        "ip_src": "mod_nw_src",
        "ip_dst": "mod_nw_dst",
        "ip_dscp": "mod_nw_tos",
        "nw_ecn": "mod_nw_ecn",
    }
    if isinstance(action, SetField) and action.field in sugars:
        return SetField(action.field, action.value, action.mask, sugars[action.field])
    return action


@given(st.data())
def test_other_spellings_print_the_same_and_read_back_canonical(data: st.DataObject) -> None:
    match_text, actions = data.draw(action_cases())
    match = parse_match(match_text)[0]
    respelled = [_respell(data, a) for a in actions]
    printed = format_actions(actions, match=match)
    assert format_actions(respelled, match=match) == printed
    assert parse_actions(printed) == carry(actions, OF13, match)


_ACTION_WORDS = st.sampled_from(
    [
        "output",
        "controller",
        "set_field",
        "load",
        "move",
        "mod_vlan_vid",
        "strip_vlan",
        "push_vlan",
        "mod_dl_src",
        "mod_nw_src",
        "mod_nw_tos",
        "mod_tp_dst",
        "dec_ttl",
        "resubmit",
        "goto_table",
        "set_tunnel",
        "note",
        "drop",
        "NORMAL",
        "reg0",
        "tcp_dst",
        "NXM_NX_REG0",
        "ip_src",
        "vlan_vid",
        "in_port",
        "LOCAL",
        "arp_op",
        "nw_tos",
    ]
)
_PIECES = st.one_of(
    _ACTION_WORDS,
    st.sampled_from([":", "=", "(", ")", ",", " ", "->", "[", "]", "..", "/", ".", "0x"]),
    st.integers(0, 70000).map(str),
    st.text("0123456789abcdefx:.-", max_size=6),
)


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_any_text_parses_or_is_refused_and_printing_is_stable(text: str) -> None:
    try:
        actions = parse_actions(text)
    except FlowParseError:
        return
    printed = format_actions(actions)
    again = parse_actions(printed)
    assert format_actions(again) == printed
    assert parse_actions(format_actions(again)) == again


@given(action_cases(), st.sampled_from(MATCHES))
def test_checking_against_any_match_raises_only_flow_parse_error(
    case: tuple[str, tuple[Action, ...]], match: str
) -> None:
    with contextlib.suppress(FlowParseError):
        check_actions(case[1], parse_match(match)[0])


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("output(port=7,max_len=100)", "output(port=7,max_len=100)"),
        ("output(max_len=0x20,port=7)", "output(port=7,max_len=32)"),
        ("output(port=7,max_len=-1)", "output(port=7,max_len=4294967295)"),
        ("output(port=in_port,max_len=14)", "output(port=IN_PORT,max_len=14)"),
        ("output(port=4294967294,max_len=100)", "output(port=LOCAL,max_len=100)"),
        ("output(port=7 max_len:100)", "output(port=7,max_len=100)"),
        ("output(port=7,port=8,max_len=100)", "output(port=8,max_len=100)"),
    ],
)
def test_truncated_output_reads_and_prints_as_ovs_ofctl_does(text: str, printed: str) -> None:
    """Pairs from ovs-ofctl 3.1's parse-flow (C's strtoul for max_len, the last key wins)."""
    assert format_actions_as_written(parse_actions(text)) == printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("output(port=7,max_len=13)", "max_len 13 is less than the minimum value 14"),
        # C's strtoul into 32 bits: 2**32 is 0.
        ("output(port=7,max_len=4294967296)", "max_len 0 is less than the minimum value 14"),
        ("output(port=7,max_len=)", "missing required numeric argument"),
        ("output(port=7,max_len=9x)", "invalid numeric format 9x"),
        ("output(port=nosuch,max_len=100)", "output to unknown truncate port: nosuch"),
        ("output(port=0xfff8,max_len=100)", "output to unknown truncate port: 0xfff8"),
        ("output(port=normal,max_len=100)", "output to unsupported truncate port: normal"),
        ("output(port=none,max_len=100)", "output to unsupported truncate port: none"),
        ("output(port=7,max_len=100,foo=1)", "invalid key 'foo' in output_trunc argument"),
    ],
)
def test_bad_truncated_outputs_get_ovs_ofctls_messages(text: str, message: str) -> None:
    with pytest.raises(FlowParseError) as excinfo:
        parse_actions(text)
    assert str(excinfo.value) == message
