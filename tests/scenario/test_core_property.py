"""Property: what the datapath does from its caches equals a fresh translation.

Random rule tables, random packets from a small pool (so caches get hits),
and random rule changes between batches (so revalidation must keep up).
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.dpif.execute import execute_batch
from pyvswitch.flow.extract import extract_key
from pyvswitch.flow.ofp_text import parse_match
from pyvswitch.ofproto import actions as ofp_actions
from pyvswitch.ofproto.ofproto import Ofproto
from tests.scenario.core_helpers import MAC_A, MAC_B, MAC_C, ping

MATCHES = [
    "",
    "in_port=1",
    "in_port=2",
    "dl_vlan=5",
    "vlan_tci=0x0000",
    "icmp",
    "ip,nw_src=192.0.2.0/25",
    "ip,nw_dst=192.0.2.2",
    "dl_src=50:54:00:00:00:0a",
    "dl_dst=50:54:00:00:00:0b/ff:ff:ff:00:00:00",
]
ACTIONS = [
    (ofp_actions.Output(1),),
    (ofp_actions.Output(2),),
    (ofp_actions.Output(3),),
    (ofp_actions.SetVlanVid(5), ofp_actions.Output(2)),
    (ofp_actions.StripVlan(), ofp_actions.Output(3)),
    (ofp_actions.Resubmit(None, 1),),
    (ofp_actions.SetField("dl_src", 0x020000000001, (1 << 48) - 1), ofp_actions.Output(2)),
    (ofp_actions.Output(ofp_actions.OFPP_FLOOD),),
    (ofp_actions.Output(ofp_actions.OFPP_NORMAL),),
    (),
]
PACKETS = [
    ping(MAC_A, MAC_B),
    ping(MAC_B, MAC_A, request=False),
    ping(MAC_A, MAC_C, vlan=5),
    ping(MAC_C, "ff:ff:ff:ff:ff:ff", ip_src="192.0.2.200"),
    ping(MAC_A, MAC_B, vlan=7),
]

rules = st.tuples(
    st.sampled_from(range(2)),
    st.sampled_from(MATCHES),
    st.integers(0, 5),
    st.sampled_from(range(len(ACTIONS))),
)


def build(rule_list: list[tuple[int, str, int, int]]) -> Ofproto:
    ofp = Ofproto(emc_insert_inv_prob=2, rng=random.Random(3))
    ofp.add_bridge("br0", "secure")
    for i in (1, 2, 3):
        ofp.add_port("br0", f"p{i}", "dummy", i)
    for table, match, prio, action in rule_list:
        ofp.add_flow("br0", parse_match(match)[0], ACTIONS[action], priority=prio, table_id=table)
    return ofp


@settings(max_examples=150, deadline=None)
@given(
    st.lists(rules, max_size=8),
    st.lists(
        st.tuples(st.sampled_from(range(len(PACKETS))), st.sampled_from([1, 2, 3])),
        min_size=1,
        max_size=30,
    ),
    st.lists(rules, max_size=3),
)
def test_cache_equals_fresh_translation(
    rule_list: list[tuple[int, str, int, int]],
    traffic: list[tuple[int, int]],
    changes: list[tuple[int, str, int, int]],
) -> None:
    ofp = build(rule_list)
    reference = build(rule_list)
    now = 0.0
    for i, (pkt, port) in enumerate(traffic):
        if i == len(traffic) // 2:
            for table, match, prio, action in changes:
                for target in (ofp, reference):
                    target.add_flow(
                        "br0",
                        parse_match(match)[0],
                        ACTIONS[action],
                        priority=prio,
                        table_id=table,
                    )
        now += 0.01
        frame = PACKETS[pkt]
        got = ofp.receive(port, [frame], now)
        # The reference translates afresh every time (its caches are flushed).
        reference.datapath.flush()
        fresh = reference._translate(extract_key(frame, port), now, may_learn=True)
        want = execute_batch([frame], fresh.actions)
        assert got == want, (frame.hex(), port)
