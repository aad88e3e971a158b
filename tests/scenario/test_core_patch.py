"""The heart of the reference document: patch ports are crossed inside translation.

Scenarios in Open vSwitch's style on in-memory ports: inject frames into the
datapath, then check which ports they leave by, the datapath's hit and miss
counts, the installed megaflows, and the counters of both patch ends.
"""

from __future__ import annotations

from scapy.layers.l2 import Ether

from pyvswitch.dpif.actions import OdpOutput
from tests.scenario.core_helpers import MAC_A, MAC_B, ping, switch, two_bridges_with_patch


def test_ping_across_two_bridges_costs_one_lookup_per_direction() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    now = 100.0
    out = {}
    for seq in range(10):
        out = ofp.receive(ports["p1"], [ping(MAC_A, MAC_B, seq)], now)
        # A is unknown to br1 at first: NORMAL floods, reaching p2 through the patch.
        assert ports["p2"] in out
        assert ports["p1"] not in out
    back = {}
    for seq in range(5):
        back = ofp.receive(ports["p2"], [ping(MAC_B, MAC_A, seq, request=False)], now)
        # B->A: both bridges learned A, so it goes to p1 only.
        assert back == {ports["p1"]: back[ports["p1"]]}
        assert Ether(back[ports["p1"]][0]).dst == MAC_A
    stats = ofp.datapath.stats
    assert (stats.missed, stats.hit, stats.lost) == (2, 13, 0)

    flows = ofp.datapath.flows()
    assert len(flows) == 2
    by_port = {f.key >> 0 for f in flows}
    assert len(by_port) == 2
    # The A->B flow was revalidated in place once B was learned: now unicast to p2,
    # an output of br1 reached from a packet that entered br0.
    a_to_b = next(f for f in flows if OdpOutput(ports["p2"]) in f.actions)
    assert a_to_b.actions == (OdpOutput(ports["p2"]),)
    # Ten packets, the first of which was the upcall that made the flow: as
    # in Open vSwitch, the flow counts the nine that hit it.
    assert a_to_b.packets == 9
    b_to_a = next(f for f in flows if f is not a_to_b)
    assert b_to_a.actions == (OdpOutput(ports["p1"]),)
    assert b_to_a.packets == 4

    patch0 = ofp.bridges["br0"].port_by_name("patch0")
    patch1 = ofp.bridges["br1"].port_by_name("patch1")
    assert patch0 is not None
    assert patch1 is not None
    assert (patch0.counters.tx_packets, patch1.counters.rx_packets) == (10, 10)
    assert (patch1.counters.tx_packets, patch0.counters.rx_packets) == (5, 5)
    assert patch0.counters.tx_bytes == patch1.counters.rx_bytes == 10 * len(ping(MAC_A, MAC_B))


def test_rule_counters_are_exact_for_cache_hits() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    for seq in range(7):
        ofp.receive(ports["p1"], [ping(MAC_A, MAC_B, seq)], 1.0)
    normal0 = ofp.bridges["br0"].tables[0].rules[0]
    normal1 = ofp.bridges["br1"].tables[0].rules[0]
    assert normal0.n_packets == 7
    assert normal1.n_packets == 7


def test_batch_is_forwarded_together() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    frames = [ping(MAC_A, MAC_B, seq) for seq in range(32)]
    out = ofp.receive(ports["p1"], frames, 5.0)
    assert out[ports["p2"]] == frames
    assert ofp.datapath.stats.missed == 1
