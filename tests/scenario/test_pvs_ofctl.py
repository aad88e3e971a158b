"""pvs-ofctl against a running pvs-vswitchd: flows decide where injected packets go.

Two bridges on the dummy datapath joined by a patch pair; packets (built with
scapy) are injected with ``pvs-appctl netdev-dummy/receive`` and the counters
are read back with ``dump-ports`` and ``dump-flows``. The texts themselves are
compared with Open vSwitch's in tests/interop/test_ovs_ofctl.py.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import (
    PING,
    build_topology,
    flow_counts,
    inject,
    ok,
    port_counts,
    tool,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

N = len(PING)


@pytest.fixture
def rundir(tmp_path: Path) -> Iterator[Path]:
    with running_daemon(tmp_path) as rundir:
        build_topology(rundir)
        yield rundir


def ofctl(rundir: Path, *args: str, stdin: str | None = None) -> str:
    return ok("ofctl", rundir, *args, stdin=stdin)


def no_stats(rundir: Path, bridge: str = "br0") -> list[str]:
    return ofctl(rundir, "--no-stats", "dump-flows", bridge).splitlines()


def test_a_standalone_bridge_starts_with_the_normal_flow(rundir: Path) -> None:
    lines = ofctl(rundir, "dump-flows", "br0").splitlines()
    assert lines[0] == "NXST_FLOW reply (xid=0x4):"
    assert re.fullmatch(
        r" cookie=0x0, duration=\d+\.\d{3}s, table=0, n_packets=0, n_bytes=0, idle_age=\d+, "
        r"priority=0 actions=NORMAL",
        lines[1],
    )
    assert len(lines) == 2


def test_an_added_flow_sends_packets_out_of_its_port(rundir: Path) -> None:
    ofctl(rundir, "add-flow", "br0", "in_port=p1,actions=output:p2")
    inject(rundir, "p1", PING, 3)
    assert port_counts(rundir, "br0", "p1") == (3, 3 * N, 0, 0)
    assert port_counts(rundir, "br0", "p2") == (0, 0, 3, 3 * N)
    assert port_counts(rundir, "br1", "p3") == (0, 0, 0, 0)
    assert flow_counts(rundir, "br0", "in_port=p1") == (3, 3 * N)
    normal = ofctl(rundir, "dump-flows", "br0").splitlines()[-1]
    assert "n_packets=0, n_bytes=0" in normal
    assert normal.endswith("priority=0 actions=NORMAL")


def test_flows_across_the_patch_pair_count_on_both_ends(rundir: Path) -> None:
    ofctl(rundir, "add-flow", "br0", "priority=100,in_port=p1,actions=output:patch0")
    ofctl(rundir, "add-flow", "br1", "priority=100,in_port=patch1,actions=output:p3")
    inject(rundir, "p1", PING, 2)
    assert port_counts(rundir, "br0", "patch0") == (0, 0, 2, 2 * N)
    assert port_counts(rundir, "br1", "patch1") == (2, 2 * N, 0, 0)
    assert port_counts(rundir, "br1", "p3") == (0, 0, 2, 2 * N)
    assert port_counts(rundir, "br0", "p2") == (0, 0, 0, 0)
    assert flow_counts(rundir, "br1", "in_port=patch1") == (2, 2 * N)
    assert "OFPST_PORT reply (xid=0x2): 1 ports" in ofctl(rundir, "dump-ports", "br0", "10")


def test_modify_keeps_counters_and_changes_where_packets_go(rundir: Path) -> None:
    ofctl(rundir, "add-flow", "br0", "priority=100,in_port=p1,actions=output:p2")
    inject(rundir, "p1", PING)
    ofctl(rundir, "mod-flows", "br0", "in_port=p1,actions=drop")
    inject(rundir, "p1", PING)
    assert port_counts(rundir, "br0", "p2") == (0, 0, 1, N)
    assert flow_counts(rundir, "br0", "in_port=p1") == (2, 2 * N)
    assert no_stats(rundir)[0] == " priority=100,in_port=1 actions=drop"
    # A strict modify needs the priority: this one selects nothing, so it adds.
    ofctl(rundir, "--strict", "mod-flows", "br0", "in_port=p1,actions=output:p2")
    assert no_stats(rundir)[:2] == [
        " in_port=1 actions=output:2",
        " priority=100,in_port=1 actions=drop",
    ]


def test_loose_and_strict_delete(rundir: Path) -> None:
    for flow in (
        "priority=10,ip,actions=output:1",
        "priority=20,ip,nw_src=192.0.2.1,actions=output:2",
    ):
        ofctl(rundir, "add-flow", "br0", flow)
    ofctl(rundir, "--strict", "del-flows", "br0", "ip")
    assert len(no_stats(rundir)) == 3
    ofctl(rundir, "--strict", "del-flows", "br0", "priority=10,ip")
    assert no_stats(rundir)[0] == " priority=20,ip,nw_src=192.0.2.1 actions=output:2"
    ofctl(rundir, "del-flows", "br0", "ip")
    assert no_stats(rundir) == [" priority=0 actions=NORMAL"]
    ofctl(rundir, "del-flows", "br0")
    assert no_stats(rundir) == []
    inject(rundir, "p1", PING)
    assert port_counts(rundir, "br0", "p2")[2] == 0


def test_add_flows_reads_a_file_whole_or_not_at_all(rundir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(
        "# a comment\n\npriority=5,ip,actions=drop   # why\n  add priority=6,arp,actions=drop\n"
    )
    ofctl(rundir, "add-flows", "br0", str(good))
    assert no_stats(rundir) == [
        " priority=6,arp actions=drop",
        " priority=5,ip actions=drop",
        " priority=0 actions=NORMAL",
    ]
    bad = tmp_path / "bad.txt"
    bad.write_text("delete\npriority=7,udp,actions=drop\nactions=bogus\n")
    result = tool("ofctl", rundir, "add-flows", "br0", str(bad))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"pvs-ofctl: {bad}:3: unknown action bogus\n"
    assert len(no_stats(rundir)) == 3
    ofctl(rundir, "add-flows", "br0", "-", stdin="delete\nin_port=p1,actions=output:p2\n")
    assert no_stats(rundir) == [" in_port=1 actions=output:2"]
    result = tool("ofctl", rundir, "add-flows", "br0", "-", stdin="\nbogus\n")
    assert result.stderr == "pvs-ofctl: -:2: must specify an action\n"


def test_replace_flows_changes_only_what_differs(rundir: Path, tmp_path: Path) -> None:
    ofctl(rundir, "add-flow", "br0", "priority=100,in_port=p1,actions=output:p2")
    ofctl(rundir, "add-flow", "br0", "priority=50,arp,actions=drop")
    inject(rundir, "p1", PING, 2)
    wanted = tmp_path / "flows.txt"
    wanted.write_text("priority=100,in_port=p1,actions=output:p2\npriority=40,ip,actions=drop\n")
    ofctl(rundir, "replace-flows", "br0", str(wanted))
    assert no_stats(rundir) == [
        " priority=100,in_port=1 actions=output:2",
        " priority=40,ip actions=drop",
    ]
    assert flow_counts(rundir, "br0", "in_port=p1") == (2, 2 * N)
    inject(rundir, "p1", PING)
    assert port_counts(rundir, "br0", "p2")[2] == 3


def test_dump_options(rundir: Path) -> None:
    ofctl(rundir, "add-flow", "br0", "priority=10,in_port=p1,actions=strip_vlan,output:p2")
    names = ofctl(rundir, "--names", "--no-stats", "dump-flows", "br0", "in_port=p1")
    assert names == " priority=10,in_port=p1 actions=strip_vlan,output:p2\n"
    of13 = ofctl(rundir, "-O", "OpenFlow10,OpenFlow13", "dump-flows", "br0").splitlines()
    assert of13[0] == "OFPST_FLOW reply (OF1.3) (xid=0x2):"
    assert of13[1].endswith(", reset_counts priority=10,in_port=1 actions=pop_vlan,output:2")
    assert of13[2].endswith(", n_bytes=0, priority=0 actions=NORMAL")
    sorted_lines = ofctl(rundir, "--sort", "dump-flows", "br0").splitlines()
    assert [line.rsplit(" actions=", 1)[0].rsplit(" ", 1)[-1] for line in sorted_lines] == [
        "priority=0",
        "priority=10,in_port=1",
    ]
    result = tool("ofctl", rundir, "-O", "OpenFlow11", "dump-flows", "br0")
    assert (result.returncode, result.stderr) == (
        1,
        "pvs-ofctl: dump-flows: OpenFlow11 is not supported (use another version)\n",
    )


def test_show_lists_ports_with_names_numbers_and_addresses(rundir: Path) -> None:
    text = ofctl(rundir, "show", "br0")
    lines = text.splitlines()
    local_mac = re.search(r" LOCAL\(br0\): addr:([0-9a-f:]{17})\n", text)
    assert local_mac is not None, text
    assert lines[0] == f"OFPT_FEATURES_REPLY (xid=0x2): dpid:0000{local_mac[1].replace(':', '')}"
    ports = [line.split(":")[0] for line in lines if line.startswith(" ") and "addr:" in line]
    assert ports == [" 1(p1)", " 2(p2)", " 10(patch0)", " LOCAL(br0)"]
    assert lines[-1] == "OFPT_GET_CONFIG_REPLY (xid=0x4): frags=normal miss_send_len=0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dump-flows", "br9"], "br9 is not a bridge or a socket"),
        (["add-flow", "br9", "foo=1,actions=drop"], "br9 is not a bridge or a socket"),
        (["add-flows", "br9", "/nonexistent"], "br9 is not a bridge or a socket"),
        (
            ["add-flows", "br0", "/nonexistent"],
            "/nonexistent: open failed (No such file or directory)",
        ),
        (["add-flow", "br0", "foo=1,actions=drop"], "unknown keyword foo"),
        (
            ["add-flow", "br0", "in_port=p9,actions=drop"],
            "p9: invalid or unknown port for in_port",
        ),
        (["del-flows", "br0", "priority=5"], "unknown keyword priority"),
        (["add-flow", "br0", "table=254,actions=drop"], "OFPBRC_EPERM: table 254 is read-only"),
        (["add-flow", "br0"], "'add-flow' command requires at least 2 arguments"),
        (["add-flow", "br0", "a", "b"], "'add-flow' command takes at most 2 arguments"),
        (["dump-flows"], "'dump-flows' command requires at least 1 arguments"),
        (["foo"], "unknown command 'foo'; use --help for help"),
        ([], "missing command name; use --help for help"),
        (["--foo", "show", "br0"], "unrecognized option '--foo'"),
        (["-O", "OpenFlow16", "show", "br0"], 'Unknown OpenFlow version: "OpenFlow16"'),
        (["--timeout=0", "show", "br0"], "value 0 on -t or --timeout is invalid"),
        (["dump-ports", "br0", "nope"], "br0: unknown port `nope'"),
        (["--no-names", "dump-ports", "br0", "p1"], "br0: unknown port `p1'"),
    ],
)
def test_errors(rundir: Path, args: list[str], message: str) -> None:
    before = no_stats(rundir)
    result = tool("ofctl", rundir, *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"pvs-ofctl: {message}\n")
    assert no_stats(rundir) == before


def test_port_names_are_shown_by_default_to_a_terminal(rundir: Path) -> None:
    ofctl(rundir, "add-flow", "br0", "in_port=p1,actions=output:p2")
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pyvswitch.cli.ofctl", "--no-stats", "dump-flows", "br0"],
            stdout=terminal,
            stderr=subprocess.PIPE,
            check=False,
            timeout=30,
            env={"PVS_RUNDIR": str(rundir), "PATH": "/usr/bin:/bin"},
        )
        os.close(terminal)
        terminal = -1
        output = b""
        with contextlib.suppress(OSError):  # EIO once the terminal side is closed
            for _ in range(100):
                chunk = os.read(controller, 4096)
                if not chunk:
                    break
                output += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert result.returncode == 0, result.stderr
    assert output.decode().splitlines()[0] == " in_port=p1 actions=output:p2"


def test_a_change_that_cannot_be_saved_is_not_made(rundir: Path) -> None:
    ofctl(rundir, "add-flow", "br0", "priority=5,arp,actions=drop")
    before = no_stats(rundir)
    (rundir / "flows.json").unlink()
    (rundir / "flows.json").mkdir()
    result = tool("ofctl", rundir, "add-flow", "br0", "priority=6,arp,actions=drop")
    assert result.returncode == 1
    assert result.stderr.startswith(f"pvs-ofctl: {rundir}/flows.json: cannot save the flows (")
    assert no_stats(rundir) == before
    (rundir / "flows.json").rmdir()
    ofctl(rundir, "add-flow", "br0", "priority=6,arp,actions=drop")
    assert len(no_stats(rundir)) == len(before) + 1


def test_no_daemon(tmp_path: Path) -> None:
    result = tool("ofctl", tmp_path, "show", "br0")
    assert result.returncode == 1
    assert result.stderr == (
        f'pvs-ofctl: cannot connect to "{tmp_path}/pvs-vswitchd.ctl" (No such file or directory)\n'
    )
