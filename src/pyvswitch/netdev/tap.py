"""The tap and internal providers: ports backed by a Linux tap device.

A tap device has two sides. The *kernel side* is an ordinary network
interface that the host sees (``ip link``), can give addresses and route
through; the *file side* is a file descriptor on ``/dev/net/tun`` that this
provider holds: what the host sends out of the interface is read from the
descriptor (our ``recv``), and what is written to the descriptor arrives on the
interface as if from a wire (our ``send``). This is Open vSwitch's
``netdev_tap_class``; ``internal`` is the same device used as a bridge's local
port and named after the bridge, as OVS's userspace datapath does it.

Choices, and why
    * ``IFF_NO_PI`` and no ``IFF_VNET_HDR``: a frame on the descriptor is a
      plain Ethernet frame, which is exactly the contract's ``bytes``. Without
      the virtio-net header the tap advertises no segmentation or checksum
      offload, so the kernel segments GSO packets and completes checksums
      *before* handing them to us: every frame we read fits the MTU and is
      valid on a wire, and every frame we write is taken as complete. Passing
      GSO frames through would need a place for the header in the contract.
    * The interface is non-persistent: closing the descriptor removes it, so
      a crashed switch leaves nothing behind. Attaching to an existing
      persistent tap (made with ``ip tuntap add``) also works; ``close()``
      then leaves it where it was, as it found it.
    * Link state (address, MTU, flags) comes from the kernel through pyroute2
      and is cached. A netlink socket subscribed to link notifications tells
      when the cache is stale, so reading a property costs one failed
      ``recv`` when nothing changed instead of a netlink round trip (about a
      millisecond with pyroute2). pyroute2 decodes the notifications; nothing
      here builds or parses netlink messages by hand.
    * The kernel side may be moved to another network namespace
      (``ip link set NAME netns NS``); the descriptor keeps working there. The
      move's notification names the namespace, and the properties follow the
      interface into it (queried there on every read, since its notifications
      do not reach us). Setters refuse while it is away: the kernel does not
      accept link changes across namespaces.
    * If the kernel side disappears (deleted, or its namespace removed), the
      descriptor is detached: reads and writes fail with ``EBADFD``. The device
      then sets :attr:`~pyvswitch.netdev.base.Netdev.error`, reports no
      carrier, returns None from :meth:`TapNetdev.fileno` (a detached
      descriptor polls readable forever) and keeps the descriptor open until
      ``close()``, so that its number is not reused under an owner that still
      polls it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import select
import socket
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pyroute2.netlink.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    NetlinkError,
)
from pyroute2.netlink.rtnl import (  # type: ignore[import-untyped, unused-ignore]
    RTM_DELLINK,
    RTMGRP_LINK,
)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl  # type: ignore[import-untyped, unused-ignore]

from pyvswitch.netdev.base import Netdev, NetdevError, finished
from pyvswitch.netdev.registry import register_provider
from pyvswitch.netdev.rtnl import rtnl_request

if TYPE_CHECKING:
    from collections.abc import Mapping

# From <linux/if_tun.h> and <linux/if.h>. TUNSETIFF is the one ioctl this
# module makes: creating or attaching a tap has no netlink equivalent.
_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_IFF_UP = 0x1
_IFF_LOWER_UP = 0x10000
_TUN_TYPE_TAP = 2
#: IFNAMSIZ: the kernel's limit on an interface name, terminating NUL included.
_IFNAMSIZ = 16

#: The largest frame a tap can hand us: its largest MTU (65535) plus an
#: Ethernet header and two VLAN tags, rounded up. Reading with this size costs
#: no more than with a small one (measured: both about 1.7 us a frame), and a
#: frame can never be cut.
_READ_SIZE = 65535 + 64
#: How many notification datagrams one refresh reads before it gives up and
#: assumes that something changed, so a storm of notifications about other
#: interfaces cannot hold a property read for long.
_NOTIFICATION_READS = 64
#: How many queued frames ``set_up(False)`` discards at most; a tap queues
#: ``txqueuelen`` frames (1000 unless changed), so this bounds the loop only.
_DISCARD_LIMIT = 1 << 16
#: What a pyroute2 request can raise: the kernel's refusal, a socket error, a
#: timeout in the helper thread, or pyroute2's own event loop complaining.
_RTNL_ERRORS = (NetlinkError, OSError, RuntimeError, TimeoutError)


def _bad_ifname(name: str) -> str | None:
    """Why the kernel would refuse ``name`` as an interface name, or None."""
    raw = name.encode()
    if not raw or len(raw) >= _IFNAMSIZ:
        return f"an interface name has 1 to {_IFNAMSIZ - 1} bytes, not {len(raw)}"
    if name in {".", ".."} or any(c.isspace() or c in "/:%\0" for c in name):
        # '%' is valid for the kernel, but it turns "tap%d" into "tap0": the
        # interface would not have the name the switch knows it by.
        return "an interface name cannot be '.' or '..' or contain '/', ':', '%' or spaces"
    return None


def _mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _native_nsid(value: int) -> int:
    """IFLA_NEW_NETNSID as the kernel meant it.

    pyroute2 0.9.7 declares this attribute big-endian, but the kernel writes it
    in host order, so on x86 namespace id 1 reads as 16777216. Real ids are
    small, so a value that only makes sense byte-swapped is swapped back; if
    pyroute2 is fixed, values stay small and pass through unchanged.
    """
    if 0 <= value <= 0xFFFF:
        return value
    return int.from_bytes(value.to_bytes(4, "big"), sys.byteorder, signed=True)


def _machine_id() -> bytes:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            return Path(path).read_bytes().strip()
    return b""


def stable_mac(name: str) -> bytes:
    """The Ethernet address an internal port gets unless one is set.

    It is locally administered and unicast, random-looking, and the same every
    time this machine opens a port of that name, so neighbours' ARP caches stay
    right across restarts. The machine id is mixed in, as systemd does for its
    persistent addresses, so that two hosts with a bridge of the same name on
    one segment do not share an address.
    """
    digest = hashlib.sha256(b"pyvswitch internal\0" + _machine_id() + b"\0" + name.encode())
    raw = digest.digest()
    return bytes(((raw[0] & 0xFC) | 0x02, *raw[1:6]))


def _explain(exc: BaseException, existed: bool) -> str:
    """A reason a user can act on for a failure to open a tap."""
    if isinstance(exc, OSError) and exc.errno is not None:
        code = exc.errno
        if code == errno.ENOENT:
            return "/dev/net/tun is missing (is the tun module loaded?)"
        if code in {errno.EPERM, errno.EACCES}:
            return "permission denied (a tap needs CAP_NET_ADMIN)"
        if code == errno.EBUSY:
            return "the tap is in use by another program"
        if code == errno.EINVAL and existed:
            return "an interface of that name exists and is not a tap"
        return os.strerror(code)
    if isinstance(exc, NetlinkError):
        return os.strerror(int(exc.code))
    return str(exc)


@register_provider
class TapNetdev(Netdev):
    """A Linux tap device (type ``tap``); see the module docstring."""

    type: ClassVar[str] = "tap"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._fd = -1
        self._monitor: socket.socket | None = None
        self._marshal: Any = None
        # Where the kernel side is: its index, and the id (in our namespace)
        # of the namespace it moved to, None while it is in ours.
        self._ifindex = 0
        self._nsid: int | None = None
        self._stale = True
        self._lower_up = False
        #: Whether configure() created the kernel interface (False when it
        #: attached to an existing persistent tap, which close() leaves).
        self.created = False

    # -- life cycle -------------------------------------------------------------

    def configure(self, options: Mapping[str, str]) -> None:
        if self.closed:
            raise NetdevError(f"{self.name}: the device is closed")
        why = _bad_ifname(self.name)
        if why:
            raise NetdevError(f"{self.name}: {why}")
        super().configure(options)
        if self._fd < 0:
            self._open()

    def _open(self) -> None:
        name = self.name
        try:
            existed = bool(rtnl_request(lambda ipr: ipr.link_lookup(ifname=name)))
        except _RTNL_ERRORS as exc:
            raise NetdevError(f"{name}: cannot list the kernel's interfaces: {exc}") from exc
        monitor: socket.socket | None = None
        fd = -1
        step = "subscribe to link notifications"
        try:
            # The notification socket is opened before the interface, in the
            # same namespace as the requests, so no change to it is missed.
            monitor = socket.socket(
                socket.AF_NETLINK,
                socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                socket.NETLINK_ROUTE,
            )
            monitor.bind((0, RTMGRP_LINK))
            step = "open /dev/net/tun"
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            step = "create the tap" if not existed else "attach to the existing interface"
            # struct ifreq: the name, then the flags in a 24-byte union.
            fcntl.ioctl(
                fd, _TUNSETIFF, struct.pack("16sH22x", name.encode(), _IFF_TAP | _IFF_NO_PI)
            )
            step = "find the tap's interface index"
            index = rtnl_request(lambda ipr: ipr.link_lookup(ifname=name))
            if not index:
                raise OSError(errno.ENODEV, "the interface vanished as it was made")
        except _RTNL_ERRORS as exc:
            if monitor is not None:
                monitor.close()
            if fd >= 0:
                os.close(fd)
            raise NetdevError(f"{name}: cannot {step}: {_explain(exc, existed)}") from exc
        self._monitor, self._fd, self._ifindex = monitor, fd, int(index[0])
        self._marshal = MarshalRtnl()
        self._nsid, self._stale, self.created = None, True, not existed
        try:
            self._opened()
        except BaseException:
            self._release()
            raise

    def _opened(self) -> None:
        """What a subclass does to a freshly opened device (nothing for a tap)."""

    def _release(self) -> None:
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        if self._fd >= 0:
            # A non-persistent tap disappears with its last descriptor.
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self._release()
        self._lower_up = False
        super().close()

    # -- packets ------------------------------------------------------------------

    def recv(self, max_batch: int = 32) -> list[bytes]:
        fd = self._fd
        if fd < 0 or self.error is not None:
            return []
        frames: list[bytes] = []
        read = os.read
        try:
            for _ in range(max_batch):
                # A failed read ends the batch; the frames read before it are kept.
                frames.append(read(fd, _READ_SIZE))  # noqa: PERF401
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.EBADFD:
                self._gone()
            else:
                self.stats.rx_errors += 1
        if frames:
            self.stats.rx_packets += len(frames)
            self.stats.rx_bytes += sum(map(len, frames))
        return frames

    def send(self, frames: list[bytes]) -> int:
        stats = self.stats
        fd = self._fd
        if fd < 0 or self.error is not None:
            stats.tx_dropped += len(frames)
            return 0
        frames = finished(frames)
        sent = nbytes = 0
        write = os.write
        for i, frame in enumerate(frames):
            try:
                nbytes += write(fd, frame)
            except OSError as exc:
                code = exc.errno
                if code in {errno.EIO, errno.EBADFD}:
                    # The interface is down (EIO) or gone (EBADFD): every
                    # later frame would fail the same way.
                    stats.tx_dropped += len(frames) - i
                    if code == errno.EBADFD:
                        self._gone()
                    break
                if code in {errno.EAGAIN, errno.ENOBUFS}:
                    stats.tx_dropped += 1
                else:
                    # EINVAL: shorter than an Ethernet header, or too long.
                    stats.tx_errors += 1
            else:
                sent += 1
        stats.tx_packets += sent
        stats.tx_bytes += nbytes
        return sent

    def fileno(self) -> int | None:
        return self._fd if self._fd >= 0 and self.error is None else None

    # -- link state ---------------------------------------------------------------

    def _gone(self) -> None:
        self.error = (
            f"{self.name}: the kernel interface is gone (deleted, or its network namespace"
            " was removed)"
        )
        self._lower_up = False

    def _detached(self) -> bool:
        """Whether the kernel dropped our descriptor's interface (it polls POLLERR then)."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return any(ev & (select.POLLERR | select.POLLNVAL) for _, ev in poller.poll(0))

    def _read_notifications(self) -> None:
        """Mark the cache stale if the kernel reported a change to our interface."""
        monitor = self._monitor
        if monitor is None:
            return
        for _ in range(_NOTIFICATION_READS):
            try:
                data = monitor.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                # ENOBUFS: the socket overflowed and notifications were lost,
                # perhaps ours.
                self._stale = True
                continue
            for msg in self._marshal.parse(data):
                # While the interface is in another namespace, notifications
                # from ours say nothing about it.
                if self._nsid is not None or msg.get("index") != self._ifindex:
                    continue
                self._stale = True
                nsid = msg.get("IFLA_NEW_NETNSID")
                if msg["header"]["type"] == RTM_DELLINK and nsid is not None:
                    self._nsid = _native_nsid(int(nsid))
                    self._ifindex = int(msg.get("IFLA_NEW_IFINDEX") or self._ifindex)
        self._stale = True

    def _query(self) -> Any:
        """The kernel's link message for our interface where we last saw it, or None."""
        index, nsid = self._ifindex, self._nsid
        if nsid is not None and nsid < 0:
            return None
        where = {} if nsid is None else {"if_netnsid": nsid}
        try:
            return rtnl_request(lambda ipr: ipr.link("get", index=index, **where))[0]
        except _RTNL_ERRORS:
            return None

    def _find_by_descriptor(self) -> Any:
        """Our interface, looked up in our namespace by the name our descriptor reports.

        This finds it again after it came back from another namespace, which
        our notifications cannot tell (a move is announced in the namespace it
        leaves). A tap of that name counts as ours only if it still has the
        address we last saw: adopting somebody else's would be worse than
        reporting stale state.
        """
        try:
            fdinfo = Path(f"/proc/self/fdinfo/{self._fd}").read_text()
        except OSError:
            return None
        name = next((ln[4:].strip() for ln in fdinfo.splitlines() if ln.startswith("iff:")), "")
        if not name:
            return None
        try:
            msg = rtnl_request(lambda ipr: ipr.link("get", ifname=name))[0]
        except _RTNL_ERRORS:
            return None
        data = msg.get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))
        if (
            msg.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) != "tun"
            or data is None
            or data.get("IFLA_TUN_TYPE") != _TUN_TYPE_TAP
            or msg.get("IFLA_ADDRESS") != _mac_text(self._mac)
        ):
            return None
        return msg

    def _refresh(self) -> None:
        """Bring the cached link state up to date; never raises."""
        if self._fd < 0 or self.error is not None:
            return
        self._read_notifications()
        if not self._stale:
            return
        msg = self._query()
        if msg is None:
            if self._detached():
                self._gone()
                return
            msg = self._find_by_descriptor()
            if msg is None:
                # Attached, but somewhere we cannot see: keep what we knew.
                return
            self._nsid, self._ifindex = None, int(msg["index"])
        flags = int(msg["flags"])
        self._mac = bytes.fromhex(str(msg.get("IFLA_ADDRESS")).replace(":", ""))
        self._mtu = int(msg.get("IFLA_MTU"))
        self._up = bool(flags & _IFF_UP)
        # A tap's operstate reads UNKNOWN even when it works; IFF_LOWER_UP is
        # the carrier the kernel keeps (on while a descriptor is attached).
        self._lower_up = bool(flags & _IFF_LOWER_UP)
        # Notifications reach us from our own namespace only.
        self._stale = self._nsid is not None

    def _set_link(self, what: str, **attrs: Any) -> None:
        """Change the kernel interface; NetdevError naming ``what`` when that fails."""
        self._refresh()
        if self.closed:
            raise NetdevError(f"{self.name}: cannot set {what}: the device is closed")
        if self._fd < 0:
            raise NetdevError(f"{self.name}: cannot set {what}: the device is not configured")
        if self.error is not None:
            raise NetdevError(f"cannot set {what}: {self.error}")
        if self._nsid is not None:
            raise NetdevError(
                f"{self.name}: cannot set {what}: the kernel interface is in another network"
                " namespace; change it there"
            )
        index = self._ifindex
        try:
            rtnl_request(lambda ipr: ipr.link("set", index=index, **attrs))
        except NetlinkError as exc:
            raise NetdevError(
                f"{self.name}: the kernel refused {what}: {os.strerror(exc.code)}"
            ) from exc
        except (OSError, RuntimeError) as exc:
            raise NetdevError(f"{self.name}: cannot set {what}: {exc}") from exc
        finally:
            self._stale = True

    @property
    def mac(self) -> bytes:
        self._refresh()
        return self._mac

    def set_mac(self, mac: bytes) -> None:
        old = self._mac
        super().set_mac(mac)  # validates the length
        try:
            self._set_link(f"Ethernet address {_mac_text(mac)}", address=_mac_text(mac))
        except NetdevError:
            self._mac = old
            raise

    @property
    def mtu(self) -> int:
        self._refresh()
        return self._mtu

    def set_mtu(self, mtu: int) -> None:
        old = self._mtu
        super().set_mtu(mtu)  # validates the range
        try:
            self._set_link(f"MTU {mtu}", mtu=mtu)
        except NetdevError:
            self._mtu = old
            raise

    @property
    def up(self) -> bool:
        self._refresh()
        return self._up

    def set_up(self, up: bool) -> None:
        self._set_link("the interface " + ("up" if up else "down"), state="up" if up else "down")
        super().set_up(up)
        if not up:
            # The kernel keeps what it queued before the interface went down;
            # a down port receives nothing, so that is dropped here.
            dropped = 0
            with contextlib.suppress(OSError):
                for _ in range(_DISCARD_LIMIT):
                    os.read(self._fd, _READ_SIZE)
                    dropped += 1
            self.stats.rx_dropped += dropped

    @property
    def carrier(self) -> bool:
        self._refresh()
        return self._up and self._lower_up and self.error is None and not self.closed


@register_provider
class InternalNetdev(TapNetdev):
    """A bridge's local port (type ``internal``): a tap named after the bridge.

    The host sees it as an interface it can give addresses to, as with Open
    vSwitch's userspace datapath. It comes up as soon as it is opened and gets
    :func:`stable_mac` as its address unless it existed already.
    """

    type: ClassVar[str] = "internal"

    def _opened(self) -> None:
        if self.created:
            mac = _mac_text(stable_mac(self.name))
            self._set_link(f"Ethernet address {mac}", address=mac)
        self._set_link("the interface up", state="up")
