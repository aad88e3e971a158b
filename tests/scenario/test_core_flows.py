"""OpenFlow rules, revalidation and loops in the core."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Dot1Q, Ether

from pyvswitch.dpif.actions import OdpOutput
from pyvswitch.flow.extract import extract_key
from tests.scenario.core_helpers import (
    MAC_A,
    MAC_B,
    MAC_C,
    add_flow,
    ping,
    switch,
    two_bridges_with_patch,
)


def one_bridge(fail_mode: str = "secure"):  # type: ignore[no-untyped-def]
    ofp = switch()
    ofp.add_bridge("br0", fail_mode)
    ports = {f"p{i}": ofp.add_port("br0", f"p{i}", "dummy", i).odp_port for i in (1, 2, 3)}
    return ofp, ports


def test_secure_bridge_without_rules_drops() -> None:
    ofp, ports = one_bridge("secure")
    assert ofp.receive(ports["p1"], [ping(MAC_A, MAC_B)], 0.0) == {}
    assert ofp.datapath.stats.missed == 1


def test_a_deleted_rule_never_keeps_forwarding_from_the_cache() -> None:
    ofp, ports = one_bridge()
    add_flow(ofp, "br0", "priority=10,in_port=1,actions=output:2")
    frame = ping(MAC_A, MAC_B)
    assert ports["p2"] in ofp.receive(ports["p1"], [frame], 0.0)
    assert ports["p2"] in ofp.receive(ports["p1"], [frame], 0.1)  # from the cache
    ofp.del_flows("br0")
    assert ofp.receive(ports["p1"], [frame], 0.2) == {}


def test_a_changed_rule_takes_effect_on_cached_flows() -> None:
    ofp, ports = one_bridge()
    add_flow(ofp, "br0", "priority=10,in_port=1,actions=output:2")
    frame = ping(MAC_A, MAC_B)
    ofp.receive(ports["p1"], [frame], 0.0)
    add_flow(ofp, "br0", "priority=20,in_port=1,icmp,actions=output:3")
    assert set(ofp.receive(ports["p1"], [frame], 0.1)) == {ports["p3"]}


def test_vlan_rewrite_and_resubmit() -> None:
    ofp, ports = one_bridge()
    add_flow(ofp, "br0", "priority=10,in_port=1,actions=mod_vlan_vid:101,resubmit(,1)")
    add_flow(ofp, "br0", "table=1,priority=10,dl_vlan=101,actions=output:2")
    out = ofp.receive(ports["p1"], [ping(MAC_A, MAC_B)], 0.0)
    sent = Ether(out[ports["p2"]][0])
    assert sent[Dot1Q].vlan == 101


def test_resubmit_loop_fails_with_recursion_too_deep() -> None:
    ofp, ports = one_bridge()
    add_flow(ofp, "br0", "priority=10,actions=resubmit(,1)")
    add_flow(ofp, "br0", "table=1,priority=10,actions=resubmit(,0)")
    assert ofp.receive(ports["p1"], [ping(MAC_A, MAC_B)], 0.0) == {}
    key = extract_key(ping(MAC_A, MAC_B), ports["p1"])
    trace = ofp.trace(key)
    assert "Translation failed (Recursion too deep)" in trace


def test_mac_learning_per_vlan_with_access_and_trunk_ports() -> None:
    ofp = switch()
    ofp.add_bridge("br0")
    access10 = ofp.add_port("br0", "a10", "dummy", 1, tag=10).odp_port
    access20 = ofp.add_port("br0", "a20", "dummy", 2, tag=20).odp_port
    trunk = ofp.add_port("br0", "t", "dummy", 3, trunks=(10, 20)).odp_port
    assert access10
    assert access20
    assert trunk
    out = ofp.receive(access10, [ping(MAC_A, MAC_B)], 0.0)
    # Flooded in VLAN 10: tagged on the trunk, never to the VLAN 20 access port.
    assert access20 not in out
    assert Ether(out[trunk][0])[Dot1Q].vlan == 10
    # B answers from the trunk in VLAN 10: unicast to A, untagged.
    back = ofp.receive(trunk, [ping(MAC_B, MAC_A, vlan=10, request=False)], 0.1)
    assert list(back) == [access10]
    assert Dot1Q not in Ether(back[access10][0])
    # A tagged frame on an access port is dropped.
    assert ofp.receive(access10, [ping(MAC_C, MAC_A, vlan=10)], 0.2) == {}
    # A VLAN the trunk does not carry is dropped.
    assert ofp.receive(trunk, [ping(MAC_C, MAC_A, vlan=30)], 0.3) == {}


def test_learning_across_a_patch_port() -> None:
    ofp = switch()
    ports = two_bridges_with_patch(ofp)
    ofp.receive(ports["p1"], [ping(MAC_A, MAC_B)], 0.0)
    # br1 learned A on its patch port.
    assert ofp.bridges["br1"].macs.lookup(int(MAC_A.replace(":", ""), 16), 0, 0.0) == 20


def test_patch_loop_delivers_at_most_one_copy_per_port() -> None:
    ofp = switch()
    ofp.add_bridge("br0")
    ofp.add_bridge("br1")
    p1 = ofp.add_port("br0", "p1", "dummy", 1).odp_port
    p2 = ofp.add_port("br1", "p2", "dummy", 2).odp_port
    assert p1
    assert p2
    for a, b, na, nb in (("br0", "br1", "pa0", "pa1"), ("br0", "br1", "pb0", "pb1")):
        ofp.add_port(a, na, "patch", peer=nb)
        ofp.add_port(b, nb, "patch", peer=na)
    broadcast = ping(MAC_A, "ff:ff:ff:ff:ff:ff")
    out = ofp.receive(p1, [broadcast], 0.0)
    assert out[p2] == [broadcast]
    assert all(len(frames) == 1 for frames in out.values())
    trace = ofp.trace(extract_key(broadcast, p1))
    assert "patch loop" in trace


@pytest.mark.parametrize("idle", [10.0])
def test_idle_megaflows_expire(idle: float) -> None:
    ofp, ports = one_bridge()
    add_flow(ofp, "br0", "priority=10,actions=output:2")
    ofp.receive(ports["p1"], [ping(MAC_A, MAC_B)], 0.0)
    assert len(ofp.datapath.flows()) == 1
    ofp.run(idle - 1)
    assert len(ofp.datapath.flows()) == 1
    ofp.run(idle + 0.1)
    assert ofp.datapath.flows() == []


def test_output_list() -> None:
    ofp, ports = one_bridge()
    add_flow(ofp, "br0", "priority=10,in_port=1,actions=output:2,output:3")
    key = extract_key(ping(MAC_A, MAC_B), ports["p1"])
    result = ofp._translate(key, 0.0, may_learn=False)
    assert result.actions == (OdpOutput(ports["p2"]), OdpOutput(ports["p3"]))
