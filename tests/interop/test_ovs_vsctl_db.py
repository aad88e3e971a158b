"""The real ovs-vsctl against our database server, side by side with ovsdb-server.

The same ovs-vsctl commands run against Open vSwitch's own ovsdb-server (with
OVS's schema) and against ours; what ``ovs-vsctl show`` and ``list`` print must
agree. The daemon's configuration handshake is not built yet, so commands use
``--no-wait`` here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.daemon import wait_for_socket
from tests.interop.ovs_sandbox import SCHEMA, require_ovs

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

COMMANDS = [
    ["init"],
    ["add-br", "br-int"],
    ["add-br", "br-eth1"],
    ["add-port", "br-int", "tap0", "--", "set", "Interface", "tap0", "type=internal"],
    # The reference document's example, as written.
    [
        "add-port",
        "br-int",
        "patch-tun",
        "--",
        "set",
        "interface",
        "patch-tun",
        "type=patch",
        "options:peer=patch-int",
    ],
    [
        "add-port",
        "br-int",
        "int-br-eth1",
        "--",
        "set",
        "interface",
        "int-br-eth1",
        "type=patch",
        "options:peer=phy-br-eth1",
    ],
    [
        "add-port",
        "br-eth1",
        "phy-br-eth1",
        "--",
        "set",
        "interface",
        "phy-br-eth1",
        "type=patch",
        "options:peer=int-br-eth1",
    ],
    ["set", "Port", "tap0", "tag=1"],
    ["set", "Bridge", "br-int", "fail_mode=secure", "other_config:datapath-id=0000000000000001"],
    [
        "--",
        "--id=@p",
        "get",
        "Port",
        "tap0",
        "--",
        "--id=@m",
        "create",
        "Mirror",
        "name=m0",
        "select-src-port=@p",
        "--",
        "add",
        "Bridge",
        "br-int",
        "mirrors",
        "@m",
    ],
    ["add-port", "br-eth1", "eth1"],
    ["del-port", "br-eth1", "eth1"],
    ["add-br", "br-tmp"],
    ["del-br", "br-tmp"],
]


def _vsctl(sock: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ovs-vsctl", "--timeout=20", f"--db=unix:{sock}", "--no-wait", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=30,
    )


def _wait_for(path: Path) -> None:
    wait_for_socket(path, timeout=15)


class Servers:
    """Both servers; ``ours`` is restartable (a test may kill it)."""

    def __init__(self, tmp_path: Path) -> None:
        self.our_sock = tmp_path / "our.sock"
        self.ovs_sock = tmp_path / "ovs.sock"
        self.our_db = tmp_path / "our.db"
        self.ours: subprocess.Popen[bytes] | None = None

    def start_ours(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.our_sock.unlink()
        self.ours = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pyvswitch.ovsdb.server",
                "--db",
                str(self.our_db),
                "--remote",
                f"punix:{self.our_sock}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(self.our_sock)

    def stop_ours(self, sig: int = signal.SIGTERM) -> None:
        if self.ours is not None:
            self.ours.send_signal(sig)
            try:
                self.ours.wait(10)
            except subprocess.TimeoutExpired:
                self.ours.kill()
                self.ours.wait(10)
            self.ours = None


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Our server and Open vSwitch's ovsdb-server, both running."""
    require_ovs()
    env = {
        **os.environ,
        "OVS_RUNDIR": str(tmp_path),
        "OVS_DBDIR": str(tmp_path),
        "OVS_LOGDIR": str(tmp_path),
    }
    subprocess.run(
        ["ovsdb-tool", "create", str(tmp_path / "ovs.db"), str(SCHEMA)],
        check=True,
        env=env,
        timeout=30,
    )
    both = Servers(tmp_path)
    ovs = subprocess.Popen(
        [
            "ovsdb-server",
            f"--remote=punix:{both.ovs_sock}",
            "--no-chdir",
            f"--unixctl={tmp_path / 'ovsdb.ctl'}",
            str(tmp_path / "ovs.db"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(both.ovs_sock)
        both.start_ours()
        yield both
    finally:
        both.stop_ours()
        ovs.terminate()
        try:
            ovs.wait(10)
        except subprocess.TimeoutExpired:
            ovs.kill()


def _normalise(text: str) -> str:
    """Replace UUIDs, which differ between servers."""
    import re

    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)


def test_ovs_vsctl_sees_the_same_database(servers: Servers) -> None:
    ours, theirs = servers.our_sock, servers.ovs_sock
    for command in COMMANDS:
        a = _vsctl(ours, *command, check=False)
        b = _vsctl(theirs, *command, check=False)
        assert (a.returncode, a.stderr) == (b.returncode, b.stderr), command
    # Bridges and ports come in the order of their UUIDs, which the two
    # servers draw differently: compare the lines, not their order.
    ours_show = sorted(_normalise(_vsctl(ours, "show").stdout).splitlines())
    theirs_show = sorted(_normalise(_vsctl(theirs, "show").stdout).splitlines())
    assert ours_show == theirs_show
    for table in ("Bridge", "Port", "Interface", "Mirror"):
        a = _vsctl(ours, "--columns=name", "list", table).stdout
        b = _vsctl(theirs, "--columns=name", "list", table).stdout
        assert sorted(a.split("\n")) == sorted(b.split("\n")), table
    assert _vsctl(ours, "get", "Port", "tap0", "tag").stdout.strip() == "1"
    # del-br dropped the bridge's ports and interfaces too (garbage collection).
    assert "br-tmp" not in _vsctl(ours, "--columns=name", "list", "Interface").stdout


def test_errors_match_and_change_nothing(servers: Servers) -> None:
    ours, theirs = servers.our_sock, servers.ovs_sock
    for sock in (ours, theirs):
        _vsctl(sock, "add-br", "br0")
    for bad in (
        ["add-br", "br0"],
        ["del-br", "nosuch"],
        ["set", "Bridge", "br0", "nosuch=1"],
        ["add-port", "br0", "p1", "--", "set", "Interface", "p1", "ofport_request=x"],
    ):
        a = _vsctl(ours, *bad, check=False)
        b = _vsctl(theirs, *bad, check=False)
        assert (a.returncode, a.stderr) == (b.returncode, b.stderr), bad
    assert _vsctl(ours, "list-ports", "br0").stdout == ""


def test_a_kill_minus_nine_loses_no_acknowledged_transaction(servers: Servers) -> None:
    for i in range(20):
        _vsctl(servers.our_sock, "add-br", f"br{i}")
    # Kill our server without warning and start it again on the same file.
    servers.stop_ours(signal.SIGKILL)
    servers.start_ours()
    names = _vsctl(servers.our_sock, "list-br").stdout.split()
    assert names == sorted(f"br{i}" for i in range(20))
