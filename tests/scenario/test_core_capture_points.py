"""Capture points on patch ports, in the core: frames handed over from the cache.

Two bridges joined by the patch pair patch0/patch1 (NORMAL on both). A
capture on a patch end makes the one megaflow that crosses it carry a
``userspace(pvs_capture)`` action; the datapath hands the crossing frame,
as it is at the crossing, to its owner on every execution, cache hits
included. Frames are built and checked with scapy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Dot1Q, Ether

from pyvswitch.dpif.actions import OdpUserspace
from pyvswitch.dpif.actions_text import parse_odp_actions
from pyvswitch.dpif.datapath import format_megaflow
from pyvswitch.flow.extract import extract_key
from tests.scenario.core_helpers import (
    MAC_A,
    MAC_B,
    add_flow,
    ping,
    switch,
    two_bridges_with_patch,
)

if TYPE_CHECKING:
    from pyvswitch.ofproto.ofproto import Ofproto

Handed = list[tuple[str, str, bytes]]


def listen(ofp: Ofproto) -> Handed:
    """What the datapath hands over, as (port, direction, frame)."""
    handed: Handed = []

    def deliver(upcalls: list[tuple[OdpUserspace, bytes]]) -> None:
        for action, frame in upcalls:
            found = ofp.capture_points.lookup(action)
            assert found is not None, action
            handed.append((*found, frame))

    ofp.datapath.on_userspace = deliver
    return handed


def _capture_actions(ofp: Ofproto) -> list[OdpUserspace]:
    return [a for f in ofp.datapath.flows() for a in f.actions if isinstance(a, OdpUserspace)]


def test_without_a_capture_nothing_is_handed_over_and_no_action_is_added() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    handed = listen(ofp)
    for seq in range(3):
        ofp.receive(ports["p1"], [ping(MAC_A, MAC_B, seq)], 1.0)
    assert handed == []
    assert _capture_actions(ofp) == []
    assert len(ofp.datapath.flows()) == 1


def test_a_capture_on_a_patch_end_gets_every_crossing_frame_from_the_cache() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    handed = listen(ofp)
    ofp.watch_point("patch0")
    frames = [ping(MAC_A, MAC_B, seq) for seq in range(5)]
    for frame in frames:
        out = ofp.receive(ports["p1"], [frame], 1.0)
        # The capture changes nothing about forwarding.
        assert out[ports["p2"]] == [frame]
    stats = ofp.datapath.stats
    assert (stats.missed, stats.hit) == (1, 4)
    assert len(ofp.datapath.flows()) == 1
    # Leaving br0 by patch0 is outbound there, every frame, hits included.
    assert handed == [("patch0", "tx", frame) for frame in frames]


def test_both_ends_see_the_crossing_each_in_its_direction() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    handed = listen(ofp)
    ofp.watch_point("patch0")
    ofp.watch_point("patch1")
    request = ping(MAC_A, MAC_B)
    reply = ping(MAC_B, MAC_A, request=False)
    ofp.receive(ports["p1"], [request], 1.0)
    ofp.receive(ports["p2"], [reply], 1.0)
    assert handed == [
        ("patch0", "tx", request),
        ("patch1", "rx", request),
        ("patch1", "tx", reply),
        ("patch0", "rx", reply),
    ]


def test_the_frame_is_captured_as_it_crosses_with_the_tag_pushed_before() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    add_flow(ofp, "br0", "priority=10,in_port=1,actions=mod_vlan_vid:10,output:10")
    add_flow(ofp, "br1", "priority=10,in_port=20,actions=strip_vlan,output:2")
    handed = listen(ofp)
    ofp.watch_point("patch1")
    frame = ping(MAC_A, MAC_B)
    out = ofp.receive(ports["p1"], [frame], 1.0)
    # What leaves p2 is untagged again; what crossed the patch carried VLAN 10.
    assert Dot1Q not in Ether(out[ports["p2"]][0])
    [(port, direction, crossed)] = handed
    assert (port, direction) == ("patch1", "rx")
    seen = Ether(crossed)
    assert seen[Dot1Q].vlan == 10
    assert seen[IP].dst == "192.0.2.2"
    assert seen[ICMP].type == 8


def test_detaching_takes_the_action_away_and_keeps_the_one_megaflow() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    handed = listen(ofp)
    ofp.watch_point("patch0")
    ofp.watch_point("patch0")  # a second capture on the same port
    ofp.receive(ports["p1"], [ping(MAC_A, MAC_B, 1)], 1.0)
    ofp.unwatch_point("patch0")
    ofp.receive(ports["p1"], [ping(MAC_A, MAC_B, 2)], 1.0)
    assert len(handed) == 2, "one capture left: still handed over"
    ofp.unwatch_point("patch0")
    ofp.receive(ports["p1"], [ping(MAC_A, MAC_B, 3)], 1.0)
    assert len(handed) == 2
    assert _capture_actions(ofp) == []
    flows = ofp.datapath.flows()
    assert len(flows) == 1
    # Three packets, the first of which was the upcall: as in Open vSwitch,
    # the flow counts what hit it.
    assert flows[0].packets == 2
    assert ofp.datapath.stats.missed == 1


def test_the_action_prints_in_dump_flows_and_reads_back() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    ofp.watch_point("patch0")
    ofp.receive(ports["p1"], [ping(MAC_A, MAC_B)], 1.0)
    [flow] = ofp.datapath.flows()
    line = format_megaflow(flow, 1.0)
    actions = line.split("actions:", 1)[1]
    assert "userspace(pid=0,pvs_capture(id=1,dir=out))" in actions
    assert parse_odp_actions(actions) == flow.actions


def test_a_trace_shows_the_capture_action_where_the_packet_crosses() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    add_flow(ofp, "br0", "priority=10,in_port=1,actions=mod_vlan_vid:10,output:10")
    add_flow(ofp, "br1", "priority=10,in_port=20,actions=strip_vlan,output:2")
    ofp.watch_point("patch0")
    text = ofp.trace(extract_key(ping(MAC_A, MAC_B), ports["p1"]))
    last = text.splitlines()[-1]
    assert last == (
        "Datapath actions: push_vlan(vid=10,pcp=0),userspace(pid=0,pvs_capture(id=1,dir=out)),"
        f"pop_vlan,{ports['p2']}"
    )
