"""The dummy and patch providers: what is particular to each."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from pyvswitch.netdev import NetdevOptionError, netdev_close, netdev_open
from pyvswitch.netdev.dummy import RX_QUEUE_LIMIT, DummyNetdev

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PING = bytes(
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    / IP(src="192.0.2.1", dst="192.0.2.2")
    / ICMP()
)
PONG = bytes(
    Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
    / IP(src="192.0.2.2", dst="192.0.2.1")
    / ICMP(type=0)
)


@pytest.fixture
def dummy() -> Iterator[DummyNetdev]:
    dev = netdev_open("pvs-d0", "dummy")
    assert isinstance(dev, DummyNetdev)
    dev.clock = lambda: 1700000000.25
    try:
        yield dev
    finally:
        netdev_close(dev)


def test_dummy_pcap_options_record_each_direction(dummy: DummyNetdev, tmp_path: Path) -> None:
    both, rx, tx = tmp_path / "both.pcap", tmp_path / "rx.pcap", tmp_path / "tx.pcap"
    dummy.configure({"pcap": str(both), "rxq_pcap": str(rx), "tx_pcap": str(tx)})
    dummy.inject([PING])
    assert dummy.recv() == [PING]
    dummy.send([PONG])
    assert [bytes(p) for p in rdpcap(str(rx))] == [PING]
    assert [bytes(p) for p in rdpcap(str(tx))] == [PONG]
    recorded = rdpcap(str(both))
    assert [bytes(p) for p in recorded] == [PING, PONG]
    assert float(recorded[0].time) == pytest.approx(1700000000.25)
    if shutil.which("tcpdump"):
        out = subprocess.run(
            ["tcpdump", "-nn", "-r", str(both)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert "ICMP echo request" in out
        assert "ICMP echo reply" in out


def test_dummy_pcap_option_with_missing_directory_is_refused(
    dummy: DummyNetdev, tmp_path: Path
) -> None:
    with pytest.raises(NetdevOptionError, match="option tx_pcap: directory of"):
        dummy.configure({"tx_pcap": str(tmp_path / "nowhere" / "x.pcap")})


def test_dummy_drops_and_counts_beyond_its_receive_queue(dummy: DummyNetdev) -> None:
    dummy.inject([PING] * (RX_QUEUE_LIMIT + 5))
    assert dummy.stats.rx_dropped == 5


def test_dummy_drain_returns_what_was_sent_once(dummy: DummyNetdev) -> None:
    dummy.send([PING, PONG])
    assert dummy.drain() == [PING, PONG]
    assert dummy.drain() == []


def test_dummy_ports_get_distinct_addresses() -> None:
    a, b = DummyNetdev("p1"), DummyNetdev("p2")
    assert a.mac != b.mac


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "pvs-patch0: patch type requires valid 'peer' argument"),
        ({"colour": "blue"}, "pvs-patch0: patch type requires valid 'peer' argument"),
        ({"peer": "x", "colour": "blue"}, "pvs-patch0: patch type takes only a 'peer' argument"),
        ({"peer": "pvs-patch0"}, "pvs-patch0: patch peer must not be self"),
    ],
)
def test_patch_validation_is_word_for_word_ovs(options: dict[str, str], message: str) -> None:
    with pytest.raises(NetdevOptionError) as excinfo:
        netdev_open("pvs-patch0", "patch", options)
    assert str(excinfo.value) == message


def test_a_valid_patch_pair() -> None:
    a = netdev_open("pvs-patch-a", "patch", {"peer": "pvs-patch-b"})
    b = netdev_open("pvs-patch-b", "patch", {"peer": "pvs-patch-a"})
    try:
        assert (a.peer, b.peer) == ("pvs-patch-b", "pvs-patch-a")  # type: ignore[attr-defined]
        assert a.get_config() == {"peer": "pvs-patch-b"}
        assert a.fileno() is None
        assert a.recv() == []
        # Crossing happens in translation; the datapath keeps both ends' counters.
        a.account_tx(3, 300)  # type: ignore[attr-defined]
        b.account_rx(3, 300)  # type: ignore[attr-defined]
        assert a.stats.tx_packets == b.stats.rx_packets == 3
        with pytest.raises(NetdevOptionError, match="patch peer must not be self"):
            a.configure({"peer": "pvs-patch-a"})
        assert a.get_config() == {"peer": "pvs-patch-b"}
    finally:
        netdev_close(a)
        netdev_close(b)
