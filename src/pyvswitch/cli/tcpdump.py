"""pvs-tcpdump: capture on any port of a running switch, patch ports included.

``pvs-tcpdump -i PORT [-w FILE | -w -] [-c COUNT] [-s SNAPLEN] [-n] [-e] [-v]
[EXPRESSION...]`` asks pvs-vswitchd (through ``capture.sock`` in the run
directory, ``$PVS_RUNDIR``) for what the bridge receives on PORT and sends out
of it, filtered by the tcpdump EXPRESSION (its words joined by spaces, as
tcpdump joins them), which the daemon compiles with libpcap and runs before
copying anything. The daemon streams pcapng: one interface named after the
port, each frame's direction in its ``epb_flags``.

With ``-w FILE`` (``-w -``: standard output) the stream is written as it
comes. Without ``-w``, each packet is shown as one line: by tcpdump itself
(``tcpdump -r -``, with ``-n``, ``-e`` and ``-v`` passed on) when it is on
the PATH, else by a short line of our own (time, direction, source >
destination, protocol, length).

It stops on Ctrl-C, SIGTERM or after COUNT packets, asks the daemon for the
final counts (a pcapng Interface Statistics Block, written to the file too)
and prints tcpdump's summary on standard error: packets captured, received
by filter, dropped by the switch (because the reader fell behind). Exit 0;
1 with a message naming the problem when the daemon is not running, the
port does not exist, libpcap refuses the expression, or the switch ended the
capture (the port was removed, the daemon exited).

It imports what a capture needs and nothing of the daemon's: no asyncio, no
scapy, no libpcap (the daemon compiles the filter).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from pyvswitch import __version__
from pyvswitch.capture.pcapng_stream import (
    EPB_TYPE,
    ISB_TYPE,
    BlockReader,
    CaptureStats,
    Packet,
    StreamError,
    read_packet,
    read_statistics,
)

if TYPE_CHECKING:
    import subprocess
    from types import FrameType

PROG = "pvs-tcpdump"
DEFAULT_RUNDIR = "/var/run/pyvswitch"
SOCKET_NAME = "capture.sock"
#: tcpdump's default snapshot length, and what ``-s 0`` means.
MAX_SNAPLEN = 262144
#: How long the daemon may take to answer a request, and to send the final
#: counts once asked to stop (seconds).
ANSWER_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
#: How often the capture loop looks at the stop flag while no data comes.
POLL = 0.2


class CaptureFailedError(Exception):
    """The capture could not start or ended badly; the message says why."""


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Capture on a port of pvs-vswitchd (any port, patch ports included).",
    )
    parser.add_argument("-i", dest="port", required=True, help="the port to capture on")
    parser.add_argument(
        "-w", dest="file", help="write the pcapng stream to FILE ('-': standard output)"
    )
    parser.add_argument("-c", dest="count", type=int, help="stop after COUNT packets")
    parser.add_argument(
        "-s", dest="snaplen", type=int, default=0, help="bytes kept of each frame (0: 262144)"
    )
    parser.add_argument(
        "-n", action="count", default=0, help="passed to tcpdump: do not resolve names"
    )
    parser.add_argument(
        "-e", action="count", default=0, help="show link-level headers (MACs, VLAN tags)"
    )
    parser.add_argument("-v", action="count", default=0, help="more detail (repeatable)")
    parser.add_argument("--version", action="version", version=f"{PROG} (pyvswitch) {__version__}")
    parser.add_argument("expression", nargs="*", help="a tcpdump filter expression")
    args = parser.parse_args(argv)
    if args.count is not None and args.count <= 0:
        parser.exit(1, f"{PROG}: invalid packet count {args.count}\n")
    if args.snaplen < 0:
        parser.exit(1, f"{PROG}: invalid snaplen {args.snaplen}\n")
    return args


def socket_path() -> str:
    """``capture.sock`` in ``$PVS_RUNDIR`` (default /var/run/pyvswitch)."""
    return f"{os.environ.get('PVS_RUNDIR') or DEFAULT_RUNDIR}/{SOCKET_NAME}"


def _connect(port: str, expression: str, snaplen: int) -> tuple[socket.socket, dict[str, Any]]:
    """Ask the daemon for a capture; return the socket and the daemon's description of it."""
    path = socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(ANSWER_TIMEOUT)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise CaptureFailedError(f"cannot reach pvs-vswitchd at {path} ({reason})") from None
    try:
        request = {"port": port, "filter": expression, "snaplen": snaplen}
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = _answer(sock)
    except (OSError, CaptureFailedError) as exc:
        sock.close()
        if isinstance(exc, CaptureFailedError):
            raise
        raise CaptureFailedError(f"pvs-vswitchd did not answer ({exc})") from None
    return sock, answer


def _answer(sock: socket.socket) -> dict[str, Any]:
    """The daemon's one-line answer; what follows it stays in the socket... or is returned."""
    line = b""
    while not line.endswith(b"\n"):
        # One byte at a time: the pcapng stream follows the line at once.
        byte = sock.recv(1)
        if not byte:
            raise CaptureFailedError("pvs-vswitchd closed the connection without an answer")
        line += byte
        if len(line) > 65536:
            raise CaptureFailedError("pvs-vswitchd's answer is too long")
    try:
        answer = json.loads(line)
    except ValueError:
        raise CaptureFailedError("pvs-vswitchd's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise CaptureFailedError("pvs-vswitchd's answer is not a JSON object")
    if "error" in answer:
        raise CaptureFailedError(str(answer["error"]))
    ok = answer.get("ok")
    if not isinstance(ok, dict):
        raise CaptureFailedError("pvs-vswitchd's answer says neither ok nor error")
    return ok


class _Stopper:
    """Turns SIGINT and SIGTERM into a flag the capture loop reads."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.requested = True


class _LinePrinter:
    """One line per packet when tcpdump is not installed: time, way, addresses, protocol."""

    def __init__(self, out: IO[str], link: bool, verbose: int) -> None:
        self._out = out
        self._link = link
        self._verbose = verbose

    def write(self, block_type: int, block: bytes) -> None:
        if block_type == EPB_TYPE:
            line = describe(read_packet(block), link=self._link, verbose=self._verbose)
            self._out.write(line + "\n")

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        self._out.flush()


class _StreamWriter:
    """Writes the pcapng blocks to a file or standard output, flushed as they come."""

    def __init__(self, out: IO[bytes], owned: bool) -> None:
        self._out = out
        self._owned = owned

    def write(self, block_type: int, block: bytes) -> None:  # noqa: ARG002
        self._out.write(block)

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        self._out.flush()
        if self._owned:
            self._out.close()


class _Tcpdump:
    """Hands the stream to ``tcpdump -r -``, which prints each packet its own way."""

    def __init__(self, program: str, args: argparse.Namespace) -> None:
        import subprocess  # noqa: PLC0415 - only when tcpdump prints
        import tempfile  # noqa: PLC0415

        flags = ["-n"] * args.n + ["-e"] * args.e + ["-v"] * args.v
        # tcpdump's own "reading from file -" line would confuse: its stderr
        # is kept aside and passed on without it once tcpdump is done.
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        # S603: the program is tcpdump as found on the PATH, the flags are fixed words.
        # A process group of its own: Ctrl-C at the terminal reaches only us,
        # and tcpdump prints everything we pass it before the end of its input.
        self._proc: subprocess.Popen[bytes] = subprocess.Popen(  # noqa: S603
            [program, "-r", "-", *flags],
            stdin=subprocess.PIPE,
            stderr=self._errors,
            process_group=0,
        )
        assert self._proc.stdin is not None
        self._stdin = self._proc.stdin

    def write(self, block_type: int, block: bytes) -> None:  # noqa: ARG002
        self._stdin.write(block)

    def flush(self) -> None:
        self._stdin.flush()

    def close(self) -> None:
        import subprocess  # noqa: PLC0415

        with contextlib.suppress(BrokenPipeError):
            self._stdin.close()
        try:
            self._proc.wait(STOP_TIMEOUT * 2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(STOP_TIMEOUT)
        self._errors.seek(0)
        for line in self._errors.read().decode("utf-8", "replace").splitlines():
            if not line.startswith("reading from file -"):
                sys.stderr.write(line + "\n")
        self._errors.close()


Sink = _StreamWriter | _Tcpdump | _LinePrinter


def _sink(args: argparse.Namespace) -> Sink:
    if args.file == "-":
        return _StreamWriter(sys.stdout.buffer, owned=False)
    if args.file is not None:
        try:
            return _StreamWriter(open(args.file, "wb"), owned=True)  # noqa: PTH123
        except OSError as exc:
            raise CaptureFailedError(f"{args.file}: {exc.strerror or exc}") from None
    import shutil  # noqa: PLC0415 - only when printing

    program = shutil.which("tcpdump")
    if program is not None:
        return _Tcpdump(program, args)
    return _LinePrinter(sys.stdout, bool(args.e), args.v)


def _capture(
    sock: socket.socket, sink: Sink, count: int | None, stopper: _Stopper
) -> tuple[int, CaptureStats]:
    """Copy blocks to ``sink`` until stopped, COUNT packets or the end; return (written, stats)."""
    reader = BlockReader()
    written = 0
    stop_sent_at: float | None = None
    sock.settimeout(POLL)
    while True:
        want_stop = stopper.requested or (count is not None and written >= count)
        if want_stop and stop_sent_at is None:
            sock.sendall(b"stop\n")
            stop_sent_at = time.monotonic()
        if stop_sent_at is not None and time.monotonic() - stop_sent_at > STOP_TIMEOUT:
            raise CaptureFailedError("pvs-vswitchd did not send the final counts in time")
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            continue
        if not data:
            raise CaptureFailedError("pvs-vswitchd closed the capture without its final counts")
        for block_type, block in reader.feed(data):
            if block_type == EPB_TYPE:
                if count is not None and written >= count:
                    continue
                written += 1
            sink.write(block_type, block)
            if block_type == ISB_TYPE:
                return written, read_statistics(block)
        sink.flush()


def describe(packet: Packet, *, link: bool, verbose: int) -> str:
    """Our one line for a packet: local time, direction, addresses, protocol, length."""
    stamp, data, length = packet.timestamp, packet.data, packet.orig_len
    clock = time.strftime("%H:%M:%S", time.localtime(stamp // 1_000_000))
    way = {1: "In ", 2: "Out"}.get(packet.direction, "   ")
    head = f"{clock}.{stamp % 1_000_000:06d} {way}"
    if len(data) < 14:
        return f"{head} truncated frame, length {length}"
    macs = f"{_mac(data[6:12])} > {_mac(data[0:6])}"
    etype = int.from_bytes(data[12:14], "big")
    offset = 14
    tags = []
    while etype in (0x8100, 0x88A8) and len(data) >= offset + 4:
        tags.append(f"vlan {int.from_bytes(data[offset : offset + 2], 'big') & 0x0FFF}")
        etype = int.from_bytes(data[offset + 2 : offset + 4], "big")
        offset += 4
    if link:
        head += f" {macs}, {', '.join([*tags, f'ethertype 0x{etype:04x}'])}:"
    return f"{head} {_l3(etype, data[offset:], length, verbose)}"


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


_PROTOCOLS = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 58: "ICMP6", 132: "SCTP"}


def _l3(etype: int, l3: bytes, length: int, verbose: int) -> str:
    if etype == 0x0800 and len(l3) >= 20:
        src, dst = ".".join(map(str, l3[12:16])), ".".join(map(str, l3[16:20]))
        proto, ttl = l3[9], l3[8]
        extra = f", ttl {ttl}" if verbose else ""
        name = _PROTOCOLS.get(proto, f"proto {proto}")
        return f"IP {src} > {dst}: {name}{extra}, length {length}"
    if etype == 0x86DD and len(l3) >= 40:
        src, dst = _ip6(l3[8:24]), _ip6(l3[24:40])
        proto, hlim = l3[6], l3[7]
        extra = f", hlim {hlim}" if verbose else ""
        name = _PROTOCOLS.get(proto, f"next-header {proto}")
        return f"IP6 {src} > {dst}: {name}{extra}, length {length}"
    if etype == 0x0806 and len(l3) >= 28:
        op = {1: "Request", 2: "Reply"}.get(int.from_bytes(l3[6:8], "big"), "op")
        sender, target = ".".join(map(str, l3[14:18])), ".".join(map(str, l3[24:28]))
        return f"ARP {sender} > {target}: {op}, length {length}"
    return f"ethertype 0x{etype:04x}, length {length}"


def _ip6(raw: bytes) -> str:
    return ":".join(f"{int.from_bytes(raw[i : i + 2], 'big'):x}" for i in range(0, 16, 2))


def _summary(written: int, stats: CaptureStats) -> None:
    sys.stderr.write(
        f"{written} packet{'s' * (written != 1)} captured\n"
        f"{stats.accepted} packet{'s' * (stats.accepted != 1)} received by filter\n"
        f"{stats.dropped} packet{'s' * (stats.dropped != 1)} dropped by switch\n"
    )


def run(argv: list[str] | None = None) -> int:
    """The whole program; returns the exit status."""
    args = _parse_args(argv)
    snaplen = args.snaplen or MAX_SNAPLEN
    stopper = _Stopper()
    sock, info = _connect(args.port, " ".join(args.expression), snaplen)
    with sock:
        # As tcpdump: the port and the filter are checked first, then the
        # output file is opened, and only then is the capture announced.
        sink = _sink(args)
        sys.stderr.write(
            f"{PROG}: listening on {args.port}, link-type EN10MB (Ethernet), "
            f"snapshot length {info.get('snaplen', snaplen)} bytes\n"
        )
        sys.stderr.flush()
        try:
            written, stats = _capture(sock, sink, args.count, stopper)
        finally:
            _close_quietly(sink)
    _summary(written, stats)
    if stats.comment is not None:
        raise CaptureFailedError(stats.comment)
    return 0


def _close_quietly(sink: Sink) -> None:
    with contextlib.suppress(BrokenPipeError):
        sink.close()


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except BrokenPipeError:
        # Standard output's reader went away (| head): stop quietly, as tcpdump
        # does, and keep Python from complaining when it flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CaptureFailedError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 1
    except (StreamError, OSError) as exc:
        sys.stderr.write(f"{PROG}: the capture failed: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
