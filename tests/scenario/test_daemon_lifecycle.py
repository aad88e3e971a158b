"""pvs-vswitchd's life cycle: starting and stopping, datapaths that come and go
with their bridges, the bridge settings applied while it runs.

What Open vSwitch 3.1 prints in the same situations is compared in
tests/interop/test_ovs_daemon_lifecycle.py; these tests run without it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

import pyvswitch.vswitchd.daemon as daemon_module
from pyvswitch.netdev import Netdev, netdev_close, netdev_open
from pyvswitch.ofproto.mac_learning import MacTable
from pyvswitch.vswitchd.daemon import Daemon
from pyvswitch.vswitchd.dpctl import dump_flows
from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import PING, inject, ok, tool

if TYPE_CHECKING:
    from pathlib import Path

DAEMON = [sys.executable, "-m", "pyvswitch.vswitchd.daemon"]
FDB_HEADER = " port  VLAN  MAC                Age\n"


def vsctl(rundir: Path, *args: str) -> str:
    return ok("vsctl", rundir, "--timeout=20", *args)


def appctl(rundir: Path, *args: str) -> str:
    return ok("appctl", rundir, *args)


def dummy_bridge(name: str, *settings: str) -> list[str]:
    return ["add-br", name, "--", "set", "bridge", name, "datapath_type=dummy", *settings]


def dummy_port(bridge: str, name: str, *settings: str) -> list[str]:
    """The words that add dummy port ``name`` to ``bridge``, with more ``settings``."""
    return [
        *("--", "add-port", bridge, name, "--", "set", "Interface", name),
        "type=dummy",
        *settings,
    ]


def frame_from(mac: str) -> bytes:
    """A frame from ``mac`` to a MAC no one has, built by scapy."""
    return bytes(
        Ether(src=mac, dst="50:54:00:00:01:01") / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP()
    )


# -- stopping during start-up ------------------------------------------------------------


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert proc.poll() is None, f"the daemon exited before {path.name} appeared"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.0005)


@pytest.mark.parametrize(
    ("moment", "sig"),
    [
        # The database socket exists (bound, maybe not listening yet): the
        # daemon is half-way through starting.
        ("db.sock", signal.SIGTERM),
        ("db.sock", signal.SIGINT),
        # The pid file is made before the database is even opened.
        ("pvs-vswitchd.pid", signal.SIGTERM),
    ],
)
def test_a_stop_signal_during_start_up_is_a_clean_stop(
    tmp_path: Path, moment: str, sig: signal.Signals
) -> None:
    for attempt in range(3):
        rundir = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(
            [*DAEMON, "--rundir", str(rundir), "--pidfile"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_file(rundir / moment, proc)
            proc.send_signal(sig)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        # Every socket and the pid file are gone, as after any clean stop;
        # the database and its lock file stay.
        assert sorted(p.name for p in rundir.iterdir()) == [".conf.db.~lock~", "conf.db"]


# -- datapaths come and go with their bridges ----------------------------------------------


def test_deleting_the_last_bridge_closes_its_datapath(tmp_path: Path) -> None:
    with running_daemon(tmp_path):
        vsctl(tmp_path, *dummy_bridge("br0"), *dummy_port("br0", "p1"))
        inject(tmp_path, "p1", PING)
        assert appctl(tmp_path, "dpif/show").startswith("dummy@ovs-dummy: hit:0 missed:1\n")
        vsctl(tmp_path, "del-br", "br0")
        # Open vSwitch closes a datapath no bridge uses: nothing to show.
        for command in ("dpif/show", "dpctl/show", "dpctl/dump-dps"):
            assert appctl(tmp_path, command) == "", command
        result = tool("appctl", tmp_path, "dpctl/dump-flows")
        assert result.returncode == 2
        assert result.stderr.startswith("pvs-vswitchd: no datapaths exist\n")
        # A new bridge gets a new datapath, whose counters start at zero.
        vsctl(tmp_path, *dummy_bridge("br0"), *dummy_port("br0", "p1"))
        assert appctl(tmp_path, "dpif/show") == (
            "dummy@ovs-dummy: hit:0 missed:0\n"
            "  br0:\n"
            "    br0 65534/100: (dummy-internal)\n"
            "    p1 1/1: (dummy)\n"
        )


class _InProcess:
    """A Daemon object without its event loop, whose reconciliation the test runs."""

    def __init__(self, rundir: Path) -> None:
        self.daemon = Daemon(rundir, system_routes=False)
        self.daemon.server.transact(
            [{"op": "insert", "table": "Open_vSwitch", "row": {}, "uuid-name": "root"}]
        )

    def transact(self, ops: list[Any]) -> None:
        for result in self.daemon.server.transact(ops):
            assert not (isinstance(result, dict) and "error" in result), result
        self.daemon.reconcile()

    def add_bridge(self, name: str, datapath_type: str) -> None:
        """A bridge with its own port (an internal interface), as pvs-vsctl add-br makes."""
        self.transact(
            [
                {
                    "op": "insert",
                    "table": "Interface",
                    "row": {"name": name, "type": "internal"},
                    "uuid-name": "i",
                },
                {
                    "op": "insert",
                    "table": "Port",
                    "row": {"name": name, "interfaces": ["named-uuid", "i"]},
                    "uuid-name": "p",
                },
                {
                    "op": "insert",
                    "table": "Bridge",
                    "row": {
                        "name": name,
                        "datapath_type": datapath_type,
                        "ports": ["named-uuid", "p"],
                    },
                    "uuid-name": "b",
                },
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [],
                    "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]],
                },
            ]
        )

    def del_bridge(self, name: str) -> None:
        rows = self.daemon.server.db.rows("Bridge").items()
        bridge = next(u for u, row in rows if tuple(row["name"]) == (name,))
        self.transact(
            [
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [],
                    "mutations": [["bridges", "delete", ["set", [["uuid", str(bridge)]]]]],
                }
            ]
        )


def test_a_netdev_datapath_goes_with_its_last_bridge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a dummy datapath beside it, the netdev one must go for dpctl to need no name.

    The netdev bridge's own port would be a real (tap) device: dummy devices
    stand in for every device here, so the test touches no network.
    """
    opened: list[str] = []
    closed: list[str] = []

    def fake_open(name: str, _type: str = "system", _options: Any = None) -> Netdev:
        opened.append(name)
        return netdev_open(name, "dummy")

    def recording_close(dev: Netdev) -> None:
        closed.append(dev.name)
        netdev_close(dev)

    monkeypatch.setattr(daemon_module, "netdev_open", fake_open)
    monkeypatch.setattr(daemon_module, "netdev_close", recording_close)
    switch = _InProcess(tmp_path)
    switch.add_bridge("brn", "netdev")
    switch.add_bridge("br0", "dummy")
    assert sorted(switch.daemon.datapaths) == ["dummy", "netdev"]
    assert "brn" in opened
    switch.del_bridge("brn")
    assert sorted(switch.daemon.datapaths) == ["dummy"]
    assert "brn" in closed
    # One datapath left: dpctl commands need no name again.
    assert dump_flows(switch.daemon, []) == ""
    switch.del_bridge("br0")
    assert switch.daemon.datapaths == {}
    assert sorted(closed) == ["br0", "brn"]


# -- other_config:mac-aging-time and mac-table-size ------------------------------------------


def test_mac_aging_time_ages_entries_out_and_changes_apply_to_learned_ones(
    tmp_path: Path,
) -> None:
    with running_daemon(tmp_path):
        vsctl(
            tmp_path,
            *dummy_bridge("br0", "other_config:mac-aging-time=20"),
            *dummy_port("br0", "p1", "ofport_request=1"),
            *dummy_port("br0", "p2", "ofport_request=2"),
        )
        appctl(tmp_path, "time/stop")
        inject(tmp_path, "p1", frame_from("50:54:00:00:00:05"))
        appctl(tmp_path, "time/warp", "19000", "1000")
        assert appctl(tmp_path, "fdb/show", "br0") == (
            FDB_HEADER + "    1     0  50:54:00:00:00:05   19\n"
        )
        appctl(tmp_path, "time/warp", "1000")
        assert appctl(tmp_path, "fdb/show", "br0") == FDB_HEADER

        # Back to the default (300 s); an entry 30 s old then outlives a
        # change to 40 s by 10 s, keeping its age, as in Open vSwitch.
        vsctl(tmp_path, "remove", "bridge", "br0", "other_config", "mac-aging-time")
        inject(tmp_path, "p1", frame_from("50:54:00:00:00:06"))
        appctl(tmp_path, "time/warp", "30000", "1000")
        vsctl(tmp_path, "set", "bridge", "br0", "other_config:mac-aging-time=40")
        assert appctl(tmp_path, "fdb/show", "br0") == (
            FDB_HEADER + "    1     0  50:54:00:00:00:06   30\n"
        )
        appctl(tmp_path, "time/warp", "9000", "1000")
        assert "50:54:00:00:00:06   39" in appctl(tmp_path, "fdb/show", "br0")
        appctl(tmp_path, "time/warp", "1000")
        assert appctl(tmp_path, "fdb/show", "br0") == FDB_HEADER

        # An aging time below an entry's age forgets it at once.
        inject(tmp_path, "p1", frame_from("50:54:00:00:00:07"))
        appctl(tmp_path, "time/warp", "30000", "1000")
        vsctl(tmp_path, "set", "bridge", "br0", "other_config:mac-aging-time=16")
        assert appctl(tmp_path, "fdb/show", "br0") == FDB_HEADER


def _macs(n: int, first: int = 0x10) -> list[str]:
    return [f"50:54:00:00:00:{first + i:02x}" for i in range(n)]


def test_mac_table_size_bounds_the_table_and_a_smaller_one_evicts_the_oldest(
    tmp_path: Path,
) -> None:
    with running_daemon(tmp_path):
        vsctl(
            tmp_path,
            # 1 is below Open vSwitch's minimum: the table holds 10.
            *dummy_bridge("br0", "other_config:mac-table-size=1"),
            *dummy_port("br0", "p1", "ofport_request=1"),
            *dummy_port("br0", "p2", "ofport_request=2"),
        )
        appctl(tmp_path, "time/stop")
        first = _macs(12)
        for mac in first:
            inject(tmp_path, "p1", frame_from(mac))
            appctl(tmp_path, "time/warp", "1000")

        def learned() -> list[str]:
            return [
                line.split()[2] for line in appctl(tmp_path, "fdb/show", "br0").splitlines()[1:]
            ]

        # The least recently used went first.
        assert learned() == first[2:]
        vsctl(tmp_path, "set", "bridge", "br0", "other_config:mac-table-size=20")
        more = _macs(10, 0x30)
        for mac in more:
            inject(tmp_path, "p1", frame_from(mac))
        inject(tmp_path, "p1", frame_from(first[2]))  # used again: the newest now
        assert learned() == [*first[3:], *more, first[2]]
        # A smaller table forgets its oldest entries at once.
        vsctl(tmp_path, "set", "bridge", "br0", "other_config:mac-table-size=12")
        assert learned() == [*first[11:], *more, first[2]]
        # Not a number: the default size (2048), nothing more is forgotten.
        vsctl(tmp_path, "set", "bridge", "br0", "other_config:mac-table-size=abc")
        for mac in _macs(5, 0x50):
            inject(tmp_path, "p1", frame_from(mac))
        assert len(learned()) == 17


@pytest.mark.parametrize(
    ("value", "idle", "size"),
    [
        (None, 300, 2048),
        ("20", 20, 20),
        ("0", 300, 2048),
        ("abc", 300, 2048),
        ("20x", 300, 2048),
        (" 20", 20, 20),
        ("+20", 20, 20),
        ("5", 15, 10),
        ("99999", 3600, 99999),
        ("5000000", 3600, 1000000),
        ("-5", 3600, 1000000),
        ("2147483648", 300, 2048),
    ],
)
def test_mac_settings_are_read_as_open_vswitch_reads_them(
    tmp_path: Path, value: str | None, idle: int, size: int
) -> None:
    """Open vSwitch 3.1 gave these aging times (tests/interop checks a few of them)."""
    switch = _InProcess(tmp_path)
    switch.add_bridge("br0", "dummy")
    if value is not None:
        switch.transact(
            [
                {
                    "op": "update",
                    "table": "Bridge",
                    "where": [["name", "==", "br0"]],
                    "row": {
                        "other_config": [
                            "map",
                            [["mac-aging-time", value], ["mac-table-size", value]],
                        ]
                    },
                }
            ]
        )
    macs = switch.daemon.datapaths["dummy"].ofp.bridges["br0"].macs
    assert (macs.idle, macs.max_entries) == (idle, size)
    switch.del_bridge("br0")


def test_a_mac_table_keeps_ages_when_its_aging_time_changes() -> None:
    table = MacTable()
    table.learn(0x505400000001, 0, 1, now=100.0)
    table.set_idle_time(20)
    assert table.entries(110.0) == [(1, 0, 0x505400000001, 10.0)]
    assert table.lookup(0x505400000001, 0, 119.5) == 1
    assert table.lookup(0x505400000001, 0, 120.0) is None
    table.set_idle_time(1)  # below the minimum: 15 s
    assert table.idle == 15


def test_a_smaller_mac_table_evicts_the_least_recently_used() -> None:
    table = MacTable()
    for mac in range(20):
        table.learn(mac, 0, 1, now=float(mac))
    table.learn(0, 0, 2, now=30.0)  # used again
    assert table.set_max_entries(12) == 8
    assert [mac for _, _, mac, _ in table.entries(31.0)] == [*range(9, 20), 0]
    assert table.set_max_entries(0) == 2  # below the minimum: 10 entries
    assert len(table) == 10


# -- patch ports whose peer cannot be used -----------------------------------------------------


def _iface(rundir: Path, name: str) -> tuple[str, str]:
    text = vsctl(rundir, "--columns=ofport,error", "--bare", "list", "Interface", name)
    ofport, error = [*text.splitlines(), "", ""][:2]
    return ofport, error


def test_a_patch_port_without_a_usable_peer_reports_it(tmp_path: Path) -> None:
    no_peer = "No usable peer 'pb-pa' exists in 'dummy' datapath."
    patch = ["type=patch"]
    with running_daemon(tmp_path):
        vsctl(tmp_path, *dummy_bridge("pa"), "--", "add-port", "pa", "pa-pb", "--", "set",
              "Interface", "pa-pb", *patch, "options:peer=pb-pa")  # fmt: skip
        # The port runs (it keeps its number) and says why it carries nothing.
        assert _iface(tmp_path, "pa-pb") == ("1", no_peer)
        vsctl(tmp_path, *dummy_bridge("pb"), "--", "add-port", "pb", "pb-pa", "--", "set",
              "Interface", "pb-pa", *patch, "options:peer=pa-pb")  # fmt: skip
        assert _iface(tmp_path, "pa-pb") == ("1", "")
        assert _iface(tmp_path, "pb-pa") == ("1", "")
        vsctl(tmp_path, "del-br", "pb")
        assert _iface(tmp_path, "pa-pb") == ("1", no_peer)

        # A peer whose own peer is another port, or that is no patch port, is no use.
        vsctl(tmp_path, *dummy_bridge("pb"), "--", "add-port", "pb", "pb-pa", "--", "set",
              "Interface", "pb-pa", *patch, "options:peer=typo")  # fmt: skip
        assert _iface(tmp_path, "pa-pb") == ("1", no_peer)
        assert _iface(tmp_path, "pb-pa") == (
            "1",
            "No usable peer 'typo' exists in 'dummy' datapath.",
        )
        vsctl(tmp_path, "set", "Interface", "pb-pa", "options:peer=pa-pb")
        assert _iface(tmp_path, "pa-pb") == ("1", "")
        assert _iface(tmp_path, "pb-pa") == ("1", "")
        vsctl(tmp_path, "set", "Interface", "pb-pa", "type=dummy")
        assert _iface(tmp_path, "pa-pb") == ("1", no_peer)
        # Nothing crosses to a port of that name: pa floods to pa-pb only, a drop.
        trace = appctl(tmp_path, "ofproto/trace", "pa", "in_port=LOCAL")
        assert trace.endswith("Datapath actions: drop\n"), trace


# -- the bridge's own port is added after the ports that ask for a number -----------------


def test_ports_with_an_ofport_request_get_datapath_numbers_before_the_bridges_own(
    tmp_path: Path,
) -> None:
    """Open vSwitch 3.1 prints exactly this (tests/interop compares)."""
    with running_daemon(tmp_path):
        vsctl(tmp_path, *dummy_bridge("bx"), *dummy_port("bx", "p1", "ofport_request=1"),
              *dummy_port("bx", "zz"))  # fmt: skip
        assert appctl(tmp_path, "dpif/show") == (
            "dummy@ovs-dummy: hit:0 missed:0\n"
            "  bx:\n"
            "    bx 65534/2: (dummy-internal)\n"
            "    p1 1/1: (dummy)\n"
            "    zz 2/3: (dummy)\n"
        )
        vsctl(tmp_path, "del-br", "bx")
        vsctl(tmp_path, *dummy_bridge("bx"), *dummy_port("bx", "zz", "ofport_request=1"),
              *dummy_port("bx", "p1"))  # fmt: skip
        assert appctl(tmp_path, "dpif/show") == (
            "dummy@ovs-dummy: hit:0 missed:0\n"
            "  bx:\n"
            "    bx 65534/2: (dummy-internal)\n"
            "    p1 2/3: (dummy)\n"
            "    zz 1/1: (dummy)\n"
        )


# -- --detach -------------------------------------------------------------------------------

#: A vlog console line: time without milliseconds, sequence number, module, level, message.
CONSOLE_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\|\d{5}\|[a-z_]+\|(?:EMER|ERR|WARN|INFO|DBG)\|(.*)"
)


def test_a_detached_restart_logs_its_start_up_on_the_terminal_until_it_detaches(
    tmp_path: Path,
) -> None:
    """As ovs-vswitchd --detach: what happens before the start is complete is on
    the terminal (stderr) too; once detached, nothing more is."""
    with running_daemon(tmp_path):
        vsctl(tmp_path, *dummy_bridge("br0"), *dummy_port("br0", "p1"))
    log = tmp_path / "switch.log"
    result = subprocess.run(
        [*DAEMON, "--rundir", str(tmp_path), "--detach", "--pidfile", f"--log-file={log}"],
        capture_output=True,  # returns only once the daemon has let go of both pipes
        text=True,
        check=False,
        timeout=60,
    )
    pid = int((tmp_path / "pvs-vswitchd.pid").read_text())
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        lines = [CONSOLE_LINE.fullmatch(line) for line in result.stderr.splitlines()]
        assert all(lines), result.stderr
        messages = {m.group(1) for m in lines if m is not None}
        assert {
            "bridge br0: added interface br0 on port 65534",
            "bridge br0: added interface p1 on port 1",
        } <= messages
        assert f"opened log file {log}" in messages
        # The file has it all too, and what comes later only there.
        appctl(tmp_path, "vlog/reopen")
        assert "bridge br0: added interface p1 on port 1" in log.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while (tmp_path / "pvs-vswitchd.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not (tmp_path / "pvs-vswitchd.pid").exists()


def test_a_dummy_bridge_plays_system_ports_but_refuses_unknown_types(tmp_path: Path) -> None:
    """As ``--enable-dummy=override``: untyped and tap ports become dummies; a typo fails."""
    with running_daemon(tmp_path) as rundir:
        done = tool(
            "vsctl",
            rundir,
            *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
            *("--", "add-port", "br0", "p1", "--", "add-port", "br0", "t1"),
            *("--", "set", "interface", "t1", "type=tap"),
            *("--", "add-port", "br0", "bogus", "--", "set", "interface", "bogus"),
            "type=nosuchtype",
        )
        assert done.returncode == 0
        assert "Error detected while setting up 'bogus': unknown interface type" in done.stderr
        assert vsctl(rundir, "get", "interface", "bogus", "ofport").strip() == "-1"
        shown = ok("appctl", rundir, "dpif/show")
        assert "p1 1/1: (dummy)" in shown
        assert "t1 2/2: (dummy)" in shown
        assert "bogus" not in shown
