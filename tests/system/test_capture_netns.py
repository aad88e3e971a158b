"""pvs-tcpdump on the patch ports between two bridges, with real pings from namespaces.

Two namespaces, each on a veth whose root end is a system port of its own
bridge; the bridges are joined by a patch pair. ``ping -c 5`` goes across
while pvs-tcpdump captures on each patch end; ``tcpdump -r`` and ``tshark
-r`` then count exactly five echo requests and five replies in each file,
each in its direction (Open vSwitch 3.1 captures nothing on a patch port).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.scenario.capture_helpers import (
    INBOUND,
    OUTBOUND,
    Tcpdump,
    tcpdump_lines,
    tshark_fields,
)
from tests.system.test_daemon_traffic import NET, Switch, ping, received

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.system.netns import NetnsLab

pytestmark = pytest.mark.netns


@pytest.fixture
def patched(lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[Switch, str, str, str]]:
    """Two bridges with a host each, joined by patch ports; (switch, ns1, pa, pb)."""
    with running_daemon(tmp_path / "run") as rundir:
        switch = Switch(rundir, lab)
        br_a, br_b = switch.bridge("bra"), switch.bridge("brb")
        ns1, _, _ = switch.host(br_a, f"{NET}.1")
        switch.host(br_b, f"{NET}.2")
        pa, pb = lab.name("pa"), lab.name("pb")
        switch.vsctl(
            "add-port", br_a, pa, "--", "set", "Interface", pa, "type=patch",
            f"options:peer={pb}", "--", "add-port", br_b, pb, "--", "set", "Interface", pb,
            "type=patch", f"options:peer={pa}",
        )  # fmt: skip
        yield switch, ns1, pa, pb


def test_pings_across_patch_ports_are_captured_on_both_ends(
    patched: tuple[Switch, str, str, str], tmp_path: Path
) -> None:
    switch, ns1, pa, pb = patched
    file_a, file_b = tmp_path / "pa.pcapng", tmp_path / "pb.pcapng"
    captures = [
        Tcpdump(switch.rundir, tmp_path, "-i", pa, "-w", str(file_a), "icmp"),
        Tcpdump(switch.rundir, tmp_path, "-i", pb, "-w", str(file_b), "icmp"),
    ]
    try:
        for capture in captures:
            capture.wait_attached()
        assert received(ping(ns1, f"{NET}.2", count=5)) == 5
        assert captures[0].stop(signal.SIGINT) == 0, captures[0].stderr
        assert captures[1].stop(signal.SIGTERM) == 0, captures[1].stderr
    finally:
        for capture in captures:
            capture.kill()

    for path in (file_a, file_b):
        assert len(tcpdump_lines(path, "icmp[icmptype] == icmp-echo")) == 5
        assert len(tcpdump_lines(path, "icmp[icmptype] == icmp-echoreply")) == 5
        assert len(tcpdump_lines(path)) == 10
    # Requests leave br-a by pa and enter br-b by pb; replies the other way.
    for path, request_way, reply_way in (
        (file_a, OUTBOUND, INBOUND),
        (file_b, INBOUND, OUTBOUND),
    ):
        fields = tshark_fields(path, "frame.packet_flags_direction", "icmp.type")
        assert sorted(map(tuple, fields)) == sorted(
            [(request_way, "8")] * 5 + [(reply_way, "0")] * 5
        )
