"""``ofproto/trace`` with a packet or ``-generate``, on pvs-vswitchd through pvs-appctl.

The error texts are Open vSwitch 3.1's (tests/interop/test_ovs_trace_packet.py
compares them with the real ovs-vswitchd); what a packet's trace does to the
MAC table is checked here through ``fdb/show``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from tests.daemon import running_daemon

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SRC, DST = "50:54:00:00:00:05", "50:54:00:00:00:07"
PING = bytes(Ether(src=SRC, dst=DST) / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP()).hex()


def tool(name: str, rundir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"pyvswitch.cli.{name}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={"PVS_RUNDIR": str(rundir), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def rundir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A daemon with bridge br0 (ports p1, p2) in standalone mode: NORMAL forwards."""
    with running_daemon(tmp_path_factory.mktemp("trace")) as path:
        add = ["--timeout=20", "add-br", "br0", "--", "set", "bridge", "br0"]
        add += ["datapath_type=dummy"]
        for i in (1, 2):
            add += ["--", "add-port", "br0", f"p{i}", "--", "set", "Interface", f"p{i}"]
            add += ["type=dummy", f"ofport_request={i}"]
        assert tool("vsctl", path, *add).returncode == 0
        yield path


def trace(rundir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return tool("appctl", rundir, "ofproto/trace", *args)


def error(rundir: Path, *args: str) -> str:
    """The error ofproto/trace answers (and that it is an error: exit status 2)."""
    result = trace(rundir, *args)
    assert (result.returncode, result.stdout) == (2, ""), result
    return result.stderr.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["br0", "in_port=1", "0a1"], "Trailing garbage in packet data"),
        (["br0", "in_port=1", PING + "z"], "Trailing garbage in packet data"),
        (["br0", "in_port=1", "0a 0b"], "Packet data too short for Ethernet"),
        (["br0", "in_port=1", PING, "extra"], "too many arguments"),
        (["br0", "in_port=1", "-generate", PING], "Syntax error"),
        (["br0", "in_port=1", "--frobnicate"], "--frobnicate: unknown option"),
        (["br0", "in_port=1", "--l7"], "Missing argument for option --l7"),
        (["br0", "in_port=1", "--l7-len", "64001", "-generate"], "64001: too much L7 data"),
        (
            ["br0", "in_port=1", "--ct-next", "trk"],
            "--ct-next: not supported: pyvswitch has no connection tracking",
        ),
        (["nosuch", "in_port=1", PING], "nosuch: unknown bridge"),
        (["ovs-dummy", "in_port(42)", PING], "no OpenFlow port for datapath port 42"),
    ],
)
def test_bad_arguments_are_refused_with_ovs_texts(
    rundir: Path, args: list[str], message: str
) -> None:
    assert error(rundir, *args) == message


def test_a_packet_where_the_flow_should_be_says_the_bridge_may_be_missing(rundir: Path) -> None:
    assert error(rundir, "br0", PING).endswith("(or the bridge name was omitted)")


def test_usage_line_is_ovs(rundir: Path) -> None:
    out = tool("appctl", rundir, "list-commands").stdout
    assert (
        "  ofproto/trace           {[dp_name] odp_flow | bridge br_flow} [OPTIONS...] "
        "[-generate|packet]\n"
    ) in out


def fdb(rundir: Path) -> list[str]:
    return [
        line.rsplit(maxsplit=1)[0]
        for line in tool("appctl", rundir, "fdb/show", "br0").stdout.splitlines()[1:]
    ]


def test_only_a_real_packet_teaches_normal(rundir: Path) -> None:
    reply = f"in_port=2,dl_src={DST},dl_dst={SRC}"
    # A flow alone is hypothetical: nothing is learned.
    assert "learned that" not in trace(rundir, "br0", reply).stdout
    assert fdb(rundir) == []
    # A generated packet teaches NORMAL where DST is...
    out = trace(rundir, "br0", reply, "-generate").stdout
    assert f"-> learned that {DST} is on port p2 in VLAN 0" in out
    assert fdb(rundir) == [f"    2     0  {DST}"]
    # ...so a packet in hex towards it goes only there, and teaches SRC.
    out = trace(rundir, "br0", "in_port=1", PING).stdout
    assert f"-> learned that {SRC} is on port p1 in VLAN 0" in out
    assert "-> forwarding to learned port" in out
    assert out.endswith("Datapath actions: 2\n")
    assert sorted(fdb(rundir)) == [f"    1     0  {SRC}", f"    2     0  {DST}"]
    # What is known is not learned again.
    assert "learned that" not in trace(rundir, "br0", "in_port=1", PING).stdout
