"""Open vSwitch's native tunnelling tests, replayed through our tools against pvs-vswitchd.

``tests/tunnel-push-pop.at`` (``tunnel_push_pop - action``): an underlay bridge
br0 with dummy port p0 and the endpoint address on br0's own port, an overlay
bridge int-br with vxlan, gre and geneve ports; ``dpif/show``, the ARP
requests a neighbour miss sends out of p0 (``options:pcap``), ARP snooping
into ``tnl/neigh/show``, ``tnl/ports/show``, ``tnl_pop`` and ``tnl_push``
traces, counters after real frames given to ``netdev-dummy/receive``, and
``coverage/read-counter`` for what the datapath drops. From
``tests/tunnel.at``: ``tunnel - key``, ``tunnel - key match``, ``tunnel - ToS
and TTL inheritance`` and ``tunnel - ECN decapsulation``. Open vSwitch runs
those with native tunnelling turned off (``set(tunnel(...)),1`` outputs); we
have only native tunnelling, so they run as Open vSwitch runs them with it
on: first with no route (the output fails routing), then with an underlay
bridge br1 (port p7), an address, a route and a neighbour, where each output
becomes a ``tnl_push``.

Every text asserted here is Open vSwitch 3.1's (tests/interop/test_ovs_tunnel_trace.py
runs the same scenario on both and compares). Version 3.1 writes no
``clone()`` around a tunnel push whose packet nothing follows, so the
push-pop lines read ``tnl_push(...),1`` where the upstream test file, written
for later versions, has ``clone(tnl_push(...),1)``.

Not replayed (not built): the erspan, gtpu and vxlan-gpe ports (t7, t8 and
the erspan test), ``packet_type=legacy_l3`` and ``pop_eth`` (t6 and the L3
GRE frames), ``options:egress_pkt_mark`` and ``set(skb_mark(...))`` (t5, the
``pkt_mark`` route is added but not used), the decapsulation of Geneve
options with a controller monitor (Geneve ``tun_metadata`` and ``add-tlv-map``
are replayed in test_tunnel_geneve_tlv.py), the ``packet_out`` and
``underlay bridge match`` tests, and the IPv6 file
(``tunnel-push-pop-ipv6.at``).

A fuzz test sends random outer headers to the datapath, both pure and
through a running daemon, and asks that nothing raises.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from pyvswitch.cli.appctl import transact
from pyvswitch.dpif.actions import OdpOutput, OdpTnlPop
from pyvswitch.dpif.datapath import Datapath, UpcallResult
from pyvswitch.flow.layout import FIELDS
from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import ok, port_counts, tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NO_KERNEL = ["--disable-system-route"]

#: tests/ofproto-macros.at's OVS_VSWITCHD_START, with the test's own port p0.
START = [
    *("add-br", "br0", "--", "set", "bridge", "br0", "datapath-type=dummy"),
    "other-config:datapath-id=fedcba9876543210",
    "other-config:hwaddr=aa:55:aa:55:00:00",
    "fail-mode=secure",
]
P0 = [
    *("--", "add-port", "br0", "p0", "--", "set", "Interface", "p0", "type=dummy"),
    "ofport_request=1",
    "other-config:hwaddr=aa:55:aa:55:00:00",
]
#: The ports of ``tunnel_push_pop - action`` this replay has (t1..t4).
TUNNELS = [
    *("add-port", "int-br", "t2", "--", "set", "Interface", "t2", "type=vxlan"),
    *("options:remote_ip=1.1.2.92", "options:key=123", "ofport_request=2"),
    *("--", "add-port", "int-br", "t1", "--", "set", "Interface", "t1", "type=gre"),
    *("options:remote_ip=1.1.2.92", "options:key=456", "ofport_request=3"),
    *("--", "add-port", "int-br", "t3", "--", "set", "Interface", "t3", "type=vxlan"),
    *("options:remote_ip=1.1.2.93", "options:out_key=flow", "options:csum=true"),
    "ofport_request=4",
    *("--", "add-port", "int-br", "t4", "--", "set", "Interface", "t4", "type=geneve"),
    *("options:remote_ip=flow", "options:key=123", "ofport_request=5"),
]

#: The datapath flow the push-pop test traces from int-br (in_port(2) is int-br's own port).
FROM_INT_BR = (
    "in_port(2),eth(src=f8:bc:12:44:34:b6,dst=aa:55:aa:55:00:00),eth_type(0x0800),"
    "ipv4(src=1.1.3.88,dst=1.1.3.112,proto=47,tos=0,ttl=64,frag=no)"
)
#: An outer packet for us on p0; the protocol part follows.
TO_US = (
    "in_port(1),eth(src=f8:bc:12:44:34:b6,dst=aa:55:aa:55:00:00),eth_type(0x0800),"
    "ipv4(src={src},dst=1.1.2.88,proto={proto},tos=0,ttl=64,frag=no){l4}"
)

# The frames of tunnel-push-pop.at, as it gives them to netdev-dummy/receive.
#: GRE, key 0x1c8, to 1.1.2.88, carrying a 98-byte ICMP echo reply.
GRE_FRAME = (
    "aa55aa550000001b213cab6408004500007e79464000402fba550101025c0101025820006558000001c8"
    "fe71d883724fbeb6f4e1494a080045000054ba200000400184861e0000011e00000200004227e754"
    "00030af3195500000000f265010000000000101112131415161718191a1b1c1d1e1f202122232425"
    "262728292a2b2c2d2e2f3031323334353637"
)
#: An L3 GRE frame whose outer IPv4 checksum is wrong (ba60 for ba63).
BAD_IP_CSUM_FRAME = (
    "aa55aa550000001b213cab6408004500007079464000402fba600101025c0101025820000800000001c8"
    "45000054ba200000400184861e0000011e00000200004227e75400030af3195500000000f2650100"
    "00000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233"
    "34353637"
)
INNER = bytes.fromhex(GRE_FRAME)[42:]

ARP_REQUEST_92 = (
    "ffffffffffffaa55aa55000008060001080006040001aa55aa550000010102580000000000000101025c"
)
ARP_REQUEST_93 = (
    "ffffffffffffaa55aa55000008060001080006040001aa55aa550000010102580000000000000101025d"
)


def appctl(rundir: Path, *args: str) -> str:
    return ok("appctl", rundir, *args)


def vsctl(rundir: Path, *args: str) -> str:
    return ok("vsctl", rundir, "--timeout=20", *args)


def ofctl(rundir: Path, *args: str, stdin: str | None = None) -> str:
    return ok("ofctl", rundir, *args, stdin=stdin)


def datapath_actions(rundir: Path, flow: str) -> str:
    """The ``Datapath actions:`` line of ``ofproto/trace ovs-dummy FLOW``."""
    lines = appctl(rundir, "ofproto/trace", "ovs-dummy", flow).splitlines()
    found = [line for line in lines if line.startswith("Datapath actions: ")]
    assert len(found) == 1, lines
    return found[0]


def counter(rundir: Path, name: str) -> int:
    return int(appctl(rundir, "coverage/read-counter", name))


def neighbours(rundir: Path) -> list[str]:
    """``tnl/neigh/show`` without its two heading lines, sorted (as the test pipes it)."""
    return sorted(appctl(rundir, "tnl/neigh/show").splitlines()[2:])


def neigh_line(ip: str, mac: str, bridge: str) -> str:
    return f"{ip:<46}{mac}   {bridge}"


def arp_reply(sip: str, sha: str, tip: str = "1.1.2.88", vlan: int | None = None) -> str:
    """An ARP reply in tunnel-push-pop.at's datapath flow syntax."""
    arp = f"eth_type(0x0806),arp(sip={sip},tip={tip},op=2,sha={sha},tha=00:00:00:00:00:00)"
    if vlan is not None:
        arp = f"eth_type(0x8100),vlan(vid={vlan},pcp=7),encap({arp})"
    return f"recirc_id(0),in_port(1),eth(src={sha},dst=ff:ff:ff:ff:ff:ff),{arp}"


def vxlan_push(dst_mac: str, dst_ip: str, vni: int, csum: int = 0) -> str:
    return (
        "tnl_push(tnl_port(4789),header(size=50,type=4,"
        f"eth(dst={dst_mac},src=aa:55:aa:55:00:00,dl_type=0x0800),"
        f"ipv4(src=1.1.2.88,dst={dst_ip},proto=17,tos=0,ttl=64,frag=0x4000),"
        f"udp(src=0,dst=4789,csum={csum:#x}),vxlan(flags=0x8000000,vni={vni:#x})),"
        "out_port(100)),1"
    )


def gre_push(dst_mac: str, dst_ip: str, key: int) -> str:
    return (
        "tnl_push(tnl_port(3),header(size=42,type=3,"
        f"eth(dst={dst_mac},src=aa:55:aa:55:00:00,dl_type=0x0800),"
        f"ipv4(src=1.1.2.88,dst={dst_ip},proto=47,tos=0,ttl=64,frag=0x4000),"
        f"gre((flags=0x2000,proto=0x6558),key={key:#x})),out_port(100)),1"
    )


# -- frames built with scapy: the outer headers tunnel-push-pop.at has no frame for ------


def _outer(proto: int, tos: int = 0) -> IP:
    return IP(src="1.1.2.92", dst="1.1.2.88", flags="DF", proto=proto, tos=tos)


def _eth() -> Ether:
    return Ether(src="00:1b:21:3c:ab:64", dst="aa:55:aa:55:00:00")


def udp_frame(dport: int, payload: bytes, csum: int = 0) -> bytes:
    """An outer UDP packet for us from 1.1.2.92 (lengths right, UDP checksum as given)."""
    return bytes(_eth() / _outer(17) / UDP(sport=51283, dport=dport, chksum=csum) / payload)


def vxlan_header(vni: int = 123, flags: int = 0x08) -> bytes:
    return bytes([flags, 0, 0, 0]) + struct.pack("!I", vni << 8)


def geneve_header(
    vni: int = 123, options: bytes = b"", critical: bool = False, ver: int = 0
) -> bytes:
    first = ver << 6 | len(options) // 4
    return (
        bytes([first, 0x40 if critical else 0, 0x65, 0x58]) + struct.pack("!I", vni << 8) + options
    )


def gre_frame(flags: int, protocol: int, fields: bytes, payload: bytes, tos: int = 0) -> bytes:
    """An outer GRE packet for us; ``fields`` are the optional words after the base header."""
    gre = struct.pack("!HH", flags, protocol) + fields
    return bytes(_eth() / _outer(47, tos) / (gre + payload))


VXLAN_FRAME = udp_frame(4789, vxlan_header() + INNER)
GENEVE_FRAME = udp_frame(6081, geneve_header() + INNER)
_OPTION = b"\xff\xff\x80\x01\x00\x00\x00\x0a"  # class 0xffff, type 0x80, 4 bytes of data

#: Outer headers the datapath must refuse, and the coverage counter each one moves.
MALFORMED = {
    "bad IPv4 checksum": (bytes.fromhex(BAD_IP_CSUM_FRAME), "datapath_drop_tunnel_pop_error"),
    "IPv4 options": (
        bytes(
            _eth()
            / IP(src="1.1.2.92", dst="1.1.2.88", options=[b"\x01\x01\x01\x00"])
            / UDP(sport=51283, dport=4789, chksum=0)
            / (vxlan_header() + INNER)
        ),
        "datapath_drop_tunnel_pop_error",
    ),
    "bad UDP checksum": (
        udp_frame(4789, vxlan_header() + INNER, csum=0x1234),
        "datapath_drop_tunnel_pop_error",
    ),
    "VXLAN without the I flag": (
        udp_frame(4789, vxlan_header(flags=0) + INNER),
        "datapath_drop_tunnel_pop_error",
    ),
    "VXLAN with a flag besides I": (
        udp_frame(4789, vxlan_header(flags=0x0C) + INNER),
        "datapath_drop_tunnel_pop_error",
    ),
    "VXLAN header cut short": (
        udp_frame(4789, vxlan_header()[:5]),
        "datapath_drop_tunnel_pop_error",
    ),
    "Geneve header cut short": (
        udp_frame(6081, geneve_header()[:6]),
        "datapath_drop_tunnel_pop_error",
    ),
    "Geneve options longer than the packet": (
        udp_frame(6081, geneve_header(options=_OPTION)[:12]),
        "datapath_drop_tunnel_pop_error",
    ),
    "Geneve version 1": (
        udp_frame(6081, geneve_header(ver=1) + INNER),
        "datapath_drop_tunnel_pop_error",
    ),
    "GRE key cut short": (
        gre_frame(0x2000, 0x6558, b"\x00\x00", b""),
        "datapath_drop_tunnel_pop_error",
    ),
    "GRE with the routing bit": (
        gre_frame(0x6000, 0x6558, struct.pack("!I", 456), INNER),
        "datapath_drop_tunnel_pop_error",
    ),
    "GRE version 1": (
        gre_frame(0x2001, 0x6558, struct.pack("!I", 456), INNER),
        "datapath_drop_tunnel_pop_error",
    ),
    "GRE with a bad checksum": (
        gre_frame(0xA000, 0x6558, struct.pack("!HHI", 0x1234, 0, 456), INNER),
        "datapath_drop_tunnel_pop_error",
    ),
    "VXLAN with nothing inside": (
        udp_frame(4789, vxlan_header()),
        "datapath_drop_rx_invalid_packet",
    ),
    "GRE with nothing inside": (
        gre_frame(0x2000, 0x6558, struct.pack("!I", 456), b""),
        "datapath_drop_rx_invalid_packet",
    ),
    "Geneve with an unknown critical option": (
        udp_frame(6081, geneve_header(options=_OPTION, critical=True) + INNER),
        "drop_action_invalid_tunnel_metadata",
    ),
    "VXLAN with a VNI no port has": (
        udp_frame(4789, vxlan_header(vni=124) + INNER),
        "datapath_drop_upcall_error",
    ),
    "GRE carrying an IP packet (for a legacy_l3 port)": (
        gre_frame(0x2000, 0x0800, struct.pack("!I", 456), INNER[14:]),
        "datapath_drop_upcall_error",
    ),
}


# -- tunnel_push_pop - action -------------------------------------------------------------


@pytest.fixture(scope="module")
def push_pop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test's switch, up to its first check: bridges, tunnels, address, routes.

    The tests below replay the rest in Open vSwitch's order and share this
    switch; each sets up the neighbours it needs, so that most run alone too.
    """
    rundir = tmp_path_factory.mktemp("push-pop")
    with running_daemon(rundir, NO_KERNEL):
        vsctl(rundir, *START, *P0)
        vsctl(rundir, "add-br", "int-br", "--", "set", "bridge", "int-br", "datapath_type=dummy")
        vsctl(rundir, *TUNNELS)
        # First the address on br0's own port, then routes through it.
        assert appctl(rundir, "netdev-dummy/ip4addr", "br0", "1.1.2.88/24") == "OK\n"
        assert appctl(rundir, "netdev-dummy/ip6addr", "br0", "2001:cafe::88/24") == "OK\n"
        assert appctl(rundir, "ovs/route/add", "1.1.2.92/24", "br0") == "OK\n"
        assert appctl(rundir, "ovs/route/add", "1.1.2.92/24", "br0", "pkt_mark=1234") == "OK\n"
        ofctl(rundir, "add-flow", "br0", "action=normal")
        yield rundir


def learn_endpoints(rundir: Path) -> None:
    """Forget the neighbours, then learn 1.1.2.92 and 1.1.2.93 from ARP replies on p0.

    The replies also teach br0 where their senders are (on p0).
    """
    assert appctl(rundir, "tnl/neigh/flush") == "OK\n"
    # A reply that hits a cached datapath flow is not looked at again (nor
    # in Open vSwitch): these must be upcalls.
    appctl(rundir, "dpctl/del-flows")
    appctl(rundir, "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6"))
    appctl(rundir, "netdev-dummy/receive", "p0", arp_reply("1.1.2.93", "f8:bc:12:44:34:b7"))


def test_dpif_show_puts_each_tunnel_on_its_shared_datapath_port(push_pop: Path) -> None:
    assert appctl(push_pop, "dpif/show") == (
        "dummy@ovs-dummy: hit:0 missed:0\n"
        "  br0:\n"
        "    br0 65534/100: (dummy-internal)\n"
        "    p0 1/1: (dummy)\n"
        "  int-br:\n"
        "    int-br 65534/2: (dummy-internal)\n"
        "    t1 3/3: (gre: key=456, remote_ip=1.1.2.92)\n"
        "    t2 2/4789: (vxlan: key=123, remote_ip=1.1.2.92)\n"
        "    t3 4/4789: (vxlan: csum=true, out_key=flow, remote_ip=1.1.2.93)\n"
        "    t4 5/6081: (geneve: key=123, remote_ip=flow)\n"
    )


def test_the_routes_go_through_the_bridges_address(push_pop: Path) -> None:
    assert appctl(push_pop, "ovs/route/show") == (
        "Route Table:\n"
        "User: 1.1.2.0/24 dev br0 SRC 1.1.2.88\n"
        "User: 1.1.2.0/24 MARK 1234 dev br0 SRC 1.1.2.88\n"
    )


@pytest.fixture
def p0_pcap(push_pop: Path, tmp_path: Path) -> Iterator[Path]:
    """p0 records what it sends and receives in a pcap file, for one test."""
    pcap = tmp_path / "p0.pcap"
    vsctl(push_pop, "--", "set", "Interface", "p0", f"options:pcap={pcap}")
    yield pcap
    vsctl(push_pop, "--", "remove", "Interface", "p0", "options", "pcap")


def test_a_neighbour_miss_sends_arp_requests_out_of_the_underlay(
    push_pop: Path, p0_pcap: Path
) -> None:
    """int-br floods to every tunnel; no neighbour is known, so ARP requests leave by p0."""
    assert appctl(push_pop, "tnl/neigh/flush") == "OK\n"
    pcap = p0_pcap
    trace = appctl(
        push_pop,
        "ofproto/trace",
        "ovs-dummy",
        "in_port(2),eth(src=aa:55:aa:55:00:00,dst=f8:bc:12:ff:ff:ff),eth_type(0x0800),"
        "ipv4(src=1.1.3.92,dst=1.1.3.88,proto=1,tos=0,ttl=64,frag=no),icmp(type=0,code=0)",
    )
    assert "     -> neighbor cache miss for 1.1.2.92 on bridge br0, sending ARP request" in trace
    assert "     -> neighbor cache miss for 1.1.2.93 on bridge br0, sending ARP request" in trace
    # t4 takes its destination from the flow, which has none.
    assert "     >> Not tunneling to our own address" in trace
    assert trace.endswith("Datapath actions: drop\n")
    appctl(
        push_pop,
        "netdev-dummy/receive",
        "int-br",
        "in_port(2),eth(src=aa:55:aa:55:00:00,dst=f8:bc:12:ff:ff:ff),eth_type(0x0800),"
        "ipv4(src=1.1.3.92,dst=1.1.3.88,proto=1,tos=0,ttl=64,frag=no),icmp(type=0,code=0)",
    )
    sent = {bytes(frame).hex() for frame in rdpcap(str(pcap))}
    assert ARP_REQUEST_92 in sent
    assert ARP_REQUEST_93 in sent


def test_arp_replies_for_us_fill_the_neighbour_cache(push_pop: Path) -> None:
    assert appctl(push_pop, "tnl/neigh/flush") == "OK\n"
    appctl(push_pop, "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:c8"))
    appctl(push_pop, "time/warp", "1000")
    assert neighbours(push_pop) == [neigh_line("1.1.2.92", "f8:bc:12:44:34:c8", "br0")]
    # A reply for another address changes nothing.
    appctl(
        push_pop,
        "netdev-dummy/receive",
        "p0",
        arp_reply("1.1.2.92", "f8:bc:12:44:34:b8", tip="1.1.2.90"),
    )
    appctl(push_pop, "time/warp", "1000")
    assert neighbours(push_pop) == [neigh_line("1.1.2.92", "f8:bc:12:44:34:c8", "br0")]


def test_an_arp_reply_on_another_vlan_is_ignored(push_pop: Path) -> None:
    assert appctl(push_pop, "tnl/neigh/flush") == "OK\n"
    # The same reply went through before: its cached flow would not snoop again.
    appctl(push_pop, "dpctl/del-flows")
    appctl(push_pop, "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:c8"))
    vsctl(push_pop, "set", "port", "br0", "tag=10")
    appctl(
        push_pop, "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6", vlan=99)
    )
    appctl(push_pop, "time/warp", "1000")
    assert neighbours(push_pop) == [neigh_line("1.1.2.92", "f8:bc:12:44:34:c8", "br0")]


def test_an_arp_reply_on_the_bridge_ports_vlan_is_learned(push_pop: Path) -> None:
    vsctl(push_pop, "set", "port", "br0", "tag=10")
    appctl(
        push_pop, "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6", vlan=10)
    )
    appctl(push_pop, "time/warp", "1000")
    assert neighbours(push_pop) == [neigh_line("1.1.2.92", "f8:bc:12:44:34:b6", "br0")]


def test_an_arp_reply_in_the_overlay_is_not_learned(push_pop: Path) -> None:
    vsctl(push_pop, "set", "port", "br0", "tag=0")
    learn_endpoints(push_pop)
    vsctl(
        push_pop,
        *("add-port", "int-br", "p1", "--", "set", "interface", "p1", "type=dummy"),
        *("ofport_request=200", "other-config:hwaddr=aa:55:aa:55:00:99"),
    )
    reply = arp_reply("1.1.2.92", "f8:bc:12:44:34:c8").replace("in_port(1)", "in_port(200)")
    appctl(push_pop, "netdev-dummy/receive", "p1", reply)
    appctl(push_pop, "time/warp", "1000")
    assert neighbours(push_pop) == [
        neigh_line("1.1.2.92", "f8:bc:12:44:34:b6", "br0"),
        neigh_line("1.1.2.93", "f8:bc:12:44:34:b7", "br0"),
    ]


def test_flush_then_learn_both_remote_endpoints(push_pop: Path) -> None:
    vsctl(push_pop, "set", "port", "br0", "tag=0")
    assert appctl(push_pop, "tnl/neigh/flush") == "OK\n"
    assert neighbours(push_pop) == []
    appctl(push_pop, "dpctl/del-flows")
    appctl(push_pop, "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6"))
    appctl(push_pop, "netdev-dummy/receive", "p0", arp_reply("1.1.2.93", "f8:bc:12:44:34:b7"))
    appctl(push_pop, "time/warp", "1000")
    assert neighbours(push_pop) == [
        neigh_line("1.1.2.92", "f8:bc:12:44:34:b6", "br0"),
        neigh_line("1.1.2.93", "f8:bc:12:44:34:b7", "br0"),
    ]


def test_tnl_ports_show_lists_what_we_listen_on(push_pop: Path) -> None:
    assert sorted(appctl(push_pop, "tnl/ports/show").splitlines()) == [
        "Listening ports:",
        "genev_sys_6081 (6081) ref_cnt=1",
        "gre_sys (3) ref_cnt=1",
        "vxlan_sys_4789 (4789) ref_cnt=2",
    ]


@pytest.mark.parametrize(
    ("src", "proto", "l4", "actions"),
    [
        ("1.1.2.92", 17, ",udp(src=51283,dst=4789)", "tnl_pop(4789)"),
        ("1.1.2.92", 47, "", "tnl_pop(3)"),
        ("1.1.2.92", 17, ",udp(src=51283,dst=6081)", "tnl_pop(6081)"),
        # t4's remote_ip=flow takes Geneve from anyone.
        ("1.1.2.96", 17, ",udp(src=51283,dst=6081)", "tnl_pop(6081)"),
        # Not a port we listen on: the packet is br0's, NORMAL sends it there.
        ("1.1.2.92", 17, ",udp(src=51283,dst=4790)", "100"),
    ],
    ids=["vxlan", "gre", "geneve", "geneve-from-anyone", "other-udp-port"],
)
def test_a_tunnel_packet_for_our_address_is_popped(
    push_pop: Path, src: str, proto: int, l4: str, actions: str
) -> None:
    flow = TO_US.format(src=src, proto=proto, l4=l4)
    assert datapath_actions(push_pop, flow) == f"Datapath actions: {actions}"


def test_the_megaflow_of_another_udp_port_matches_only_the_bits_that_tell_it_apart(
    push_pop: Path,
) -> None:
    """4790 differs from 4789 in its last two bits: fifteen bits decide (the ports trie)."""
    flow = TO_US.format(src="1.1.2.92", proto=17, l4=",udp(src=51283,dst=4790)")
    trace = appctl(push_pop, "ofproto/trace", "ovs-dummy", flow)
    assert (
        "Megaflow: recirc_id=0,eth,udp,in_port=1,dl_src=f8:bc:12:44:34:b6,"
        "dl_dst=aa:55:aa:55:00:00,nw_dst=1.1.2.88,nw_frag=no,tp_dst=0x12b6/0xfffe\n"
    ) in trace


@pytest.mark.parametrize(
    ("flow_actions", "actions"),
    [
        ("action=2", vxlan_push("f8:bc:12:44:34:b6", "1.1.2.92", 0x7B)),
        (
            "actions=set_tunnel:124,4",
            vxlan_push("f8:bc:12:44:34:b7", "1.1.2.93", 0x7C, csum=0xFFFF),
        ),
        ("action=3", gre_push("f8:bc:12:44:34:b6", "1.1.2.92", 0x1C8)),
        (
            "actions=set_field:1.1.2.92->tun_dst,5",
            "tnl_push(tnl_port(6081),header(size=50,type=5,"
            "eth(dst=f8:bc:12:44:34:b6,src=aa:55:aa:55:00:00,dl_type=0x0800),"
            "ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),"
            "udp(src=0,dst=6081,csum=0x0),geneve(vni=0x7b)),out_port(100)),1",
        ),
        # Not the last output: the push works on a copy.
        (
            "action=2,3",
            f"clone({vxlan_push('f8:bc:12:44:34:b6', '1.1.2.92', 0x7B)}),"
            + gre_push("f8:bc:12:44:34:b6", "1.1.2.92", 0x1C8),
        ),
    ],
    ids=["vxlan", "vxlan-key-from-flow-and-csum", "gre", "geneve-remote-from-flow", "two"],
)
def test_output_to_a_tunnel_pushes_its_header(
    push_pop: Path, flow_actions: str, actions: str
) -> None:
    learn_endpoints(push_pop)
    ofctl(push_pop, "add-flow", "int-br", flow_actions)
    assert datapath_actions(push_pop, FROM_INT_BR) == f"Datapath actions: {actions}"


def test_the_trace_says_where_the_tunnel_goes(push_pop: Path) -> None:
    learn_endpoints(push_pop)
    ofctl(push_pop, "add-flow", "int-br", "action=2")
    trace = appctl(push_pop, "ofproto/trace", "ovs-dummy", FROM_INT_BR)
    assert (
        "    output:2\n"
        "     -> output to native tunnel\n"
        "     -> tunneling to 1.1.2.92 via br0\n"
        "     -> tunneling from aa:55:aa:55:00:00 1.1.2.88 to f8:bc:12:44:34:b6 1.1.2.92\n"
        "\n"
        'bridge("br0")\n'
        "-------------\n"
        " 0. priority 32768\n"
        "    NORMAL\n"
        "     -> forwarding to learned port\n"
    ) in trace


def test_decapsulated_gre_frames_arrive_on_the_gre_port(push_pop: Path) -> None:
    ofctl(push_pop, "del-flows", "int-br")
    for _ in range(3):
        appctl(push_pop, "netdev-dummy/receive", "p0", GRE_FRAME)
    appctl(push_pop, "time/warp", "1000")
    lines = ofctl(push_pop, "dump-ports", "int-br").splitlines()
    assert "  port  3: rx pkts=3, bytes=294, drop=?, errs=?, frame=?, over=?, crc=?" in lines
    # The outer header became the popped packets' tunnel metadata; the first
    # packet made the flow (an upcall), the other two hit it.
    assert (
        "tunnel(tun_id=0x1c8,src=1.1.2.92,dst=1.1.2.88,flags(-df-csum+key)),recirc_id(0),"
        "in_port(3),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no), packets:2, "
        "bytes:196, "
    ) in appctl(push_pop, "dpctl/dump-flows")


@pytest.mark.parametrize(
    ("frame", "port"),
    [(VXLAN_FRAME, "t2"), (GENEVE_FRAME, "t4")],
    ids=["vxlan", "geneve"],
)
def test_decapsulated_udp_tunnel_frames_arrive_on_their_port(
    push_pop: Path, frame: bytes, port: str
) -> None:
    before = port_counts(push_pop, "int-br", port)
    appctl(push_pop, "netdev-dummy/receive", "p0", frame.hex())
    after = port_counts(push_pop, "int-br", port)
    assert (after[0] - before[0], after[1] - before[1]) == (1, len(INNER))


def _tunnel_rx(rundir: Path) -> int:
    return sum(port_counts(rundir, "int-br", name)[0] for name in ("t1", "t2", "t3", "t4"))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_bad_outer_header_is_dropped_and_counted(push_pop: Path, case: str) -> None:
    frame, name = MALFORMED[case]
    before, rx_before = counter(push_pop, name), _tunnel_rx(push_pop)
    appctl(push_pop, "netdev-dummy/receive", "p0", frame.hex())
    assert counter(push_pop, name) == before + 1
    assert _tunnel_rx(push_pop) == rx_before


def test_a_congestion_mark_on_a_packet_that_cannot_carry_it_drops_it(push_pop: Path) -> None:
    """RFC 6040: CE outside, Not-ECT inside (the ICMP packet has ECN 0)."""
    frame = gre_frame(0x2000, 0x6558, struct.pack("!I", 456), INNER, tos=0x03)
    before = counter(push_pop, "drop_action_congestion")
    rx_before = port_counts(push_pop, "int-br", "t1")[0]
    appctl(push_pop, "netdev-dummy/receive", "p0", frame.hex())
    assert counter(push_pop, "drop_action_congestion") == before + 1
    # The port received it; translation dropped it.
    assert port_counts(push_pop, "int-br", "t1")[0] == rx_before + 1


def test_tunnel_ports_leave_and_change_datapath_port(push_pop: Path) -> None:
    vsctl(
        push_pop,
        *("del-port", "int-br", "t3", "--", "set", "Interface", "t1", "type=vxlan"),
        *("--", "set", "Interface", "t2", "options:dst_port=4790"),
    )
    assert sorted(appctl(push_pop, "tnl/ports/show").splitlines()) == [
        "Listening ports:",
        "genev_sys_6081 (6081) ref_cnt=1",
        "vxlan_sys_4789 (4789) ref_cnt=1",
        "vxlan_sys_4790 (4790) ref_cnt=1",
    ]
    vsctl(push_pop, "del-port", "int-br", "t1", "--", "del-port", "int-br", "t2")
    vsctl(push_pop, "del-port", "int-br", "t4")
    assert appctl(push_pop, "tnl/ports/show") == "Listening ports:\n"


# -- fuzzing the outer header -----------------------------------------------------------------


def _outer_frames() -> st.SearchStrategy[bytes]:
    """Frames for us on a tunnel protocol whose headers after IPv4's are random.

    The IPv4 header is mostly right (so that the packet reaches ``tnl_pop``),
    with a random ToS, flags and sometimes a wrong length or checksum; what
    follows is random bytes behind a random choice of UDP port or GRE.
    """

    @st.composite
    def frames(draw: st.DrawFn) -> bytes:
        proto, dport = draw(st.sampled_from([(17, 4789), (17, 6081), (47, 0)]))
        body = draw(st.binary(max_size=120))
        if proto == 17:
            csum = draw(st.sampled_from([0, 0xFFFF, draw(st.integers(0, 0xFFFF))]))
            l4: bytes = bytes(UDP(sport=draw(st.integers(0, 0xFFFF)), dport=dport, chksum=csum))
            l4 = l4[:4] + struct.pack("!H", 8 + len(body)) + l4[6:]
        else:
            l4 = b""
        ip = IP(
            src="1.1.2.92",
            dst="1.1.2.88",
            proto=proto,
            tos=draw(st.integers(0, 255)),
            flags=draw(st.integers(0, 7)),
        )
        packet = bytearray(bytes(_eth() / ip / (l4 + body)))
        if draw(st.booleans()):
            # Break a length or the checksum now and then.
            offset = draw(st.sampled_from([16, 17, 24, 25]))
            packet[offset] = draw(st.integers(0, 255))
        return bytes(packet[: draw(st.integers(14, len(packet)))])

    return frames()


def _pop_datapath() -> Datapath:
    """A datapath whose every miss pops the frame as a tunnel listening on 4789/6081/GRE."""

    mask = FIELDS["in_port"].mask | FIELDS["nw_proto"].mask | FIELDS["tp_dst"].mask

    def upcall(key: int, frame: bytes, now: float) -> UpcallResult:
        if FIELDS["in_port"].get(key) == 1:
            proto = FIELDS["nw_proto"].get(key)
            tp_dst = FIELDS["tp_dst"].get(key)
            odp = 3 if proto == 47 else tp_dst if tp_dst in (4789, 6081) else None
            if odp is not None:
                return UpcallResult((OdpTnlPop(odp),), mask)
        return UpcallResult((OdpOutput(9),), mask)

    dp = Datapath(upcall)
    dp.tunnels.kinds.update({4789: ("vxlan", 4789), 6081: ("geneve", 6081), 3: ("gre", 0)})
    return dp


@settings(max_examples=300, deadline=None)
@given(_outer_frames())
def test_random_outer_headers_raise_nothing_in_the_datapath(frame: bytes) -> None:
    dp = _pop_datapath()
    out = dp.receive(1, [frame], 0.0)
    assert set(out) <= {9}


@settings(max_examples=40, deadline=None)
@given(frame=_outer_frames())
def test_random_outer_headers_raise_nothing_in_the_daemon(
    fuzzed_switch: Path, frame: bytes
) -> None:
    socket_path = str(fuzzed_switch / "pvs-vswitchd.ctl")
    done, reply = transact(
        socket_path, "pvs-vswitchd", "netdev-dummy/receive", ["p0", frame.hex()], None
    )
    assert done, reply
    done, reply = transact(socket_path, "pvs-vswitchd", "version", [], None)
    assert done, reply


@pytest.fixture(scope="module")
def fuzzed_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The push-pop switch with a known neighbour, for frames sent fast (no subprocess each)."""
    rundir = tmp_path_factory.mktemp("fuzz")
    with running_daemon(rundir, NO_KERNEL):
        vsctl(rundir, *START, *P0)
        vsctl(rundir, "add-br", "int-br", "--", "set", "bridge", "int-br", "datapath_type=dummy")
        vsctl(rundir, *TUNNELS)
        appctl(rundir, "netdev-dummy/ip4addr", "br0", "1.1.2.88/24")
        appctl(rundir, "ovs/route/add", "1.1.2.92/24", "br0")
        ofctl(rundir, "add-flow", "br0", "action=normal")
        ofctl(rundir, "add-flow", "int-br", "action=2,3,5")
        appctl(rundir, "tnl/neigh/set", "br0", "1.1.2.92", "f8:bc:12:44:34:b6")
        yield rundir
        log = tool("appctl", rundir, "version")
        assert log.returncode == 0, log.stderr


# -- tests/tunnel.at ---------------------------------------------------------------------------

#: The datapath flow tunnel.at traces, after its tunnel() part.
TCP_FLOW = (
    "eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=192.168.0.1,dst=192.168.0.2,proto=6,tos={tos},ttl={ttl},frag=no),tcp(src=8,dst=9)"
)
ARP_FLOW = (
    "eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0806),"
    "arp(sip=1.2.3.4,tip=5.6.7.8,op=1,sha=00:0f:10:11:12:13,tha=00:14:15:16:17:18)"
)


def received(tunnel: str, tos: int = 0, ttl: int = 64) -> str:
    """A packet that came out of a tunnel, on datapath port 1 (gre_sys)."""
    return f"tunnel({tunnel}),in_port(1)," + TCP_FLOW.format(tos=tos, ttl=ttl)


def underlay(rundir: Path, address: str, remote: str, mac: str) -> None:
    """br1 with p7, ``address`` on br1, a route to its /24 and a known neighbour."""
    vsctl(
        rundir,
        *("add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"),
        "other-config:hwaddr=aa:55:aa:55:00:01",
        *("--", "add-port", "br1", "p7", "--", "set", "Interface", "p7", "type=dummy"),
        "ofport_request=7",
    )
    assert appctl(rundir, "netdev-dummy/ip4addr", "br1", f"{address}/24") == "OK\n"
    assert appctl(rundir, "ovs/route/add", f"{address}/24", "br1") == "OK\n"
    assert appctl(rundir, "tnl/neigh/set", "br1", remote, mac) == "OK\n"


def gre_push_br1(
    dst: str, key: int | None, mac: str, tos: int = 0, ttl: int = 64, src: str = "1.1.1.2"
) -> str:
    flags, size, key_text = (0x2000, 42, f",key={key:#x}") if key is not None else (0, 38, "")
    return (
        f"tnl_push(tnl_port(1),header(size={size},type=3,"
        f"eth(dst={mac},src=aa:55:aa:55:00:01,dl_type=0x0800),"
        f"ipv4(src={src},dst={dst},proto=47,tos={tos:#x},ttl={ttl},frag=0x4000),"
        f"gre((flags={flags:#x},proto=0x6558){key_text})),out_port(101)),7"
    ).replace("tos=0x0,", "tos=0,")


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Path]:
    with running_daemon(tmp_path, NO_KERNEL) as rundir:
        vsctl(rundir, *START)
        yield rundir


def test_tunnel_key(switch: Path) -> None:
    """``tunnel - key``: key, in_key/out_key and out_key alone, three GRE ports to one place."""
    vsctl(
        switch,
        *("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=gre"),
        *("options:key=1", "options:remote_ip=1.1.1.1", "ofport_request=1"),
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=gre"),
        *("options:in_key=2", "options:out_key=3", "options:remote_ip=1.1.1.1"),
        "ofport_request=2",
        *("--", "add-port", "br0", "p3", "--", "set", "Interface", "p3", "type=gre"),
        *("options:out_key=5", "options:remote_ip=1.1.1.1", "ofport_request=3"),
    )
    ofctl(switch, "add-flow", "br0", "actions=IN_PORT,output:1,output:2,output:3")
    assert appctl(switch, "dpif/show").splitlines()[2:] == [
        "    br0 65534/100: (dummy-internal)",
        "    p1 1/1: (gre: key=1, remote_ip=1.1.1.1)",
        "    p2 2/1: (gre: in_key=2, out_key=3, remote_ip=1.1.1.1)",
        "    p3 3/1: (gre: out_key=5, remote_ip=1.1.1.1)",
    ]
    key_1 = received("tun_id=0x1,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)")
    # No route yet: every output fails.
    trace = appctl(switch, "ofproto/trace", "ovs-dummy", key_1)
    assert trace.count("     >> native tunnel routing failed\n") == 3
    assert trace.endswith("Datapath actions: drop\n")

    underlay(switch, "1.1.1.2", "1.1.1.1", "aa:bb:cc:00:00:01")
    mac = "aa:bb:cc:00:00:01"

    def pushes(*keys: int) -> str:
        texts = [gre_push_br1("1.1.1.1", key, mac) for key in keys]
        return "Datapath actions: " + ",".join(
            [*(f"clone({text})" for text in texts[:-1]), texts[-1]]
        )

    assert datapath_actions(switch, key_1) == pushes(1, 3, 5)
    key_2 = received("tun_id=0x2,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)")
    assert datapath_actions(switch, key_2) == pushes(3, 1, 5)
    no_key = received("src=1.1.1.1,dst=2.2.2.2,ttl=64,flags()")
    assert datapath_actions(switch, no_key) == pushes(5, 1, 3)
    # A key no port receives.
    refused = tool(
        "appctl",
        switch,
        "ofproto/trace",
        "ovs-dummy",
        received("tun_id=0xf,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)"),
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == "no OpenFlow tunnel port for this packet"


def test_tunnel_key_match(switch: Path) -> None:
    """``tunnel - key match``: tun_id in flows, set_tunnel, resubmit."""
    vsctl(
        switch,
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
    ofctl(
        switch,
        "add-flows",
        "br0",
        "-",
        stdin=(
            "tun_id=2,actions=output:3\n"
            "tun_id=3,actions=output:4,set_tunnel:2,resubmit:99,set_tunnel:4,output:2,"
            "resubmit:99\n"
            "tun_id=4,actions=output:5\n"
        ),
    )
    assert appctl(switch, "dpif/show").splitlines()[2:] == [
        "    br0 65534/100: (dummy-internal)",
        "    p1 1/1: (gre: key=flow, remote_ip=1.1.1.1)",
        "    p2 2/1: (gre: key=3, remote_ip=3.3.3.3)",
        "    p3 3/3: (dummy)",
        "    p4 4/4: (dummy)",
        "    p5 5/5: (dummy)",
    ]
    flag = "ttl=64,flags(key)"
    from_1 = "src=1.1.1.1,dst=2.2.2.2," + flag
    assert datapath_actions(switch, received("tun_id=0x2," + from_1)) == "Datapath actions: 3"
    # Output to p2 fails routing until there is an underlay.
    tun_3 = received("tun_id=0x3," + from_1)
    assert datapath_actions(switch, tun_3) == "Datapath actions: 4,3,5"
    # From p2's own remote: p2 receives it, and does not send it back.
    from_3 = received("tun_id=0x3,src=3.3.3.3,dst=2.2.2.2," + flag)
    assert datapath_actions(switch, from_3) == "Datapath actions: 4,3,5"
    assert datapath_actions(switch, received("tun_id=0x0," + from_1)) == "Datapath actions: drop"
    underlay(switch, "3.3.3.2", "3.3.3.3", "aa:bb:cc:00:00:03")
    push = gre_push_br1("3.3.3.3", 3, "aa:bb:cc:00:00:03", src="3.3.3.2")
    assert datapath_actions(switch, tun_3) == f"Datapath actions: 4,3,clone({push}),5"


def test_tunnel_tos_and_ttl_inheritance(switch: Path) -> None:
    vsctl(
        switch,
        *("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=gre"),
        *("options:remote_ip=1.1.1.1", "options:tos=inherit", "options:ttl=inherit"),
        "ofport_request=1",
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy"),
        "ofport_request=2",
    )
    ofctl(switch, "add-flow", "br0", "actions=output:1")
    assert appctl(switch, "dpif/show").splitlines()[2:] == [
        "    br0 65534/100: (dummy-internal)",
        "    p1 1/1: (gre: remote_ip=1.1.1.1, tos=inherit, ttl=inherit)",
        "    p2 2/2: (dummy)",
    ]
    underlay(switch, "1.1.1.2", "1.1.1.1", "aa:bb:cc:00:00:01")
    mac = "aa:bb:cc:00:00:01"

    def from_p2(tos: int) -> str:
        return "in_port(2)," + TCP_FLOW.format(tos=tos, ttl=128)

    expected = {
        4: gre_push_br1("1.1.1.1", None, mac, tos=0x4, ttl=128),
        # The ECN bits are the inner packet's (RFC 6040)...
        5: gre_push_br1("1.1.1.1", None, mac, tos=0x5, ttl=128),
        # ... except that CE leaves as ECT(0).
        7: gre_push_br1("1.1.1.1", None, mac, tos=0x6, ttl=128),
    }
    for tos, push in expected.items():
        assert datapath_actions(switch, from_p2(tos)) == f"Datapath actions: {push}"
    # Not IP: nothing to inherit, TTL 64.
    assert datapath_actions(switch, "in_port(2)," + ARP_FLOW) == (
        "Datapath actions: " + gre_push_br1("1.1.1.1", None, mac)
    )


ECN_TUNNEL = "src=1.1.1.1,dst=2.2.2.2,tos=0x3,ttl=64,flags()"


@pytest.fixture
def ecn_switch(switch: Path) -> Path:
    vsctl(
        switch,
        *("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=gre"),
        *("options:remote_ip=1.1.1.1", "ofport_request=1"),
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy"),
        "ofport_request=2",
    )
    ofctl(switch, "add-flow", "br0", "actions=2")
    return switch


def test_ecn_decapsulation(ecn_switch: Path) -> None:
    """``tunnel - ECN decapsulation``: the outer CE mark reaches an ECN-capable packet."""
    assert appctl(ecn_switch, "dpif/show").splitlines()[2:] == [
        "    br0 65534/100: (dummy-internal)",
        "    p1 1/1: (gre: remote_ip=1.1.1.1)",
        "    p2 2/2: (dummy)",
    ]
    cases = {
        3: "Datapath actions: 2",  # CE already
        1: "Datapath actions: set(ipv4(tos=0x3/0x3)),2",  # ECT(1)
        2: "Datapath actions: set(ipv4(tos=0x3/0x3)),2",  # ECT(0)
    }
    for tos, actions in cases.items():
        assert datapath_actions(ecn_switch, received(ECN_TUNNEL, tos=tos)) == actions
    # Not IP: no ECN field, nothing to do.
    arp = f"tunnel({ECN_TUNNEL}),in_port(1)," + ARP_FLOW
    assert datapath_actions(ecn_switch, arp) == "Datapath actions: 2"


def test_ecn_decapsulation_drops_a_packet_that_is_not_ecn_capable(ecn_switch: Path) -> None:
    trace = appctl(ecn_switch, "ofproto/trace", "ovs-dummy", received(ECN_TUNNEL, tos=0))
    # Looked up, no action run, no translation error.
    assert trace.splitlines()[2:] == [
        'bridge("br0")',
        "-------------",
        " 0. priority 32768",
        "",
        "Final flow: unchanged",
        "Megaflow: recirc_id=0,eth,ip,tun_id=0,tun_src=1.1.1.1,tun_dst=2.2.2.2,tun_tos=3,"
        "tun_flags=-df-csum-key,in_port=1,nw_ecn=0,nw_frag=no",
        "Datapath actions: drop",
    ]


def test_ecn_decapsulation_megaflows(ecn_switch: Path) -> None:
    for tos in (3, 1):
        trace = appctl(ecn_switch, "ofproto/trace", "ovs-dummy", received(ECN_TUNNEL, tos=tos))
        megaflow = re.search(r"^Megaflow: (.*)$", trace, re.MULTILINE)
        assert megaflow is not None
        assert megaflow[1] == (
            "recirc_id=0,eth,ip,tun_id=0,tun_src=1.1.1.1,tun_dst=2.2.2.2,tun_tos=3,"
            f"tun_flags=-df-csum-key,in_port=1,nw_ecn={tos},nw_frag=no"
        )


def test_ecn_decapsulation_trace_shows_the_packet_before_and_after_the_mark(
    ecn_switch: Path,
) -> None:
    trace = appctl(ecn_switch, "ofproto/trace", "ovs-dummy", received(ECN_TUNNEL, tos=1))
    lines = trace.splitlines()
    assert ",nw_tos=0,nw_ecn=1," in lines[0]
    final = next(line for line in lines if line.startswith("Final flow: "))
    assert ",nw_tos=0,nw_ecn=3," in final
