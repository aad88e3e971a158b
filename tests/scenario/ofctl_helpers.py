"""Shared by the pvs-ofctl and restart scenarios: tools, a two-bridge topology, packets."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import TYPE_CHECKING

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

if TYPE_CHECKING:
    from pathlib import Path

#: One ICMP echo request from 192.0.2.1 to 192.0.2.2, built by scapy.
PING = bytes(
    Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
    / IP(src="192.0.2.1", dst="192.0.2.2")
    / ICMP()
    / (b"x" * 30)
)


def tool(
    name: str, rundir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one of our command-line tools against the daemon in ``rundir``."""
    return subprocess.run(
        [sys.executable, "-m", f"pyvswitch.cli.{name}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        input=stdin,
        env={"PVS_RUNDIR": str(rundir), "PATH": "/usr/bin:/bin"},
    )


def ok(name: str, rundir: Path, *args: str, stdin: str | None = None) -> str:
    """A tool's output; the test fails with its message if it fails."""
    result = tool(name, rundir, *args, stdin=stdin)
    assert result.returncode == 0, (name, args, result.stderr)
    return result.stdout


def build_topology(rundir: Path) -> None:
    """br0 with p1 (1), p2 (2) and patch0 (10); br1 with p3 (3) and patch1 (11)."""
    ok(
        "vsctl",
        rundir,
        "--timeout=20",
        *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
        *("--", "add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"),
        *port("br0", "p1", 1),
        *port("br0", "p2", 2),
        *port("br1", "p3", 3),
        *port("br0", "patch0", 10, "type=patch", "options:peer=patch1"),
        *port("br1", "patch1", 11, "type=patch", "options:peer=patch0"),
    )


def port(bridge: str, name: str, ofport: int, *settings: str) -> list[str]:
    """The pvs-vsctl words that add one port with a fixed OpenFlow number."""
    return [
        *("--", "add-port", bridge, name, "--", "set", "Interface", name),
        f"ofport_request={ofport}",
        *(settings or ("type=dummy",)),
    ]


def inject(rundir: Path, port_name: str, frame: bytes, count: int = 1) -> None:
    """Frames arrive on a dummy port, as ovs-appctl netdev-dummy/receive makes them."""
    for _ in range(count):
        ok("appctl", rundir, "netdev-dummy/receive", port_name, frame.hex())


def port_counts(rundir: Path, bridge: str, port_name: str) -> tuple[int, int, int, int]:
    """(rx packets, rx bytes, tx packets, tx bytes) of one port, read with dump-ports."""
    text = ok("ofctl", rundir, "dump-ports", bridge, port_name)
    rx = re.search(r"rx pkts=(\d+), bytes=(\d+)", text)
    tx = re.search(r"tx pkts=(\d+), bytes=(\d+)", text)
    assert rx is not None, text
    assert tx is not None, text
    return int(rx[1]), int(rx[2]), int(tx[1]), int(tx[2])


def flow_counts(rundir: Path, bridge: str, flow: str) -> tuple[int, int]:
    """(n_packets, n_bytes) of the one flow ``dump-flows BRIDGE FLOW`` lists."""
    lines = ok("ofctl", rundir, "--names", "dump-flows", bridge, flow).splitlines()
    assert len(lines) == 1, lines
    found = re.search(r"n_packets=(\d+), n_bytes=(\d+)", lines[0])
    assert found is not None, lines
    return int(found[1]), int(found[2])
