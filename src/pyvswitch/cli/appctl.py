"""pvs-appctl: call a control command of a running daemon, as ovs-appctl does.

``pvs-appctl [-t TARGET] [--timeout=SECS] COMMAND [ARG...]`` sends one unixctl
request (see :mod:`pyvswitch.vswitchd.unixctl`) and prints the reply: the
result on stdout (exit 0), or the error text on stderr followed by
``pvs-appctl: TARGET: server returned an error`` (exit 2). Failing to connect,
a broken reply or a bad option exits 1; no reply within ``--timeout`` exits
142, the status ovs-appctl gets from the SIGALRM that ends it. The messages are
ovs-appctl's, with this program's name.

TARGET is a socket path (anything containing "/") or a program name, meaning
``$PVS_RUNDIR/NAME.ctl`` (``/var/run/pyvswitch`` by default); the default
target is ``pvs-vswitchd``. It works against Open vSwitch's daemons too
(``-t /var/run/openvswitch/ovs-vswitchd.PID.ctl``).

It runs once per command, often in scripts and loops, so it imports only
``json``, ``os`` and ``socket``: not asyncio, not the rest of pyvswitch.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

from pyvswitch import __version__

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

PROG = "pvs-appctl"
DEFAULT_RUNDIR = "/var/run/pyvswitch"
DEFAULT_TARGET = "pvs-vswitchd"
#: What a shell sees when ovs-appctl is ended by its --timeout alarm (128 + SIGALRM).
EXIT_TIMEOUT = 142

USAGE = f"""\
{PROG}, for querying and controlling pyvswitch daemons
usage: {PROG} [TARGET] COMMAND [ARG...]
Targets:
  -t, --target=TARGET  socket path, or program name for $PVS_RUNDIR/TARGET.ctl
                       (default: {DEFAULT_TARGET}; PVS_RUNDIR: {DEFAULT_RUNDIR})
Common commands:
  list-commands      List commands supported by the target
  version            Print version of the target
Other options:
  --timeout=SECS     wait at most SECS seconds for a response
  -h, --help         Print this helpful information
  -V, --version      Display {PROG} version information
"""

# Long options and whether they take a value; getopt_long() accepts any
# unambiguous prefix ("--targ"), and so do we.
_LONG = {"target": True, "timeout": True, "help": False, "version": False}
_SHORT = {"t": "target", "T": "timeout", "h": "help", "V": "version"}


class _ExitError(Exception):
    """Stop with ``status`` after printing ``message`` (to stderr, prefixed) if any."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: What :func:`transact` raises when there is no valid reply: other clients of
#: the control socket (pvs-ofctl) report its ``status`` and ``message``.
TransactError = _ExitError


def _parse_options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Options and the rest, the way getopt_long() with "+" does: options stop at COMMAND."""
    options: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            matches = [opt for opt in _LONG if opt.startswith(name)]
            if name in _LONG:
                matches = [name]
            if not matches:
                raise _ExitError(1, f"unrecognized option '{arg}'")
            if len(matches) > 1:
                choices = " ".join(f"'--{opt}'" for opt in matches)
                raise _ExitError(1, f"option '{arg}' is ambiguous; possibilities: {choices}")
            name = matches[0]
            if _LONG[name] and not eq:
                i += 1
                if i == len(argv):
                    raise _ExitError(1, f"option '--{name}' requires an argument")
                value = argv[i]
            elif not _LONG[name] and eq:
                raise _ExitError(1, f"option '--{name}' doesn't allow an argument")
            options[name] = value
        elif arg.startswith("-") and arg != "-":
            # Short options may be bundled ("-hV") and take a value attached
            # ("-tNAME") or in the next argument.
            j = 1
            while j < len(arg):
                letter = arg[j]
                if letter not in _SHORT:
                    raise _ExitError(1, f"invalid option -- '{letter}'")
                name = _SHORT[letter]
                if _LONG[name]:
                    value = arg[j + 1 :]
                    if not value:
                        i += 1
                        if i == len(argv):
                            raise _ExitError(1, f"option requires an argument -- '{letter}'")
                        value = argv[i]
                    options[name] = value
                    break
                options[name] = ""
                j += 1
        else:
            break
        i += 1
    return options, argv[i:]


def socket_path(target: str) -> str:
    """Where ``target`` listens: a path as given, or ``$PVS_RUNDIR/<target>.ctl``."""
    if "/" in target:
        return target
    rundir = os.environ.get("PVS_RUNDIR") or DEFAULT_RUNDIR
    return f"{rundir}/{target}.ctl"


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def transact(
    path: str, target: str, method: str, params: list[str], deadline: float | None
) -> tuple[bool, str]:
    """Send one request to socket ``path``: ``(True, result)`` or ``(False, error text)``.

    Raises :class:`_ExitError` with ovs-appctl's message when there is no valid reply.
    """

    def remaining() -> float | None:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.settimeout(remaining())
            sock.connect(path)
        except TimeoutError:
            raise
        except OSError as exc:
            raise _ExitError(1, f'cannot connect to "{path}" ({_strerror(exc)})') from None
        # id 0, as ovs-appctl: there is one request per connection.
        request = {"id": 0, "method": method, "params": params}
        try:
            sock.sendall(json.dumps(request, separators=(",", ":")).encode())
            return _receive_reply(sock, remaining, target)
        except TimeoutError:
            raise
        except OSError as exc:
            raise _ExitError(1, f"{target}: transaction error ({_strerror(exc)})") from None
    except TimeoutError:
        raise _ExitError(EXIT_TIMEOUT, f"{target}: no response within the timeout") from None
    finally:
        sock.close()


def _receive_reply(
    sock: socket.socket, remaining: Callable[[], float | None], target: str
) -> tuple[bool, str]:
    decoder = json.JSONDecoder()
    data = bytearray()
    start = 0  # where the next unread JSON value begins
    while True:
        sock.settimeout(remaining())
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise _ExitError(1, f"{target}: transaction error (End of file)")
        data += chunk
        # A reply is an object and so ends with "}": parsing only then keeps a
        # large reply, read in many pieces, from being re-parsed every time.
        if not data.rstrip().endswith(b"}"):
            continue
        try:
            text = data[start:].decode()
        except UnicodeDecodeError:
            raise _ExitError(1, f"{target}: transaction error (Protocol error)") from None
        pos = 0
        while True:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if pos == len(text):
                break
            try:
                message, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                if exc.pos >= len(text) or exc.msg.startswith("Unterminated string"):
                    break  # incomplete: read on
                raise _ExitError(1, f"{target}: transaction error (Protocol error)") from None
            start += len(text[pos:end].encode())
            pos = end
            reply = _as_reply(message, target)
            if reply is not None:
                return reply


def _as_reply(message: Any, target: str) -> tuple[bool, str] | None:
    """The reply to our request in ``message``, or None for anything else (skipped, as OVS)."""
    if not isinstance(message, dict) or "method" in message or message.get("id") != 0:
        return None
    error = message.get("error")
    if error is not None:
        # ovs-appctl refuses an error that is not a string, and so do we.
        if not isinstance(error, str):
            raise _ExitError(1, f"{target}: transaction error (Invalid argument)")
        return False, error
    result = message.get("result")
    if not isinstance(result, str):
        raise _ExitError(1, f"{target}: transaction error (Invalid argument)")
    return True, result


def run(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    """Everything :func:`main` does, with the output streams given (for tests)."""
    try:
        return _appctl(argv, stdout, stderr)
    except _ExitError as exc:
        if exc.message:
            stderr.write(f"{PROG}: {exc.message}\n")
        return exc.status


def _appctl(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    options, rest = _parse_options(argv)
    if "help" in options:
        stdout.write(USAGE)
        return 0
    if "version" in options:
        stdout.write(f"{PROG} (pyvswitch) {__version__}\n")
        return 0
    if not rest:
        raise _ExitError(1, "at least one non-option argument is required (use --help for help)")
    deadline = None
    if "timeout" in options:
        value = options["timeout"]
        if not value.isdigit() or int(value) == 0:
            raise _ExitError(1, f"value {value} on -T or --timeout is invalid")
        deadline = time.monotonic() + int(value)
    target = options.get("target", DEFAULT_TARGET)
    ok, text = transact(socket_path(target), target, rest[0], rest[1:], deadline)
    if ok:
        stdout.write(text)
        return 0
    stderr.write(text)
    raise _ExitError(2, f"{target}: server returned an error")


def main(argv: list[str] | None = None) -> int:
    """The ``pvs-appctl`` command."""
    args = sys.argv[1:] if argv is None else argv
    return run_main(lambda: run(args, sys.stdout, sys.stderr))


def run_main(command: Callable[[], int]) -> int:
    """Run a tool's ``command`` as a program's main and return its exit status.

    No traceback when the reader of its output goes away or the user interrupts.
    """
    try:
        status = command()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (| head) has gone: not an error of ours. Point stdout at
        # nothing so the interpreter's own flush at exit does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        # Interrupted while waiting for a reply: the shell's status for
        # SIGINT, without a traceback.
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
