"""pvs-ofctl: OpenFlow tables, ports and features of pvs-vswitchd's bridges, as ovs-ofctl.

``pvs-ofctl [OPTIONS] COMMAND BRIDGE [ARG...]`` takes ovs-ofctl's commands,
options and flow syntax and prints what ovs-ofctl prints, with its messages
(``pvs-ofctl:`` in front) and exit status 1 for an error. ovs-ofctl speaks
OpenFlow to a bridge; pvs-ofctl asks pvs-vswitchd over its control socket
(``$PVS_RUNDIR/pvs-vswitchd.ctl``, found as pvs-appctl finds it) with the
``ofctl/*`` commands of :mod:`pyvswitch.vswitchd.ofctl_commands`, which read
the flows with the bridge's port names and answer in ovs-ofctl's words.
This program only checks what it can alone (options, argument counts,
files) and passes the rest on, so it imports no more than pvs-appctl does.

As in ovs-ofctl, options may come anywhere before ``--``, long options may
be shortened to any unambiguous beginning, and port names are printed by
default only when the output is a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from pyvswitch import __version__
from pyvswitch.cli.appctl import TransactError, run_main, socket_path, transact

if TYPE_CHECKING:
    from typing import TextIO

PROG = "pvs-ofctl"
TARGET = "pvs-vswitchd"

#: command -> (least, most) arguments, as ovs-ofctl counts them.
COMMANDS = {
    "show": (1, 1),
    "dump-flows": (1, 2),
    "dump-aggregate": (1, 2),
    "dump-ports": (1, 2),
    "dump-ports-desc": (1, 2),
    "dump-tables": (1, 1),
    "add-flow": (2, 2),
    "add-flows": (2, 2),
    "mod-flows": (2, 2),
    "del-flows": (1, 2),
    "replace-flows": (2, 2),
    "add-tlv-map": (2, 2),
    "del-tlv-map": (1, 2),
    "dump-tlv-map": (1, 1),
}
#: ovs-ofctl's commands that pyvswitch does not have, refused as such rather
#: than as unknown (which would suggest a typing mistake). mod-port would need
#: port configuration (no-flood, down...) that forwarding does not honour yet.
UNSUPPORTED = frozenset(
    (
        "dump-desc",
        "dump-table-features",
        "dump-table-desc",
        "mod-port",
        "mod-table",
        "get-frags",
        "set-frags",
        "queue-stats",
        "diff-flows",
        "packet-out",
        "monitor",
        "snoop",
        "add-group",
        "add-groups",
        "mod-group",
        "del-groups",
        "insert-buckets",
        "remove-buckets",
        "dump-group-features",
        "dump-groups",
        "dump-group-stats",
        "queue-get-config",
        "add-meter",
        "mod-meter",
        "del-meters",
        "dump-meters",
        "meter-stats",
        "meter-features",
        "dump-ipfix-bridge",
        "dump-ipfix-flow",
        "ct-flush-zone",
        "ct-flush",
        "probe",
        "ping",
        "benchmark",
        "ofp-parse",
        "ofp-parse-pcap",
    )
)
#: OpenFlow versions by the names ``-O`` takes (any case).
VERSIONS = {f"openflow1{minor}": f"OpenFlow1{minor}" for minor in range(6)}

USAGE = f"""\
{PROG}: OpenFlow switch management utility for pyvswitch
usage: {PROG} [OPTIONS] COMMAND [ARG...]

For the bridges of pvs-vswitchd:
  show SWITCH                 show OpenFlow information
  dump-tables SWITCH          print table stats
  dump-ports SWITCH [PORT]    print port statistics
  dump-ports-desc SWITCH [PORT]  print port descriptions
  dump-flows SWITCH           print all flow entries
  dump-flows SWITCH FLOW      print matching FLOWs
  dump-aggregate SWITCH       print aggregate flow statistics
  dump-aggregate SWITCH FLOW  print aggregate stats for FLOWs
  add-flow SWITCH FLOW        add flow described by FLOW
  add-flows SWITCH FILE       add flows from FILE ("-": standard input)
  mod-flows SWITCH FLOW       modify actions of matching FLOWs
  del-flows SWITCH [FLOW]     delete matching FLOWs
  replace-flows SWITCH FILE   replace flows with those in FILE
  add-tlv-map SWITCH MAP      add TLV option MAPpings
  del-tlv-map SWITCH [MAP]    delete TLV option MAPpings (all, without MAP)
  dump-tlv-map SWITCH         print TLV option mappings

Options:
  --strict                    use strict match for flow commands
  -O, --protocols=VERSIONS    OpenFlow10 ... OpenFlow15, comma-separated
  --names, --no-names         show (or not) port names in output
  --no-stats                  do not show statistics in flow dumps
  --sort[=FIELD], --rsort[=FIELD]
                              sort dumped flows by FIELD (default: priority)
  -t, --timeout=SECS          give up after SECS seconds
  -h, --help                  display this help message
  -V, --version               display version information

The switch is reached through $PVS_RUNDIR/{TARGET}.ctl.
"""

# Long options: name -> takes a value ("yes"), may take one after "=" ("optional"), or not.
_LONG = {
    "timeout": "yes",
    "strict": "no",
    "protocols": "yes",
    "names": "no",
    "no-names": "no",
    "no-stats": "no",
    "sort": "optional",
    "rsort": "optional",
    "help": "no",
    "version": "no",
}
_SHORT = {"t": "timeout", "O": "protocols", "h": "help", "V": "version"}


class _ExitError(Exception):
    """Stop with ``status`` after printing ``message`` (to stderr, prefixed) if any."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _long_option(arg: str, rest: list[str]) -> tuple[str, str | None]:
    """One ``--name[=value]`` option (its value may be the next word, taken from ``rest``)."""
    name, eq, value = arg[2:].partition("=")
    matches = [name] if name in _LONG else [opt for opt in _LONG if opt.startswith(name)]
    if not matches:
        raise _ExitError(1, f"unrecognized option '{arg}'")
    if len(matches) > 1:
        choices = " ".join(f"'--{opt}'" for opt in matches)
        raise _ExitError(1, f"option '{arg}' is ambiguous; possibilities: {choices}")
    name = matches[0]
    kind = _LONG[name]
    if kind == "no" and eq:
        raise _ExitError(1, f"option '--{name}' doesn't allow an argument")
    if kind == "yes" and not eq:
        if not rest:
            raise _ExitError(1, f"option '--{name}' requires an argument")
        return name, rest.pop(0)
    return name, value if eq else None


def _short_options(arg: str, rest: list[str]) -> list[tuple[str, str | None]]:
    """Bundled short options (``-hV``); one that takes a value takes the rest or the next word."""
    found: list[tuple[str, str | None]] = []
    for j, letter in enumerate(arg[1:], 1):
        if letter not in _SHORT:
            raise _ExitError(1, f"invalid option -- '{letter}'")
        name = _SHORT[letter]
        if _LONG[name] != "yes":
            found.append((name, None))
            continue
        value = arg[j + 1 :]
        if not value:
            if not rest:
                raise _ExitError(1, f"option requires an argument -- '{letter}'")
            value = rest.pop(0)
        found.append((name, value))
        break
    return found


def parse_options(argv: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Options and the other words, as getopt_long() finds them anywhere before ``--``."""
    options: list[tuple[str, str | None]] = []
    words: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            words += rest
            break
        if arg.startswith("--"):
            options.append(_long_option(arg, rest))
        elif arg.startswith("-") and arg != "-":
            options += _short_options(arg, rest)
        else:
            words.append(arg)
    return options, words


def _version(text: str) -> str:
    """The OpenFlow version a ``-O`` list settles on: the highest one."""
    chosen = []
    for name in text.split(","):
        version = VERSIONS.get(name.strip().lower())
        if version is None:
            raise _ExitError(1, f'Unknown OpenFlow version: "{name}"')
        chosen.append(version)
    return max(chosen)


class _Settings:
    """What the options ask for, as ``ofctl/*`` options."""

    def __init__(self, options: list[tuple[str, str | None]], stdout: TextIO) -> None:
        self.deadline: float | None = None
        self.flags: list[str] = []
        names: bool | None = None
        for name, value in options:
            if name == "timeout":
                seconds = value or ""
                if not seconds.isdigit() or int(seconds) == 0:
                    raise _ExitError(1, f"value {seconds} on -t or --timeout is invalid")
                self.deadline = time.monotonic() + int(seconds)
            elif name == "protocols":
                self.flags.append(f"--protocol={_version(value or '')}")
            elif name in ("sort", "rsort"):
                self.flags.append(f"--{name}={value}" if value else f"--{name}")
            elif name in ("names", "no-names"):
                names = name == "names"
            elif name in ("strict", "no-stats"):
                self.flags.append(f"--{name}")
        if names is None and stdout.isatty():
            # ovs-ofctl shows port names by default only to a person.
            names = True
        if names is not None:
            self.flags.append("--names" if names else "--no-names")


def _call(settings: _Settings, command: str, words: list[str], *extra: str) -> str:
    """Send ``ofctl/COMMAND`` with the options and ``words``: the reply, or _ExitError."""
    path = socket_path(TARGET)
    args = [*settings.flags, *extra, "--", *words]
    try:
        ok, text = transact(path, TARGET, f"ofctl/{command}", args, settings.deadline)
    except TransactError as exc:
        raise _ExitError(exc.status, exc.message) from None
    if not ok:
        raise _ExitError(1, text.rstrip("\n"))
    return text


def _read_file(name: str, stdin: TextIO) -> tuple[str | None, str]:
    """The flows file ``name`` ("-": standard input), or None and what went wrong."""
    if name == "-":
        return stdin.read(), ""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(fd, encoding="utf-8", errors="replace") as stream:
            return stream.read(), ""
    except OSError as exc:
        return None, f"{name}: open failed ({exc.strerror or exc})"


def _ofctl(argv: list[str], stdin: TextIO, stdout: TextIO) -> int:
    options, words = parse_options(argv)
    names = {name for name, _ in options}
    if "help" in names:
        stdout.write(USAGE)
        return 0
    if "version" in names:
        stdout.write(f"{PROG} (pyvswitch) {__version__}\n")
        return 0
    if not words:
        raise _ExitError(1, "missing command name; use --help for help")
    command, args = words[0], words[1:]
    if command in UNSUPPORTED:
        raise _ExitError(1, f"'{command}' command is not supported by pyvswitch")
    if command not in COMMANDS:
        raise _ExitError(1, f"unknown command '{command}'; use --help for help")
    least, most = COMMANDS[command]
    if len(args) < least:
        raise _ExitError(1, f"'{command}' command requires at least {least} arguments")
    if len(args) > most:
        raise _ExitError(1, f"'{command}' command takes at most {most} arguments")
    settings = _Settings(options, stdout)
    if command in ("add-flows", "replace-flows"):
        bridge, name = args
        text, error = _read_file(name, stdin)
        if text is None:
            # ovs-ofctl looks for the bridge before it opens the file.
            _call(settings, "show", [bridge])
            raise _ExitError(1, error)
        stdout.write(_call(settings, command, [bridge, text], f"--file={name}"))
    else:
        stdout.write(_call(settings, command, args))
    return 0


#: How an error the switch sent back starts: ovs-ofctl prints such an error
#: (and the request it refused) as it is, without its name in front.
_SWITCH_ERROR = "OFPT_ERROR"
#: A log line ovs-ofctl writes while it decodes a refused request, which the
#: daemon passes on without the time and sequence number a log line starts with.
_WARNING = "ofp_match|WARN|"


def _error_text(message: str) -> str:
    """What to write on standard error for ``message``, as ovs-ofctl would write it."""
    if not message.startswith((_SWITCH_ERROR, _WARNING)):
        return f"{PROG}: {message}\n"
    lines = message.split("\n")
    if lines[0].startswith(_WARNING):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        lines[0] = f"{stamp}|00001|{lines[0]}"
    return "".join(line + "\n" for line in lines)


def run(argv: list[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Everything :func:`main` does, with the streams given (for tests)."""
    try:
        return _ofctl(argv, stdin, stdout)
    except _ExitError as exc:
        if exc.message:
            stderr.write(_error_text(exc.message))
        return exc.status


def main(argv: list[str] | None = None) -> int:
    """The ``pvs-ofctl`` command."""
    args = sys.argv[1:] if argv is None else argv
    return run_main(lambda: run(args, sys.stdin, sys.stdout, sys.stderr))


if __name__ == "__main__":
    sys.exit(main())
