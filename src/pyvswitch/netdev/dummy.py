"""The dummy provider: an in-memory port, as Open vSwitch's netdev-dummy.

Tests and machines without root use it: frames are injected into it with
:meth:`DummyNetdev.inject` (as if they arrived from the wire) and what the
switch sends out of it is collected with :meth:`DummyNetdev.drain`. Options, as
in OVS: ``pcap=FILE`` records both directions in one file, ``rxq_pcap=FILE``
what the port receives, ``tx_pcap=FILE`` what it sends. Timestamps come from
the clock function the owner sets (:attr:`DummyNetdev.clock`), so a test can
make captures reproducible.
"""

from __future__ import annotations

import collections
import contextlib
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar

from pyvswitch.netdev.base import Netdev, NetdevOptionError, finished
from pyvswitch.netdev.registry import register_provider
from pyvswitch.packet.pcap import PcapWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from ipaddress import IPv4Interface, IPv6Interface

#: Frames a dummy port holds for the switch before it drops new ones, so that
#: a test that injects without polling cannot grow memory without bound.
RX_QUEUE_LIMIT = 65536


@register_provider
class DummyNetdev(Netdev):
    """An in-memory port (type ``dummy``)."""

    type: ClassVar[str] = "dummy"
    options: ClassVar[frozenset[str]] = frozenset(("pcap", "rxq_pcap", "tx_pcap"))

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._rx: collections.deque[bytes] = collections.deque()
        self._tx: collections.deque[bytes] = collections.deque()
        self._pcaps: dict[str, tuple[IO[bytes], PcapWriter]] = {}
        self.clock: Callable[[], float] = time.time
        # A locally administered address derived from the name, so two dummy
        # ports never share one (OVS's netdev-dummy does the same).
        digest = sum(name.encode()) & 0xFFFF
        self._mac = bytes((0xAA, 0x55, 0xAA, 0x55, digest >> 8, digest & 0xFF))
        # The addresses netdev-dummy/ip4addr and ip6addr give the port: one of
        # each family at most, a new one replacing the old, as in Open vSwitch.
        self.in4: IPv4Interface | None = None
        self.in6: IPv6Interface | None = None

    @property
    def addresses(self) -> list[IPv4Interface | IPv6Interface]:
        """The port's addresses, IPv4 first (the order Open vSwitch lists them in)."""
        return [a for a in (self.in4, self.in6) if a is not None]

    def configure(self, options: Mapping[str, str]) -> None:
        super_options = dict(options)
        for key in ("pcap", "rxq_pcap", "tx_pcap"):
            if key in options and not options[key]:
                raise NetdevOptionError(f"{self.name}: option {key} needs a file name")
        for key, value in options.items():
            if key in self.options and value and not Path(value).parent.is_dir():
                raise NetdevOptionError(
                    f"{self.name}: option {key}: directory of {value!r} does not exist"
                )
        super().configure(super_options)
        self._close_pcaps()
        opened: dict[str, IO[bytes]] = {}
        for key in ("pcap", "rxq_pcap", "tx_pcap"):
            path = options.get(key)
            if path is None:
                continue
            if path not in opened:
                opened[path] = Path(path).open("wb")  # noqa: SIM115 - kept open until close()
            stream = opened[path]
            existing = next((w for s, w in self._pcaps.values() if s is stream), None)
            self._pcaps[key] = (stream, existing or PcapWriter(stream))

    def _record(self, keys: tuple[str, ...], frames: Iterable[bytes]) -> None:
        writers = {id(w): w for k, (_, w) in self._pcaps.items() if k in keys}
        if not writers:
            return
        now = self.clock()
        sec, usec = int(now), int((now % 1) * 1_000_000)
        for frame in frames:
            for writer in writers.values():
                writer.write(frame, sec, usec)
        for stream, _ in self._pcaps.values():
            stream.flush()

    # -- the far side: what a test does to the port ---------------------------

    def inject(self, frames: Iterable[bytes]) -> None:
        """Frames arrive on the port from outside (the switch will recv them)."""
        batch = list(frames)
        room = max(RX_QUEUE_LIMIT - len(self._rx), 0)
        if not self.up or self.closed:
            self.stats.rx_dropped += len(batch)
            return
        if len(batch) > room:
            self.stats.rx_dropped += len(batch) - room
            batch = batch[:room]
        self._rx.extend(batch)
        self._record(("pcap", "rxq_pcap"), batch)

    def drain(self) -> list[bytes]:
        """What the switch sent out of the port since the last drain."""
        out = list(self._tx)
        self._tx.clear()
        return out

    # -- the switch side --------------------------------------------------------

    def recv(self, max_batch: int = 32) -> list[bytes]:
        n = min(max_batch, len(self._rx))
        if n == 0:
            return []
        batch = [self._rx.popleft() for _ in range(n)]
        self.stats.rx_packets += n
        self.stats.rx_bytes += sum(map(len, batch))
        return batch

    def send(self, frames: list[bytes]) -> int:
        if not self.up or self.closed:
            self.stats.tx_dropped += len(frames)
            return 0
        frames = finished(frames)
        self._tx.extend(frames)
        self.stats.tx_packets += len(frames)
        self.stats.tx_bytes += sum(map(len, frames))
        self._record(("pcap", "tx_pcap"), frames)
        return len(frames)

    def _close_pcaps(self) -> None:
        streams = {id(s): s for s, _ in self._pcaps.values()}
        for stream in streams.values():
            with contextlib.suppress(OSError):
                stream.close()
        self._pcaps.clear()

    def close(self) -> None:
        self._close_pcaps()
        self._rx.clear()
        super().close()
