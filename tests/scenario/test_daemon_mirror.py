"""Port mirrors through pvs-vswitchd and our tools, on dummy ports.

Mirrors are made with pvs-vsctl exactly as the issue (and Open vSwitch's
documentation) writes them; frames, built with scapy, go in with
``netdev-dummy/receive``; the mirror's output port records what it sends
(``options:tx_pcap``), read back with scapy. The copies of ordinary ports are
compared with Open vSwitch 3.1 by tests/interop/test_ovs_mirror.py; here,
besides the daemon's side (configuration, revalidation, statistics, logs), is
what Open vSwitch cannot do: a mirror that selects a patch port copies the
traffic crossing it, also when that traffic is forwarded from the cache.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import rdpcap

from tests.daemon import running_daemon
from tests.scenario.core_helpers import ping
from tests.scenario.ofctl_helpers import inject, ok, port, port_counts

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MAC_A = "50:54:00:00:00:0a"
MAC_B = "50:54:00:00:00:0b"


def vsctl(rundir: Path, *args: str) -> str:
    return ok("vsctl", rundir, "--timeout=20", *args).strip()


def appctl(rundir: Path, *args: str) -> str:
    return ok("appctl", rundir, *args)


def sent(pcap: Path) -> list[bytes]:
    """The frames a dummy port sent, from its tx_pcap."""
    return [bytes(p) for p in rdpcap(str(pcap))] if pcap.stat().st_size else []


def hits(rundir: Path) -> int:
    """The datapath's cache hits, from dpif/show."""
    found = re.search(r"hit:(\d+)", appctl(rundir, "dpif/show"))
    assert found is not None
    return int(found[1])


def statistics(rundir: Path, mirror: str) -> str:
    return vsctl(rundir, "get", "Mirror", mirror, "statistics")


def one_bridge(rundir: Path) -> None:
    """br0 with p1 to p4; p3 and p4 record what they send (p3.pcap, p4.pcap in ``rundir``)."""
    vsctl(
        rundir,
        *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
        *port("br0", "p1", 1),
        *port("br0", "p2", 2),
        *port("br0", "p3", 3, "type=dummy", f"options:tx_pcap={rundir / 'p3.pcap'}"),
        *port("br0", "p4", 4, "type=dummy", f"options:tx_pcap={rundir / 'p4.pcap'}"),
    )


def test_a_mirror_made_as_in_the_issue_copies_what_it_selects(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        one_bridge(tmp_path)
        vsctl(
            tmp_path,
            *("--", "--id=@p", "get", "Port", "p1", "--", "--id=@o", "get", "Port", "p3"),
            *("--", "--id=@m", "create", "Mirror", "name=m0", "select-src-port=@p"),
            *("output-port=@o", "--", "add", "Bridge", "br0", "mirrors", "@m"),
        )
        appctl(tmp_path, "time/stop")
        requests = [ping(MAC_A, MAC_B, seq) for seq in range(1, 4)]
        replies = [ping(MAC_B, MAC_A, seq, request=False) for seq in range(1, 4)]
        for request, reply in zip(requests, replies, strict=True):
            inject(tmp_path, "p1", request)
            inject(tmp_path, "p2", reply)
        # Exactly the frames p1 received, unchanged; p2's replies are not
        # selected, and NORMAL does not flood to a mirror's output port
        # (the first request was flooded: B was not learned yet; p4 got it).
        assert sent(tmp_path / "p3.pcap") == requests
        assert all(p[ICMP].type == 8 for p in rdpcap(str(tmp_path / "p3.pcap")))
        assert sent(tmp_path / "p4.pcap") == requests[:1]
        appctl(tmp_path, "time/warp", "5000")
        size = sum(map(len, requests))
        assert statistics(tmp_path, "m0") == f"{{tx_bytes={size}, tx_packets=3}}"


def test_mirror_changes_reach_flows_already_cached(tmp_path: Path) -> None:
    """Adding, changing and removing a mirror revalidate the megaflows it affects."""
    with running_daemon(tmp_path):
        one_bridge(tmp_path)
        request = ping(MAC_A, MAC_B)
        # B is learned on p2: A's requests go to p2 alone, from the cache.
        inject(tmp_path, "p2", ping(MAC_B, "ff:ff:ff:ff:ff:ff"))
        inject(tmp_path, "p1", request)
        taps = (tmp_path / "p3.pcap", tmp_path / "p4.pcap")
        assert [len(sent(tap)) for tap in taps] == [1, 1]  # the broadcast only
        vsctl(
            tmp_path,
            *("--", "--id=@p", "get", "Port", "p1", "--", "--id=@o", "get", "Port", "p3"),
            *("--", "--id=@m", "create", "Mirror", "name=m0", "select-src-port=@p"),
            *("output-port=@o", "--", "add", "Bridge", "br0", "mirrors", "@m"),
        )
        inject(tmp_path, "p1", request)
        assert sent(taps[0])[1:] == [request]
        vsctl(
            tmp_path,
            "--",
            "--id=@o",
            "get",
            "Port",
            "p4",
            "--",
            "set",
            "Mirror",
            "m0",
            "output_port=@o",
        )
        inject(tmp_path, "p1", request)
        assert sent(taps[0])[1:] == [request]
        assert sent(taps[1])[1:] == [request]
        # What the output port receives goes nowhere while it is reserved.
        inject(tmp_path, "p4", ping(MAC_B, "ff:ff:ff:ff:ff:ff"))
        flows = appctl(tmp_path, "dpctl/dump-flows").splitlines()
        [from_p4] = [f for f in flows if "in_port(4)" in f]
        assert from_p4.endswith("actions:drop")
        vsctl(tmp_path, "clear", "Bridge", "br0", "mirrors")
        # No more copies; the mirror row went with its last reference, and p4
        # is an ordinary port again (a broadcast floods to it).
        inject(tmp_path, "p1", request)
        assert sent(taps[1])[1:] == [request]
        assert vsctl(tmp_path, "list", "Mirror") == ""
        inject(tmp_path, "p1", ping(MAC_A, "ff:ff:ff:ff:ff:ff"))
        assert [len(sent(tap)) for tap in taps] == [3, 3]


def test_a_mirror_that_cannot_run_is_logged_as_open_vswitch_logs_it(tmp_path: Path) -> None:
    log = tmp_path / "pvs-vswitchd.log"
    with running_daemon(tmp_path, [f"--log-file={log}"]):
        one_bridge(tmp_path)
        vsctl(
            tmp_path,
            *("--", "--id=@p", "get", "Port", "p1"),
            *("--", "--id=@m", "create", "Mirror", "name=m0", "select-src-port=@p"),
            *("--", "add", "Bridge", "br0", "mirrors", "@m"),
        )
        inject(tmp_path, "p1", ping(MAC_A, "ff:ff:ff:ff:ff:ff"))
        assert "|vswitchd|ERR|bridge br0: mirror m0 does not specify output; ignoring" in (
            log.read_text()
        )
        # Ignored: p3 is an ordinary port and gets the flooded frame, once.
        assert len(sent(tmp_path / "p3.pcap")) == 1


# -- patch ports ------------------------------------------------------------------------


@pytest.fixture
def patched(tmp_path: Path) -> Iterator[Path]:
    """br0 (p1, patch0, p4) and br1 (p3, patch1, p5); p4 and p5 record what they send.

    Mirror m0 on br0 selects patch0 both ways, out to p4; m1 on br1 selects
    only what enters br1 by patch1, out to p5.
    """
    with running_daemon(tmp_path):
        vsctl(
            tmp_path,
            *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
            *("--", "add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"),
            *port("br0", "p1", 1),
            *port("br1", "p3", 3),
            *port("br0", "p4", 4, "type=dummy", f"options:tx_pcap={tmp_path / 'p4.pcap'}"),
            *port("br1", "p5", 5, "type=dummy", f"options:tx_pcap={tmp_path / 'p5.pcap'}"),
            *port("br0", "patch0", 10, "type=patch", "options:peer=patch1"),
            *port("br1", "patch1", 11, "type=patch", "options:peer=patch0"),
        )
        vsctl(
            tmp_path,
            *("--", "--id=@p", "get", "Port", "patch0", "--", "--id=@o", "get", "Port", "p4"),
            *("--", "--id=@m", "create", "Mirror", "name=m0", "select-src-port=@p"),
            *("select-dst-port=@p", "output-port=@o", "--", "add", "Bridge", "br0"),
            *("mirrors", "@m"),
        )
        vsctl(
            tmp_path,
            *("--", "--id=@p", "get", "Port", "patch1", "--", "--id=@o", "get", "Port", "p5"),
            *("--", "--id=@m", "create", "Mirror", "name=m1", "select-src-port=@p"),
            *("output-port=@o", "--", "add", "Bridge", "br1", "mirrors", "@m"),
        )
        appctl(tmp_path, "time/stop")
        yield tmp_path


def test_a_mirror_on_a_patch_port_copies_what_crosses_it(patched: Path) -> None:
    requests = [ping(MAC_A, MAC_B, seq) for seq in range(1, 7)]
    replies = [ping(MAC_B, MAC_A, seq, request=False) for seq in range(1, 7)]
    # The first exchange teaches both bridges where A and B are.
    inject(patched, "p1", requests[0])
    inject(patched, "p3", replies[0])
    before = hits(patched)
    for request, reply in zip(requests[1:], replies[1:], strict=True):
        inject(patched, "p1", request)
        inject(patched, "p3", reply)
    # Ten frames, every one forwarded from the cache, copies included.
    assert hits(patched) - before == 10
    flows = appctl(patched, "dpctl/dump-flows").splitlines()
    # One megaflow per direction; the copies are outputs in it.
    to_br1 = [f for f in flows if "in_port(1)" in f and "dst=50:54:00:00:00:0b" in f]
    to_br0 = [f for f in flows if "in_port(3)" in f and "dst=50:54:00:00:00:0a" in f]
    assert len(to_br1) == 1
    assert len(to_br0) == 1
    assert re.search(r"actions:.*\b4\b.*\b5\b", to_br1[0]), to_br1
    assert re.search(r"actions:.*\b4\b", to_br0[0]), to_br0
    assert not re.search(r"actions:.*\b5\b", to_br0[0]), to_br0
    # p4 (m0: patch0 both ways) has every frame that crossed; p5 (m1: what
    # enters br1 by patch1) only the requests. Each exactly as it crossed.
    assert sent(patched / "p4.pcap") == [
        f for pair in zip(requests, replies, strict=True) for f in pair
    ]
    assert sent(patched / "p5.pcap") == requests
    appctl(patched, "time/warp", "5000")
    size = sum(map(len, requests))
    assert statistics(patched, "m1") == f"{{tx_bytes={size}, tx_packets=6}}"
    size += sum(map(len, replies))
    assert statistics(patched, "m0") == f"{{tx_bytes={size}, tx_packets=12}}"


def test_a_patch_port_copy_has_the_tags_of_the_crossing(patched: Path) -> None:
    """The copy is the packet as it crosses: here, tagged by the rule that sent it across."""
    ok("ofctl", patched, "add-flow", "br0", "in_port=1,actions=mod_vlan_vid:7,output:10")
    inject(patched, "p1", ping(MAC_A, MAC_B))
    for tap in ("p4.pcap", "p5.pcap"):
        [copy] = rdpcap(str(patched / tap))
        assert copy[Dot1Q].vlan == 7, tap
        assert copy[ICMP].type == 8, tap


def big_ping(seq: int) -> bytes:
    """A 200-byte echo request from A to B."""
    return bytes(Ether(src=MAC_A, dst=MAC_B) / IP() / ICMP(seq=seq) / Raw(bytes(158)))


def test_a_mirror_snaplen_cuts_its_copies_not_the_traffic(tmp_path: Path) -> None:
    """``snaplen`` keeps the first N bytes of each copy (cached flows too), not of the original."""
    with running_daemon(tmp_path):
        one_bridge(tmp_path)
        ok("ofctl", tmp_path, "add-flow", "br0", "in_port=1,actions=output:4")
        vsctl(
            tmp_path,
            *("--", "--id=@p", "get", "Port", "p1", "--", "--id=@o", "get", "Port", "p3"),
            *("--", "--id=@m", "create", "Mirror", "name=m0", "select-src-port=@p"),
            *("output-port=@o", "snaplen=64", "--", "add", "Bridge", "br0", "mirrors", "@m"),
        )
        frames = [big_ping(seq) for seq in range(1, 4)]
        for frame in frames:
            inject(tmp_path, "p1", frame)
        assert sent(tmp_path / "p3.pcap") == [frame[:64] for frame in frames]
        assert sent(tmp_path / "p4.pcap") == frames
        assert hits(tmp_path) == 2
        # Changing the snaplen reaches the cached flow; clearing it copies whole frames.
        vsctl(tmp_path, "set", "Mirror", "m0", "snaplen=100")
        inject(tmp_path, "p1", frames[0])
        vsctl(tmp_path, "clear", "Mirror", "m0", "snaplen")
        inject(tmp_path, "p1", frames[0])
        assert sent(tmp_path / "p3.pcap")[3:] == [frames[0][:100], frames[0]]


def test_output_with_max_len_cuts_that_output_only(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        one_bridge(tmp_path)
        ok("ofctl", tmp_path, "add-flow", "br0", "in_port=1,actions=output(port=3,max_len=60),4")
        frame = big_ping(1)
        inject(tmp_path, "p1", frame, count=2)
        assert sent(tmp_path / "p3.pcap") == [frame[:60]] * 2
        assert sent(tmp_path / "p4.pcap") == [frame] * 2
        flows = appctl(tmp_path, "dpctl/dump-flows")
        assert "actions:trunc(60),3,4" in flows
        # What the port sent is what its counters count.
        assert port_counts(tmp_path, "br0", "p3")[2:] == (2, 120)
