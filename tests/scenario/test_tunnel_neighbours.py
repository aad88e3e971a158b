"""A tunnel keeps working while its traffic flows, and recovers when its neighbour goes.

Found in review: packets served from the datapath's cache must keep the next
hop's neighbour entry alive (as OVS's xlate cache does), and a neighbour
that goes (flushed, or a reply that never came) must not leave a cached drop
behind: every packet asks again, and an ARP request goes out at most once a
second until the reply comes. Also: header changes made before a tunnel
output still apply, and are undone, for the actions after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BR0_MAC = "aa:55:aa:55:00:00"
PEER_MAC = "f8:bc:12:44:34:b6"
INNER = (
    "in_port(2),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=198.51.100.1,dst=198.51.100.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1,dst=2)"
)
ARP_REPLY = (
    f"in_port(1),eth(src={PEER_MAC},dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),"
    f"arp(sip=1.1.2.92,tip=1.1.2.88,op=2,sha={PEER_MAC},tha=00:00:00:00:00:00)"
)


def run(name: str, rundir: Path, *args: str) -> str:
    done = tool(name, rundir, *args)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Path]:
    with running_daemon(tmp_path, ("--disable-system-route",)):
        run("vsctl", tmp_path, "add-br", "br0", "--", "set", "bridge", "br0",
            "datapath_type=dummy", f"other-config:hwaddr={BR0_MAC}", "fail-mode=secure",
            "--", "add-port", "br0", "p0", "--", "set", "Interface", "p0", "type=dummy",
            "ofport_request=1", f"options:pcap={tmp_path / 'p0.pcap'}")  # fmt: skip
        run("vsctl", tmp_path, "add-br", "int-br", "--", "set", "bridge", "int-br",
            "datapath_type=dummy",
            "--", "add-port", "int-br", "t2", "--", "set", "Interface", "t2", "type=vxlan",
            "options:remote_ip=1.1.2.92", "options:key=123", "ofport_request=2",
            "--", "add-port", "int-br", "p3", "--", "set", "Interface", "p3", "type=dummy",
            "ofport_request=3", f"options:pcap={tmp_path / 'p3.pcap'}")  # fmt: skip
        run("ofctl", tmp_path, "add-flow", "br0", "actions=normal")
        run("ofctl", tmp_path, "add-flow", "int-br", "actions=2")
        run("appctl", tmp_path, "netdev-dummy/ip4addr", "br0", "1.1.2.88/24")
        run("appctl", tmp_path, "ovs/route/add", "1.1.2.92/24", "br0")
        run("appctl", tmp_path, "time/stop")
        yield tmp_path


def sent_on_p0(rundir: Path) -> tuple[int, int]:
    """(ARP requests, VXLAN packets) that left by p0 so far."""
    frames = [Ether(bytes(f)) for f in rdpcap(str(rundir / "p0.pcap"))]
    arps = sum(1 for f in frames if ARP in f and f[ARP].op == 1)
    pushed = sum(1 for f in frames if UDP in f and f[UDP].dport == 4789)
    return arps, pushed


def test_traffic_keeps_its_neighbour_alive_past_the_aging_time(switch: Path) -> None:
    run("appctl", switch, "tnl/neigh/set", "br0", "1.1.2.92", PEER_MAC)
    for _ in range(5):
        run("appctl", switch, "netdev-dummy/receive", "int-br", INNER)
        run("appctl", switch, "time/warp", "300000", "10000")  # 300 s; aging is 900 s
    assert PEER_MAC in run("appctl", switch, "tnl/neigh/show")
    run("appctl", switch, "netdev-dummy/receive", "int-br", INNER)
    assert sent_on_p0(switch) == (0, 6)


def test_a_flushed_neighbour_is_asked_for_again_at_most_once_a_second(switch: Path) -> None:
    run("appctl", switch, "tnl/neigh/set", "br0", "1.1.2.92", PEER_MAC)
    run("appctl", switch, "netdev-dummy/receive", "int-br", INNER)
    assert sent_on_p0(switch) == (0, 1)
    assert run("appctl", switch, "tnl/neigh/flush") == "OK\n"
    for _ in range(3):
        run("appctl", switch, "netdev-dummy/receive", "int-br", INNER)
    assert sent_on_p0(switch) == (1, 1)  # one request; the clock has not moved
    run("appctl", switch, "time/warp", "1000")
    run("appctl", switch, "netdev-dummy/receive", "int-br", INNER)
    assert sent_on_p0(switch) == (2, 1)  # the reply never came: asked again
    run("appctl", switch, "netdev-dummy/receive", "p0", ARP_REPLY)
    run("appctl", switch, "netdev-dummy/receive", "int-br", INNER)
    assert sent_on_p0(switch) == (2, 2)


def test_changes_before_a_tunnel_output_are_undone_for_the_next_output(switch: Path) -> None:
    run("appctl", switch, "tnl/neigh/set", "br0", "1.1.2.92", PEER_MAC)
    rule = "priority=40000,in_port=LOCAL,actions=mod_vlan_vid:10,output:2,strip_vlan,output:3"
    run("ofctl", switch, "add-flow", "int-br", rule)
    trace = run("appctl", switch, "ofproto/trace", "ovs-dummy", INNER)
    actions = trace.splitlines()[-1]
    assert actions.startswith("Datapath actions: push_vlan(vid=10,pcp=0),clone(tnl_push(")
    assert actions.endswith("),pop_vlan,3")
    run("appctl", switch, "netdev-dummy/receive", "int-br", INNER)
    (frame,) = rdpcap(str(switch / "p3.pcap"))
    assert Ether(bytes(frame)).type == 0x0800  # untagged, as the rule asked
