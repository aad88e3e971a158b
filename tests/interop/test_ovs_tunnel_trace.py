"""Differential test: Open vSwitch's native tunnelling scenarios, on Open vSwitch 3.1 and on us.

A private Open vSwitch (tests/interop/ovs_sandbox.py) and a pvs-vswitchd, both
with dummy datapaths and without the kernel's routes, get the same commands:
``tunnel_push_pop - action`` of ``tests/tunnel-push-pop.at`` (the vxlan, gre
and geneve parts) and ``tunnel - key``, ``tunnel - key match``, ``tunnel -
ToS and TTL inheritance`` and ``tunnel - ECN decapsulation`` of
``tests/tunnel.at`` with native tunnelling (an underlay bridge br1 with an
address, a route and a neighbour). Open vSwitch gets them through its own
tools, we through ours. Compared: the ``Datapath actions:`` and ``Megaflow:``
lines of ``ofproto/trace``, ``dpif/show``, ``tnl/ports/show`` and
``tnl/neigh/show`` (sorted, as Open vSwitch's tests sort them: both list in
hash order), the ARP requests a neighbour miss sends out of p0, the receive
counters of the tunnel ports after real frames, and the drop counters
(``coverage/read-counter``) after malformed outer headers.

tests/scenario/test_tunnel_push_pop.py asserts the same texts without Open
vSwitch; see its docstring for what is not replayed. Not compared, because they differ by
design or by history: the datapath's hit/missed counts and
``dpctl/dump-flows`` (Open vSwitch sends a neighbour miss's ARP request as a
packet-out, with no datapath flow, and again on every revalidation and trace
of the flow; we send it once, as a packet received on the bridge's port,
which installs a flow), and the tunnel ports' transmit counters (Open
vSwitch 3.1 counts a pushed packet twice on its tunnel port, once at its
inner size and again with the outer header; we count it once, inner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from tests.interop.both import Both, both_started
from tests.scenario.test_tunnel_push_pop import (
    ARP_FLOW,
    ECN_TUNNEL,
    FROM_INT_BR,
    GENEVE_FRAME,
    GRE_FRAME,
    INNER,
    MALFORMED,
    P0,
    TCP_FLOW,
    TO_US,
    TUNNELS,
    VXLAN_FRAME,
    arp_reply,
    gre_frame,
    received,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs


def sorted_lines(text: str) -> list[str]:
    return sorted(text.splitlines())


def trace_result(text: str) -> list[str]:
    """A trace's ``Megaflow:`` and ``Datapath actions:`` lines."""
    return [line for line in text.splitlines() if line.startswith(("Megaflow:", "Datapath"))]


def datapath_actions(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Datapath actions:")]


def all_rx_lines(text: str) -> list[str]:
    """Every port's receive line in ``dump-ports`` output, sorted (OVS lists by hash)."""
    return sorted(line for line in text.splitlines() if "rx pkts=" in line)


def rx_line(port: str) -> Callable[[str], list[str]]:
    """The receive line of OpenFlow port ``port`` in ``dump-ports`` output."""
    return lambda text: [line for line in text.splitlines() if line.startswith(f"  port {port}:")]


# -- tunnel_push_pop - action --------------------------------------------------------------


@pytest.fixture(scope="module")
def push_pop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    with both_started(tmp_path_factory.mktemp("pvs")) as both:
        both.do("vsctl", "add-port", *P0[2:])
        both.do(
            "vsctl", "add-br", "int-br", "--", "set", "bridge", "int-br", "datapath_type=dummy"
        )
        both.do("vsctl", *TUNNELS)
        yield both


def test_dpif_show(push_pop: Both) -> None:
    push_pop.same("appctl", "dpif/show")


def test_addresses_and_routes(push_pop: Both) -> None:
    push_pop.same("appctl", "netdev-dummy/ip4addr", "br0", "1.1.2.88/24")
    push_pop.same("appctl", "netdev-dummy/ip6addr", "br0", "2001:cafe::88/24")
    push_pop.same("appctl", "ovs/route/add", "1.1.2.92/24", "br0")
    push_pop.same("appctl", "ovs/route/add", "1.1.2.92/24", "br0", "pkt_mark=1234")
    push_pop.same("appctl", "ovs/route/show", view=sorted_lines)
    push_pop.do("ofctl", "add-flow", "br0", "action=normal")


def _arp_requests(pcap: Path) -> set[str]:
    return {
        bytes(frame).hex()
        for frame in rdpcap(str(pcap))
        if ARP in Ether(bytes(frame)) and Ether(bytes(frame))[ARP].op == 1
    }


def test_neighbour_misses_send_the_same_arp_requests(
    push_pop: Both, tmp_path_factory: pytest.TempPathFactory
) -> None:
    where = tmp_path_factory.mktemp("pcaps")
    ovs_pcap, pvs_pcap = where / "ovs-p0.pcap", where / "pvs-p0.pcap"
    assert push_pop.ovs("vsctl", "set", "Interface", "p0", f"options:pcap={ovs_pcap}")[0] == 0
    assert push_pop.pvs("vsctl", "set", "Interface", "p0", f"options:pcap={pvs_pcap}")[0] == 0
    push_pop.do(
        "appctl",
        "netdev-dummy/receive",
        "int-br",
        "in_port(2),eth(src=aa:55:aa:55:00:00,dst=f8:bc:12:ff:ff:ff),eth_type(0x0800),"
        "ipv4(src=1.1.3.92,dst=1.1.3.88,proto=1,tos=0,ttl=64,frag=no),icmp(type=0,code=0)",
    )
    ovs_sent = _arp_requests(ovs_pcap)
    assert len(ovs_sent) == 2
    assert _arp_requests(pvs_pcap) == ovs_sent


def _receive_and_show(both: Both, port: str, flow: str) -> None:
    both.do("appctl", "netdev-dummy/receive", port, flow)
    both.do("appctl", "time/warp", "1000")
    both.same("appctl", "tnl/neigh/show", view=sorted_lines)


def test_arp_snooping_fills_the_neighbour_cache_alike(push_pop: Both) -> None:
    _receive_and_show(push_pop, "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:c8"))
    _receive_and_show(push_pop, "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b8", tip="1.1.2.90"))


def test_an_arp_reply_on_another_vlan(push_pop: Both) -> None:
    push_pop.do("vsctl", "set", "port", "br0", "tag=10")
    _receive_and_show(push_pop, "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6", vlan=99))


def test_arp_replies_on_the_vlan_and_in_the_overlay(push_pop: Both) -> None:
    push_pop.do("vsctl", "set", "port", "br0", "tag=10")
    _receive_and_show(push_pop, "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6", vlan=10))
    push_pop.do(
        "vsctl",
        *("add-port", "int-br", "p1", "--", "set", "interface", "p1", "type=dummy"),
        *("ofport_request=200", "other-config:hwaddr=aa:55:aa:55:00:99"),
    )
    reply = arp_reply("1.1.2.92", "f8:bc:12:44:34:c8").replace("in_port(1)", "in_port(200)")
    _receive_and_show(push_pop, "p1", reply)
    push_pop.do("vsctl", "set", "port", "br0", "tag=0")
    push_pop.same("appctl", "tnl/neigh/flush")
    push_pop.do("appctl", "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6"))
    _receive_and_show(push_pop, "p0", arp_reply("1.1.2.93", "f8:bc:12:44:34:b7"))


def test_a_reply_that_hits_a_cached_flow_is_not_snooped(push_pop: Both) -> None:
    """After a flush, the same reply again: it hits the flow the first one made."""
    push_pop.same("appctl", "tnl/neigh/flush")
    _receive_and_show(push_pop, "p0", arp_reply("1.1.2.93", "f8:bc:12:44:34:b7"))
    # Without the flows, the replies are looked at again.
    push_pop.same("appctl", "tnl/neigh/flush")
    push_pop.do("appctl", "dpctl/del-flows")
    push_pop.do("appctl", "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6"))
    _receive_and_show(push_pop, "p0", arp_reply("1.1.2.93", "f8:bc:12:44:34:b7"))


def test_tnl_ports_show(push_pop: Both) -> None:
    push_pop.same("appctl", "tnl/ports/show", view=sorted_lines)


@pytest.mark.parametrize(
    ("src", "proto", "l4"),
    [
        ("1.1.2.92", 17, ",udp(src=51283,dst=4789)"),
        ("1.1.2.92", 47, ""),
        ("1.1.2.92", 17, ",udp(src=51283,dst=6081)"),
        ("1.1.2.96", 17, ",udp(src=51283,dst=6081)"),
        ("1.1.2.92", 17, ",udp(src=51283,dst=4790)"),
        ("1.1.2.92", 17, ",udp(src=51283,dst=6080)"),
        ("1.1.2.92", 6, ",tcp(src=51283,dst=4789)"),
    ],
    ids=["vxlan", "gre", "geneve", "geneve-from-anyone", "udp-4790", "udp-6080", "tcp"],
)
def test_pop_traces(push_pop: Both, src: str, proto: int, l4: str) -> None:
    flow = TO_US.format(src=src, proto=proto, l4=l4)
    push_pop.same("appctl", "ofproto/trace", "ovs-dummy", flow, view=trace_result)


@pytest.mark.parametrize(
    "flow_actions",
    [
        "action=2",
        "actions=set_tunnel:124,4",
        "action=3",
        "actions=set_field:1.1.2.92->tun_dst,5",
        "action=2,3",
        "action=3,2,LOCAL",
        "action=5",
        "actions=set_field:1.1.2.93->tun_dst,set_tunnel:9,5,2",
        "actions=set_field:1.1.2.99->tun_dst,5",
        "actions=set_field:9.9.9.9->tun_dst,5",
    ],
)
def test_push_traces(push_pop: Both, flow_actions: str) -> None:
    push_pop.do("ofctl", "add-flow", "int-br", flow_actions)
    push_pop.same("appctl", "ofproto/trace", "ovs-dummy", FROM_INT_BR, view=trace_result)


def test_gre_decapsulation_counts(push_pop: Both) -> None:
    push_pop.do("ofctl", "del-flows", "int-br")
    for _ in range(3):
        push_pop.do("appctl", "netdev-dummy/receive", "p0", GRE_FRAME)
    push_pop.do("appctl", "time/warp", "1000")
    push_pop.same("ofctl", "dump-ports", "int-br", view=rx_line(" 3"))


@pytest.mark.parametrize(("frame", "port"), [(VXLAN_FRAME, " 2"), (GENEVE_FRAME, " 5")])
def test_udp_decapsulation_counts(push_pop: Both, frame: bytes, port: str) -> None:
    push_pop.do("appctl", "netdev-dummy/receive", "p0", frame.hex())
    push_pop.do("appctl", "time/warp", "1000")
    push_pop.same("ofctl", "dump-ports", "int-br", view=rx_line(port))


def _counters(both: Both, name: str) -> tuple[int, int]:
    ovs, pvs = (
        both.ovs("appctl", "coverage/read-counter", name),
        both.pvs("appctl", "coverage/read-counter", name),
    )
    return int(ovs[1]), int(pvs[1])


@pytest.mark.parametrize("case", list(MALFORMED))
def test_bad_outer_headers_count_alike(push_pop: Both, case: str) -> None:
    frame, name = MALFORMED[case]
    before = _counters(push_pop, name)
    push_pop.do("appctl", "netdev-dummy/receive", "p0", frame.hex())
    push_pop.do("appctl", "time/warp", "500")
    after = _counters(push_pop, name)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    push_pop.same("ofctl", "dump-ports", "int-br", view=all_rx_lines)


def test_congestion_drop_counts_alike(push_pop: Both) -> None:
    frame = gre_frame(0x2000, 0x6558, bytes.fromhex("000001c8"), INNER, tos=0x03)
    before = _counters(push_pop, "drop_action_congestion")
    push_pop.do("appctl", "netdev-dummy/receive", "p0", frame.hex())
    push_pop.do("appctl", "time/warp", "500")
    after = _counters(push_pop, "drop_action_congestion")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    push_pop.same("ofctl", "dump-ports", "int-br", view=rx_line(" 3"))


def test_tunnel_ports_leave_alike(push_pop: Both) -> None:
    push_pop.do(
        "vsctl",
        *("del-port", "int-br", "t3", "--", "set", "Interface", "t1", "type=vxlan"),
        *("--", "set", "Interface", "t2", "options:dst_port=4790"),
    )
    push_pop.same("appctl", "tnl/ports/show", view=sorted_lines)
    # The lookup counters differ by then (see the module's docstring): ports only.
    push_pop.same("appctl", "dpif/show", view=lambda text: text.splitlines()[1:])
    push_pop.do("vsctl", "del-port", "int-br", "t1", "--", "del-port", "int-br", "t2")
    push_pop.do("vsctl", "del-port", "int-br", "t4")
    push_pop.same("appctl", "tnl/ports/show")


# -- tests/tunnel.at -------------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Both]:
    with both_started(tmp_path) as both:
        yield both


def _underlay(both: Both, address: str, remote: str, mac: str) -> None:
    both.do(
        "vsctl",
        *("add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"),
        "other-config:hwaddr=aa:55:aa:55:00:01",
        *("--", "add-port", "br1", "p7", "--", "set", "Interface", "p7", "type=dummy"),
        "ofport_request=7",
    )
    both.same("appctl", "netdev-dummy/ip4addr", "br1", f"{address}/24")
    both.same("appctl", "ovs/route/add", f"{address}/24", "br1")
    both.same("appctl", "tnl/neigh/set", "br1", remote, mac)


def _traces(both: Both, flows: list[str]) -> None:
    for flow in flows:
        both.same("appctl", "ofproto/trace", "ovs-dummy", flow, view=datapath_actions)


def test_tunnel_key(fresh: Both) -> None:
    fresh.do(
        "vsctl",
        *("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=gre"),
        *("options:key=1", "options:remote_ip=1.1.1.1", "ofport_request=1"),
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=gre"),
        *("options:in_key=2", "options:out_key=3", "options:remote_ip=1.1.1.1"),
        "ofport_request=2",
        *("--", "add-port", "br0", "p3", "--", "set", "Interface", "p3", "type=gre"),
        *("options:out_key=5", "options:remote_ip=1.1.1.1", "ofport_request=3"),
    )
    fresh.do("ofctl", "add-flow", "br0", "actions=IN_PORT,output:1,output:2,output:3")
    fresh.same("appctl", "dpif/show")
    flows = [
        received("tun_id=0x1,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)"),
        received("tun_id=0x2,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)"),
        received("src=1.1.1.1,dst=2.2.2.2,ttl=64,flags()"),
        received("tun_id=0xf,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)"),
    ]
    _traces(fresh, flows)
    _underlay(fresh, "1.1.1.2", "1.1.1.1", "aa:bb:cc:00:00:01")
    fresh.same("appctl", "dpif/show")
    _traces(fresh, flows)


def test_tunnel_key_match(fresh: Both, tmp_path: Path) -> None:
    fresh.do(
        "vsctl",
        *("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=gre"),
        *("options:key=flow", "options:remote_ip=1.1.1.1", "ofport_request=1"),
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=gre"),
        *("options:key=3", "options:remote_ip=3.3.3.3", "ofport_request=2"),
        *("--", "add-port", "br0", "p3", "--", "set", "Interface", "p3", "type=dummy"),
        "ofport_request=3",
        *("--", "add-port", "br0", "p4", "--", "set", "Interface", "p4", "type=dummy"),
        "ofport_request=4",
        *("--", "add-port", "br0", "p5", "--", "set", "Interface", "p5", "type=dummy"),
        "ofport_request=5",
    )
    flows_file = tmp_path / "flows.txt"
    flows_file.write_text(
        "tun_id=2,actions=output:3\n"
        "tun_id=3,actions=output:4,set_tunnel:2,resubmit:99,set_tunnel:4,output:2,resubmit:99\n"
        "tun_id=4,actions=output:5\n"
    )
    fresh.do("ofctl", "add-flows", "br0", str(flows_file))
    fresh.same("appctl", "dpif/show")
    flows = [
        received(f"tun_id={tun_id},src={src},dst=2.2.2.2,ttl=64,flags(key)")
        for tun_id, src in (("0x2", "1.1.1.1"), ("0x3", "1.1.1.1"), ("0x3", "3.3.3.3"))
    ]
    flows.append(received("tun_id=0x0,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)"))
    _traces(fresh, flows)
    _underlay(fresh, "3.3.3.2", "3.3.3.3", "aa:bb:cc:00:00:03")
    _traces(fresh, flows)


def test_tunnel_tos_and_ttl_inheritance(fresh: Both) -> None:
    fresh.do(
        "vsctl",
        *("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=gre"),
        *("options:remote_ip=1.1.1.1", "options:tos=inherit", "options:ttl=inherit"),
        "ofport_request=1",
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy"),
        "ofport_request=2",
    )
    fresh.do("ofctl", "add-flow", "br0", "actions=output:1")
    fresh.same("appctl", "dpif/show")
    flows = [
        *("in_port(2)," + TCP_FLOW.format(tos=tos, ttl=128) for tos in (4, 5, 7, 0xFF)),
        "in_port(2)," + ARP_FLOW,
    ]
    _traces(fresh, flows)
    _underlay(fresh, "1.1.1.2", "1.1.1.1", "aa:bb:cc:00:00:01")
    for flow in flows:
        fresh.same("appctl", "ofproto/trace", "ovs-dummy", flow, view=trace_result)


def test_ecn_decapsulation(fresh: Both) -> None:
    fresh.do(
        "vsctl",
        *("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=gre"),
        *("options:remote_ip=1.1.1.1", "ofport_request=1"),
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy"),
        "ofport_request=2",
    )
    fresh.do("ofctl", "add-flow", "br0", "actions=2")
    fresh.same("appctl", "dpif/show")
    flows = [
        *(received(ECN_TUNNEL, tos=tos) for tos in (3, 1, 2, 0)),
        f"tunnel({ECN_TUNNEL}),in_port(1)," + ARP_FLOW,
        received("src=1.1.1.1,dst=2.2.2.2,tos=0x2,ttl=64,flags()", tos=0),
        received("src=5.5.5.5,dst=6.6.6.6,ttl=64,flags()"),
    ]
    _traces(fresh, flows)
    # The drop: looked up, nothing run, no error; the same trace to the end.
    fresh.same(
        "appctl",
        "ofproto/trace",
        "ovs-dummy",
        received(ECN_TUNNEL, tos=0),
        view=lambda text: text.splitlines()[2:],
    )


def test_ecn_decapsulation_megaflows(fresh: Both) -> None:
    fresh.do(
        "vsctl",
        *("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=gre"),
        *("options:remote_ip=1.1.1.1", "ofport_request=1"),
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy"),
        "ofport_request=2",
    )
    fresh.do("ofctl", "add-flow", "br0", "actions=2")
    for tos in (3, 1):
        flow = received(ECN_TUNNEL, tos=tos)
        fresh.same("appctl", "ofproto/trace", "ovs-dummy", flow, view=trace_result)
