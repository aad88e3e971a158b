"""Differential: port mirrors (the Mirror table) in Open vSwitch 3.1 and pvs-vswitchd.

A private Open vSwitch and a pvs-vswitchd get the same configuration from the
same client, the real ``ovs-vsctl`` (bridges, ports with VLAN modes, Mirror
rows made with ``--id=@name`` references, as users write them); flows go in
with ``ovs-ofctl`` and ``pvs-ofctl``. Then ``ofproto/trace`` (through the real
``ovs-appctl``) is compared line for line, the ``Datapath actions:`` as the
set of (tags, port) each output sends (flooding order is Open vSwitch's hash
order; see test_ovs_trace._sorted_actions). Both daemons' log messages about
mirrors they ignore or trim, and the ``statistics`` they write back for the
same frames, are compared too.

Mirrors that select patch ports are where pyvswitch deliberately differs
(docs/cli.md): Open vSwitch copies nothing there, pyvswitch copies what
crosses. That test checks exactly the difference.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import OvsSandbox, started_sandbox
from tests.interop.test_ovs_trace import _sorted_actions
from tests.scenario.ofctl_helpers import ok

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

ETH = "eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07)"
IP4 = "ipv4(src=192.0.2.1,dst=192.0.2.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)"
MACS = "dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07"


def _packet(port: int, vid: int | None = None) -> str:
    """A datapath flow (the dummy datapath numbers ports as OpenFlow does here)."""
    if vid is None:
        return f"in_port({port}),{ETH},eth_type(0x0800),{IP4}"
    return (
        f"in_port({port}),{ETH},eth_type(0x8100),vlan(vid={vid},pcp=3),"
        f"encap(eth_type(0x0800),{IP4})"
    )


#: The packets traced in every scenario: untagged and tagged on access and
#: trunk ports, and into the mirrors' usual output port.
TRACES = {
    "untagged-on-access": _packet(1),
    "tagged-on-access": _packet(1, vid=10),
    "tagged-on-trunk": _packet(2, vid=20),
    "untagged-on-t4": _packet(4),
    "untagged-on-a5": _packet(5),
    "untagged-on-t6": _packet(6),
}
#: br1's ports: name, OpenFlow number (also the dummy datapath's), Port settings.
PORTS = (
    ("a1", 1, ("tag=10",)),
    ("t2", 2, ("trunks=10,20",)),
    ("a3", 3, ("tag=20",)),
    ("t4", 4, ()),
    ("a5", 5, ("tag=10",)),
    ("t6", 6, ()),
)
_SEQ = itertools.count()


@dataclass
class Mirror:
    """A Mirror row: ``name`` plus columns; port columns name ports."""

    name: str
    select_src_port: tuple[str, ...] = ()
    select_dst_port: tuple[str, ...] = ()
    output_port: str | None = None
    others: tuple[str, ...] = ()  # select_all=true, select_vlan=20, output_vlan=10...


@dataclass
class Scenario:
    mirrors: list[Mirror]
    flows: list[str] = field(default_factory=list)
    fail_mode: str = "standalone"
    #: Traces whose Megaflow: line deliberately differs (see the scenario).
    megaflow_differs: tuple[str, ...] = ()


SCENARIOS = {
    "src-to-trunk": Scenario([Mirror("m0", ("a1",), output_port="t4")]),
    "src-to-access": Scenario([Mirror("m0", ("a1",), output_port="a5")]),
    "dst-to-access": Scenario([Mirror("m0", select_dst_port=("t2",), output_port="a5")]),
    "select-all": Scenario([Mirror("m0", output_port="t4", others=("select_all=true",))]),
    "select-vlan": Scenario(
        [Mirror("m0", output_port="t4", others=("select_all=true", "select_vlan=20"))]
    ),
    "output-vlan": Scenario([Mirror("m0", ("a1",), others=("output_vlan=20",))]),
    # The copy floods in VLAN 10, back out of the trunk it came in by too.
    "output-vlan-from-trunk": Scenario([Mirror("m0", ("t2",), others=("output_vlan=10",))]),
    "one-copy-per-destination": Scenario(
        [
            Mirror("m0", ("a1",), output_port="t4"),
            Mirror("m1", select_dst_port=("a5",), output_port="t4"),
        ]
    ),
    "two-destinations": Scenario(
        [
            Mirror("m0", ("a1",), output_port="t4"),
            Mirror("m1", select_dst_port=("a5",), output_port="t6"),
        ]
    ),
    # The output port is also an output of rules: they still send to it (the
    # copy is extra), FLOOD includes it, NORMAL does not; what it receives goes
    # nowhere. A packet the rules changed is copied as it leaves.
    "output-port-in-rules": Scenario(
        [Mirror("m0", ("a1", "t4"), select_dst_port=("t4", "t6"), output_port="t4")],
        [
            "priority=10,in_port=6,actions=output:4,output:3",
            "priority=10,in_port=5,actions=FLOOD",
            "priority=10,in_port=2,actions=mod_dl_src:50:54:00:00:00:99,output:1,resubmit(,1)",
            "table=1,priority=10,actions=mod_vlan_vid:7,output:6",
        ],
    ),
    # No rule matches, yet the input is copied. A tagged packet on an access
    # port is not (the port would not take it): that depends on its VLAN ID,
    # which our megaflow matches and Open vSwitch's does not (a priority-tagged
    # packet, VLAN ID 0, must be copied).
    "secure-no-match": Scenario(
        [Mirror("m0", ("a1",), output_port="t4")],
        fail_mode="secure",
        megaflow_differs=("tagged-on-access",),
    ),
    "both-outputs": Scenario(
        [Mirror("m0", ("a1",), output_port="t4", others=("output_vlan=20",))]
    ),
    "no-output": Scenario([Mirror("m0", ("a1",))]),
    # A snaplen cuts the copy (a trunc before its output), not the original.
    "snaplen-to-port": Scenario(
        [Mirror("m0", ("a1",), output_port="t4", others=("snaplen=100",))]
    ),
    # Flooded in the output VLAN: a trunc before each of the copy's outputs.
    "snaplen-output-vlan": Scenario(
        [Mirror("m0", ("a1",), others=("output_vlan=20", "snaplen=64"))]
    ),
}


class Pair:
    """A private Open vSwitch and a pvs-vswitchd, driven by the same clients."""

    def __init__(self, ovs: OvsSandbox, rundir: Path, log: Path) -> None:
        self.ovs = ovs
        self.rundir = rundir
        self.log = log

    def vsctl(self, *args: str) -> None:
        """The same ovs-vsctl command line against both databases."""
        self.ovs.vsctl(*args)
        _run("ovs-vsctl", "--timeout=20", f"--db=unix:{self.rundir / 'db.sock'}", *args)

    def add_flow(self, bridge: str, flow: str) -> None:
        self.ovs.ofctl("add-flow", bridge, flow)
        ok("ofctl", self.rundir, "add-flow", bridge, flow)

    def appctl(self, *args: str) -> tuple[str, str]:
        """(Open vSwitch's answer, ours) to one ovs-appctl command."""
        theirs = self.ovs.appctl(*args).stdout
        ctl = str(self.rundir / "pvs-vswitchd.ctl")
        return theirs, _run("ovs-appctl", "--timeout=20", "-t", ctl, *args)

    def mirror_messages(self) -> tuple[list[str], list[str]]:
        """The level and text of each log line about a mirror, theirs and ours.

        Both log them each time they apply a change to the database, mirror by
        mirror in the order of their rows' UUIDs, which differ between the two
        databases: compare them sorted.
        """
        pattern = re.compile(r"\|(ERR|WARN)\|(bridge \S+: mirror .*)")
        logs = ((self.ovs.dir / "ovs-vswitchd.log").read_text(), self.log.read_text())
        return (
            [" ".join(m.groups()) for m in pattern.finditer(logs[0])],
            [" ".join(m.groups()) for m in pattern.finditer(logs[1])],
        )


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with started_sandbox() as ovs:
        # pyvswitch reads two VLAN tags, as the datapath does; OVS's bridges
        # look at one unless told otherwise.
        ovs.vsctl("set", "Open_vSwitch", ".", "other_config:vlan-limit=2")
        rundir = tmp_path_factory.mktemp("pvs")
        log = rundir / "pvs-vswitchd.log"
        with running_daemon(rundir, [f"--log-file={log}"]):
            yield Pair(ovs, rundir, log)


def _port_args(bridge: str, name: str, ofport: int, settings: tuple[str, ...]) -> list[str]:
    return [
        *("--", "add-port", bridge, name, *settings),
        *("--", "set", "Interface", name, "type=dummy", f"ofport_request={ofport}"),
    ]


def _mirror_args(bridge: str, mirror: Mirror) -> list[str]:
    """``-- --id=@x get Port P ... -- --id=@m create Mirror ... -- add Bridge B mirrors @m``."""
    n = next(_SEQ)
    args: list[str] = []
    columns = [f"name={mirror.name}", *mirror.others]
    for column in ("select_src_port", "select_dst_port", "output_port"):
        value = getattr(mirror, column)
        names = (value,) if isinstance(value, str) else value or ()
        refs = []
        for port in names:
            ref = f"@{column}{port}{n}"
            args += ["--", f"--id={ref}", "get", "Port", port]
            refs.append(ref)
        if refs:
            text = refs[0] if column == "output_port" else "[" + ",".join(refs) + "]"
            columns.append(f"{column}={text}")
    return [
        *args,
        *("--", f"--id=@m{n}", "create", "Mirror", *columns),
        *("--", "add", "Bridge", bridge, "mirrors", f"@m{n}"),
    ]


@pytest.fixture
def bridge(pair: Pair) -> Iterator[str]:
    """br1 with PORTS in both switches, removed (with its mirrors) afterwards."""
    args = ["add-br", "br1", "--", "set", "Bridge", "br1", "datapath_type=dummy"]
    for name, ofport, settings in PORTS:
        args += _port_args("br1", name, ofport, settings)
    pair.vsctl(*args)
    try:
        yield "br1"
    finally:
        pair.vsctl("--if-exists", "del-br", "br1", "--", "--if-exists", "del-br", "br2")


SETS = "Datapath actions (as sets): "


def _normalized(trace: str, packet: str) -> list[str]:
    """A trace with its ``Datapath actions:`` as sets (test_ovs_trace._sorted_actions).

    An output "as received" of a tagged packet is the same as one after
    popping the tag and pushing it again, which Open vSwitch does where it
    has popped for an earlier port: both are written as the push.
    """
    tag = re.search(r"vlan\(vid=(\d+),pcp=(\d+)\)", packet)
    lines = []
    for line in trace.strip().splitlines():
        normal = _sorted_actions(line)
        if tag is not None and normal.startswith(SETS):
            push = f"push_vlan(vid={tag[1]},pcp={tag[2]})"
            outputs = normal[len(SETS) :].replace("as-received", push).split()
            normal = SETS + " ".join(sorted(outputs))
        lines.append(normal)
    return lines


def _compare(packet: str, pair: Pair, *, megaflow: bool = True) -> None:
    theirs, ours = (
        _normalized(t, packet) for t in pair.appctl("ofproto/trace", "ovs-dummy", packet)
    )
    if not megaflow:
        theirs, ours = ([x for x in t if not x.startswith("Megaflow:")] for t in (theirs, ours))
    assert ours == theirs, "\n".join(["OURS:", *ours, "THEIRS:", *theirs])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_trace_with_mirrors_matches_ovs(pair: Pair, bridge: str, name: str) -> None:
    sc = SCENARIOS[name]
    before = pair.mirror_messages()
    pair.vsctl("set-fail-mode", bridge, sc.fail_mode)
    for mirror in sc.mirrors:
        pair.vsctl(*_mirror_args(bridge, mirror))
    for flow in sc.flows:
        pair.add_flow(bridge, flow)
    for trace, packet in TRACES.items():
        _compare(packet, pair, megaflow=trace not in sc.megaflow_differs)
    theirs, ours = pair.mirror_messages()
    assert sorted(ours[len(before[1]) :]) == sorted(theirs[len(before[0]) :])


def test_mirror_output_to_a_patch_port_matches_ovs(pair: Pair, bridge: str) -> None:
    """The copy crosses into the peer bridge, nested in the trace as in OVS."""
    pair.vsctl(
        *("add-br", "br2", "--", "set", "Bridge", "br2", "datapath_type=dummy"),
        *_port_args("br2", "q7", 7, ()),
        *("--", "add-port", bridge, "pa", "--", "set", "Interface", "pa", "type=patch"),
        *("options:peer=pb", "ofport_request=10"),
        *("--", "add-port", "br2", "pb", "--", "set", "Interface", "pb", "type=patch"),
        *("options:peer=pa", "ofport_request=20"),
    )
    pair.vsctl(*_mirror_args(bridge, Mirror("m0", ("a1",), output_port="pa")))
    for packet in TRACES.values():
        _compare(packet, pair)


def test_nonexistent_ports_are_logged_as_ovs_logs_them(pair: Pair, bridge: str) -> None:
    pair.vsctl(
        *("add-br", "br2", "--", "set", "Bridge", "br2", "datapath_type=dummy"),
        *_port_args("br2", "q7", 7, ()),
        *_port_args("br2", "q8", 8, ()),
    )
    before = pair.mirror_messages()
    # A selected port of another bridge is left out; an output port of
    # another bridge makes the whole mirror ignored.
    pair.vsctl(*_mirror_args(bridge, Mirror("m0", ("a1", "q7"), output_port="t4")))
    pair.vsctl(*_mirror_args(bridge, Mirror("m1", ("a1",), output_port="q8")))
    theirs, ours = pair.mirror_messages()
    assert sorted(ours[len(before[1]) :]) == sorted(theirs[len(before[0]) :])
    assert len(theirs) - len(before[0]) >= 2
    _compare(TRACES["untagged-on-access"], pair)


def _outputs(trace: str) -> set[str]:
    line = next(x for x in trace.splitlines() if x.startswith("Datapath actions"))
    sets = _sorted_actions(line)
    assert sets.startswith(SETS), line
    return set(sets[len(SETS) :].split())


def test_patch_port_mirrors_copy_where_ovs_does_not(pair: Pair, bridge: str) -> None:
    """The documented difference: everything OVS sends, plus the copies at the crossing."""
    pair.vsctl(
        *("add-br", "br2", "--", "set", "Bridge", "br2", "datapath_type=dummy"),
        *_port_args("br2", "q7", 7, ()),
        *_port_args("br2", "q8", 8, ()),
        *("--", "add-port", bridge, "pa", "--", "set", "Interface", "pa", "type=patch"),
        *("options:peer=pb", "ofport_request=10"),
        *("--", "add-port", "br2", "pb", "--", "set", "Interface", "pb", "type=patch"),
        *("options:peer=pa", "ofport_request=20"),
    )
    pair.vsctl(*_mirror_args(bridge, Mirror("m0", ("pa",), ("pa",), output_port="t4")))
    pair.vsctl(*_mirror_args("br2", Mirror("m1", ("pb",), ("pb",), output_port="q8")))
    # br1 -> br2: out of pa (m0 copies to t4), into br2 by pb (m1 copies to
    # q8). br2 -> br1: out of pb (m1), into br1 by pa (m0). Untagged in
    # br1's trunk VLAN 0, so every copy leaves as it came.
    for flow in (f"in_port=6,icmp,{MACS}", f"in_port=7,icmp,{MACS}"):
        start = "br1" if flow.startswith("in_port=6") else "br2"
        theirs, ours = (_outputs(t) for t in pair.appctl("ofproto/trace", start, flow))
        assert ours - theirs == {"as-received->4", "as-received->8"}
        assert theirs <= ours


def _mirror_statistics(read: str) -> dict[str, str]:
    stats: dict[str, str] = {}
    for record in read.strip().split("\n\n"):
        fields = dict(line.split(" : ", 1) for line in record.splitlines())
        fields = {k.strip(): v for k, v in fields.items()}
        stats[fields["name"]] = fields["statistics"]
    return stats


def test_statistics_match_ovs(pair: Pair, bridge: str) -> None:
    """Only the mirror that sends a copy counts it; one pre-empted by a twin counts nothing."""
    for mirror in (
        Mirror("m0", ("a1",), output_port="t4"),
        Mirror("m1", ("a1",), output_port="t4"),
        Mirror("m2", select_dst_port=("a5",), output_port="t4"),
        Mirror("m3", select_dst_port=("a5",), output_port="t6"),
        Mirror("m4", ("a1",), output_port="t6", others=("select_vlan=20",)),
    ):
        pair.vsctl(*_mirror_args(bridge, mirror))
    frame = bytes(
        Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
        / IP(src="192.0.2.1", dst="192.0.2.2")
        / ICMP()
        / (b"x" * 30)
    )
    pair.appctl("time/stop")
    for _ in range(3):
        pair.appctl("netdev-dummy/receive", "a1", frame.hex())
    pair.appctl("time/warp", "5000")
    columns = ("--columns=name,statistics", "list", "Mirror")
    deadline = time.monotonic() + 20
    # Open vSwitch commits its statistics after the warp's reply: wait for them.
    while "tx_packets=3" not in (theirs := pair.ovs.vsctl(*columns)):
        assert time.monotonic() < deadline, "ovs-vswitchd wrote no mirror statistics"
        time.sleep(0.1)
    ours = _run("ovs-vsctl", "--timeout=20", f"--db=unix:{pair.rundir / 'db.sock'}", *columns)
    assert _mirror_statistics(ours) == _mirror_statistics(theirs)
    assert _mirror_statistics(ours)["m0"] == f"{{tx_bytes={3 * len(frame)}, tx_packets=3}}"
