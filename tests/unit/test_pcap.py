"""The pcap file codec, checked against scapy's reader and writer and tcpdump."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.config import conf
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import RawPcapWriter, rdpcap

from pyvswitch.packet.pcap import (
    DEFAULT_SNAPLEN,
    LINKTYPE_ETHERNET,
    MAGIC_NSEC,
    MAGIC_USEC,
    PcapError,
    PcapReader,
    PcapRecord,
    PcapWriter,
    encode_header,
    encode_record,
    read_all,
)

if TYPE_CHECKING:
    from pathlib import Path

conf.verb = 0

MAC_A = "50:54:00:00:00:0a"
MAC_B = "50:54:00:00:00:0b"

FRAMES = [
    bytes(
        Ether(dst=MAC_A, src=MAC_B)
        / IP(src="192.0.2.1", dst="198.51.100.2")
        / TCP(sport=40000, dport=50000, flags="S")
    ),
    bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_A) / ARP(psrc="192.0.2.1", pdst="192.0.2.2")),
    bytes(
        Ether(dst=MAC_B, src=MAC_A)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / ICMPv6EchoRequest(id=1, seq=2, data=b"x" * 100)
    ),
    bytes(
        Ether(dst=MAC_A, src=MAC_B)
        / IP(src="192.0.2.1", dst="198.51.100.2")
        / UDP(sport=40000, dport=50000)
        / (b"u" * 1400)
    ),
]
# Seconds and fractions; the fractions fit microseconds so both precisions can use them.
TIMES = [(1_700_000_000, 0), (1_700_000_000, 999_999), (1_700_000_001, 1), (0x7FFFFFFF, 500_000)]


def write_ours(
    frames: list[bytes],
    times: list[tuple[int, int]],
    *,
    nanosecond: bool = False,
    snaplen: int = DEFAULT_SNAPLEN,
) -> bytes:
    out = io.BytesIO()
    writer = PcapWriter(out, snaplen=snaplen, nanosecond=nanosecond)
    for frame, (sec, frac) in zip(frames, times, strict=True):
        writer.write(frame, sec, frac)
    return out.getvalue()


def ns_times() -> list[tuple[int, int]]:
    return [(sec, frac * 1000 + 123) for sec, frac in TIMES]


# -- our writer, scapy's reader -------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_scapy_reads_what_we_write(tmp_path: Path, nanosecond: bool) -> None:
    times = ns_times() if nanosecond else TIMES
    path = tmp_path / "ours.pcap"
    path.write_bytes(write_ours(FRAMES, times, nanosecond=nanosecond))
    packets = rdpcap(str(path))
    assert len(packets) == len(FRAMES)
    unit = Decimal(10) ** (-9 if nanosecond else -6)
    for pkt, frame, (sec, frac) in zip(packets, FRAMES, times, strict=True):
        assert pkt.original == frame
        assert pkt.wirelen == len(frame)
        assert pkt.time == sec + frac * unit
        assert isinstance(pkt, Ether)


@pytest.mark.parametrize(
    ("nanosecond", "magic"),
    [(False, "d4c3b2a1"), (True, "4d3cb2a1")],
    ids=["usec", "nsec"],
)
def test_global_header_is_little_endian_libpcap_2_4(nanosecond: bool, magic: str) -> None:
    data = write_ours([], [], nanosecond=nanosecond, snaplen=1234)
    assert len(data) == 24
    assert data[:4].hex() == magic
    assert struct.unpack("<HHiIII", data[4:]) == (2, 4, 0, 0, 1234, LINKTYPE_ETHERNET)
    assert data == encode_header(1234, LINKTYPE_ETHERNET, nanosecond)


def test_record_layout() -> None:
    record = encode_record(b"abcdef", 10, 20)
    assert record == struct.pack("<IIII", 10, 20, 6, 6) + b"abcdef"
    assert encode_record(b"abcdef", 1, 2, snaplen=4) == struct.pack("<IIII", 1, 2, 4, 6) + b"abcd"
    assert (
        encode_record(b"abc", 1, 2, orig_len=1500) == struct.pack("<IIII", 1, 2, 3, 1500) + b"abc"
    )


# -- our writer, our reader -----------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_our_reader_reads_what_we_write(nanosecond: bool) -> None:
    times = ns_times() if nanosecond else TIMES
    data = write_ours(FRAMES, times, nanosecond=nanosecond, snaplen=65535)
    reader = PcapReader(io.BytesIO(data))
    assert (reader.nanosecond, reader.snaplen, reader.linktype) == (nanosecond, 65535, 1)
    expected = [
        PcapRecord(sec, frac, len(frame), frame)
        for frame, (sec, frac) in zip(FRAMES, times, strict=True)
    ]
    assert list(reader) == expected
    assert read_all(data) == expected


@given(
    st.lists(
        st.tuples(
            st.binary(max_size=200),
            st.integers(0, 2**32 - 1),
            st.integers(0, 999_999_999),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_round_trip_any_records(records: list[tuple[bytes, int, int]], nanosecond: bool) -> None:
    data = write_ours(
        [r[0] for r in records], [(r[1], r[2]) for r in records], nanosecond=nanosecond
    )
    expected = [PcapRecord(sec, frac, len(frame), frame) for frame, sec, frac in records]
    assert read_all(data) == expected
    assert list(PcapReader(io.BytesIO(data))) == expected


def test_empty_file_has_no_records() -> None:
    data = write_ours([], [])
    assert read_all(data) == []
    assert list(PcapReader(io.BytesIO(data))) == []


# -- files written by others ----------------------------------------------------------


@pytest.mark.parametrize("endianness", ["<", ">"], ids=["little", "big"])
@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_our_reader_reads_scapys_files(tmp_path: Path, endianness: str, nanosecond: bool) -> None:
    times = ns_times() if nanosecond else TIMES
    path = tmp_path / "scapy.pcap"
    writer = RawPcapWriter(
        str(path), linktype=1, endianness=endianness, nano=nanosecond, snaplen=9000
    )
    writer.write_header(None)
    for frame, (sec, frac) in zip(FRAMES, times, strict=True):
        writer.write_packet(frame, sec=sec, usec=frac)
    writer.close()
    data = path.read_bytes()
    magic = MAGIC_NSEC if nanosecond else MAGIC_USEC
    assert data[:4] == struct.pack(endianness + "I", magic)  # scapy did write that order
    with path.open("rb") as f:
        reader = PcapReader(f)
        records = list(reader)
    assert (reader.nanosecond, reader.snaplen, reader.linktype) == (nanosecond, 9000, 1)
    assert records == [
        PcapRecord(sec, frac, len(frame), frame)
        for frame, (sec, frac) in zip(FRAMES, times, strict=True)
    ]
    assert read_all(data) == records


@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_big_endian_file_by_hand(nanosecond: bool) -> None:
    magic = MAGIC_NSEC if nanosecond else MAGIC_USEC
    data = struct.pack(">IHHiIII", magic, 2, 4, 0, 0, 96, 1)
    data += struct.pack(">IIII", 0x01020304, 0x000A0B0C, 4, 60) + b"\xde\xad\xbe\xef"
    data += struct.pack(">IIII", 7, 8, 0, 0)
    reader = PcapReader(io.BytesIO(data))
    assert (reader.nanosecond, reader.snaplen, reader.linktype) == (nanosecond, 96, 1)
    expected = [
        PcapRecord(0x01020304, 0x000A0B0C, 60, b"\xde\xad\xbe\xef"),
        PcapRecord(7, 8, 0, b""),
    ]
    assert list(reader) == expected
    assert read_all(data) == expected


# -- snaplen --------------------------------------------------------------------------


def test_snaplen_truncates_but_keeps_original_length(tmp_path: Path) -> None:
    data = write_ours(FRAMES, TIMES, snaplen=64)
    records = read_all(data)
    assert [r.data for r in records] == [f[:64] for f in FRAMES]
    assert [r.orig_len for r in records] == [len(f) for f in FRAMES]
    assert any(len(f) < 64 for f in FRAMES)  # short frames are kept whole
    assert any(len(f) > 64 for f in FRAMES)
    path = tmp_path / "snap.pcap"
    path.write_bytes(data)
    packets = rdpcap(str(path))
    assert [p.original for p in packets] == [f[:64] for f in FRAMES]
    assert [p.wirelen for p in packets] == [len(f) for f in FRAMES]


# -- errors ---------------------------------------------------------------------------

VALID = write_ours(FRAMES[:2], TIMES[:2])
RECORD_1 = 24
RECORD_2 = RECORD_1 + 16 + len(FRAMES[0])


def read_both(data: bytes) -> list[PcapRecord]:
    """Read with PcapReader and with read_all, which must agree (on errors too)."""
    outcomes: list[list[PcapRecord] | PcapError] = []
    for read in (lambda d: list(PcapReader(io.BytesIO(d))), read_all):
        try:
            outcomes.append(read(data))
        except PcapError as e:
            outcomes.append(e)
    first, second = outcomes
    if isinstance(first, PcapError) or isinstance(second, PcapError):
        assert isinstance(first, PcapError), second
        assert isinstance(second, PcapError), first
        assert str(first) == str(second)
        raise first
    assert first == second
    return first


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"not a pcap file: 0 bytes is shorter than the 24-byte header"),
        (VALID[:23], r"not a pcap file: 23 bytes is shorter than the 24-byte header"),
        (b"\x0a\x0d\x0d\x0a" + VALID[4:], r"not a pcap file: unknown magic number 0x0a0d0d0a"),
        (b"GIF89a" + VALID[6:], r"unknown magic number 0x47494638"),
        (VALID[: RECORD_1 + 5], r"pcap record header cut short: 5 of 16 bytes"),
        (VALID[: RECORD_1 + 20], rf"pcap record cut short: 4 of {len(FRAMES[0])} bytes"),
        (VALID[: RECORD_2 + 15], r"pcap record header cut short: 15 of 16 bytes"),
        (VALID[:-1], rf"pcap record cut short: {len(FRAMES[1]) - 1} of {len(FRAMES[1])} bytes"),
    ],
    ids=[
        "empty",
        "short-global-header",
        "pcapng-magic",
        "gif-magic",
        "cut-in-record-header",
        "cut-in-record-data",
        "cut-in-second-record-header",
        "last-byte-missing",
    ],
)
def test_bad_files_raise_a_clear_pcap_error(data: bytes, message: str) -> None:
    with pytest.raises(PcapError, match=message):
        read_both(data)


def test_pcap_error_is_a_value_error() -> None:
    assert issubclass(PcapError, ValueError)


def test_every_cut_either_reads_whole_records_or_raises_pcap_error() -> None:
    boundaries = {24: 0, RECORD_2: 1, len(VALID): 2}
    for cut in range(len(VALID) + 1):
        if cut in boundaries:
            records = read_both(VALID[:cut])
            assert len(records) == boundaries[cut]
        else:
            with pytest.raises(PcapError):
                read_both(VALID[:cut])


# -- tcpdump --------------------------------------------------------------------------

TCPDUMP = shutil.which("tcpdump")
needs_tcpdump = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")


def tcpdump(path: Path, *args: str) -> list[str]:
    assert TCPDUMP is not None
    result = subprocess.run(
        [TCPDUMP, "-r", str(path), "-nn", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.splitlines()


@needs_tcpdump
@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_tcpdump_reads_our_file(tmp_path: Path, nanosecond: bool) -> None:
    times = ns_times() if nanosecond else TIMES
    path = tmp_path / "ours.pcap"
    path.write_bytes(write_ours(FRAMES, times, nanosecond=nanosecond))
    precision = "nano" if nanosecond else "micro"
    lines = tcpdump(path, "-tt", f"--time-stamp-precision={precision}")
    assert len(lines) == len(FRAMES)
    width = 9 if nanosecond else 6
    assert [line.split()[0] for line in lines] == [f"{s}.{f:0{width}d}" for s, f in times]
    assert "192.0.2.1.40000 > 198.51.100.2.50000" in lines[0]
    assert "ARP" in lines[1]
    assert "ICMP6, echo request" in lines[2]


@needs_tcpdump
def test_tcpdump_reads_our_snaplen_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "snap.pcap"
    path.write_bytes(write_ours(FRAMES, TIMES, snaplen=60))
    lines = tcpdump(path, "-e")
    assert len(lines) == len(FRAMES)
    # -e prints the link-level header with the frame's original length.
    for line, frame in zip(lines, FRAMES, strict=True):
        assert f"length {len(frame)}:" in line
