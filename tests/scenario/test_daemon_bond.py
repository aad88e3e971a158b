"""pvs-vswitchd does not bond yet: a bond is refused on every member, visibly, not half-run."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

REFUSED = "pyvswitch does not support bonds yet (port bond0 has 2 interfaces)"


@pytest.fixture
def rundir(tmp_path: Path) -> Iterator[Path]:
    with running_daemon(tmp_path) as rundir:
        yield rundir


def tool(name: str, rundir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"pyvswitch.cli.{name}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={"PVS_RUNDIR": str(rundir), "PATH": "/usr/bin:/bin"},
    )


def vsctl(rundir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No --no-wait: each call returns once the daemon has applied the change.
    return tool("vsctl", rundir, "--timeout=20", *args)


def test_a_bond_is_refused_on_every_interface_until_it_is_one_port_again(rundir: Path) -> None:
    dummy = ("--", "set", "bridge", "br0", "datapath_type=dummy")
    assert vsctl(rundir, "add-br", "br0", *dummy).returncode == 0
    assert vsctl(rundir, "add-port", "br0", "p1").returncode == 0
    added = vsctl(rundir, "add-bond", "br0", "bond0", "a2", "b3")
    # As ovs-vsctl does, the tool says which new interfaces failed, and succeeds.
    assert added.returncode == 0
    assert (
        added.stderr
        == "".join(
            f"pvs-vsctl: Error detected while setting up '{iface}': {REFUSED}.  "
            "See pvs-vswitchd log for details.\n"
            for iface in ("a2", "b3")
        )
        + 'pvs-vsctl: The default log directory is "/var/log/pyvswitch".\n'
    )
    for iface in ("a2", "b3"):
        assert vsctl(rundir, "get", "Interface", iface, "ofport", "error").stdout == (
            f'-1\n"{REFUSED}"\n'
        )
    # Neither member runs; the port beside the bond does.
    show = tool("appctl", rundir, "dpif/show").stdout
    assert "    p1 1/1: (dummy)" in show
    assert "a2" not in show
    assert "b3" not in show
    assert "bond0" not in show
    # Once it has one interface, the port runs and the error is gone.
    assert vsctl(rundir, "del-bond-iface", "bond0", "b3").returncode == 0
    assert vsctl(rundir, "get", "Interface", "a2", "error").stdout == "[]\n"
    assert int(vsctl(rundir, "get", "Interface", "a2", "ofport").stdout) > 0
    assert "    bond0 2/2: (dummy)" in tool("appctl", rundir, "dpif/show").stdout
    # And a port that becomes a bond is taken down rather than left half-running.
    assert vsctl(rundir, "add-bond-iface", "bond0", "c4").returncode == 0
    assert vsctl(rundir, "get", "Interface", "c4", "ofport").stdout == "-1\n"
    assert vsctl(rundir, "get", "Interface", "a2", "ofport").stdout == "-1\n"
    assert "bond0" not in tool("appctl", rundir, "dpif/show").stdout
