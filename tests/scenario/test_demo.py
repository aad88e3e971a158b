"""The README's first command runs this demo; what it prints and writes must be right."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from scapy.layers.inet import ICMP
from scapy.layers.l2 import Dot1Q
from scapy.utils import rdpcap

from pyvswitch.demo.__main__ import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_demo_tells_the_patch_versus_veth_story(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dummy", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("left eth1 tagged with provider VLAN 101") == 2
    assert out.count("arrived untagged on tap-vm1") == 2
    assert out.count("VM2 (tenant 2, local VLAN 2) saw 0 of tenant 1's frames") == 2
    # The heart of the reference document, measured on the same traffic.
    assert re.search(r"datapath flows:\s+patch 2, veth 4", out)
    assert re.search(r"lookups:\s+patch 20, veth 40", out)
    # The trace crosses the patch into br-eth1, where the agent's flow rewrites the VLAN.
    assert 'bridge("br-eth1")' in out
    assert "0. in_port=2,dl_vlan=1, priority 4" in out
    assert "Datapath actions: push_vlan(vid=101,pcp=0)," in out
    # Exact counters on both ends of the patch: what one sends, the other receives.
    int_side = re.search(r"int-br-eth1: rx (\d+) packets (\d+) bytes, tx (\d+) packets (\d+)", out)
    phy_side = re.search(r"phy-br-eth1: rx (\d+) packets (\d+) bytes, tx (\d+) packets (\d+)", out)
    assert int_side
    assert phy_side
    assert int_side.group(3, 4) == phy_side.group(1, 2) == ("10", "580")
    assert int_side.group(1, 2) == phy_side.group(3, 4) == ("10", "620")

    left_eth1 = rdpcap(str(tmp_path / "eth1-patch.pcap"))
    assert len(left_eth1) == 10
    assert all(p[Dot1Q].vlan == 101 and p[ICMP].type == 8 for p in left_eth1)


def test_demo_cleans_up_its_temporary_files(capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    before = set(Path("/tmp").glob("pvs-demo-*"))
    assert main(["--dummy"]) == 0
    capsys.readouterr()
    assert set(Path("/tmp").glob("pvs-demo-*")) == before
