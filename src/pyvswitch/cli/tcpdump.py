"""pvs-tcpdump: capture on any port of a running switch, patch ports included.

``pvs-tcpdump -i PORT [-w FILE | -w -] [-c COUNT] [-s SNAPLEN] [-F FILE]
[display options] [EXPRESSION...]`` asks pvs-vswitchd (through
``capture.sock`` in the run directory, ``$PVS_RUNDIR``) for what the bridge
receives on PORT and sends out of it, filtered by the tcpdump EXPRESSION (its
words joined by spaces, as tcpdump joins them; or read from FILE with
``-F``), which the daemon compiles with libpcap and runs before copying
anything. The daemon streams pcapng: one interface named after the port,
each frame's direction in its ``epb_flags``.

The command line is read as tcpdump 4.99 reads its own (GNU getopt, with
tcpdump's option letters and long options): flags combine (``-nnXi p1``),
options and expression words mix, ``--`` ends the options. Each tcpdump
option is either ours (``-i -w -c -s -F``, ``--print``), a display option, a
no-op (``-a``, ``--immediate-mode``, ``-y EN10MB``), or refused with a
message naming it and saying why (``-r``, ``-p``, ``-Z`` ...).

With ``-w FILE`` (``-w -``: standard output) the stream is written as it
comes, and display options are accepted and ignored, as tcpdump does
(``--print`` prints the packets too). Without ``-w``, each packet is shown by
tcpdump itself (``tcpdump -r -``, given every display option in the order
typed) when it is on the PATH, else by a line of our own (time, direction,
source > destination, protocol, length), which honours the display options
it can (``-e -v -n -N -q -l -U``, the ``-t`` forms, ``-#``, ``-x -xx -X -XX
-A``, ``--count``, ``--micro``/``--nano``) and names the others in one
warning.

It stops on Ctrl-C, SIGTERM or after COUNT packets, asks the daemon for the
final counts (a pcapng Interface Statistics Block, written to the file too)
and prints tcpdump's summary on standard error: packets captured, received
by filter, dropped by the switch (because the reader fell behind). Exit 0;
1 with a message naming the problem when an option is refused or malformed,
the daemon is not running, the port does not exist, libpcap refuses the
expression, tcpdump (the printer) fails, or the switch ended the capture
(the port was removed, the daemon exited).

It imports what a capture needs and nothing of the daemon's: no asyncio, no
scapy, no libpcap (the daemon compiles the filter), no argparse.
"""

from __future__ import annotations

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


# -- the command line -------------------------------------------------------------------------

#: tcpdump 4.99's option letters, as its getopt string (``:``: takes a value).
#: All of them are recognised, so that each gets an answer of its own.
SHORT_OPTIONS = "aAbB:c:C:dDeE:fF:G:hHi:Ij:JKlLm:M:nNOpqQ:r:s:StT:uUvV:w:W:xXy:Yz:Z:#"
#: tcpdump 4.99's long options (``=``: takes a value).
LONG_OPTIONS = [
    "absolute-tcp-sequence-numbers", "buffer-size=", "count", "direction=",
    "dont-verify-checksums", "fp-type", "help", "immediate-mode", "interface=",
    "linktype=", "list-data-link-types", "list-interfaces", "list-time-stamp-types",
    "micro", "monitor-mode", "nano", "no-optimize", "no-promiscuous-mode", "number",
    "packet-buffered", "print", "relinquish-privileges=", "snapshot-length=",
    "time-stamp-precision=", "time-stamp-type=", "version",
]  # fmt: skip
#: Long options that are another name of a short one.
_SAME_AS = {
    "--absolute-tcp-sequence-numbers": "-S", "--buffer-size": "-B", "--direction": "-Q",
    "--dont-verify-checksums": "-K", "--help": "-h", "--interface": "-i", "--linktype": "-y",
    "--list-data-link-types": "-L", "--list-interfaces": "-D",
    "--list-time-stamp-types": "-J", "--monitor-mode": "-I", "--no-optimize": "-O",
    "--no-promiscuous-mode": "-p", "--number": "-#", "--packet-buffered": "-U",
    "--relinquish-privileges": "-Z", "--snapshot-length": "-s", "--time-stamp-type": "-j",
}  # fmt: skip
#: Display options without a value: tcpdump -r - gets each as typed (repeats count).
DISPLAY_FLAGS = frozenset(
    ["-A", "-b", "-e", "-H", "-K", "-l", "-n", "-N", "-q", "-S", "-t", "-u", "-U", "-v",
     "-x", "-X", "-#", "--count", "--micro", "--nano"]
)  # fmt: skip
#: Display options with a value, passed on with it.
DISPLAY_VALUES = frozenset(["-E", "-M", "-m", "-T", "--time-stamp-precision"])
#: What our own printer does not do (it decodes no protocol beyond IP's addresses).
_NOT_OURS = frozenset(["-b", "-H", "-K", "-S", "-u", "-E", "-M", "-m", "-T"])
#: tcpdump 4.99's packet types for ``-T`` (its man page's list).
PACKET_TYPES = frozenset(
    ["aodv", "carp", "cnfp", "domain", "lmp", "pgm", "pgm_zmtp1", "ptp", "radius", "resp",
     "rpc", "rtcp", "rtp", "snmp", "someip", "tftp", "vat", "vxlan", "wb", "zmtp1"]
)  # fmt: skip
_LINK_TYPES = "a port's only link type is EN10MB (Ethernet)"
_ROTATION = "pvs-tcpdump does not rotate files: -w writes one file"
#: tcpdump options that mean nothing for a capture from the switch, and why.
REFUSED = {
    "-B": "the switch keeps up to 2 MiB for each capture (beyond that, frames are counted "
    "as dropped); there is no buffer size to set",
    "-C": _ROTATION,
    "-d": "the daemon compiles the filter; tcpdump -d EXPRESSION (or -dd, -ddd) shows "
    "the same program",
    "-D": "a switch has ports, not interfaces: pvs-vsctl list-ports BRIDGE "
    "(or pvs-appctl dpif/show) lists them",
    "-f": "it needs the capture interface's netmask, and a switch port has none",
    "-G": _ROTATION,
    "-I": "a switch port has no monitor mode",
    "-j": "the switch stamps frames with its own clock; there is no other time stamp type",
    "-J": "the switch stamps frames with its own clock; there is no other time stamp type",
    "-L": _LINK_TYPES,
    "-O": "the daemon compiles the filter, optimised, as libpcap does by default",
    "-p": "a capture on a switch port sees every frame the bridge receives on it and "
    "sends out of it; it cannot be limited to the port's own addresses",
    "-Q": "pvs-tcpdump captures both directions; each frame's direction is in the "
    "pcapng stream (In/Out)",
    "-r": "pvs-tcpdump captures from the switch; to read a file, run tcpdump -r FILE",
    "-V": "pvs-tcpdump captures from the switch; to read files, run tcpdump -V FILE",
    "-W": _ROTATION,
    "-Y": "the daemon compiles the filter",
    "-z": _ROTATION,
    "-Z": "pvs-tcpdump has no privileges to drop: it needs only access to capture.sock",
    "--fp-type": "it is tcpdump's own diagnostic; run tcpdump --fp-type",
}

USAGE = f"""\
Usage: {PROG} -i PORT [-w FILE | -w -] [-c COUNT] [-s SNAPLEN] [-F FILE] [--print]
                   [-AbeHKlnNqSuUvxX#] [-t...] [-E SECRET] [-M SECRET] [-m MODULE]
                   [-T TYPE] [--count] [--micro | --nano] [EXPRESSION...]

Capture on PORT of pvs-vswitchd: any port of any bridge, patch and tunnel ports included.
  -i PORT      the port to capture on (--interface=PORT)
  -w FILE      write the pcapng stream to FILE ('-': standard output)
  -c COUNT     stop after COUNT packets
  -s SNAPLEN   bytes kept of each frame (0: 262144; --snapshot-length=SNAPLEN)
  -F FILE      read the filter expression from FILE (the command line's is ignored)
  --print      with -w FILE, print the packets too
Display options are tcpdump's, passed to tcpdump -r - (ignored with -w, as tcpdump
does); without tcpdump on the PATH, our own printer honours -AelnNqtUvxX#, --count,
--micro, --nano and names the others it ignores. -a, --immediate-mode and -y EN10MB
change nothing. Options that make no sense for a switch port are refused, with why.
"""


class Options:
    """What the command line asks for."""

    def __init__(self) -> None:
        self.port = ""
        self.file: str | None = None
        self.count: int | None = None
        self.snaplen = 0
        self.expression = ""
        #: ``--print``: with ``-w FILE``, print the packets as well.
        self.print_too = False
        #: The display options for ``tcpdump -r -``, in the order typed.
        self.tcpdump_args: list[str] = []
        #: How many times each display option was given (``-t``: 3 for ``-ttt``).
        self.flags: dict[str, int] = {}
        #: Each display option's name as typed, under its short name.
        self.typed: dict[str, str] = {}
        #: What to print instead of capturing (``-h``, ``--version``).
        self.info: str | None = None
        self.warnings: list[str] = []
        #: Time stamps to the microsecond or the nanosecond (the last option given wins).
        self.precision = "micro"


def parse_args(argv: list[str]) -> Options:
    """Read the command line as tcpdump 4.99 reads its own; refused options raise."""
    import getopt  # noqa: PLC0415 - tcpdump's own way of reading options, and light

    try:
        pairs, words = getopt.gnu_getopt(argv, SHORT_OPTIONS, LONG_OPTIONS)
    except getopt.GetoptError as exc:
        raise CaptureFailedError(f"{exc.msg} ({PROG} -h lists the options)") from None
    options = Options()
    filter_file: str | None = None
    for typed, value in pairs:
        name = _SAME_AS.get(typed, typed)
        if name == "-i":
            options.port = value
        elif name == "-w":
            options.file = value
        elif name == "-c":
            options.count = _number(value, "invalid packet count")
            if options.count <= 0:
                raise CaptureFailedError(f"invalid packet count {value}")
        elif name == "-s":
            options.snaplen = _number(value, "invalid snaplen")
            if options.snaplen < 0:
                raise CaptureFailedError(f"invalid snaplen {value}")
        elif name == "-F":
            filter_file = value
        elif name == "-h":
            options.info = USAGE
            return options
        elif name == "--version":
            options.info = f"{PROG} (pyvswitch) {__version__}\n"
            return options
        elif name == "--print":
            options.print_too = True
        elif name in ("-a", "--immediate-mode"):
            pass  # tcpdump ignores -a too; frames always come as the switch forwards them.
        elif name == "-y":
            if value.upper() != "EN10MB":
                raise CaptureFailedError(f"{typed} {value}: {_LINK_TYPES}")
        elif name in DISPLAY_FLAGS or name in DISPLAY_VALUES:
            _display(options, name, typed, value)
        else:
            raise CaptureFailedError(f"{typed}: {REFUSED[name]}")
    if options.flags.get("-t", 0) > 5:
        raise CaptureFailedError("only -t, -tt, -ttt, -tttt and -ttttt are supported")
    if options.print_too and options.file == "-":
        raise CaptureFailedError(
            "--print with -w -: the printed packets would go into the pcapng stream "
            "on standard output"
        )
    if not options.port:
        raise CaptureFailedError("no port given: -i PORT names the port to capture on")
    if filter_file is None:
        options.expression = " ".join(words)
    else:
        options.expression = _read_filter(filter_file)
        if words:
            options.warnings.append(
                f"-F {filter_file} gives the expression; the command line's "
                f'"{" ".join(words)}" is ignored, as tcpdump ignores it'
            )
    return options


def _number(text: str, error: str) -> int:
    """A decimal or ``0x`` hexadecimal integer (``010`` is 10, where C's strtol reads 8)."""
    for base in (0, 10):
        with contextlib.suppress(ValueError):
            return int(text, base)
    raise CaptureFailedError(f"{error} {text}")


def _display(options: Options, name: str, typed: str, value: str) -> None:
    """Record a display option: for tcpdump as typed, and counted for our own printer."""
    if name == "-T" and value.lower() not in PACKET_TYPES:
        raise CaptureFailedError(f"unknown packet type '{value}'")
    if name == "--time-stamp-precision":
        # tcpdump takes any word starting with nano or micro.
        if not value.startswith(("nano", "micro")):
            raise CaptureFailedError(f"unsupported time stamp precision {value}")
        options.precision = "nano" if value.startswith("nano") else "micro"
        options.tcpdump_args.append(f"--time-stamp-precision={value}")
    elif name in DISPLAY_VALUES:
        options.tcpdump_args += [name, value]
    else:
        if name in ("--micro", "--nano"):
            options.precision = name[2:]
        options.tcpdump_args.append(name)
    options.flags[name] = options.flags.get(name, 0) + 1
    options.typed.setdefault(name, typed)


def _read_filter(path: str) -> str:
    """``-F FILE``'s expression: as tcpdump, ``#`` starts a comment up to the line's end."""
    try:
        with open(path, "rb") as file:  # noqa: PTH123 - pathlib would cost start-up time
            text = file.read().decode("utf-8", "replace")
    except OSError as exc:
        raise CaptureFailedError(f"can't open {path}: {exc.strerror or exc}") from None
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    # libpcap reads any run of blanks as one; one line reads best in capture/show.
    return " ".join(" ".join(lines).split())


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


class _Clock:
    """The time stamp before each line, in tcpdump's forms.

    By default the local time of day; ``-t`` none, ``-tt`` seconds since the
    epoch, ``-ttt`` the time since the previous packet, ``-tttt`` the date and
    the time of day, ``-ttttt`` the time since the first packet.
    """

    def __init__(self, form: int, *, nano: bool) -> None:
        self._form = form
        self._nano = nano
        self._reference: int | None = None

    def stamp(self, usec: int) -> str:
        """The time stamp of a packet stamped ``usec`` (µs since the epoch), with its blank."""
        form = self._form
        if form == 1:
            return ""
        if form == 2:
            return f"{usec // 1_000_000}{self._fraction(usec)} "
        if form in (3, 5):
            if self._reference is None:
                self._reference = usec
            delta = usec - self._reference
            if form == 3:
                self._reference = usec
            # As tcpdump: a sign column (blank or -), then the difference as a time of day.
            sign = "-" if delta < 0 else " "
            clock = time.strftime("%H:%M:%S", time.gmtime(abs(delta) // 1_000_000))
            return f"{sign}{clock}{self._fraction(abs(delta))} "
        pattern = "%Y-%m-%d %H:%M:%S" if form == 4 else "%H:%M:%S"
        clock = time.strftime(pattern, time.localtime(usec // 1_000_000))
        return f"{clock}{self._fraction(usec)} "

    def _fraction(self, usec: int) -> str:
        if self._nano:
            return f".{usec % 1_000_000 * 1000:09d}"
        return f".{usec % 1_000_000:06d}"


class _LinePrinter:
    """One line per packet when tcpdump is not installed, with the display options it can do."""

    def __init__(self, out: IO[str], options: Options) -> None:
        flags = options.flags
        self._out = out
        self._link = "-e" in flags
        self._verbose = flags.get("-v", 0)
        self._clock = _Clock(flags.get("-t", 0), nano=options.precision == "nano")
        self._number = "-#" in flags
        self._count_only = "--count" in flags
        # Each line is written out at once anyway (flush() comes after each read from
        # the daemon); -l and -U ask for it line by line.
        self._each_line = "-l" in flags or "-U" in flags
        # As tcpdump: -X wins over -x, which wins over -A; given twice, each takes the
        # link-level header too.
        self._dump = next(
            ((flag, flags[flag]) for flag in ("-X", "-x", "-A") if flag in flags), None
        )
        self._packets = 0

    def write(self, block_type: int, block: bytes) -> None:
        if block_type != EPB_TYPE:
            return
        self._packets += 1
        if self._count_only:
            return
        packet = read_packet(block)
        text, header = describe(packet, link=self._link, verbose=self._verbose)
        line = self._clock.stamp(packet.timestamp) + text
        if self._number:
            line = f"{self._packets:5d}  {line}"
        self._out.write(f"{line}\n{self._dumped(packet.data, header)}")
        if self._each_line:
            self._out.flush()

    def _dumped(self, data: bytes, header: int) -> str:
        """What -x, -xx, -X, -XX or -A add after the packet's line."""
        if self._dump is None:
            return ""
        flag, times = self._dump
        if times == 1:
            if len(data) <= header:
                return ""
            data = data[header:]
        if flag == "-A":
            return ascii_dump(data) + "\n"
        return "".join(line + "\n" for line in hex_dump(data, ascii_too=flag == "-X"))

    def flush(self) -> None:
        self._out.flush()

    def check(self) -> None:
        pass

    def close(self) -> None:
        if self._count_only:
            self._out.write(f"{self._packets} packet{'s' * (self._packets != 1)}\n")
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

    def check(self) -> None:
        pass

    def close(self) -> None:
        self._out.flush()
        if self._owned:
            self._out.close()


class _Tcpdump:
    """Hands the stream to ``tcpdump -r -``, which prints each packet its own way."""

    def __init__(self, program: str, display: list[str]) -> None:
        import subprocess  # noqa: PLC0415 - only when tcpdump prints
        import tempfile  # noqa: PLC0415

        # tcpdump's own "reading from file -" line would confuse: its stderr
        # is kept aside and passed on without it once tcpdump is done.
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        # S603: the program is tcpdump as found on the PATH, the options tcpdump's
        # own display options, checked, each one argument.
        # A process group of its own: Ctrl-C at the terminal reaches only us,
        # and tcpdump prints everything we pass it before the end of its input.
        self._proc: subprocess.Popen[bytes] = subprocess.Popen(  # noqa: S603
            [program, "-r", "-", *display],
            stdin=subprocess.PIPE,
            stderr=self._errors,
            process_group=0,
        )
        assert self._proc.stdin is not None
        self._stdin = self._proc.stdin

    def write(self, block_type: int, block: bytes) -> None:  # noqa: ARG002
        try:
            self._stdin.write(block)
        except BrokenPipeError:
            self._ended()
            raise

    def flush(self) -> None:
        try:
            self._stdin.flush()
        except BrokenPipeError:
            self._ended()
            raise

    def check(self) -> None:
        """Raise if tcpdump has ended while the capture goes on."""
        if self._proc.poll() is not None:
            self._ended()

    def _ended(self) -> None:
        import subprocess  # noqa: PLC0415

        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(STOP_TIMEOUT)
        status = self._proc.returncode
        if status is None or status == -signal.SIGPIPE:
            # Its standard output's reader went away (| head): stop quietly, as
            # tcpdump does.
            raise BrokenPipeError
        raise CaptureFailedError(f"tcpdump, which prints the packets, exited with status {status}")

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


Printer = _Tcpdump | _LinePrinter


class _Tee:
    """``-w FILE --print``: the stream goes to the file, and the packets to a printer."""

    def __init__(self, writer: _StreamWriter, printer: Printer) -> None:
        self._writer = writer
        self._printer = printer

    def write(self, block_type: int, block: bytes) -> None:
        self._writer.write(block_type, block)
        self._printer.write(block_type, block)

    def flush(self) -> None:
        self._writer.flush()
        self._printer.flush()

    def check(self) -> None:
        self._printer.check()

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._printer.close()


Sink = _StreamWriter | _Tcpdump | _LinePrinter | _Tee


def _sink(options: Options) -> Sink:
    if options.file is None:
        return _printer(options)
    if options.file == "-":
        writer = _StreamWriter(sys.stdout.buffer, owned=False)
    else:
        try:
            writer = _StreamWriter(open(options.file, "wb"), owned=True)  # noqa: PTH123, SIM115
        except OSError as exc:
            raise CaptureFailedError(f"{options.file}: {exc.strerror or exc}") from None
    if options.print_too:
        return _Tee(writer, _printer(options))
    return writer


def _printer(options: Options) -> Printer:
    import shutil  # noqa: PLC0415 - only when printing

    program = shutil.which("tcpdump")
    if program is not None:
        return _Tcpdump(program, options.tcpdump_args)
    ignored = [typed for name, typed in options.typed.items() if name in _NOT_OURS]
    if ignored:
        sys.stderr.write(
            f"{PROG}: WARNING: tcpdump is not on the PATH, and our own printer "
            f"ignores {', '.join(ignored)}\n"
        )
    return _LinePrinter(sys.stdout, options)


def _capture(
    sock: socket.socket, sink: Sink, count: int | None, stopper: _Stopper
) -> tuple[int, CaptureStats]:
    """Copy blocks to ``sink`` until stopped, COUNT packets or the end; return (written, stats)."""
    reader = BlockReader()
    written = 0
    stop_sent_at: float | None = None
    sock.settimeout(POLL)
    while True:
        sink.check()
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


def describe(packet: Packet, *, link: bool, verbose: int) -> tuple[str, int]:
    """Our line for a packet after its time stamp, and the length of its link-level header.

    The line: direction, addresses, protocol, length (``link``: MACs and VLAN
    tags too); the header: Ethernet's and its VLAN tags, which ``-x`` leaves out.
    """
    data, length = packet.data, packet.orig_len
    way = {1: "In ", 2: "Out"}.get(packet.direction, "   ")
    if len(data) < 14:
        return f"{way} truncated frame, length {length}", 14
    macs = f"{_mac(data[6:12])} > {_mac(data[0:6])}"
    etype = int.from_bytes(data[12:14], "big")
    offset = 14
    tags = []
    while etype in _VLAN_TYPES and len(data) >= offset + 4:
        tags.append(f"vlan {int.from_bytes(data[offset : offset + 2], 'big') & 0x0FFF}")
        etype = int.from_bytes(data[offset + 2 : offset + 4], "big")
        offset += 4
    if etype <= 1500:
        # 802.3: a length, not a type, and an LLC header, which tcpdump counts
        # in the link-level header that -x leaves out.
        offset += _llc_length(data[offset:])
    head = way
    if link:
        head += f" {macs}, {', '.join([*tags, f'ethertype 0x{etype:04x}'])}:"
    return f"{head} {_l3(etype, data[offset:], length, verbose)}", offset


#: The types of VLAN tags tcpdump reads through (802.1Q, QinQ's, and two older ones).
_VLAN_TYPES = (0x8100, 0x88A8, 0x9100, 0x9200)


def _llc_length(llc: bytes) -> int:
    """The length of an 802.2 LLC header (with its SNAP header), as tcpdump measures it."""
    if len(llc) < 3:
        return len(llc)
    if llc[0] == llc[1] == 0xFF:
        return 0  # Novell's "raw" 802.3: IPX at once, no LLC header
    if llc[2] & 3 != 3:
        return 4  # information and supervisory frames: a 2-byte control field
    if llc[0] == 0xAA and llc[1] & 0xFE == 0xAA:
        return 8  # SNAP: an OUI and a type follow
    return 3


def hex_dump(data: bytes, *, ascii_too: bool) -> list[str]:
    """The lines of tcpdump's ``-x`` (``-X`` with ``ascii_too``): 16 bytes a line, in pairs."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        pairs = " ".join(chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
        if ascii_too:
            text = "".join(chr(b) if 0x20 < b < 0x7F else "." for b in chunk)
            lines.append(f"\t0x{offset:04x}:  {pairs:<39}  {text}")
        else:
            lines.append(f"\t0x{offset:04x}:  {pairs}")
    return lines


def ascii_dump(data: bytes) -> str:
    """The text of tcpdump's ``-A``.

    Printable bytes, tabs, blanks and newlines as they are, the rest as dots;
    a carriage return is left out before a newline and near the end.
    """
    out = []
    for i, byte in enumerate(data):
        if byte == 0x0D:
            # tcpdump's test: more than one byte left after it, and not a newline next.
            if len(data) - i - 1 > 1 and data[i + 1] != 0x0A:
                out.append(".")
        elif 0x20 < byte < 0x7F or byte in (0x09, 0x20, 0x0A):
            out.append(chr(byte))
        else:
            out.append(".")
    return "".join(out)


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
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if options.info is not None:
        sys.stdout.write(options.info)
        return 0
    for warning in options.warnings:
        sys.stderr.write(f"{PROG}: WARNING: {warning}\n")
    snaplen = options.snaplen or MAX_SNAPLEN
    stopper = _Stopper()
    sock, info = _connect(options.port, options.expression, snaplen)
    with sock:
        # As tcpdump: the port and the filter are checked first, then the
        # output file is opened, and only then is the capture announced.
        sink = _sink(options)
        sys.stderr.write(
            f"{PROG}: listening on {options.port}, link-type EN10MB (Ethernet), "
            f"snapshot length {info.get('snaplen', snaplen)} bytes\n"
        )
        sys.stderr.flush()
        try:
            written, stats = _capture(sock, sink, options.count, stopper)
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
