"""The system provider: an existing Linux Ethernet interface driven through AF_PACKET.

This is Open vSwitch's ``netdev-linux`` "system" class in its AF_PACKET form:
the interface (a NIC, or one end of a veth pair) must already exist; the
device opens one raw packet socket bound to it by ifindex, in promiscuous
mode, and never blocks. Link properties (ifindex, MTU, MAC, flags, carrier)
are read and changed through pyroute2's ``IPRoute``; there is no
hand-written netlink here. The type takes no options.

How frames move
    Receive uses a ``TPACKET_V2`` ring mapped into the process
    (``PACKET_RX_RING``): taking a frame costs no system call, only reading
    its slot header and copying its bytes out. Frames too big for a slot
    (GRO/GSO super-frames of up to 64 KiB) are not truncated:
    ``PACKET_COPY_THRESH`` makes the kernel also queue the whole frame on the
    socket, and the slot says so (``TP_STATUS_COPY``), so such frames are
    read with one ``recvmsg``. Send uses ``sendmmsg(2)`` through ctypes: one
    system call per batch, the frames joined into one buffer. The module
    comment above :data:`_SLOT_SIZE_MIN` gives the measurements behind the
    choice.

VLAN tags
    The kernel strips the outer 802.1Q or 802.1ad tag of a received frame
    into metadata. The ring slot carries it (``tp_vlan_tci`` with
    ``TP_STATUS_VLAN_VALID``, the TPID from ``tp_vlan_tpid`` when
    ``TP_STATUS_VLAN_TPID_VALID``), and :meth:`SystemNetdev.recv` puts it back
    where it was, so frames arrive as they were on the wire.

Our own transmissions
    ``PACKET_IGNORE_OUTGOING`` keeps every outgoing frame of the interface
    (ours and the host stack's) out of the ring, as a switch port should.

Checksum and segmentation offloads
    A frame a local stack sends through a veth usually has its TCP or UDP
    checksum left for the device to fill in (``CHECKSUM_PARTIAL``), and TCP
    sends GSO super-frames of up to 64 KiB, larger than the MTU; GRO makes
    frames like that on receive too. Forwarding such a frame as plain bytes
    sends a bad checksum (Open vSwitch 3.1's userspace datapath does exactly
    that, and TCP SYNs die) or a frame the next device refuses.

    The socket therefore has ``PACKET_VNET_HDR`` on: the kernel describes
    each received frame with a ``struct virtio_net_hdr`` (``NEEDS_CSUM`` with
    ``csum_start``/``csum_offset``, ``gso_type``/``gso_size``) and accepts
    the same header with each frame it is given to send, completing the
    checksum or segmenting as the real output device needs.

    The contract's frames are ``bytes``, so the header travels *with* the
    frame: a frame that needs an offload is a :class:`VnetFrame`, a ``bytes``
    subclass whose :attr:`VnetFrame.vnet` holds the 10-byte header (host byte
    order, ``csum_start`` counted from the first byte of the frame as
    returned, restored VLAN tags included). Every other frame is plain
    ``bytes``, and so costs nothing extra. :meth:`SystemNetdev.send` hands
    the header of a ``VnetFrame`` to the kernel and an all-zero header
    (nothing to do) with any other frame.

    A ``VnetFrame`` that leaves by a device that cannot take a vnet header
    (a dummy port, a tap without ``IFF_VNET_HDR``) is finished by that
    device's ``send()`` with :func:`finish_offloads`
    (:mod:`pyvswitch.packet.offload`), which completes the checksum in
    software and, for a GSO frame (TCP over IPv4 or IPv6, UDP with
    ``UDP_SEGMENT``), cuts it into segments of ``gso_size`` bytes of payload.
    The kernel does that itself for frames this device sends, so the
    software path costs nothing unless such a device is in the path.

    The datapath keeps the header right when it rewrites a frame
    (:func:`pyvswitch.dpif.execute.execute`): pushing or popping a VLAN tag
    moves ``csum_start`` with the L4 header, and a rewrite of L3 or L4 fields
    first finishes the work in software. Anything else that makes plain
    ``bytes`` from a ``VnetFrame`` (slicing, concatenation) drops the header,
    and the checksum would leave unfinished.

Errors and link state
    A device whose interface disappears or is set down by someone else
    reports it through :attr:`~pyvswitch.netdev.base.Netdev.error` and
    :attr:`SystemNetdev.carrier`; :meth:`SystemNetdev.recv` then returns
    ``[]`` and :meth:`SystemNetdev.send` drops and counts, and neither
    raises. The kernel flags the socket (``ENETDOWN``) when that happens, so
    the fast path tests only one attribute; a device in that state checks
    the link again at most once a second and resumes, rebinding if the name
    came back with a new ifindex. :attr:`SystemNetdev.carrier` and
    :attr:`SystemNetdev.up` ask the kernel each time they are read (about a
    millisecond: control plane only); ``mtu`` and ``mac`` may be up to a
    second old, unless changed through this device. A device we set down
    ourselves with :meth:`SystemNetdev.set_up` has no carrier but no error
    either. Calling ``configure`` again on an open device only looks at the
    link again; the socket and its file descriptor stay.

Statistics
    ``rx_*`` and ``tx_*`` count what this device received and sent; a GSO
    super-frame counts as one packet of its full length. ``rx_dropped``
    counts frames the kernel dropped because the ring was full (the kernel
    reports them with the next frame that fits), frames that arrived
    truncated, and frames still in the ring when the link went down;
    ``tx_dropped`` counts frames not sent because the device was
    down or the socket's buffer was full; ``tx_errors`` frames the kernel
    refused (too big, malformed).

Limits
    The ring is read with plain loads; the kernel publishes a slot with a
    write barrier after its data, and on x86-64 (total store order) loads are
    not reordered with each other, which makes this correct there. On a
    weakly ordered CPU (arm64) a read barrier between the status word and the
    data would be needed, and Python has none.

    The kernel's packet socket lets a frame exceed the MTU by a tag's four
    bytes only for 802.1Q: a full-sized frame with an 802.1ad tag, or two
    tags, is refused (``EMSGSIZE``, counted in ``tx_errors``) unless the
    interface's MTU leaves room for them, as for any Q-in-Q link. The
    receive side has no such limit of its own.

    A virtio_net_hdr describes TCP and UDP segmentation only: a received GSO
    frame of another kind (an encapsulated tunnel super-frame from a VXLAN or
    GRE device with TSO inside a namespace, SCTP, ESP) cannot be described,
    and the kernel drops it instead of delivering it (counted in
    ``rx_dropped``). Turning TSO off on the tunnel device avoids that.

    The frame given to the capture hook is the frame as it is, so a capture of
    a frame whose checksum was left to the device shows it unfinished, as
    ``tcpdump`` on the host does.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import errno
import itertools
import mmap
import operator
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pyvswitch.netdev.base import Netdev, NetdevError
from pyvswitch.netdev.registry import register_provider
from pyvswitch.packet.offload import (
    NO_VNET,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE,
    VNET,
    VNET_HDR_LEN,
    VnetFrame,
    finish_offloads,
    vnet_header,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["SystemNetdev", "VnetFrame", "finish_offloads", "vnet_header"]

# -- kernel ABI (linux/if_packet.h, linux/virtio_net.h) --------------------------

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_COPY_THRESH = 7
PACKET_VERSION = 10
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
TPACKET_V2 = 1
ETH_P_ALL = 0x0003
ARPHRD_ETHER = 1
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
MSG_DONTWAIT = 0x40

TP_STATUS_USER = 0x1
TP_STATUS_COPY = 0x2
TP_STATUS_LOSING = 0x4
TP_STATUS_CSUMNOTREADY = 0x8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
TP_STATUS_GSO_TCP = 0x100
# A slot whose status has any of these bits cannot be copied out as it is.
_SLOW_STATUS = TP_STATUS_COPY | TP_STATUS_CSUMNOTREADY | TP_STATUS_VLAN_VALID | TP_STATUS_GSO_TCP


# tpacket2_hdr is 32 bytes, followed (aligned to 16) by a sockaddr_ll of 20;
# the kernel puts an Ethernet frame so that its L3 header lands on a 16-byte
# boundary after that, and the vnet header right before the frame. That makes
# an Ethernet frame start 76 bytes into its slot.
_TPACKET2_HDRLEN = 32 + 20
_MAC_OFFSET = ((_TPACKET2_HDRLEN + 16 + 15) & ~15) + VNET_HDR_LEN - 14

# Why a TPACKET_V2 ring for receive and sendmmsg for send: measured on the
# project's 2-vCPU test VM (kernel 6.18, CPython 3.11, a shared and noisy
# machine), 64-byte frames through a veth pair whose far end is in another
# namespace, each method timed on the same frames in interleaved rounds.
#
#   receive, draining 3000 queued frames (median of 5)  frames/s  vs recv loop
#     socket.recv() loop, one frame per call             ~585,000  1.0
#     recvmmsg() via ctypes, 32 per call                  ~800,000  1.4
#     TPACKET_V2 ring (kept)                            ~1,450,000  2.5
#
#   send, 4000 frames in batches of 32 (best of 15)      frames/s  vs send loop
#     socket.send() loop, no vnet header                  ~470,000  1.0
#     socket.sendmsg([vnet, frame]) loop                  ~220,000  0.5
#     TPACKET_V2 TX ring, vnet header                     ~525,000  1.1
#     sendmmsg() via ctypes, vnet header (kept)           ~570,000  1.2
#
# benchmarks/bench_netdev_system.py then measured the kept paths against the
# plain loops (medians of 11-15 rounds, 2000 frames): receive 2.7-2.8x with
# 64-byte frames and 1.75x with 1514-byte ones; send 1.02-1.12x with 64-byte
# frames and 0.93x with 1514-byte ones. Sending is dominated by the kernel's
# per-frame work (a veth hands each frame to the peer namespace's stack inside
# the system call), and the plain loop carries no vnet header; of the ways
# that carry one, which the offloads need, sendmmsg is twice as fast as a
# sendmsg loop. Pointing the iovecs straight into the frames instead of
# joining them gained 6-11% more, but needs CPython's private bytes layout, so
# it was left out.
#
# The TX ring was not kept even where it was close: tpacket_snd() hands frames
# on as page references into the ring, and the slot is given back to user
# space when the sending socket lets go of the frame, which for a veth happens
# when the peer's IP layer takes it, while a TCP receive queue can still hold
# those pages; refilling the slot would then change data already delivered.
# sendmmsg copies. A TPACKET_V3 ring was not used either: it hands blocks over
# only when full or after a timeout of at least one jiffy (4 ms here), which
# adds that latency to a lone frame.

#: Smallest ring slot: an MTU-1500 frame with two VLAN tags fits.
_SLOT_SIZE_MIN = 2048
#: Largest ring slot; bigger frames take the copy path.
_SLOT_SIZE_MAX = 16384
#: Bytes of ring per device; 2048 slots of 2 KiB, enough for a burst of that
#: many frames between two polls.
_RING_BYTES = 4 << 20
_RING_BLOCK = 1 << 16
#: Socket buffers: the copy path queues super-frames there, and send bursts
#: wait there while the kernel works through them.
_SOCKET_BUFFER = 8 << 20
#: The largest frame the copy path reads: a 64 KiB GSO frame, its Ethernet
#: header, two tags and the vnet header.
_MAX_FRAME = 65535 + 14 + 8 + VNET_HDR_LEN
#: How many frames one sendmmsg call takes (longer lists are cut).
_SEND_BATCH = 64
#: A device in error looks at its link again at most this often (seconds).
_RECHECK_INTERVAL = 1.0
#: How old the MTU and MAC that ``mtu`` and ``mac`` return may be (seconds):
#: the datapath may read them per batch, and a netlink query costs about a
#: millisecond. Our own setters and any state change refresh them at once.
_PROPERTY_MAX_AGE = 1.0


# -- libc through ctypes ------------------------------------------------------------


class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint))


class _Libc:
    """The libc calls Python's socket module lacks (sendmmsg, bind by ifindex)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.sendmmsg = libc.sendmmsg
        self.sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
        self.sendmmsg.restype = ctypes.c_int
        self.bind = libc.bind
        self.bind.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self.bind.restype = ctypes.c_int


_libc: _Libc | None = None


def _get_libc() -> _Libc:
    global _libc  # noqa: PLW0603 - one lazily loaded handle for the process
    if _libc is None:
        _libc = _Libc()
    return _libc


# The iovec array is rewritten a whole batch at a time through a memoryview of
# machine words, so no Python code runs per frame; this needs pointers and
# size_t of the same width, which holds on every Linux ABI with AF_PACKET.
_WORD: Literal["Q", "I"] = "Q" if ctypes.sizeof(ctypes.c_void_p) == 8 else "I"
assert ctypes.sizeof(ctypes.c_size_t) == ctypes.sizeof(ctypes.c_void_p)


def _bind_packet_socket(fd: int, ifindex: int) -> None:
    """Bind an AF_PACKET socket to ``ifindex`` itself (Python's bind() takes a name)."""
    sockaddr_ll = struct.pack(
        "=HHiHBB8s", socket.AF_PACKET, socket.htons(ETH_P_ALL), ifindex, 0, 0, 0, b""
    )
    if _get_libc().bind(fd, sockaddr_ll, len(sockaddr_ll)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bind to ifindex {ifindex}: {errno.errorcode.get(err, err)}")


def _add_promisc(sock: socket.socket, ifindex: int) -> None:
    mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)


# -- link state through pyroute2 ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Link:
    index: int
    name: str
    flags: int
    mtu: int
    mac: bytes
    hatype: int


def _parse_link(msg: Any) -> _Link:
    address = msg.get("IFLA_ADDRESS") or ""
    return _Link(
        index=int(msg["index"]),
        name=str(msg.get("IFLA_IFNAME")),
        flags=int(msg["flags"]),
        mtu=int(msg.get("IFLA_MTU") or 0),
        mac=bytes.fromhex(address.replace(":", "")) if address else b"\0" * 6,
        hatype=int(msg["ifi_type"]),
    )


class _RTNL:
    """Link reads and changes through pyroute2 (see :mod:`pyvswitch.netdev.rtnl`).

    Each request uses a fresh IPRoute, in a helper thread when the caller runs
    an asyncio loop (as pvs-vswitchd does). Link state is cached by the
    device, so requests are about one a second per device at most.
    """

    def __init__(self) -> None:
        from pyvswitch.netdev.rtnl import netlink_error  # noqa: PLC0415

        self.netlink_error: type[Exception] = netlink_error()

    def get(self, *, index: int | None = None, name: str | None = None) -> _Link | None:
        """The link by index or name; None when there is none."""
        from pyvswitch.netdev.rtnl import rtnl_request  # noqa: PLC0415

        where: dict[str, object] = {"index": index} if index is not None else {"ifname": name}
        try:
            msgs = rtnl_request(lambda ipr: ipr.link("get", **where))
        except self.netlink_error as exc:
            if getattr(exc, "code", None) == errno.ENODEV:
                return None
            raise
        return _parse_link(msgs[0]) if msgs else None

    def set(self, index: int, **changes: object) -> None:
        from pyvswitch.netdev.rtnl import rtnl_request  # noqa: PLC0415

        rtnl_request(lambda ipr: ipr.link("set", index=index, **changes))

    def close(self) -> None:
        """Nothing is held between requests."""


# -- the device ----------------------------------------------------------------------


@register_provider
class SystemNetdev(Netdev):
    """An existing Linux Ethernet interface (type ``system``); see the module docstring."""

    type: ClassVar[str] = "system"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._rtnl: _RTNL | None = None
        self._sock: socket.socket | None = None
        self._ring: mmap.mmap | None = None
        self._words: memoryview | None = None
        self._ifindex = 0
        self._slots = 0
        self._slot_size = 0
        self._slot_words = 0
        self._head = 0
        # _ok is the one test on the fast path: the socket is open and the link
        # was usable when last seen. Anything else goes through _evaluate().
        self._ok = False
        self._admin_up = False
        self._down_by_us = False
        self._next_check = 0.0
        self._props_expire = 0.0
        # The sendmmsg descriptors are built once; send() only rewrites the
        # iovec words (address, length) of each batch.
        self._iov = (_Iovec * _SEND_BATCH)()
        self._msgs = (_Mmsghdr * _SEND_BATCH)()
        for i in range(_SEND_BATCH):
            self._msgs[i].msg_hdr.msg_iov = ctypes.addressof(self._iov[i])
            self._msgs[i].msg_hdr.msg_iovlen = 1
        self._iov_words = memoryview(self._iov).cast("B").cast(_WORD)
        self._msgs_addr = ctypes.addressof(self._msgs)
        self._msg_size = ctypes.sizeof(_Mmsghdr)

    # -- configuration -------------------------------------------------------------

    def configure(self, options: Mapping[str, str]) -> None:
        super().configure(options)  # rejects every option: the type takes none
        if self._sock is not None:
            # Already open: there is nothing to apply, only the link to look
            # at again. The socket (and so fileno()) stays; an interface that
            # was removed and made again is rebound by _evaluate().
            self._evaluate()
            return
        rtnl = self._rtnl or self._open_rtnl()
        try:
            link = rtnl.get(name=self.name)
        except (OSError, RuntimeError, rtnl.netlink_error) as exc:
            raise NetdevError(f"{self.name}: cannot read the interface: {exc}") from exc
        if link is None:
            raise NetdevError(
                f"{self.name}: no such network interface (a system interface must exist)"
            )
        if link.hatype != ARPHRD_ETHER:
            raise NetdevError(
                f"{self.name}: not an Ethernet interface (link type {link.hatype}),"
                " a system port needs one"
            )
        sock, ring, slot_size = self._open_socket(link)
        # Only now, with the new socket ready, is the old one (if any) replaced,
        # so a failed configure leaves the device as it was.
        self._close_socket()
        self._sock, self._ring, self._slot_size = sock, ring, slot_size
        self._words = memoryview(ring).cast("I")
        self._slots = len(ring) // slot_size
        self._slot_words = slot_size // 4
        self._head = 0
        self._ifindex = link.index
        self.error = None
        self._apply_link(link)

    def _open_rtnl(self) -> _RTNL:
        try:
            self._rtnl = _RTNL()
        except OSError as exc:
            raise NetdevError(f"{self.name}: cannot open rtnetlink: {exc}") from exc
        return self._rtnl

    def _open_socket(self, link: _Link) -> tuple[socket.socket, mmap.mmap, int]:
        # Protocol 0 receives nothing until bind(), so frames of other
        # interfaces never reach the ring in between.
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise NetdevError(
                f"{self.name}: opening a packet socket needs CAP_NET_RAW (run as root)"
            ) from exc
        except OSError as exc:
            raise NetdevError(f"{self.name}: cannot open a packet socket: {exc}") from exc
        ring: mmap.mmap | None = None
        try:
            # Offload metadata on both directions, and none of the interface's
            # outgoing frames (ours included) coming back to us.
            sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
            for force, plain in (
                (SO_RCVBUFFORCE, socket.SO_RCVBUF),
                (SO_SNDBUFFORCE, socket.SO_SNDBUF),
            ):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force, _SOCKET_BUFFER)
                except PermissionError:
                    sock.setsockopt(socket.SOL_SOCKET, plain, _SOCKET_BUFFER)
            slot_size = _SLOT_SIZE_MIN
            while slot_size < _MAC_OFFSET + link.mtu + 14 + 8 and slot_size < _SLOT_SIZE_MAX:
                slot_size *= 2
            block = max(_RING_BLOCK, slot_size)
            blocks = max(_RING_BYTES // block, 1)
            req = struct.pack("IIII", block, blocks, slot_size, blocks * (block // slot_size))
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            ring = mmap.mmap(sock.fileno(), block * blocks)
            _bind_packet_socket(sock.fileno(), link.index)
            _add_promisc(sock, link.index)
            sock.setblocking(False)
        except OSError as exc:
            if ring is not None:
                ring.close()
            sock.close()
            raise NetdevError(f"{self.name}: cannot set up the packet socket: {exc}") from exc
        return sock, ring, slot_size

    def _apply_link(self, link: _Link) -> None:
        """Take the link's properties, and judge whether it can carry frames."""
        self._mtu, self._mac = link.mtu, link.mac
        self._props_expire = time.monotonic() + _PROPERTY_MAX_AGE
        self._admin_up = bool(link.flags & IFF_UP)
        if not self._admin_up:
            self._ok = False
            self.error = None if self._down_by_us else f"{self.name}: interface is down"
            return
        self._down_by_us = False
        self.error = None
        self._ok = bool(link.flags & IFF_LOWER_UP)

    def _evaluate(self) -> None:
        """Read the link again and update error, carrier and the fast-path flag.

        Never raises: this runs from recv() and send().
        """
        self._next_check = time.monotonic() + _RECHECK_INTERVAL
        if self._sock is None or self._rtnl is None:
            self._ok = False
            return
        rtnl = self._rtnl
        try:
            link = rtnl.get(index=self._ifindex)
            if link is None:
                # The interface is gone. If one with the same name is back, the
                # socket is rebound to it and keeps its file descriptor, so an
                # owner polling it need not know.
                link = rtnl.get(name=self.name)
                if link is not None and link.hatype == ARPHRD_ETHER:
                    _bind_packet_socket(self._sock.fileno(), link.index)
                    _add_promisc(self._sock, link.index)
                    self._ifindex = link.index
                else:
                    link = None
        except Exception as exc:  # noqa: BLE001 - recv() and send() must never raise
            # pyroute2 raises more than OSError and NetlinkError (a closed or
            # confused netlink socket raises what its parser meets).
            self._ok = False
            self.error = f"{self.name}: cannot read the interface: {exc}"
            return
        if link is None:
            self._ok = False
            self.error = f"{self.name}: interface disappeared (ifindex {self._ifindex})"
            return
        self._apply_link(link)
        if self._ok:
            # The kernel left ENETDOWN pending on the socket when the link went
            # down or away; it is history now, and the next send would
            # otherwise fail with it.
            with contextlib.suppress(OSError):
                self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    # -- packets -----------------------------------------------------------------------

    def recv(self, max_batch: int = 32) -> list[bytes]:
        if not self._ok and not self._recover():
            return []
        words = self._words
        ring = self._ring
        assert words is not None
        assert ring is not None
        slot = self._head
        slots = self._slots
        slot_words = self._slot_words
        slot_size = self._slot_size
        out: list[bytes] = []
        append = out.append
        # The hot loop: per frame, three or four word reads, one copy out of
        # the ring and one word write to give the slot back.
        seen = 0
        for _ in range(max_batch):
            w = slot * slot_words
            status = words[w]
            if not status:
                break
            seen |= status
            length = words[w + 1]
            if status & _SLOW_STATUS or length != words[w + 2]:
                frame = self._slow_frame(slot, status)
                if frame is not None:
                    append(frame)
            else:
                start = slot * slot_size + (words[w + 3] & 0xFFFF)
                append(ring[start : start + length])
            words[w] = 0
            slot += 1
            if slot == slots:
                slot = 0
        consumed = slot != self._head
        self._head = slot
        if seen & TP_STATUS_LOSING:
            # The kernel marks every frame it queues while it is dropping
            # others; its drop count is read once a batch, not per frame
            # (under overload, that is most frames).
            self._count_kernel_drops()
        if out:
            self.stats.rx_packets += len(out)
            self.stats.rx_bytes += sum(map(len, out))
        elif not consumed and self._sock is not None:
            self._check_socket_error()
        return out

    def _slow_frame(self, slot: int, status: int) -> bytes | None:
        """A frame whose slot needs more than a copy (see _SLOW_STATUS)."""
        words, ring, sock = self._words, self._ring, self._sock
        assert words is not None
        assert ring is not None
        assert sock is not None
        w = slot * self._slot_words
        length, snaplen, mac = words[w + 1], words[w + 2], words[w + 3] & 0xFFFF
        if status & TP_STATUS_COPY:
            # The whole frame, with its vnet header, waits on the socket.
            try:
                data, _, flags, _ = sock.recvmsg(_MAX_FRAME)
            except OSError:
                self.stats.rx_errors += 1
                return None
            if flags & socket.MSG_TRUNC or len(data) < VNET_HDR_LEN:
                self.stats.rx_errors += 1
                return None
            vnet, frame = data[:VNET_HDR_LEN], data[VNET_HDR_LEN:]
        elif length != snaplen:
            # Too big for the slot and no room to queue a copy: it is lost.
            self.stats.rx_dropped += 1
            return None
        else:
            start = slot * self._slot_size + mac
            frame = ring[start : start + length]
            vnet = ring[start - VNET_HDR_LEN : start]
        flags_, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET.unpack(vnet)
        if status & TP_STATUS_VLAN_VALID:
            tci = words[w + 6] & 0xFFFF
            tpid = words[w + 6] >> 16 if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
            frame = frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
            # The header's offsets count from the frame's first byte, and the
            # L4 header just moved four bytes further.
            if flags_ & VIRTIO_NET_HDR_F_NEEDS_CSUM:
                csum_start += 4
            if hdr_len:
                hdr_len += 4
            vnet = VNET.pack(flags_, gso_type, hdr_len, gso_size, csum_start, csum_offset)
        if flags_ & VIRTIO_NET_HDR_F_NEEDS_CSUM or gso_type != VIRTIO_NET_HDR_GSO_NONE:
            return VnetFrame(frame, vnet)
        return frame

    def _recover(self) -> bool:
        """On a device that is down, gone or in error: whether it can be used again.

        While it cannot, the socket must stop polling readable, or an owner
        waiting on fileno() would spin: the pending error is read (which
        clears it) and frames still in the ring are dropped and counted.
        """
        sock = self._sock
        if sock is None:
            return False
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            err = errno.EBADF
        if err or time.monotonic() >= self._next_check:
            self._evaluate()
        if self._ok:
            return True
        self._discard_ring()
        return False

    def _discard_ring(self) -> None:
        words, sock = self._words, self._sock
        if words is None or sock is None:
            return
        slot = self._head
        for _ in range(self._slots):
            w = slot * self._slot_words
            status = words[w]
            if not status:
                break
            if status & TP_STATUS_COPY:
                # The frame's whole copy waits on the socket: take it off too.
                with contextlib.suppress(OSError):
                    sock.recv(1)
            words[w] = 0
            self.stats.rx_dropped += 1
            slot = slot + 1 if slot + 1 < self._slots else 0
        self._head = slot

    def _count_kernel_drops(self) -> None:
        """Add the frames the kernel dropped for want of ring space (it resets its count)."""
        if self._sock is None:
            return
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return
        self.stats.rx_dropped += struct.unpack("II", raw)[1]

    def _check_socket_error(self) -> None:
        """Clear a pending socket error; ENETDOWN means the link went down or away.

        The kernel sets the error when the interface goes down or is
        unregistered, and the socket polls readable until it is read, so an
        owner waiting on fileno() would spin without this.
        """
        assert self._sock is not None
        try:
            err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            err = errno.EBADF
        if err:
            self._evaluate()
            if self._ok and err != errno.ENETDOWN:
                self.stats.rx_errors += 1

    def send(self, frames: list[bytes]) -> int:
        total = len(frames)
        if not total:
            return 0
        if not self._ok:
            if self._sock is not None and time.monotonic() >= self._next_check:
                self._evaluate()
            if not self._usable():
                self.stats.tx_dropped += total
                return 0
        sent = 0
        for first in range(0, total, _SEND_BATCH):
            sent += self._send_batch(frames[first : first + _SEND_BATCH])
            if not self._usable():
                self.stats.tx_dropped += max(total - first - _SEND_BATCH, 0)
                break
        return sent

    def _usable(self) -> bool:
        # A method, so that type checkers see the flag can change under a call.
        return self._ok

    def _send_batch(self, frames: list[bytes]) -> int:
        """Send up to _SEND_BATCH frames with as few sendmmsg calls as the kernel allows."""
        n = len(frames)
        # Each message is a vnet header and a frame, laid end to end in one
        # buffer; plain frames share the all-zero header through join().
        if VnetFrame in set(map(type, frames)):
            parts: list[bytes] = []
            for frame in frames:
                parts.append(frame.vnet if type(frame) is VnetFrame else NO_VNET)
                parts.append(frame)
            buf = b"".join(parts)
        else:
            buf = NO_VNET + NO_VNET.join(frames)
        lengths = array.array(_WORD, map(len, frames))
        lengths = array.array(_WORD, map(operator.add, lengths, itertools.repeat(VNET_HDR_LEN, n)))
        base = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value
        assert base is not None
        words = self._iov_words
        words[0 : 2 * n : 2] = array.array(_WORD, itertools.accumulate(lengths[:-1], initial=base))
        words[1 : 2 * n : 2] = lengths
        sendmmsg = _get_libc().sendmmsg
        fd = self._sock.fileno() if self._sock is not None else -1
        sent = pos = 0
        retried = False
        # Every round sends at least one frame, gives one up, or is the one
        # retry after a link error, so the loop ends after at most n + 1 rounds.
        while pos < n:
            done = sendmmsg(fd, self._msgs_addr + pos * self._msg_size, n - pos, MSG_DONTWAIT)
            if done > 0:
                self.stats.tx_packets += done
                self.stats.tx_bytes += sum(lengths[pos : pos + done]) - VNET_HDR_LEN * done
                sent += done
                pos += done
                continue
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.ENOBUFS, errno.ENOMEM):
                # The socket's buffer is full: the rest of the batch would
                # fail the same way, so drop it now (congestion).
                self.stats.tx_dropped += n - pos
                break
            if err in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV, errno.EBADF):
                # The link went down or away under us, or did and is back (the
                # kernel reports a past ENETDOWN once): find out which, retry
                # once if it is usable, else drop the rest of the batch.
                self._evaluate()
                if self._usable() and not retried:
                    retried = True
                    continue
                self.stats.tx_dropped += n - pos
                break
            # The kernel refused this frame (EMSGSIZE for a frame over the MTU
            # without GSO, EINVAL for a malformed one): count it, go on.
            self.stats.tx_errors += 1
            pos += 1
        return sent

    def fileno(self) -> int | None:
        return self._sock.fileno() if self._sock is not None else None

    # -- properties ------------------------------------------------------------------

    def _refresh(self, max_age: float = 0.0) -> None:
        """Read the link again if what we know is older than ``max_age`` seconds."""
        if self._sock is None or self.closed:
            return
        if max_age and time.monotonic() < self._props_expire:
            return
        self._evaluate()

    def _require_open(self) -> tuple[_RTNL, int]:
        if self._sock is None or self._rtnl is None or self.closed:
            raise NetdevError(f"{self.name}: the device is not open")
        return self._rtnl, self._ifindex

    def _change(self, what: str, **changes: object) -> None:
        rtnl, index = self._require_open()
        try:
            rtnl.set(index, **changes)
        except (OSError, RuntimeError, rtnl.netlink_error) as exc:
            raise NetdevError(f"{self.name}: cannot set {what}: {exc}") from exc

    @property
    def mac(self) -> bytes:
        self._refresh(_PROPERTY_MAX_AGE)
        return self._mac

    def set_mac(self, mac: bytes) -> None:
        if len(mac) != 6:
            raise NetdevError(f"{self.name}: an Ethernet address has 6 bytes, not {len(mac)}")
        self._change(f"MAC {mac.hex(':')}", address=mac.hex(":"))
        self._refresh()

    @property
    def mtu(self) -> int:
        self._refresh(_PROPERTY_MAX_AGE)
        return self._mtu

    def set_mtu(self, mtu: int) -> None:
        if not 68 <= mtu <= 65535:
            raise NetdevError(f"{self.name}: MTU {mtu} is outside 68..65535")
        # Frames larger than a ring slot after this still arrive whole,
        # through the copy path.
        self._change(f"MTU {mtu}", mtu=mtu)
        self._refresh()

    @property
    def up(self) -> bool:
        self._refresh()
        return self._admin_up

    def set_up(self, up: bool) -> None:
        self._require_open()
        previous = self._down_by_us
        self._down_by_us = not up
        try:
            self._change("the interface " + ("up" if up else "down"), state="up" if up else "down")
        except NetdevError:
            self._down_by_us = previous
            raise
        self._refresh()

    @property
    def carrier(self) -> bool:
        if self._sock is None or self.closed:
            return False
        self._evaluate()
        return self._ok

    def close(self) -> None:
        self._close_socket()
        if self._rtnl is not None:
            with contextlib.suppress(OSError):
                self._rtnl.close()
            self._rtnl = None
        self._ok = False
        super().close()

    def _close_socket(self) -> None:
        if self._words is not None:
            self._words.release()
            self._words = None
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._ok = False
