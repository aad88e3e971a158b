"""pvs-vsctl against our server, side by side with ovs-vsctl against ovsdb-server.

The same command sequences run through Open vSwitch's own ovs-vsctl (with
``--no-wait``) against its own ovsdb-server, and through pvs-vsctl against
ours. Exit codes, outputs and error messages must be the same once the program
name is swapped and UUIDs (which the two servers draw differently) are
replaced; ``show``, ``list`` and ``find`` print rows in UUID order, so their
lines are compared as a multiset.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from tests.interop.ovs_sandbox import SCHEMA, missing_programs

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# ovs-vsctl also logs some errors through vlog, with a timestamp; pvs-vsctl
# does not log. Those lines are left out of the comparison.
VLOG = re.compile(r"^\d{4}-\d\d-\d\dT[\d:]+Z\|")

# Commands whose output lists rows in UUID order.
UNORDERED = {"show", "list", "find"}

SEQUENCE: list[list[str]] = [
    ["init"],
    ["list-br"],
    ["add-br", "br-int"],
    ["add-br", "br-eth1"],
    ["add-br", "br-int"],
    ["--may-exist", "add-br", "br-int"],
    ["br-exists", "br-int"],
    ["br-exists", "br9"],
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
        "br-eth1",
        "phy-br-eth1",
        "--",
        "set",
        "interface",
        "phy-br-eth1",
        "type=patch",
        "options:peer=int-br-eth1",
    ],
    ["add-port", "br9", "p1"],
    ["add-port", "br-int", "tap0"],
    ["add-port", "br-eth1", "br-int"],
    ["--may-exist", "add-port", "br-int", "tap0"],
    ["--may-exist", "add-port", "br-eth1", "tap0"],
    ["add-port", "br-int", "vm1", "tag=5", "other_config:x=y"],
    ["list-ports", "br-int"],
    ["list-ifaces", "br-int"],
    ["list-ports", "br9"],
    ["port-to-br", "tap0"],
    ["port-to-br", "br-int"],
    ["iface-to-br", "phy-br-eth1"],
    ["iface-to-br", "nosuch"],
    ["set", "Port", "tap0", "tag=1", "trunks=1,2,3"],
    ["set", "Bridge", "br-int", "fail_mode=secure", "other_config:datapath-id=0000000000000001"],
    ["set", "Bridge", "br-int", "nosuch=1"],
    ["set", "Bridge", "br-int", "name=x"],
    ["set", "Port", "tap0", "tag=5000"],
    ["set", "Port", "tap0", "vlan_mode=foo"],
    ["set", "Port", "tap0", "trunks=5-3"],
    ["set", "Port", "tap0", "tag=[1,2]"],
    ["set", "Port", "tap0", "trunks=[1,1]"],
    ["set", "Bridge", "br-int", "stp_enable=maybe"],
    ["set", "Interface", "tap0", "options=a"],
    ["set", "Interface", "tap0", "options={a=b,c}"],
    ["set", "Interface", "tap0", 'options:a="x'],
    ["set", "Interface", "tap0", "external_ids={a=}"],
    ["set", "Bridge", "br-int", "flood_vlans=[1,2"],
    ["set", "Bridge", "br-int", "flood_vlans=[1,2]x"],
    ["set", "Bridge", "br-int", "other_config:x="],
    ["set", "Bridge", "br-int", 'external_ids={"a b"="c\\"d"}'],
    ["set", "Bridge", "nosuch", "fail_mode=secure"],
    ["--if-exists", "set", "Bridge", "nosuch", "fail_mode=secure"],
    ["set", "Open_vSwitch", ".", "external_ids:system-id=host1"],
    ["get", "Port", "tap0", "tag", "trunks", "name"],
    ["get", "Bridge", "br-int", "external_ids", "other_config:datapath-id"],
    ["get", "Bridge", "br-int", "other_config:zz"],
    ["--if-exists", "get", "Bridge", "br-int", "other_config:zz"],
    ["get", "Port", "tap0", "name:x"],
    ["get", "Open_vSwitch", ".", "external_ids:system-id"],
    ["--bare", "get", "Port", "tap0", "trunks"],
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
    ["add", "Port", "tap0", "trunks", "4", "7-9", "--", "get", "Port", "tap0", "trunks"],
    ["add", "Port", "tap0", "tag", "2", "--", "list-br"],
    ["add", "Port", "tap0", "tag", "2"],
    ["add", "Bridge", "br-int", "other_config", "datapath-id=2", "zz=1"],
    ["get", "Bridge", "br-int", "other_config"],
    ["remove", "Bridge", "br-int", "other_config", "zz", "datapath-id=9"],
    ["remove", "Port", "tap0", "trunks", "1", "2"],
    ["remove", "Interface", "tap0", "type", "internal"],
    ["remove", "Port", "tap0", "tag", "x"],
    ["get", "Port", "tap0", "trunks"],
    ["clear", "Port", "tap0", "tag", "--", "get", "Port", "tap0", "tag"],
    ["clear", "Bridge", "br-int", "name"],
    ["clear", "Interface", "tap0", "type"],
    ["--columns=name,tag", "list", "Port"],
    ["--format=table", "--columns=name,tag,trunks", "list", "Port"],
    ["--bare", "--columns=name", "list", "Bridge"],
    ["--columns=name", "list", "Bridge", "--", "--columns=name", "list", "Mirror"],
    ["list", "Bridge", "nosuch"],
    ["--if-exists", "list", "Bridge", "nosuch"],
    ["list", "Fl"],
    ["list", "Nosuch"],
    ["list", "Interface", "tap0"],
    ["find", "Port", "tag=5"],
    ["find", "Interface", "type=patch"],
    ["--columns=name", "find", "Interface", "options:peer=patch-int"],
    ["--columns=name", "find", "Port", "trunks{>=}7"],
    ["find", "Port", "tag"],
    ["find", "Port", "name~x"],
    ["destroy", "Bridge", "br-int"],
    ["destroy", "Mirror", "m0"],
    ["--id=@q", "create", "QoS", "type=linux-htb", "--", "set", "Port", "tap0", "qos=@q"],
    ["--all", "destroy", "QoS"],
    ["clear", "Port", "tap0", "qos", "--", "--all", "destroy", "QoS"],
    ["set", "Port", "tap0", "qos=@nowhere"],
    ["frob"],
    ["add-br"],
    ["list-br", "br0"],
    ["list-br", "--real"],
    ["--format=xml", "list-br"],
    ["--foo", "list-br"],
    ["--if-exists", "--if-exists", "list-br"],
    ["--may-exist", "del-br", "x"],
    ["del-port", "br-int"],
    ["del-port", "nosuch"],
    ["--if-exists", "del-port", "nosuch"],
    ["del-port", "br-eth1", "tap0"],
    ["--with-iface", "del-port", "vm1"],
    ["del-port", "br-int", "tap0"],
    ["del-br", "nosuch"],
    ["--if-exists", "del-br", "nosuch"],
    ["add-br", "br-tmp", "--", "add-port", "br-tmp", "t1", "--", "del-br", "br-tmp"],
    ["add-br", "br-tmp", "--", "add-port", "br-tmp", "t1"],
    ["del-br", "br-tmp", "--", "list-br"],
    # A refused chain changes nothing.
    ["add-br", "br-new", "--", "add-port", "br-new", "p1", "--", "set", "Port", "p1", "tag=x"],
    ["list-br", "--", "list", "Interface", "p1"],
    ["show"],
    ["--columns=name", "list", "Interface"],
]


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 15
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def sockets(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(our server's socket, ovsdb-server's socket), both serving an empty database."""
    missing = missing_programs()
    if missing:
        pytest.skip(f"Open vSwitch is not installed (missing {', '.join(missing)})")
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
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    "ovsdb-server",
                    f"--remote=punix:{tmp_path / 'ovs.sock'}",
                    "--no-chdir",
                    f"--unixctl={tmp_path / 'ovsdb.ctl'}",
                    str(tmp_path / "ovs.db"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pyvswitch.ovsdb.server",
                    "--db",
                    str(tmp_path / "our.db"),
                    "--remote",
                    f"punix:{tmp_path / 'our.sock'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_for(tmp_path / "ovs.sock")
        _wait_for(tmp_path / "our.sock")
        yield tmp_path / "our.sock", tmp_path / "ovs.sock"
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                _stop(proc)


def _ovs(sock: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ovs-vsctl", "--timeout=20", f"--db=unix:{sock}", "--no-wait", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def _pvs(sock: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pyvswitch.cli.vsctl",
            "--timeout=20",
            f"--db=unix:{sock}",
            "--no-wait",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def _normalise(result: subprocess.CompletedProcess[str], args: list[str]) -> tuple[Any, ...]:
    stdout = UUID.sub("<uuid>", result.stdout)
    stderr = "".join(
        line
        for line in UUID.sub("<uuid>", result.stderr).splitlines(keepends=True)
        if not VLOG.match(line) and not line.startswith("pvs-vsctl: warning:")
    ).replace("ovs-vsctl:", "pvs-vsctl:")
    out: Any = sorted(stdout.split("\n")) if UNORDERED & set(args) else stdout
    return result.returncode, out, stderr


if TYPE_CHECKING:
    from typing import Any


def test_pvs_vsctl_matches_ovs_vsctl(sockets: tuple[Path, Path]) -> None:
    ours, theirs = sockets
    mismatches = []
    for args in SEQUENCE:
        a = _normalise(_pvs(ours, args), args)
        b = _normalise(_ovs(theirs, args), args)
        if a != b:
            mismatches.append((args, a, b))
    assert not mismatches, "\n\n".join(
        f"{args}\n  pvs-vsctl: {a}\n  ovs-vsctl: {b}" for args, a, b in mismatches
    )


def test_ovs_vsctl_reads_what_pvs_vsctl_wrote(sockets: tuple[Path, Path]) -> None:
    ours, _ = sockets
    for args in (
        ["add-br", "br-int"],
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
    ):
        assert _pvs(ours, args).returncode == 0
    assert _ovs(ours, ["list-ports", "br-int"]).stdout == "patch-tun\n"
    assert _ovs(ours, ["get", "Interface", "patch-tun", "options:peer"]).stdout == "patch-int\n"
    shown = _pvs(ours, ["show"]).stdout
    assert sorted(shown.splitlines()) == sorted(_ovs(ours, ["show"]).stdout.splitlines())
