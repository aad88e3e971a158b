"""Differential: ``ofproto/trace BRIDGE BR_FLOW`` for flows users type without a packet.

Open vSwitch 3.1 and pvs-vswitchd get the same commands (tests/interop/both.py):
a VLAN rewrite traced from a tagged flow (the megaflow must match the tag the
rewrite keeps the priority of), and NORMAL traced from no input port (OVS
treats it as a trunk that learns nothing) and from a port number the bridge
does not have. Compared: the warnings, the ``Megaflow:`` line and the
``Datapath actions:`` as the set of what each output sends (flooding order
is Open vSwitch's hash order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.interop.both import Both, both_started
from tests.interop.test_ovs_trace import _sorted_actions

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.ovs


def result(text: str) -> list[str]:
    """The warnings, the megaflow and the outputs of a trace."""
    return [
        _sorted_actions(line.strip())
        for line in text.splitlines()
        if line.startswith(("Megaflow:", "Datapath actions:")) or line.strip().startswith(">>")
    ]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    with both_started(tmp_path_factory.mktemp("pvs")) as both:
        for name, number, extra in (("p1", 1, ()), ("p2", 2, ("tag=10",)), ("p3", 3, ())):
            both.do(
                "vsctl",
                *("add-port", "br0", name, *extra, "--", "set", "Interface", name),
                *("type=dummy", f"ofport_request={number}"),
            )
        yield both


@pytest.mark.parametrize(
    "flow", ["in_port=p1,dl_vlan=5", "in_port=p1,dl_vlan=5,dl_vlan_pcp=3", "in_port=p1"]
)
def test_a_vlan_rewrite_traced_from_a_bridge_flow(both: Both, flow: str) -> None:
    both.do("ofctl", "del-flows", "br0")
    both.do("ofctl", "add-flow", "br0", "in_port=p1,actions=mod_vlan_vid:10,output:p3")
    both.same("appctl", "ofproto/trace", "br0", flow, view=result)


@pytest.mark.parametrize(
    "flow",
    [
        "dl_dst=50:54:00:00:00:05",
        "dl_dst=50:54:00:00:00:05,dl_vlan=10",
        "dl_src=50:54:00:00:00:09,dl_dst=ff:ff:ff:ff:ff:ff",
        "in_port=99,dl_dst=50:54:00:00:00:05",
    ],
)
def test_normal_traced_from_no_input_port(both: Both, flow: str) -> None:
    both.do("ofctl", "del-flows", "br0")
    both.do("ofctl", "add-flow", "br0", "actions=NORMAL")
    both.same("appctl", "ofproto/trace", "br0", flow, view=result)
