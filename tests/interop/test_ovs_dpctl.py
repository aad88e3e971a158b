"""Differential tests: the datapath commands of pvs-vswitchd against ovs-vswitchd 3.1.

Both switches get the same rules (explicit outputs only: Open vSwitch floods
in hash order, pyvswitch in port order) and the same frames, built with
scapy: TCP, UDP over IPv6, ICMP, an ARP broadcast, an 802.3 frame, an IPv6
neighbour solicitation and a later IPv4 fragment. Then the real ovs-appctl
asks both the same ``dpctl/dump-flows`` (with ``-m``, ``--names``,
``filter=``, ``type=``, ``pmd=``, a datapath name, and the errors of each),
``dpif/dump-flows``, ``dpctl/show``, ``dpctl/dump-dps`` and
``ofproto/list``, and the replies must be the same once the daemon's name,
flow ids (ufids: OVS hashes with a random basis), ages and traffic counters
are masked. ``exit --cleanup`` is compared on a pair of its own.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, LLC, Ether
from scapy.packet import Raw

from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import started_sandbox
from tests.interop.switch_pair import appctl, ask_both, switch_pair

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.interop.test_ovs_ofctl import Switches

pytestmark = pytest.mark.ovs

A, B = "50:54:00:00:00:05", "50:54:00:00:00:07"
FRAMES = [
    Ether(src=A, dst=B) / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=1234, dport=80),
    Ether(src=A, dst=B) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5, dport=53),
    Ether(src=A, dst=B) / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(),
    Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="192.0.2.1", pdst="192.0.2.2"),
    Ether(src=A, dst=B) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"x" * 40),
    Ether(src=A, dst="33:33:ff:00:00:02")
    / IPv6(src="2001:db8::1", dst="ff02::1:ff00:2")
    / ICMPv6ND_NS(tgt="2001:db8::2")
    / ICMPv6NDOptSrcLLAddr(lladdr=A),
    Ether(src=A, dst=B) / IP(src="192.0.2.1", dst="192.0.2.2", frag=10, proto=17) / Raw(b"y" * 20),
]
RULES = {
    "br0": [
        "priority=10,tcp,tp_dst=80,actions=output:2",
        "priority=10,udp,nw_dst=192.0.2.0/24,actions=mod_nw_dst:192.0.2.9,output:2",
        "priority=0,actions=output:p2",
    ],
    "br1": ["actions=output:p3"],
}
#: Flow ids cannot match (see the module docstring); the traffic counters
#: and TCP flags of a megaflow are the datapath's own business, compared
#: elsewhere (OVS also ORs the option type of neighbour discovery packets
#: into the flags).
MASKS = [
    (re.compile(r"ufid:[0-9a-f-]+"), "ufid:?"),
    (re.compile(r"packets:\d+, bytes:\d+"), "packets:?, bytes:?"),
    (re.compile(r", flags:[SFPRU.]+"), ""),
]
#: Lookup counters and port statistics also count what happened before.
SHOW_MASKS = [
    (re.compile(r"hit:\d+ missed:\d+ lost:\d+"), "hit:? missed:? lost:?"),
]


@pytest.fixture(scope="module")
def switches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switches]:
    with switch_pair(tmp_path_factory) as pair:
        for bridge, rules in RULES.items():
            for ofctl in (pair.ovs_ofctl, pair.pvs_ofctl):
                assert ofctl("del-flows", bridge).returncode == 0
                for rule in rules:
                    assert ofctl("add-flow", bridge, rule).returncode == 0
        for frame in FRAMES:
            pair.inject("p1", bytes(frame))
        pair.inject("p3", bytes(FRAMES[2]))
        yield pair


DUMPS = [
    [],
    ["-m"],
    ["--more"],
    ["-mm"],
    ["--names"],
    ["-m", "--no-names"],
    ["--no-names", "--names"],
    ["dummy@ovs-dummy"],
    ["-m", "dummy@ovs-dummy"],
    ["filter=in_port=1"],
    ["filter=in_port=p3"],
    ["filter=arp"],
    ["filter=udp"],
    ["filter=ip,nw_dst=192.0.2.2"],
    ["filter=tcp,tp_dst=80"],
    ["filter=in_port=9"],
    ["-m", "dummy@ovs-dummy", "filter=tcp"],
    ["filter=arp", "dummy@ovs-dummy"],
    ["a", "b"],
    ["type=ovs"],
    ["type=all"],
    ["type=offloaded"],
    ["type=tc,dpdk"],
    ["type="],
    ["pmd=-1"],
    ["pmd=0"],
    ["-m", "filter=in_port=1", "type=ovs", "pmd=-1"],
    ["dummy@ovs-dummy", "filter=arp", "type=ovs", "pmd=-1"],
]
ERRORS = [
    ["ovs-dummy"],
    ["dummy@nope"],
    ["filter=in_port=1", "filter=arp"],
    ["--foo"],
    ["-x"],
    ["-m", "-q"],
    ["--", "filter=arp"],
    ["pmd=x"],
    ["type=foo"],
    ["type=ovs,foo"],
    ["a", "b", "c", "d", "e", "f", "g"],
]


@pytest.mark.parametrize("args", DUMPS)
def test_dpctl_dump_flows(switches: Switches, args: list[str]) -> None:
    status, _, _ = ask_both(switches, "dpctl/dump-flows", *args, masks=MASKS)
    assert status == 0


def test_the_flows_follow_the_main_thread_line(switches: Switches) -> None:
    # The flows come after one line naming the thread that holds them (OVS's
    # userspace datapath without PMD threads: the main thread).
    for who in ("ovs", "pvs"):
        lines = appctl(switches, who, "dpctl/dump-flows").stdout.splitlines()
        assert lines[0] == "flow-dump from the main thread:", who
        # Seven megaflows: the UDP and ND frames share one (IPv6, not looked into).
        assert len(lines) == 8, who
        assert not any(line.startswith("flow-dump") for line in lines[1:]), who


@pytest.mark.parametrize("args", ERRORS)
def test_dpctl_dump_flows_errors(switches: Switches, args: list[str]) -> None:
    status, output, _ = ask_both(switches, "dpctl/dump-flows", *args)
    assert (status, output) == (2, "")


def test_a_filter_ovs_cannot_read_is_refused_by_both(switches: Switches) -> None:
    # The reasons are worded by each one's flow parser.
    for who in ("ovs", "pvs"):
        done = appctl(switches, who, "dpctl/dump-flows", "filter=bogus=1")
        assert done.returncode == 2
        assert done.stderr.startswith(f"{who}-vswitchd: Failed to parse filter (")


@pytest.mark.parametrize(
    "args",
    [
        ["dpif/dump-flows", "br0"],
        ["dpif/dump-flows", "br1"],
        ["dpif/dump-flows", "-m", "br0"],
        ["dpif/dump-flows", "--names", "br0"],
        ["dpif/dump-flows", "-m", "--no-names", "br0"],
        ["dpif/dump-flows", "nobr"],
        ["dpctl/dump-dps"],
        ["dpctl/dump-dps", "x"],
        ["ofproto/list"],
        ["ofproto/list", "x"],
    ],
)
def test_dpif_dump_flows_dump_dps_and_ofproto_list(switches: Switches, args: list[str]) -> None:
    ask_both(switches, *args, masks=MASKS)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-s"],
        ["--statistics"],
        ["dummy@ovs-dummy"],
        ["-s", "dummy@ovs-dummy"],
        ["nope"],
        ["dummy@nope"],
        ["netdev@ovs-netdev"],
        ["dummy@ovs-dummy", "dummy@nope"],
        ["-x"],
    ],
)
def test_dpctl_show(switches: Switches, args: list[str]) -> None:
    ask_both(switches, "dpctl/show", *args, masks=SHOW_MASKS, ordered=True)


def _wait_gone(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while path.exists():
        assert time.monotonic() < deadline, f"{path} is still there"
        time.sleep(0.05)


def test_exit_with_cleanup(tmp_path: Path) -> None:
    with started_sandbox() as sandbox, running_daemon(tmp_path) as rundir:
        socket = str(rundir / "pvs-vswitchd.ctl")
        for target in ([], ["-t", socket]):
            # Too many arguments are refused; one unknown argument is
            # ignored, as --cleanup changes nothing that outlives us.
            done = subprocess.run(
                ["ovs-appctl", "--timeout=20", *target, "exit", "--cleanup", "x"],
                env=sandbox.env,
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            assert done.returncode == 2
            assert done.stderr.startswith('"exit" command takes at most 1 arguments')
            done = subprocess.run(
                ["ovs-appctl", "--timeout=20", *target, "exit", "--cleanup"],
                env=sandbox.env,
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        _wait_gone(rundir / "pvs-vswitchd.ctl")
        _wait_gone(sandbox.dir / "ovs-vswitchd.pid")
