"""The pcapng file format: captures that name their port and say which way a frame went.

A classic pcap file has one link type and no per-frame metadata; pcapng
(draft-ietf-opsawg-pcapng) describes each interface in an Interface
Description Block, whose ``if_name`` option Wireshark shows as the
interface's name, and each frame in an Enhanced Packet Block, whose
``epb_flags`` option carries the direction: inbound (1) or outbound (2).

Pure: the functions build blocks as bytes and :class:`PcapngWriter` writes
them to a binary stream the caller opened; timestamps are arguments, counted
in the interface's resolution (microseconds unless the interface was added
with ``nanosecond=True``). Blocks are written in little-endian order, as
libpcap does on the machines we run on. :func:`read_all` reads files of
either byte order back, for tests and tools.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import IO

from pyvswitch.packet.pcap import DEFAULT_SNAPLEN, LINKTYPE_ETHERNET

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

_OPT_ENDOFOPT = 0
_SHB_USERAPPL = 4
_IF_NAME = 2
_IF_TSRESOL = 9
_EPB_FLAGS = 2
# if_tsresol is a power of ten (high bit clear) or of two (high bit set).
_TSRESOL_BINARY = 0x80

_BLOCK_HEAD = struct.Struct("<II")
_OPTION_HEAD = struct.Struct("<HH")
_SHB_BODY = struct.Struct("<IHHq")
_IDB_BODY = struct.Struct("<HHI")
_EPB_BODY = struct.Struct("<IIIII")


class Direction(enum.IntEnum):
    """Which way a frame crossed the port: the low two bits of ``epb_flags``."""

    INBOUND = 1
    OUTBOUND = 2


class PcapngError(ValueError):
    """The bytes are not a pcapng file, or a block is cut short or inconsistent."""


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _options(options: list[tuple[int, bytes]]) -> bytes:
    """Encoded options and the end-of-options marker, or nothing when there are none."""
    if not options:
        return b""
    out = b"".join(_OPTION_HEAD.pack(code, len(value)) + _pad(value) for code, value in options)
    return out + _OPTION_HEAD.pack(_OPT_ENDOFOPT, 0)


def _block(block_type: int, body: bytes) -> bytes:
    """A block: type, total length, the body padded to 32 bits, the total length again."""
    body = _pad(body)
    total = len(body) + 12
    return _BLOCK_HEAD.pack(block_type, total) + body + struct.pack("<I", total)


def section_header(application: str | None = "pyvswitch") -> bytes:
    """The Section Header Block that starts a file (section length unknown, as a stream needs)."""
    options = [] if application is None else [(_SHB_USERAPPL, application.encode())]
    return _block(SHB_TYPE, _SHB_BODY.pack(BYTE_ORDER_MAGIC, 1, 0, -1) + _options(options))


def interface_description(
    name: str,
    snaplen: int = DEFAULT_SNAPLEN,
    linktype: int = LINKTYPE_ETHERNET,
    nanosecond: bool = False,
) -> bytes:
    """An Interface Description Block; interfaces are numbered from 0 in the order written."""
    options = [(_IF_NAME, name.encode())]
    if nanosecond:
        options.append((_IF_TSRESOL, bytes([9])))
    return _block(IDB_TYPE, _IDB_BODY.pack(linktype, 0, snaplen) + _options(options))


def enhanced_packet(
    interface_id: int,
    data: bytes,
    timestamp: int,
    snaplen: int = DEFAULT_SNAPLEN,
    direction: Direction | None = None,
) -> bytes:
    """An Enhanced Packet Block: the frame cut to ``snaplen`` bytes, its length, its direction.

    ``timestamp`` counts units of the interface's resolution since the epoch.
    """
    kept = data[:snaplen]
    options = [] if direction is None else [(_EPB_FLAGS, struct.pack("<I", direction))]
    head = _EPB_BODY.pack(
        interface_id, timestamp >> 32, timestamp & 0xFFFFFFFF, len(kept), len(data)
    )
    return _block(EPB_TYPE, head + _pad(kept) + _options(options))


class PcapngWriter:
    """Write a pcapng stream: the section header at once, then interfaces and frames.

    Every interface of a writer has the same snapshot length and timestamp
    resolution: libpcap (and so tcpdump) refuses a file whose interfaces
    differ in snapshot length.
    """

    def __init__(
        self,
        stream: IO[bytes],
        snaplen: int = DEFAULT_SNAPLEN,
        nanosecond: bool = False,
        application: str | None = "pyvswitch",
    ) -> None:
        self._stream = stream
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self._interfaces = 0
        stream.write(section_header(application))

    def add_interface(self, name: str) -> int:
        """Describe an Ethernet interface (a port); return the id its frames are written with."""
        self._stream.write(interface_description(name, self.snaplen, nanosecond=self.nanosecond))
        self._interfaces += 1
        return self._interfaces - 1

    def write(
        self,
        interface_id: int,
        data: bytes,
        timestamp: int,
        direction: Direction | None = None,
    ) -> None:
        """Append one frame seen on ``interface_id``, cut to the snapshot length."""
        if not 0 <= interface_id < self._interfaces:
            raise ValueError(f"interface {interface_id} has not been added to this capture")
        self._stream.write(enhanced_packet(interface_id, data, timestamp, self.snaplen, direction))


@dataclass(frozen=True, slots=True)
class PcapngInterface:
    """An interface as its description block gives it."""

    linktype: int
    snaplen: int
    name: str | None
    ticks_per_second: int


@dataclass(frozen=True, slots=True)
class PcapngPacket:
    """One frame of an Enhanced Packet Block.

    ``interface_id`` indexes :attr:`PcapngCapture.interfaces` (across all
    sections of the file); ``timestamp`` is in that interface's ticks.
    """

    interface_id: int
    timestamp: int
    orig_len: int
    data: bytes
    direction: Direction | None


@dataclass(slots=True)
class PcapngCapture:
    """What a pcapng file holds: its interfaces and its frames, in file order."""

    interfaces: list[PcapngInterface] = field(default_factory=list)
    packets: list[PcapngPacket] = field(default_factory=list)


def _read_options(body: bytes, start: int, order: str) -> dict[int, bytes]:
    """Options from ``start`` to the end of ``body`` (the first of each code wins)."""
    found: dict[int, bytes] = {}
    pos = start
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        pos += 4
        if code == _OPT_ENDOFOPT:
            break
        if pos + length > len(body):
            raise PcapngError(f"option {code} claims {length} bytes; the block has fewer")
        found.setdefault(code, body[pos : pos + length])
        pos += length + (-length % 4)
    return found


def _ticks_per_second(tsresol: bytes | None) -> int:
    if not tsresol:
        return 10**6
    base = 2 if tsresol[0] & _TSRESOL_BINARY else 10
    return int(base ** (tsresol[0] & 0x7F))


def _read_interface(body: bytes, order: str) -> PcapngInterface:
    if len(body) < 8:
        raise PcapngError(f"interface description block body of {len(body)} bytes is too short")
    linktype, _, snaplen = struct.unpack_from(order + "HHI", body)
    options = _read_options(body, 8, order)
    name = options.get(_IF_NAME)
    return PcapngInterface(
        linktype,
        snaplen,
        name.decode("utf-8", "replace") if name is not None else None,
        _ticks_per_second(options.get(_IF_TSRESOL)),
    )


def _read_packet(body: bytes, order: str, first: int, interfaces: int) -> PcapngPacket:
    """A packet; its interface id, local to its section, becomes an index into the file's."""
    if len(body) < 20:
        raise PcapngError(f"enhanced packet block body of {len(body)} bytes is too short")
    interface_id, high, low, caplen, orig_len = struct.unpack_from(order + "IIIII", body)
    if interface_id >= interfaces - first:
        raise PcapngError(f"a packet names interface {interface_id}, which was not described")
    if 20 + caplen > len(body):
        raise PcapngError(f"a packet claims {caplen} captured bytes; its block has fewer")
    options = _read_options(body, 20 + caplen + (-caplen % 4), order)
    flags = options.get(_EPB_FLAGS)
    bits = struct.unpack(order + "I", flags)[0] & 3 if flags and len(flags) == 4 else 0
    return PcapngPacket(
        first + interface_id,
        high << 32 | low,
        orig_len,
        body[20 : 20 + caplen],
        Direction(bits) if bits in (Direction.INBOUND, Direction.OUTBOUND) else None,
    )


def read_all(data: bytes) -> PcapngCapture:
    """Decode a whole pcapng file held in memory; unknown block types are skipped."""
    capture = PcapngCapture()
    section_interfaces = 0
    order = "<"
    pos = 0
    while pos < len(data):
        if len(data) - pos < 12:
            raise PcapngError(f"block at byte {pos} is cut short: {len(data) - pos} bytes left")
        block_type = struct.unpack_from(order + "I", data, pos)[0]
        if block_type == SHB_TYPE:
            order = _section_byte_order(data, pos)
            section_interfaces = len(capture.interfaces)
        elif pos == 0:
            raise PcapngError("not a pcapng file: it does not start with a section header")
        total = struct.unpack_from(order + "I", data, pos + 4)[0]
        if total < 12 or total % 4 or pos + total > len(data):
            raise PcapngError(f"block at byte {pos} has an impossible length {total}")
        trailer = struct.unpack_from(order + "I", data, pos + total - 4)[0]
        if trailer != total:
            raise PcapngError(
                f"block at byte {pos} says {total} bytes at its start, {trailer} at its end"
            )
        body = data[pos + 8 : pos + total - 4]
        if block_type == IDB_TYPE:
            capture.interfaces.append(_read_interface(body, order))
        elif block_type == EPB_TYPE:
            capture.packets.append(
                _read_packet(body, order, section_interfaces, len(capture.interfaces))
            )
        pos += total
    return capture


def _section_byte_order(data: bytes, pos: int) -> str:
    if len(data) - pos < 12:
        raise PcapngError("section header block is cut short")
    for order in ("<", ">"):
        if struct.unpack_from(order + "I", data, pos + 8)[0] == BYTE_ORDER_MAGIC:
            return order
    raise PcapngError(f"section header at byte {pos} has no byte-order magic")
