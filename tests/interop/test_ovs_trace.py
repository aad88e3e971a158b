"""Differential: ofproto/trace of the same configuration in Open vSwitch and pyvswitch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pyvswitch.flow.odp_text import parse_odp_flow
from tests.scenario.core_helpers import add_flow, switch

if TYPE_CHECKING:
    from tests.interop.ovs_sandbox import OvsSandbox

pytestmark = pytest.mark.ovs

FLOWS = {
    "br8": ["priority=10,in_port=1,actions=mod_vlan_vid:5,output:10"],
    "br9": [
        "priority=10,in_port=20,dl_vlan=5,actions=strip_vlan,resubmit(,1)",
        "table=1,priority=0,actions=NORMAL",
    ],
}
KEY = (
    "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=192.168.0.1,dst=192.168.0.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)"
)


@pytest.fixture
def ovs_patch_pair(ovs: OvsSandbox) -> OvsSandbox:
    ovs.vsctl(
        "add-br",
        "br8",
        "--",
        "set",
        "bridge",
        "br8",
        "datapath-type=dummy",
        "--",
        "add-port",
        "br8",
        "p81",
        "--",
        "set",
        "Interface",
        "p81",
        "type=dummy",
        "ofport_request=1",
        "--",
        "add-port",
        "br8",
        "patch8",
        "--",
        "set",
        "Interface",
        "patch8",
        "type=patch",
        "options:peer=patch9",
        "ofport_request=10",
        "--",
        "add-br",
        "br9",
        "--",
        "set",
        "bridge",
        "br9",
        "datapath-type=dummy",
        "--",
        "add-port",
        "br9",
        "p92",
        "--",
        "set",
        "Interface",
        "p92",
        "type=dummy",
        "ofport_request=2",
        "--",
        "add-port",
        "br9",
        "patch9",
        "--",
        "set",
        "Interface",
        "patch9",
        "type=patch",
        "options:peer=patch8",
        "ofport_request=20",
    )
    for bridge, flows in FLOWS.items():
        for flow in flows:
            ovs.ofctl("add-flow", bridge, flow)
    yield ovs
    ovs.vsctl("del-br", "br8", "--", "del-br", "br9")


def odp_ports(ovs: OvsSandbox) -> dict[str, int]:
    """Datapath port numbers OVS gave the ports, from dpif/show."""
    ports = {}
    for line in ovs.appctl("dpif/show").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "/" in parts[1]:
            _, _, odp = parts[1].rstrip(":").partition("/")
            if odp.isdigit():
                ports[parts[0]] = int(odp)
    return ports


def test_trace_across_a_patch_pair_matches_ovs(ovs_patch_pair: OvsSandbox) -> None:
    ovs = ovs_patch_pair
    numbers = odp_ports(ovs)
    ours = switch()
    # Give our datapath ports the numbers OVS chose, so the outputs compare.
    ours.add_bridge("br8", local_odp_port=numbers["br8"])
    ours.add_bridge("br9", local_odp_port=numbers["br9"])
    ours.add_port("br8", "p81", "dummy", 1, odp_port=numbers["p81"])
    ours.add_port("br8", "patch8", "patch", 10, peer="patch9")
    ours.add_port("br9", "p92", "dummy", 2, odp_port=numbers["p92"])
    ours.add_port("br9", "patch9", "patch", 20, peer="patch8")
    for bridge, flows in FLOWS.items():
        ours.del_flows(bridge)
        for flow in flows:
            add_flow(ours, bridge, flow)
    odp_key = KEY.replace("in_port(1)", f"in_port({numbers['p81']})")
    theirs = ovs.appctl("ofproto/trace", "ovs-dummy", odp_key).stdout.strip()
    key, _ = parse_odp_flow(odp_key)
    mine = ours.trace(key).strip()
    # Known, deliberate difference: our megaflow also matches the packet's VLAN
    # header, because the bridges rewrote it and the commit depends on it.
    theirs_lines = [x for x in theirs.splitlines() if not x.startswith("Megaflow:")]
    mine_lines = [x for x in mine.splitlines() if not x.startswith("Megaflow:")]
    assert mine_lines == theirs_lines
