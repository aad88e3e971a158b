"""The netdev provider contract: what every kind of port implements.

This is Open vSwitch's ``struct netdev_class`` (lib/netdev-provider.h) in
Python. A *provider* is a subclass of :class:`Netdev` registered under a type
string (``"system"``, ``"tap"``, ``"dummy"``...); :func:`pyvswitch.netdev.netdev_open`
creates one device per name and hands it out reference-counted.

Life cycle
    1. ``__init__(name)``: cheap, no I/O, never fails for a valid name.
    2. ``configure(options)``: validates *every* option first and raises
       :class:`NetdevOptionError` naming the first bad one before changing
       anything; then applies them (this is where a provider opens its socket,
       tap file descriptor or pcap files). It may be called again with new
       options; a failed call leaves the device as it was. An option the
       provider does not know is refused, unless the provider overrides
       :meth:`Netdev.on_unknown_options` (the dummy provider ignores it with a
       warning, as Open vSwitch's dummy ignores it).
    3. Packets move with :meth:`recv` and :meth:`send`; the owner polls
       :meth:`fileno` when it is not None.
    4. ``close()``: releases everything. The device is unusable afterwards;
       calling ``close()`` twice is harmless.

Packets
    A frame is a ``bytes`` object holding a whole Ethernet frame (no FCS).
    :meth:`recv` returns a new list each call (the caller owns it and its
    frames). :meth:`send` takes ownership of the list and its frames: the
    caller must not reuse them.

Offloads
    A frame may be a ``bytes`` subclass that carries offload work, such as
    :class:`pyvswitch.packet.offload.VnetFrame`: a frame whose checksum the
    sender left to the device, or a GSO frame larger than the MTU, with the
    virtio-net header that describes the work. Every ``bytes`` operation
    works on it, and the datapath keeps the header right as it pushes and
    pops VLAN tags. Any device's :meth:`send` accepts such frames. One that
    can hand the header to the kernel (the system provider) passes it
    through, and a GSO frame counts as one packet in its statistics; one that
    cannot (dummy, tap) does the work in software first with
    :func:`finished`, and counts the segments it sends.

Nothing ready, and errors
    :meth:`recv` never blocks: it returns an empty list when nothing is
    ready, and also when the device is down, gone or in error. :meth:`send`
    never blocks and never raises for a frame it cannot send: it drops it and
    counts it (``tx_dropped`` for congestion or a down device, ``tx_errors``
    for a frame the device refused), so a datapath loop can call it without a
    try block. A device whose kernel side disappears or fails sets
    :attr:`error` (a message for the ``Interface.error`` column) and reports
    no carrier; it never raises out of recv or send. Only ``configure`` and the
    setters raise, with :class:`NetdevError` subclasses whose message names
    the device and what is wrong. :meth:`fileno` may change or become None
    after an error (a deleted interface would otherwise poll readable
    forever), so a poller reads it again after each error; and :meth:`recv`
    clears whatever made the descriptor readable, so a poller never spins.

Capture
    :attr:`capture` is the hook the capture feature attaches to: None when
    nobody listens, which costs one attribute test per batch. The datapath
    calls :meth:`capture_rx`/:meth:`capture_tx` on each batch it receives
    from or sends to the device, patch ports included.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar, Protocol

from pyvswitch.packet.offload import VnetFrame, finish_offloads

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def finished(frames: list[bytes]) -> list[bytes]:
    """``frames`` with their offload work done, for a device that takes no vnet header.

    The list comes back as it is (the same object) when no frame carries
    work, which is the common case and costs one pass over the types.
    """
    if VnetFrame not in set(map(type, frames)):
        return frames
    return [piece for frame in frames for piece in finish_offloads(frame)]


class NetdevError(Exception):
    """A device cannot do what was asked; the message names the device and the reason."""


class NetdevOptionError(NetdevError):
    """An option is unknown, missing or has a bad value; the message names it."""


@dataclass(slots=True)
class NetdevStats:
    """Packet and byte counters, as OVS's ``struct netdev_stats`` keeps them."""

    rx_packets: int = 0
    rx_bytes: int = 0
    rx_dropped: int = 0
    rx_errors: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0
    tx_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name, as the ``Interface.statistics`` column shows them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class CaptureListener(Protocol):
    """Receives copies of the frames a device receives and sends."""

    def frames(self, device: str, direction: str, frames: Sequence[bytes]) -> None:
        """``direction`` is ``"rx"`` or ``"tx"``, seen from the switch."""


class Netdev:
    """Base class of every provider; the module docstring is the contract.

    Subclasses set :attr:`type` and override what their kind of device can
    do. The defaults describe a device that exists only in memory and is
    always up: no file descriptor, nothing to receive, sending drops.
    """

    #: The type string the provider is registered under.
    type: ClassVar[str] = ""
    #: Options :meth:`configure` accepts, for error messages and docs.
    options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = NetdevStats()
        self.error: str | None = None
        self.capture: CaptureListener | None = None
        self._config: dict[str, str] = {}
        self._mac = b"\x00" * 6
        self._mtu = 1500
        self._up = True
        self.closed = False

    # -- configuration -----------------------------------------------------

    def configure(self, options: Mapping[str, str]) -> None:
        """Validate and apply ``options`` (see the contract in the module docstring)."""
        unknown = sorted(set(options) - self.options)
        if unknown:
            self.on_unknown_options(unknown)
        self._config = dict(options)

    def on_unknown_options(self, names: Sequence[str]) -> None:
        """Called by :meth:`configure` with the options not in :attr:`options` (sorted).

        It refuses them by raising :class:`NetdevOptionError` naming the
        first; a provider that accepts them anyway overrides it, and should
        check its other options before it calls ``Netdev.configure``, so that it
        does not accept unknown options for a configuration it then refuses.
        """
        raise NetdevOptionError(
            f"{self.name}: unknown option {names[0]!r} for a {self.type} interface"
            + (
                f" (it takes: {', '.join(sorted(self.options))})"
                if self.options
                else " (it takes no options)"
            )
        )

    def get_config(self) -> dict[str, str]:
        """The options in force."""
        return dict(self._config)

    # -- packets ------------------------------------------------------------

    def recv(self, max_batch: int = 32) -> list[bytes]:  # noqa: ARG002 - the contract's signature
        """Up to ``max_batch`` received frames; empty when nothing is ready. Never blocks."""
        return []

    def send(self, frames: list[bytes]) -> int:
        """Send ``frames`` (ownership passes to the device); return how many were sent."""
        self.stats.tx_dropped += len(frames)
        return 0

    def fileno(self) -> int | None:
        """A file descriptor that polls readable when :meth:`recv` has frames, or None."""
        return None

    # -- capture hook --------------------------------------------------------

    def capture_rx(self, frames: Sequence[bytes]) -> None:
        """Hand a received batch to the capture listener, if any."""
        if self.capture is not None:
            self.capture.frames(self.name, "rx", frames)

    def capture_tx(self, frames: Sequence[bytes]) -> None:
        """Hand a sent batch to the capture listener, if any."""
        if self.capture is not None:
            self.capture.frames(self.name, "tx", frames)

    # -- properties -----------------------------------------------------------

    @property
    def mac(self) -> bytes:
        """The Ethernet address (6 bytes)."""
        return self._mac

    def set_mac(self, mac: bytes) -> None:
        """Change the Ethernet address; raises NetdevError when the device refuses."""
        if len(mac) != 6:
            raise NetdevError(f"{self.name}: an Ethernet address has 6 bytes, not {len(mac)}")
        self._mac = bytes(mac)

    @property
    def mtu(self) -> int:
        """The MTU in bytes (the largest L3 packet, Ethernet header not counted)."""
        return self._mtu

    def set_mtu(self, mtu: int) -> None:
        """Change the MTU; raises NetdevError when the device refuses."""
        if not 68 <= mtu <= 65535:
            raise NetdevError(f"{self.name}: MTU {mtu} is outside 68..65535")
        self._mtu = mtu

    @property
    def up(self) -> bool:
        """The administrative state."""
        return self._up

    def set_up(self, up: bool) -> None:
        """Bring the device administratively up or down."""
        self._up = up

    @property
    def carrier(self) -> bool:
        """Whether the link is usable: up, no error, and (for real devices) a carrier."""
        return self._up and self.error is None and not self.closed

    def close(self) -> None:
        """Release the device's resources. Safe to call twice."""
        self.closed = True
