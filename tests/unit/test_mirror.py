"""Mirror configuration in ofproto: slots, counters and limits as Open vSwitch keeps them.

What mirrors copy, and how, is compared with Open vSwitch 3.1 in
tests/interop/test_ovs_mirror.py and exercised through the daemon in
tests/scenario/test_daemon_mirror.py; these tests cover what a
reconfiguration keeps.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from pyvswitch.ofproto.mirror import MAX_MIRRORS, Mirror, Mirrors
from pyvswitch.ofproto.ofproto import Ofproto

FRAME = bytes(
    Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07") / IP() / ICMP() / (b"x" * 30)
)


def _mirror(name: str, source: str = "p1", output: str = "p3") -> Mirror:
    return Mirror(name, select_src_port=frozenset({source}), output_port=output)


@pytest.mark.parametrize(
    ("port", "vlan"), [(None, None), ("p3", 10)], ids=["no output", "both outputs"]
)
def test_a_mirror_has_exactly_one_output(port: str | None, vlan: int | None) -> None:
    with pytest.raises(ValueError, match="mirror m0: needs exactly one of output_port"):
        Mirror("m0", select_all=True, output_port=port, output_vlan=vlan)


def test_a_reconfigured_mirror_keeps_its_slot_and_counters() -> None:
    mirrors, refused = Mirrors().reconfigure([_mirror("m0"), _mirror("m1")])
    assert refused == []
    mirrors.active[1].stats.account(2, 212, 0.0)
    # m0 goes, m1 changes what it selects, m2 is new: it takes m0's slot, the
    # lowest free one, and comes first, as in Open vSwitch.
    mirrors, _ = mirrors.reconfigure([_mirror("m1", source="p2"), _mirror("m2")])
    assert [(m.mirror.name, m.slot) for m in mirrors.active] == [("m2", 0), ("m1", 1)]
    m1 = mirrors.active[1]
    assert m1.mirror.select_src_port == {"p2"}
    assert (m1.stats.tx_packets, m1.stats.tx_bytes) == (2, 212)
    assert mirrors.outputs == {"p3"}


def test_mirrors_past_the_limit_are_refused_with_open_vswitchs_message() -> None:
    wanted = [_mirror(f"m{i}") for i in range(MAX_MIRRORS + 1)]
    mirrors, refused = Mirrors().reconfigure(wanted)
    assert len(mirrors.active) == 32
    # The text ovs-vswitchd 3.1 logs (measured with 33 mirrors on one bridge).
    assert refused == ["maximum of 32 port mirrors reached, cannot create m32"]


def test_the_mirror_counts_what_it_sends_from_the_cache() -> None:
    """Counters are megaflow sinks: exact for cache hits, and kept by reconfiguration."""
    ofp = Ofproto(emc_insert_inv_prob=1)
    ofp.add_bridge("br0", local_odp_port=100)
    for n in (1, 2, 3):
        ofp.add_port("br0", f"p{n}", "dummy", n, odp_port=n)
    ofp.set_mirrors("br0", [_mirror("m0"), _mirror("m1", source="p2")])
    for _ in range(3):
        out = ofp.receive(1, [FRAME], 1.0)
        assert out[3] == [FRAME]
    assert ofp.datapath.stats.hit == 2
    assert ofp.set_mirrors("br0", [_mirror("m0"), _mirror("m1", source="p2")]) == []
    assert not ofp.need_revalidate  # nothing changed: the cache stays
    stats = ofp.mirror_stats()
    assert (stats["m0"].tx_packets, stats["m0"].tx_bytes) == (3, 3 * len(FRAME))
    assert (stats["m1"].tx_packets, stats["m1"].tx_bytes) == (0, 0)
