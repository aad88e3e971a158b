"""A capture as a pcapng stream: cutting it into blocks, and the block that ends it.

The daemon streams a capture to pvs-tcpdump as pcapng (section header, one
interface description, enhanced packet blocks; see
:mod:`pyvswitch.packet.pcapng`) and ends it with an Interface Statistics
Block: how many frames the port saw, how many the filter accepted, how many
of those the switch dropped because the reader fell behind, and, when the
switch ended the capture itself (the port went away, the daemon is
exiting), a comment saying why. The client reads the stream block by block
as it arrives, to count packets, stop at ``-c COUNT`` on a block boundary
and print the summary.

Only ``struct`` is imported (and named tuples rather than dataclasses,
which would import ``inspect``): pvs-tcpdump starts fast. The daemon writes
little-endian blocks, so that is all this reader reads.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

SHB_TYPE = 0x0A0D0D0A
ISB_TYPE = 0x00000005
EPB_TYPE = 0x00000006

_OPT_END = 0
_OPT_COMMENT = 1
_EPB_FLAGS = 2
_ISB_STARTTIME = 2
_ISB_ENDTIME = 3
_ISB_IFRECV = 4
_ISB_IFDROP = 5
_ISB_FILTERACCEPT = 6

_HEAD = struct.Struct("<II")
_OPTION = struct.Struct("<HH")
_EPB = struct.Struct("<IIIII")
_ISB = struct.Struct("<III")
#: The largest block accepted from the daemon (a 256 KiB frame and room to
#: spare): a length beyond it means the stream is not what it should be.
MAX_BLOCK = 1 << 20


class StreamError(ValueError):
    """The bytes are not the pcapng stream the daemon sends."""


class CaptureStats(NamedTuple):
    """What an Interface Statistics Block reports about a whole capture.

    ``start`` and ``end`` are in microseconds since the epoch; ``comment``
    is set when the switch ended the capture on its own, and says why.
    """

    received: int
    accepted: int
    dropped: int
    start: int
    end: int
    comment: str | None = None


def _option(code: int, value: bytes) -> bytes:
    return _OPTION.pack(code, len(value)) + value + b"\0" * (-len(value) % 4)


def _stamp(usec: int) -> bytes:
    """A timestamp option's value: the high 32 bits, then the low 32 bits."""
    return struct.pack("<II", usec >> 32, usec & 0xFFFFFFFF)


def interface_statistics(interface_id: int, stats: CaptureStats) -> bytes:
    """The Interface Statistics Block for ``stats``, timestamped at its end."""
    options = b""
    if stats.comment is not None:
        options += _option(_OPT_COMMENT, stats.comment.encode())
    options += _option(_ISB_STARTTIME, _stamp(stats.start))
    options += _option(_ISB_ENDTIME, _stamp(stats.end))
    options += _option(_ISB_IFRECV, struct.pack("<Q", stats.received))
    options += _option(_ISB_IFDROP, struct.pack("<Q", stats.dropped))
    options += _option(_ISB_FILTERACCEPT, struct.pack("<Q", stats.accepted))
    options += _OPTION.pack(_OPT_END, 0)
    body = _ISB.pack(interface_id, stats.end >> 32, stats.end & 0xFFFFFFFF) + options
    total = len(body) + 12
    return _HEAD.pack(ISB_TYPE, total) + body + struct.pack("<I", total)


def _options(block: bytes, start: int) -> dict[int, bytes]:
    """A block's options from ``start`` (the first of each code wins)."""
    found: dict[int, bytes] = {}
    pos, end = start, len(block) - 4
    while pos + 4 <= end:
        code, length = _OPTION.unpack_from(block, pos)
        pos += 4
        if code == _OPT_END:
            break
        if pos + length > end:
            raise StreamError(f"option {code} claims {length} bytes; its block has fewer")
        found.setdefault(code, block[pos : pos + length])
        pos += length + (-length % 4)
    return found


def read_statistics(block: bytes) -> CaptureStats:
    """Decode an Interface Statistics Block (a whole block, as :class:`BlockReader` gives it)."""
    if len(block) < 24 or _HEAD.unpack_from(block)[0] != ISB_TYPE:
        raise StreamError("not an interface statistics block")
    options = _options(block, 20)

    def counter(code: int) -> int:
        value = options.get(code)
        if value is None or len(value) != 8:
            return 0
        count: int = struct.unpack("<Q", value)[0]
        return count

    def stamp(code: int) -> int:
        value = options.get(code)
        if value is None or len(value) != 8:
            return 0
        high: int
        low: int
        high, low = struct.unpack("<II", value)
        return high << 32 | low

    comment = options.get(_OPT_COMMENT)
    return CaptureStats(
        counter(_ISB_IFRECV),
        counter(_ISB_FILTERACCEPT),
        counter(_ISB_IFDROP),
        stamp(_ISB_STARTTIME),
        stamp(_ISB_ENDTIME),
        comment.decode("utf-8", "replace") if comment is not None else None,
    )


class Packet(NamedTuple):
    """One frame of an Enhanced Packet Block: when (µs), its length, the bytes kept, its way.

    ``direction`` is epb_flags' direction: 1 inbound, 2 outbound, 0 unknown.
    """

    timestamp: int
    orig_len: int
    data: bytes
    direction: int


def read_packet(block: bytes) -> Packet:
    """Decode an Enhanced Packet Block (a whole block, as :class:`BlockReader` gives it)."""
    if len(block) < 32 or _HEAD.unpack_from(block)[0] != EPB_TYPE:
        raise StreamError("not an enhanced packet block")
    _, high, low, caplen, orig_len = _EPB.unpack_from(block, 8)
    if 28 + caplen > len(block) - 4:
        raise StreamError(f"a packet claims {caplen} captured bytes; its block has fewer")
    flags = _options(block, 28 + caplen + (-caplen % 4)).get(_EPB_FLAGS)
    direction = struct.unpack("<I", flags)[0] & 3 if flags and len(flags) == 4 else 0
    return Packet(high << 32 | low, orig_len, block[28 : 28 + caplen], direction)


class BlockReader:
    """Cuts bytes as they arrive into whole blocks: ``feed`` returns the blocks completed."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add ``data``; return ``(block type, whole block)`` for each block now complete."""
        self._buffer += data
        blocks: list[tuple[int, bytes]] = []
        pos = 0
        buffer = self._buffer
        while len(buffer) - pos >= 8:
            block_type, total = _HEAD.unpack_from(buffer, pos)
            if not self._started:
                if block_type != SHB_TYPE:
                    raise StreamError("the stream does not start with a pcapng section header")
                self._started = True
            if total < 12 or total % 4 or total > MAX_BLOCK:
                raise StreamError(f"a block claims an impossible length of {total} bytes")
            if len(buffer) - pos < total:
                break
            blocks.append((block_type, bytes(buffer[pos : pos + total])))
            pos += total
        del buffer[:pos]
        return blocks

    @property
    def pending(self) -> int:
        """Bytes held that do not make a whole block yet."""
        return len(self._buffer)


__all__ = [
    "EPB_TYPE",
    "ISB_TYPE",
    "SHB_TYPE",
    "BlockReader",
    "CaptureStats",
    "Packet",
    "StreamError",
    "interface_statistics",
    "read_packet",
    "read_statistics",
]
