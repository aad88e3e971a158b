"""The capture stream pvs-tcpdump reads: blocks as they arrive, and the statistics block.

The Interface Statistics Block is checked against the pcapng specification
(draft-ietf-opsawg-pcapng, section 4.6) by decoding it here by hand: block
type 5, interface id, timestamp, then options isb_starttime (2),
isb_endtime (3), isb_ifrecv (4), isb_ifdrop (5), isb_filteraccept (6) and
opt_comment (1). tcpdump, tshark and capinfos read whole files ending in
one in tests/scenario/test_daemon_capture.py.
"""

from __future__ import annotations

import io
import struct

import pytest

from pyvswitch.capture.pcapng_stream import (
    EPB_TYPE,
    ISB_TYPE,
    SHB_TYPE,
    BlockReader,
    CaptureStats,
    StreamError,
    interface_statistics,
    read_packet,
    read_statistics,
)
from pyvswitch.packet.pcapng import Direction, PcapngWriter, section_header

STATS = CaptureStats(
    received=10, accepted=7, dropped=2, start=1_700_000_000_000_001, end=1_700_000_005_500_000
)


def _spec_options(block: bytes) -> dict[int, bytes]:
    """Options of an ISB, read by the specification's layout."""
    block_type, total = struct.unpack_from("<II", block)
    assert block_type == 5
    assert struct.unpack_from("<I", block, total - 4)[0] == total == len(block)
    assert total % 4 == 0
    options, pos = {}, 20
    while True:
        code, length = struct.unpack_from("<HH", block, pos)
        pos += 4
        if code == 0:
            break
        options[code] = block[pos : pos + length]
        pos += length + (-length % 4)
    assert pos == total - 4
    return options


def test_statistics_block_follows_the_specification() -> None:
    block = interface_statistics(0, STATS._replace(comment="port p1 was removed"))
    interface, high, low = struct.unpack_from("<III", block, 8)
    assert interface == 0
    assert (high << 32 | low) == STATS.end
    options = _spec_options(block)
    assert options[1] == b"port p1 was removed"
    start_high, start_low = struct.unpack("<II", options[2])
    assert (start_high << 32 | start_low) == STATS.start
    assert struct.unpack("<Q", options[4]) == (10,)
    assert struct.unpack("<Q", options[5]) == (2,)
    assert struct.unpack("<Q", options[6]) == (7,)


@pytest.mark.parametrize("comment", [None, "pvs-vswitchd is exiting", "é"])
def test_statistics_read_back(comment: str | None) -> None:
    stats = STATS._replace(comment=comment)
    assert read_statistics(interface_statistics(0, stats)) == stats


def _stream() -> bytes:
    out = io.BytesIO()
    writer = PcapngWriter(out, snaplen=64)
    writer.add_interface("patch0")
    writer.write(0, b"\x01" * 100, 5, Direction.INBOUND)
    writer.write(0, b"\x02" * 30, 6, Direction.OUTBOUND)
    return out.getvalue() + interface_statistics(0, STATS)


def test_blocks_come_out_whole_however_the_bytes_arrive() -> None:
    data = _stream()
    reader = BlockReader()
    blocks = [block for i in range(len(data)) for block in reader.feed(data[i : i + 1])]
    assert [t for t, _ in blocks] == [SHB_TYPE, 1, EPB_TYPE, EPB_TYPE, ISB_TYPE]
    assert b"".join(b for _, b in blocks) == data
    assert reader.pending == 0
    first, second = (read_packet(b) for t, b in blocks if t == EPB_TYPE)
    assert first == (5, 100, b"\x01" * 64, 1)
    assert second == (6, 30, b"\x02" * 30, 2)
    assert read_statistics(blocks[-1][1]) == STATS


def test_a_stream_that_is_not_pcapng_is_refused() -> None:
    with pytest.raises(StreamError, match="does not start with a pcapng section header"):
        BlockReader().feed(b"\xd4\xc3\xb2\xa1" + bytes(20))


def test_an_impossible_block_length_is_refused() -> None:
    with pytest.raises(StreamError, match="impossible length"):
        BlockReader().feed(section_header() + struct.pack("<II", EPB_TYPE, 13))
