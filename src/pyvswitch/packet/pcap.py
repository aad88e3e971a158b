"""The classic pcap file format (libpcap's, as tcpdump and Wireshark read it).

Pure: the codec turns records into bytes and bytes into records. The reader and
writer work on a binary stream the caller opened, so the caller owns the I/O
and the clock (timestamps are arguments). Both the microsecond (0xa1b2c3d4) and
nanosecond (0xa1b23c4d) magic numbers are read in either byte order; files are
written in little-endian order, as libpcap does on the machines we run on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

MAGIC_USEC = 0xA1B2C3D4
MAGIC_NSEC = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 262144

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


class PcapError(ValueError):
    """The bytes are not a pcap file, or a record is cut short."""


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One captured frame. ``ts_frac`` is in micro- or nanoseconds, as the file's magic says."""

    ts_sec: int
    ts_frac: int
    orig_len: int
    data: bytes


def encode_header(
    snaplen: int = DEFAULT_SNAPLEN, linktype: int = LINKTYPE_ETHERNET, nanosecond: bool = False
) -> bytes:
    """The 24-byte global header that starts a pcap file."""
    return _GLOBAL.pack(MAGIC_NSEC if nanosecond else MAGIC_USEC, 2, 4, 0, 0, snaplen, linktype)


def encode_record(
    data: bytes,
    ts_sec: int,
    ts_frac: int,
    snaplen: int = DEFAULT_SNAPLEN,
    orig_len: int | None = None,
) -> bytes:
    """One record: a 16-byte header and the frame cut to ``snaplen`` bytes."""
    kept = data[:snaplen]
    return (
        _RECORD.pack(ts_sec, ts_frac, len(kept), len(data) if orig_len is None else orig_len)
        + kept
    )


def _decode_header(head: bytes) -> tuple[str, bool, int, int]:
    if len(head) < 24:
        raise PcapError(f"not a pcap file: {len(head)} bytes is shorter than the 24-byte header")
    for order in ("<", ">"):
        magic = struct.unpack(order + "I", head[:4])[0]
        if magic in (MAGIC_USEC, MAGIC_NSEC):
            _, _, _, _, _, snaplen, linktype = struct.unpack(order + "IHHiIII", head[:24])
            return order, magic == MAGIC_NSEC, snaplen, linktype
    raise PcapError(f"not a pcap file: unknown magic number 0x{head[:4].hex()}")


class PcapReader:
    """Iterate over the records of a pcap stream opened by the caller in binary mode."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        order, self.nanosecond, self.snaplen, self.linktype = _decode_header(stream.read(24))
        self._record = struct.Struct(order + "IIII")

    def __iter__(self) -> Iterator[PcapRecord]:
        return self

    def __next__(self) -> PcapRecord:
        head = self._stream.read(16)
        if not head:
            raise StopIteration
        if len(head) < 16:
            raise PcapError(f"pcap record header cut short: {len(head)} of 16 bytes")
        sec, frac, incl, orig = self._record.unpack(head)
        data = self._stream.read(incl)
        if len(data) < incl:
            raise PcapError(f"pcap record cut short: {len(data)} of {incl} bytes")
        return PcapRecord(sec, frac, orig, data)


class PcapWriter:
    """Write frames to a binary stream opened by the caller; the header is written at once."""

    def __init__(
        self,
        stream: IO[bytes],
        snaplen: int = DEFAULT_SNAPLEN,
        linktype: int = LINKTYPE_ETHERNET,
        nanosecond: bool = False,
    ) -> None:
        self._stream = stream
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        stream.write(encode_header(snaplen, linktype, nanosecond))

    def write(self, data: bytes, ts_sec: int = 0, ts_frac: int = 0) -> None:
        """Append one frame with the given timestamp (seconds and micro/nanoseconds)."""
        self._stream.write(encode_record(data, ts_sec, ts_frac, self.snaplen))


def read_all(data: bytes) -> list[PcapRecord]:
    """Decode a whole pcap file held in memory."""
    order, _, _, _ = _decode_header(data[:24])
    record = struct.Struct(order + "IIII")
    out = []
    pos = 24
    while pos < len(data):
        if len(data) - pos < 16:
            raise PcapError(f"pcap record header cut short: {len(data) - pos} of 16 bytes")
        sec, frac, incl, orig = record.unpack_from(data, pos)
        pos += 16
        if len(data) - pos < incl:
            raise PcapError(f"pcap record cut short: {len(data) - pos} of {incl} bytes")
        out.append(PcapRecord(sec, frac, orig, data[pos : pos + incl]))
        pos += incl
    return out
