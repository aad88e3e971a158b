"""How the netdev contract suite drives one provider from the far side.

A harness opens a device of its type, plays the other end of the link
(injects frames the device will receive, collects frames the device sent),
and removes everything it made. tests/scenario/test_netdev_contract.py runs
the same contract tests over every harness; providers that need a kernel add
theirs in tests/system/ (marked ``netns``).

Test frames use the local experimental ethertype 0x88b5 so that a kernel's
own chatter on a fresh interface (IPv6 router solicitations, MLD reports) is
told apart and ignored.
"""

from __future__ import annotations

import select
import time
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from pyvswitch.netdev import Netdev

TEST_ETHERTYPE = b"\x88\xb5"


def make_frame(
    seq: int, size: int = 64, dst: bytes = b"\xff" * 6, src: bytes = b"\x02\x00\x00\x00\x00\x01"
) -> bytes:
    """A frame of ``size`` bytes carrying ``seq``, with the test ethertype."""
    body = seq.to_bytes(4, "big")
    body += bytes((seq + i) & 0xFF for i in range(max(size - 18, 0)))
    return dst + src + TEST_ETHERTYPE + body


def is_test_frame(frame: bytes) -> bool:
    return frame[12:14] == TEST_ETHERTYPE


def recv_frames(dev: Netdev, count: int, timeout: float = 3.0) -> list[bytes]:
    """Receive until ``count`` test frames arrived or ``timeout`` passed (bounded)."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    fd = dev.fileno()
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if fd is not None:
            select.select([fd], [], [], min(left, 0.1))
        batch = dev.recv(64)
        got.extend(f for f in batch if is_test_frame(f))
        if fd is None and not batch:
            time.sleep(0.001)
    return got


class Harness:
    """The far side of one device. Subclasses implement the four methods."""

    type: ClassVar[str] = ""
    #: Whether sending can overrun the far side (a kernel queue) so that a
    #: large burst is partly dropped and counted instead of delivered.
    lossy: ClassVar[bool] = False

    def open(self) -> Netdev:
        """Create and open the device under test."""
        raise NotImplementedError

    def inject(self, frames: list[bytes]) -> None:
        """The far side sends ``frames`` to the device."""
        raise NotImplementedError

    def collect(self, count: int, timeout: float = 3.0) -> list[bytes]:
        """Test frames the far side received from the device, up to ``count``."""
        raise NotImplementedError

    def close(self) -> None:
        """Remove everything this harness made."""
        raise NotImplementedError


class DummyHarness(Harness):
    """The dummy provider: inject and drain in memory."""

    type: ClassVar[str] = "dummy"

    def __init__(self, name: str = "pvs-dummy0") -> None:
        self.name = name
        self.dev: Netdev | None = None

    def open(self) -> Netdev:
        from pyvswitch.netdev import netdev_open

        self.dev = netdev_open(self.name, "dummy")
        return self.dev

    def inject(self, frames: list[bytes]) -> None:
        assert self.dev is not None
        self.dev.inject(frames)  # type: ignore[attr-defined]

    def collect(self, count: int, timeout: float = 3.0) -> list[bytes]:  # noqa: ARG002
        assert self.dev is not None
        return [f for f in self.dev.drain() if is_test_frame(f)][:count]  # type: ignore[attr-defined]

    def close(self) -> None:
        from pyvswitch.netdev import netdev_close, references

        while self.dev is not None and references(self.name):
            netdev_close(self.dev)
