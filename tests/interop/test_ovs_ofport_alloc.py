"""Differential: the OpenFlow port numbers new ports get, in Open vSwitch 3.1 and pvs-vswitchd.

Open vSwitch does not give a deleted port's number to the next new port
(alloc_ofp_port(): the numbers after the last one given come first), so the
rules written for the old port do not silently apply to the new one. Both
switches get the same ovs-vsctl commands and must number alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.interop.both import Both, both_started

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.ovs


def add(both: Both, name: str) -> None:
    both.do("vsctl", "add-port", "br0", name, "--", "set", "Interface", name, "type=dummy")


def ofports(both: Both, *names: str) -> list[str]:
    reply = both.same("vsctl", "--columns=ofport", "--bare", "list", "Interface", *names)
    return reply[1].split()


def test_a_deleted_ports_number_is_not_given_to_the_next_port(tmp_path: Path) -> None:
    with both_started(tmp_path) as both:
        for name in ("p1", "p2", "p3"):
            add(both, name)
        assert ofports(both, "p1", "p2", "p3") == ["1", "2", "3"]
        both.do("vsctl", "del-port", "br0", "p2")
        add(both, "p4")
        both.do("vsctl", "del-port", "br0", "p1")
        add(both, "p5")
        # Asked-for numbers may be any free one, a deleted port's included.
        both.do(
            "vsctl",
            "add-port",
            "br0",
            "p6",
            "--",
            "set",
            "Interface",
            "p6",
            "type=dummy",
            "ofport_request=2",
        )
        add(both, "p7")
        assert ofports(both, "p3", "p4", "p5", "p6", "p7") == ["3", "4", "5", "2", "6"]
