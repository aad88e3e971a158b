"""Harnesses for the tap and internal providers: the far side is the kernel interface.

The device under test holds the tap's file descriptor; the harness plays the
host through an AF_PACKET socket bound to the tap's kernel interface. What the
socket sends, the device receives; what the device sends, the socket receives.

Two things of the kernel side are set so that the shared contract tests see
what the device did and nothing else:

* The socket's receive buffer is raised to 8 MiB. With the default (about
  200 KiB) it holds only some 300 small frames, so a burst the device sent
  without loss would arrive partly at the far side (measured: 303 of 1000).
* The tap's queue (``txqueuelen``, the ring of frames waiting for the
  descriptor) is raised to 4096 frames, so a burst injected before the device
  reads is queued rather than dropped by the kernel. With the default of 1000
  a burst of 1000 lost the frames the kernel's own chatter had taken.

The kernel strips a VLAN tag from a frame before an AF_PACKET socket sees it
and reports it beside the frame (PACKET_AUXDATA); the harness puts it back, as
tcpdump does, so frames compare byte for byte.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from typing import TYPE_CHECKING, ClassVar

from tests.netdev_harness import Harness, is_test_frame
from tests.system.netns import ip

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pyvswitch.netdev import Netdev
    from tests.system.netns import NetnsLab

# From <linux/if_packet.h>.
SOL_PACKET = 263
# From <asm-generic/socket.h>; Python names SO_RCVBUF but not its root-only twin.
SO_RCVBUFFORCE = 33
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
# struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid.
_AUXDATA = struct.Struct("=IIIHHHH")

FAR_RCVBUF = 8 << 20
TAP_QUEUE_LEN = 4096
_RECV_SIZE = 65535 + 64


class KernelSideHarness(Harness):
    """The far side of a tap-backed device: an AF_PACKET socket on its kernel interface."""

    #: The role lab.name() abbreviates into the device's name.
    role: ClassVar[str] = "tap"

    def __init__(self, lab: NetnsLab) -> None:
        self.lab = lab
        self.name = lab.name(self.role)
        self.dev: Netdev | None = None
        self.sock: socket.socket | None = None
        #: Frames the far side could not send (the kernel side was down).
        self.inject_failures = 0

    def open(self) -> Netdev:
        from pyvswitch.netdev import netdev_open

        # Registered before it exists, so that the lab removes it even if the
        # test dies half way through making it.
        self.lab.links.append(self.name)
        self.dev = netdev_open(self.name, self.type)
        # The host's end: up (a harness plays a host that uses its link) and
        # with room for bursts (see the module docstring).
        ip("link", "set", self.name, "up", "txqueuelen", str(TAP_QUEUE_LEN))
        sock = self.lab.raw_socket(self.name)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, FAR_RCVBUF)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock = sock
        return self.dev

    def inject(self, frames: list[bytes]) -> None:
        assert self.sock is not None
        for frame in frames:
            # A full socket buffer clears in microseconds; retry a few times,
            # bounded, before counting the frame as lost.
            for _ in range(50):
                try:
                    self.sock.send(frame)
                    break
                except (BlockingIOError, InterruptedError):
                    select.select([], [self.sock], [], 0.01)
                except OSError:
                    # ENETDOWN and the like: the host's end is down, as on a
                    # real wire the frame is lost.
                    self.inject_failures += 1
                    break
            else:
                self.inject_failures += 1

    def receive(
        self, count: int, timeout: float = 3.0, match: Callable[[bytes], bool] = is_test_frame
    ) -> list[bytes]:
        """Frames the device sent that ``match`` accepts, until ``count`` or ``timeout``."""
        assert self.sock is not None
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([self.sock], [], [], min(left, 0.1))
            got.extend(frame for frame in self.pending() if match(frame))
        return got[:count]

    def pending(self, limit: int = 4096) -> Iterator[bytes]:
        """The frames the device sent that are queued now, VLAN tags put back."""
        assert self.sock is not None
        for _ in range(limit):
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(
                    _RECV_SIZE, socket.CMSG_SPACE(_AUXDATA.size)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # The socket reports once that its interface went down
                # (ENETDOWN); reading goes on after that.
                if exc.errno != errno.ENETDOWN:
                    raise
                continue
            # Frames the host itself sends out of the interface are seen here
            # too; they are not the device's.
            if addr[2] == PACKET_OUTGOING:
                continue
            for level, kind, cdata in ancdata:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= _AUXDATA.size:
                    status, _, _, _, _, tci, tpid = _AUXDATA.unpack_from(cdata)
                    if status & TP_STATUS_VLAN_VALID:
                        tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            yield data

    def collect(self, count: int, timeout: float = 3.0) -> list[bytes]:
        return self.receive(count, timeout)

    def close(self) -> None:
        from pyvswitch.netdev import netdev_close, references

        if self.sock is not None:
            self.sock.close()
            self.sock = None
        # Bounded by the device's references. Closing the last one closes the
        # descriptor, which removes the tap; the lab removes it otherwise.
        while self.dev is not None and references(self.name):
            netdev_close(self.dev)


class TapHarness(KernelSideHarness):
    """A ``tap`` device; the far side is the host's end of the tap."""

    type: ClassVar[str] = "tap"
    role: ClassVar[str] = "tap"


class InternalHarness(KernelSideHarness):
    """An ``internal`` device (a bridge's local port) named like a bridge."""

    type: ClassVar[str] = "internal"
    role: ClassVar[str] = "br"
