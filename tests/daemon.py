"""Running pvs-vswitchd for a test, in a run directory of its own."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path


def wait_for_socket(
    path: Path, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20
) -> None:
    """Wait until a server (started as ``proc``) accepts connections on unix socket ``path``.

    The file exists from bind(), a moment before listen(), and a stale file
    may be left by a killed server: only a connection that succeeds counts.
    """
    deadline = time.monotonic() + timeout
    while True:
        assert proc is None or proc.poll() is None, f"the server for {path} exited"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                pass
            else:
                return
        assert time.monotonic() < deadline, f"nothing listens on {path}"
        time.sleep(0.05)


def start_daemon(
    rundir: Path,
    args: Sequence[str] = (),
    netns: str | None = None,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start the daemon on ``rundir`` (with extra ``args``, inside ``netns`` if
    given) and wait until its control socket answers; stop it with :func:`stop_daemon`."""
    inside = ["ip", "netns", "exec", netns] if netns else []
    proc = subprocess.Popen(
        [
            *inside,
            sys.executable,
            "-m",
            "pyvswitch.vswitchd.daemon",
            "--rundir",
            str(rundir),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        wait_for_socket(rundir / "pvs-vswitchd.ctl", proc)
    except BaseException:
        stop_daemon(proc)
        raise
    return proc


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    """Stop a daemon :func:`start_daemon` started, by its pid, if it still runs."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def running_daemon(
    rundir: Path, args: Sequence[str] = (), netns: str | None = None
) -> Iterator[Path]:
    """Start the daemon on ``rundir`` (with extra ``args``, inside ``netns`` if
    given); stop it by its pid afterwards."""
    proc = start_daemon(rundir, args, netns)
    try:
        yield rundir
    finally:
        stop_daemon(proc)
