"""pvs-tcpdump through the real daemon, on dummy ports: patch ports included.

Two dummy bridges joined by the patch pair patch0/patch1 (br0: p1, p2,
patch0; br1: p3, patch1; NORMAL). Frames built with scapy are injected with
``netdev-dummy/receive``; pvs-tcpdump writes pcapng, which is read back with
our reader, ``tcpdump -r`` and ``tshark -r``: every frame injected, each in
its direction, and only what the filter keeps. Open vSwitch 3.1 captures
nothing on a patch port (the issue measured it); this is the difference.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from pyvswitch.capture.pcapng_stream import BlockReader, read_statistics
from pyvswitch.packet.pcapng import Direction, read_all, section_header
from pyvswitch.vswitchd.capture import Capture, _compile
from tests.scenario.capture_helpers import (
    INBOUND,
    OUTBOUND,
    Tcpdump,
    packets,
    patched_switch,
    show,
    tcpdump_lines,
    tshark_fields,
)
from tests.scenario.ofctl_helpers import inject, ok, port_counts, tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MAC_A = "50:54:00:00:00:05"
MAC_B = "50:54:00:00:00:07"


def request(seq: int) -> bytes:
    """An echo request from A (on p1, br0) to B (on p3, br1)."""
    return bytes(
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src="192.0.2.1", dst="192.0.2.2")
        / ICMP(type=8, id=7, seq=seq)
        / (b"x" * 30)
    )


def reply(seq: int) -> bytes:
    """B's echo reply to A."""
    return bytes(
        Ether(src=MAC_B, dst=MAC_A)
        / IP(src="192.0.2.2", dst="192.0.2.1")
        / ICMP(type=0, id=7, seq=seq)
        / (b"x" * 30)
    )


def datagram(n: int) -> bytes:
    """A UDP datagram from A to B (same MACs as the pings: the same megaflow)."""
    return bytes(
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src="192.0.2.1", dst="192.0.2.2")
        / UDP(sport=4000 + n, dport=53)
        / (b"q" * 20)
    )


@pytest.fixture
def rundir(tmp_path: Path) -> Iterator[Path]:
    with patched_switch(tmp_path / "run", request(0), reply(0)) as run:
        yield run


def start(rundir: Path, tmp_path: Path, started: list[Tcpdump], *args: str) -> Tcpdump:
    capture = Tcpdump(rundir, tmp_path, *args)
    started.append(capture)
    capture.wait_attached()
    return capture


def odp_ports(rundir: Path) -> dict[str, str]:
    """Port name -> datapath port number, from dpif/show."""
    found = re.findall(r"^\s+(\S+) \d+/(\d+):", ok("appctl", rundir, "dpif/show"), re.MULTILINE)
    return dict(found)


def ip_flows(rundir: Path) -> list[str]:
    return [f for f in ok("appctl", rundir, "dpctl/dump-flows").splitlines() if "0x0800" in f]


def hits(rundir: Path) -> int:
    found = re.search(r"hit:(\d+)", ok("appctl", rundir, "dpif/show"))
    assert found is not None
    return int(found[1])


def summary(stderr: str) -> tuple[int, int, int]:
    """(captured, received by filter, dropped by switch) from pvs-tcpdump's last lines."""
    found = re.search(
        r"(\d+) packets? captured\n(\d+) packets? received by filter\n"
        r"(\d+) packets? dropped by switch\n",
        stderr,
    )
    assert found is not None, stderr
    return int(found[1]), int(found[2]), int(found[3])


def test_both_patch_ends_capture_every_crossing_in_its_direction(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    odp = odp_ports(rundir)
    flows_before = ip_flows(rundir)
    assert len(flows_before) == 2, flows_before  # one per direction

    file_a, file_b = tmp_path / "patch0.pcapng", tmp_path / "patch1.pcapng"
    cap_a = start(rundir, tmp_path, captures, "-i", "patch0", "-w", str(file_a))
    cap_b = start(rundir, tmp_path, captures, "-i", "patch1", "-w", str(file_b), "icmp")
    # Attaching revalidated the installed flows: still one per direction,
    # now carrying the capture actions.
    during = ip_flows(rundir)
    assert len(during) == 2, during
    assert all(f.count("pvs_capture") == 2 for f in during), during

    hits_before = hits(rundir)
    sent = []
    for seq in range(1, 4):
        inject(rundir, "p1", request(seq))
        inject(rundir, "p3", reply(seq))
        sent += [(request(seq), "a->b"), (reply(seq), "b->a")]
    for n in range(2):
        inject(rundir, "p1", datagram(n))
        sent.append((datagram(n), "a->b"))
    # Every frame was a cache hit: no upcall was needed to capture them.
    assert hits(rundir) - hits_before == len(sent)
    assert len(ip_flows(rundir)) == 2

    assert cap_a.stop(signal.SIGINT) == 0, cap_a.stderr
    assert cap_b.stop(signal.SIGTERM) == 0, cap_b.stderr
    assert summary(cap_a.stderr) == (8, 8, 0)
    assert summary(cap_b.stderr) == (6, 6, 0)

    # Our reader: the frames as injected, out of patch0 and into patch1 for A->B.
    got_a = packets(file_a)
    assert [(p.data, p.direction) for p in got_a] == [
        (frame, Direction.OUTBOUND if way == "a->b" else Direction.INBOUND) for frame, way in sent
    ]
    got_b = packets(file_b)
    icmp_sent = [(f, w) for f, w in sent if UDP not in Ether(f)]
    assert [(p.data, p.direction) for p in got_b] == [
        (frame, Direction.INBOUND if way == "a->b" else Direction.OUTBOUND)
        for frame, way in icmp_sent
    ]
    assert read_all(file_a.read_bytes()).interfaces[0].name == "patch0"

    # tcpdump and tshark read the files too, and agree.
    assert len(tcpdump_lines(file_a)) == 8
    assert len(tcpdump_lines(file_a, "icmp[icmptype] == icmp-echo")) == 3
    assert len(tcpdump_lines(file_a, "udp")) == 2
    lines_b = tcpdump_lines(file_b)
    assert len(lines_b) == 6
    assert sum("ICMP echo request" in line for line in lines_b) == 3
    assert sum("ICMP echo reply" in line for line in lines_b) == 3
    fields = tshark_fields(file_b, "frame.packet_flags_direction", "icmp.type")
    assert sorted(map(tuple, fields)) == sorted([(INBOUND, "8")] * 3 + [(OUTBOUND, "0")] * 3)
    fields_a = tshark_fields(file_a, "frame.packet_flags_direction", display_filter="udp")
    assert fields_a == [[OUTBOUND]] * 2
    # Wireshark's capinfos finds the statistics block that ends each file.
    info = subprocess.run(
        ["capinfos", "-I", str(file_a)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "Number of stat entries = 1" in info

    # Nobody captures any more: the actions are gone, the flows are still one each.
    after = ip_flows(rundir)
    assert len(after) == 2, after
    assert not any("pvs_capture" in f for f in after), after
    assert sorted(f.rsplit("actions:", 1)[1] for f in after) == sorted((odp["p1"], odp["p3"]))
    assert show(rundir) == ""


def test_a_device_port_capture_sees_what_the_bridge_receives_and_sends(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    path = tmp_path / "p1.pcapng"
    cap = start(rundir, tmp_path, captures, "-i", "p1", "-w", str(path))
    inject(rundir, "p1", request(1))
    inject(rundir, "p3", reply(1))
    assert cap.stop() == 0, cap.stderr
    got = [(p.data, p.direction) for p in packets(path)]
    assert got == [(request(1), Direction.INBOUND), (reply(1), Direction.OUTBOUND)]
    fields = tshark_fields(path, "frame.packet_flags_direction", "icmp.type")
    assert fields == [[INBOUND, "8"], [OUTBOUND, "0"]]


def test_count_ends_the_capture_by_itself(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    path = tmp_path / "c.pcapng"
    cap = start(rundir, tmp_path, captures, "-i", "patch1", "-c", "2", "-w", str(path))
    for seq in range(1, 5):
        inject(rundir, "p1", request(seq))
    assert cap.wait() == 0, cap.stderr
    assert summary(cap.stderr)[0] == 2
    assert [p.data for p in packets(path)] == [request(1), request(2)]
    assert len(tcpdump_lines(path)) == 2


def test_several_captures_on_one_port_each_get_everything(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    one, two = tmp_path / "one.pcapng", tmp_path / "two.pcapng"
    cap1 = start(rundir, tmp_path, captures, "-i", "patch0", "-w", str(one))
    cap2 = start(rundir, tmp_path, captures, "-i", "patch0", "-w", str(two), "udp")
    listed = show(rundir)
    assert f'pid {cap1.proc.pid}, snaplen 262144, filter ""\n' in listed
    assert f'pid {cap2.proc.pid}, snaplen 262144, filter "udp"\n' in listed
    inject(rundir, "p1", request(1))
    inject(rundir, "p1", datagram(1))
    assert cap1.stop() == 0
    # The other capture goes on alone.
    inject(rundir, "p1", datagram(2))
    assert re.search(
        r"patch0 \(br0, patch\), pid \d+.*\n    seen:3 accepted:2 dropped:0", show(rundir)
    )
    assert cap2.stop() == 0
    assert [p.data for p in packets(one)] == [request(1), datagram(1)]
    assert [p.data for p in packets(two)] == [datagram(1), datagram(2)]


def test_snapshot_length_cuts_frames_but_keeps_their_length(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    path = tmp_path / "s.pcapng"
    cap = start(rundir, tmp_path, captures, "-i", "patch1", "-s", "40", "-w", str(path))
    inject(rundir, "p1", request(1))
    assert cap.stop() == 0
    [packet] = packets(path)
    assert packet.data == request(1)[:40]
    assert packet.orig_len == len(request(1))
    assert tshark_fields(path, "frame.cap_len", "frame.len") == [["40", str(len(request(1)))]]


def test_without_w_tcpdump_prints_the_packets(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (./run test installs it as root)")
    cap = start(rundir, tmp_path, captures, "-i", "patch1", "-n", "icmp")
    inject(rundir, "p1", request(1))
    inject(rundir, "p1", datagram(1))
    inject(rundir, "p3", reply(1))
    assert cap.stop() == 0, cap.stderr
    lines = cap.stdout.splitlines()
    assert len(lines) == 2, lines
    assert "192.0.2.1 > 192.0.2.2: ICMP echo request, id 7, seq 1" in lines[0]
    assert "192.0.2.2 > 192.0.2.1: ICMP echo reply, id 7, seq 1" in lines[1]
    assert "reading from file" not in cap.stderr


def test_without_tcpdump_our_own_line_per_packet(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    cap = Tcpdump(rundir, tmp_path, "-i", "patch1", "-e", path_env="")
    captures.append(cap)
    cap.wait_attached()
    inject(rundir, "p1", request(1))
    inject(rundir, "p3", reply(1))
    assert cap.stop() == 0, cap.stderr
    lines = cap.stdout.splitlines()
    assert len(lines) == 2, lines
    stamp = r"\d\d:\d\d:\d\d\.\d{6}"
    length = len(request(1))
    assert re.fullmatch(
        rf"{stamp} In  {MAC_A} > {MAC_B}, ethertype 0x0800: "
        rf"IP 192\.0\.2\.1 > 192\.0\.2\.2: ICMP, length {length}",
        lines[0],
    ), lines[0]
    assert re.fullmatch(
        rf"{stamp} Out {MAC_B} > {MAC_A}, ethertype 0x0800: "
        rf"IP 192\.0\.2\.2 > 192\.0\.2\.1: ICMP, length {length}",
        lines[1],
    ), lines[1]


def test_write_to_standard_output(rundir: Path, tmp_path: Path, captures: list[Tcpdump]) -> None:
    cap = start(rundir, tmp_path, captures, "-i", "patch0", "-w", "-")
    inject(rundir, "p1", request(1))
    assert cap.stop() == 0, cap.stderr
    assert [p.data for p in packets(cap.out_path)] == [request(1)]
    assert len(tcpdump_lines(cap.out_path)) == 1


# -- errors -------------------------------------------------------------------------------


def libpcap_message(tmp_path: Path, expression: str) -> str:
    """What tcpdump itself says about a filter expression (libpcap's message)."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (./run test installs it as root)")
    dump = tmp_path / "one.pcap"
    wrpcap(str(dump), [Ether()])
    done = subprocess.run(
        ["tcpdump", "-r", str(dump), expression],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode != 0
    return done.stderr.strip().splitlines()[-1].removeprefix("tcpdump: ")


@pytest.mark.parametrize("expression", ["icmp andd", "tcp port 99999", "ether host 1:2:3"])
def test_a_bad_expression_gets_libpcaps_message(
    rundir: Path, tmp_path: Path, expression: str
) -> None:
    expected = libpcap_message(tmp_path, expression)
    done = tool("tcpdump", rundir, "-i", "patch0", *expression.split())
    assert done.returncode == 1
    assert done.stderr == f'pvs-tcpdump: filter "{expression}": {expected}\n'
    assert show(rundir) == ""


def test_an_unknown_port_is_named(rundir: Path) -> None:
    done = tool("tcpdump", rundir, "-i", "nosuch0", "icmp")
    assert done.returncode == 1
    assert done.stderr == (
        "pvs-tcpdump: nosuch0: no such port (no bridge has a port of this name)\n"
    )


def test_an_output_file_that_cannot_be_made_is_the_only_message(
    rundir: Path, tmp_path: Path
) -> None:
    """As tcpdump: the file is opened before the capture is announced."""
    target = tmp_path / "no-such-dir" / "x.pcapng"
    done = tool("tcpdump", rundir, "-i", "patch0", "-w", str(target))
    assert (done.returncode, done.stderr) == (
        1,
        f"pvs-tcpdump: {target}: No such file or directory\n",
    )
    # The daemon detaches the capture when it sees the socket close.
    deadline = time.monotonic() + 10
    while show(rundir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert show(rundir) == ""


def test_bad_counts_and_lengths_are_refused(rundir: Path) -> None:
    done = tool("tcpdump", rundir, "-i", "patch0", "-c", "0")
    assert (done.returncode, done.stderr) == (1, "pvs-tcpdump: invalid packet count 0\n")
    done = tool("tcpdump", rundir, "-i", "patch0", "-s", "300000")
    assert done.returncode == 1
    assert done.stderr == "pvs-tcpdump: snapshot length 300000 is out of range (1 to 262144)\n"


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    done = tool("tcpdump", tmp_path, "-i", "patch0")
    assert done.returncode == 1
    assert done.stderr == (
        f"pvs-tcpdump: cannot reach pvs-vswitchd at {tmp_path}/capture.sock "
        "(No such file or directory)\n"
    )


def test_a_killed_reader_is_detached_and_forwarding_goes_on(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    cap = start(rundir, tmp_path, captures, "-i", "patch0", "-w", str(tmp_path / "k.pcapng"))
    inject(rundir, "p1", request(1))
    assert any("pvs_capture" in f for f in ip_flows(rundir))
    cap.proc.send_signal(signal.SIGKILL)
    cap.wait()
    before = port_counts(rundir, "br1", "p3")[2]
    for seq in range(2, 7):
        inject(rundir, "p1", request(seq))
    # Forwarding went on, and the daemon noticed the reader was gone.
    assert port_counts(rundir, "br1", "p3")[2] == before + 5
    assert show(rundir) == ""
    flows = ip_flows(rundir)
    assert len(flows) == 2
    assert not any("pvs_capture" in f for f in flows), flows


def test_a_removed_port_ends_its_capture_with_a_reason(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    path = tmp_path / "r.pcapng"
    cap = start(rundir, tmp_path, captures, "-i", "patch1", "-w", str(path))
    inject(rundir, "p1", request(1))
    ok("vsctl", rundir, "--timeout=20", "del-port", "br1", "patch1")
    assert cap.wait() == 1
    assert summary(cap.stderr)[0] == 1
    assert cap.stderr.endswith("pvs-tcpdump: port patch1 was removed\n")
    assert [p.data for p in packets(path)] == [request(1)]


# -- a reader that falls behind, in process ---------------------------------------------------


class _FullTransport(asyncio.WriteTransport):
    """A connection whose reader has stopped reading: its buffer is over the limit."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def get_write_buffer_size(self) -> int:
        return 1 << 30

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_a_reader_that_falls_behind_costs_drops_not_forwarding() -> None:
    transport = _FullTransport()
    capture = Capture(1, "patch0", "br0", "patch", "icmp", 262144, _compile("icmp", 262144),
                      transport, None, "source")  # fmt: skip
    capture.frames(Direction.OUTBOUND, [request(1), datagram(1), reply(1)], 0)
    assert transport.data == b"", "nothing is queued for a reader that is behind"
    capture.end()
    [(_, block)] = BlockReader().feed(section_header() + bytes(transport.data))[1:]
    stats = read_statistics(block)
    assert (stats.received, stats.accepted, stats.dropped) == (3, 2, 2)
    assert transport.closed
