"""Flow key extraction: from a frame's bytes to a packed key, fast and total.

This is the datapath's per-packet work, so it is written for CPython's speed:
slices of the frame and single-byte reads, no header objects, no ``struct``
calls on the common path, and one ``int.from_bytes`` at the end over bytes laid
out as :mod:`pyvswitch.flow.layout` says. What it extracts, and what it leaves
zero for a truncated or inconsistent header, follows Open vSwitch's
``miniflow_extract()``: a header that fails its sanity check contributes no
fields, and nothing after it is read. It never raises on any input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvswitch.flow.layout import (
    DL_TYPE_NONE,
    FRAG_ANY,
    FRAG_LATER,
    IN_PORT_SHIFT,
    PACKET_BYTES,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

_Z2 = bytes(2)
_Z4 = bytes(4)
_Z6 = bytes(6)
_Z8 = bytes(8)
_Z16 = bytes(16)
# IPv6 source, destination and label, for frames that are not IPv6.
_Z_IP6 = bytes(36)
# arp_sha, arp_tha and nd_target, for frames that carry none of them.
_Z_ND = bytes(28)
# Everything after dl_type, for frames whose L3 header is unknown or broken.
_Z_L3 = bytes(PACKET_BYTES - 22)
# IPv4 addresses, for frames that are not IPv4 or ARP.
_Z_IP4 = _Z8
_SNAP = b"\xaa\xaa\x03\x00\x00\x00"
_IPV6_EXT = frozenset((0, 43, 44, 51, 60))


def _l4(frame: bytes, pos: int, end: int, proto: int) -> bytes:
    """``tp_src``, ``tp_dst`` and ``tcp_flags`` (6 bytes) for the L4 header at ``pos``.

    As OVS's ``miniflow_extract()``, this looks at the protocol number only,
    not at the IP version, and checks the room for the header (for TCP, the
    length its data offset claims).
    """
    room = end - pos
    if proto == 6:
        if room >= 20 and 20 <= (frame[pos + 12] >> 4) * 4 <= room:
            return frame[pos : pos + 4] + bytes((frame[pos + 12] & 0x0F, frame[pos + 13]))
        return _Z6
    if proto == 17:
        return frame[pos : pos + 4] + _Z2 if room >= 8 else _Z6
    if proto in (1, 2, 58):
        # ICMP's, IGMP's and ICMPv6's type and code are kept in tp_src and
        # tp_dst, as OVS does.
        return bytes((0, frame[pos], 0, frame[pos + 1], 0, 0)) if room >= 8 else _Z6
    if proto == 132:
        return frame[pos : pos + 4] + _Z2 if room >= 12 else _Z6
    return _Z6


def _upper(frame: bytes, pos: int, end: int, proto: int) -> bytes:
    """arp_sha, arp_tha, nd_target and the L4 fields (34 bytes) from ``pos`` on."""
    l4 = _l4(frame, pos, end, proto)
    if proto == 58 and end - pos >= 8 and frame[pos] in (135, 136):
        return _nd(frame, pos, end) + l4
    return _Z_ND + l4


def _nd(frame: bytes, pos: int, end: int) -> bytes:
    """arp_sha, arp_tha and nd_target (28 bytes) for an NS/NA message at ``pos``.

    As in OVS (``parse_icmpv6()``): an option of length zero or running past
    the end ends the list, keeping what was found; a second non-zero
    link-layer option of one kind voids all three fields; and a link-layer
    option counts whatever the message type.
    """
    if end - pos < 24 or frame[pos + 1] != 0:
        return _Z_ND
    target = frame[pos + 8 : pos + 24]
    sll = tll = _Z6
    opt = pos + 24
    while end - opt >= 8:
        units = frame[opt + 1]
        size = units * 8
        if size == 0 or size > end - opt:
            break
        if units == 1:
            if frame[opt] == 1:
                if sll != _Z6:
                    return _Z_ND
                sll = frame[opt + 2 : opt + 8]
            elif frame[opt] == 2:
                if tll != _Z6:
                    return _Z_ND
                tll = frame[opt + 2 : opt + 8]
        opt += size
    return sll + tll + target


def _ipv4(frame: bytes, off: int, n: int) -> bytes:
    """Everything after dl_type for an IPv4 packet at ``off``."""
    if n - off < 20:
        return _Z_L3
    vihl = frame[off]
    ihl = (vihl & 0x0F) * 4
    total = (frame[off + 2] << 8) | frame[off + 3]
    # Like OVS's ipv4_sanity_check(), this does not look at the version.
    if ihl < 20 or total < ihl or total > n - off:
        return _Z_L3
    proto = frame[off + 9]
    fragword = ((frame[off + 6] << 8) | frame[off + 7]) & 0x3FFF
    frag = 0
    if fragword:
        frag = FRAG_ANY | (FRAG_LATER if fragword & 0x1FFF else 0)
    upper = _Z_ND + _Z6 if frag & FRAG_LATER else _upper(frame, off + ihl, off + total, proto)
    return b"".join(
        (
            frame[off + 12 : off + 20],
            _Z_IP6,
            bytes((proto, frame[off + 1], frame[off + 8], frag)),
            upper,
        )
    )


def _ipv6(frame: bytes, off: int, n: int) -> bytes:
    """Everything after dl_type for an IPv6 packet at ``off``."""
    # Like OVS's ipv6_sanity_check(), this does not look at the version.
    if n - off < 40:
        return _Z_L3
    end = off + 40 + ((frame[off + 4] << 8) | frame[off + 5])
    if end > n:
        return _Z_L3
    b0, b1 = frame[off], frame[off + 1]
    addrs = frame[off + 8 : off + 40]
    label = bytes((0, b1 & 0x0F, frame[off + 2], frame[off + 3]))
    tclass = ((b0 & 0x0F) << 4) | (b1 >> 4)
    hlim = frame[off + 7]
    proto = frame[off + 6]
    pos = off + 40
    frag = 0
    while proto in _IPV6_EXT:
        if end - pos < 8:
            return b"".join((_Z_IP4, addrs, _Z_L3[: PACKET_BYTES - 22 - 40]))
        if proto == 44:
            frag = FRAG_ANY
            proto = frame[pos]
            if ((frame[pos + 2] << 8) | frame[pos + 3]) & 0xFFF8:
                # A later fragment has no upper-layer header, and OVS reports
                # the fragment header itself (44) as its protocol.
                frag |= FRAG_LATER
                proto = 44
                break
            pos += 8
            continue
        size = (frame[pos + 1] + 2) * 4 if proto == 51 else (frame[pos + 1] + 1) * 8
        if size > end - pos:
            return b"".join((_Z_IP4, addrs, _Z_L3[: PACKET_BYTES - 22 - 40]))
        proto = frame[pos]
        pos += size
    upper = _Z_ND + _Z6 if frag & FRAG_LATER else _upper(frame, pos, end, proto)
    return b"".join((_Z_IP4, addrs, label, bytes((proto, tclass, hlim, frag)), upper))


def _arp(frame: bytes, off: int, n: int) -> bytes:
    """Everything after dl_type for an ARP or RARP packet at ``off``."""
    if n - off < 28 or frame[off : off + 6] != b"\x00\x01\x08\x00\x06\x04":
        return _Z_L3
    op = (frame[off + 6] << 8) | frame[off + 7]
    return b"".join(
        (
            frame[off + 14 : off + 18],
            frame[off + 24 : off + 28],
            _Z_IP6,
            # OVS keeps the low byte of the opcode in nw_proto, and only when the
            # opcode fits in it.
            bytes((op if op <= 0xFF else 0, 0, 0, 0)),
            frame[off + 8 : off + 14],
            frame[off + 18 : off + 24],
            _Z16,
            _Z6,
        )
    )


def extract_key(frame: bytes, in_port: int = 0) -> int:
    """Return the packed flow key of an Ethernet ``frame`` received on ``in_port``.

    Never raises: a frame shorter than an Ethernet header yields only
    ``in_port``; a broken header yields the fields before it.
    """
    # The common case first, in one expression: an untagged IPv4 packet
    # without options or fragmentation carrying UDP or TCP. It gives the key
    # _extract() would give (a unit test holds them equal), in about half
    # the time, which matters at a key per packet.
    if frame[12:15] == b"\x08\x00\x45" and len(frame) >= 54:
        total = (frame[16] << 8) | frame[17]
        if 28 <= total <= len(frame) - 14 and not (frame[20] & 0x3F or frame[21]):
            proto = frame[23]
            if proto == 17:
                l4 = frame[34:38] + _Z2
            elif proto == 6 and 20 <= (frame[46] >> 4) * 4 <= total - 20:
                l4 = frame[34:38] + bytes((frame[46] & 0x0F, frame[47]))
            else:
                return _extract(frame, in_port)
            return (in_port << IN_PORT_SHIFT) | int.from_bytes(
                b"".join(
                    (
                        frame[0:12],
                        _FAST_IP4_HEAD,
                        frame[26:34],
                        _Z_IP6,
                        bytes((proto, frame[15], frame[22], 0)),
                        _Z_ND,
                        l4,
                    )
                ),
                "big",
            )
    return _extract(frame, in_port)


#: No VLAN tags, then the IPv4 ethertype.
_FAST_IP4_HEAD = _Z8 + b"\x08\x00"


def _extract(frame: bytes, in_port: int) -> int:
    """extract_key() for every frame: tags, LLC/SNAP, IPv4, IPv6, ARP, and the rest."""
    n = len(frame)
    port = in_port << IN_PORT_SHIFT
    if n < 14:
        return port
    etype = (frame[12] << 8) | frame[13]
    off = 14
    vlans = _Z8
    if etype in (0x8100, 0x88A8) and n >= 18:
        tag0 = frame[12:14] + bytes((frame[14] | 0x10, frame[15]))
        etype = (frame[16] << 8) | frame[17]
        off = 18
        tag1 = _Z4
        if etype in (0x8100, 0x88A8) and n >= 22:
            tag1 = frame[16:18] + bytes((frame[18] | 0x10, frame[19]))
            etype = (frame[20] << 8) | frame[21]
            off = 22
        vlans = tag0 + tag1
    if etype < 0x0600:
        etype = DL_TYPE_NONE
        if n - off >= 8 and frame[off : off + 6] == _SNAP:
            snap_type = (frame[off + 6] << 8) | frame[off + 7]
            if snap_type >= 0x0600:
                etype = snap_type
                off += 8
    if etype == 0x0800:
        l3 = _ipv4(frame, off, n)
    elif etype == 0x86DD:
        l3 = _ipv6(frame, off, n)
    elif etype in (0x0806, 0x8035):
        l3 = _arp(frame, off, n)
    else:
        l3 = _Z_L3
    return port | int.from_bytes(
        b"".join((frame[0:12], vlans, etype.to_bytes(2, "big"), l3)), "big"
    )


def extract_keys(frames: Iterable[bytes], in_port: int = 0) -> list[int]:
    """Extract the keys of a batch of frames received on one port."""
    return [extract_key(f, in_port) for f in frames]
