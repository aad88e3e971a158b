"""The pcapng writer, read back by tcpdump, tshark and scapy; our reader against scapy's writer."""

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
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import PcapNgReader, PcapNgWriter, rdpcap

from pyvswitch.packet.pcapng import (
    Direction,
    PcapngError,
    PcapngWriter,
    enhanced_packet,
    interface_description,
    read_all,
    section_header,
)

if TYPE_CHECKING:
    from pathlib import Path

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"

FRAMES = [
    bytes(
        Ether(dst=MAC_B, src=MAC_A)
        / IP(src="192.0.2.1", dst="198.51.100.2")
        / TCP(sport=40000, dport=80, flags="S")
    ),
    bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_A) / ARP(psrc="192.0.2.1", pdst="192.0.2.2")),
    bytes(
        Ether(dst=MAC_A, src=MAC_B)
        / Dot1Q(vlan=10)
        / IP(src="198.51.100.2", dst="192.0.2.1")
        / UDP(sport=53, dport=40000)
        / Raw(b"a" * 300)
    ),
    bytes(
        Ether(dst=MAC_B, src=MAC_A)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / ICMPv6EchoRequest(data=b"x" * 1000)
    ),
    bytes(Ether(dst=MAC_A, src=MAC_B) / IP(src="192.0.2.9", dst="192.0.2.1") / TCP(flags="A")),
]
# One capture on a port and on a patch port, in both directions, as pvs-tcpdump will write it.
# Timestamps are microseconds since the epoch.
RECORDS = [
    (0, FRAMES[0], 1_700_000_000_000_001, Direction.INBOUND),
    (1, FRAMES[1], 1_700_000_000_250_000, Direction.OUTBOUND),
    (0, FRAMES[2], 1_700_000_001_000_000, Direction.OUTBOUND),
    (1, FRAMES[3], 1_700_000_002_999_999, None),
    (0, FRAMES[4], 1_700_000_003_000_000, Direction.INBOUND),
]
NAMES = ["p1", "patch-br0"]


def _capture(snaplen: int = 262144, nanosecond: bool = False) -> bytes:
    stream = io.BytesIO()
    writer = PcapngWriter(stream, snaplen=snaplen, nanosecond=nanosecond)
    for name in NAMES:
        writer.add_interface(name)
    for interface, frame, timestamp, direction in RECORDS:
        writer.write(interface, frame, timestamp, direction)
    return stream.getvalue()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.mark.parametrize("snaplen", [262144, 64])
def test_tcpdump_reads_every_frame_with_its_lengths_and_time(tmp_path: Path, snaplen: int) -> None:
    tcpdump = _tool("tcpdump")
    path = tmp_path / "capture.pcapng"
    path.write_bytes(_capture(snaplen))
    listing = subprocess.run(
        [tcpdump, "-nn", "-r", str(path)], capture_output=True, text=True, check=True, timeout=30
    )
    assert len(listing.stdout.splitlines()) == len(RECORDS)
    assert "link-type EN10MB (Ethernet)" in listing.stderr
    assert f"snapshot length {snaplen}" in listing.stderr
    # tcpdump copies what it read to a classic pcap file; scapy then reads that
    # file, so the comparison uses neither our writer's reader nor our own.
    converted = tmp_path / "converted.pcap"
    subprocess.run(
        [tcpdump, "-r", str(path), "-w", str(converted)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    packets = rdpcap(str(converted))
    assert [bytes(p) for p in packets] == [frame[:snaplen] for _, frame, _, _ in RECORDS]
    assert [p.wirelen for p in packets] == [len(frame) for _, frame, _, _ in RECORDS]
    assert [p.time for p in packets] == [Decimal(ts) / 10**6 for _, _, ts, _ in RECORDS]


def test_tcpdump_filters_our_file(tmp_path: Path) -> None:
    tcpdump = _tool("tcpdump")
    path = tmp_path / "capture.pcapng"
    path.write_bytes(_capture())
    for expression, count in (("tcp", 2), ("vlan 10", 1), ("ip6", 1), ("arp", 1)):
        listing = subprocess.run(
            [tcpdump, "-nn", "-r", str(path), expression],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert len(listing.stdout.splitlines()) == count, expression


def test_tshark_shows_port_names_and_directions(tmp_path: Path) -> None:
    tshark = _tool("tshark")
    path = tmp_path / "capture.pcapng"
    path.write_bytes(_capture(snaplen=100))
    fields = [
        "frame.interface_name",
        "frame.packet_flags_direction",
        "frame.cap_len",
        "frame.len",
        "frame.time_epoch",
    ]
    command = [tshark, "-r", str(path), "-T", "fields"]
    for name in fields:
        command += ["-e", name]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    expected = [
        [
            NAMES[interface],
            "" if direction is None else f"0x{direction:08x}",
            str(min(len(frame), 100)),
            str(len(frame)),
            f"{ts // 10**6}.{ts % 10**6:06d}000",
        ]
        for interface, frame, ts, direction in RECORDS
    ]
    assert rows == expected


def test_scapy_reads_direction_interface_name_and_nanoseconds(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcapng"
    path.write_bytes(_capture(snaplen=128, nanosecond=True))
    with PcapNgReader(str(path)) as reader:
        packets = list(reader)
    assert [p.direction for p in packets] == [d for _, _, _, d in RECORDS]
    assert [p.sniffed_on for p in packets] == [NAMES[i] for i, _, _, _ in RECORDS]
    assert [bytes(p) for p in packets] == [frame[:128] for _, frame, _, _ in RECORDS]
    assert [p.wirelen for p in packets] == [len(frame) for _, frame, _, _ in RECORDS]
    # The same counts read as nanoseconds, since the interfaces say so (if_tsresol 9).
    assert [p.time for p in packets] == [Decimal(ts) / 10**9 for _, _, ts, _ in RECORDS]


def test_our_reader_reads_what_scapy_writes(tmp_path: Path) -> None:
    path = tmp_path / "scapy.pcapng"
    packets = []
    for interface, frame, ts, direction in RECORDS:
        packet = Ether(frame)
        packet.time = Decimal(ts) / 10**6
        packet.sniffed_on = NAMES[interface]
        if direction is not None:
            packet.direction = int(direction)
        packets.append(packet)
    with PcapNgWriter(str(path)) as writer:
        for packet in packets:
            writer.write(packet)
    capture = read_all(path.read_bytes())
    names = [capture.interfaces[p.interface_id].name for p in capture.packets]
    assert names == [NAMES[i] for i, _, _, _ in RECORDS]
    assert [p.data for p in capture.packets] == [frame for _, frame, _, _ in RECORDS]
    assert [p.direction for p in capture.packets] == [d for _, _, _, d in RECORDS]
    tick = [capture.interfaces[p.interface_id].ticks_per_second for p in capture.packets]
    assert [Decimal(p.timestamp) / t for p, t in zip(capture.packets, tick, strict=True)] == [
        Decimal(ts) / 10**6 for _, _, ts, _ in RECORDS
    ]


def _big_endian_file(frame: bytes) -> bytes:
    """A big-endian pcapng file assembled field by field from the specification."""

    def block(block_type: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return (
            struct.pack(">II", block_type, len(body) + 12)
            + body
            + struct.pack(">I", len(body) + 12)
        )

    shb = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    name = b"eth9"
    idb = block(
        1,
        struct.pack(">HHI", 1, 0, 96)
        + struct.pack(">HH", 2, len(name))
        + name
        + struct.pack(">HHB3x", 9, 1, 0x83)  # if_tsresol: 2**-3 seconds
        + struct.pack(">HH", 0, 0),
    )
    padded = frame + b"\0" * (-len(frame) % 4)
    epb = block(
        6,
        struct.pack(">IIIII", 0, 0, 80, len(frame), len(frame) + 4)
        + padded
        + struct.pack(">HHI", 2, 4, 2)
        + struct.pack(">HH", 0, 0),
    )
    custom = block(0x00000BAD, b"skipped by every reader")
    return shb + idb + custom + epb


def test_our_reader_reads_big_endian_files_and_skips_unknown_blocks() -> None:
    capture = read_all(_big_endian_file(FRAMES[1]))
    assert len(capture.interfaces) == 1
    interface = capture.interfaces[0]
    assert (interface.linktype, interface.snaplen, interface.name) == (1, 96, "eth9")
    assert interface.ticks_per_second == 8
    (packet,) = capture.packets
    assert (packet.interface_id, packet.timestamp) == (0, 80)
    assert (packet.data, packet.orig_len) == (FRAMES[1], len(FRAMES[1]) + 4)
    assert packet.direction is Direction.OUTBOUND


@given(
    records=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.binary(max_size=200),
            st.integers(0, 2**64 - 1),
            st.sampled_from([None, Direction.INBOUND, Direction.OUTBOUND]),
        ),
        max_size=10,
    ),
    snaplen=st.integers(1, 300),
    names=st.lists(st.text(min_size=1, max_size=20), min_size=3, max_size=3),
)
def test_what_we_write_we_read_back(
    records: list[tuple[int, bytes, int, Direction | None]], snaplen: int, names: list[str]
) -> None:
    stream = io.BytesIO()
    writer = PcapngWriter(stream, snaplen=snaplen)
    assert [writer.add_interface(name) for name in names] == [0, 1, 2]
    for record in records:
        writer.write(*record)
    capture = read_all(stream.getvalue())
    assert [(i.name, i.snaplen, i.linktype) for i in capture.interfaces] == [
        (name, snaplen, 1) for name in names
    ]
    assert [
        (p.interface_id, p.data, p.orig_len, p.timestamp, p.direction) for p in capture.packets
    ] == [(i, d[:snaplen], len(d), ts, direction) for i, d, ts, direction in records]


def test_blocks_are_padded_to_32_bits_and_carry_their_length_twice() -> None:
    for block in (
        section_header(),
        section_header(None),
        interface_description("port-with-odd-name"),
        enhanced_packet(0, b"abc", 5, direction=Direction.INBOUND),
        enhanced_packet(0, b"abcde", 5, snaplen=4),
    ):
        assert len(block) % 4 == 0
        (head,) = struct.unpack_from("<I", block, 4)
        (tail,) = struct.unpack_from("<I", block, len(block) - 4)
        assert head == tail == len(block)


def test_writing_to_an_interface_not_added_is_refused() -> None:
    writer = PcapngWriter(io.BytesIO())
    writer.add_interface("p1")
    with pytest.raises(ValueError, match="interface 1 has not been added to this capture"):
        writer.write(1, FRAMES[0], 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xd4\xc3\xb2\xa1" + b"\0" * 20, "does not start with a section header"),
        (section_header()[:10], "cut short"),
        (section_header()[:-4] + struct.pack("<I", 8), "says 48 bytes at its start, 8 at its end"),
        (
            section_header()[:4] + struct.pack("<I", 10) + section_header()[8:],
            "impossible length 10",
        ),
        (section_header() + enhanced_packet(0, b"abc", 0), "names interface 0, which was not"),
        (
            section_header() + interface_description("p1") + enhanced_packet(0, b"abcd", 0)[:-8],
            "impossible length",
        ),
        (b"\x0a\x0d\x0d\x0a" + b"\0" * 24, "no byte-order magic"),
    ],
)
def test_damaged_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(PcapngError, match=message):
        read_all(data)
