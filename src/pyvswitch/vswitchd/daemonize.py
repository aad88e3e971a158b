"""Running in the background, and the pid file, as Open vSwitch's ``daemon-unix.c``.

``--pidfile``: the daemon writes its pid to a file and holds a POSIX lock on
it for as long as it runs. A second daemon given the same file finds it
locked and refuses to start (``already running as pid N, aborting``); a file
nobody holds is stale (its daemon died) and is replaced, even if the pid in
it now belongs to some other process. The file is written under a temporary
name and renamed into place, so a reader never sees it half written, and it
is removed at exit if it is still ours.

``--detach``: the process forks; the child starts a new session and runs the
daemon, and the parent waits until the child says it is ready (its sockets
listen and the database has been applied once), then exits 0. A child that
dies before that makes the parent report it and exit 1, so a script that
starts the daemon learns of a failed start from the exit status. Once ready,
the child leaves the caller's directory for ``/`` (unless ``--no-chdir``)
and stops using the terminal: its standard streams go to ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class DaemonizeError(Exception):
    """The daemon cannot start as asked; the message says why."""


class Pidfile:
    """A pid file, locked by the process that wrote it for as long as it runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._inode: int | None = None

    def check(self) -> None:
        """Raise :class:`DaemonizeError` when a running process holds the file."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DaemonizeError(f"{self.path}: cannot open pid file: {exc.strerror}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(fd, 64).decode(errors="replace").strip() or "?"
            raise DaemonizeError(f"{self.path}: already running as pid {pid}, aborting") from None
        finally:
            # Closing the descriptor drops the lock this check may have taken.
            os.close(fd)

    def create(self) -> None:
        """Write this process's pid and hold the file's lock until :meth:`remove`."""
        pid = os.getpid()
        tmp = self.path.with_name(f"{self.path.name}.tmp{pid}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{pid}\n".encode())
            self._link_into_place(tmp)
        except DaemonizeError:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            raise DaemonizeError(f"{self.path}: cannot create pid file: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._fd = fd
        self._inode = os.fstat(fd).st_ino

    def _link_into_place(self, tmp: Path) -> None:
        """Give the locked, written ``tmp`` the pid file's name, unless a live daemon has it.

        A link fails if the name exists, which closes most of the window
        between :meth:`check` and here (two daemons started at once, or a
        parent that checked before forking): the existing file is examined
        again under its lock, refused if held, and replaced (atomically) only
        if stale. This is Open vSwitch's make_pidfile() without
        --overwrite-pidfile.
        """
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            self.check()
            tmp.replace(self.path)

    def remove(self) -> None:
        """Remove the file if it is still the one this process wrote, and let it go."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


class Detacher:
    """Fork into the background, keeping the parent until the child is ready."""

    def __init__(self) -> None:
        self._notify: int | None = None

    def fork(self) -> int | None:
        """In the parent: wait for the child and return the exit status; in the child: None."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            os.setsid()
            self._notify = write_end
            return None
        os.close(write_end)
        try:
            # One byte means ready; end of file means the child died first.
            ready = os.read(read_end, 1)
        finally:
            os.close(read_end)
        if ready:
            return 0
        _, status = os.waitpid(pid, 0)
        raise DaemonizeError(f"fork child died before signaling startup ({_describe(status)})")

    def ready(self, *, chdir: bool) -> None:
        """In the child: leave the directory and the terminal, and release the parent."""
        if self._notify is None:
            return
        if chdir:
            os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        os.write(self._notify, b"\0")
        os.close(self._notify)
        self._notify = None


def _describe(status: int) -> str:
    """A wait status in Open vSwitch's words ("exit status 1", "killed (Terminated)")."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit status {code}"
    return f"killed ({signal.strsignal(-code) or -code})"


def absolute_pidfile(value: str, rundir: Path) -> Path:
    """``--pidfile``'s file: the default name, or FILE, relative to the run directory."""
    return rundir / (value or "pvs-vswitchd.pid")
