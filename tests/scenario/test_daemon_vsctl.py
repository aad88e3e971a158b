"""pvs-vsctl drives pvs-vswitchd, waiting for it as ovs-vsctl waits for ovs-vswitchd."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


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


def test_two_bridges_and_a_patch_pair_through_our_own_tools(rundir: Path) -> None:
    vsctl = lambda *a: tool("vsctl", rundir, "--timeout=20", *a)  # noqa: E731
    for command in (
        ["add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"],
        ["add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"],
        ["add-port", "br0", "p1", "--", "set", "Interface", "p1", "ofport_request=1"],
        ["add-port", "br1", "p2", "--", "set", "Interface", "p2", "ofport_request=2"],
        # The reference document's example, as written.
        [
            "add-port",
            "br0",
            "patch0",
            "--",
            "set",
            "interface",
            "patch0",
            "type=patch",
            "options:peer=patch1",
        ],
        [
            "add-port",
            "br1",
            "patch1",
            "--",
            "set",
            "interface",
            "patch1",
            "type=patch",
            "options:peer=patch0",
        ],
    ):
        result = vsctl(*command)
        assert result.returncode == 0, (command, result.stderr)
    # No --no-wait: the daemon has applied every change when pvs-vsctl returns.
    assert vsctl("get", "Interface", "p1", "ofport").stdout.strip() == "1"
    assert (
        vsctl("get", "Open_vSwitch", ".", "cur_cfg").stdout.strip()
        == vsctl("get", "Open_vSwitch", ".", "next_cfg").stdout.strip()
    )
    show = tool("appctl", rundir, "dpif/show").stdout
    assert "    patch0 2/none: (patch: peer=patch1)" in show
    assert "    p2 2/2: (dummy)" in show
    ping = (
        "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
        "ipv4(src=192.0.2.1,dst=192.0.2.2,proto=1,tos=0,ttl=64,frag=no),"
        "icmp(type=8,code=0)"
    )
    for _ in range(4):
        assert tool("appctl", rundir, "netdev-dummy/receive", "p1", ping).returncode == 0
    assert "hit:3 missed:1" in tool("appctl", rundir, "dpif/show").stdout


def test_pvs_vsctl_names_the_log_directory_the_daemon_uses() -> None:
    # pvs-vsctl keeps its own copy so as not to import the daemon at start-up.
    from pyvswitch.cli import vsctl
    from pyvswitch.vswitchd import daemon

    assert vsctl.LOGDIR_DEFAULT == daemon.DEFAULT_LOGDIR
