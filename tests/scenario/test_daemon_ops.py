"""Running pvs-vswitchd as an operator does: detached with a pid file, logging to a
file with levels changed at run time, status and statistics in the database,
and a clock that tests stop and move forward.

The texts (vlog's line format and ``vlog/list`` layout, ``time/warp``'s and
``fdb/flush``'s replies, the statistics a dummy port has) are Open vSwitch's;
tests/interop/test_ovs_daemon_ops.py compares them with Open vSwitch 3.1.
Packets are built with scapy, so byte counts do not come from our own code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import PING, build_topology, inject, ok, tool

if TYPE_CHECKING:
    from collections.abc import Iterator

DAEMON = [sys.executable, "-m", "pyvswitch.vswitchd.daemon"]
#: A vlog file line: UTC time with milliseconds, sequence number, module, level.
FILE_LINE = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z\|(\d{5})\|([a-z_]+)\|(EMER|ERR|WARN|INFO|DBG)\|"
)
#: A vlog console line: the same, without milliseconds.
CONSOLE_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\|\d{5}\|[a-z_]+\|(ERR|WARN|INFO|DBG)\|"
)


def _env(rundir: Path) -> dict[str, str]:
    return {"PVS_RUNDIR": str(rundir), "PVS_LOGDIR": str(rundir), "PATH": "/usr/bin:/bin"}


def _gone(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] == "Z"


def _stop(pid: int) -> None:
    """Stop a daemon we started, by its pid, and wait (bounded) until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def _start(rundir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DAEMON, "--rundir", str(rundir), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=_env(rundir),
        cwd=cwd,
    )


@contextlib.contextmanager
def detached(rundir: Path, *args: str) -> Iterator[subprocess.CompletedProcess[str]]:
    """``pvs-vswitchd --detach --pidfile``; the daemon is stopped by its pid afterwards."""
    pidfile = rundir / "pvs-vswitchd.pid"
    result = _start(rundir, "--detach", "--pidfile", *args)
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    try:
        yield result
    finally:
        if pid is not None:
            _stop(pid)


def appctl(rundir: Path, *args: str) -> str:
    return ok("appctl", rundir, *args)


def vsctl(rundir: Path, *args: str) -> str:
    return ok("vsctl", rundir, "--timeout=20", *args).strip()


# -- --detach and --pidfile ----------------------------------------------------------


def test_detach_returns_once_the_daemon_answers(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir()  # PVS_LOGDIR, where --log-file writes
    with detached(rundir, "--log-file") as result:
        assert result.returncode == 0, result.stderr
        # Nothing to wait for: both sockets answer when the starting process returns.
        assert appctl(rundir, "version").startswith("pvs-vswitchd (pyvswitch)")
        assert vsctl(rundir, "get", "Open_vSwitch", ".", "cur_cfg") == "0"
        pid = int((rundir / "pvs-vswitchd.pid").read_text())
        assert not _gone(pid)
        # Detached: a new session, the root directory, no terminal.
        assert os.getsid(pid) == pid
        assert Path(f"/proc/{pid}/cwd").readlink() == Path("/")
        assert Path(f"/proc/{pid}/fd/2").readlink() == Path("/dev/null")
        appctl(rundir, "exit")
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid)
        assert not (rundir / "pvs-vswitchd.pid").exists()


def test_a_missing_database_directory_is_made(tmp_path: Path) -> None:
    """As the run directory: PVS_DBDIR (here --dbdir) need not exist yet."""
    dbdir = tmp_path / "fresh" / "db"
    with running_daemon(tmp_path / "run", ["--dbdir", str(dbdir)]) as rundir:
        vsctl(rundir, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy")
    assert (dbdir / "conf.db").stat().st_size > 0
    assert dbdir.stat().st_mode & 0o777 == 0o700


def test_no_chdir_keeps_the_directory(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    result = subprocess.run(
        [*DAEMON, "--rundir", "run", "--detach", "--pidfile", "--no-chdir"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=_env(rundir),
        cwd=tmp_path,
    )
    pidfile = rundir / "pvs-vswitchd.pid"
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    try:
        assert result.returncode == 0, result.stderr
        assert pid is not None
        assert Path(f"/proc/{pid}/cwd").readlink() == tmp_path
    finally:
        if pid is not None:
            _stop(pid)


def test_a_pidfile_held_by_a_running_daemon_refuses_a_second(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    with detached(rundir) as first:
        assert first.returncode == 0, first.stderr
        pid = int((rundir / "pvs-vswitchd.pid").read_text())
        second = _start(tmp_path / "other", "--pidfile", str(rundir / "pvs-vswitchd.pid"))
        assert second.returncode == 1
        assert second.stderr == (
            f"pvs-vswitchd: {rundir / 'pvs-vswitchd.pid'}: already running as pid {pid}, "
            "aborting\n"
        )
        # The first one is untouched.
        assert int((rundir / "pvs-vswitchd.pid").read_text()) == pid
        assert appctl(rundir, "version")


def test_a_stale_pidfile_is_replaced(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait(10)
    (rundir / "pvs-vswitchd.pid").write_text(f"{dead.pid}\n")
    with detached(rundir) as result:
        assert result.returncode == 0, result.stderr
        pid = int((rundir / "pvs-vswitchd.pid").read_text())
        assert pid != dead.pid
        assert not _gone(pid)


def test_a_failed_start_is_reported_by_the_starting_process(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir()
    (rundir / "conf.db").write_text("not a database\n")
    with detached(rundir) as result:
        assert result.returncode == 1
        lines = result.stderr.splitlines()
        assert lines[-1] == "pvs-vswitchd: could not detach from foreground session"
        assert "fork child died before signaling startup (exit status 1)" in lines[-2]
        assert any(str(rundir / "conf.db") in line and "|ERR|" in line for line in lines)
        assert not (rundir / "pvs-vswitchd.pid").exists()
        assert not (rundir / "pvs-vswitchd.ctl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-vbogus"], 'processing "bogus": no destination, level, or module "bogus"'),
        (["--verbose=console:file"], 'processing "console:file": cannot specify multiple'),
        (["-vdbg:info"], 'processing "dbg:info": cannot specify multiple levels'),
        (["--log-file=/nonexistent/x.log"], "failed to open /nonexistent/x.log for logging"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    result = _start(tmp_path, *args)
    assert result.returncode == 1
    assert result.stderr.startswith(f"pvs-vswitchd: {message}")
    assert not (tmp_path / "pvs-vswitchd.ctl").exists()


def test_the_run_directory_and_sockets_are_private(tmp_path: Path) -> None:
    rundir = tmp_path / "new" / "run"
    with running_daemon(rundir):
        assert stat.S_IMODE(rundir.stat().st_mode) == 0o700
        for name in ("db.sock", "pvs-vswitchd.ctl"):
            mode = (rundir / name).stat().st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600, name
    # As Open vSwitch's daemons, a daemon that exits removes its sockets.
    assert not (rundir / "db.sock").exists()
    assert not (rundir / "pvs-vswitchd.ctl").exists()


# -- logging ----------------------------------------------------------------------------


def _file_lines(path: Path) -> list[re.Match[str]]:
    lines = path.read_text().splitlines()
    matches = [FILE_LINE.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m is not None]


def test_the_log_file_has_open_vswitchs_line_format(tmp_path: Path) -> None:
    log = tmp_path / "switch.log"
    with running_daemon(tmp_path, [f"--log-file={log}"]):
        build_topology(tmp_path)
    lines = log.read_text().splitlines()
    assert lines[0].endswith(f"|00001|vlog|INFO|opened log file {log}")
    assert any(
        line.endswith("|vswitchd|INFO|bridge br0: added interface p1 on port 1") for line in lines
    )
    matches = _file_lines(log)
    # Consecutive sequence numbers, and times in UTC (within a minute of now).
    assert [int(m.group(2)) for m in matches] == list(range(1, len(matches) + 1))
    first = dt.datetime.fromisoformat(matches[0].group(1)).replace(tzinfo=dt.UTC)
    assert abs(dt.datetime.now(dt.UTC) - first) < dt.timedelta(minutes=1)


def test_the_default_log_file_is_in_pvs_logdir(tmp_path: Path) -> None:
    with detached(tmp_path, "--log-file") as result:
        assert result.returncode == 0, result.stderr
        assert "|vswitchd|INFO|pvs-vswitchd (pyvswitch)" in (
            (tmp_path / "pvs-vswitchd.log").read_text()
        )


def _stats_round(rundir: Path) -> None:
    """A packet, then five seconds: the daemon writes statistics back."""
    inject(rundir, "p1", PING)
    assert appctl(rundir, "time/warp", "5000") == "warped\n"


def test_vlog_set_changes_what_reaches_the_file(tmp_path: Path) -> None:
    log = tmp_path / "switch.log"
    with running_daemon(tmp_path, [f"--log-file={log}"]):
        build_topology(tmp_path)
        appctl(tmp_path, "time/stop")
        _stats_round(tmp_path)
        debug = "|vswitchd|DBG|writing back the status of"
        assert debug not in log.read_text()

        assert appctl(tmp_path, "vlog/set", "vswitchd:file:dbg") == ""
        assert "vswitchd          INFO       INFO        DBG\n" in appctl(tmp_path, "vlog/list")
        _stats_round(tmp_path)
        assert debug in log.read_text()

        appctl(tmp_path, "vlog/set", "ANY:file:off")
        size = log.stat().st_size
        _stats_round(tmp_path)
        vsctl(tmp_path, "add-port", "br0", "p9", "--", "set", "Interface", "p9", "type=dummy")
        assert log.stat().st_size == size
        assert "vswitchd          INFO       INFO        OFF\n" in appctl(tmp_path, "vlog/list")


def test_vlog_reopen_follows_a_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "switch.log"
    with running_daemon(tmp_path, [f"--log-file={log}"]):
        log.rename(tmp_path / "switch.log.1")
        assert appctl(tmp_path, "vlog/reopen") == ""
        build_topology(tmp_path)
    old = (tmp_path / "switch.log.1").read_text().splitlines()
    new = log.read_text().splitlines()
    assert old[-1].endswith("|vlog|INFO|closing log file")
    assert new[0].endswith(f"|vlog|INFO|opened log file {log}")
    assert any("added interface p1 on port 1" in line for line in new)
    assert not any("added interface" in line for line in old)


def test_vlog_reopen_without_a_log_file(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        result = tool("appctl", tmp_path, "vlog/reopen")
    assert result.returncode == 2
    assert result.stderr.startswith("Logging to file not configured\n")


@pytest.mark.parametrize(("spec", "lines"), [("-vconsole:dbg", True), ("-vconsole:off", False)])
def test_console_levels_on_the_command_line(tmp_path: Path, spec: str, lines: bool) -> None:
    proc = subprocess.Popen(
        [*DAEMON, "--rundir", str(tmp_path), spec],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
    )
    try:
        deadline = time.monotonic() + 20
        while tool("appctl", tmp_path, "version").returncode != 0:
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        appctl(tmp_path, "exit")
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    console = stderr.splitlines()
    assert bool(console) == lines
    assert all(CONSOLE_LINE.match(line) for line in console), console
    if lines:
        assert any("|vswitchd|INFO|pvs-vswitchd (pyvswitch)" in line for line in console)


# -- write-back of status and statistics -------------------------------------------------


def _statistics(rundir: Path, iface: str) -> dict[str, int]:
    text = vsctl(rundir, "get", "Interface", iface, "statistics").strip("{}")
    return {k: int(v) for k, v in (item.split("=") for item in text.split(", ") if item)}


def test_status_and_statistics_are_written_back(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        build_topology(tmp_path)
        appctl(tmp_path, "time/stop")
        cfg = [vsctl(tmp_path, "get", "Open_vSwitch", ".", c) for c in ("cur_cfg", "next_cfg")]
        # Unknown destination: br0 floods to its own port, p2 and over the patch
        # to br1, which floods to its own port and p3.
        inject(tmp_path, "p1", PING, count=2)
        assert appctl(tmp_path, "time/warp", "5000") == "warped\n"
        size = 2 * len(PING)
        sent = {"rx_packets": 0, "rx_bytes": 0, "tx_packets": 2, "tx_bytes": size}
        assert _statistics(tmp_path, "p1") == {
            "rx_packets": 2,
            "rx_bytes": size,
            "tx_packets": 0,
            "tx_bytes": 0,
        }
        for iface in ("p2", "p3", "br0", "br1", "patch0"):
            assert _statistics(tmp_path, iface) == sent, iface
        assert _statistics(tmp_path, "patch1") == {
            "rx_packets": 2,
            "rx_bytes": size,
            "tx_packets": 0,
            "tx_bytes": 0,
        }
        columns = "--columns=admin_state,link_state,mtu,ifindex"
        assert vsctl(tmp_path, columns, "list", "Interface", "p1").split("\n") == [
            "admin_state         : up",
            "link_state          : up",
            "mtu                 : 1500",
            "ifindex             : 0",
        ]
        assert vsctl(tmp_path, columns, "list", "Interface", "patch0").split("\n") == [
            "admin_state         : up",
            "link_state          : up",
            "mtu                 : []",
            "ifindex             : 0",
        ]
        mac = vsctl(tmp_path, "get", "Interface", "p1", "mac_in_use")
        assert re.fullmatch(r'"([0-9a-f]{2}:){5}[0-9a-f]{2}"', mac)
        # Write-backs are not configuration: cur_cfg and next_cfg did not move.
        assert [
            vsctl(tmp_path, "get", "Open_vSwitch", ".", c) for c in ("cur_cfg", "next_cfg")
        ] == cfg
        # A client that waits for the daemon is not disturbed by them.
        vsctl(tmp_path, "add-port", "br0", "p4", "--", "set", "Interface", "p4", "type=dummy")
        assert vsctl(tmp_path, "get", "Interface", "p4", "ofport") != "-1"
        assert vsctl(tmp_path, "get", "Interface", "p4", "link_state") == "up"


def test_a_failed_interface_has_no_status(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        vsctl(tmp_path, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy")
        vsctl(tmp_path, "add-port", "br0", "bad", "--", "set", "Interface", "bad", "type=patch")
        assert vsctl(tmp_path, "get", "Interface", "bad", "ofport") == "-1"
        for column in ("link_state", "admin_state", "mtu", "mac_in_use"):
            assert vsctl(tmp_path, "get", "Interface", "bad", column) == "[]"


@pytest.mark.parametrize(
    ("interval", "quiet_warps", "writing_warp"),
    [
        # Every 10 s: nothing after 6 s, the counters after 11 s.
        ("10000", ["1000", "5000"], "5000"),
        # Less than Open vSwitch's minimum counts as 5 s: nothing after 2 s.
        ("1000", ["1000", "1000"], "5000"),
    ],
)
def test_the_statistics_interval(
    tmp_path: Path, interval: str, quiet_warps: list[str], writing_warp: str
) -> None:
    with running_daemon(tmp_path):
        appctl(tmp_path, "time/stop")
        build_topology(tmp_path)
        vsctl(
            tmp_path, "set", "Open_vSwitch", ".", f"other_config:stats-update-interval={interval}"
        )
        appctl(tmp_path, "time/warp", quiet_warps[0])
        inject(tmp_path, "p1", PING)
        for warp in quiet_warps[1:]:
            appctl(tmp_path, "time/warp", warp)
            assert _statistics(tmp_path, "p1").get("rx_packets", 0) == 0
        appctl(tmp_path, "time/warp", writing_warp)
        assert _statistics(tmp_path, "p1")["rx_packets"] == 1


# -- the clock, and the flow and MAC tables ----------------------------------------------


def test_time_warp_ages_macs_and_expires_megaflows(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        build_topology(tmp_path)
        appctl(tmp_path, "time/stop")
        # Two packets: the first makes the megaflow (its upcall is not counted
        # in the flow, as in Open vSwitch), the second hits it and sets "used".
        inject(tmp_path, "p1", PING, 2)
        header = " port  VLAN  MAC                Age\n"
        learned = "    1     0  50:54:00:00:00:05"
        assert appctl(tmp_path, "fdb/show", "br0") == header + learned + "    0\n"
        # One megaflow, after the line Open vSwitch's userspace datapath starts with.
        assert appctl(tmp_path, "dpctl/dump-flows").splitlines()[0] == (
            "flow-dump from the main thread:"
        )
        assert len(appctl(tmp_path, "dpctl/dump-flows").splitlines()) == 2

        # A stopped clock does not move by itself.
        time.sleep(1.2)
        assert appctl(tmp_path, "fdb/show", "br0") == header + learned + "    0\n"

        # Megaflows idle for 10 s are removed (Open vSwitch's default max-idle).
        assert appctl(tmp_path, "time/warp", "9000") == "warped\n"
        assert "used:9.000s" in appctl(tmp_path, "dpctl/dump-flows")
        assert appctl(tmp_path, "fdb/show", "br0") == header + learned + "    9\n"
        appctl(tmp_path, "time/warp", "1000")
        assert appctl(tmp_path, "dpctl/dump-flows") == ""

        # MACs age out after 300 s; a long warp in steps runs the aging as it goes.
        assert appctl(tmp_path, "time/warp", "289000", "10000") == "warped\n"
        assert appctl(tmp_path, "fdb/show", "br0") == header + learned + "  299\n"
        appctl(tmp_path, "time/warp", "1000")
        assert appctl(tmp_path, "fdb/show", "br0") == header


def test_time_warp_expires_an_idle_rule(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        build_topology(tmp_path)
        appctl(tmp_path, "time/stop")
        ok(
            "ofctl",
            tmp_path,
            "add-flow",
            "br0",
            "idle_timeout=5,priority=100,in_port=1,actions=drop",
        )
        rule = "idle_timeout=5"
        appctl(tmp_path, "time/warp", "3000")
        inject(tmp_path, "p1", PING)  # a hit: the rule is idle from now on
        appctl(tmp_path, "time/warp", "4000")
        assert "n_packets=1" in next(
            line
            for line in ok("ofctl", tmp_path, "dump-flows", "br0").splitlines()
            if rule in line
        )
        appctl(tmp_path, "time/warp", "1000")
        assert rule not in ok("ofctl", tmp_path, "dump-flows", "br0")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["0"], "invalid MSECS"),
        (["-5"], "invalid MSECS"),
        (["abc"], "invalid MSECS"),
        (["1000", "0"], "invalid MSECS"),
        (["-1", "1000"], "invalid MSECS"),
        (["1000000000", "1"], "1000000000 ms in steps of 1 ms is more than 100000 steps"),
    ],
)
def test_time_warp_refuses_bad_arguments(tmp_path: Path, args: list[str], error: str) -> None:
    with running_daemon(tmp_path):
        result = tool("appctl", tmp_path, "time/warp", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(error)


def test_fdb_flush_and_del_flows(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        build_topology(tmp_path)
        appctl(tmp_path, "time/stop")  # the same "used:" in both dumps
        inject(tmp_path, "p1", PING)
        assert "50:54:00:00:00:05" in appctl(tmp_path, "fdb/show", "br0")
        assert appctl(tmp_path, "fdb/flush", "br0") == "table successfully flushed\n"
        assert appctl(tmp_path, "fdb/show", "br0") == " port  VLAN  MAC                Age\n"
        inject(tmp_path, "p1", PING)
        assert appctl(tmp_path, "fdb/flush") == "table successfully flushed\n"
        assert "50:54" not in appctl(tmp_path, "fdb/show", "br0")
        result = tool("appctl", tmp_path, "fdb/flush", "nobr")
        assert (result.returncode, result.stderr.splitlines()[0]) == (2, "no such bridge")

        # The megaflow entered by br0's p1: br0 shows it, br1 does not.
        header, *flows = appctl(tmp_path, "dpctl/dump-flows").splitlines(keepends=True)
        assert header == "flow-dump from the main thread:\n"
        assert len(flows) == 1
        # dpif/dump-flows prints no such line, as in Open vSwitch.
        assert appctl(tmp_path, "dpif/dump-flows", "br0") == "".join(flows)
        assert appctl(tmp_path, "dpif/dump-flows", "br1") == ""
        result = tool("appctl", tmp_path, "dpif/dump-flows", "nobr")
        assert (result.returncode, result.stderr.splitlines()[0]) == (2, "no such bridge")

        # Deleted megaflows come back by upcall: one more miss.
        missed = re.compile(r"hit:(\d+) missed:(\d+)")
        before = missed.search(appctl(tmp_path, "dpif/show"))
        assert before is not None
        assert appctl(tmp_path, "dpctl/del-flows", "dummy@ovs-dummy") == ""
        assert appctl(tmp_path, "dpctl/dump-flows") == ""
        inject(tmp_path, "p1", PING)
        after = missed.search(appctl(tmp_path, "dpif/show"))
        assert after is not None
        assert int(after.group(2)) == int(before.group(2)) + 1
        result = tool("appctl", tmp_path, "dpctl/del-flows", "flows.txt")
        assert result.returncode == 2
        assert result.stderr.startswith('pvs-vswitchd: "flows.txt" is not a datapath')


def test_dpctl_needs_a_datapath(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        for command in ("dpctl/dump-flows", "dpctl/del-flows"):
            result = tool("appctl", tmp_path, command)
            assert result.returncode == 2
            assert result.stderr.startswith(
                "pvs-vswitchd: no datapaths exist\n"
                "pvs-vswitchd: datapath not found (Invalid argument)\n"
            )
        build_topology(tmp_path)
        result = tool("appctl", tmp_path, "dpctl/dump-flows", "dummy@nope")
        assert result.returncode == 2
        assert result.stderr.startswith("pvs-vswitchd: datapath not found (Invalid argument)\n")


def test_two_starters_that_both_checked_do_not_both_get_the_pidfile(tmp_path: Path) -> None:
    """Both pass check() before either creates the file (two daemons started
    together, or --detach's parent checking before the fork): the second to
    create is refused, as Open vSwitch's make_pidfile() refuses it."""
    from pyvswitch.vswitchd.daemonize import DaemonizeError, Pidfile

    path = tmp_path / "pvs-vswitchd.pid"
    first, second = Pidfile(path), Pidfile(path)
    first.check()
    second.check()
    first.create()
    # POSIX locks belong to processes: the second starter must be another one.
    child = os.fork()
    if child == 0:
        try:
            second.create()
        except DaemonizeError as exc:
            os._exit(0 if "already running" in str(exc) else 2)
        os._exit(1)
    _, status = os.waitpid(child, 0)
    first.remove()
    assert os.waitstatus_to_exitcode(status) == 0
