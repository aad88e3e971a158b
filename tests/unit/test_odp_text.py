"""The datapath (ODP) text form: printing, parsing, and composing packets from it.

The byte strings below are what Open vSwitch 3.1's ``netdev-dummy/receive``
sent for the same keys (captured on a dummy port's tx_pcap), so a test written
for OVS that injects a key gets the same packet from pyvswitch.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from pyvswitch.flow import FIELDS, Flow, extract_key
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.odp_text import compose_packet, format_odp_flow, parse_odp_flow

ETH = "eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07)"
COUNT64 = bytes(range(64)).hex()

OVS_COMPOSED = [
    (
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=192.168.0.1,dst=192.168.0.2,proto=1,tos=0,"
        "ttl=64,frag=no),icmp(type=8,code=0)",
        "505400000007 505400000005 0800 4500005c 00000000 4001f94d c0a80001 c0a80002 "
        "0800 13fc 00000000" + COUNT64,
    ),
    (
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,tos=0,"
        "ttl=64,frag=no),tcp(src=8,dst=80)",
        "505400000007 505400000005 0800 45000068 00000000 4006668e 0a000001 0a000002 "
        "0008 0050 00000000 00000000 5000 0000 b746 0000" + COUNT64,
    ),
    (
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,tos=0,"
        "ttl=64,frag=no),tcp(src=8,dst=80),tcp_flags(syn)",
        "505400000007 505400000005 0800 45000028 00000000 400666ce 0a000001 0a000002 "
        "0008 0050 00000000 00000000 5002 0000 9b88 0000",
    ),
    (
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,"
        "ttl=64,frag=no),udp(src=8,dst=53)",
        "505400000007 505400000005 0800 4500005c 00000000 4011668f 0a000001 0a000002 "
        "0008 0035 0048 071b" + COUNT64,
    ),
    (
        "in_port(2),eth(src=50:54:00:00:00:05,dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),"
        "arp(sip=192.168.0.1,tip=192.168.0.2,op=1,sha=50:54:00:00:00:05,tha=00:00:00:00:00:00)",
        "ffffffffffff 505400000005 0806 0001 0800 06 04 0001 505400000005 c0a80001 "
        "000000000000 c0a80002",
    ),
    (
        "in_port(1),eth(src=50:54:00:00:00:05,dst=33:33:ff:00:00:02),eth_type(0x86dd),"
        "ipv6(src=fe80::1,dst=ff02::1:ff00:2,label=0,proto=58,tclass=0,hlimit=255,frag=no),"
        "icmpv6(type=135,code=0),nd(target=fe80::2,sll=50:54:00:00:00:05,"
        "tll=00:00:00:00:00:00)",
        "3333ff000002 505400000005 86dd 60000000 0020 3a ff fe800000000000000000000000000001 "
        "ff0200000000000000000001ff000002 87 00 2c3f 00000000 fe800000000000000000000000000002 "
        "01 01 505400000005",
    ),
    (
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,"
        "ttl=64,frag=later)",
        "505400000007 505400000005 0800 45000014 0000 2064 4011 4673 0a000001 0a000002",
    ),
    (
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=47,tos=0,"
        "ttl=64,frag=no)",
        "505400000007 505400000005 0800 45000014 00000000 402f66b9 0a000001 0a000002",
    ),
    (
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=132,tos=0,"
        "ttl=64,frag=no),sctp(src=1,dst=2)",
        "505400000007 505400000005 0800 45000020 00000000 40846658 0a000001 0a000002 "
        "0001 0002 00000000 00000000",
    ),
    (
        f"in_port(1),{ETH},eth_type(0x8100),vlan(vid=10,pcp=3),encap(eth_type(0x0800),"
        "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=8,dst=53))",
        "505400000007 505400000005 8100 600a 0800 4500005c 00000000 4011668f 0a000001 0a000002 "
        "0008 0035 0048 071b" + COUNT64,
    ),
    (f"in_port(1),{ETH}", "505400000007 505400000005 0000"),
]


@pytest.mark.parametrize(("text", "wire"), OVS_COMPOSED, ids=lambda x: x[:12])
def test_composed_packet_is_byte_for_byte_what_ovs_sends(text: str, wire: str) -> None:
    key, _ = parse_odp_flow(text)
    assert compose_packet(key).hex() == wire.replace(" ", "")


@pytest.mark.parametrize(("text", "wire"), OVS_COMPOSED, ids=lambda x: x[:12])
def test_full_key_prints_back_as_written(text: str, wire: str) -> None:
    key, mask = parse_odp_flow(text)
    printed = format_odp_flow(key)
    assert printed == text
    # The key of the composed packet is the key we started from.
    in_port = Flow.from_key(key).in_port
    assert extract_key(compose_packet(key), in_port) == key & mask


@pytest.mark.parametrize(
    "text",
    [
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no)",
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0806)",
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x8100),vlan(vid=10,pcp=3/0x0),"
        "encap(eth_type(0x0800),ipv4(frag=no))",
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),"
        "ipv4(src=10.0.0.3/255.255.255.254,proto=6,frag=no)",
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),"
        "ipv4(src=10.0.0.1,proto=1,frag=no),icmp(type=8)",
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0806),arp(op=1)",
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=6,frag=no),"
        "tcp(dst=81/0xfff0),tcp_flags(-syn+ack)",
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth(dst=50:54:00:00:00:07/01:00:00:00:00:00),"
        "eth_type(0x86dd),ipv6(label=0x12345,proto=17,tclass=0/0xfc,frag=no)",
        "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth(dst=50:54:00:00:00:07/01:00:00:00:00:00),"
        "eth_type(0x0800),ipv4(dst=11.0.0.2/255.0.0.0,proto=47,tos=0/0x3,ttl=64,frag=no)",
        "recirc_id(0),in_port(3),packet_type(ns=0,id=0),eth(src=50:54:00:00:00:09,"
        "dst=50:54:00:00:00:0a),eth_type(0x0800),ipv4(frag=no)",
    ],
)
def test_megaflows_print_as_dpctl_dump_flows(text: str) -> None:
    """Megaflow lines from Open vSwitch 3.1's dpctl/dump-flows read and print back unchanged."""
    key, mask = parse_odp_flow(text)
    assert format_odp_flow(key, mask, megaflow=True) == text


def test_masked_value_prints_unmasked_key_as_ovs_does() -> None:
    key, _ = parse_odp_flow(
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=10.0.0.1,dst=11.0.0.2,"
        "proto=6,tos=0,ttl=64,frag=no)"
    )
    mask = FIELDS["dl_type"].mask | FIELDS["in_port"].mask | FIELDS["nw_dst"].put(0xFF000000)
    assert format_odp_flow(key, mask) == "in_port(1),eth_type(0x0800),ipv4(dst=11.0.0.2/255.0.0.0)"


def test_qinq_and_8023_keys() -> None:
    frame = bytes(
        Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
        / Dot1AD(vlan=100)
        / Dot1Q(vlan=10, prio=3)
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / UDP(sport=1, dport=2)
    )
    text = format_odp_flow(extract_key(frame, 1))
    assert text == (
        f"in_port(1),{ETH},eth_type(0x88a8),vlan(vid=100,pcp=0),encap(eth_type(0x8100),"
        "vlan(vid=10,pcp=3),encap(eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,"
        "tos=0,ttl=64,frag=no),udp(src=1,dst=2)))"
    )
    key, _ = parse_odp_flow(text)
    assert key == extract_key(frame, 1)
    dot3 = bytes.fromhex("505400000007505400000005002e") + bytes(46)
    assert format_odp_flow(extract_key(dot3, 2)) == f"in_port(2),{ETH}"


def test_zero_metadata_attributes_are_accepted_and_nonzero_refused() -> None:
    key, _ = parse_odp_flow(
        "skb_priority(0),skb_mark(0),ct_state(0),ct_zone(0),ct_mark(0),"
        f"ct_label(0),recirc_id(0),dp_hash(0),in_port(1),packet_type(ns=0,id=0),{ETH}"
    )
    assert Flow.from_key(key).in_port == 1
    with pytest.raises(FlowParseError, match=r"recirc_id\(3\)"):
        parse_odp_flow("recirc_id(3),in_port(1)")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("in_port(1),eth(src=zz:00:00:00:00:00)", "bad value in eth(src=...)"),
        ("in_port(1),bogus(1)", "unknown attribute 'bogus'"),
        ("in_port(1),ipv4(src=1.2.3.4,flavour=1)", "unknown field 'flavour' in ipv4()"),
        ("in_port(1),eth_type(0x0800),ipv4(frag=maybe)", "unknown fragment type"),
        ("in_port(1),eth_type(0x8100),vlan(vid=5000)", "VLAN ID out of range"),
        ("in_port(1),tcp(src=70000)", "value out of range in tcp(src=...)"),
        ("in_port(1", "expected ')'"),
        ("in_port(1),encap(eth_type(0x0800))", "encap() without a vlan()"),
    ],
)
def test_bad_keys_are_refused_naming_the_attribute(bad: str, message: str) -> None:
    with pytest.raises(FlowParseError) as excinfo:
        parse_odp_flow(bad)
    assert message in str(excinfo.value)


PACKETS = [
    Ether()
    / IP(src="192.0.2.1", dst="192.0.2.2", tos=0x23, ttl=3)
    / TCP(sport=1, dport=2, flags="PA"),
    Ether() / Dot1Q(vlan=4, prio=7) / IPv6(src="2001:db8::1", fl=77) / UDP(sport=3, dport=4),
    Ether()
    / IPv6(hlim=255)
    / ICMPv6ND_NA(tgt="2001:db8::9")
    / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01"),
    Ether() / IPv6() / ICMPv6EchoReply(),
    Ether() / ARP(op=2, psrc="192.0.2.9", hwsrc="02:00:00:00:00:09"),
    Ether() / IP(flags="MF", frag=0) / ICMP(type=0),
]


@pytest.mark.parametrize("packet", PACKETS, ids=lambda p: p.summary())
def test_extract_format_parse_compose_extract_round_trip(packet: Ether) -> None:
    key = extract_key(bytes(packet), 5)
    parsed, mask = parse_odp_flow(format_odp_flow(key))
    assert parsed == key
    assert extract_key(compose_packet(parsed), 5) == key & mask


_FLOW_FIELDS = {
    "dl_src": st.integers(0, 2**48 - 1),
    "dl_dst": st.integers(0, 2**48 - 1),
    "nw_tos": st.integers(0, 255),
    "nw_ttl": st.integers(0, 255),
    "tp_src": st.integers(0, 65535),
    "tp_dst": st.integers(0, 65535),
}


@st.composite
def ip_flows(draw: st.DrawFn) -> Flow:
    flow = Flow(in_port=draw(st.integers(0, 2**32 - 1)))
    for name, strategy in _FLOW_FIELDS.items():
        setattr(flow, name, draw(strategy))
    v6 = draw(st.booleans())
    if v6:
        flow.dl_type = 0x86DD
        flow.ipv6_src = draw(st.integers(0, 2**128 - 1))
        flow.ipv6_dst = draw(st.integers(0, 2**128 - 1))
        flow.ipv6_label = draw(st.integers(0, 0xFFFFF))
    else:
        flow.dl_type = 0x0800
        flow.nw_src = draw(st.integers(0, 2**32 - 1))
        flow.nw_dst = draw(st.integers(0, 2**32 - 1))
    flow.nw_proto = draw(st.sampled_from([6, 17, 132]))
    flow.nw_frag = draw(st.sampled_from([0, 1, 3]))
    if flow.nw_frag == 3:
        flow.tp_src = flow.tp_dst = 0
        if v6:
            # An IPv6 later fragment's protocol is the fragment header's (44).
            flow.nw_proto = 44
    if flow.nw_proto == 6 and flow.nw_frag != 3:
        flow.tcp_flags = draw(st.integers(0, 0xFFF))
    if draw(st.booleans()):
        flow.vlan_tpid = 0x8100
        flow.vlan_tci = draw(st.integers(0, 0xFFFF)) | 0x1000
    return flow


@given(ip_flows())
def test_random_flows_survive_print_parse_and_compose(flow: Flow) -> None:
    key = flow.to_key()
    parsed, _ = parse_odp_flow(format_odp_flow(key))
    assert Flow.from_key(parsed) == flow
    # Composing loses only the VLAN DEI bit, which OVS uses as its "present" bit.
    assert extract_key(compose_packet(key), flow.in_port) == key
