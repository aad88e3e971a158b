"""The README's first command runs this demo; what it prints and writes must be right."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scapy.layers.inet import ICMP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import rdpcap

from pyvswitch.demo.__main__ import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_demo_walks_the_ping_through_every_hop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "hops.pcap"
    assert main(["--pcap", str(pcap)]) == 0
    out = capsys.readouterr().out
    assert out.count("Flow: icmp,") == 4
    assert "in_port=2,dl_vlan=1," in out
    assert "dl_vlan=101," in out
    assert "actions=mod_vlan_vid:101,NORMAL' matches: True" in out
    assert "eth_type(0x8100),vlan(vid=101,pcp=0),encap(eth_type(0x0800)" in out

    packets = rdpcap(str(pcap))
    vlans = [p[Dot1Q].vlan if Dot1Q in p else None for p in packets]
    assert vlans == [None, 1, 1, 101]
    assert all(p[ICMP].type == 8 and p[Ether].src == "fa:16:3e:00:00:01" for p in packets)


def test_demo_cleans_up_its_temporary_pcap(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    written = next(line for line in out.splitlines() if line.startswith("wrote "))
    from pathlib import Path

    assert not Path(written.rsplit(" to ", 1)[1]).exists()
