"""Open vSwitch's own tools drive pvs-vswitchd: ovs-vsctl (with the
configuration handshake, no --no-wait) and ovs-appctl on the control socket."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import require_ovs

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

PING = (
    "in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=192.0.2.1,dst=192.0.2.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)"
)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Path]:
    require_ovs()
    with running_daemon(tmp_path) as rundir:
        yield rundir


def vsctl(rundir: Path, *args: str) -> str:
    return subprocess.run(
        ["ovs-vsctl", "--timeout=20", f"--db=unix:{rundir / 'db.sock'}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def appctl(rundir: Path, *args: str) -> str:
    return subprocess.run(
        ["ovs-appctl", "--timeout=20", "-t", str(rundir / "pvs-vswitchd.ctl"), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def test_ovs_tools_set_up_two_bridges_with_patch_ports(daemon: Path) -> None:
    vsctl(daemon, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy")
    vsctl(daemon, "add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy")
    vsctl(daemon, "add-port", "br0", "p1", "--", "set", "Interface", "p1", "ofport_request=1")
    vsctl(daemon, "add-port", "br1", "p2", "--", "set", "Interface", "p2", "ofport_request=2")
    vsctl(
        daemon,
        "add-port",
        "br0",
        "patch0",
        "--",
        "set",
        "interface",
        "patch0",
        "type=patch",
        "options:peer=patch1",
        "ofport_request=10",
        "--",
        "add-port",
        "br1",
        "patch1",
        "--",
        "set",
        "interface",
        "patch1",
        "type=patch",
        "options:peer=patch0",
        "ofport_request=20",
    )
    assert vsctl(daemon, "get", "Interface", "p1", "ofport").strip() == "1"
    assert vsctl(daemon, "get", "Interface", "br0", "ofport").strip() == "65534"
    assert appctl(daemon, "dpif/show") == (
        "dummy@ovs-dummy: hit:0 missed:0\n"
        "  br0:\n"
        "    br0 65534/100: (dummy-internal)\n"
        "    p1 1/1: (dummy)\n"
        "    patch0 10/none: (patch: peer=patch1)\n"
        "  br1:\n"
        "    br1 65534/101: (dummy-internal)\n"
        "    p2 2/2: (dummy)\n"
        "    patch1 20/none: (patch: peer=patch0)\n"
    )
    for _ in range(3):
        appctl(daemon, "netdev-dummy/receive", "p1", PING)
    assert "hit:2 missed:1" in appctl(daemon, "dpif/show")
    flows = appctl(daemon, "dpctl/dump-flows")
    assert "in_port(1)" in flows
    # As Open vSwitch counts: the first packet was the upcall.
    assert "packets:2," in flows
    trace = appctl(daemon, "ofproto/trace", "ovs-dummy", PING)
    assert 'bridge("br1")' in trace


def test_a_bad_interface_gets_an_error_and_no_port(daemon: Path) -> None:
    vsctl(daemon, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy")
    vsctl(daemon, "add-port", "br0", "bad", "--", "set", "interface", "bad", "type=patch")
    assert vsctl(daemon, "get", "Interface", "bad", "ofport").strip() == "-1"
    assert vsctl(daemon, "get", "Interface", "bad", "error").strip() == (
        "\"bad: patch type requires valid 'peer' argument\""
    )
    vsctl(daemon, "del-br", "br0")
    assert "br0" not in appctl(daemon, "dpif/show")


def test_ovs_vsctl_session_internal_port_mirror_show_and_removal(daemon: Path) -> None:
    """What an Open vSwitch user types, with the real ovs-vsctl and no --no-wait:
    the daemon applies each step before ovs-vsctl returns."""
    vsctl(daemon, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy")
    vsctl(daemon, "add-port", "br0", "vif0", "--", "set", "Interface", "vif0", "type=internal")
    vsctl(daemon, "add-port", "br0", "p1")
    vsctl(daemon, "set", "Port", "p1", "tag=10")
    assert vsctl(daemon, "get", "Port", "p1", "tag").strip() == "10"
    # As Open vSwitch's dummy datapath numbers them (checked in its sandbox):
    # vif0's "0" is not a port number, so it takes the first free one.
    shown = appctl(daemon, "dpif/show")
    assert "    vif0 1/1: (dummy-internal)\n" in shown
    assert "    p1 2/" in shown
    listed = vsctl(daemon, "--columns=name,ofport,type", "list", "Interface", "vif0")
    assert "internal" in listed
    assert "ofport              : 1" in listed
    vsctl(
        daemon,
        "--", "--id=@p", "get", "Port", "p1",
        "--", "--id=@o", "get", "Port", "vif0",
        "--", "--id=@m", "create", "Mirror", "name=m0", "select-src-port=@p", "output-port=@o",
        "--", "add", "Bridge", "br0", "mirrors", "@m",
    )  # fmt: skip
    assert vsctl(daemon, "get", "Mirror", "m0", "name").strip() == "m0"
    show = vsctl(daemon, "show")
    assert "Bridge br0" in show
    assert "tag: 10" in show
    vsctl(daemon, "del-port", "br0", "vif0")
    assert "vif0" not in appctl(daemon, "dpif/show")
    # The mirror lost its output port with vif0: Open vSwitch's schema keeps
    # the row (it is referenced by the bridge), with output_port empty.
    assert vsctl(daemon, "get", "Mirror", "m0", "output_port").strip() == "[]"
    vsctl(daemon, "del-br", "br0")
    assert vsctl(daemon, "list-br") == ""
    assert "br0" not in appctl(daemon, "dpif/show")
