"""pvs-tcpdump reads tcpdump's command line: display options, combined flags, refusals.

Through the real daemon on the patch pair of ``build_topology`` (br0: p1,
p2, patch0; br1: p3, patch1): the display options reach ``tcpdump -r -``
(what it prints is held against tcpdump's own output for the same frame),
``-l`` makes lines appear while the capture goes on, ``-w`` accepts and
ignores them, ``-F`` reads the expression from a file. Without tcpdump on
the PATH, our own printer honours the time stamp forms, ``-#``, the hex and
ASCII dumps (byte for byte as tcpdump prints them) and ``--count``, and names
in one warning the options it ignores. Options that make no sense for a
switch port are refused with a message naming them, before anything starts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, LLC, SNAP, Dot1Q, Dot3, Ether
from scapy.utils import wrpcap

from pyvswitch.cli.tcpdump import _LinePrinter, parse_args
from tests.scenario.capture_helpers import Tcpdump, packets, patched_switch, show
from tests.scenario.ofctl_helpers import inject, tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MAC_A = "50:54:00:00:00:05"
MAC_B = "50:54:00:00:00:07"
BROADCAST = "ff:ff:ff:ff:ff:ff"


def request(seq: int) -> bytes:
    """An echo request from A (on p1, br0) to B (on p3, br1), with text in it."""
    return bytes(
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src="192.0.2.1", dst="192.0.2.2")
        / ICMP(type=8, id=7, seq=seq)
        / b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    )


def reply(seq: int) -> bytes:
    return bytes(
        Ether(src=MAC_B, dst=MAC_A)
        / IP(src="192.0.2.2", dst="192.0.2.1")
        / ICMP(type=0, id=7, seq=seq)
        / b"pong"
    )


def datagram(n: int) -> bytes:
    """A DNS-port datagram A -> B: tcpdump decodes it as DNS, unless -q."""
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


def start(
    rundir: Path, tmp_path: Path, started: list[Tcpdump], *args: str, path_env: str | None = None
) -> Tcpdump:
    if path_env is None:
        capture = Tcpdump(rundir, tmp_path, *args)
    else:
        capture = Tcpdump(rundir, tmp_path, *args, path_env=path_env)
    started.append(capture)
    capture.wait_attached()
    return capture


def need_tcpdump() -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (./run test installs it as root)")


def tcpdump_prints(tmp_path: Path, frames: list[bytes], *options: str) -> list[str]:
    """What tcpdump itself prints for ``frames`` read from a file, with ``options``."""
    need_tcpdump()
    path = tmp_path / "reference.pcap"
    wrpcap(str(path), [Ether(frame) for frame in frames])
    done = subprocess.run(
        ["tcpdump", "-r", str(path), *options],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def wait_for(cap: Tcpdump, text: str, timeout: float = 15) -> None:
    """Wait until ``text`` is in the capture's output while it still runs."""
    deadline = time.monotonic() + timeout
    while text not in cap.stdout:
        assert cap.proc.poll() is None, f"pvs-tcpdump ended: {cap.stderr}"
        assert time.monotonic() < deadline, f"{text!r} never came: {cap.stdout!r}"
        time.sleep(0.05)


# -- passed to tcpdump -------------------------------------------------------------------


def test_combined_flags_reach_tcpdump_and_x_prints_its_hex_dump(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    need_tcpdump()
    cap = start(rundir, tmp_path, captures, "-nnXi", "patch1", "icmp")
    inject(rundir, "p1", request(1))
    assert cap.stop() == 0, cap.stderr
    lines = cap.stdout.splitlines()
    assert "192.0.2.1 > 192.0.2.2: ICMP echo request, id 7, seq 1" in lines[0], lines
    # After the packet's line, the dump is tcpdump's -X for that frame, with
    # the request's text in the ASCII column.
    reference = tcpdump_prints(tmp_path, [request(1)], "-nnX")
    assert lines[1:] == reference[1:]
    assert any("/.HTTP/1.1..Host" in line for line in lines), lines


def test_line_buffered_output_comes_while_the_capture_goes_on(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    """-l reaches tcpdump: its output to a file (or pipe) is otherwise kept until it exits."""
    need_tcpdump()
    cap = start(rundir, tmp_path, captures, "-l", "-n", "-i", "patch1", "icmp")
    inject(rundir, "p1", request(1))
    wait_for(cap, "ICMP echo request, id 7, seq 1")
    inject(rundir, "p3", reply(1))
    wait_for(cap, "ICMP echo reply, id 7, seq 1")
    assert cap.stop() == 0, cap.stderr


def test_time_stamps_numbers_and_quick_output_as_tcpdump(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    need_tcpdump()
    before = time.time()
    cap = start(rundir, tmp_path, captures, "-i", "patch1", "-tt", "--number", "-qn", "ip")
    inject(rundir, "p1", request(1))
    inject(rundir, "p1", datagram(1))
    assert cap.stop() == 0, cap.stderr
    first, second = cap.stdout.splitlines()
    found = re.fullmatch(r"    1  (\d+\.\d{6}) IP 192\.0\.2\.1 > 192\.0\.2\.2: ICMP.*", first)
    assert found is not None, first
    assert before - 1 < float(found[1]) < time.time() + 1
    # -q: the datagram to port 53 is not decoded as DNS.
    assert re.fullmatch(
        r"    2  \d+\.\d{6} IP 192\.0\.2\.1\.4001 > 192\.0\.2\.2\.53: UDP, length 20", second
    ), second


def test_with_w_display_options_are_accepted_and_ignored(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    path = tmp_path / "w.pcapng"
    cap = start(
        rundir, tmp_path, captures, "-nnXXl", "-tttt", "-A", "-i", "patch0", "-w", str(path)
    )
    inject(rundir, "p1", request(1))
    assert cap.stop() == 0, cap.stderr
    assert [p.data for p in packets(path)] == [request(1)]
    assert cap.stdout == ""
    assert "WARNING" not in cap.stderr


def test_print_with_w_writes_the_file_and_prints_the_packets(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    need_tcpdump()
    path = tmp_path / "p.pcapng"
    cap = start(rundir, tmp_path, captures, "-i", "patch1", "-w", str(path), "--print", "-n")
    inject(rundir, "p1", request(1))
    assert cap.stop() == 0, cap.stderr
    assert [p.data for p in packets(path)] == [request(1)]
    [line] = cap.stdout.splitlines()
    assert "192.0.2.1 > 192.0.2.2: ICMP echo request, id 7, seq 1" in line


def test_dash_f_reads_the_expression_from_a_file_and_ignores_the_command_lines(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    expression = tmp_path / "filter"
    expression.write_text("# the datagrams only\nudp   # not the pings\n  and dst port 53\n")
    path = tmp_path / "f.pcapng"
    args = ["-i", "patch0", "-w", str(path), "-F", str(expression), "icmp"]
    cap = start(rundir, tmp_path, captures, *args)
    assert f'pid {cap.proc.pid}, snaplen 262144, filter "udp and dst port 53"\n' in show(rundir)
    inject(rundir, "p1", request(1))
    inject(rundir, "p1", datagram(1))
    assert cap.stop() == 0, cap.stderr
    assert [p.data for p in packets(path)] == [datagram(1)]
    assert cap.stderr.startswith(
        f"pvs-tcpdump: WARNING: -F {expression} gives the expression; "
        'the command line\'s "icmp" is ignored, as tcpdump ignores it\n'
    ), cap.stderr


# -- our own printer ----------------------------------------------------------------------


def test_without_tcpdump_our_printer_does_stamps_numbers_and_dumps(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    args = ["-i", "patch1", "-#", "-tt", "-X", "-S", "-T", "vxlan", "-nn"]
    cap = start(rundir, tmp_path, captures, *args, path_env="")
    before = time.time()
    inject(rundir, "p1", request(1))
    assert cap.stop() == 0, cap.stderr
    # One warning, naming what our printer cannot do.
    warnings = [line for line in cap.stderr.splitlines() if "WARNING" in line]
    assert warnings == [
        "pvs-tcpdump: WARNING: tcpdump is not on the PATH, and our own printer ignores -S, -T"
    ]
    lines = cap.stdout.splitlines()
    found = re.fullmatch(
        r"    1  (\d+)\.\d{6} In  IP 192\.0\.2\.1 > 192\.0\.2\.2: ICMP, length (\d+)", lines[0]
    )
    assert found is not None, lines[0]
    assert before - 5 < int(found[1]) < time.time() + 1
    assert int(found[2]) == len(request(1))
    # The dump is tcpdump's -X, byte for byte.
    assert lines[1:] == tcpdump_prints(tmp_path, [request(1)], "-nX")[1:]


def test_without_tcpdump_deltas_and_count(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    cap = start(rundir, tmp_path, captures, "-i", "patch1", "-ttt", "-l", path_env="")
    inject(rundir, "p1", request(1))
    wait_for(cap, "\n")  # -l: each line is out as soon as it is printed
    time.sleep(0.3)
    inject(rundir, "p3", reply(1))
    assert cap.stop() == 0, cap.stderr
    first, second = cap.stdout.splitlines()
    assert first.startswith(" 00:00:00.000000 In  IP 192.0.2.1 > 192.0.2.2: ICMP"), first
    found = re.match(r" 00:00:(\d\d\.\d{6}) Out IP 192\.0\.2\.2 > 192\.0\.2\.1: ICMP", second)
    assert found is not None, second
    assert 0.3 <= float(found[1]) < 10

    counted = start(rundir, tmp_path, captures, "-i", "patch1", "--count", path_env="")
    inject(rundir, "p1", request(2))
    inject(rundir, "p3", reply(2))
    assert counted.stop() == 0, counted.stderr
    assert counted.stdout == "2 packets\n"
    assert "WARNING" not in counted.stderr


def our_lines(frames: list[bytes], *options: str) -> list[str]:
    """What our printer prints for ``frames`` with ``options`` (in process)."""
    from io import StringIO

    from pyvswitch.capture.pcapng_stream import EPB_TYPE, read_packet
    from pyvswitch.packet.pcapng import Direction, enhanced_packet

    out = StringIO()
    printer = _LinePrinter(out, parse_args(["-i", "p", *options]))
    for n, frame in enumerate(frames):
        block = enhanced_packet(0, frame, 1_700_000_000_000_000 + n, direction=Direction.INBOUND)
        assert read_packet(block).data == frame
        printer.write(EPB_TYPE, block)
    printer.close()
    return out.getvalue().splitlines()


TRICKY = [
    request(1),  # CR LF pairs, and a CR LF CR LF at the end
    bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=5) / IP() / UDP() / b"odd\rx\tz \x7f\x80!"),
    bytes(Ether(src=MAC_A, dst=MAC_B) / IP() / UDP() / b"ab\r"),  # a CR last
    bytes(Ether(src=MAC_A, dst=MAC_B) / IP() / UDP() / b"ab\rc"),  # a CR last but one
    bytes(Ether(dst=BROADCAST) / ARP(psrc="192.0.2.1", pdst="192.0.2.9")).ljust(60, b"\0"),
    bytes(Dot3(src=MAC_A, dst=MAC_B) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / b"stp-ish"),
    bytes(Ether(src=MAC_A, dst=MAC_B, type=0x9100) / b"\x00\x07\x08\x00" / IP() / b"tag"),
]  # fmt: skip


@pytest.mark.parametrize("option", ["-x", "-xx", "-X", "-XX", "-A", "-AA"])
def test_our_dumps_are_tcpdumps_byte_for_byte(tmp_path: Path, option: str) -> None:
    """Each packet's dump, after its line, as tcpdump prints it for the same frame."""
    # An LLC information frame and a SNAP frame of a type tcpdump does not
    # decode: with -A it adds its own hex dump of what it does not know, which
    # -x and -X leave out (and our printer never makes).
    undecoded = [
        Dot3(src=MAC_A, dst=MAC_B) / LLC(dsap=0xF0, ssap=0xF0, ctrl=0) / b"\x00i-frame",
        Dot3(src=MAC_A, dst=MAC_B) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(code=0x88B5) / b"s",
    ]
    hex_only = [] if option.startswith("-A") else [bytes(frame) for frame in undecoded]
    for frame in TRICKY + hex_only:
        theirs = tcpdump_prints(tmp_path, [frame], "-n", option)
        ours = our_lines([frame], option)
        assert ours[1:] == theirs[1:], (frame, option)


# -- refused and malformed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-r", "x.pcap"], "-r: pvs-tcpdump captures from the switch; to read a file, run tcpdump -r FILE"),  # noqa: E501
        (["-Z", "nobody"], "-Z: pvs-tcpdump has no privileges to drop: it needs only access to capture.sock"),  # noqa: E501
        (["--no-promiscuous-mode"], "--no-promiscuous-mode: a capture on a switch port sees every frame the bridge receives on it and sends out of it; it cannot be limited to the port's own addresses"),  # noqa: E501
        (["-y", "LINUX_SLL"], "-y LINUX_SLL: a port's only link type is EN10MB (Ethernet)"),
        (["-dd"], "-d: the daemon compiles the filter; tcpdump -d EXPRESSION (or -dd, -ddd) shows the same program"),  # noqa: E501
        (["-nk"], "option -k not recognized (pvs-tcpdump -h lists the options)"),
        (["--bogus"], "option --bogus not recognized (pvs-tcpdump -h lists the options)"),
        (["-tttttt"], "only -t, -tt, -ttt, -tttt and -ttttt are supported"),
        (["-T", "bogus"], "unknown packet type 'bogus'"),
        (["-w", "-", "--print"], "--print with -w -: the printed packets would go into the pcapng stream on standard output"),  # noqa: E501
        (["-F", "/nonexistent/filter"], "can't open /nonexistent/filter: No such file or directory"),  # noqa: E501
    ],
)  # fmt: skip
def test_options_that_make_no_sense_are_refused_by_name(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Before anything starts: no daemon is needed to be told."""
    done = tool("tcpdump", tmp_path, "-i", "patch0", *args)
    assert (done.returncode, done.stderr) == (1, f"pvs-tcpdump: {message}\n")
    assert done.stdout == ""


def test_no_port_and_a_missing_value_are_named(tmp_path: Path) -> None:
    done = tool("tcpdump", tmp_path, "-nn", "icmp")
    assert (done.returncode, done.stderr) == (
        1,
        "pvs-tcpdump: no port given: -i PORT names the port to capture on\n",
    )
    done = tool("tcpdump", tmp_path, "-ni")
    assert (done.returncode, done.stderr) == (
        1,
        "pvs-tcpdump: option -i requires argument (pvs-tcpdump -h lists the options)\n",
    )


def test_help_lists_the_options(tmp_path: Path) -> None:
    done = tool("tcpdump", tmp_path, "-h")
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: pvs-tcpdump -i PORT [-w FILE | -w -]")
    assert "--print" in done.stdout


# -- when tcpdump itself fails ------------------------------------------------------------


def fake_tcpdump(tmp_path: Path, script: str) -> str:
    """A directory holding a ``tcpdump`` that runs ``script``: the PATH for pvs-tcpdump."""
    directory = tmp_path / "bin"
    directory.mkdir()
    program = directory / "tcpdump"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(0o755)
    return str(directory)


def test_a_printer_that_fails_ends_the_capture_with_its_message(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    path_env = fake_tcpdump(tmp_path, "echo 'tcpdump: it went wrong' >&2; exit 3")
    cap = Tcpdump(rundir, tmp_path, "-i", "patch1", "-n", path_env=path_env)
    captures.append(cap)
    assert cap.wait() == 1
    assert cap.stderr.endswith(
        "tcpdump: it went wrong\n"
        "pvs-tcpdump: tcpdump, which prints the packets, exited with status 3\n"
    ), cap.stderr
    # The daemon saw the capture go.
    deadline = time.monotonic() + 10
    while show(rundir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert show(rundir) == ""


def test_a_printer_whose_reader_went_away_ends_quietly(
    rundir: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    """As ``pvs-tcpdump | head``: tcpdump dies of SIGPIPE, and so do we, quietly."""
    path_env = fake_tcpdump(tmp_path, "kill -PIPE $$")
    cap = Tcpdump(rundir, tmp_path, "-i", "patch1", path_env=path_env)
    captures.append(cap)
    assert cap.wait() == 0, cap.stderr
    assert "pvs-tcpdump: listening on patch1" in cap.stderr
    assert "status" not in cap.stderr
