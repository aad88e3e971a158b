"""pvs-tcpdump on a tunnel port: the inner packets, both ways, from the datapath's cache too.

Native tunnelling pushes and pops headers inside the datapath's actions, so
no device carries a tunnel port's traffic: as on a patch port, the capture
is fed by translation (ofproto/capture_points.py). Open vSwitch has nothing
to capture on there either (``ovs-tcpdump -i`` on a VXLAN port of a
userspace bridge sees nothing).

The switch: tunnel_push_pop's underlay (br0 with 1.1.2.88 on its own port,
p0, a route and the far end's neighbour), int-br with the VXLAN port t2
(key 123, to 1.1.2.92) and a dummy port p7; p7's traffic goes into the
tunnel and the tunnel's out to p7.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.utils import rdpcap

from pyvswitch.packet.pcapng import Direction
from tests.daemon import running_daemon
from tests.scenario.capture_helpers import Tcpdump, packets, show, tshark_fields
from tests.scenario.ofctl_helpers import inject, ok, port_counts
from tests.scenario.test_tunnel_push_pop import INNER, NO_KERNEL, P0, START, VXLAN_FRAME

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FROM_P7 = bytes(
    Ether(src="50:54:00:00:00:07", dst="50:54:00:00:00:09")
    / IP(src="198.51.100.7", dst="198.51.100.9")
    / ICMP()
    / (b"x" * 32)
)


@pytest.fixture
def tunnelled(tmp_path: Path) -> Iterator[Path]:
    rundir = tmp_path / "run"
    with running_daemon(rundir, NO_KERNEL):
        ok("vsctl", rundir, "--timeout=20", *START, *P0, f"options:tx_pcap={rundir / 'p0.pcap'}")
        ok(
            "vsctl",
            rundir,
            "--timeout=20",
            *("add-br", "int-br", "--", "set", "bridge", "int-br", "datapath_type=dummy"),
            *("--", "add-port", "int-br", "t2", "--", "set", "Interface", "t2", "type=vxlan"),
            *("options:remote_ip=1.1.2.92", "options:key=123", "ofport_request=2"),
            *("--", "add-port", "int-br", "p7", "--", "set", "Interface", "p7", "type=dummy"),
            *("ofport_request=7", f"options:tx_pcap={rundir / 'p7.pcap'}"),
        )
        ok("appctl", rundir, "netdev-dummy/ip4addr", "br0", "1.1.2.88/24")
        ok("appctl", rundir, "ovs/route/add", "1.1.2.92/24", "br0")
        ok("appctl", rundir, "tnl/neigh/set", "br0", "1.1.2.92", "f8:bc:12:44:34:b6")
        ok("ofctl", rundir, "add-flow", "br0", "action=normal")
        ok("ofctl", rundir, "add-flow", "int-br", "in_port=7,actions=output:2")
        ok("ofctl", rundir, "add-flow", "int-br", "in_port=2,actions=output:7")
        yield rundir


def capture_flows(rundir: Path) -> list[str]:
    """The installed flows that hand packets to a capture."""
    return [f for f in ok("appctl", rundir, "dpctl/dump-flows").splitlines() if "pvs_capture" in f]


def test_a_tunnel_port_capture_gets_the_inner_packets_both_ways(
    tunnelled: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    path = tmp_path / "t2.pcapng"
    cap = Tcpdump(tunnelled, tmp_path, "-i", "t2", "-w", str(path))
    captures.append(cap)
    cap.wait_attached()
    assert "capture 1: t2 (int-br, vxlan)" in show(tunnelled)
    inject(tunnelled, "p7", FROM_P7, count=3)
    inject(tunnelled, "p0", VXLAN_FRAME, count=2)
    # Both directions' megaflows carry the capture, and the later packets hit them.
    flows = capture_flows(tunnelled)
    assert len(flows) == 2
    assert all(re.search(r"packets:1,", f) for f in flows if "tnl_push" not in f)
    assert any("packets:2," in f and "tnl_push" in f for f in flows)
    assert cap.stop() == 0, cap.stderr
    got = [(p.data, p.direction) for p in packets(path)]
    assert got == [(FROM_P7, Direction.OUTBOUND)] * 3 + [(INNER, Direction.INBOUND)] * 2
    # What went on: the pushes left by p0 as VXLAN, the popped packets by p7.
    wire = [Ether(bytes(p)) for p in rdpcap(str(tunnelled / "p0.pcap"))]
    assert [bytes(p[VXLAN].payload) for p in wire if VXLAN in p] == [FROM_P7] * 3
    assert [bytes(p) for p in rdpcap(str(tunnelled / "p7.pcap"))] == [INNER] * 2
    assert port_counts(tunnelled, "int-br", "t2")[0] == 2
    # tcpdump's reader sees the same, directions included (tshark's field).
    fields = tshark_fields(path, "frame.packet_flags_direction", "ip.src")
    assert [row[0] for row in fields] == ["0x00000002"] * 3 + ["0x00000001"] * 2
    # Detached: the flows lose the capture actions.
    assert capture_flows(tunnelled) == []
    assert show(tunnelled) == ""


def test_a_filter_on_a_tunnel_port_keeps_what_it_matches(
    tunnelled: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    path = tmp_path / "t2.pcapng"
    cap = Tcpdump(tunnelled, tmp_path, "-i", "t2", "-w", str(path), "icmp and dst 198.51.100.9")
    captures.append(cap)
    cap.wait_attached()
    inject(tunnelled, "p7", FROM_P7, count=2)
    other = bytes(
        Ether(src="50:54:00:00:00:07", dst="50:54:00:00:00:09")
        / IP(src="198.51.100.7", dst="198.51.100.10")
        / UDP()
    )
    inject(tunnelled, "p7", other)
    inject(tunnelled, "p0", VXLAN_FRAME)
    assert cap.stop() == 0, cap.stderr
    assert [p.data for p in packets(path)] == [FROM_P7] * 2


def test_a_truncated_push_is_captured_whole_and_cut_on_the_wire(
    tunnelled: Path, tmp_path: Path, captures: list[Tcpdump]
) -> None:
    """The capture sees what the bridge sends to the port; the trunc cuts what is pushed."""
    ok("ofctl", tunnelled, "add-flow", "int-br", "in_port=7,actions=output(port=2,max_len=60)")
    path = tmp_path / "t2.pcapng"
    cap = Tcpdump(tunnelled, tmp_path, "-i", "t2", "-w", str(path))
    captures.append(cap)
    cap.wait_attached()
    inject(tunnelled, "p7", FROM_P7, count=2)
    assert cap.stop() == 0, cap.stderr
    assert [p.data for p in packets(path)] == [FROM_P7] * 2
    wire = [Ether(bytes(p)) for p in rdpcap(str(tunnelled / "p0.pcap"))]
    assert [bytes(p[VXLAN].payload) for p in wire if VXLAN in p] == [FROM_P7[:60]] * 2
