"""pvs-vswitchd's operator commands and write-backs, next to Open vSwitch 3.1's.

A private Open vSwitch (its clock is stopped and warped here, so it is not the
session's shared sandbox) and a pvs-vswitchd get the same commands through
the same client, the real ``ovs-appctl``: ``vlog/set`` and its errors,
``vlog/list`` and ``vlog/list-pattern`` layouts, ``time/warp`` and
``time/stop``, ``fdb/flush``, the dpctl/dpif errors. Both build the same
bridges, receive the same frames (built with scapy) and have their clocks
moved by five seconds: the ``Interface`` columns they write back are compared.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import OvsSandbox, started_sandbox

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

DAEMON = [sys.executable, "-m", "pyvswitch.vswitchd.daemon"]
FRAME = bytes(
    Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
    / IP(src="192.0.2.1", dst="192.0.2.2")
    / ICMP()
    / (b"x" * 30)
).hex()
IFACES = ("br0", "br1", "p1", "p2", "p3", "patch0", "patch1")
#: Counters Open vSwitch's netdev-dummy adds for its own tests and per queue;
#: pyvswitch writes the standard ones only.
DUMMY_EXTRAS = re.compile(r"rx_custom_packets_\d+|[rt]x_q\d+_(packets|bytes)")


class Pair:
    """The same question to Open vSwitch and to pvs-vswitchd, through ovs-appctl."""

    def __init__(self, ovs: OvsSandbox, rundir: Path) -> None:
        self.ovs = ovs
        self.rundir = rundir

    def ovs_appctl(self, *args: str) -> tuple[int, str, str]:
        done = self.ovs.appctl(*args, check=False)
        return done.returncode, done.stdout, _first_line(done.stderr)

    def pvs_appctl(self, *args: str) -> tuple[int, str, str]:
        done = subprocess.run(
            ["ovs-appctl", "--timeout=20", "-t", str(self.rundir / "pvs-vswitchd.ctl"), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return done.returncode, done.stdout, _first_line(done.stderr)

    def both(self, *args: str) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
        return self.ovs_appctl(*args), self.pvs_appctl(*args)

    def ovs_vsctl(self, *args: str) -> str:
        return self.ovs.vsctl(*args).strip()

    def pvs_vsctl(self, *args: str) -> str:
        return subprocess.run(
            ["ovs-vsctl", "--timeout=20", f"--db=unix:{self.rundir / 'db.sock'}", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()


def _first_line(text: str) -> str:
    # The second line names the target ("ovs-appctl: TARGET: server returned an error").
    return text.split("\n", 1)[0]


TOPOLOGY = [
    *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
    *("--", "add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"),
    *("--", "add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=dummy"),
    "ofport_request=1",
    *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy"),
    "ofport_request=2",
    *("--", "add-port", "br1", "p3", "--", "set", "Interface", "p3", "type=dummy"),
    "ofport_request=3",
    *("--", "add-port", "br0", "patch0", "--", "set", "Interface", "patch0", "type=patch"),
    *("options:peer=patch1", "ofport_request=10"),
    *("--", "add-port", "br1", "patch1", "--", "set", "Interface", "patch1", "type=patch"),
    *("options:peer=patch0", "ofport_request=11"),
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with started_sandbox() as ovs, running_daemon(tmp_path_factory.mktemp("pvs")) as rundir:
        both = Pair(ovs, rundir)
        both.ovs_vsctl(*TOPOLOGY)
        both.pvs_vsctl(*TOPOLOGY)
        yield both


# -- vlog ----------------------------------------------------------------------------


def _module_lines(listing: str, modules: tuple[str, ...]) -> list[str]:
    return [line for line in listing.splitlines() if line.split(" ", 1)[0] in modules]


SHARED_MODULES = ("unixctl", "vlog", "vswitchd")


@pytest.mark.parametrize(
    "specs",
    [
        [["ANY:ANY:info"]],
        [["ANY:ANY:info"], ["vswitchd:file:dbg"], ["console:warn"], ["unixctl:syslog:off"]],
        [["ANY:ANY:info"], ["vlog", "CONSOLE:EMER"], ["FILE"]],
        [["ANY:ANY:info"], []],
        [["ANY:ANY:info"], ["dbg ANY vswitchd"], ["err,syslog"]],
    ],
)
def test_vlog_set_and_list(pair: Pair, specs: list[list[str]]) -> None:
    for spec in specs:
        ovs, pvs = pair.both("vlog/set", *spec)
        assert ovs == pvs == (0, "", "")
    ovs_list = pair.ovs_appctl("vlog/list")[1]
    pvs_list = pair.pvs_appctl("vlog/list")[1]
    assert ovs_list.splitlines()[:2] == pvs_list.splitlines()[:2]
    assert _module_lines(ovs_list, SHARED_MODULES) == _module_lines(pvs_list, SHARED_MODULES)
    pair.both("vlog/set", "ANY:ANY:info")


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["vswitchd:bogus"],
        ["console:file:dbg"],
        ["dbg:info"],
        ["vswitchd:vlog"],
        ["debug"],
        ["PATTERN"],
        ["PATTERN:foo:%m"],
        ["FACILITY:zz"],
        ["FACILITY"],
        ["console:info", "bogus"],
    ],
)
def test_vlog_set_errors(pair: Pair, args: list[str]) -> None:
    ovs, pvs = pair.both("vlog/set", *args)
    assert ovs == pvs
    assert ovs[0] == 2


def test_vlog_patterns(pair: Pair) -> None:
    ovs, pvs = pair.both("vlog/list-pattern")
    # Open vSwitch marks its syslog lines "ovs|", pyvswitch "pvs|".
    assert ovs[1].replace("ovs|", "pvs|") == pvs[1]
    try:
        ovs, pvs = pair.both("vlog/set", "PATTERN:console:%c|%p|%m", "FACILITY:local3")
        assert ovs == pvs == (0, "", "")
        ovs, pvs = pair.both("vlog/list-pattern")
        assert ovs[1].replace("ovs|", "pvs|") == pvs[1]
    finally:
        pair.both("vlog/set", "PATTERN:console:%D{%Y-%m-%dT%H:%M:%SZ}|%05N|%c%T|%p|%m")


def test_log_file_first_line(pair: Pair, tmp_path: Path) -> None:
    """The line each writes when it opens its log file, time and path aside."""
    log = tmp_path / "pvs.log"
    with running_daemon(tmp_path, [f"--log-file={log}"]):
        pass
    ovs_line = (pair.ovs.dir / "ovs-vswitchd.log").read_text().splitlines()[0]
    pvs_line = log.read_text().splitlines()[0]
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\|")
    assert stamp.match(ovs_line)
    assert stamp.match(pvs_line)
    assert stamp.sub("", ovs_line).replace(str(pair.ovs.dir / "ovs-vswitchd.log"), "F") == (
        stamp.sub("", pvs_line).replace(str(log), "F")
    )


def test_a_pattern_of_ones_own(pair: Pair, tmp_path: Path) -> None:
    """Widths, justification and unknown conversions, as vlog formats them."""
    pattern = "PATTERN:file:[%-12c][%8p][%m][%5P]%x%Q|%-6N|%-4p|%05r"
    default = "PATTERN:file:%D{%Y-%m-%dT%H:%M:%S.###Z}|%05N|%c%T|%p|%m"
    log = tmp_path / "pvs.log"
    with running_daemon(tmp_path, [f"--log-file={log}"]):
        for appctl in (pair.ovs_appctl, Pair(pair.ovs, tmp_path).pvs_appctl):
            try:
                for command in (["vlog/set", pattern], ["vlog/close"], ["vlog/reopen"]):
                    assert appctl(*command)[0] == 0
            finally:
                appctl("vlog/set", default)
    lines = []
    for path in (pair.ovs.dir / "ovs-vswitchd.log", log):
        line = path.read_text().splitlines()[-1].replace(str(path), "FILE")
        # The pid, the message number and the milliseconds since start differ.
        line = re.sub(r"\[ *\d+\]", "[PID]", line)
        lines.append(re.sub(r"\|\d+ *\|INFO\|\d{5}$", "|N|INFO|MS", line))
    assert lines[0] == lines[1]
    assert lines[0].startswith("[vlog        ][    INFO][opened log file FILE][PID]xQ")


def test_a_pidfile_in_use(pair: Pair, tmp_path: Path) -> None:
    pidfile = pair.ovs.dir / "ovs-vswitchd.pid"
    pid = pidfile.read_text().strip()
    ovs = pair.ovs.run(
        "ovs-vswitchd",
        "--enable-dummy",
        "--disable-system",
        f"--pidfile={pidfile}",
        f"--unixctl={tmp_path / 'unused.ctl'}",
        "unix:/nonexistent",
        check=False,
    )
    pvs = subprocess.run(
        [*DAEMON, "--rundir", str(tmp_path), f"--pidfile={pidfile}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert ovs.returncode == pvs.returncode == 1
    assert ovs.stderr == f"ovs-vswitchd: {pidfile}: already running as pid {pid}, aborting\n"
    assert pvs.stderr == ovs.stderr.replace("ovs-vswitchd", "pvs-vswitchd", 1)


# -- time, fdb, dpctl ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["time/warp", "1000"],
        ["time/warp", "3000", "1000"],
        ["time/warp", "1000", "3000"],
        ["time/warp", "0", "1000"],
        ["time/warp", "1.5"],
        ["time/warp", "10abc"],
        ["time/warp", " 7"],
        ["time/warp", "abc"],
        ["time/warp", "0x10"],
        ["time/warp", "-5"],
        ["time/warp", "0"],
        ["time/warp", "1000", "0"],
        ["time/warp", "-1000", "10"],
        ["time/warp", "5", "5", "5"],
        ["time/warp"],
        ["time/stop", "x"],
        ["time/stop"],
        ["fdb/flush"],
        ["fdb/flush", "br0"],
        ["fdb/flush", "nobr"],
        ["fdb/flush", "br0", "br1"],
        ["dpif/dump-flows", "nobr"],
        ["dpif/dump-flows"],
    ],
)
def test_same_replies(pair: Pair, args: list[str]) -> None:
    ovs, pvs = pair.both(*args)
    assert ovs == pvs


@pytest.mark.parametrize(
    "args", [["dpctl/dump-flows", "dummy@nope"], ["dpctl/dump-flows", "nope"]]
)
def test_same_dpctl_errors(pair: Pair, args: list[str]) -> None:
    ovs, pvs = pair.both(*args)
    assert ovs[0] == pvs[0] == 2
    assert ovs[2].replace("ovs-vswitchd", "pvs-vswitchd") == pvs[2]


def _status(read: Callable[..., str], iface: str) -> dict[str, str]:
    columns = "statistics,admin_state,link_state,mtu,ifindex"
    text = read("--columns=" + columns, "list", "Interface", iface)
    status = dict(line.split(" : ", 1) for line in text.splitlines())
    status = {k.strip(): v for k, v in status.items()}
    stats = status["statistics"].strip("{}").split(", ")
    status["statistics"] = ", ".join(s for s in stats if not DUMMY_EXTRAS.match(s))
    return status


def test_interface_write_back(pair: Pair) -> None:
    for who in (pair.ovs_appctl, pair.pvs_appctl):
        assert who("time/stop")[0] == 0
        for _ in range(2):
            assert who("netdev-dummy/receive", "p1", FRAME)[0] == 0
        assert who("time/warp", "5000")[1] == "warped\n"
    # Open vSwitch commits its statistics after the warp's reply: wait for them.
    deadline = time.monotonic() + 20
    while "rx_packets=2" not in _status(pair.ovs_vsctl, "p1")["statistics"]:
        assert time.monotonic() < deadline, "ovs-vswitchd wrote no statistics"
        time.sleep(0.1)
    for iface in IFACES:
        assert _status(pair.ovs_vsctl, iface) == _status(pair.pvs_vsctl, iface), iface
    # ovs-vsctl waits for the daemon to apply a change (cur_cfg): the
    # write-backs neither hold it up nor answer it early.
    cfg = pair.pvs_vsctl("get", "Open_vSwitch", ".", "next_cfg")
    pair.pvs_vsctl("add-port", "br0", "p4", "--", "set", "Interface", "p4", "type=dummy")
    assert pair.pvs_vsctl("get", "Open_vSwitch", ".", "cur_cfg") == str(int(cfg) + 1)
    assert pair.pvs_vsctl("get", "Interface", "p4", "link_state") == "up"
