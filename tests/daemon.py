"""Running pvs-vswitchd for a test, in a run directory of its own."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path


@contextlib.contextmanager
def running_daemon(rundir: Path, args: Sequence[str] = ()) -> Iterator[Path]:
    """Start the daemon on ``rundir`` (with extra ``args``); stop it by its pid afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvswitch.vswitchd.daemon", "--rundir", str(rundir), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not (rundir / "pvs-vswitchd.ctl").exists():
            assert proc.poll() is None, "the daemon exited"
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.05)
        yield rundir
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
