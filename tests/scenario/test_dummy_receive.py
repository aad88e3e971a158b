"""``pvs-appctl netdev-dummy/receive``: several frames per command, ``--len``, ``--qid``, errors.

The command takes what Open vSwitch 3.1's does (``NAME [--qid N]
PACKET|FLOW [--len N]...``), and tests/interop/test_ovs_dummy_receive.py
compares its frames, counters and errors with OVS's. Here a pvs-vswitchd
with br0 (p1 to p2 by one rule; p2 records what it sends with
``options:tx_pcap``) shows what a user sees: the frames, read back with
scapy, their padding and lengths, and the exact replies.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import ok, port, port_counts, tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from scapy.packet import Packet

ETH = "eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07)"
UDP4 = (
    f"{ETH},eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),"
    "udp(src=1,dst=2)"
)
TCP4 = UDP4.replace("proto=17", "proto=6").replace("udp(", "tcp(")
UDP6 = (
    f"{ETH},eth_type(0x86dd),ipv6(src=2001:db8::1,dst=2001:db8::2,proto=17,tclass=0,"
    "hlimit=64,frag=no),udp(src=1,dst=2)"
)
#: A bare Ethernet header (14 bytes) whose EtherType tells the frames apart.
HEX = "50540000000750540000000508{:02x}"
#: What pvs-appctl adds after the daemon's error.
SERVER_ERROR = "pvs-appctl: pvs-vswitchd: server returned an error\n"


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Path]:
    """A daemon with br0: p1 and p2 (dummy, p2 records what it sends), a patch port."""
    with running_daemon(tmp_path):
        ok(
            "vsctl",
            tmp_path,
            "--timeout=20",
            *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
            "fail-mode=secure",
            *port("br0", "p1", 1),
            *port("br0", "p2", 2, "type=dummy", f"options:tx_pcap={tmp_path / 'p2.pcap'}"),
            *port("br0", "pa", 3, "type=patch", "options:peer=pb"),
        )
        ok("ofctl", tmp_path, "add-flow", "br0", "in_port=1,actions=output:2")
        yield tmp_path


def receive(rundir: Path, *args: str) -> tuple[int, str]:
    """(exit status, standard error) of one ``netdev-dummy/receive``."""
    done = tool("appctl", rundir, "netdev-dummy/receive", *args)
    assert done.stdout == ""
    return done.returncode, done.stderr


def refused(rundir: Path, *args: str) -> str:
    """The daemon's error for a ``receive`` that fails (pvs-appctl's own line checked)."""
    status, stderr = receive(rundir, *args)
    assert status == 2, (args, stderr)
    assert stderr.endswith(SERVER_ERROR), stderr
    return stderr.removesuffix(SERVER_ERROR)


def sent(rundir: Path) -> list[bytes]:
    pcap = rundir / "p2.pcap"
    return [bytes(p) for p in rdpcap(str(pcap))] if pcap.stat().st_size else []


def checksums(frame: Packet, *layers: type[Packet]) -> list[int]:
    return [frame[layer].chksum for layer in layers]


def recomputed(frame: Packet, *layers: type[Packet]) -> list[int]:
    """The checksums scapy computes for ``frame``'s headers as they are."""
    copy = frame.copy()
    for layer in layers:
        del copy[layer].chksum
    return checksums(Ether(bytes(copy)), *layers)


def test_several_frames_in_one_command_arrive_in_order(switch: Path) -> None:
    assert receive(switch, "p1", HEX.format(1), UDP4, TCP4, "--len", "60", HEX.format(2)) == (
        0,
        "",
    )
    frames = sent(switch)
    assert [len(f) for f in frames] == [14, 106, 60, 14]
    assert frames[0].hex() == HEX.format(1)
    assert frames[3].hex() == HEX.format(2)
    # Without --len a flow's frame carries OVS's 64 bytes counting up from 0.
    assert bytes(Ether(frames[1])[UDP].payload) == bytes(range(64))
    assert port_counts(switch, "br0", "p1") == (4, 194, 0, 0)
    assert port_counts(switch, "br0", "p2") == (0, 0, 4, 194)


def test_the_frames_of_one_command_are_received_one_at_a_time(switch: Path) -> None:
    """The first of two same frames misses the cache and makes the megaflow the second hits."""
    receive(switch, "p1", HEX.format(3), HEX.format(3))
    show = ok("appctl", switch, "dpif/show")
    assert re.search(r"hit:1 missed:1\b", show), show


def test_len_pads_a_flows_frame_with_zeros_and_fixes_its_headers(switch: Path) -> None:
    receive(switch, "p1", TCP4, "--len", "100", UDP4, "--len", "100", UDP6, "--len", "100")
    tcp4, udp4, udp6 = (Ether(f) for f in sent(switch))
    assert [len(tcp4), len(udp4), len(udp6)] == [100, 100, 100]
    # The bare TCP frame is 54 bytes: 46 zeros follow, the IPv4 total
    # length counts them and both checksums cover them.
    assert bytes(tcp4)[54:] == bytes(46)
    assert tcp4[IP].len == 86
    assert tcp4[TCP].payload.load == bytes(46)
    assert checksums(tcp4, IP, TCP) == recomputed(tcp4, IP, TCP)
    # UDP's length is Open vSwitch's: the 58 bytes of padding counted twice.
    assert udp4[IP].len == 86
    assert udp4[UDP].len == 8 + 2 * 58
    assert bytes(udp4)[42:] == bytes(58)
    assert udp6[IPv6].plen == 100 - 54
    assert udp6[UDP].len == 8 + 2 * 38  # the bare frame is 62 bytes
    # The UDP checksum covers the padding; scapy's pseudo-header length is
    # the segment's (not the UDP length field), as OVS's is.
    assert checksums(udp4, IP, UDP) == recomputed(udp4, IP, UDP)
    assert checksums(udp6, UDP) == recomputed(udp6, UDP)


def test_len_of_a_frame_without_ip(switch: Path) -> None:
    """An 802.3 frame's length field says the padded size; other frames just get zeros."""
    arp = f"{ETH},eth_type(0x0806),arp(sip=1.1.1.1,tip=2.2.2.2,op=1,sha=00:00:00:00:00:05)"
    receive(switch, "p1", ETH, "--len", "70", arp, "--len", "61")
    frame_8023, frame_arp = sent(switch)
    assert frame_8023 == bytes.fromhex("505400000007505400000005") + (70).to_bytes(2) + bytes(56)
    assert len(frame_arp) == 61
    assert frame_arp[42:] == bytes(19)


def test_a_frame_exactly_the_len_is_unchanged_and_a_longer_one_is_refused(switch: Path) -> None:
    # Bare, a TCP/IPv4 frame is 54 bytes, UDP/IPv6 62.
    receive(switch, "p1", UDP6, "--len", "62")
    assert len(sent(switch)[0]) == 62
    # Open vSwitch refuses a frame longer than its --len with an empty error.
    assert refused(switch, "p1", UDP6, "--len", "61") == ""


def test_len_is_read_as_strtol_reads_it(switch: Path) -> None:
    receive(switch, "p1", TCP4, "--len", " +61 bytes", TCP4, "--len", "4294967359")
    assert [len(f) for f in sent(switch)] == [61, 63]  # 2**32 + 63 kept in an int is 63


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("p1", TCP4, "--len", "59"), "too small packet len\n"),
        (("p1", TCP4, "--len", "0x60"), "too small packet len\n"),
        (("p1", "not a flow", "--len", "-1"), "too small packet len\n"),
        # Open vSwitch 3.1 crashes here; we say what is missing.
        (("p1", TCP4, "--len"), "--len needs a packet length after it\n"),
        # Open vSwitch builds any size; no frame is longer than 65535 bytes.
        (("p1", TCP4, "--len", "65536"), "packet len 65536 is too large (at most 65535)\n"),
    ],
)
def test_bad_lengths(switch: Path, args: tuple[str, ...], error: str) -> None:
    assert refused(switch, *args) == error
    assert sent(switch) == []


def test_qid_zero_is_the_one_queue(switch: Path) -> None:
    assert receive(switch, "p1", "--qid", "0", HEX.format(4)) == (0, "")
    assert receive(switch, "p1", "--qid", "zero", HEX.format(5)) == (0, "")  # strtol: 0
    assert receive(switch, "p1", "--qid", "0") == (0, "")
    assert refused(switch, "p1", "--qid", "1", HEX.format(6)) == "bad rx queue id.\n"
    assert refused(switch, "p1", "--qid", "-1", HEX.format(6)) == "bad rx queue id.\n"
    # Alone, or after a frame, --qid is read as a frame or flow.
    assert refused(switch, "p1", "--qid") == "syntax error at --qid\n"
    assert [f.hex() for f in sent(switch)] == [HEX.format(4), HEX.format(5)]


def test_frames_before_a_bad_argument_are_received(switch: Path) -> None:
    assert refused(switch, "p1", HEX.format(7), "garbage", HEX.format(8)) == (
        "syntax error at garbage\n"
    )
    assert refused(switch, "p1", HEX.format(9), "--len", "80") == "syntax error at --len\n"
    assert refused(switch, "p1", HEX.format(10), TCP4, "--len", "20") == "too small packet len\n"
    assert [f.hex() for f in sent(switch)] == [HEX.format(n) for n in (7, 9, 10)]


def test_syntax_errors_name_the_rest_from_the_bad_attribute(switch: Path) -> None:
    bad = f"in_port(1),{ETH},eth_type(0x0800),ipv4(src=1.1.1.1,dst=zz),tcp(src=1)"
    assert refused(switch, "p1", bad) == "syntax error at ipv4(src=1.1.1.1,dst=zz),tcp(src=1)\n"
    unclosed = f"{ETH},eth_type(0x0800),ipv4(src=1.1.1.1"
    assert refused(switch, "p1", unclosed) == "syntax error at ipv4(src=1.1.1.1\n"


def test_hex_frames_are_two_digit_bytes_with_blanks_between(switch: Path) -> None:
    assert receive(switch, "p1", "5054 0000 0007\t5054 0000 0005\n0800") == (0, "")
    # A blank inside a byte, an odd digit or fewer than 14 bytes: not a
    # frame, so read as a flow, which it is not either.
    for text in ("5 0540000000750540000000508", "5054000000075054000000050800 1", HEX[:24]):
        assert refused(switch, "p1", text) == f"syntax error at {text}\n"
    assert [f.hex() for f in sent(switch)] == ["5054000000075054000000050800"]


@pytest.mark.parametrize("name", ["nosuch", "pa"])
def test_only_dummy_ports_receive(switch: Path, name: str) -> None:
    """Open vSwitch gives one answer for an unknown port and a port of another kind."""
    assert refused(switch, name, HEX.format(11)) == "no such dummy netdev\n"
    assert refused(switch, name, "--qid", "7") == "no such dummy netdev\n"


def test_list_commands_shows_ovs_usage(switch: Path) -> None:
    listing = ok("appctl", switch, "list-commands")
    assert (
        "  netdev-dummy/receive    name [--qid queue_id] packet|flow [--len packet_len]\n"
        in listing
    )
