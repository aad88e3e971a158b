"""Differential: ``netdev-dummy/receive`` in Open vSwitch 3.1 and pvs-vswitchd.

Both switches get the same ``receive`` commands on dummy port p1 of br0,
whose one rule sends everything from p1 to p2: several frames in one
command, hex frames and datapath flows, flows padded with ``--len N``,
``--qid``, and the errors (with the frames before a bad argument already
received). The error replies must agree; then the frames p1 received
(``options:rxq_pcap``) and p2 sent (``options:tx_pcap``), read with scapy,
must be the same bytes in the same order, and so must p1's and p2's
counters (``ofctl dump-ports``) and the datapath's hits and misses (OVS
hands a dummy port's frames to the datapath one at a time).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from scapy.layers.l2 import Ether  # noqa: F401 - rdpcap reads Ethernet with it
from scapy.utils import rdpcap

from tests.interop.both import Both, Reply, both_started

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

pytestmark = pytest.mark.ovs

ETH = "eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07)"
IP4 = "eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto={},tos=0,ttl=64,frag={})"
IP6 = "eth_type(0x86dd),ipv6(src=2001:db8::1,dst=2001:db8::2,proto={},tclass=0,hlimit=64,frag=no)"
UDP4 = f"{ETH},{IP4.format(17, 'no')},udp(src=1,dst=2)"
TCP4 = f"{ETH},{IP4.format(6, 'no')},tcp(src=1,dst=2)"
TCP6 = f"{ETH},{IP6.format(6)},tcp(src=1,dst=2)"
UDP6 = f"{ETH},{IP6.format(17)},udp(src=1,dst=2)"
ARP = (
    f"{ETH},eth_type(0x0806),"
    "arp(sip=1.1.1.1,tip=2.2.2.2,op=1,sha=50:54:00:00:00:05,tha=00:00:00:00:00:00)"
)
VLAN_TCP4 = (
    f"{ETH},eth_type(0x8100),vlan(vid=10,pcp=3),encap({IP4.format(6, 'no')},tcp(src=1,dst=2))"
)
ND = "nd(target=::3,sll=00:00:00:00:00:05)"
#: A hex frame: a bare Ethernet header whose EtherType tells the frames apart.
HEX = "50540000000750540000000508{:02x}"

#: Commands that deliver every frame they name.
GOOD = [
    ("p1", f"{UDP4}"),  # OVS's 64 bytes of payload
    ("p1", UDP4, "--len", "100"),  # the UDP length counts the padding twice
    ("p1", TCP4, "--len", "60"),
    ("p1", TCP6, "--len", "74"),  # exactly the bare frame: nothing added
    ("p1", UDP6, "--len", "90"),
    ("p1", f"{ETH},{IP4.format(1, 'no')},icmp(type=8,code=0)", "--len", "80"),
    ("p1", f"{ETH},{IP6.format(58)},icmpv6(type=128,code=0)", "--len", "80"),
    (
        "p1",
        f"{ETH},{IP6.format(58)},icmpv6(type=135,code=0),nd(target=::3,sll=00:00:00:00:00:05)",
        "--len",
        "100",
    ),
    ("p1", ARP, "--len", "70"),
    ("p1", ETH, "--len", "70"),  # 802.3: the length field is the frame's size
    ("p1", VLAN_TCP4, "--len", "100"),
    ("p1", f"{ETH},{IP4.format(17, 'later')}", "--len", "80"),
    ("p1", f"{ETH},{IP4.format(17, 'first')},udp(src=1,dst=2)", "--len", "90"),
    ("p1", f"{ETH},{IP4.format(132, 'no')},sctp(src=1,dst=2)", "--len", "80"),
    ("p1", f"{ETH},{IP4.format(47, 'no')}", "--len", "80"),
    # strtol(): blanks and a sign before the digits, anything after them.
    ("p1", TCP4, "--len", " +61x"),
    # Several frames in one command, hex and flows.
    ("p1", HEX.format(1), TCP4, UDP4, "--len", "64", HEX.format(2)),
    ("p1", "--qid", "0", HEX.format(3), HEX.format(3)),
    ("p1", "--qid", "x", HEX.format(4)),  # not a number: queue 0
    ("p1", "--qid", "0"),  # nothing to receive
    ("p1", "5054 0000 0007 5054 0000 0005 0805\n00"),  # blanks between bytes
    ("br0", HEX.format(6)),  # the bridge's own port is a dummy port too
]

#: Commands that fail after delivering the frames before the bad argument.
PARTLY = [
    ("p1", HEX.format(0x11), "garbage", HEX.format(0x12)),
    ("p1", HEX.format(0x13), ARP, "--len", "59", HEX.format(0x14)),
    ("p1", HEX.format(0x15), UDP6, "--len", "61", HEX.format(0x16)),  # longer than 61
    ("p1", HEX.format(0x17), "--len", "80"),  # --len follows only a flow
    ("p1", HEX.format(0x18), "--qid", "0"),  # --qid only comes first
    (
        "p1",
        HEX.format(0x19),
        f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=1.1.1.1",
        HEX.format(0x1A),
    ),
]

#: Commands that deliver nothing.
REFUSED = [
    ("nosuch", HEX.format(0x21)),
    ("t1", HEX.format(0x22)),  # a tunnel port
    ("pa", HEX.format(0x23)),  # a patch port
    ("nosuch", "--qid", "5"),
    ("p1", "--qid", "1", HEX.format(0x24)),
    ("p1", "--qid", "-1", HEX.format(0x25)),
    ("p1", "--qid"),
    ("p1", "garbage"),
    ("p1", "garbage", "--len", "10"),  # the length is checked before the flow
    ("p1", ETH, "--len", "0x50"),  # strtol() base 10: 0
    ("p1", ETH, "--len", "-70"),
    ("p1", "505400000007505400000005"),  # 12 bytes: too short for hex, no flow
    ("p1", "5 054000000075054000000050826"),  # a blank inside a byte
    ("p1", "50540000000750540000000508 2"),  # an odd digit at the end
    ("p1", f"in_port(1),{ETH},foo(1),in_port(2)"),  # the rest from the bad one
    ("p1", f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=1.1.1.1,dst=zz)"),
    ("p1", "tunnel(tun_id=0x1,src=1.1.1.1,dst=2.2.2.2),in_port(1)"),
]


def add_ports(both: Both, name: str, tmp: Path) -> None:
    """Ports p1 and p2 (dummy), t1 (vxlan) and pa (patch) on br0; p1 and p2 record frames."""
    ports = [
        *("--", "add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=dummy"),
        *("ofport_request=1", f"options:rxq_pcap={tmp / 'p1-rx.pcap'}"),
        *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy"),
        *("ofport_request=2", f"options:tx_pcap={tmp / 'p2-tx.pcap'}"),
        *("--", "add-port", "br0", "t1", "--", "set", "Interface", "t1", "type=vxlan"),
        *("options:remote_ip=1.1.2.92", "ofport_request=3"),
        *("--", "add-port", "br0", "pa", "--", "set", "Interface", "pa", "type=patch"),
        *("options:peer=pb", "ofport_request=4"),
    ]
    reply = both.ovs("vsctl", *ports) if name == "ovs" else both.pvs("vsctl", *ports)
    assert reply[0] == 0, (name, reply)


def whole_reply(done: subprocess.CompletedProcess[str]) -> Reply:
    """The reply with our programs' names as OVS's: the whole error is compared.

    (An empty error, as for a flow longer than its ``--len``, leaves only the
    tool's own line.)
    """
    stderr = done.stderr.replace("pvs-appctl", "ovs-appctl").replace(
        "pvs-vswitchd", "ovs-vswitchd"
    )
    return done.returncode, done.stdout, stderr


def receive_usage(listing: str) -> list[str]:
    return [line for line in listing.splitlines() if "netdev-dummy/receive" in line]


def frames(pcap: Path) -> list[bytes]:
    return [bytes(p) for p in rdpcap(str(pcap))] if pcap.exists() and pcap.stat().st_size else []


def ovs_frames(pcap: Path, count: int) -> list[bytes]:
    """What Open vSwitch recorded, once it has handled the ``count`` frames it was given."""
    deadline = time.monotonic() + 10
    while True:
        try:
            got = frames(pcap)
        except Exception:  # noqa: BLE001 - a record still being written
            got = []
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_receive_delivers_and_refuses_as_ovs(tmp_path: Path) -> None:
    ovs_dir, pvs_dir = tmp_path / "ovs", tmp_path / "pvs"
    ovs_dir.mkdir()
    pvs_dir.mkdir()
    with both_started(pvs_dir, whole_reply) as both:
        add_ports(both, "ovs", ovs_dir)
        add_ports(both, "pvs", pvs_dir)
        both.do("ofctl", "add-flow", "br0", "in_port=1,actions=output:2")
        for args in GOOD:
            assert both.same("appctl", "netdev-dummy/receive", *args)[0] == 0, args
        for args in PARTLY + REFUSED:
            assert both.same("appctl", "netdev-dummy/receive", *args)[0] == 2, args
        both.same("appctl", "list-commands", view=receive_usage)

        received = frames(pvs_dir / "p1-rx.pcap")
        sent = frames(pvs_dir / "p2-tx.pcap")
        assert received == ovs_frames(ovs_dir / "p1-rx.pcap", len(received))
        assert sent == ovs_frames(ovs_dir / "p2-tx.pcap", len(sent))
        # Every frame p1 got went out of p2, the earlier frames of the
        # commands that failed among them.
        assert len(sent) == len(received)
        assert HEX.format(0x11) in {f.hex() for f in sent}
        assert HEX.format(0x12) not in {f.hex() for f in sent}
        assert HEX.format(0x19) in {f.hex() for f in sent}

        for port in ("p1", "p2"):
            both.same("ofctl", "dump-ports", "br0", port)
        hits = both.same("appctl", "dpif/show", view=lambda out: out.splitlines()[0])
        assert "hit:" in hits[1]
