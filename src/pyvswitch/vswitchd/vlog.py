"""Logging as Open vSwitch's vlog: modules, three destinations, levels, patterns.

pyvswitch's modules log through Python's :mod:`logging` under ``pyvswitch.*``;
this module turns that into what an Open vSwitch user knows from
``lib/vlog.c``:

* a *module* is the last component of a logger's name (``pyvswitch.ovsdb.journal``
  is ``journal``; loggers outside pyvswitch, such as ``asyncio``, by their first
  component);
* every module has a level for each *destination*: ``console`` (stderr),
  ``syslog`` (the local syslog socket, when there is one) and ``file`` (the log
  file, once ``--log-file`` opened one). The levels are ``off``, ``emer``,
  ``err``, ``warn``, ``info`` and ``dbg``, all ``info`` at start;
* a spec such as ``console:off``, ``vswitchd:file:dbg`` or ``ANY:ANY:warn``
  (words in any order, separated by ``:``, ``,`` or spaces; a missing module
  or destination means all of them, a missing level means ``dbg``) sets them,
  from ``-v`` on the command line or ``vlog/set`` at run time, with vlog's
  error messages; ``PATTERN:DESTINATION:PATTERN`` and ``FACILITY:NAME`` too;
* each destination formats a message with its pattern, in vlog's pattern
  language (``%D{...}``, ``%05N``, ``%c``, ``%p``, ``%m``, ...), so a log file
  reads ``2026-11-26T17:05:24.123Z|00001|vswitchd|INFO|message`` as Open
  vSwitch's does.

The control commands ``vlog/set``, ``vlog/list``, ``vlog/list-pattern``,
``vlog/reopen`` (for logrotate) and ``vlog/close`` answer as vlog's do.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from pyvswitch.vswitchd.unixctl import UnixctlError

if TYPE_CHECKING:
    from pyvswitch.vswitchd.unixctl import UnixctlServer

log = logging.getLogger("pyvswitch.vswitchd.vlog")

#: Level names, least verbose first; a message is written to a destination
#: when its level is at most the destination's level for its module.
LEVELS = ("OFF", "EMER", "ERR", "WARN", "INFO", "DBG")
OFF, EMER, ERR, WARN, INFO, DBG = range(len(LEVELS))

#: Destination names in vlog's order (``vlog/list-pattern`` lists them so).
DESTINATIONS = ("SYSLOG", "CONSOLE", "FILE")
SYSLOG, CONSOLE, FILE = range(len(DESTINATIONS))

DEFAULT_PATTERNS = (
    # Open vSwitch marks its syslog lines "ovs|"; ours say "pvs|".
    "pvs|%05N|%c%T|%p|%m",
    "%D{%Y-%m-%dT%H:%M:%SZ}|%05N|%c%T|%p|%m",
    "%D{%Y-%m-%dT%H:%M:%S.###Z}|%05N|%c%T|%p|%m",
)
#: What goes before the pattern in a message to the syslog socket (RFC 3164).
SYSLOG_PREFIX = "<%B> %D{%h %e %T} %E %A:"
SYSLOG_SOCKET = "/dev/log"

#: The syslog severity of each level (vlog sends "info" as a notice).
_SYSLOG_SEVERITY = (1, 1, 3, 4, 5, 7)
#: Syslog facilities by name, as vlog accepts them in ``FACILITY:NAME``.
FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "clock": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "audit": 13,
    "alert": 14,
    "clock2": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}
_LOCAL0 = 16

#: Python's level for each vlog level ("off" is above every Python level).
_PY_LEVELS = (
    logging.CRITICAL + 10,
    logging.CRITICAL,
    logging.ERROR,
    logging.WARNING,
    logging.INFO,
)
#: Loggers outside pyvswitch that the daemon's own code depends on: asyncio
#: reports errors of callbacks and tasks through its logger.
FOREIGN_MODULES = ("asyncio",)


class VlogError(Exception):
    """A spec or a log file was refused; the message is vlog's."""


def vlog_level(levelno: int) -> int:
    """The vlog level of a Python logging level."""
    if levelno >= logging.CRITICAL:
        return EMER
    if levelno >= logging.ERROR:
        return ERR
    if levelno >= logging.WARNING:
        return WARN
    if levelno >= logging.INFO:
        return INFO
    return DBG


def module_name(logger_name: str) -> str:
    """The vlog module of a logger: the last component of ours, the first of others'."""
    if logger_name.startswith("pyvswitch."):
        return logger_name.rsplit(".", 1)[1]
    return logger_name.split(".", 1)[0]


def _find(name: str, names: tuple[str, ...]) -> int | None:
    # vlog compares names without regard to case.
    lowered = name.lower()
    return next((i for i, n in enumerate(names) if n.lower() == lowered), None)


def _strftime_msec(fmt: str, when: float, utc: bool) -> str:
    """strftime(), then vlog's ".###" after a dot becomes the milliseconds."""
    text = time.strftime(fmt, time.gmtime(when) if utc else time.localtime(when))
    msec = f"{int(when * 1000) % 1000:03d}"
    out = []
    i = 0
    while i < len(text):
        out.append(text[i])
        i += 1
        if text[i - 1] == ".":
            digits = iter(msec)
            while i < len(text) and text[i] == "#":
                out.append(next(digits, "#"))
                i += 1
    return "".join(out)


class Vlog:
    """One process's logging configuration, and the handler that writes the messages.

    :meth:`install` attaches it to the root logger; from then on every
    message logged in the process goes through :meth:`emit`.
    """

    def __init__(self, program: str) -> None:
        self.program = program
        self.default = [INFO] * len(DESTINATIONS)
        self.levels: dict[str, list[int]] = {}
        self.patterns = list(DEFAULT_PATTERNS)
        self.facility: int | None = None
        self.log_file: Path | None = None
        self._log_fd: int | None = None
        self._seq = 0
        self._handler = _Handler(self)
        self._syslog: socket.socket | None = None

    # -- installing ------------------------------------------------------------------

    def install(self) -> None:
        """Take over the process's logging: every logger's messages come here."""
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(self._handler)
        self._apply()

    def uninstall(self) -> None:
        """Stop handling the process's logging (the file and socket are closed)."""
        logging.getLogger().removeHandler(self._handler)
        self.close_log_file()
        if self._syslog is not None:
            self._syslog.close()
            self._syslog = None

    # -- modules and levels ----------------------------------------------------------------

    def modules(self) -> dict[str, list[int]]:
        """Every module with its levels: the loggers this process has, and any seen since."""
        for name, logger in logging.root.manager.loggerDict.items():
            if isinstance(logger, logging.Logger) and (
                name.startswith("pyvswitch.") or name in FOREIGN_MODULES
            ):
                self.levels.setdefault(module_name(name), list(self.default))
        return self.levels

    def _levels_of(self, module: str) -> list[int]:
        levels = self.levels.get(module)
        return self.default if levels is None else levels

    def set_levels(self, module: str | None, destination: int | None, level: int) -> None:
        """Set ``module``'s level (None: every module) for ``destination`` (None: all)."""
        dests = range(len(DESTINATIONS)) if destination is None else (destination,)
        modules = self.modules()
        targets = [self.default, *modules.values()] if module is None else [modules[module]]
        for levels in targets:
            for dest in dests:
                levels[dest] = level
        self._apply()

    def set_verbosity(self, spec: str | None) -> None:
        """``-v``/``--verbose``: a spec, or (without one) every module at ``dbg`` everywhere.

        Raises :class:`VlogError` with vlog's wording for a bad spec.
        """
        if spec is None:
            self.set_levels(None, None, DBG)
            return
        try:
            self.set_from_string(spec)
        except VlogError as exc:
            raise VlogError(f'processing "{spec}": {exc}') from None

    def set_from_string(self, spec: str) -> None:
        """Apply one spec (``vlog/set``'s argument); raises :class:`VlogError` for a bad one."""
        words = _words(spec)
        first = words[0][0].upper() if words else ""
        if first == "PATTERN":
            self._set_pattern(words)
        elif first == "FACILITY":
            facility = FACILITIES.get(words[0][1].lower())
            if facility is None:
                raise VlogError("invalid facility")
            self.facility = facility
        else:
            self._set_levels_spec([word for word, _ in words])

    def _set_pattern(self, words: list[tuple[str, str]]) -> None:
        if len(words) < 2:
            raise VlogError("missing destination")
        name, pattern = words[1]
        destination = _find(name, DESTINATIONS)
        if name.upper() != "ANY" and destination is None:
            raise VlogError(f'unknown destination "{name}"')
        for dest in range(len(DESTINATIONS)) if destination is None else (destination,):
            self.patterns[dest] = pattern

    def _set_levels_spec(self, words: list[str]) -> None:
        module: str | None = None
        destination: int | None = None
        level: int | None = None
        modules = self.modules()
        for word in words:
            if word.upper() == "ANY":
                continue
            dest = _find(word, DESTINATIONS)
            lvl = _find(word, LEVELS)
            found = next((m for m in modules if m.lower() == word.lower()), None)
            if dest is not None:
                if destination is not None:
                    raise VlogError("cannot specify multiple destinations")
                destination = dest
            elif lvl is not None:
                if level is not None:
                    raise VlogError("cannot specify multiple levels")
                level = lvl
            elif found is not None:
                if module is not None:
                    raise VlogError("cannot specify multiple modules")
                module = found
            else:
                raise VlogError(f'no destination, level, or module "{word}"')
        self.set_levels(module, destination, DBG if level is None else level)

    def _apply(self) -> None:
        """Give each Python logger the most verbose level any of its destinations wants.

        Python then drops what no destination would write before it builds a
        message, which keeps disabled debug messages cheap.
        """
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger) and (
                name.startswith("pyvswitch.") or name in FOREIGN_MODULES
            ):
                logger.setLevel(self._python_level(self._levels_of(module_name(name))))
        logging.getLogger().setLevel(self._python_level(self.default))

    def _python_level(self, levels: list[int]) -> int:
        active = [
            lvl for dest, lvl in enumerate(levels) if dest != FILE or self._log_fd is not None
        ]
        most = max(active, default=OFF)
        return logging.DEBUG if most == DBG else _PY_LEVELS[most]

    # -- the log file ----------------------------------------------------------------

    def set_log_file(self, path: Path) -> None:
        """Log to ``path`` (appending), instead of the file in use if any.

        Raises :class:`VlogError` when it cannot be opened; the file in use,
        if any, stays in use.
        """
        path = path.absolute()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o660)
        except OSError as exc:
            raise VlogError(f"failed to open {path} for logging: {exc.strerror}") from None
        if self._log_fd is not None:
            old, new = os.fstat(self._log_fd), os.fstat(fd)
            if (old.st_dev, old.st_ino) == (new.st_dev, new.st_ino):
                os.close(fd)
                return
            log.info("closing log file")
            os.close(self._log_fd)
        self._log_fd = fd
        self.log_file = path
        self._apply()
        log.info("opened log file %s", path)

    def reopen_log_file(self) -> None:
        """Open the log file by its name again (after logrotate moved it away)."""
        if self.log_file is None:
            raise VlogError("Logging to file not configured")
        self.set_log_file(self.log_file)

    def close_log_file(self) -> None:
        """Stop writing the log file (``vlog/close``); ``vlog/reopen`` opens it again."""
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
            self._apply()

    # -- writing -----------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Write one message to each destination whose level for its module admits it."""
        module = module_name(record.name)
        level = vlog_level(record.levelno)
        levels = self._levels_of(module)
        wanted = [
            dest
            for dest in range(len(DESTINATIONS))
            if levels[dest] >= level and (dest != FILE or self._log_fd is not None)
        ]
        if not wanted:
            return
        self._seq += 1
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        for dest in wanted:
            line = self.format(self.patterns[dest], module, level, message, record.created)
            self._write(dest, level, line)

    def _write(self, dest: int, level: int, line: str) -> None:
        # A destination that fails must not stop the daemon, nor log about
        # itself (that would recurse): the message is lost for it alone.
        try:
            if dest == CONSOLE:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            elif dest == FILE and self._log_fd is not None:
                os.write(self._log_fd, (line + "\n").encode())
            elif dest == SYSLOG:
                self._send_syslog(level, line)
        except (OSError, ValueError):
            pass

    def _send_syslog(self, level: int, line: str) -> None:
        if not Path(SYSLOG_SOCKET).exists():
            return
        if self._syslog is None:
            self._syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        prefix = self.format(SYSLOG_PREFIX, "", level, "", time.time())
        self._syslog.sendto(f"{prefix} {line}".encode(), SYSLOG_SOCKET)

    def format(self, pattern: str, module: str, level: int, message: str, when: float) -> str:
        """``pattern`` filled in for one message, as vlog's ``format_log_message()``."""
        out: list[str] = []
        i = 0
        while i < len(pattern):
            char = pattern[i]
            i += 1
            if char != "%" or i >= len(pattern):
                out.append(char)
                continue
            left = pattern[i] == "-"
            i += left
            pad = "0" if pattern[i : i + 1] == "0" else " "
            start = i
            while i < len(pattern) and pattern[i].isdigit():
                i += 1
            width = int(pattern[start:i] or 0)
            if i >= len(pattern):
                break
            code = pattern[i]
            i += 1
            argument = None
            if i < len(pattern) and pattern[i] == "{" and code in "cdD":
                end = pattern.find("}", i)
                end = len(pattern) if end < 0 else end
                argument, i = pattern[i + 1 : end], end + 1
            text = self._field(code, argument, module, level, message, when)
            if len(text) < width:
                text = text.ljust(width) if left else text.rjust(width, pad)
            out.append(text)
        return "".join(out)

    def _field(
        self, code: str, argument: str | None, module: str, level: int, message: str, when: float
    ) -> str:
        match code:
            case "d" | "D":
                fmt = argument or "%Y-%m-%d %H:%M:%S.###"
                return _strftime_msec(fmt, when, utc=code == "D")
            case "A":
                return self.program
            case "B":
                return str((self.facility or _LOCAL0) * 8 + _SYSLOG_SEVERITY[level])
            case "c":
                return module
            case "E":
                return socket.gethostname()
            case "m":
                return message.rstrip("\n")
            case "N":
                return str(self._seq)
            case "n":
                return "\n"
            case "p":
                return LEVELS[level]
            case "P":
                return str(os.getpid())
            case "r":
                return str(int((time.time() - _START) * 1000))
            case "t":
                return "main"
            case "T":
                # The daemon logs from its main thread only, which has no subprogram name.
                return ""
        # As vlog, an unknown conversion prints its letter.
        return code

    # -- what the control commands print ---------------------------------------------

    def list_levels(self) -> str:
        """``vlog/list``: a line per module, sorted, below vlog's header."""
        lines = sorted(
            f"{name:<16}  {LEVELS[lv[CONSOLE]]:>4}       {LEVELS[lv[SYSLOG]]:>4}"
            f"       {LEVELS[lv[FILE]]:>4}\n"
            for name, lv in self.modules().items()
        )
        return (
            "                 console    syslog    file\n"
            "                 -------    ------    ------\n" + "".join(lines)
        )

    def list_patterns(self) -> str:
        """``vlog/list-pattern``: each destination's prefix and pattern."""
        out = [
            "         prefix                            format\n",
            "         ------                            ------\n",
        ]
        for dest, name in enumerate(DESTINATIONS):
            prefix = SYSLOG_PREFIX if dest == SYSLOG else "none"
            out.append(f"{name:<7}  {prefix:<32}  {self.patterns[dest]}\n")
        return "".join(out)


_START = time.time()


def _words(spec: str) -> list[tuple[str, str]]:
    """The words of a spec, each with the text after it.

    vlog splits a spec at spaces, tabs, commas and colons, as ``strtok()``
    does (empty words do not count); a pattern or a facility is the raw text
    after its keyword's one separator.
    """
    out = []
    i = 0
    while i < len(spec):
        if spec[i] in _SEPARATORS:
            i += 1
            continue
        start = i
        while i < len(spec) and spec[i] not in _SEPARATORS:
            i += 1
        out.append((spec[start:i], spec[i + 1 :]))
    return out


_SEPARATORS = " ,:\t"


class _Handler(logging.Handler):
    """The one handler on the root logger: hands every record to its :class:`Vlog`."""

    def __init__(self, vlog: Vlog) -> None:
        super().__init__(logging.NOTSET)
        self.vlog = vlog

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.vlog.emit(record)
        except Exception:  # noqa: BLE001 - a bad log call must not break its caller
            self.handleError(record)


def installed() -> Vlog | None:
    """The :class:`Vlog` that handles this process's logging, if one was installed."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            return handler.vlog
    return None


def register_vlog_commands(server: UnixctlServer, vlog: Vlog) -> None:
    """``vlog/set``, ``vlog/list``, ``vlog/list-pattern``, ``vlog/reopen``, ``vlog/close``."""
    server.register(
        "vlog/set", "{spec | PATTERN:destination:pattern}", 0, 2**31 - 1, lambda a: _set(vlog, a)
    )
    server.register("vlog/list", "", 0, 0, lambda _a: vlog.list_levels())
    server.register("vlog/list-pattern", "", 0, 0, lambda _a: vlog.list_patterns())
    server.register("vlog/reopen", "", 0, 0, lambda _a: _reopen(vlog))
    server.register("vlog/close", "", 0, 0, lambda _a: _close(vlog))


def _set(vlog: Vlog, specs: list[str]) -> str:
    if not specs:
        # vlog/set without a spec turns everything up, as Open vSwitch 3.1 does.
        vlog.set_levels(None, None, DBG)
    for spec in specs:
        try:
            vlog.set_from_string(spec)
        except VlogError as exc:
            raise UnixctlError(str(exc)) from None
    return ""


def _reopen(vlog: Vlog) -> str:
    try:
        vlog.reopen_log_file()
    except VlogError as exc:
        # The file in use (if any) stays in use, so the failure is logged there too.
        log.warning("%s", exc)
        raise UnixctlError(str(exc)) from None
    return ""


def _close(vlog: Vlog) -> str:
    vlog.close_log_file()
    return ""
