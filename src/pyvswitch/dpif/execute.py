"""Executing datapath actions on frames, as Open vSwitch's ``odp-execute.c`` does.

:func:`execute` applies a megaflow's actions to one frame and returns what
each output action sent; :func:`execute_batch` does the same for a batch of
frames that hit one megaflow. The common case is kept cheap: when the actions
only output (and push or pop VLAN tags), no frame is parsed, and a frame that
is sent unchanged is the very ``bytes`` object that came in (bytes cannot be
changed, so sharing one is the copy).

Set actions rewrite header fields and update the checksums that cover them
incrementally (RFC 1624), as ``lib/packets.c`` does, so the bytes equal what
Open vSwitch 3.1 sends: the IPv4 header checksum; the TCP, UDP and ICMPv6
checksums when an address of the pseudo-header changes; a UDP checksum of 0
(none, over IPv4) stays 0, and one that an update turns into 0 is written as
0xffff; the SCTP CRC32c is recomputed keeping whatever error it had.

Where the headers are is decided as the datapath decides it, once per frame
and only when a set action needs it: from the frame as it was received (up
to two VLAN tags, LLC/SNAP, the IP sanity checks of ``miniflow_extract()``),
then moved by every tag pushed or popped since. A field whose header the
frame lacks, or whose header is cut short, is left alone; nothing here raises
on any frame. Only a malformed action (a field that cannot be set) raises
:class:`ValueError`, before any frame is touched.

Where we deliberately differ from Open vSwitch 3.1:

* An IPv4 or IPv6 *later fragment* carries no L4 header, but OVS 3.1 still
  "updates" a TCP or UDP checksum at the L4 checksum's offset when an address
  changes, which rewrites two bytes of the fragment's payload (checked in the
  sandbox). We leave later fragments' payload alone.
* Behind an IPv6 routing header with segments left, OVS 3.1 updates no L4
  checksum at all, although the pseudo-header holds the source address. We
  update it for a source change (a destination change does not affect it: the
  pseudo-header holds the final destination).
* OVS writes a set action into whatever sits where the datapath expects the
  header (translation guarantees it is there). We check: a set named for
  ``ipv4`` does nothing to an IPv6 frame, ``udp`` nothing to a TCP segment.
* A masked set whose value has bits outside its mask (which translation never
  emits and the kernel datapath refuses) has those bits ORed into the field
  by OVS's userspace datapath (``key | (old & ~mask)``, checked in the
  sandbox). We set only the bits of the mask, as :class:`OdpSetMasked` says.
"""

from __future__ import annotations

import struct
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from pyvswitch.dpif.actions import (
    OdpClone,
    OdpOutput,
    OdpPopVlan,
    OdpPushVlan,
    OdpSetField,
    OdpSetMasked,
    OdpTnlPop,
    OdpTnlPush,
    OdpTrunc,
    OdpUserspace,
)
from pyvswitch.dpif.tunnel_exec import TunnelRuntime
from pyvswitch.dpif.tunnel_exec import pop as tunnel_pop
from pyvswitch.dpif.tunnel_exec import push as tunnel_push
from pyvswitch.packet.checksum import (
    checksum,
    checksum_update16,
    checksum_update32,
    checksum_update_bytes,
)
from pyvswitch.packet.offload import (
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VNET,
    VnetFrame,
    finish_offloads,
    rewrap,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pyvswitch.dpif.actions import OdpAction

#: For every field a set action may write: the headers it can be set in, the
#: one used when an action names none first (that is the one printed).
FIELD_HEADERS: dict[str, tuple[str, ...]] = {
    "dl_src": ("eth",),
    "dl_dst": ("eth",),
    "nw_src": ("ipv4",),
    "nw_dst": ("ipv4",),
    "nw_tos": ("ipv4", "ipv6"),
    "nw_ttl": ("ipv4", "ipv6"),
    "ipv6_src": ("ipv6",),
    "ipv6_dst": ("ipv6",),
    "ipv6_label": ("ipv6",),
    "tp_src": ("tcp", "udp", "sctp", "icmp", "icmpv6"),
    "tp_dst": ("tcp", "udp", "sctp", "icmp", "icmpv6"),
}

#: Width in bits of each field inside each header (ICMP's type and code are
#: bytes although the flow key keeps them in 16-bit tp_src and tp_dst).
FIELD_BITS: dict[str, int] = {
    "dl_src": 48,
    "dl_dst": 48,
    "nw_src": 32,
    "nw_dst": 32,
    "nw_tos": 8,
    "nw_ttl": 8,
    "ipv6_src": 128,
    "ipv6_dst": 128,
    "ipv6_label": 20,
    "tp_src": 16,
    "tp_dst": 16,
}


def field_bits(field: str, header: str) -> int:
    """The width of ``field`` as ``header`` carries it (8 for ICMP's type and code)."""
    if header in ("icmp", "icmpv6"):
        return 8
    return FIELD_BITS[field]


_VLAN_TPIDS = (0x8100, 0x88A8)
_SNAP = b"\xaa\xaa\x03\x00\x00\x00"
_IPV6_EXT = frozenset((0, 43, 44, 51, 60))

# Where the headers of a frame are, as the datapath found them on receipt:
# (L3 kind: 0 none, 4 IPv4, 6 IPv6; L3 offset; L4 offset, or -1 when there is
# no L4 header to touch; end of the IP packet; the L4 protocol; whether an
# IPv6 routing header with segments left sits in front of the L4 header; the
# offset of the L4 checksum that covers the pseudo-header, or -1).
_Layout = tuple[int, int, int, int, int, bool, int]
_NO_L3: _Layout = (0, 0, -1, 0, 0, False, -1)
_T = TypeVar("_T", int, bytes)


def _pseudo_csum(kind: int, l4: int, end: int, proto: int) -> int:
    """Where the L4 checksum covering the pseudo-header is, or -1.

    As ``packet_set_ipv4_addr()`` and ``packet_update_csum128()``: TCP's and
    UDP's when their fixed header fits, and over IPv6 ICMPv6's.
    """
    room = end - l4
    if proto == 6:
        return l4 + 16 if room >= 20 else -1
    if proto == 17:
        return l4 + 6 if room >= 8 else -1
    if proto == 58 and kind == 6:
        return l4 + 2 if room >= 4 else -1
    return -1


def _layout(frame: bytes) -> _Layout:
    """Find the L3 and L4 headers of a received frame, as ``miniflow_extract()`` does.

    The L3 header counts as present when its fixed part fits in the frame:
    OVS rewrites it then, even when the lengths inside are inconsistent. The
    L4 header counts only when the IP header passed OVS's sanity checks (which
    also refuse more than 255 bytes of Ethernet padding) and the packet is not
    a later fragment.
    """
    n = len(frame)
    if n < 14:
        return _NO_L3
    etype = (frame[12] << 8) | frame[13]
    off = 14
    if etype in _VLAN_TPIDS and n >= 18:
        etype = (frame[16] << 8) | frame[17]
        off = 18
        if etype in _VLAN_TPIDS and n >= 22:
            etype = (frame[20] << 8) | frame[21]
            off = 22
    if etype < 0x0600 and n - off >= 8 and frame[off : off + 6] == _SNAP:
        etype = (frame[off + 6] << 8) | frame[off + 7]
        off += 8
    if etype == 0x0800:
        if n - off < 20:
            return _NO_L3
        ihl = (frame[off] & 0x0F) * 4
        total = (frame[off + 2] << 8) | frame[off + 3]
        if ihl < 20 or total < ihl or total > n - off or n - off - total > 255:
            return (4, off, -1, 0, 0, False, -1)
        if ((frame[off + 6] << 8) | frame[off + 7]) & 0x1FFF:
            return (4, off, -1, 0, 0, False, -1)
        l4 = off + ihl
        proto = frame[off + 9]
        return (4, off, l4, off + total, proto, False, _pseudo_csum(4, l4, off + total, proto))
    if etype == 0x86DD:
        if n - off < 40:
            return _NO_L3
        end = off + 40 + ((frame[off + 4] << 8) | frame[off + 5])
        if end > n or n - end > 255:
            return (6, off, -1, 0, 0, False, -1)
        proto = frame[off + 6]
        pos = off + 40
        routed = False
        while proto in _IPV6_EXT:
            if end - pos < 8:
                return (6, off, -1, 0, 0, False, -1)
            if proto == 44:
                if ((frame[pos + 2] << 8) | frame[pos + 3]) & 0xFFF8:
                    return (6, off, -1, 0, 0, False, -1)
                proto = frame[pos]
                pos += 8
                continue
            size = (frame[pos + 1] + 2) * 4 if proto == 51 else (frame[pos + 1] + 1) * 8
            if proto == 43 and frame[pos + 3]:
                routed = True
            if size > end - pos:
                return (6, off, -1, 0, 0, False, -1)
            proto = frame[pos]
            pos += size
        return (6, off, pos, end, proto, routed, _pseudo_csum(6, pos, end, proto))
    return _NO_L3


def _get16(buf: bytearray, pos: int) -> int:
    return (buf[pos] << 8) | buf[pos + 1]


def _put16(buf: bytearray, pos: int, value: int) -> None:
    buf[pos] = value >> 8
    buf[pos + 1] = value & 0xFF


def _pseudo_header_changed(
    buf: bytearray, lay: _Layout, d: int, update: Callable[[int, _T, _T], int], old: _T, new: _T
) -> None:
    """Update the L4 checksum after an address of the pseudo-header changed."""
    at = lay[6]
    if at < 0:
        return
    at += d
    csum = (buf[at] << 8) | buf[at + 1]
    if lay[4] == 17:
        # A UDP checksum of 0 means "none": it stays 0. An update that
        # yields 0 must be sent as 0xffff, its other representation.
        if not csum:
            return
        csum = update(csum, old, new) or 0xFFFF
    else:
        csum = update(csum, old, new)
    buf[at] = csum >> 8
    buf[at + 1] = csum & 0xFF


# -- set actions on Ethernet ----------------------------------------------------


def _set_mac(at: int, value: int, mask: int, buf: bytearray) -> None:
    # dp_packet_eth() needs a whole Ethernet header, so do we.
    if len(buf) < 14:
        return
    if mask == 0xFFFFFFFFFFFF:
        buf[at : at + 6] = value.to_bytes(6, "big")
        return
    old = int.from_bytes(buf[at : at + 6], "big")
    buf[at : at + 6] = ((old & ~mask) | (value & mask)).to_bytes(6, "big")


# -- set actions on IPv4 and IPv6 ---------------------------------------------------


def _set_ip4_addr(at: int, value: int, mask: int, buf: bytearray, lay: _Layout, d: int) -> None:
    if lay[0] != 4:
        return
    l3 = lay[1] + d
    p = l3 + at
    old = int.from_bytes(buf[p : p + 4], "big")
    new = (old & ~mask) | (value & mask)
    if new == old:
        return
    c = l3 + 10
    csum = checksum_update32((buf[c] << 8) | buf[c + 1], old, new)
    buf[c] = csum >> 8
    buf[c + 1] = csum & 0xFF
    _pseudo_header_changed(buf, lay, d, checksum_update32, old, new)
    buf[p : p + 4] = new.to_bytes(4, "big")


def _set_ip6_addr(at: int, value: int, mask: int, buf: bytearray, lay: _Layout, d: int) -> None:
    if lay[0] != 6:
        return
    p = lay[1] + d + at
    old_bytes = bytes(buf[p : p + 16])
    old = int.from_bytes(old_bytes, "big")
    new = (old & ~mask) | (value & mask)
    if new == old:
        return
    new_bytes = new.to_bytes(16, "big")
    # The pseudo-header holds the final destination, which a routing header
    # with segments left keeps in itself: then the destination is not in it.
    if at == 8 or not lay[5]:
        _pseudo_header_changed(buf, lay, d, checksum_update_bytes, old_bytes, new_bytes)
    buf[p : p + 16] = new_bytes


def _set_tos(
    kinds: tuple[int, ...], value: int, mask: int, buf: bytearray, lay: _Layout, d: int
) -> None:
    kind = lay[0]
    if kind not in kinds:
        return
    p = lay[1] + d
    if kind == 4:
        old = buf[p + 1]
        new = (old & ~mask) | (value & mask)
        if new != old:
            # The ToS byte is the low half of the header's first 16-bit word.
            _put16(buf, p + 10, checksum_update16(_get16(buf, p + 10), old, new))
            buf[p + 1] = new
        return
    old = ((buf[p] & 0x0F) << 4) | (buf[p + 1] >> 4)
    new = (old & ~mask) | (value & mask)
    buf[p] = (buf[p] & 0xF0) | (new >> 4)
    buf[p + 1] = ((new & 0x0F) << 4) | (buf[p + 1] & 0x0F)


def _set_ttl(
    kinds: tuple[int, ...], value: int, mask: int, buf: bytearray, lay: _Layout, d: int
) -> None:
    kind = lay[0]
    if kind not in kinds:
        return
    p = lay[1] + d
    if kind == 4:
        old = buf[p + 8]
        new = (old & ~mask) | (value & mask)
        if new != old:
            # The TTL is the high half of the word it shares with the protocol.
            _put16(buf, p + 10, checksum_update16(_get16(buf, p + 10), old << 8, new << 8))
            buf[p + 8] = new
        return
    buf[p + 7] = (buf[p + 7] & ~mask) | (value & mask)


def _set_label(value: int, mask: int, buf: bytearray, lay: _Layout, d: int) -> None:
    if lay[0] != 6:
        return
    p = lay[1] + d
    old = ((buf[p + 1] & 0x0F) << 16) | (buf[p + 2] << 8) | buf[p + 3]
    new = (old & ~mask) | (value & mask)
    buf[p + 1] = (buf[p + 1] & 0xF0) | (new >> 16)
    buf[p + 2] = (new >> 8) & 0xFF
    buf[p + 3] = new & 0xFF


# -- set actions on L4 ---------------------------------------------------------------


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C = _crc32c_table()


def _crc32c(data: bytearray) -> int:
    """CRC32c (Castagnoli), as SCTP uses it; slow, but SCTP rewrites are rare."""
    crc = 0xFFFFFFFF
    table = _CRC32C
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# The L4 protocols each header name stands for; "" is any of them.
_L4_PROTOS = {
    "tcp": frozenset((6,)),
    "udp": frozenset((17,)),
    "sctp": frozenset((132,)),
    "icmp": frozenset((1,)),
    "icmpv6": frozenset((58,)),
    "": frozenset((6, 17, 132, 1, 58)),
}


def _set_l4(
    which: int,
    protos: frozenset[int],
    value: int,
    mask: int,
    buf: bytearray,
    lay: _Layout,
    d: int,
) -> None:
    """Set the source (``which`` 0) or destination (1) port, or ICMP type or code."""
    l4 = lay[2]
    proto = lay[4]
    if l4 < 0 or proto not in protos:
        return
    room = lay[3] - l4
    p = l4 + d
    if proto == 6:
        # dp_packet_get_tcp_payload(): the header and the length it claims fit.
        if room < 20 or not 20 <= (buf[p + 12] >> 4) * 4 <= room:
            return
        at = p + 2 * which
        old = _get16(buf, at)
        new = (old & ~mask) | (value & mask)
        if new != old:
            _put16(buf, p + 16, checksum_update16(_get16(buf, p + 16), old, new))
            _put16(buf, at, new)
    elif proto == 17:
        if room < 8:
            return
        at = p + 2 * which
        old = _get16(buf, at)
        new = (old & ~mask) | (value & mask)
        csum = _get16(buf, p + 6)
        if new != old and csum:
            _put16(buf, p + 6, checksum_update16(csum, old, new) or 0xFFFF)
        _put16(buf, at, new)
    elif proto == 132:
        if room < 12:
            return
        at = p + 2 * which
        old = _get16(buf, at)
        new = (old & ~mask) | (value & mask)
        if new == old:
            return
        # As packet_set_sctp_port(): the new checksum is the old one with the
        # change of the correct CRC applied, so a wrong checksum stays wrong.
        # The CRC is stored least significant byte first.
        stored = bytes(buf[p + 8 : p + 12])
        buf[p + 8 : p + 12] = bytes(4)
        before = _crc32c(buf[p : p + room])
        _put16(buf, at, new)
        after = _crc32c(buf[p : p + room])
        csum = int.from_bytes(stored, "little") ^ before ^ after
        buf[p + 8 : p + 12] = csum.to_bytes(4, "little")
    else:
        # ICMP and ICMPv6: type (which 0) and code (1) share one checksummed word.
        if room < 8:
            return
        at = p + which
        old_word = _get16(buf, p)
        buf[at] = ((buf[at] & ~mask) | (value & mask)) & 0xFF
        new_word = _get16(buf, p)
        if new_word != old_word:
            _put16(buf, p + 2, checksum_update16(_get16(buf, p + 2), old_word, new_word))


# -- compiling actions ------------------------------------------------------------------

_OUT = 0
_PUSH = 1
_POP = 2
_USER = 3
_SET_L2 = 4
_SET_L3 = 5
_TRUNC = 6

# One compiled action: (kind, output port, VLAN tag to push, the set function
# for a set action, the userspace action). A uniform shape keeps the loop that
# runs them a single tuple unpacking per action.
_Step = tuple[
    int,
    int,
    bytes,
    "Callable[..., None] | None",
    OdpUserspace | None,
]
_KINDS = {"ipv4": (4,), "ipv6": (6,), "": (4, 6)}


def _compile_set(action: OdpSetField | OdpSetMasked) -> _Step:
    field, header = action.field, action.header
    allowed = FIELD_HEADERS.get(field)
    if allowed is None or (header and header not in allowed):
        raise ValueError(f"a datapath set action cannot set {field} in {header or 'a frame'}")
    bits = field_bits(field, header)
    full = (1 << bits) - 1
    mask = full if isinstance(action, OdpSetField) else action.mask & full
    value = action.value & full
    fn: Callable[..., None]
    if field in ("dl_src", "dl_dst"):
        fn = partial(_set_mac, 6 if field == "dl_src" else 0, value, mask)
        return (_SET_L2, 0, b"", fn, None)
    if field in ("nw_src", "nw_dst"):
        fn = partial(_set_ip4_addr, 12 if field == "nw_src" else 16, value, mask)
    elif field in ("ipv6_src", "ipv6_dst"):
        fn = partial(_set_ip6_addr, 8 if field == "ipv6_src" else 24, value, mask)
    elif field == "ipv6_label":
        fn = partial(_set_label, value, mask)
    elif field == "nw_tos":
        fn = partial(_set_tos, _KINDS[header], value, mask)
    elif field == "nw_ttl":
        fn = partial(_set_ttl, _KINDS[header], value, mask)
    else:
        fn = partial(_set_l4, 0 if field == "tp_src" else 1, _L4_PROTOS[header], value, mask)
    return (_SET_L3, 0, b"", fn, None)


def _compile(actions: Sequence[OdpAction]) -> tuple[list[_Step], bool, bool]:
    """Turn actions into steps; the flags: any sets a field, any needs offload work done first.

    The second is an L3 or L4 rewrite or a trunc (see :func:`_run_offloaded`).
    """
    steps: list[_Step] = []
    sets = finish = False
    for action in actions:
        if isinstance(action, OdpOutput):
            steps.append((_OUT, action.port, b"", None, None))
        elif isinstance(action, OdpPushVlan):
            tci = ((action.pcp & 7) << 13) | (action.vid & 0x0FFF)
            tag = (action.tpid & 0xFFFF).to_bytes(2, "big") + tci.to_bytes(2, "big")
            steps.append((_PUSH, 0, tag, None, None))
        elif isinstance(action, OdpPopVlan):
            steps.append((_POP, 0, b"", None, None))
        elif isinstance(action, OdpUserspace):
            steps.append((_USER, 0, b"", None, action))
        elif isinstance(action, OdpTrunc):
            # The step's port slot carries the length.
            steps.append((_TRUNC, action.max_len, b"", None, None))
            finish = True
        elif isinstance(action, OdpTnlPush | OdpTnlPop | OdpClone):
            # These run in _run_tunnel(), never as steps: execute() and
            # execute_batch() send actions that have them there.
            raise TypeError(f"{action} is not a step")
        else:
            step = _compile_set(action)
            steps.append(step)
            sets = True
            finish |= step[0] == _SET_L3
    return steps, sets, finish


# -- running them ---------------------------------------------------------------------


def _run_l2(
    frame: bytes,
    steps: list[_Step],
    out: list[tuple[int, bytes]],
    upcalls: list[tuple[OdpUserspace, bytes]] | None,
) -> None:
    """Outputs, VLAN pushes and pops only: slices of immutable bytes, no parsing."""
    cur = frame
    cut = 0
    for kind, port, tag, _, user in steps:
        if kind == _OUT:
            if cut:
                out.append((port, cur[:cut]))
                cut = 0
            else:
                out.append((port, cur))
        elif kind == _TRUNC:
            cut = port
        elif kind == _PUSH:
            if len(cur) >= 14:
                cur = cur[:12] + tag + cur[12:]
        elif kind == _POP:
            # eth_pop_vlan(): a whole tagged header, and a VLAN TPID after the MACs.
            if len(cur) >= 18 and cur[12:14] in (b"\x81\x00", b"\x88\xa8"):
                cur = cur[:12] + cur[16:]
        elif upcalls is not None and user is not None:
            upcalls.append((user, cur[:cut] if cut else cur))
            cut = 0


def _run_sets(
    frame: bytes,
    steps: list[_Step],
    out: list[tuple[int, bytes]],
    upcalls: list[tuple[OdpUserspace, bytes]] | None,
) -> None:
    """The general case, on a mutable copy of the frame."""
    buf = bytearray(frame)
    lay: _Layout | None = None
    shift = 0
    cut = 0
    for kind, port, tag, fn, user in steps:
        if kind == _OUT:
            out.append((port, bytes(buf[:cut] if cut else buf)))
            cut = 0
        elif kind == _TRUNC:
            cut = port
        elif kind == _SET_L3:
            if lay is None:
                # The headers are found in the frame as received; the tags
                # pushed and popped since then have moved them by ``shift``.
                lay = _layout(frame)
            if lay[0] and fn is not None:
                fn(buf, lay, shift)
        elif kind == _SET_L2:
            if fn is not None:
                fn(buf)
        elif kind == _PUSH:
            if len(buf) >= 14:
                buf[12:12] = tag
                shift += 4
        elif kind == _POP:
            if len(buf) >= 18 and ((buf[12] << 8) | buf[13]) in _VLAN_TPIDS:
                del buf[12:16]
                shift -= 4
        elif upcalls is not None and user is not None:
            upcalls.append((user, bytes(buf[:cut] if cut else buf)))
            cut = 0


def _run_offloaded(
    frame: VnetFrame,
    steps: list[_Step],
    sets: bool,
    finish: bool,
    out: list[tuple[int, bytes]],
    upcalls: list[tuple[OdpUserspace, bytes]] | None,
) -> None:
    """A frame that carries offload work (a partial checksum, a GSO super-frame).

    Pushing and popping tags and rewriting MAC addresses leave the work valid,
    with its offsets moved by the tags (see :func:`rewrap`), so the header
    goes on with each output. A rewrite of L3 or L4 fields would need the
    checksum and each segment's headers to be right first: the work is then
    done in software and the actions run on the finished frames, which is
    slower but rare (NAT-like rewrites of offloaded traffic). So is a
    truncation (a mirror's snaplen): a cut copy of a super-frame would carry
    offload work its bytes no longer match, so each finished segment is cut
    instead, as a mirror of the wire would see them.
    """
    if finish:
        for piece in finish_offloads(frame):
            _run_sets(piece, steps, out, upcalls)
        return
    start = len(out)
    (_run_sets if sets else _run_l2)(frame, steps, out, upcalls)
    for i in range(start, len(out)):
        port, data = out[i]
        out[i] = (port, rewrap(frame, data))


# -- tunnels and clones --------------------------------------------------------------

#: Where _run_tunnel() has the simple actions before a tunnel action leave the
#: frame: an output to a port no datapath has.
_HERE = -1


def has_tunnel_actions(actions: Sequence[OdpAction]) -> bool:
    """Whether ``actions`` push or pop a tunnel header or clone the packet."""
    return any(type(action) in (OdpTnlPush, OdpTnlPop, OdpClone) for action in actions)


def _need_runtime(runtime: TunnelRuntime | None) -> TunnelRuntime:
    if runtime is None:
        raise TypeError("tunnel actions need the datapath's tunnel runtime")
    return runtime


def _run_tunnel(
    frame: bytes,
    actions: Sequence[OdpAction],
    out: list[tuple[int, bytes]],
    upcalls: list[tuple[OdpUserspace, bytes]] | None,
    runtime: TunnelRuntime,
    cut: int = 0,
) -> None:
    """The general runner, for actions with ``tnl_push``, ``tnl_pop`` or ``clone``.

    The plain actions between them run as usual; a push wraps the frame as
    those left it. A frame with offload work has it done in software first:
    the outer header hides the inner checksum and segments from the device
    that sends the result. ``cut`` is a truncation pending from before a
    ``clone`` (see :class:`OdpTrunc`): it applies inside, to the first
    output, push or userspace action there.
    """
    if type(frame) is VnetFrame and any(type(a) is OdpTnlPush for a in _flat(actions)):
        for piece in finish_offloads(frame):
            _run_tunnel(bytes(piece), actions, out, upcalls, runtime, cut)
        return
    cur = frame
    plain: list[OdpAction] = [OdpTrunc(cut)] if cut else []
    for action in actions:
        kind = type(action)
        if kind not in (OdpTnlPush, OdpTnlPop, OdpClone):
            plain.append(action)
            continue
        # A truncation that nothing in ``plain`` used belongs to this action.
        cut = _take_pending_cut(plain)
        if plain:
            plain.append(OdpOutput(_HERE))
            sent = execute(cur, plain, upcalls)
            cur = sent.pop()[1]
            out.extend(sent)
            plain = []
        if isinstance(action, OdpTnlPush):
            # As Open vSwitch's datapath does, the cut applies to the
            # packet being encapsulated.
            pushed = cur[:cut] if cut else cur
            if not runtime.fits(action, len(pushed)):
                return
            cur = tunnel_push(action, pushed, runtime)
        elif isinstance(action, OdpTnlPop):
            # The pop works on a copy when more actions follow, as in OVS;
            # bytes cannot change, so the copy is the same object. A kernel
            # peer's frame may come with its checksums left to us (partial)
            # or as one GSO super-frame: finished here, the outer checksum
            # verifies and the inner packet leaves complete. (OVS 3.1 drops
            # such frames.)
            pieces = (
                _finish_for_pop(cur, runtime.kinds.get(action.port))
                if type(cur) is VnetFrame
                else (cur,)
            )
            for piece in pieces:
                tunnel_pop(action.port, bytes(piece), runtime)
        elif isinstance(action, OdpClone):
            _run_tunnel(cur, action.actions, out, upcalls, runtime, cut)
    if plain:
        out.extend(execute(cur, plain, upcalls))


def _take_pending_cut(plain: list[OdpAction]) -> int:
    """Remove a ``trunc`` that no later output in ``plain`` used; return its length, or 0."""
    for i in range(len(plain) - 1, -1, -1):
        action = plain[i]
        if type(action) is OdpTrunc:
            del plain[i]
            return action.max_len
        if type(action) in (OdpOutput, OdpUserspace):
            return 0
    return 0


def _finish_for_pop(frame: VnetFrame, kind: tuple[str, int] | None) -> list[bytes]:
    """A tunnelled frame with offload work left to us, finished so that it can be popped.

    A partial inner checksum is simply completed: the sender's outer UDP
    checksum already counts it as done (local checksum offload). A GSO
    super-frame is harder: the kernel describes a tunnelled one (VXLAN,
    Geneve, GRE around TCP) with the *inner* TCP's GSO type and offsets, and
    cutting it as plain TCP would leave every segment's inner addresses out
    of the TCP checksum and the outer lengths wrong. So the inner frame is
    cut on its own and each segment gets the outer header back with its
    lengths and checksums made right, as the sender's device would have sent it.
    """
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET.unpack(frame.vnet)
    inner_at = _inner_offset(frame, kind)
    if (
        not gso_type & ~VIRTIO_NET_HDR_GSO_ECN
        or not flags & VIRTIO_NET_HDR_F_NEEDS_CSUM
        or inner_at is None
        or csum_start < inner_at + 14
    ):
        return finish_offloads(frame)
    vnet = VNET.pack(
        flags,
        gso_type,
        max(hdr_len - inner_at, 0),
        gso_size,
        csum_start - inner_at,
        csum_offset,
    )
    outer = frame[:inner_at]
    return [
        _outer_for(outer, segment)
        for segment in finish_offloads(VnetFrame(frame[inner_at:], vnet))
    ]


def _inner_offset(frame: bytes, kind: tuple[str, int] | None) -> int | None:
    """Where the inner frame starts behind ``frame``'s outer headers, or None if unknown."""
    if kind is None or len(frame) < 54:
        return None
    ethertype = frame[12:14]
    if ethertype == b"\x08\x00":
        l4, proto = 14 + (frame[14] & 0x0F) * 4, frame[23]
    elif ethertype == b"\x86\xdd":
        l4, proto = 54, frame[20]
    else:
        return None
    name = kind[0]
    if len(frame) < l4 + 16:
        return None
    if proto == 17 and name == "vxlan":
        return l4 + 16
    if proto == 17 and name == "geneve":
        return l4 + 16 + (frame[l4 + 8] & 0x3F) * 4
    if proto == 47 and name == "gre":
        bits = frame[l4]
        return l4 + 4 + 4 * (bool(bits & 0x80) + bool(bits & 0x20) + bool(bits & 0x10))
    return None


def _outer_for(outer: bytes, segment: bytes) -> bytes:
    """``outer`` (Ethernet to the tunnel header) put back on ``segment``.

    Lengths and checksums are recomputed; a zero UDP checksum stays zero
    (none was sent).
    """
    head = bytearray(outer)
    size = len(head) + len(segment)
    if head[12:14] == b"\x08\x00":
        ihl = (head[14] & 0x0F) * 4
        l4, proto = 14 + ihl, head[23]
        struct.pack_into("!HH", head, 16, size - 14, int.from_bytes(head[18:20], "big"))
        struct.pack_into("!H", head, 24, 0)
        struct.pack_into("!H", head, 24, checksum(head[14 : 14 + ihl]))
        pseudo = bytes(head[26:34]) + struct.pack("!BBH", 0, proto, size - l4)
    else:
        l4, proto = 54, head[20]
        struct.pack_into("!H", head, 18, size - 54)
        pseudo = bytes(head[22:54]) + struct.pack("!IxxxB", size - l4, proto)
    if proto == 17:
        struct.pack_into("!H", head, l4 + 4, size - l4)
        if head[l4 + 6 : l4 + 8] != b"\0\0":
            struct.pack_into("!H", head, l4 + 6, 0)
            value = checksum(pseudo + bytes(head[l4:]) + segment) or 0xFFFF
            struct.pack_into("!H", head, l4 + 6, value)
    elif head[l4] & 0x80:
        # A GRE checksum covers the GRE header and what follows it, no pseudo-header.
        struct.pack_into("!H", head, l4 + 4, 0)
        struct.pack_into("!H", head, l4 + 4, checksum(bytes(head[l4:]) + segment))
    return bytes(head) + segment


def _flat(actions: Sequence[OdpAction]) -> list[OdpAction]:
    flat: list[OdpAction] = []
    for action in actions:
        flat.append(action)
        if isinstance(action, OdpClone):
            flat.extend(_flat(action.actions))
    return flat


def execute(
    frame: bytes,
    actions: Sequence[OdpAction],
    upcalls: list[tuple[OdpUserspace, bytes]] | None = None,
    runtime: TunnelRuntime | None = None,
) -> list[tuple[int, bytes]]:
    """Apply ``actions`` to ``frame``; return ``(datapath port, frame)`` per output, in order.

    Each output sends the frame as the actions before it left it. Userspace
    actions are not outputs: when ``upcalls`` is given, each appends
    ``(action, frame as it is then)`` to it for the caller to deliver.
    Tunnel actions need ``runtime`` (see :mod:`pyvswitch.dpif.tunnel_exec`);
    without one they raise :class:`TypeError`.
    """
    out: list[tuple[int, bytes]] = []
    if has_tunnel_actions(actions):
        _run_tunnel(frame, actions, out, upcalls, _need_runtime(runtime))
        return out
    for action in actions:
        if type(action) is OdpOutput:
            out.append((action.port, frame))
        else:
            break
    else:
        return out
    out.clear()
    steps, sets, finish = _compile(actions)
    if type(frame) is VnetFrame:
        _run_offloaded(frame, steps, sets, finish, out, upcalls)
    else:
        (_run_sets if sets else _run_l2)(frame, steps, out, upcalls)
    return out


def execute_batch(
    frames: Sequence[bytes],
    actions: Sequence[OdpAction],
    upcalls: list[tuple[OdpUserspace, bytes]] | None = None,
    runtime: TunnelRuntime | None = None,
) -> dict[int, list[bytes]]:
    """Apply one megaflow's ``actions`` to a batch; return the frames sent, per port.

    Each port's list keeps the order of the batch (and, for a port output to
    twice, the order of the actions within each frame). The lists are new:
    the caller may extend them. ``runtime`` must be given for actions that
    push, pop or clone (:func:`has_tunnel_actions`), and only for them: the
    others take the fast runners.
    """
    if not frames:
        return {}
    if runtime is not None:
        by_port: dict[int, list[bytes]] = {}
        sent_pairs: list[tuple[int, bytes]] = []
        for frame in frames:
            _run_tunnel(frame, actions, sent_pairs, upcalls, runtime)
        for port, data in sent_pairs:
            by_port.setdefault(port, []).append(data)
        return by_port
    steps, sets, finish = _compile(actions)
    if all(step[0] == _OUT for step in steps):
        ports = [step[1] for step in steps]
        if len(set(ports)) == len(ports):
            return {port: list(frames) for port in ports}
    run = _run_sets if sets else _run_l2
    result: dict[int, list[bytes]] = {}
    pairs: list[tuple[int, bytes]] = []
    for frame in frames:
        if type(frame) is VnetFrame:
            _run_offloaded(frame, steps, sets, finish, pairs, upcalls)
        else:
            run(frame, steps, pairs, upcalls)
        for port, data in pairs:
            sent = result.get(port)
            if sent is None:
                result[port] = [data]
            else:
                sent.append(data)
        pairs.clear()
    return result
