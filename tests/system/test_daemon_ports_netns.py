"""Internal and tap ports of pvs-vswitchd carrying real traffic.

The daemon runs inside a namespace of its own (as the demo runs it), so the
bridge's internal port and the taps it creates appear there, and addresses
are only ever given inside namespaces this test made.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.system.netns import NetnsLab, in_netns, ip

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.netns

NET = "198.51.100"


def vsctl(rundir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pyvswitch.cli.vsctl", "--timeout=30", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "PVS_RUNDIR": str(rundir)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def received(ns: str, address: str) -> int:
    done = in_netns(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", address, check=False)
    found = re.search(r"(\d+) received", done.stdout)
    return int(found.group(1)) if found else 0


def host_on_veth(lab: NetnsLab, node: str, address: str) -> tuple[str, str]:
    """A host namespace on a veth whose other end is in ``node``; (host, node end)."""
    host = lab.netns()
    outside = lab.name("vn")
    ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", host, netns=node)
    ip("link", "set", outside, "up", netns=node)
    ip("link", "set", "eth0", "up", netns=host)
    ip("addr", "add", f"{address}/24", "dev", "eth0", netns=host)
    return host, outside


def test_the_bridge_internal_port_answers_a_host(lab: NetnsLab, tmp_path: Path) -> None:
    """The bridge's own port is a real interface of the node: give it an
    address there and a host on a system port reaches it through the bridge."""
    node = lab.netns()
    host, outside = host_on_veth(lab, node, f"{NET}.1")
    with running_daemon(tmp_path / "run", netns=node) as rundir:
        vsctl(rundir, "add-br", "br0", "--", "add-port", "br0", outside)
        ip("addr", "add", f"{NET}.10/24", "dev", "br0", netns=node)
        ip("link", "set", "br0", "up", netns=node)
        assert received(host, f"{NET}.10") == 3
        assert vsctl(rundir, "get", "Interface", "br0", "type").strip() == "internal"
        assert vsctl(rundir, "get", "Interface", "br0", "link_state").strip() == "up"


def test_an_internal_port_and_a_tap_port_moved_to_a_namespace(
    lab: NetnsLab, tmp_path: Path
) -> None:
    """type=internal and type=tap ports are devices the daemon creates; moved to
    other namespaces and given addresses there, they talk through the bridge."""
    node = lab.netns()
    host, outside = host_on_veth(lab, node, f"{NET}.1")
    vm = lab.netns()
    other = lab.netns()
    with running_daemon(tmp_path / "run", netns=node) as rundir:
        vsctl(
            rundir,
            *("add-br", "br0", "--", "add-port", "br0", outside),
            *(
                "--",
                "add-port",
                "br0",
                "vint0",
                "--",
                "set",
                "Interface",
                "vint0",
                "type=internal",
            ),
            *("--", "add-port", "br0", "vtap0", "--", "set", "Interface", "vtap0", "type=tap"),
        )
        assert vsctl(rundir, "get", "Interface", "vint0", "error").strip() == "[]"
        assert vsctl(rundir, "get", "Interface", "vtap0", "error").strip() == "[]"
        for name, ns, address in (("vint0", vm, f"{NET}.2"), ("vtap0", other, f"{NET}.3")):
            ip("link", "set", name, "netns", ns, netns=node)
            ip("addr", "add", f"{address}/24", "dev", name, netns=ns)
            ip("link", "set", name, "up", netns=ns)
        assert received(host, f"{NET}.2") == 3
        assert received(host, f"{NET}.3") == 3
        assert received(vm, f"{NET}.3") == 3
