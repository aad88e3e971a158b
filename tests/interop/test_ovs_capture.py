"""What pvs-tcpdump captures, held against the frames Open vSwitch 3.1 moves.

The same two dummy bridges in both switches (br0: p1, p2, patch0; br1: p3,
patch1), the same flows: br0 tags what p1 sends with VLAN 10 and rewrites
its source MAC before crossing to br1, which passes it to p3 unchanged; the
other way br1 tags with VLAN 20 and br0 strips the tag. Open vSwitch records
what its dummy ports receive and send (``rxq_pcap``/``tx_pcap``); we capture
with pvs-tcpdump on the same ports, and on the patch ports, where Open
vSwitch cannot capture at all. Since br1 passes the frame on unchanged, what
crossed the patch is what Open vSwitch sends on p3: our patch captures must
hold exactly those frames, in their directions.
"""

from __future__ import annotations

import contextlib
import signal
import time
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from pyvswitch.packet.pcap import PcapError, read_all
from pyvswitch.packet.pcapng import Direction
from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import OvsSandbox, require_ovs
from tests.scenario.capture_helpers import Tcpdump, packets
from tests.scenario.ofctl_helpers import build_topology, inject, ok, port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

FLOWS = {
    "br0": [
        "in_port=1,actions=mod_vlan_vid:10,mod_dl_src:02:00:00:00:00:99,output:10",
        "in_port=10,actions=strip_vlan,output:1",
    ],
    "br1": ["in_port=11,actions=output:3", "in_port=3,actions=mod_vlan_vid:20,output:11"],
}
A, B = "50:54:00:00:00:05", "50:54:00:00:00:07"
FORWARD = [
    bytes(Ether(src=A, dst=B) / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(seq=1)),
    bytes(Ether(src=A, dst=B) / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(dport=80, flags="S")),
    bytes(Ether(src=A, dst=B) / Dot1Q(vlan=5) / IP(src="192.0.2.1") / UDP(dport=53)),
    bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="192.0.2.1", pdst="192.0.2.2")),
]
BACKWARD = [
    bytes(Ether(src=B, dst=A) / IP(src="192.0.2.2", dst="192.0.2.1") / ICMP(type=0, seq=1)),
    bytes(Ether(src=B, dst=A) / IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=53)),
]


def _records(pcap: Path) -> list[bytes]:
    # The file may end in a record Open vSwitch is still writing: read what is whole.
    with contextlib.suppress(PcapError, FileNotFoundError):
        return [r.data for r in read_all(pcap.read_bytes())]
    return []


def ovs_frames(tmp_path: Path) -> dict[str, list[bytes]]:
    """What Open vSwitch's p1 and p3 receive and send for FORWARD then BACKWARD."""
    require_ovs()
    sandbox = OvsSandbox()
    files = {
        f"{name}-{way}": tmp_path / f"ovs-{name}-{way}.pcap"
        for name in ("p1", "p3")
        for way in ("rx", "tx")
    }
    try:
        sandbox.start()
        sandbox.vsctl(
            *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
            *("fail-mode=secure", "--", "add-br", "br1", "--", "set", "bridge", "br1"),
            *("datapath_type=dummy", "fail-mode=secure"),
            *port("br0", "p1", 1, "type=dummy", f"options:rxq_pcap={files['p1-rx']}",
                  f"options:tx_pcap={files['p1-tx']}"),
            *port("br0", "p2", 2),
            *port("br1", "p3", 3, "type=dummy", f"options:rxq_pcap={files['p3-rx']}",
                  f"options:tx_pcap={files['p3-tx']}"),
            *port("br0", "patch0", 10, "type=patch", "options:peer=patch1"),
            *port("br1", "patch1", 11, "type=patch", "options:peer=patch0"),
        )  # fmt: skip
        for bridge, flows in FLOWS.items():
            for flow in flows:
                sandbox.ofctl("add-flow", bridge, flow)
        for frame in FORWARD:
            sandbox.appctl("netdev-dummy/receive", "p1", frame.hex())
        for frame in BACKWARD:
            sandbox.appctl("netdev-dummy/receive", "p3", frame.hex())
        want = {"p1-rx": len(FORWARD), "p3-tx": len(FORWARD), "p3-rx": len(BACKWARD),
                "p1-tx": len(BACKWARD)}  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = {name: _records(path) for name, path in files.items()}
            if all(len(got[name]) >= n for name, n in want.items()):
                return got
            time.sleep(0.05)
        raise AssertionError(f"Open vSwitch did not move every frame: {got}")
    finally:
        sandbox.stop()


@pytest.fixture
def rundir(tmp_path: Path) -> Iterator[Path]:
    with running_daemon(tmp_path / "run") as run:
        build_topology(run)
        for bridge, flows in FLOWS.items():
            ok("vsctl", run, "--timeout=20", "set-fail-mode", bridge, "secure")
            for flow in flows:
                ok("ofctl", run, "add-flow", bridge, flow)
        yield run


def test_captures_hold_the_frames_open_vswitch_moves_patch_ports_included(
    rundir: Path, tmp_path: Path
) -> None:
    theirs = ovs_frames(tmp_path)
    names = ("p1", "patch0", "patch1", "p3")
    captures = {
        name: Tcpdump(rundir, tmp_path, "-i", name, "-w", str(tmp_path / f"{name}.pcapng"))
        for name in names
    }
    try:
        for capture in captures.values():
            capture.wait_attached()
        for frame in FORWARD:
            inject(rundir, "p1", frame)
        for frame in BACKWARD:
            inject(rundir, "p3", frame)
        for capture in captures.values():
            assert capture.stop(signal.SIGINT) == 0, capture.stderr
    finally:
        for capture in captures.values():
            capture.kill()
    ours = {name: packets(tmp_path / f"{name}.pcapng") for name in names}

    def seen(name: str, direction: Direction) -> list[bytes]:
        return [p.data for p in ours[name] if p.direction == direction]

    assert seen("p1", Direction.INBOUND) == theirs["p1-rx"]
    assert seen("p3", Direction.OUTBOUND) == theirs["p3-tx"]
    assert seen("p3", Direction.INBOUND) == theirs["p3-rx"]
    assert seen("p1", Direction.OUTBOUND) == theirs["p1-tx"]
    # br1 passes the forward frames on unchanged: what crossed the patch is
    # what Open vSwitch sent on p3, out of patch0 and into patch1.
    assert seen("patch0", Direction.OUTBOUND) == theirs["p3-tx"]
    assert seen("patch1", Direction.INBOUND) == theirs["p3-tx"]
    # The other way, the frames crossed with br1's VLAN 20 and br0 stripped it.
    crossed_back = seen("patch1", Direction.OUTBOUND)
    assert crossed_back == seen("patch0", Direction.INBOUND)
    assert [Ether(f)[Dot1Q].vlan for f in crossed_back] == [20] * len(BACKWARD)
    assert [bytes(_untagged(f)) for f in crossed_back] == theirs["p1-tx"]


def _untagged(frame: bytes) -> Ether:
    """The frame with its outer VLAN tag removed (what strip_vlan leaves), built by scapy."""
    eth = Ether(frame)
    inner = eth[Dot1Q].payload
    return Ether(src=eth.src, dst=eth.dst, type=eth[Dot1Q].type) / inner
