"""Differential tests: our datapath actions against the real Open vSwitch's.

Two questions are asked of Open vSwitch 3.1 (a private sandbox with a dummy
datapath, see ovs_sandbox.py) and of pyvswitch:

* how datapath action text is normalised: ``dpctl/parse-actions``, and
  ``dpctl/add-flow`` read back with ``dpctl/dump-flows``, against
  :func:`format_odp_actions` of :func:`parse_odp_actions`;
* what bytes the actions make of a packet: a flow carrying them is put into
  OVS's datapath with ``dpctl/add-flow``, the packet is injected on p1 with
  ``netdev-dummy/receive``, and what OVS sends on p2 (``options:tx_pcap``)
  must equal, byte for byte, what :func:`execute` returns for port 2.

The bridge has no OpenFlow rules (fail-mode secure), so anything on p2 came
from our datapath flow. ovs-vswitchd's revalidator removes datapath flows it
did not install itself, usually within a second; a flow that went before its
packet arrived is put back and the packet sent again.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP

from pyvswitch.dpif.actions import OdpPushVlan, OdpUserspace
from pyvswitch.dpif.actions_text import format_odp_actions, parse_odp_actions
from pyvswitch.dpif.execute import execute
from pyvswitch.flow import extract_key
from pyvswitch.flow.odp_text import format_odp_flow
from pyvswitch.packet.pcap import PcapError, read_all
from tests.unit.test_dpif_actions_text import ACTIONS, RECORDED

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from scapy.packet import Packet

    from pyvswitch.dpif.actions import OdpAction
    from tests.interop.ovs_sandbox import OvsSandbox

pytestmark = pytest.mark.ovs

SRC = "50:54:00:00:00:05"
DST = "50:54:00:00:00:07"
OVS_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# An exact datapath key for the normalisation checks (any flow will do).
KEY = (
    "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,tos=0,ttl=64,frag=no),tcp(src=1,dst=2)"
)


def ovs_parse_actions(ovs: OvsSandbox, text: str) -> str:
    return ovs.appctl("dpctl/parse-actions", text).stdout.strip()


def ovs_dumped_actions(ovs: OvsSandbox, text: str) -> str:
    """Put a flow with ``text`` as its actions, and read them back from dump-flows."""
    for _ in range(10):
        ovs.appctl("dpctl/del-flows")
        ovs.appctl("dpctl/add-flow", KEY, text)
        dump = ovs.appctl("dpctl/dump-flows").stdout
        for line in dump.splitlines():
            if " actions:" in line:
                ovs.appctl("dpctl/del-flows")
                return line.split(" actions:", 1)[1].strip()
    raise AssertionError(f"the flow with actions {text!r} never showed in dpctl/dump-flows")


# -- (a) text -----------------------------------------------------------------------

ACCEPTED = [given for given, _ in RECORDED]


@pytest.mark.parametrize("text", ACCEPTED)
def test_action_text_normalises_as_in_ovs(ovs: OvsSandbox, text: str) -> None:
    assert format_odp_actions(parse_odp_actions(text)) == ovs_parse_actions(ovs, text)


@pytest.mark.parametrize(
    "text",
    [
        "2,3",
        "push_vlan(tpid=0x88a8,vid=10,pcp=0),2,pop_vlan,3",
        "set(eth(src=00:11:22:33:44:55)),set(ipv4(ttl=3,src=1.2.3.4)),set(tcp(dst=99)),2",
        "set(ipv4(tos=0x20/0xfc)),2",
        "set(ipv6(src=2001:db8::9/ffff:ffff:ffff:ffff::,hlimit=1)),2",
        "set(udp(src=80/0xff00)),2",
        "userspace(pid=0,slow_path(action))",
        "drop",
    ],
)
def test_action_text_reads_back_from_dump_flows_as_ours(ovs: OvsSandbox, text: str) -> None:
    assert format_odp_actions(parse_odp_actions(text)) == ovs_dumped_actions(ovs, text)


def _ovs_friendly(actions: list[OdpAction]) -> bool:
    # OVS fills an empty userspace() with userdata it makes up, and pads
    # userdata to 8 bytes; those forms are not ours to print.
    return all(not isinstance(a, OdpUserspace) or a.reason == "slow_path(action)" for a in actions)


@OVS_SETTINGS
@given(ACTIONS.filter(_ovs_friendly))
def test_random_actions_print_as_ovs_normalises_them(
    ovs: OvsSandbox, actions: list[OdpAction]
) -> None:
    text = format_odp_actions(actions)
    assert ovs_parse_actions(ovs, text) == text


# -- (b) bytes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def p2_pcap(ovs: OvsSandbox) -> Iterator[Path]:
    """What OVS sends on p2, as a growing pcap file; removed again afterwards."""
    pcap = ovs.dir / "p2-tx.pcap"
    ovs.vsctl("set", "Interface", "p2", f"options:tx_pcap={pcap}")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (pcap.exists() and pcap.stat().st_size >= 24):
            time.sleep(0.05)
        yield pcap
    finally:
        ovs.vsctl("remove", "Interface", "p2", "options", "tx_pcap")
        ovs.appctl("dpctl/del-flows")


def _records(pcap: Path) -> list[bytes]:
    # The file may end in a record OVS is still writing: read what is whole.
    with contextlib.suppress(PcapError):
        return [r.data for r in read_all(pcap.read_bytes())]
    return []


def ovs_sends(ovs: OvsSandbox, pcap: Path, frame: bytes, actions: str, count: int) -> list[bytes]:
    """The frames OVS sends on p2 when ``frame`` arrives on p1 and hits a flow with ``actions``."""
    key = format_odp_flow(extract_key(frame, 1))
    for _ in range(10):
        ovs.appctl("dpctl/del-flows")
        before = len(_records(pcap))
        ovs.appctl("dpctl/add-flow", key, actions)
        ovs.appctl("netdev-dummy/receive", "p1", frame.hex())
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            records = _records(pcap)
            if len(records) >= before + count:
                ovs.appctl("dpctl/del-flows")
                return records[before:]
            time.sleep(0.02)
    raise AssertionError(f"OVS never sent {count} frames on p2 for {actions!r}")


def ours(frame: bytes, actions: str) -> list[bytes]:
    return [sent for port, sent in execute(frame, parse_odp_actions(actions)) if port == 2]


def eth() -> Ether:
    return Ether(src=SRC, dst=DST)


def udp_port_making_checksum_zero(frame: bytes) -> int:
    """The UDP source port whose incremental update (RFC 1624) yields a checksum of 0."""
    csum = Ether(frame)[UDP].chksum
    old = Ether(frame)[UDP].sport
    return int((0xFFFF - (~csum & 0xFFFF) - (~old & 0xFFFF)) % 0xFFFF)


V4_UDP = bytes(
    eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=53) / (b"x" * 30)
)

CASES = [
    (
        "ipv4-tcp-addresses-ports-ttl",
        bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / (b"data" * 8)),
        "set(ipv4(src=192.0.2.9,dst=198.51.100.7,ttl=3)),set(tcp(src=4242,dst=80)),2",
    ),
    (
        "vlan-eth-dscp-udp-then-pop",
        bytes(
            eth()
            / Dot1Q(vlan=10, prio=2)
            / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x25)
            / UDP(sport=5, dport=6)
            / b"payload"
        ),
        "set(eth(src=00:11:22:33:44:55,dst=00:11:22:33:44:66)),set(ipv4(tos=0x20/0xfc)),"
        "set(udp(dst=99)),2,pop_vlan,2",
    ),
    (
        "udp-checksum-zero-stays-zero",
        bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2, chksum=0) / b"z"),
        "set(ipv4(src=1.2.3.4,dst=5.6.7.8)),set(udp(src=7,dst=8)),2",
    ),
    (
        "udp-checksum-made-zero-is-ffff",
        V4_UDP,
        f"set(udp(src={udp_port_making_checksum_zero(V4_UDP)})),2",
    ),
    (
        "ipv6-tcp-everything",
        bytes(
            eth()
            / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x12, fl=0x54321, hlim=64)
            / TCP(sport=1, dport=2)
            / b"six"
        ),
        "set(ipv6(src=fd00::7,dst=2001:db8:ffff::1,label=0xabcde,tclass=0xb8,hlimit=9)),"
        "set(tcp(dst=443)),2",
    ),
    (
        "icmpv6-address-change",
        bytes(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(data=b"hi")),
        "set(ipv6(src=2001:db8::99)),2",
    ),
    (
        "icmp-type-code",
        bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8) / b"ping"),
        "set(icmp(type=0,code=0)),2",
    ),
    (
        "sctp-port-crc",
        bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / SCTP(sport=1, dport=2) / b"sctp"),
        "set(sctp(src=3000)),2",
    ),
    (
        "push-two-tags-set-after",
        bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2)),
        "push_vlan(vid=10,pcp=3),push_vlan(tpid=0x88a8,vid=20,pcp=0),2,"
        "set(ipv4(ttl=1)),2,pop_vlan,2",
    ),
    (
        "qinq-masked",
        bytes(
            eth()
            / Dot1AD(vlan=100)
            / Dot1Q(vlan=10)
            / IP(src="10.0.0.1", dst="10.0.0.2")
            / UDP(sport=1, dport=2)
        ),
        "set(eth(dst=01:00:00:00:00:00/01:00:00:00:00:00)),"
        "set(ipv4(src=192.168.0.0/255.255.0.0,ttl=1/0xf)),set(udp(src=0x1200/0xff00)),2",
    ),
]


@pytest.mark.parametrize(("frame", "actions"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_ovs_sends_the_bytes_we_compute(
    ovs: OvsSandbox, p2_pcap: Path, frame: bytes, actions: str
) -> None:
    expected = ours(frame, actions)
    got = ovs_sends(ovs, p2_pcap, frame, actions, len(expected))
    assert [g.hex() for g in got] == [e.hex() for e in expected]


@st.composite
def frames_and_sets(draw: st.DrawFn) -> tuple[bytes, str]:
    """A random TCP, UDP or ICMPv6 packet, and random set actions for its headers."""
    l2 = eth()
    if draw(st.booleans()):
        l2 = l2 / Dot1Q(vlan=draw(st.integers(0, 4095)))
    six = draw(st.booleans())
    l4_name = draw(st.sampled_from(["tcp", "udp"] + (["icmp6"] if six else [])))
    l3: Packet
    l4: Packet
    if six:
        l3 = IPv6(
            src="2001:db8::1",
            dst="2001:db8::2",
            tc=draw(st.integers(0, 255)),
            fl=draw(st.integers(0, 0xFFFFF)),
        )
    else:
        l3 = IP(src="10.0.0.1", dst="10.0.0.2", tos=draw(st.integers(0, 255)))
    if l4_name == "tcp":
        l4 = TCP(sport=draw(st.integers(0, 65535)), dport=draw(st.integers(0, 65535)))
    elif l4_name == "udp":
        l4 = UDP(sport=draw(st.integers(0, 65535)), dport=draw(st.integers(0, 65535)))
    else:
        l4 = ICMPv6EchoRequest()
    frame = bytes(l2 / l3 / l4 / draw(st.binary(max_size=20)))

    def masked(bits: int, fmt: str) -> str:
        full = (1 << bits) - 1
        mask = draw(st.sampled_from([full, draw(st.integers(1, full))]))
        # Translation (and the kernel datapath, which checks) leaves no bit
        # of a masked value outside its mask; see execute.py.
        value = draw(st.integers(0, full)) & mask
        if fmt == "ip4":
            text = ".".join(str(b) for b in value.to_bytes(4, "big"))
            mtext = ".".join(str(b) for b in mask.to_bytes(4, "big"))
        elif fmt == "ip6":
            text = str(ipaddress.IPv6Address(value))
            mtext = str(ipaddress.IPv6Address(mask))
        else:
            text, mtext = str(value), hex(mask)
        return text if mask == full else f"{text}/{mtext}"

    parts = []
    if six:
        parts.append(
            f"set(ipv6(src={masked(128, 'ip6')},dst={masked(128, 'ip6')},"
            f"label={masked(20, 'dec')},tclass={masked(8, 'dec')},hlimit={masked(8, 'dec')}))"
        )
    else:
        parts.append(
            f"set(ipv4(src={masked(32, 'ip4')},dst={masked(32, 'ip4')},"
            f"tos={masked(8, 'dec')},ttl={masked(8, 'dec')}))"
        )
    if l4_name in ("tcp", "udp"):
        parts.append(f"set({l4_name}(src={masked(16, 'dec')},dst={masked(16, 'dec')}))")
    return frame, ",".join([*parts, "2"])


@OVS_SETTINGS
@given(frames_and_sets())
def test_random_sets_send_the_bytes_we_compute(
    ovs: OvsSandbox, p2_pcap: Path, case: tuple[bytes, str]
) -> None:
    frame, actions = case
    expected = ours(frame, actions)
    got = ovs_sends(ovs, p2_pcap, frame, actions, len(expected))
    assert [g.hex() for g in got] == [e.hex() for e in expected], actions


def test_pushing_a_tag_needs_no_parse(ovs: OvsSandbox, p2_pcap: Path) -> None:
    # A frame too short to have an IP header still gets its tag pushed.
    frame = bytes.fromhex("505400000007505400000005") + b"\x12\x34" + b"\x00" * 46
    expected = ours(frame, "push_vlan(vid=5,pcp=1),2")
    assert execute(frame, [OdpPushVlan(5, 1)]) == []
    assert ovs_sends(ovs, p2_pcap, frame, "push_vlan(vid=5,pcp=1),2", 1) == expected
