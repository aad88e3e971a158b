"""Running pvs-tcpdump against a test's daemon, and reading what it wrote with other tools."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from pyvswitch.packet.pcapng import read_all
from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import build_topology, inject

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pyvswitch.packet.pcapng import PcapngPacket

TCPDUMP = [sys.executable, "-m", "pyvswitch.cli.tcpdump"]


@contextlib.contextmanager
def patched_switch(rundir: Path, request: bytes, reply: bytes) -> Iterator[Path]:
    """A daemon with ofctl_helpers' two bridges joined by patch ports, A and B learned.

    ``request`` (A on p1 to B) and ``reply`` (B on p3 to A) teach both
    bridges both MACs, so that what follows crosses the patch as unicast.
    """
    with running_daemon(rundir) as run:
        build_topology(run)
        inject(run, "p1", request)
        inject(run, "p3", reply)
        yield run


class Tcpdump:
    """One pvs-tcpdump process; its output and errors go to files beside its capture."""

    def __init__(
        self, rundir: Path, workdir: Path, *args: str, path_env: str = "/usr/bin:/bin"
    ) -> None:
        self.rundir = rundir
        n = len(list(workdir.glob("tcpdump-*.err")))
        self.out_path = workdir / f"tcpdump-{n}.out"
        self.err_path = workdir / f"tcpdump-{n}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [*TCPDUMP, *args],
                stdout=out,
                stderr=err,
                env={**os.environ, "PVS_RUNDIR": str(rundir), "PATH": path_env},
            )

    def wait_attached(self, timeout: float = 20) -> None:
        """Wait until the daemon lists this capture (the capture is then attached)."""
        deadline = time.monotonic() + timeout
        while f"pid {self.proc.pid}," not in show(self.rundir):
            assert self.proc.poll() is None, f"pvs-tcpdump exited: {self.stderr}"
            assert time.monotonic() < deadline, "the capture was never listed"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        """Send ``sig`` and wait (bounded) for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"pvs-tcpdump did not stop in {timeout} s: {self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()


def show(rundir: Path) -> str:
    """``pvs-appctl capture/show``."""
    done = subprocess.run(
        [sys.executable, "-m", "pyvswitch.cli.appctl", "capture/show"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ, "PVS_RUNDIR": str(rundir)},
    )
    return done.stdout


def packets(path: Path) -> list[PcapngPacket]:
    """The frames of a pcapng file, with their directions (our reader)."""
    return read_all(path.read_bytes()).packets


def _require(program: str, package: str) -> None:
    """Make sure ``program`` is on the PATH: installed from Debian as root, else skip.

    ``./run test`` installs it beforehand; this covers running pytest alone.
    """
    if shutil.which(program) is not None:
        return
    if os.geteuid() == 0 and shutil.which("apt-get") is not None:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
            capture_output=True,
            check=False,
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed and could not be (needs root and apt-get)")


def tcpdump_lines(path: Path, *expression: str) -> list[str]:
    """What ``tcpdump -nn -r FILE [EXPRESSION]`` prints, one line per packet."""
    _require("tcpdump", "tcpdump")
    done = subprocess.run(
        ["tcpdump", "-nn", "-r", str(path), *expression],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def tshark_fields(path: Path, *fields: str, display_filter: str = "") -> list[list[str]]:
    """``tshark -r FILE -T fields -e ...``: one list of field values per packet."""
    _require("tshark", "tshark")
    argv = ["tshark", "-r", str(path), "-T", "fields"]
    for name in fields:
        argv += ["-e", name]
    if display_filter:
        argv += ["-Y", display_filter]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return [line.split("\t") for line in done.stdout.splitlines()]


#: tshark's epb_flags direction field: inbound and outbound, as it prints them.
INBOUND = "0x00000001"
OUTBOUND = "0x00000002"
