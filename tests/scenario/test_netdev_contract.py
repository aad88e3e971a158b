"""The netdev contract (pyvswitch/netdev/base.py), checked on every provider.

One suite, parametrised over providers: dummy always; system, tap and
internal on real devices inside namespaces the test creates (``netns``).
Each harness plays the far side of the link (tests/netdev_harness.py).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import select
from typing import TYPE_CHECKING

import pytest

from pyvswitch.netdev import (
    Netdev,
    NetdevError,
    NetdevOptionError,
    netdev_close,
    netdev_open,
    open_devices,
    provider,
    references,
)
from tests.netdev_harness import DummyHarness, Harness, make_frame, recv_frames
from tests.system.netns import NetnsLab, can_use_netns

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence


def _kernel_harness(module: str, cls: str) -> Callable[[NetnsLab], Harness] | None:
    with contextlib.suppress(ModuleNotFoundError):
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
    return None


KERNEL_HARNESSES = {
    "system": _kernel_harness("tests.system.harness_system", "SystemHarness"),
    "tap": _kernel_harness("tests.system.harness_tap", "TapHarness"),
    "internal": _kernel_harness("tests.system.harness_tap", "InternalHarness"),
}
PARAMS = [pytest.param("dummy", id="dummy")] + [
    pytest.param(name, id=name, marks=pytest.mark.netns) for name in KERNEL_HARNESSES
]


@pytest.fixture(params=PARAMS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    kind: str = request.param
    if kind == "dummy":
        made: Harness = DummyHarness()
        lab = None
    else:
        factory = KERNEL_HARNESSES[kind]
        if factory is None:
            pytest.skip(f"the {kind} provider's harness is not written yet")
        why = can_use_netns()
        if why:
            pytest.skip(f"network namespaces unavailable: {why}")
        lab = NetnsLab()
        made = factory(lab)
    try:
        yield made
    finally:
        made.close()
        if lab is not None:
            lab.cleanup()


@pytest.fixture
def dev(harness: Harness) -> Netdev:
    return harness.open()


def test_recv_is_empty_and_never_blocks_when_nothing_is_ready(dev: Netdev) -> None:
    assert [f for f in dev.recv(32) if f[12:14] == b"\x88\xb5"] == []


def test_received_frames_arrive_byte_identical_and_are_counted(
    harness: Harness, dev: Netdev
) -> None:
    frames = [make_frame(i, size=60 + i) for i in range(10)]
    before = dev.stats.rx_packets
    harness.inject(frames)
    got = recv_frames(dev, len(frames))
    assert got == frames
    assert dev.stats.rx_packets - before >= len(frames)


def test_recv_honours_the_batch_size(harness: Harness, dev: Netdev) -> None:
    harness.inject([make_frame(i) for i in range(20)])
    recv_frames(dev, 0, timeout=0.2)  # let them arrive without taking any
    with contextlib.suppress(TypeError):
        fd = dev.fileno()
        if fd is not None:
            select.select([fd], [], [], 1.0)
    assert len(dev.recv(4)) <= 4


def test_sent_frames_arrive_byte_identical_and_are_counted(harness: Harness, dev: Netdev) -> None:
    frames = [make_frame(100 + i, size=64 + 3 * i) for i in range(10)]
    sent = dev.send(list(frames))
    assert sent == len(frames)
    assert harness.collect(len(frames)) == frames
    assert dev.stats.tx_packets >= len(frames)
    assert dev.stats.tx_bytes >= sum(map(len, frames))


def test_a_burst_of_a_thousand_frames_is_all_accounted_for(harness: Harness, dev: Netdev) -> None:
    frames = [make_frame(i) for i in range(1000)]
    sent = 0
    for i in range(0, 1000, 32):
        sent += dev.send(frames[i : i + 32])
    got = harness.collect(1000, timeout=5.0)
    # Every frame is either delivered or counted as dropped: none vanish.
    assert sent + dev.stats.tx_dropped >= 1000
    if not harness.lossy:
        assert len(got) == 1000


def test_sending_on_a_down_device_drops_and_counts_without_raising(dev: Netdev) -> None:
    dev.set_up(False)
    assert not dev.up
    assert not dev.carrier
    dropped = dev.stats.tx_dropped
    assert dev.send([make_frame(1)]) == 0
    assert dev.stats.tx_dropped == dropped + 1
    dev.set_up(True)
    assert dev.up


def test_unknown_options_are_refused_or_logged_naming_the_option(
    dev: Netdev, caplog: pytest.LogCaptureFixture
) -> None:
    options = {**dev.get_config(), "no_such_option": "1"}
    if type(dev).on_unknown_options is Netdev.on_unknown_options:
        with pytest.raises(NetdevOptionError, match="no_such_option"):
            dev.configure(options)
        return
    # A provider that accepts them (dummy, as Open vSwitch's dummy does) says so in the log.
    with caplog.at_level(logging.WARNING):
        dev.configure(options)
    assert "no_such_option" in caplog.text


def test_mac_and_mtu_can_be_read_and_changed(dev: Netdev) -> None:
    assert len(dev.mac) == 6
    dev.set_mac(b"\x02\x00\x5e\x00\x00\x42")
    assert dev.mac == b"\x02\x00\x5e\x00\x00\x42"
    dev.set_mtu(1400)
    assert dev.mtu == 1400
    with pytest.raises(NetdevError):
        dev.set_mtu(20)


def test_statistics_have_the_eight_counters(dev: Netdev) -> None:
    assert set(dev.stats.as_dict()) == {
        "rx_packets",
        "rx_bytes",
        "rx_dropped",
        "rx_errors",
        "tx_packets",
        "tx_bytes",
        "tx_dropped",
        "tx_errors",
    }


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[bytes]]] = []

    def frames(self, device: str, direction: str, frames: Sequence[bytes]) -> None:
        self.seen.append((device, direction, list(frames)))


def test_capture_hook_sees_what_the_datapath_hands_it(dev: Netdev) -> None:
    frames = [make_frame(7)]
    dev.capture_rx(frames)  # nobody listens: nothing happens
    recorder = Recorder()
    dev.capture = recorder
    dev.capture_rx(frames)
    dev.capture_tx(frames)
    assert recorder.seen == [(dev.name, "rx", frames), (dev.name, "tx", frames)]


def test_close_twice_is_harmless_and_recv_after_close_is_empty(
    harness: Harness, dev: Netdev
) -> None:
    harness.close()
    harness.close()
    assert dev.recv(8) == []
    assert dev.send([make_frame(1)]) == 0


# -- the registry ------------------------------------------------------------------


def test_open_returns_the_same_device_reference_counted() -> None:
    a = netdev_open("pvs-ref0", "dummy")
    b = netdev_open("pvs-ref0", "dummy")
    try:
        assert a is b
        assert references("pvs-ref0") == 2
        netdev_close(a)
        assert references("pvs-ref0") == 1
        assert not a.closed
    finally:
        netdev_close(b)
    assert references("pvs-ref0") == 0
    assert a.closed
    assert "pvs-ref0" not in open_devices()


def test_open_with_another_type_is_refused() -> None:
    dev = netdev_open("pvs-ref1", "dummy")
    try:
        with pytest.raises(NetdevError, match="already open as type 'dummy'"):
            netdev_open("pvs-ref1", "patch", {"peer": "x"})
    finally:
        netdev_close(dev)


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(NetdevError, match=r"unknown interface type 'bogus' \(known: .*dummy"):
        provider("bogus")


def test_failed_configuration_leaves_nothing_open() -> None:
    with pytest.raises(NetdevOptionError):
        netdev_open("pvs-ref2", "dummy", {"pcap": ""})
    assert references("pvs-ref2") == 0
