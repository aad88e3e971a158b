"""Flow key extraction, checked against scapy's independent parse of the same frames."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, LLC, SNAP, Dot1AD, Dot1Q, Dot3, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Raw

from pyvswitch.flow import Flow, extract_key, flow_extract
from pyvswitch.flow.extract import _extract
from pyvswitch.flow.layout import DL_TYPE_NONE, FRAG_ANY, FRAG_LATER

SRC = "50:54:00:00:00:05"
DST = "50:54:00:00:00:07"


def mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def eth() -> Ether:
    return Ether(src=SRC, dst=DST)


def test_ipv4_tcp_fields_match_scapy() -> None:
    pkt = (
        eth()
        / IP(src="192.0.2.1", dst="198.51.100.2", tos=0xB9, ttl=17)
        / TCP(sport=40000, dport=443, flags="SA")
    )
    flow = flow_extract(bytes(pkt), in_port=7)
    assert flow.in_port == 7
    assert (flow.dl_src, flow.dl_dst, flow.dl_type) == (mac(SRC), mac(DST), 0x0800)
    assert (flow.vlan_tci, flow.vlan_tpid) == (0, 0)
    assert (flow.nw_src, flow.nw_dst) == (ip(pkt[IP].src), ip(pkt[IP].dst))
    assert (flow.nw_proto, flow.nw_tos, flow.nw_ttl, flow.nw_frag) == (6, 0xB9, 17, 0)
    assert (flow.tp_src, flow.tp_dst) == (40000, 443)
    assert flow.tcp_flags == int(pkt[TCP].flags) == 0x12


def test_ipv4_udp_icmp_sctp_ports() -> None:
    udp = flow_extract(bytes(eth() / IP() / UDP(sport=53, dport=5353)))
    assert (udp.nw_proto, udp.tp_src, udp.tp_dst, udp.tcp_flags) == (17, 53, 5353, 0)
    icmp = flow_extract(bytes(eth() / IP() / ICMP(type=3, code=13)))
    # OVS keeps the ICMP type and code in tp_src and tp_dst.
    assert (icmp.nw_proto, icmp.tp_src, icmp.tp_dst) == (1, 3, 13)
    sctp = flow_extract(bytes(eth() / IP() / SCTP(sport=9, dport=10)))
    assert (sctp.nw_proto, sctp.tp_src, sctp.tp_dst) == (132, 9, 10)


def test_ipv4_options_are_skipped_to_find_l4() -> None:
    pkt = eth() / IP(options=[IPOption_RR(routers=["192.0.2.9"])]) / UDP(sport=1, dport=2)
    assert bytes(pkt)[14] & 0x0F > 5
    flow = flow_extract(bytes(pkt))
    assert (flow.tp_src, flow.tp_dst) == (1, 2)


@pytest.mark.parametrize(
    ("flags", "frag", "expected_frag", "ports"),
    [
        ("MF", 0, FRAG_ANY, (1000, 2000)),
        (0, 10, FRAG_ANY | FRAG_LATER, (0, 0)),
        ("MF", 10, FRAG_ANY | FRAG_LATER, (0, 0)),
        ("DF", 0, 0, (1000, 2000)),
    ],
)
def test_ipv4_fragments(
    flags: str | int, frag: int, expected_frag: int, ports: tuple[int, int]
) -> None:
    pkt = eth() / IP(flags=flags, frag=frag) / UDP(sport=1000, dport=2000)
    flow = flow_extract(bytes(pkt))
    assert flow.nw_frag == expected_frag
    assert (flow.tp_src, flow.tp_dst) == ports
    assert flow.nw_proto == 17


def test_single_vlan_tag_sets_tci_with_present_bit() -> None:
    pkt = eth() / Dot1Q(vlan=10, prio=5) / IP() / ICMP()
    flow = flow_extract(bytes(pkt))
    assert flow.vlan_tpid == 0x8100
    assert flow.vlan_tci == (5 << 13) | 0x1000 | 10
    assert flow.vlan_tci1 == 0
    assert flow.dl_type == 0x0800
    assert flow.nw_proto == 1


def test_qinq_sets_both_tags() -> None:
    pkt = eth() / Dot1AD(vlan=100, prio=1) / Dot1Q(vlan=20) / IPv6() / UDP(sport=5, dport=6)
    flow = flow_extract(bytes(pkt))
    assert (flow.vlan_tpid, flow.vlan_tci) == (0x88A8, (1 << 13) | 0x1000 | 100)
    assert (flow.vlan_tpid1, flow.vlan_tci1) == (0x8100, 0x1000 | 20)
    assert (flow.dl_type, flow.nw_proto, flow.tp_dst) == (0x86DD, 17, 6)


def test_third_vlan_tag_stops_parsing_like_ovs() -> None:
    pkt = eth() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP()
    flow = flow_extract(bytes(pkt))
    assert flow.dl_type == 0x8100
    assert flow.nw_src == 0


def test_vlan_with_dei_bit_keeps_present_bit_only() -> None:
    pkt = eth() / Dot1Q(vlan=7, dei=1) / IP()
    assert flow_extract(bytes(pkt)).vlan_tci == 0x1000 | 7


def test_8023_frames() -> None:
    plain = Dot3(src=SRC, dst=DST) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"x" * 40)
    assert flow_extract(bytes(plain)).dl_type == DL_TYPE_NONE
    snap = Dot3(src=SRC, dst=DST) / LLC() / SNAP(OUI=0, code=0x0800) / IP(dst="192.0.2.3")
    flow = flow_extract(bytes(snap))
    assert flow.dl_type == 0x0800
    assert flow.nw_dst == ip("192.0.2.3")


def test_arp_fields() -> None:
    pkt = eth() / ARP(
        op=2,
        hwsrc="00:00:00:00:00:01",
        psrc="192.0.2.1",
        hwdst="00:00:00:00:00:02",
        pdst="192.0.2.2",
    )
    flow = flow_extract(bytes(pkt))
    assert flow.dl_type == 0x0806
    # OVS keeps the ARP opcode in nw_proto and the addresses in nw_src/nw_dst.
    assert (flow.nw_proto, flow.nw_src, flow.nw_dst) == (2, ip("192.0.2.1"), ip("192.0.2.2"))
    assert (flow.arp_sha, flow.arp_tha) == (1, 2)


def test_arp_opcode_above_255_is_not_kept() -> None:
    flow = flow_extract(bytes(eth() / ARP(op=0x101, psrc="192.0.2.1")))
    assert flow.nw_proto == 0
    assert flow.nw_src == ip("192.0.2.1")


def test_ipv6_fields_match_scapy() -> None:
    pkt = (
        eth()
        / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x2A, fl=0xABCDE, hlim=9)
        / TCP(sport=1, dport=2, flags="F")
    )
    flow = flow_extract(bytes(pkt))
    assert flow.dl_type == 0x86DD
    assert (flow.ipv6_src, flow.ipv6_dst) == (ip("2001:db8::1"), ip("2001:db8::2"))
    assert (flow.ipv6_label, flow.nw_tos, flow.nw_ttl, flow.nw_proto) == (0xABCDE, 0x2A, 9, 6)
    assert (flow.tp_src, flow.tp_dst, flow.tcp_flags) == (1, 2, 1)
    assert (flow.nw_src, flow.nw_dst) == (0, 0)


def test_ipv6_extension_headers_lead_to_the_upper_layer() -> None:
    pkt = (
        eth()
        / IPv6()
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::5"])
        / IPv6ExtHdrDestOpt()
        / UDP(sport=7, dport=8)
    )
    flow = flow_extract(bytes(pkt))
    assert (flow.nw_proto, flow.tp_src, flow.tp_dst, flow.nw_frag) == (17, 7, 8, 0)


@pytest.mark.parametrize(
    ("offset", "m", "expected_frag", "proto", "ports"),
    [
        (0, 1, FRAG_ANY, 17, (7, 8)),
        (0, 0, FRAG_ANY, 17, (7, 8)),
        # A later fragment has no upper layer: OVS reports the fragment header (44).
        (3, 0, FRAG_ANY | FRAG_LATER, 44, (0, 0)),
    ],
)
def test_ipv6_fragment_header(
    offset: int, m: int, expected_frag: int, proto: int, ports: tuple[int, int]
) -> None:
    pkt = eth() / IPv6() / IPv6ExtHdrFragment(offset=offset, m=m, id=5) / UDP(sport=7, dport=8)
    flow = flow_extract(bytes(pkt))
    assert flow.nw_frag == expected_frag
    assert flow.nw_proto == proto
    assert (flow.tp_src, flow.tp_dst) == ports


def test_neighbour_solicitation_with_source_link_layer_address() -> None:
    pkt = (
        eth()
        / IPv6(src="2001:db8::1", dst="ff02::1:ff00:2", hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::2")
        / ICMPv6NDOptSrcLLAddr(lladdr=SRC)
    )
    flow = flow_extract(bytes(pkt))
    assert (flow.nw_proto, flow.tp_src, flow.tp_dst) == (58, 135, 0)
    assert flow.nd_target == ip("2001:db8::2")
    assert (flow.arp_sha, flow.arp_tha) == (mac(SRC), 0)


def test_neighbour_advertisement_with_target_link_layer_address() -> None:
    pkt = (
        eth()
        / IPv6(hlim=255)
        / ICMPv6ND_NA(tgt="2001:db8::2", R=0, S=1, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=DST)
    )
    flow = flow_extract(bytes(pkt))
    assert flow.tp_src == 136
    assert flow.nd_target == ip("2001:db8::2")
    assert (flow.arp_sha, flow.arp_tha) == (0, mac(DST))


def test_neighbour_discovery_zero_length_option_ends_the_list() -> None:
    frame = bytearray(
        bytes(
            eth()
            / IPv6(hlim=255)
            / ICMPv6ND_NS(tgt="2001:db8::2")
            / ICMPv6NDOptSrcLLAddr(lladdr=SRC)
        )
    )
    frame[-7] = 0  # the option's length octet
    flow = flow_extract(bytes(frame))
    assert flow.tp_src == 135
    assert (flow.nd_target, flow.arp_sha) == (ip("2001:db8::2"), 0)


def test_link_layer_options_count_whatever_the_message_type_as_in_ovs() -> None:
    pkt = (
        eth()
        / IPv6(hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::2")
        / ICMPv6NDOptSrcLLAddr(lladdr=SRC)
        / ICMPv6NDOptDstLLAddr(lladdr=DST)
    )
    flow = flow_extract(bytes(pkt))
    assert (flow.arp_sha, flow.arp_tha) == (mac(SRC), mac(DST))


def test_a_bad_option_length_ends_the_list_keeping_what_was_found() -> None:
    frame = bytes(
        eth()
        / IPv6(hlim=255)
        / ICMPv6ND_NA(tgt="2001:db8::2")
        / ICMPv6NDOptDstLLAddr(lladdr=DST)
        / ICMPv6NDOptSrcLLAddr(lladdr=SRC)
    )
    broken = frame[:-7] + b"\x09" + frame[-6:]  # the second option claims 72 bytes
    flow = flow_extract(broken)
    assert flow.nd_target == ip("2001:db8::2")
    assert (flow.arp_sha, flow.arp_tha) == (0, mac(DST))


def test_a_repeated_link_layer_option_voids_the_nd_fields() -> None:
    pkt = (
        eth()
        / IPv6(hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::2")
        / ICMPv6NDOptSrcLLAddr(lladdr=SRC)
        / ICMPv6NDOptSrcLLAddr(lladdr=DST)
    )
    flow = flow_extract(bytes(pkt))
    assert (flow.tp_src, flow.nd_target, flow.arp_sha) == (135, 0, 0)


def test_ip_version_field_is_not_checked_as_in_ovs() -> None:
    frame = bytearray(bytes(eth() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2)))
    frame[14] = 0x65  # version 6, header length 5
    flow = flow_extract(bytes(frame))
    assert (flow.nw_src, flow.tp_dst) == (ip("192.0.2.1"), 2)


def test_igmp_and_icmp_in_ipv6_keep_type_and_code_as_in_ovs() -> None:
    igmp = eth() / IP(proto=2) / Raw(bytes.fromhex("1164ee9b00000000"))
    assert (flow_extract(bytes(igmp)).tp_src, flow_extract(bytes(igmp)).tp_dst) == (0x11, 0x64)
    icmp6 = eth() / IPv6(nh=1) / ICMP(type=3, code=1)
    assert (flow_extract(bytes(icmp6)).tp_src, flow_extract(bytes(icmp6)).tp_dst) == (3, 1)


def test_tcp_data_offset_beyond_the_packet_drops_the_ports() -> None:
    frame = bytearray(bytes(eth() / IP() / TCP(sport=5, dport=6)))
    frame[14 + 20 + 12] = 0xC0  # claims a 48-byte TCP header in a 20-byte segment
    flow = flow_extract(bytes(frame))
    assert (flow.nw_proto, flow.tp_src, flow.tp_dst) == (6, 0, 0)


def test_icmpv6_echo_is_not_neighbour_discovery() -> None:
    flow = flow_extract(bytes(eth() / IPv6() / ICMPv6EchoRequest(id=1, seq=2)))
    assert (flow.nw_proto, flow.tp_src, flow.tp_dst, flow.nd_target) == (58, 128, 0, 0)


@pytest.mark.parametrize(
    ("frame", "fields"),
    [
        (b"", {}),
        (b"\x01" * 13, {}),
        (bytes(eth() / IP())[:20], {"dl_type": 0x0800}),
        # An IPv4 total length beyond the frame fails OVS's sanity check: no L3 fields.
        (bytes(eth() / IP(len=200, src="192.0.2.1") / UDP()), {"dl_type": 0x0800}),
        (bytes(eth() / IP(ihl=4, src="192.0.2.1")), {"dl_type": 0x0800}),
        (bytes(eth() / IPv6(plen=500, src="2001:db8::1")), {"dl_type": 0x86DD}),
        # A TCP header cut short keeps the L3 fields and drops the ports.
        (
            bytes(eth() / IP(src="192.0.2.1", dst="192.0.2.2", proto=6) / Raw(b"\x00" * 10)),
            {
                "dl_type": 0x0800,
                "nw_src": ip("192.0.2.1"),
                "nw_dst": ip("192.0.2.2"),
                "nw_proto": 6,
                "nw_ttl": 64,
            },
        ),
    ],
)
def test_malformed_frames_keep_the_fields_before_the_fault(
    frame: bytes, fields: dict[str, int]
) -> None:
    flow = flow_extract(frame, in_port=3)
    expected = Flow(in_port=3, **fields)
    if len(frame) >= 14:
        expected.dl_src = int.from_bytes(frame[6:12], "big")
        expected.dl_dst = int.from_bytes(frame[0:6], "big")
    assert flow == expected


SAMPLES = [
    eth() / Dot1Q(vlan=3) / IP(flags="MF") / TCP(options=[("MSS", 1460)]) / Raw(b"a" * 20),
    eth() / Dot1AD(vlan=4) / Dot1Q(vlan=5) / IPv6() / IPv6ExtHdrHopByHop() / UDP() / Raw(b"b"),
    eth() / IPv6() / ICMPv6ND_NS(tgt="2001:db8::1") / ICMPv6NDOptSrcLLAddr(lladdr=SRC),
    eth() / ARP(),
    eth() / IP() / ICMP() / Raw(b"c" * 8),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.summary())
def test_every_truncation_of_a_sample_extracts_without_raising(sample: Ether) -> None:
    frame = bytes(sample)
    full = flow_extract(frame)
    for cut in range(len(frame) + 1):
        flow = flow_extract(frame[:cut])
        if cut >= 14:
            assert (flow.dl_src, flow.dl_dst) == (full.dl_src, full.dl_dst)


@given(st.binary(max_size=200), st.integers(0, 0xFFFFFFFF))
def test_extraction_never_raises_on_arbitrary_bytes(frame: bytes, port: int) -> None:
    key = extract_key(frame, port)
    assert Flow.from_key(key).in_port == port


def _ethernet_prefixed(tail: bytes, etype: int) -> bytes:
    return bytes.fromhex("505400000007505400000005") + etype.to_bytes(2, "big") + tail


@pytest.mark.slow
@settings(max_examples=30000)
@given(st.binary(max_size=160), st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x30]))
def test_extraction_never_raises_on_arbitrary_headers_long_run(tail: bytes, etype: int) -> None:
    flow = flow_extract(_ethernet_prefixed(tail, etype), 1)
    assert flow.dl_src == 0x505400000005


@given(st.binary(max_size=120), st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100]))
def test_extraction_never_raises_on_arbitrary_headers(tail: bytes, etype: int) -> None:
    flow = flow_extract(_ethernet_prefixed(tail, etype), 1)
    assert flow.dl_src == 0x505400000005


def test_batch_extraction_equals_one_by_one() -> None:
    frames = [bytes(s) for s in SAMPLES]
    from pyvswitch.flow import extract_keys

    assert extract_keys(frames, 4) == [extract_key(f, 4) for f in frames]


def test_flow_round_trips_through_key() -> None:
    flow = flow_extract(bytes(SAMPLES[0]), 9)
    flow.reg3 = 0xDEADBEEF
    flow.metadata = 1 << 63
    assert Flow.from_key(flow.to_key()) == flow
    assert flow.copy() == flow
    with pytest.raises(TypeError, match="no field 'bogus'"):
        Flow(bogus=1)


_FAST_UDP = bytes(
    Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
    / IP(src="198.51.100.1", dst="198.51.100.2")
    / UDP(sport=1000, dport=9)
    / (b"A" * 18)
)
_FAST_TCP = bytes(
    Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
    / IP(src="198.51.100.1", dst="198.51.100.2")
    / TCP(sport=1000, dport=9, flags="PA")
    / (b"A" * 18)
)


#: The benchmark's frame: an 8-byte UDP datagram padded to 60 bytes.
_FAST_PADDED = bytes(
    Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
    / IP(src="198.51.100.1", dst="198.51.100.9")
    / UDP(sport=1024, dport=9)
) + bytes(18)


@given(
    st.sampled_from((_FAST_UDP, _FAST_TCP, _FAST_PADDED)),
    st.lists(st.tuples(st.integers(0, 79), st.integers(0, 255)), max_size=4),
    st.integers(0, 80),
)
@settings(max_examples=2000, deadline=None)
def test_the_ipv4_fast_path_gives_the_general_extractions_key(
    frame: bytes, changes: list[tuple[int, int]], cut: int
) -> None:
    """extract_key()'s shortcut for plain IPv4 UDP/TCP must agree with _extract()."""
    raw = bytearray(frame)
    for pos, value in changes:
        if pos < len(raw):
            raw[pos] = value
    mutated = bytes(raw[: max(cut, 0)] if cut < len(raw) else raw)
    assert extract_key(mutated, 5) == _extract(mutated, 5)
