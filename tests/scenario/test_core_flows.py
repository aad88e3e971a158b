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


@pytest.mark.parametrize(
    ("mode", "vlan", "tagged_out"),
    [
        ("native-untagged", 10, False),  # the native VLAN leaves untagged
        ("native-tagged", 10, True),  # ... or tagged, as the mode says
        ("native-untagged", 20, True),  # other VLANs always leave tagged
        ("native-tagged", 20, True),
    ],
)
def test_native_vlan_modes(mode: str, vlan: int, tagged_out: bool) -> None:
    ofp = switch()
    ofp.add_bridge("br0")
    native = ofp.add_port("br0", "n", "dummy", 1, tag=10, trunks=(10, 20), vlan_mode=mode)
    access = ofp.add_port("br0", "a", "dummy", 2, tag=vlan).odp_port
    assert native.odp_port
    assert access
    out = ofp.receive(access, [ping(MAC_A, MAC_B)], 0.0)
    sent = Ether(out[native.odp_port][0])
    assert (Dot1Q in sent) == tagged_out
    if tagged_out:
        assert sent[Dot1Q].vlan == vlan


def test_native_port_puts_untagged_input_in_its_native_vlan() -> None:
    ofp = switch()
    ofp.add_bridge("br0")
    native = ofp.add_port("br0", "n", "dummy", 1, tag=10, vlan_mode="native-untagged").odp_port
    access10 = ofp.add_port("br0", "a10", "dummy", 2, tag=10).odp_port
    access20 = ofp.add_port("br0", "a20", "dummy", 3, tag=20).odp_port
    assert native
    assert access10
    assert access20
    local = ofp.bridges["br0"].ports[0xFFFE].odp_port
    out = ofp.receive(native, [ping(MAC_A, MAC_B)], 0.0)
    # Flooded in VLAN 10: the VLAN 10 access port and the bridge's own port.
    assert set(out) == {access10, local}
    assert Dot1Q not in Ether(out[access10][0])
    assert Ether(out[local][0])[Dot1Q].vlan == 10


def test_loose_and_strict_delete_and_modify() -> None:
    ofp, _ = one_bridge()
    add_flow(ofp, "br0", "priority=10,in_port=1,icmp,actions=output:2")
    add_flow(ofp, "br0", "priority=20,in_port=1,icmp,actions=output:3")
    add_flow(ofp, "br0", "priority=10,in_port=2,actions=output:1")
    from pyvswitch.flow.ofp_text import parse_match
    from pyvswitch.ofproto.actions import Output

    # Strict: exactly this match and priority.
    assert (
        ofp.mod_flows(
            "br0", parse_match("in_port=1,icmp")[0], (Output(1),), priority=10, strict=True
        )
        == 1
    )
    rules = {(r.priority, r.actions) for r in ofp.bridges["br0"].rules()}
    assert (10, (Output(1),)) in rules
    assert (20, (Output(3),)) in rules
    # Loose: every rule at least as specific as in_port=1.
    assert ofp.del_flows("br0", parse_match("in_port=1")[0]) == 2
    assert [r.match for r in ofp.bridges["br0"].rules()] == [parse_match("in_port=2")[0]]
    # Strict with a priority that does not exist deletes nothing.
    assert ofp.del_flows("br0", parse_match("in_port=2")[0], priority=99, strict=True) == 0


def test_rule_timeouts_expire_in_run() -> None:
    ofp, ports = one_bridge()
    from pyvswitch.flow.match import Match
    from pyvswitch.ofproto.actions import Output

    ofp.add_flow("br0", Match(), (Output(2),), priority=1, hard_timeout=5, now=0.0)
    ofp.add_flow("br0", Match(), (Output(3),), priority=0, idle_timeout=2, now=0.0)
    ofp.receive(ports["p1"], [ping(MAC_A, MAC_B)], 1.0)
    ofp.run(3.0)  # the idle one was never used: gone; the hard one stays
    assert [r.priority for r in ofp.bridges["br0"].rules()] == [1]
    ofp.run(5.0)
    assert ofp.bridges["br0"].rules() == []
    assert ofp.receive(ports["p1"], [ping(MAC_A, MAC_B)], 5.1) == {}
