"""The dummy provider: an in-memory port, as Open vSwitch's netdev-dummy.

Tests and machines without root use it: frames are injected into it with
:meth:`DummyNetdev.inject` (as if they arrived from the wire) and what the
switch sends out of it is collected with :meth:`DummyNetdev.drain`. Options, as
in OVS: ``pcap=FILE`` records both directions in one file, ``rxq_pcap=FILE``
what the port receives, ``tx_pcap=FILE`` what it sends. Timestamps come from
the clock function the owner sets (:attr:`DummyNetdev.clock`), so a test can
make captures reproducible.

Open vSwitch's netdev-dummy reads a few more options, and ignores whatever
else it is given. So does this provider: ``ifindex=N`` gives the port the
interface index the ``Interface`` table shows (read as OVS reads an integer
option); ``n_rxq``, ``n_txq`` and ``numa_id`` only matter to OVS's
``dummy-pmd`` ports and are accepted and ignored, as OVS's ``dummy`` ports do;
``stream`` and ``pstream`` (OVS's packet connections to other processes) are
accepted but not supported, with a warning. An option no Open vSwitch dummy
knows is ignored too, but with a warning naming it, so a typo shows in the
log. Each port takes its Ethernet address from one counter in the order ports
are created, ``aa:55:aa:55:00:01`` first, as netdev-dummy numbers them: a
port deleted and added again is a new device with a new address.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar

from pyvswitch.flow.ofp_text import str_to_int
from pyvswitch.netdev.base import Netdev, NetdevOptionError, finished
from pyvswitch.netdev.registry import register_provider
from pyvswitch.packet.pcap import PcapWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from ipaddress import IPv4Interface, IPv6Interface

log = logging.getLogger("pyvswitch.netdev_dummy")

#: Frames a dummy port holds for the switch before it drops new ones, so that
#: a test that injects without polling cannot grow memory without bound.
RX_QUEUE_LIMIT = 65536

#: The options Open vSwitch 3.1's netdev-dummy reads.
KNOWN_OPTIONS = frozenset(
    ("ifindex", "n_rxq", "n_txq", "numa_id", "pcap", "pstream", "rxq_pcap", "stream", "tx_pcap")
)
#: The options that name capture files.
PCAP_OPTIONS = ("pcap", "rxq_pcap", "tx_pcap")
#: Known options this provider does not implement (warned about when set).
UNSUPPORTED_OPTIONS = ("stream", "pstream")

# Open vSwitch numbers its dummy devices from 0xaa550000 in the order they are
# created, and its dummy datapath makes the first one for itself (its local
# port "ovs-dummy", which we do not have): starting at the next number gives a
# bridge and its ports the addresses Open vSwitch gives them.
_NEXT_ADDRESS = itertools.count(0xAA550001)


#: An integer option as OVS's smap_get_int() reads it (strtol, base 10, whole text).
@register_provider
class DummyNetdev(Netdev):
    """An in-memory port (type ``dummy``)."""

    type: ClassVar[str] = "dummy"
    options: ClassVar[frozenset[str]] = KNOWN_OPTIONS

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._rx: collections.deque[bytes] = collections.deque()
        self._tx: collections.deque[bytes] = collections.deque()
        self._pcaps: dict[str, tuple[IO[bytes], PcapWriter]] = {}
        self.clock: Callable[[], float] = time.time
        # aa:55 and the device's number: no two dummy devices share one.
        number = next(_NEXT_ADDRESS) & 0xFFFFFFFF
        self._mac = b"\xaa\x55" + number.to_bytes(4, "big")
        #: The interface index ``options:ifindex`` gives (None: none, as OVS's -EOPNOTSUPP).
        self.ifindex: int | None = None
        # The addresses netdev-dummy/ip4addr and ip6addr give the port: one of
        # each family at most, a new one replacing the old, as in Open vSwitch.
        self.in4: IPv4Interface | None = None
        self.in6: IPv6Interface | None = None

    @property
    def addresses(self) -> list[IPv4Interface | IPv6Interface]:
        """The port's addresses, IPv4 first (the order Open vSwitch lists them in)."""
        return [a for a in (self.in4, self.in6) if a is not None]

    def configure(self, options: Mapping[str, str]) -> None:
        for key in PCAP_OPTIONS:
            if key in options and not options[key]:
                raise NetdevOptionError(f"{self.name}: option {key} needs a file name")
        for key in PCAP_OPTIONS:
            value = options.get(key)
            if value and not Path(value).parent.is_dir():
                raise NetdevOptionError(
                    f"{self.name}: option {key}: directory of {value!r} does not exist"
                )
        # Everything is checked: from here on the options are applied.
        super().configure(options)
        self._warn_about(options)
        self.ifindex = str_to_int(options["ifindex"]) if "ifindex" in options else None
        self._close_pcaps()
        opened: dict[str, IO[bytes]] = {}
        for key in PCAP_OPTIONS:
            path = options.get(key)
            if path is None:
                continue
            if path not in opened:
                opened[path] = Path(path).open("wb")  # noqa: SIM115 - kept open until close()
            stream = opened[path]
            existing = next((w for s, w in self._pcaps.values() if s is stream), None)
            self._pcaps[key] = (stream, existing or PcapWriter(stream))

    def on_unknown_options(self, names: Sequence[str]) -> None:
        """Open vSwitch's dummy ignores options it does not know; we do, with a warning."""
        for name in names:
            log.warning(
                "%s: ignoring unknown option %r (a dummy interface takes: %s)",
                self.name,
                name,
                ", ".join(sorted(self.options)),
            )

    def _warn_about(self, options: Mapping[str, str]) -> None:
        """Warn about the known options that are accepted but do nothing here."""
        for key in UNSUPPORTED_OPTIONS:
            if key in options:
                log.warning(
                    "%s: option %s is not supported by pyvswitch's dummy interface (ignored)",
                    self.name,
                    key,
                )
        if "ifindex" in options and str_to_int(options["ifindex"]) is None:
            # Open vSwitch silently treats it as not given; a typo should show.
            log.warning(
                "%s: option ifindex %r is not an integer (ignored)", self.name, options["ifindex"]
            )

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
