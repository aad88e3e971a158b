"""Building switches and frames for the core's scenario tests."""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Dot1Q, Ether

from pyvswitch.ofproto.actions_wire import OF10, carry
from pyvswitch.ofproto.flow_mod import parse_flow
from pyvswitch.ofproto.ofproto import Ofproto

MAC_A = "50:54:00:00:00:0a"
MAC_B = "50:54:00:00:00:0b"
MAC_C = "50:54:00:00:00:0c"


def switch() -> Ofproto:
    """An Ofproto whose EMC takes every flow, with a fixed random sequence."""
    return Ofproto(emc_insert_inv_prob=1, rng=random.Random(1))


def ping(
    src: str,
    dst: str,
    seq: int = 1,
    vlan: int | None = None,
    ip_src: str = "192.0.2.1",
    ip_dst: str = "192.0.2.2",
    request: bool = True,
) -> bytes:
    frame = Ether(src=src, dst=dst)
    if vlan is not None:
        frame = frame / Dot1Q(vlan=vlan)
    return bytes(frame / IP(src=ip_src, dst=ip_dst) / ICMP(type=8 if request else 0, seq=seq))


def add_flow(ofp: Ofproto, bridge: str, text: str) -> None:
    """Add a flow written as ovs-ofctl writes it (``priority=...,match,actions=...``).

    The rule holds the actions as ovs-ofctl sends them by default, over
    OpenFlow 1.0 (``set_field:...->nw_dst`` becomes ``mod_nw_dst``).
    """
    spec = parse_flow(text)
    ofp.add_flow(
        bridge,
        spec.match,
        carry(spec.actions, OF10, spec.match),
        priority=spec.priority,
        table_id=spec.table_id,
        cookie=spec.cookie,
    )


def two_bridges_with_patch(ofp: Ofproto) -> dict[str, int]:
    """br0 (p1, patch0) and br1 (p2, patch1), joined by patch0/patch1; odp ports by name."""
    ofp.add_bridge("br0")
    ofp.add_bridge("br1")
    p1 = ofp.add_port("br0", "p1", "dummy", 1)
    ofp.add_port("br0", "patch0", "patch", 10, peer="patch1")
    p2 = ofp.add_port("br1", "p2", "dummy", 2)
    ofp.add_port("br1", "patch1", "patch", 20, peer="patch0")
    assert p1.odp_port is not None
    assert p2.odp_port is not None
    return {
        "p1": p1.odp_port,
        "p2": p2.odp_port,
        "br0": ofp.bridges["br0"].ports[0xFFFE].odp_port or 0,
        "br1": ofp.bridges["br1"].ports[0xFFFE].odp_port or 0,
    }
