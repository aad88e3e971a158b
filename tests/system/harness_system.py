"""The contract harness for the system provider: a veth pair, one end in a namespace.

The root-namespace end is opened as the ``system`` device under test; the
far end sits in a namespace of its own and is played through a raw packet
socket there (``NetnsLab.raw_socket``). The far end's socket restores the
VLAN tag the kernel strips into metadata (PACKET_AUXDATA), so a test sees
frames exactly as the device sent them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tests.netdev_harness import Harness, is_test_frame
from tests.system.netns import in_netns, ip

if TYPE_CHECKING:
    from pyvswitch.netdev import Netdev
    from tests.system.netns import NetnsLab

SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
#: struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid.
_AUXDATA = struct.Struct("=IIIHHHH")
#: Big enough for a burst of thousands of small frames, so the far end itself
#: never drops what the device sent.
_FAR_END_BUFFER = 16 << 20


def quiet_link(ifname: str, netns: str | None = None) -> None:
    """Stop the kernel's own traffic on one of our links.

    IPv6 is switched off (no router solicitations, MLD reports or
    link-local address), and a root-namespace end gets ``arp off`` so the
    host stack never answers ARP on it: the host may own an address from the
    documentation ranges the namespaces use.
    """
    if netns is None:
        conf = Path("/proc/sys/net/ipv6/conf") / ifname / "disable_ipv6"
        if conf.exists():
            conf.write_text("1\n")
        ip("link", "set", ifname, "arp", "off")
    else:
        in_netns(netns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1", check=False)


def far_end_socket(lab: NetnsLab, ifname: str, netns: str) -> socket.socket:
    """A raw socket on ``ifname`` in ``netns`` that reports stripped VLAN tags."""
    sock = lab.raw_socket(ifname, netns)
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, 33, _FAR_END_BUFFER)  # SO_RCVBUFFORCE
    return sock


def recv_restoring_vlan(sock: socket.socket, skip: int = 0) -> bytes:
    """One frame from ``sock`` with its stripped VLAN tag put back (BlockingIOError if none).

    ``skip`` is the length of what precedes the frame (a vnet header).
    """
    data, ancdata, _, _ = sock.recvmsg(65536 + skip, socket.CMSG_SPACE(_AUXDATA.size))
    for level, kind, value in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= _AUXDATA.size:
            status, _, _, _, _, tci, tpid = _AUXDATA.unpack_from(value)
            if status & TP_STATUS_VLAN_VALID:
                if not status & TP_STATUS_VLAN_TPID_VALID:
                    tpid = 0x8100
                at = skip + 12
                data = data[:at] + struct.pack("!HH", tpid, tci) + data[at:]
    return data


def recv_all(
    sock: socket.socket, count: int, timeout: float, keep: str = "test", skip: int = 0
) -> list[bytes]:
    """Up to ``count`` frames from ``sock``: test frames, or every frame if ``keep="all"``."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        select.select([sock], [], [], min(left, 0.1))
        for _ in range(4096):
            try:
                frame = recv_restoring_vlan(sock, skip)
            except BlockingIOError:
                break
            if keep == "all" or is_test_frame(frame[skip:]):
                got.append(frame)
    return got


def send_all(sock: socket.socket, frames: list[bytes], timeout: float = 5.0) -> None:
    """Send every frame, waiting (bounded) when the socket's buffer is full."""
    deadline = time.monotonic() + timeout
    for frame in frames:
        while True:
            try:
                sock.send(frame)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the far end could not send in time") from None
                select.select([], [sock], [], 0.05)


class SystemHarness(Harness):
    """A veth pair: the root end is the system device, the far end a socket in a namespace."""

    type: ClassVar[str] = "system"
    # The far end's socket has a buffer far larger than any test burst and a
    # veth hands frames over inside the sending call, so nothing is lost.
    lossy: ClassVar[bool] = False

    def __init__(self, lab: NetnsLab) -> None:
        self.lab = lab
        self.netns: str | None = None
        self.root_end: str | None = None
        self.far_end: str | None = None
        self.far: socket.socket | None = None
        self.dev: Netdev | None = None

    def open(self) -> Netdev:
        from pyvswitch.netdev import netdev_open

        self.netns = self.lab.netns()
        self.root_end, self.far_end = self.lab.veth(self.netns)
        quiet_link(self.root_end)
        quiet_link(self.far_end, self.netns)
        self.far = far_end_socket(self.lab, self.far_end, self.netns)
        self.dev = netdev_open(self.root_end, "system")
        return self.dev

    def inject(self, frames: list[bytes]) -> None:
        assert self.far is not None
        send_all(self.far, frames)

    def collect(self, count: int, timeout: float = 3.0) -> list[bytes]:
        assert self.far is not None
        return recv_all(self.far, count, timeout)

    def close(self) -> None:
        from pyvswitch.netdev import netdev_close, references

        try:
            while self.dev is not None and self.root_end and references(self.root_end):
                netdev_close(self.dev)
            if self.dev is not None:
                self.dev.close()
        finally:
            if self.far is not None:
                self.far.close()
                self.far = None
            # The device object stays reachable (a test may look at it after
            # closing); what the harness made in the kernel goes now.
            if self.root_end:
                ip("link", "del", self.root_end, check=False)
                self.root_end = None
            if self.netns:
                ip("netns", "del", self.netns, check=False)
                self.netns = None
