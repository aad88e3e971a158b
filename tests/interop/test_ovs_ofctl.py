"""Differential tests: pvs-ofctl against pvs-vswitchd, ovs-ofctl against Open vSwitch 3.1.

Both switches get the same two bridges (dummy datapath, standalone): br0
with p1 (1), p2 (2) and patch0 (10), br1 with p3 (3) and patch1 (11). Then
each test runs the same command lines on both and compares exit status,
standard output and standard error exactly, after masking only what cannot
match: durations and ages (timing), Ethernet addresses and datapath ids
(Open vSwitch makes its own), the program name, and Open vSwitch's log lines
on standard error. Open vSwitch lists flows in its classifier's order and
port statistics in its hash table's, so an unsorted dump is compared as a
set of flows or ports under its header.

Traffic goes only where Open vSwitch counts it exactly: Open vSwitch's patch
ports count a packet that an upcall handled differently from one a cached
flow handled, so no packet crosses the patch pair here (the scenario tests
check our patch counters against what was injected).
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import OvsSandbox, started_sandbox
from tests.scenario.ofctl_helpers import PING, build_topology, port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

APPCTL = (sys.executable, "-m", "pyvswitch.cli.appctl")


class Switches:
    """Open vSwitch and pyvswitch, each with the same bridges, and a way to ask both."""

    def __init__(self, ovs: OvsSandbox, rundir: Path, files: Path) -> None:
        self.ovs = ovs
        self.rundir = rundir
        self.files = files

    def ovs_ofctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ovs-ofctl", *args],
            env=self.ovs.env,
            cwd=self.ovs.dir,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            input=stdin,
        )

    def pvs_ofctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyvswitch.cli.ofctl", *args],
            env={"PVS_RUNDIR": str(self.rundir), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            input=stdin,
        )

    def compare(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        """Run ``args`` on both; they must agree. Returns (status, output, errors), normalised."""
        theirs = normalise(self.ovs_ofctl(*args, stdin=stdin), "ovs-ofctl", args)
        ours = normalise(self.pvs_ofctl(*args, stdin=stdin), "pvs-ofctl", args)
        assert ours == theirs, f"{args}\nours: {ours}\ntheirs: {theirs}"
        return ours

    def inject(self, port_name: str, frame: bytes, count: int = 1) -> None:
        for _ in range(count):
            self.ovs.appctl("netdev-dummy/receive", port_name, frame.hex())
            subprocess.run(
                [*APPCTL, "netdev-dummy/receive", port_name, frame.hex()],
                env={"PVS_RUNDIR": str(self.rundir)},
                check=True,
                capture_output=True,
                timeout=30,
            )
        # Open vSwitch moves datapath counters to its rules in revalidation.
        self.ovs.appctl("revalidator/wait")

    def reset(self) -> None:
        """Both bridges back to the one NORMAL flow each (as added over OpenFlow 1.3: no flags)."""
        for bridge in ("br0", "br1"):
            for ofctl in (self.ovs_ofctl, self.pvs_ofctl):
                assert ofctl("del-flows", bridge).returncode == 0
                added = ofctl("-O", "OpenFlow13", "add-flow", bridge, "priority=0,actions=NORMAL")
                assert added.returncode == 0, added.stderr

    def vsctl(self, *args: str) -> None:
        self.ovs.vsctl(*args)
        subprocess.run(
            [sys.executable, "-m", "pyvswitch.cli.vsctl", "--timeout=20", *args],
            env={"PVS_RUNDIR": str(self.rundir)},
            check=True,
            capture_output=True,
            timeout=30,
        )


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\|")
_MASKS = [
    (re.compile(r"duration=\d+(\.\d+)?s"), "duration=?s"),
    (re.compile(r"idle_age=\d+"), "idle_age=?"),
    # Whether the hard age shows depends on whole seconds between adding and
    # modifying a flow, which timing decides: it is left out on both sides
    # (tests/unit/test_flow_dump.py checks it against recorded output).
    (re.compile(r" hard_age=\d+,"), ""),
    (re.compile(r"addr:[0-9a-f]{2}(:[0-9a-f]{2}){5}"), "addr:?"),
    (re.compile(r"dpid:[0-9a-f]{16}"), "dpid:?"),
]


def normalise(
    result: subprocess.CompletedProcess[str], program: str, args: tuple[str, ...]
) -> tuple[int, str, str]:
    stdout = result.stdout
    for pattern, replacement in _MASKS:
        stdout = pattern.sub(replacement, stdout)
    lines = stdout.splitlines()
    if "dump-flows" in args and not any(a.startswith(("--sort", "--rsort")) for a in args):
        head = [line for line in lines if not line.startswith(" ")]
        lines = head + sorted(line for line in lines if line.startswith(" "))
    if "dump-ports" in args:
        # Open vSwitch lists ports in the order of its hash table.
        head, *blocks = "\n".join(lines).split("\n  port ")
        lines = [head, *sorted(blocks)]
    stderr = [
        line.replace(f"{program}: ", "ofctl: ", 1)
        for line in result.stderr.splitlines()
        if not _LOG_LINE.match(line)
    ]
    return result.returncode, "\n".join(lines), "\n".join(stderr)


@pytest.fixture(scope="module")
def switches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switches]:
    with started_sandbox() as sandbox:
        sandbox.vsctl(
            *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
            *("--", "add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"),
            *port("br0", "p1", 1),
            *port("br0", "p2", 2),
            *port("br1", "p3", 3),
            *port("br0", "patch0", 10, "type=patch", "options:peer=patch1"),
            *port("br1", "patch1", 11, "type=patch", "options:peer=patch0"),
        )
        with running_daemon(tmp_path_factory.mktemp("pvs")) as rundir:
            build_topology(rundir)
            yield Switches(sandbox, rundir, tmp_path_factory.mktemp("files"))


DUMPS = [
    ("dump-flows", "br0"),
    ("--no-stats", "dump-flows", "br0"),
    ("--names", "dump-flows", "br0"),
    ("--no-names", "dump-flows", "br0", "ip"),
    ("dump-flows", "br0", "ip"),
    ("dump-flows", "br0", "table=1"),
    ("-O", "OpenFlow13", "dump-flows", "br0"),
    ("-O", "OpenFlow10,OpenFlow13", "dump-flows", "br0", "in_port=p1"),
    ("-O", "OpenFlow15", "--names", "dump-flows", "br0"),
    ("--sort", "dump-flows", "br0"),
    ("--rsort", "--no-stats", "dump-flows", "br0"),
    ("--sort=priority", "--no-stats", "dump-flows", "br0"),
    ("--rsort=PRIORITY", "--no-stats", "dump-flows", "br0"),
    ("--sort=nw_src", "--rsort=priority", "--no-stats", "dump-flows", "br0"),
]


def test_the_default_flow_of_a_standalone_bridge(switches: Switches) -> None:
    for dump in DUMPS:
        switches.compare(*dump)
    assert switches.compare("--no-stats", "dump-flows", "br1")[1] == " priority=0 actions=NORMAL"


def test_adding_modifying_and_deleting_flows(switches: Switches) -> None:
    switches.reset()
    for command in [
        ("add-flow", "br0", "in_port=p1,actions=output:p2"),
        (
            "add-flow",
            "br0",
            "priority=10,ip,nw_dst=192.0.2.1,actions=mod_nw_src:198.51.100.1,strip_vlan,output:2",
        ),
        (
            "add-flow",
            "br0",
            "table=1,cookie=0x5,idle_timeout=30,hard_timeout=60,priority=5,tcp,tp_dst=80,actions=drop",
        ),
        ("add-flow", "br0", "priority=20,ip,nw_src=192.0.2.1,actions=output:2"),
        ("add-flow", "br0", "priority=11,ip,nw_src=192.0.2.1,actions=output:1"),
        ("--strict", "del-flows", "br0", "ip"),
        ("--strict", "del-flows", "br0", "priority=11,ip,nw_src=192.0.2.1"),
        ("mod-flows", "br0", "ip,nw_src=192.0.2.1,actions=output:LOCAL"),
        ("mod-flows", "br0", "priority=33,cookie=0x9,udp,actions=output:p1"),
        ("--strict", "mod-flows", "br0", "priority=20,ip,nw_src=192.0.2.1,actions=drop"),
        ("--strict", "mod-flows", "br0", "priority=21,ip,nw_src=192.0.2.1,actions=drop"),
        ("-O", "OpenFlow13", "add-flow", "br0", "priority=40,send_flow_rem,arp,actions=drop"),
        ("del-flows", "br0", "cookie=0x5/-1"),
        ("del-flows", "br0", "out_port=2"),
        ("--strict", "del-flows", "br0", "priority=40,arp"),
    ]:
        assert switches.compare(*command) == (0, "", "")
        for dump in DUMPS:
            switches.compare(*dump)


def test_counters_follow_traffic_and_survive_modify(switches: Switches) -> None:
    switches.reset()
    switches.compare("add-flow", "br0", "priority=100,in_port=p1,actions=output:p2")
    switches.inject("p1", PING, 3)
    switches.compare("dump-flows", "br0")
    switches.compare("mod-flows", "br0", "in_port=p1,actions=drop")
    switches.inject("p1", PING)
    switches.compare("dump-flows", "br0")
    switches.compare("dump-flows", "br0", "in_port=p1")
    for dump in [
        ("dump-ports", "br0"),
        ("dump-ports", "br0", "p1"),
        ("dump-ports", "br0", "2"),
        ("dump-ports", "br0", "LOCAL"),
        ("dump-ports", "br0", "99"),
        ("--names", "dump-ports", "br0"),
        ("dump-ports", "br1", "p3"),
    ]:
        switches.compare(*dump)


def test_files_of_flows(switches: Switches) -> None:
    switches.reset()
    flows = switches.files / "flows.txt"
    flows.write_text(
        "# comment\n\npriority=5,ip,actions=drop  # why\n  add priority=6,arp,actions=drop\n"
        "delete ip\nmodify priority=8,udp,actions=output:1\n"
    )
    switches.compare("add-flows", "br0", str(flows))
    switches.compare("dump-flows", "br0")
    switches.compare("-O", "OpenFlow13", "dump-flows", "br0")
    switches.compare("add-flows", "br0", "-", stdin="priority=9,icmp,actions=drop\n")
    switches.compare("--no-stats", "dump-flows", "br0")
    switches.compare("add-flow", "br0", "priority=100,in_port=p1,actions=output:p2")
    switches.inject("p1", PING, 2)
    flows.write_text("priority=100,in_port=p1,actions=output:p2\npriority=5,ip,actions=drop\n")
    switches.compare("replace-flows", "br0", str(flows))
    switches.compare("dump-flows", "br0")
    flows.write_text("priority=5,ip,actions=drop\npriority=5,ip,actions=output:1\n")
    switches.compare("replace-flows", "br0", str(flows))
    switches.compare("dump-flows", "br0")
    flows.write_text("\n")
    switches.compare("replace-flows", "br0", str(flows))
    switches.compare("dump-flows", "br0")


def test_errors(switches: Switches) -> None:
    switches.reset()
    bad = switches.files / "bad.txt"
    bad.write_text("priority=5,ip,actions=drop\nactions=bogus\n")
    for command in [
        ("add-flow", "br0", "foo=1,actions=drop"),
        ("add-flow", "br0", "foo,actions=drop"),
        ("add-flow", "br0", "actions=bogus"),
        ("add-flow", "br0", "ip"),
        ("add-flow", "br0", "in_port=nope,actions=drop"),
        ("add-flow", "br0", "actions=output:nope"),
        ("add-flow", "br0", "table=300,actions=drop"),
        ("add-flow", "br0", "priority=70000,actions=drop"),
        ("add-flow", "br0", "cookie=1/1,actions=drop"),
        ("add-flow", "br0", "out_port=1,actions=drop"),
        ("mod-flows", "br0", "ip"),
        ("del-flows", "br0", "priority=10,ip"),
        ("del-flows", "br0", "cookie=5"),
        ("dump-flows", "br0", "actions=drop"),
        ("dump-flows", "br0", "out_port=nope"),
        ("dump-flows", "br9"),
        ("add-flow", "br9", "foo=1,actions=drop"),
        ("del-flows", "br9"),
        ("show", "br9"),
        ("dump-ports", "br9"),
        ("add-flows", "br9", str(bad)),
        ("add-flows", "br0", str(bad)),
        ("replace-flows", "br0", str(bad)),
        ("add-flows", "br0", str(switches.files / "missing.txt")),
        ("dump-ports", "br0", "nope"),
        ("--no-names", "dump-ports", "br0", "p1"),
        ("add-flow", "br0"),
        ("add-flow", "br0", "a", "b"),
        ("dump-flows",),
        ("foo",),
        (),
        ("--foo", "dump-flows", "br0"),
        ("-O", "OpenFlow16", "dump-flows", "br0"),
        ("--timeout=0", "dump-flows", "br0"),
        ("--sort=foo", "dump-flows", "br0"),
        ("dump-flows", "br0", "--", "--no-stats"),
    ]:
        status, output, errors = switches.compare(*command)
        assert (status, output) == (1, ""), command
        assert errors.startswith("ofctl: "), command
    switches.compare("dump-flows", "br0")


def test_show(switches: Switches) -> None:
    for version in ("OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow15"):
        switches.compare("-O", version, "show", "br0")
    switches.compare("show", "br1")


def test_fail_mode_changes_and_the_normal_flow(switches: Switches) -> None:
    switches.reset()
    switches.vsctl("set", "bridge", "br1", "fail_mode=secure")
    assert switches.compare("dump-flows", "br1")[1] == "NXST_FLOW reply (xid=0x4):"
    switches.vsctl("set", "bridge", "br1", "fail_mode=standalone")
    switches.compare("dump-flows", "br1")
    assert switches.compare("--no-stats", "dump-flows", "br1")[1] == " priority=0 actions=NORMAL"
