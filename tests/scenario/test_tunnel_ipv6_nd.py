"""IPv6 tunnel next hops are resolved by neighbour discovery; the egress port range is set.

A vxlan tunnel to an IPv6 remote on dummy ports: the first packet finds no
neighbour, so a neighbour solicitation (checked with scapy) leaves by the
underlay bridge's port; a neighbour advertisement for our address fills the
cache, after which the push carries the advertised MAC. And
``tnl/egress_port_range`` answers as Open vSwitch 3.1 does (asked in its
sandbox), and the UDP source ports of pushed packets stay inside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import Ether
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


def appctl(rundir: Path, *args: str) -> str:
    done = tool("appctl", rundir, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Path]:
    with running_daemon(tmp_path, ("--disable-system-route",)):
        pcap = tmp_path / "p0.pcap"
        steps = [
            ("vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy",
             f"other-config:hwaddr={BR0_MAC}", "fail-mode=secure",
             "--", "add-port", "br0", "p0", "--", "set", "Interface", "p0", "type=dummy",
             "ofport_request=1", f"options:pcap={pcap}"),
            ("vsctl", "add-br", "int-br", "--", "set", "bridge", "int-br", "datapath_type=dummy",
             "--", "add-port", "int-br", "t6", "--", "set", "Interface", "t6", "type=vxlan",
             "options:remote_ip=2001:db8::92", "options:key=123", "ofport_request=2"),
            ("ofctl", "add-flow", "br0", "actions=normal"),
            ("ofctl", "add-flow", "int-br", "actions=2"),
            ("appctl", "netdev-dummy/ip6addr", "br0", "2001:db8::88/64"),
            ("appctl", "ovs/route/add", "2001:db8::92/64", "br0"),
        ]  # fmt: skip
        for name, *args in steps:
            done = tool(name, tmp_path, *args)
            assert done.returncode == 0, (args, done.stderr)
        yield tmp_path


def test_a_neighbour_miss_sends_a_solicitation_and_an_advertisement_resolves_it(
    switch: Path,
) -> None:
    trace = appctl(switch, "ofproto/trace", "ovs-dummy", INNER)
    assert "-> neighbor cache miss for 2001:db8::92 on bridge br0, sending ND request" in trace
    appctl(switch, "netdev-dummy/receive", "int-br", INNER)
    solicitations = [
        Ether(bytes(frame)) for frame in rdpcap(str(switch / "p0.pcap")) if ICMPv6ND_NS in frame
    ]
    assert len(solicitations) == 1
    ns = solicitations[0]
    assert ns[Ether].src == BR0_MAC
    assert ns[Ether].dst == "33:33:ff:00:00:92"
    assert ns[IPv6].src == "2001:db8::88"
    assert ns[IPv6].dst == "ff02::1:ff00:92"
    assert ns[IPv6].hlim == 255
    assert ns[ICMPv6ND_NS].tgt == "2001:db8::92"
    assert ns[ICMPv6NDOptSrcLLAddr].lladdr == BR0_MAC
    # scapy recomputes the checksum from the rest: it must equal ours.
    rebuilt = ns.copy()
    del rebuilt[ICMPv6ND_NS].cksum
    assert Ether(bytes(rebuilt))[ICMPv6ND_NS].cksum == ns[ICMPv6ND_NS].cksum

    advert = (
        f"in_port(1),eth(src={PEER_MAC},dst={BR0_MAC}),eth_type(0x86dd),"
        "ipv6(src=2001:db8::92,dst=2001:db8::88,label=0,proto=58,tclass=0,hlimit=255,frag=no),"
        f"icmpv6(type=136,code=0),nd(target=2001:db8::92,tll={PEER_MAC})"
    )
    appctl(switch, "netdev-dummy/receive", "p0", advert)
    assert PEER_MAC in appctl(switch, "tnl/neigh/show")
    trace = appctl(switch, "ofproto/trace", "ovs-dummy", INNER)
    actions = trace.splitlines()[-1]
    assert actions.startswith("Datapath actions: tnl_push(tnl_port(4789),header(size=70,type=4,")
    assert f"eth(dst={PEER_MAC},src={BR0_MAC},dl_type=0x86dd)" in actions
    assert "ipv6(src=2001:db8::88,dst=2001:db8::92,label=0,proto=17,tclass=0x0,hlimit=64)" in (
        actions
    )


def test_egress_port_range_as_open_vswitch_answers(switch: Path) -> None:
    assert appctl(switch, "tnl/egress_port_range") == (
        "Tunnel UDP source port range: 32768-61000\n"
    )
    assert appctl(switch, "tnl/egress_port_range", "0", "10") == "Invalid min.\n"
    assert appctl(switch, "tnl/egress_port_range", "10", "70000") == "Invalid max.\n"
    assert appctl(switch, "tnl/egress_port_range", "2000", "1000") == "OK\n"
    assert appctl(switch, "tnl/egress_port_range", "5") == (
        "Tunnel UDP source port range: 1000-2000\n"
    )
    appctl(switch, "tnl/neigh/set", "br0", "2001:db8::92", PEER_MAC)
    for sport in range(5):
        flow = INNER.replace("udp(src=1,", f"udp(src={sport + 1},")
        appctl(switch, "netdev-dummy/receive", "int-br", flow)
    pushed = [
        Ether(bytes(frame))
        for frame in rdpcap(str(switch / "p0.pcap"))
        if UDP in frame and Ether(bytes(frame))[UDP].dport == 4789
    ]
    assert len(pushed) == 5
    assert all(1000 <= pkt[UDP].sport < 2000 for pkt in pushed)


def test_an_outer_packet_larger_than_the_underlay_mtu_is_dropped_and_counted(
    switch: Path,
) -> None:
    appctl(switch, "tnl/neigh/set", "br0", "2001:db8::92", PEER_MAC)
    header = bytes.fromhex("5054000000075054000000050800")
    small = header + bytes(1400)
    full = header + bytes(1500)  # an MTU-sized inner frame: 70 more bytes outside
    appctl(switch, "netdev-dummy/receive", "int-br", small.hex())
    appctl(switch, "netdev-dummy/receive", "int-br", full.hex())
    sizes = [len(frame) for frame in rdpcap(str(switch / "p0.pcap"))]
    assert sizes == [len(small) + 70]
    assert appctl(switch, "coverage/read-counter", "datapath_drop_tunnel_oversize") == "1\n"
