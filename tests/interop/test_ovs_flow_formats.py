"""Differential tests: our flow text forms against the real Open vSwitch.

Each test asks Open vSwitch (a private sandbox with dummy ports, see
ovs_sandbox.py) and pyvswitch the same question and compares the answers:
how ``ovs-ofctl`` normalises a match, what ``ofproto/trace`` prints as the
``Flow:`` line of a packet given as a datapath key, and which bytes
``netdev-dummy/receive`` injects for a key.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from pyvswitch.flow import extract_key, flow_extract
from pyvswitch.flow.odp_text import compose_packet, format_odp_flow, parse_odp_flow
from pyvswitch.flow.ofp_text import format_flow, format_match, parse_match
from pyvswitch.packet.pcap import read_all
from tests.unit.test_ofp_text import match_texts

if TYPE_CHECKING:
    from tests.interop.ovs_sandbox import OvsSandbox

pytestmark = pytest.mark.ovs

SRC = "50:54:00:00:00:05"
DST = "50:54:00:00:00:07"
OVS_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def ovs_normalised(ovs: OvsSandbox, text: str) -> str:
    out = ovs.ofctl("-F", "nxm", "parse-flow", f"{text},actions=drop").stdout
    line = next(x for x in out.splitlines() if " ADD " in x)
    return line.split(" ADD ", 1)[1].rsplit("actions=", 1)[0].strip()


@pytest.mark.parametrize(
    "text",
    [
        "tcp,in_port=1,nw_src=192.0.2.0/24,tp_dst=80",
        "arp,arp_op=1,arp_spa=192.0.2.1,arp_sha=00:11:22:33:44:55",
        "icmp6,icmp_type=135,nd_target=2001:db8::1,nd_sll=00:00:00:00:00:01",
        "vlan_tci=0x1005/0x1fff,dl_vlan_pcp=3",
        "tcp,tcp_flags=0x12/0xff",
        "ip,nw_frag=not_later",
        "reg0=5,metadata=0x10/0xff,tun_id=7,tun_src=192.0.2.1",
    ],
)
def test_ofctl_normalises_matches_as_we_do(ovs: OvsSandbox, text: str) -> None:
    match, _ = parse_match(text)
    assert format_match(match) == ovs_normalised(ovs, text)


@OVS_SETTINGS
@given(match_texts())
def test_random_matches_normalise_as_in_ovs_ofctl(ovs: OvsSandbox, text: str) -> None:
    match, _ = parse_match(text)
    assert format_match(match) == ovs_normalised(ovs, text)


def ovs_flow_line(ovs: OvsSandbox, odp: str) -> str:
    out = ovs.appctl("ofproto/trace", "ovs-dummy", odp).stdout
    return next(x for x in out.splitlines() if x.startswith("Flow: "))[len("Flow: ") :]


PACKETS = [
    Ether(src=SRC, dst=DST) / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(),
    Ether(src=SRC, dst=DST) / IP(src="192.0.2.1", dst="192.0.2.2", tos=0x25) / TCP(flags="SA"),
    Ether(src=SRC, dst=DST) / Dot1Q(vlan=10, prio=3) / IP() / UDP(sport=1, dport=2),
    Ether(src=SRC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="192.0.2.1", pdst="192.0.2.2", hwsrc=SRC),
    Ether(src=SRC, dst=DST) / IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0x12345) / UDP(),
    Ether(src=SRC, dst=DST) / IPv6(hlim=255) / ICMPv6ND_NS(tgt="2001:db8::2"),
    Ether(src=SRC, dst=DST) / IPv6(hlim=255) / ICMPv6ND_NA(tgt="2001:db8::3"),
    Ether(src=SRC, dst=DST) / IPv6() / ICMPv6EchoRequest(),
    Ether(src=SRC, dst=DST) / IP(flags="MF", frag=20) / UDP(),
    Ether(src=SRC, dst=DST, type=0x1234),
]


@pytest.mark.parametrize("packet", PACKETS, ids=lambda p: p.summary())
def test_trace_flow_line_equals_ours(ovs: OvsSandbox, packet: Ether) -> None:
    key = extract_key(bytes(packet), 1)
    assert format_flow(flow_extract(bytes(packet), 1)) == ovs_flow_line(ovs, format_odp_flow(key))


@st.composite
def random_packets(draw: st.DrawFn) -> bytes:
    """Frames with random field values in every header OVS and we both extract."""
    eth = Ether(src=SRC, dst=DST)
    if draw(st.booleans()):
        eth = eth / Dot1Q(vlan=draw(st.integers(0, 4095)), prio=draw(st.integers(0, 7)))
    kind = draw(st.sampled_from(["ip", "ip6", "arp"]))
    if kind == "arp":
        return bytes(eth / ARP(op=draw(st.integers(1, 2)), psrc="192.0.2.7", pdst="192.0.2.9"))
    l4 = draw(
        st.sampled_from(
            [
                TCP(
                    sport=draw(st.integers(0, 65535)),
                    dport=draw(st.integers(0, 65535)),
                    flags=draw(st.integers(0, 0x1FF)),
                ),
                UDP(sport=draw(st.integers(0, 65535)), dport=draw(st.integers(0, 65535))),
            ]
        )
    )
    if kind == "ip":
        l3 = IP(
            src="198.51.100.1",
            dst="203.0.113.9",
            tos=draw(st.integers(0, 255)),
            ttl=draw(st.integers(0, 255)),
            flags=draw(st.sampled_from([0, 1, 2])),
            frag=draw(st.sampled_from([0, 0, 7])),
        )
    else:
        l3 = IPv6(
            src="2001:db8::1",
            dst="2001:db8::2",
            tc=draw(st.integers(0, 255)),
            fl=draw(st.integers(0, 0xFFFFF)),
            hlim=draw(st.integers(0, 255)),
        )
    return bytes(eth / l3 / l4)


@OVS_SETTINGS
@given(random_packets())
def test_random_packets_trace_as_in_ovs(ovs: OvsSandbox, frame: bytes) -> None:
    flow_line = format_flow(flow_extract(frame, 2))
    assert flow_line == ovs_flow_line(ovs, format_odp_flow(extract_key(frame, 2)))


INJECTED = [
    "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=192.168.0.1,dst=192.168.0.2,proto=6,tos=0,ttl=64,frag=no),tcp(src=8,dst=9),"
    "tcp_flags(0x010)",
    "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x88a8),"
    "vlan(vid=100,pcp=0),encap(eth_type(0x8100),vlan(vid=10,pcp=3),encap(eth_type(0x0800),"
    "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0xfd,ttl=64,frag=no),udp(src=1,dst=2)))",
    "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x86dd),"
    "ipv6(src=2001:db8::1,dst=2001:db8::2,label=0x12345,proto=58,tclass=0x1,hlimit=255,"
    "frag=no),icmpv6(type=136,code=0),nd(target=2001:db8::2,sll=00:00:00:00:00:00,"
    "tll=50:54:00:00:00:05)",
    "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=1,tos=0,ttl=64,frag=first),icmp(type=0,code=0)",
    "in_port(1),eth(src=50:54:00:00:00:05,dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),"
    "arp(sip=192.0.2.1,tip=192.0.2.2,op=2,sha=50:54:00:00:00:05,tha=50:54:00:00:00:07)",
]


def test_injected_packets_are_the_bytes_we_compose(ovs: OvsSandbox) -> None:
    pcap = ovs.dir / "p1-rx.pcap"
    ovs.vsctl("set", "Interface", "p1", f"options:rxq_pcap={pcap}")
    deadline = time.monotonic() + 10
    while not pcap.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    for odp in INJECTED:
        ovs.appctl("netdev-dummy/receive", "p1", odp)
    records: list[bytes] = []
    while time.monotonic() < deadline:
        records = [r.data for r in read_all(pcap.read_bytes())]
        if len(records) >= len(INJECTED):
            break
        time.sleep(0.05)
    ovs.vsctl("remove", "Interface", "p1", "options", "rxq_pcap")
    expected = [compose_packet(parse_odp_flow(odp)[0]) for odp in INJECTED]
    assert [r.hex() for r in records] == [e.hex() for e in expected]


def ovs_extracted_flow_line(ovs: OvsSandbox, frame: bytes, in_port: int) -> str:
    """What OVS's miniflow_extract() makes of ``frame``, as its trace prints it."""
    out = ovs.appctl("ofproto/trace", "br0", f"in_port={in_port}", frame.hex()).stdout
    return next(x for x in out.splitlines() if x.startswith("Flow: "))[len("Flow: ") :]


@st.composite
def damaged_frames(draw: st.DrawFn) -> bytes:
    """Valid frames cut short, or Ethernet headers followed by random bytes."""
    if draw(st.booleans()):
        frame = draw(random_packets())
        return frame[: draw(st.integers(14, len(frame)))]
    etype = draw(st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x0050]))
    return (
        bytes.fromhex("505400000007505400000005")
        + etype.to_bytes(2, "big")
        + draw(st.binary(max_size=90))
    )


@OVS_SETTINGS
@given(damaged_frames())
def test_extraction_of_damaged_frames_matches_ovs(ovs: OvsSandbox, frame: bytes) -> None:
    """Truncated and garbled frames yield the same flow as Open vSwitch's extractor."""
    assert format_flow(flow_extract(frame, 3)) == ovs_extracted_flow_line(ovs, frame, 3)
