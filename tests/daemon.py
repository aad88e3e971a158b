"""Running pvs-vswitchd for a test, in a run directory of its own."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

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


@contextlib.contextmanager
def running_daemon(
    rundir: Path, args: Sequence[str] = (), netns: str | None = None
) -> Iterator[Path]:
    """Start the daemon on ``rundir`` (with extra ``args``, inside ``netns`` if
    given); stop it by its pid afterwards."""
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
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_socket(rundir / "pvs-vswitchd.ctl", proc)
        yield rundir
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
