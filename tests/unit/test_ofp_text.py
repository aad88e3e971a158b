"""The OpenFlow text form: parsing, printing and errors, as ovs-ofctl does them.

The expected strings were produced by Open vSwitch 3.1's ``ovs-ofctl -F nxm
parse-flow`` (and, for Flow: lines, its ``ofproto/trace``); the ``ovs``-marked
interop tests re-check many of them against the real program.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from pyvswitch.flow import Flow, flow_extract
from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.flow.ofp_text import format_flow, format_match, parse_match


def normalise(text: str) -> str:
    match, _ = parse_match(text)
    return format_match(match)


@pytest.mark.parametrize(
    ("given_text", "printed"),
    [
        (
            "tcp,in_port=1,nw_src=192.0.2.0/24,tp_dst=80",
            "tcp,in_port=1,nw_src=192.0.2.0/24,tp_dst=80",
        ),
        (
            "tcp,tp_dst=80,tp_src=1,nw_dst=1.1.1.1,nw_src=2.2.2.2,dl_dst=00:00:00:00:00:02,"
            "dl_src=00:00:00:00:00:01,dl_vlan=5,in_port=3,reg3=1,reg0=2,metadata=3,"
            "tun_dst=3.3.3.3,tun_id=1,tcp_flags=+syn,nw_ttl=3,nw_tos=4,nw_ecn=2,ip_frag=no",
            "tcp,reg0=0x2,reg3=0x1,tun_id=0x1,tun_dst=3.3.3.3,metadata=0x3,in_port=3,dl_vlan=5,"
            "dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,nw_src=2.2.2.2,nw_dst=1.1.1.1,"
            "nw_tos=4,nw_ecn=2,nw_ttl=3,nw_frag=no,tp_src=1,tp_dst=80,tcp_flags=+syn",
        ),
        (
            "arp,arp_tha=00:00:00:00:00:09,arp_sha=00:00:00:00:00:08,arp_tpa=1.1.1.1,"
            "arp_spa=2.2.2.2,arp_op=2,dl_src=00:00:00:00:00:01",
            "arp,dl_src=00:00:00:00:00:01,arp_spa=2.2.2.2,arp_tpa=1.1.1.1,arp_op=2,"
            "arp_sha=00:00:00:00:00:08,arp_tha=00:00:00:00:00:09",
        ),
        (
            "icmp6,nd_tll=00:00:00:00:00:01,nd_target=::1,icmp_code=0,icmp_type=136,"
            "ipv6_label=1,ipv6_dst=::2,ipv6_src=::3",
            "icmp6,ipv6_src=::3,ipv6_dst=::2,ipv6_label=0x00001,icmp_type=136,icmp_code=0,"
            "nd_target=::1,nd_tll=00:00:00:00:00:01",
        ),
        (
            "icmp,icmp_code=1,icmp_type=3,nw_src=1.1.1.1",
            "icmp,nw_src=1.1.1.1,icmp_type=3,icmp_code=1",
        ),
        ("icmp6,icmpv6_type=1,icmpv6_code=2", "icmp6,icmp_type=1,icmp_code=2"),
        ("ipv6,nw_proto=44", "ipv6,nw_proto=44"),
        ("dl_type=0x0800,nw_proto=6", "tcp"),
        ("dl_type=0x86dd,nw_proto=17", "udp6"),
        ("ip,nw_proto=6", "tcp"),
        ("dl_type=0x1234", "dl_type=0x1234"),
        ("rarp", "rarp"),
        ("sctp,tp_dst=3", "sctp,tp_dst=3"),
        ("vlan_tci=0x0000/0x1000", "vlan_tci=0x0000/0x1000"),
        ("vlan_tci=0x1000/0x1000", "vlan_tci=0x1000/0x1000"),
        ("dl_vlan=5,dl_vlan_pcp=0", "dl_vlan=5,dl_vlan_pcp=0"),
        ("vlan_tci=0x1005/0x1fff,dl_vlan_pcp=3", "dl_vlan=5,dl_vlan_pcp=3"),
        ("vlan_tci=0x1005", "dl_vlan=5,dl_vlan_pcp=0"),
        ("vlan_tci=0x2005", "vlan_tci=0x2005"),
        ("vlan_tci=0x1005/0x0fff", "vlan_tci=0x0005/0x0fff"),
        ("dl_vlan=10,vlan_tci=0x1000/0x1000", "vlan_tci=0x1000/0x1000"),
        ("dl_vlan=0xffff", "vlan_tci=0x0000"),
        ("tcp,nw_frag=yes", "tcp,nw_frag=yes"),
        ("ip,ip_frag=not_later", "ip,nw_frag=not_later"),
        ("ip,nw_frag=first", "ip,nw_frag=first"),
        ("reg15=0xffffffff/0xf", "reg15=0xf/0xf"),
        ("reg0=0", "reg0=0"),
        ("reg0=0/0", ""),
        ("metadata=0xffffffffffffffff", "metadata=0xffffffffffffffff"),
        ("tun_id=0x1/0x1,tun_src=1.2.3.0/24", "tun_id=0x1/0x1,tun_src=1.2.3.0/24"),
        (
            "dl_src=00:00:00:00:00:00/ff:ff:ff:00:00:00",
            "dl_src=00:00:00:00:00:00/ff:ff:ff:00:00:00",
        ),
        ("dl_src=00:00:00:00:00:01/ff:ff:ff:ff:ff:ff", "dl_src=00:00:00:00:00:01"),
        (
            "dl_vlan=10,dl_src=01:00:00:00:00:00/01:00:00:00:00:00",
            "dl_vlan=10,dl_src=01:00:00:00:00:00/01:00:00:00:00:00",
        ),
        ("ipv6,ipv6_src=2001:db8::1/ffff::ff", "ipv6,ipv6_src=2001::1/ffff::ff"),
        (
            "ipv6,ipv6_src=2001:db8::/32,ipv6_label=5",
            "ipv6,ipv6_src=2001:db8::/32,ipv6_label=0x00005",
        ),
        ("ip,nw_src=0.0.0.0/0", "ip"),
        ("ip,nw_src=1.2.3.4/32", "ip,nw_src=1.2.3.4"),
        ("ip,nw_src=1.2.3.4/255.255.255.0", "ip,nw_src=1.2.3.0/24"),
        ("ip,nw_src=1.2.3.4/255.0.255.0", "ip,nw_src=1.0.3.0/255.0.255.0"),
        ("ip,nw_src=10.1.2.3/0.0.0.255", "ip,nw_src=0.0.0.3/0.0.0.255"),
        ("in_port=LOCAL", "in_port=LOCAL"),
        ("in_port=65534", "in_port=LOCAL"),
        ("ip,ip_dscp=8", "ip,nw_tos=32"),
        ("ip,nw_ecn=3", "ip,nw_ecn=3"),
        ("udp,tp_src=0x10/0xfff0", "udp,tp_src=0x10/0xfff0"),
        ("tcp,tp_dst=0x50/0xffff", "tcp,tp_dst=80"),
        ("tcp,tp_dst=010", "tcp,tp_dst=8"),
        ("tcp,tp_dst=80,tp_dst=81", "tcp,tp_dst=81"),
        ("tcp,tcp_flags=0x12/0xff", "tcp,tcp_flags=-fin+syn-rst-psh+ack-urg-ece-cwr"),
        ("tcp,tcp_flags=0x12", "tcp,tcp_flags=syn|ack"),
        ("tcp,tcp_flags=0x812/0xfff", "tcp,tcp_flags=syn|ack|[800]"),
        ("tcp6,tcp_flags=+syn-ack", "tcp6,tcp_flags=+syn-ack"),
        ("tcp,tcp_flags=+ack+syn", "tcp,tcp_flags=+syn+ack"),
        ("tcp,tcp_flags=+ns", "tcp,tcp_flags=+ns"),
        (
            "icmp6,icmp_type=135,nd_target=2001:db8::1,nd_sll=00:00:00:00:00:01",
            "icmp6,icmp_type=135,nd_target=2001:db8::1,nd_sll=00:00:00:00:00:01",
        ),
        ("icmp6,icmp_type=135,nd_target=::1/64", "icmp6,icmp_type=135,nd_target=::/64"),
        ("tcp tp_dst=80", "tcp,tp_dst=80"),
        ("tcp,udp", "udp"),
        ("tcp,nw_frag=later", "tcp,nw_frag=later"),
    ],
)
def test_match_prints_as_ovs_ofctl_does(given_text: str, printed: str) -> None:
    assert normalise(given_text) == printed


def test_priority_prints_first_unless_default() -> None:
    match, extra = parse_match("priority=5,in_port=1,actions=drop", extra=("priority", "actions"))
    assert extra == {"priority": "5", "actions": "drop"}
    assert format_match(match, priority=5) == "priority=5,in_port=1"
    assert format_match(match, priority=32768) == "in_port=1"


def test_megaflow_prefix() -> None:
    match, _ = parse_match("ip,in_port=1,nw_frag=no")
    assert format_match(match, megaflow=True) == "recirc_id=0,eth,ip,in_port=1,nw_frag=no"


def test_port_names_are_read_and_printed_when_given() -> None:
    match, _ = parse_match("in_port=p1", port_names={"p1": 7})
    assert match.get("in_port") == (7, 0xFFFFFFFF)
    assert format_match(match, port_names={7: "p1"}) == "in_port=p1"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("foo=1", "unknown keyword foo"),
        ("igmp", "unknown keyword igmp"),
        ("tcp,tp_dst", "field tp_dst missing value"),
        ("dl_src=zz:00:00:00:00:00", "zz:00:00:00:00:00: invalid Ethernet address"),
        ("dl_src=00:11:22:33:44", "00:11:22:33:44: invalid Ethernet address"),
        ("ip,nw_src=1.2.3", "1.2.3: invalid IP address"),
        ("ip,nw_src=300.1.1.1", "300.1.1.1: invalid IP address"),
        ("ip,nw_src=1.2.3.4/foo", "1.2.3.4/foo: invalid IP address"),
        (
            "ip,nw_dst=1.2.3.4/33",
            "1.2.3.4/33: IPv4 network prefix bits not between 0 and 32, inclusive",
        ),
        (
            "ipv6,ipv6_src=1::/129",
            "1::/129: IPv6 network prefix bits not between 0 and 128, inclusive",
        ),
        ("ipv6,ipv6_src=2001:db8:::1", "2001:db8:::1: invalid IPv6 address"),
        ("udp,tp_src=70000", "70000: value too large for 2-byte field tp_src"),
        ("tcp,tcp_dst=80/0xffff0", "80/0xffff0: mask too large for 2-byte field tcp_dst"),
        ("tcp,tcp_dst=abc", "abc: bad syntax for tcp_dst value"),
        ("reg0=5/abc", "5/abc: bad syntax for reg0 mask"),
        ("dl_type=0x10000", "0x10000: value too large for 2-byte field dl_type"),
        ("icmp,icmp_type=300", "300: value too large for 1-byte field icmp_type"),
        (
            "ip,nw_frag=later/0x2",
            'later/0x2: unknown fragment type (valid types are "no", "yes", "first", '
            '"later", "not_later")',
        ),
        ("tcp,tcp_flags=+syn+syn", "syn: Each TCP flag can be specified only once"),
        ("tcp,tcp_flags=+bogus", "+bogus: unknown TCP flag(s)"),
        ("tcp,tcp_flags=0x1000", "0x1000: unknown TCP flag(s)"),
        ("in_port=foo", "foo: invalid or unknown port for in_port"),
        ("in_port=0xfffe", "0xfffe: invalid or unknown port for in_port"),
        ("dl_vlan=4096", "4096: VLAN ID out of range 0..4095 in dl_vlan"),
        ("dl_vlan_pcp=8", "8: value too large for 3-bit field dl_vlan_pcp"),
        ("ip,nw_tos=3", "nw_tos holds the DSCP bits"),
        ("ip,nw_ttl=1/1", "field nw_ttl does not support masking"),
        ("tp_dst=80", "tp_dst: prerequisites not met"),
        ("nw_src=1.2.3.4", "nw_src: prerequisites not met"),
        ("ipv6,nw_src=1.2.3.4", "nw_src: prerequisites not met (the match needs ip, arp or rarp)"),
        ("nw_proto=6", "nw_proto: prerequisites not met (the match needs ip, ipv6, arp or rarp)"),
        ("udp,tcp_flags=+syn", "tcp_flags: prerequisites not met"),
        ("udp,tcp_dst=5", "tcp_dst: prerequisites not met"),
        ("icmp6,nd_target=::1", "nd_target: prerequisites not met"),
        (
            "icmp6,icmp_type=136,nd_sll=00:11:22:33:44:55",
            "nd_sll: prerequisites not met",
        ),
        ("icmp,nd_target=::1", "nd_target: prerequisites not met"),
        ("tcp,nw_frag=later,tp_src=0", "tp_src: prerequisites not met"),
        ("icmp,icmp_type=8,nw_frag=later", "icmp_type: prerequisites not met"),
    ],
)
def test_bad_flows_are_refused_naming_what_is_wrong(bad: str, message: str) -> None:
    with pytest.raises(FlowParseError) as excinfo:
        parse_match(bad)
    assert message in str(excinfo.value)


# -- the Flow: line of ofproto/trace -------------------------------------------------

SRC = "50:54:00:00:00:05"
DST = "50:54:00:00:00:07"


def eth(dst: str = DST) -> Ether:
    return Ether(src=SRC, dst=dst)


@pytest.mark.parametrize(
    ("packet", "line"),
    [
        (
            eth() / IP(src="192.168.0.1", dst="192.168.0.2") / ICMP(),
            "icmp,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,"
            "nw_src=192.168.0.1,nw_dst=192.168.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,"
            "icmp_type=8,icmp_code=0",
        ),
        (
            eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=8, dport=80, flags=0),
            "tcp,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,"
            "nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=8,"
            "tp_dst=80,tcp_flags=0",
        ),
        (
            eth() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0xFD) / UDP(sport=8, dport=53),
            "udp,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,"
            "nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=252,nw_ecn=1,nw_ttl=64,nw_frag=no,tp_src=8,"
            "tp_dst=53",
        ),
        (
            eth("ff:ff:ff:ff:ff:ff")
            / ARP(
                op=1, hwsrc=SRC, psrc="192.168.0.1", pdst="192.168.0.2", hwdst="00:00:00:00:00:00"
            ),
            "arp,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=ff:ff:ff:ff:ff:ff,"
            "arp_spa=192.168.0.1,arp_tpa=192.168.0.2,arp_op=1,arp_sha=50:54:00:00:00:05,"
            "arp_tha=00:00:00:00:00:00",
        ),
        (
            eth("33:33:ff:00:00:02")
            / IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255)
            / ICMPv6ND_NS(tgt="fe80::2")
            / ICMPv6NDOptSrcLLAddr(lladdr=SRC),
            "icmp6,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=33:33:ff:00:00:02,"
            "ipv6_src=fe80::1,ipv6_dst=ff02::1:ff00:2,ipv6_label=0x00000,nw_tos=0,nw_ecn=0,"
            "nw_ttl=255,nw_frag=no,icmp_type=135,icmp_code=0,nd_target=fe80::2,"
            "nd_sll=50:54:00:00:00:05,nd_tll=00:00:00:00:00:00",
        ),
        (
            eth()
            / Dot1Q(vlan=10, prio=3)
            / IP(src="10.0.0.1", dst="10.0.0.2")
            / UDP(sport=1, dport=2),
            "udp,in_port=1,dl_vlan=10,dl_vlan_pcp=3,vlan_tci1=0x0000,dl_src=50:54:00:00:00:05,"
            "dl_dst=50:54:00:00:00:07,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,"
            "nw_frag=no,tp_src=1,tp_dst=2",
        ),
        (
            eth()
            / Dot1AD(vlan=100)
            / Dot1Q(vlan=10, prio=3)
            / IP(src="10.0.0.1", dst="10.0.0.2")
            / UDP(sport=1, dport=2),
            "udp,in_port=1,dl_vlan=100,dl_vlan_pcp=0,dl_vlan1=10,dl_vlan_pcp1=3,"
            "dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,nw_src=10.0.0.1,nw_dst=10.0.0.2,"
            "nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=1,tp_dst=2",
        ),
        (
            eth()
            / IP(src="10.0.0.1", dst="10.0.0.2", frag=100, flags="MF")
            / UDP(sport=1, dport=2),
            "udp,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,"
            "nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=later",
        ),
        (
            eth() / IP(src="11.0.0.1", dst="11.0.0.2", proto=47),
            "ip,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,"
            "nw_src=11.0.0.1,nw_dst=11.0.0.2,nw_proto=47,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no",
        ),
        (
            Ether(src=SRC, dst=DST, type=0x1234),
            "in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,"
            "dl_type=0x1234",
        ),
    ],
    ids=["icmp", "tcp", "udp", "arp", "nd", "vlan", "qinq", "frag-later", "gre", "l2"],
)
def test_flow_line_matches_ofproto_trace(packet: Ether, line: str) -> None:
    assert format_flow(flow_extract(bytes(packet), 1)) == line


def test_flow_line_shows_set_registers_and_metadata_only() -> None:
    flow = Flow(reg0=5, tun_id=7, metadata=3, in_port=1)
    assert format_flow(flow) == (
        "reg0=0x5,tun_id=0x7,metadata=0x3,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,"
        "dl_dst=00:00:00:00:00:00,dl_type=0x0000"
    )


# -- round trips ------------------------------------------------------------------

_ip4 = st.integers(0, 2**32 - 1).map(lambda v: ".".join(str(b) for b in v.to_bytes(4, "big")))
_mac = st.integers(0, 2**48 - 1).map(lambda v: ":".join(f"{b:02x}" for b in v.to_bytes(6, "big")))
_ip6 = st.integers(0, 2**128 - 1).map(lambda v: str(__import__("ipaddress").IPv6Address(v)))


def _masked(
    values: st.SearchStrategy[str], masks: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    return st.one_of(values, st.tuples(values, masks).map(lambda t: f"{t[0]}/{t[1]}"))


_COMMON = {
    "in_port": st.integers(1, 0xFEFF).map(str),
    "dl_src": _masked(_mac, _mac),
    "dl_dst": _masked(_mac, _mac),
    "vlan_tci": _masked(st.integers(0, 0xFFFF).map(hex), st.integers(0, 0xFFFF).map(hex)),
    "metadata": _masked(st.integers(0, 2**64 - 1).map(hex), st.integers(0, 2**64 - 1).map(hex)),
    "reg3": _masked(st.integers(0, 2**32 - 1).map(str), st.integers(0, 2**32 - 1).map(hex)),
    "tun_id": st.integers(0, 2**64 - 1).map(hex),
    "tun_src": _masked(_ip4, st.integers(0, 32).map(str)),
}
_BY_PROTO = {
    "tcp": {
        "nw_src": _masked(_ip4, _ip4),
        "nw_dst": _masked(_ip4, st.integers(0, 32).map(str)),
        "tp_src": st.integers(0, 65535).map(str),
        "tp_dst": _masked(st.integers(0, 65535).map(str), st.integers(0, 65535).map(hex)),
        "tcp_flags": _masked(st.integers(0, 0xFFF).map(hex), st.integers(0, 0xFFF).map(hex)),
        "nw_ttl": st.integers(0, 255).map(str),
        "nw_ecn": st.integers(0, 3).map(str),
        "ip_dscp": st.integers(0, 63).map(str),
        # "later" is left out: it forbids the L4 fields drawn beside it.
        "nw_frag": st.sampled_from(["no", "yes", "first", "not_later"]),
    },
    "udp6": {
        "ipv6_src": _masked(_ip6, st.integers(0, 128).map(str)),
        "ipv6_dst": _masked(_ip6, _ip6),
        "ipv6_label": _masked(st.integers(0, 0xFFFFF).map(hex), st.integers(0, 0xFFFFF).map(hex)),
        "udp_dst": st.integers(0, 65535).map(str),
    },
    "arp": {
        "arp_spa": _masked(_ip4, _ip4),
        "arp_tpa": _ip4,
        "arp_op": st.integers(0, 255).map(str),
        "arp_sha": _masked(_mac, _mac),
        "arp_tha": _mac,
    },
    "icmp6,icmp_type=135": {"nd_target": _masked(_ip6, _ip6), "nd_sll": _mac},
    "icmp": {"icmp_type": st.integers(0, 255).map(str), "icmp_code": st.integers(0, 255).map(str)},
    "": {"dl_vlan": st.integers(0, 4095).map(str), "dl_vlan_pcp": st.integers(0, 7).map(str)},
}


@st.composite
def match_texts(draw: st.DrawFn) -> str:
    proto = draw(st.sampled_from(sorted(_BY_PROTO)))
    fields = {**_COMMON, **_BY_PROTO[proto]}
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=8))
    items = [proto] if proto else []
    items += [f"{name}={draw(fields[name])}" for name in chosen]
    return ",".join(items)


@given(match_texts())
def test_parse_of_print_is_identity(text: str) -> None:
    match, _ = parse_match(text)
    printed = format_match(match)
    again, _ = parse_match(printed)
    assert again == match, printed
    assert format_match(again) == printed


@given(st.binary(min_size=14, max_size=120), st.integers(0, 0xFEFF))
def test_flow_lines_of_any_frame_parse_back_to_the_same_flow(frame: bytes, port: int) -> None:
    flow = flow_extract(frame, port)
    line = format_flow(flow)
    match, _ = parse_match(line)
    # Every field the line shows must read back to the flow's value.
    assert match.matches(flow.to_key())


def test_match_with_field_replaces_and_masks() -> None:
    m = Match().with_field("tp_dst", 0x1234, 0xFF00)
    assert m.get("tp_dst") == (0x1200, 0xFF00)
    m = m.with_field("tp_dst", 80)
    assert m.get("tp_dst") == (80, 0xFFFF)
    assert m.without_field("tp_dst") == Match()
