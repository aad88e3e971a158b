"""Open vSwitch 3.1 and pvs-vswitchd given the same commands, for differential tests.

A private Open vSwitch (ovs_sandbox.py) and a pvs-vswitchd on dummy
datapaths, each started with tests/ofproto-macros.at's br0 (the tunnel
replays' ``START``): :meth:`Both.same` runs one command through each side's
own tool and asserts that exit status, error and output agree.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import OvsSandbox, started_sandbox
from tests.scenario.test_tunnel_push_pop import START

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

#: (exit status, standard output, standard error), as the test compares them.
Reply = tuple[int, str, str]


def first_error_line(done: subprocess.CompletedProcess[str]) -> Reply:
    """The reply with only the first line of standard error (the rest names the program)."""
    return done.returncode, done.stdout, (done.stderr.splitlines() or [""])[0]


class Both:
    """One Open vSwitch and one pvs-vswitchd, given the same commands.

    ``normalise`` turns each program's result into what is compared.
    """

    def __init__(
        self,
        ovs: OvsSandbox,
        rundir: Path,
        normalise: Callable[[subprocess.CompletedProcess[str]], Reply] = first_error_line,
    ) -> None:
        self.sandbox = ovs
        self.rundir = rundir
        self.normalise = normalise

    def ovs(self, tool: str, *args: str) -> Reply:
        extra = [f"--db=unix:{self.sandbox.db_sock}", "--timeout=20"] if tool == "vsctl" else []
        return self.normalise(self.sandbox.run(f"ovs-{tool}", *extra, *args, check=False))

    def pvs(self, tool: str, *args: str) -> Reply:
        extra = ["--timeout=20"] if tool == "vsctl" else []
        done = subprocess.run(
            [sys.executable, "-m", f"pyvswitch.cli.{tool}", *extra, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            env={"PVS_RUNDIR": str(self.rundir), "PATH": "/usr/bin:/bin"},
        )
        return self.normalise(done)

    def do(self, tool: str, *args: str) -> None:
        """Run a command on both; both must succeed."""
        for name, reply in (("ovs", self.ovs(tool, *args)), ("pvs", self.pvs(tool, *args))):
            assert reply[0] == 0, (name, tool, args, reply)

    def same(self, tool: str, *args: str, view: Callable[[str], object] = str) -> Reply:
        """Run a command on both: exit status, error and ``view`` of the output agree."""
        ovs, pvs = self.ovs(tool, *args), self.pvs(tool, *args)
        assert (pvs[0], pvs[2]) == (ovs[0], ovs[2]), (tool, args)
        assert view(pvs[1]) == view(ovs[1]), (tool, args)
        return ovs


@contextlib.contextmanager
def both_started(
    tmp: Path,
    normalise: Callable[[subprocess.CompletedProcess[str]], Reply] = first_error_line,
) -> Iterator[Both]:
    """A fresh Open vSwitch and pvs-vswitchd, each with tests/ofproto-macros.at's br0."""
    with started_sandbox() as sandbox, running_daemon(tmp, ["--disable-system-route"]):
        both = Both(sandbox, tmp, normalise)
        both.do("vsctl", *START)
        yield both
