"""Offload work that travels with a frame: the virtio-net header, and doing it in software.

A Linux device may leave work to whoever sends a frame on: a TCP or UDP
checksum not yet computed (``NEEDS_CSUM``), or a GSO super-frame larger than
the MTU that is to be cut into segments. Packet sockets and taps describe that
work with a ``struct virtio_net_hdr``. A :class:`VnetFrame` is a ``bytes``
subclass that carries this header next to the frame, so that the work can be
handed to the kernel of the device it leaves by (which does it for free) or,
for a device that cannot take the header, done here by :func:`finish_offloads`.

The header uses host byte order, with ``csum_start`` counted from the first
byte of the frame. Code that rewrites a frame keeps the header right with
:func:`rewrap`: pushing or popping a VLAN tag moves the L4 header, and so
``csum_start`` and ``hdr_len``.

Pure: this module builds and cuts bytes only.
"""

from __future__ import annotations

import struct
from typing import Any

from pyvswitch.packet.checksum import checksum

VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80
#: ``struct virtio_net_hdr``: flags, gso_type, hdr_len, gso_size, csum_start,
#: csum_offset, in host byte order (what packet sockets use).
VNET = struct.Struct("=BBHHHH")
VNET_HDR_LEN = VNET.size
NO_VNET = bytes(VNET_HDR_LEN)


class VnetFrame(bytes):
    """A frame that carries offload work for the device that sends it.

    ``vnet`` is a ``struct virtio_net_hdr`` (see the module docstring). Make
    one with ``VnetFrame(data, header)``; :func:`vnet_header` builds a header.
    """

    vnet: bytes

    def __new__(cls, data: bytes, vnet: bytes) -> VnetFrame:
        if len(vnet) != VNET_HDR_LEN:
            raise ValueError(f"a virtio_net_hdr has {VNET_HDR_LEN} bytes, not {len(vnet)}")
        frame = super().__new__(cls, data)
        frame.vnet = bytes(vnet)
        return frame

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling and copying keep the header (the default would lose it).
        return (VnetFrame, (bytes(self), self.vnet))


def vnet_header(
    *,
    needs_csum: bool = False,
    csum_start: int = 0,
    csum_offset: int = 0,
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE,
    gso_size: int = 0,
    hdr_len: int = 0,
) -> bytes:
    """A ``struct virtio_net_hdr`` for a :class:`VnetFrame`."""
    flags = VIRTIO_NET_HDR_F_NEEDS_CSUM if needs_csum else 0
    return VNET.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


# -- software offloads, for devices that cannot take a vnet header -------------------


_TCP_FIN_PSH = 0x09
_TCP_CWR = 0x80


def _l3_offset(frame: bytes) -> tuple[int, int]:
    """The offset of the L3 header and its ethertype, past any VLAN tags."""
    offset = 12
    ethertype = int.from_bytes(frame[12:14], "big")
    while ethertype in (0x8100, 0x88A8, 0x9100) and len(frame) >= offset + 8:
        offset += 4
        ethertype = int.from_bytes(frame[offset : offset + 2], "big")
    return offset + 2, ethertype


def _complete_checksum(frame: bytes, start: int, offset: int, end: int) -> bytes:
    """Fill in a partial checksum as a device would (skb_checksum_help()).

    The field already holds the pseudo-header sum, so summing from ``start``
    over the field and the rest of the segment gives the whole checksum. As
    in the kernel, a result of 0 is sent as 0xffff (for UDP, 0 means none).
    """
    where = start + offset
    if where + 2 > end or end > len(frame):
        return frame
    value = checksum(frame[start:end]) or 0xFFFF
    return frame[:where] + value.to_bytes(2, "big") + frame[where + 2 :]


def finish_offloads(frame: bytes) -> list[bytes]:
    """Do in software what a :class:`VnetFrame`'s header asks of the device.

    For a device that cannot take a vnet header: returns plain frames that
    need nothing more. A frame that is not a ``VnetFrame``, or asks for
    nothing, comes back unchanged. A GSO frame (TCP over IPv4 or IPv6, or UDP
    with ``GSO_UDP_L4``) is cut into segments of ``gso_size`` payload bytes
    with their lengths, IPv4 identifiers, TCP sequence numbers and flags, and
    all checksums computed; otherwise a ``NEEDS_CSUM`` checksum is completed.
    A frame it cannot parse, or one asking for UDP fragmentation (UFO, which
    Linux no longer produces), comes back as plain bytes with its checksum
    completed where the header says, which is all that can be done for it.
    """
    if type(frame) is not VnetFrame:
        return [frame]
    flags, gso_type, _, gso_size, csum_start, csum_offset = VNET.unpack(frame.vnet)
    data = bytes(frame)
    gso_type &= ~VIRTIO_NET_HDR_GSO_ECN
    l3, ethertype = _l3_offset(data)
    end = len(data)
    if ethertype == 0x0800 and len(data) >= l3 + 20:
        end = min(end, l3 + int.from_bytes(data[l3 + 2 : l3 + 4], "big"))
    elif ethertype == 0x86DD and len(data) >= l3 + 40:
        end = min(end, l3 + 40 + int.from_bytes(data[l3 + 4 : l3 + 6], "big"))
    if (
        gso_type
        in (
            VIRTIO_NET_HDR_GSO_TCPV4,
            VIRTIO_NET_HDR_GSO_TCPV6,
            VIRTIO_NET_HDR_GSO_UDP_L4,
        )
        and gso_size
    ):
        segments = _segment(
            data[:end],
            l3,
            ethertype,
            gso_type,
            gso_size,
            csum_start if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM else 0,
        )
        if segments is not None:
            return segments
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        data = _complete_checksum(data, csum_start, csum_offset, end)
    return [data]


def _segment(
    data: bytes, l3: int, ethertype: int, gso_type: int, gso_size: int, l4: int
) -> list[bytes] | None:
    """Software GSO of one TCP or UDP super-frame; None when it cannot be parsed."""
    if ethertype == 0x0800 and len(data) >= l3 + 20 and data[l3] >> 4 == 4:
        ipv4 = True
        l4 = l4 or l3 + (data[l3] & 0x0F) * 4
        addresses = data[l3 + 12 : l3 + 20]
    elif ethertype == 0x86DD and len(data) >= l3 + 40 and data[l3] >> 4 == 6:
        ipv4 = False
        # Without csum_start, only a TCP or UDP header right after the fixed
        # IPv6 header is found; extension headers need the offset.
        if not l4:
            if data[l3 + 6] not in (6, 17):
                return None
            l4 = l3 + 40
        addresses = data[l3 + 8 : l3 + 40]
    else:
        return None
    tcp = gso_type != VIRTIO_NET_HDR_GSO_UDP_L4
    if tcp:
        if len(data) < l4 + 20:
            return None
        l4_len = (data[l4 + 12] >> 4) * 4
        proto = 6
    else:
        l4_len = 8
        proto = 17
    payload_at = l4 + l4_len
    if len(data) < payload_at:
        return None
    payload = data[payload_at:]
    if len(payload) <= gso_size:
        return None
    head = bytearray(data[:payload_at])
    ip_id = int.from_bytes(data[l3 + 4 : l3 + 6], "big")
    seq = int.from_bytes(data[l4 + 4 : l4 + 8], "big") if tcp else 0
    flags = data[l4 + 13] if tcp else 0
    out: list[bytes] = []
    for index, offset in enumerate(range(0, len(payload), gso_size)):
        chunk = payload[offset : offset + gso_size]
        segment_l4 = l4_len + len(chunk)
        if ipv4:
            struct.pack_into("!H", head, l3 + 2, payload_at - l3 + len(chunk))
            struct.pack_into(
                "!HH",
                head,
                l3 + 4,
                (ip_id + index) & 0xFFFF,
                int.from_bytes(data[l3 + 6 : l3 + 8], "big"),
            )
            struct.pack_into("!H", head, l3 + 10, 0)
            ihl = (data[l3] & 0x0F) * 4
            struct.pack_into("!H", head, l3 + 10, checksum(bytes(head[l3 : l3 + ihl])))
            pseudo = addresses + struct.pack("!BBH", 0, proto, segment_l4)
        else:
            struct.pack_into("!H", head, l3 + 4, payload_at - l3 - 40 + len(chunk))
            pseudo = addresses + struct.pack("!IxxxB", segment_l4, proto)
        if tcp:
            segment_flags = flags
            if offset + gso_size < len(payload):
                segment_flags &= ~_TCP_FIN_PSH
            if index:
                segment_flags &= ~_TCP_CWR
            struct.pack_into("!I", head, l4 + 4, (seq + offset) & 0xFFFFFFFF)
            head[l4 + 13] = segment_flags
            struct.pack_into("!H", head, l4 + 16, 0)
            value = checksum(pseudo + bytes(head[l4:]) + chunk)
            struct.pack_into("!H", head, l4 + 16, value)
        else:
            struct.pack_into("!HH", head, l4 + 4, segment_l4, 0)
            value = checksum(pseudo + bytes(head[l4:]) + chunk) or 0xFFFF
            struct.pack_into("!H", head, l4 + 6, value)
        out.append(bytes(head) + chunk)
    return out


def rewrap(original: VnetFrame, data: bytes) -> bytes:
    """``data``, made from ``original`` by pushing or popping VLAN tags, with its header.

    A tag is four bytes after the MAC addresses, so the L4 header (and with
    it ``csum_start``, and ``hdr_len`` for a GSO frame) moves by exactly the
    change in length.
    """
    if data is original:
        return data
    delta = len(data) - len(original)
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET.unpack(original.vnet)
    if not delta:
        return VnetFrame(data, original.vnet)
    hdr_len = hdr_len + delta if hdr_len else 0
    header = VNET.pack(flags, gso_type, hdr_len, gso_size, csum_start + delta, csum_offset)
    return VnetFrame(data, header)
