"""Differential: ``ofproto/trace`` with a packet in hex and with ``-generate``.

The same argument words go to Open vSwitch's ``ofproto/trace`` (through
ovs-appctl) and to pyvswitch's (the daemon's command, on the same
configuration as tests/interop/test_ovs_trace.py builds it); the outputs are
compared as that file compares them. Packets are built with scapy. A real
packet's trace learns MACs, so after each scenario the MAC tables of both
are compared too, and no rule counter has moved. A last part runs against
the real pvs-vswitchd: the command's usage line and its errors.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import UDP, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from pyvswitch.vswitchd.commands import fdb_show
from pyvswitch.vswitchd.oftrace import trace
from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import require_ovs
from tests.interop.test_ovs_trace import (
    PONG,
    SCENARIOS,
    _build_ours,
    _build_ovs,
    _odp_ports,
    _sorted_actions,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pyvswitch.ofproto.ofproto import Ofproto
    from tests.interop.ovs_sandbox import OvsSandbox
    from tests.interop.test_ovs_trace import Scenario

pytestmark = pytest.mark.ovs

SRC, DST, NEW = "50:54:00:00:00:05", "50:54:00:00:00:07", "50:54:00:00:00:0a"
PING = Ether(src=SRC, dst=DST) / IP(src="192.168.0.1", dst="192.168.0.2", ttl=64) / ICMP()
TAGGED_SYN = (
    Ether(src=SRC, dst=DST)
    / Dot1Q(vlan=10, prio=5)
    / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9)
    / TCP(sport=1000, dport=80, flags="S")
)
# Unicast: Open vSwitch's NORMAL looks further into a broadcast ARP (is it
# gratuitous?) than pyvswitch's does yet, which shows in the Megaflow: line.
ARP_REPLY = Ether(src="50:54:00:00:00:09", dst=SRC) / ARP(
    op=2, hwsrc="50:54:00:00:00:09", psrc="192.168.0.9", hwdst=SRC, pdst="192.168.0.1"
)
UDP6 = Ether(src=DST, dst=SRC) / IPv6(src="2001:db8::7", dst="2001:db8::5") / UDP(dport=53)
_SEQ = itertools.count()


@dataclass
class _Datapath:
    ofp: Ofproto


@dataclass
class _Daemon:
    """What ``ofproto/trace`` and ``fdb/show`` read of pvs-vswitchd: datapaths and a clock."""

    datapaths: dict[str, _Datapath] = field(default_factory=dict)

    def clock(self) -> float:
        return 1.0


@pytest.fixture(params=sorted(SCENARIOS))
def both(
    request: pytest.FixtureRequest, ovs: OvsSandbox
) -> Iterator[tuple[Scenario, dict[str, str], OvsSandbox, _Daemon]]:
    """One scenario built in Open vSwitch and in pyvswitch, with the same port numbers."""
    sc = SCENARIOS[request.param]
    n = next(_SEQ)
    names = {b: f"u{n}{b}" for b in sc.bridges}
    names |= {p.name: f"u{n}{p.name}" for _, ports in sc.bridges.values() for p in ports}
    _build_ovs(ovs, sc, names)
    try:
        ours = _build_ours(sc, names, _odp_ports(ovs))
        yield sc, names, ovs, _Daemon({"dummy": _Datapath(ours)})
    finally:
        ovs.vsctl(*itertools.chain.from_iterable(("--", "del-br", names[b]) for b in sc.bridges))


def _trace_cases(
    sc: Scenario, names: dict[str, str], odp: dict[str, int]
) -> list[list[str | Ether]]:
    """Argument words for ofproto/trace, in an order that learns as it goes."""
    bridge = names[next(iter(sc.bridges))]
    p1, p2 = odp[names["p1"]], odp[names["p2"]]
    ping_flow = (
        "in_port=1,icmp,dl_src=50:54:00:00:00:05,dl_dst=50:54:00:00:00:07,"
        "nw_src=192.168.0.1,nw_dst=192.168.0.2,nw_ttl=64"
    )
    return [
        # The datapath form with a packet: only in_port() is taken from the flow.
        ["ovs-dummy", f"in_port({p1}),eth(src=11:11:11:11:11:11,dst=22:22:22:22:22:22)", PING],
        # The OpenFlow form: registers, metadata and header fields come from the packet.
        [bridge, "in_port=1,reg0=5,metadata=0x9,dl_src=11:11:11:11:11:11", TAGGED_SYN],
        # One word before the packet: the only datapath.
        [f"in_port({p2})", UDP6],
        [f"in_port({p1})", ARP_REPLY],
        # -generate, anywhere among the words.
        [bridge, ping_flow, "-generate"],
        ["--generate", "ovs-dummy", f"in_port({p2}),{PONG.replace(DST, NEW)}"],
        # A datapath key without eth_type() is an 802.3 frame.
        [f"in_port({p1})", "-generate"],
        # Options that shape only the generated packet.
        ["--l7-len", "10", bridge, ping_flow, "--l7", "0102", "-generate"],
        # After learning: the same packet again goes where NORMAL learned.
        ["ovs-dummy", f"in_port({p1})", PING],
    ]


def _hex(words: list[str | Ether]) -> list[str]:
    return [w if isinstance(w, str) else bytes(w).hex() for w in words]


def _normalised(text: str, skip_megaflow: bool) -> list[str]:
    # Flooding visits ports in a different order (see test_ovs_trace.py), and
    # some scenarios differ in the Megaflow: line on purpose (docs/design.md).
    lines = [_sorted_actions(x) for x in text.strip().splitlines()]
    return [x for x in lines if not (skip_megaflow and x.startswith("Megaflow:"))]


def _fdb(text: str) -> list[str]:
    """fdb/show's entries without their age, in one order."""
    return sorted(line.rsplit(maxsplit=1)[0] for line in text.splitlines()[1:])


def test_packet_and_generate_traces_match_ovs(
    both: tuple[Scenario, dict[str, str], OvsSandbox, _Daemon],
) -> None:
    sc, names, ovs, daemon = both
    for case in _trace_cases(sc, names, _odp_ports(ovs)):
        words = _hex(case)
        theirs = _normalised(ovs.appctl("ofproto/trace", *words).stdout, sc.skip_megaflow)
        mine = _normalised(trace(daemon, words), sc.skip_megaflow)
        assert mine == theirs, "\n".join([" ".join(words), "OURS:", *mine, "THEIRS:", *theirs])
    for bridge in sc.bridges:
        theirs_fdb = _fdb(ovs.appctl("fdb/show", names[bridge]).stdout)
        assert _fdb(fdb_show(daemon, names[bridge])) == theirs_fdb
        # A trace moves no rule counter, in Open vSwitch or here.
        counts = re.findall(r"n_packets=(\d+)", ovs.ofctl("dump-flows", names[bridge]).stdout)
        assert set(counts) == {"0"}
        ofp = daemon.datapaths["dummy"].ofp
        assert all(r.n_packets == 0 for t in ofp.bridges[names[bridge]].tables for r in t.rules)


# -- the real pvs-vswitchd and Open vSwitch, through ovs-appctl -------------------------


@pytest.fixture
def rundir(tmp_path: Path) -> Iterator[Path]:
    require_ovs()
    with running_daemon(tmp_path) as path:
        yield path


def _appctl(target: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ovs-appctl", "--timeout=20", *target, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def _add_bridge(vsctl: list[str], bridge: str, ports: list[str]) -> None:
    args = [*vsctl, "--timeout=20", "add-br", bridge]
    args += ["--", "set", "bridge", bridge, "datapath_type=dummy"]
    for i, port in enumerate(ports, 1):
        args += ["--", "add-port", bridge, port, "--", "set", "Interface", port]
        args += ["type=dummy", f"ofport_request={i}"]
    subprocess.run(args, check=True, capture_output=True, timeout=30)


GOOD = bytes(Ether(src=SRC, dst=DST, type=0x0800)).hex()
BAD_COMMANDS = [
    ["BR", "in_port=1", "zz"],
    ["BR", "in_port=1", "0a1"],
    ["BR", "in_port=1", GOOD + "1"],
    ["BR", "in_port=1", "0a"],
    ["BR", "in_port=1", ""],
    ["BR", "in_port=1", GOOD, "extra"],
    ["BR", "in_port=1", "-generate", GOOD],
    ["-generate"],
    ["BR", "in_port=1", "-x"],
    ["BR", "in_port=1", "--consistent"],
    ["BR", "in_port=1", "--l7"],
    ["BR", "in_port=1", "--l7-len"],
    ["BR", "in_port=1", "--l7", "01zz", "-generate"],
    ["BR", "in_port=1", "--l7-len", "70000", "-generate"],
    ["BR", "in_port=1", "--l7-len", "-1", "-generate"],
    ["BR", "in_port=1", "--ct-next"],
    ["in_port(1)", "zz"],
    ["in_port(1)", GOOD, "-generate"],
    ["nosuch", "in_port(1)", GOOD],
    ["nosuch", "in_port=1", GOOD],
    ["BR", "in_port(1)", GOOD],
    # The flow's own errors (tests/interop/test_ovs_trace.py has many more).
    ["BR", "in_port=1,nosuchfield=1"],
    ["BR", "in_port=1,nw_src=1.2.3.4", GOOD],
    ["BR", "in_port=1,ip,nw_ttl=300", "-generate"],
    ["ovs-dummy", "in_port(99)", GOOD],
    ["ovs-dummy", f"eth(src={SRC})", GOOD],
    [],
]


def test_usage_errors_and_learning_match_ovs(ovs: OvsSandbox, rundir: Path) -> None:
    n = next(_SEQ) + 5
    bridge, ports = f"br{n}", [f"p{n}{i}" for i in (1, 2, 3)]
    theirs_vsctl = ["ovs-vsctl", f"--db=unix:{ovs.db_sock}"]
    ours_vsctl = ["ovs-vsctl", f"--db=unix:{rundir / 'db.sock'}"]
    ours_target = ["-t", str(rundir / "pvs-vswitchd.ctl")]
    _add_bridge(theirs_vsctl, bridge, ports)
    try:
        _add_bridge(ours_vsctl, bridge, ports)
        usage = [
            next(x for x in out.splitlines() if "ofproto/trace " in x)
            for out in (
                ovs.appctl("list-commands").stdout,
                _appctl(ours_target, "list-commands").stdout,
            )
        ]
        assert usage[0] == usage[1]
        for bad in BAD_COMMANDS:
            words = [bridge if w == "BR" else w for w in bad]
            theirs = ovs.appctl("ofproto/trace", *words, check=False)
            mine = _appctl(ours_target, "ofproto/trace", *words)
            assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout), words
            # The last line names the program and its target, which differ.
            assert mine.stderr.splitlines()[:-1] == theirs.stderr.splitlines()[:-1], words
        # A hex packet's trace learns its source, shows it, and fdb/show has it.
        flow, frame = "in_port=1", bytes(PING).hex()
        theirs = ovs.appctl("ofproto/trace", bridge, flow, frame)
        mine = _appctl(ours_target, "ofproto/trace", bridge, flow, frame)
        assert "-> learned that 50:54:00:00:00:05" in theirs.stdout
        assert _normalised(mine.stdout, False) == _normalised(theirs.stdout, False)
        theirs_fdb = _fdb(ovs.appctl("fdb/show", bridge).stdout)
        assert _fdb(_appctl(ours_target, "fdb/show", bridge).stdout) == theirs_fdb
        assert theirs_fdb == [f"    1     0  {SRC}"]
        # A bridge that is not there: the same error, word for word.
        theirs = ovs.appctl("fdb/show", "nosuch", check=False)
        mine = _appctl(ours_target, "fdb/show", "nosuch")
        assert (mine.returncode, mine.stderr.splitlines()[:-1]) == (2, ["no such bridge"])
        assert (theirs.returncode, theirs.stderr.splitlines()[:-1]) == (2, ["no such bridge"])
    finally:
        subprocess.run([*theirs_vsctl, "del-br", bridge], check=True, timeout=30)
