"""The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

The full checksum is checked against a plain loop over 16-bit words and
against scapy's; the incremental updates against a full recomputation, which
scapy does on real IPv4/IPv6 + TCP packets after a NAT-style rewrite.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scapy.config import conf
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import checksum as scapy_checksum

from pyvswitch.packet import (
    checksum,
    checksum_update16,
    checksum_update32,
    checksum_update_bytes,
    ones_complement_sum,
)

conf.verb = 0


def reference_sum(data: bytes, initial: int = 0) -> int:
    """RFC 1071's ones'-complement sum, one 16-bit word at a time."""
    if len(data) % 2:
        data += b"\0"
    total = initial
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def reference_checksum(data: bytes, initial: int = 0) -> int:
    return ~reference_sum(data, initial) & 0xFFFF


odd_length = st.integers(0, 200).flatmap(
    lambda n: st.binary(min_size=2 * n + 1, max_size=2 * n + 1)
)
word = st.integers(0, 0xFFFF)


# -- full checksum --------------------------------------------------------------------


@given(st.binary(max_size=512))
def test_checksum_matches_reference(data: bytes) -> None:
    assert checksum(data) == reference_checksum(data)
    assert ones_complement_sum(data) == reference_sum(data)


@given(odd_length)
def test_checksum_of_odd_length_pads_with_a_zero_byte(data: bytes) -> None:
    assert checksum(data) == reference_checksum(data) == checksum(data + b"\0")


@given(st.binary(max_size=256), word)
def test_initial_sum_is_added(data: bytes, initial: int) -> None:
    assert ones_complement_sum(data, initial) == reference_sum(data, initial)
    assert checksum(data, initial) == reference_checksum(data, initial)


@given(st.binary(max_size=512))
def test_checksum_matches_scapy(data: bytes) -> None:
    assert checksum(data) == scapy_checksum(data)


@given(st.binary(max_size=256))
def test_accepts_bytearray_and_memoryview(data: bytes) -> None:
    assert checksum(bytearray(data)) == checksum(memoryview(data)) == checksum(data)


@pytest.mark.parametrize(
    ("data", "total", "csum"),
    [
        # RFC 1071 section 3's worked example.
        (bytes.fromhex("0001f203f4f5f6f7"), 0xDDF2, 0x220D),
        (b"", 0x0000, 0xFFFF),
        (b"\0\0\0", 0x0000, 0xFFFF),
        (b"\xab", 0xAB00, 0x54FF),
        (b"\xff\xff", 0xFFFF, 0x0000),
        # A non-zero sum that wraps is 0xffff ("-0"), never 0x0000 ("+0").
        (b"\x00\x01\xff\xfe", 0xFFFF, 0x0000),
        (b"\xff\xff" * 1000, 0xFFFF, 0x0000),
        (b"\x80\x00\x80\x00", 0x0001, 0xFFFE),
    ],
    ids=["rfc1071", "empty", "zeros", "one-byte", "ffff", "wrap-to-ffff", "many-ffff", "carry"],
)
def test_known_values(data: bytes, total: int, csum: int) -> None:
    assert ones_complement_sum(data) == total
    assert checksum(data) == csum


@given(
    st.integers(0, 100).flatmap(lambda n: st.binary(min_size=2 * n, max_size=2 * n)),
    st.binary(max_size=200),
)
def test_buffer_with_its_checksum_sums_to_zero(prefix: bytes, suffix: bytes) -> None:
    csum = checksum(prefix + b"\0\0" + suffix)
    buf = prefix + csum.to_bytes(2, "big") + suffix
    assert checksum(buf) == 0
    assert ones_complement_sum(buf) == 0xFFFF
    assert reference_checksum(buf) == 0


@given(
    st.integers(0, 20).flatmap(lambda n: st.binary(min_size=2 * n, max_size=2 * n)),
    st.binary(max_size=200),
)
def test_pseudo_header_as_initial_equals_concatenation(pseudo: bytes, data: bytes) -> None:
    assert checksum(data, ones_complement_sum(pseudo)) == checksum(pseudo + data)


def test_ipv4_header_checksum_matches_scapy() -> None:
    header = bytes(IP(src="192.0.2.1", dst="198.51.100.2", id=0x1C46, ttl=64, proto=6))
    assert checksum(header[:10] + b"\0\0" + header[12:20]) == int.from_bytes(header[10:12])
    assert checksum(header) == 0


# -- incremental updates on real packets ----------------------------------------------

SRC = "192.0.2.1"
DST = "198.51.100.2"


def ipv4_tcp(ident: int = 0x1234, ttl: int = 64) -> bytes:
    """A real IPv4 + TCP packet (with IP and TCP options), as scapy builds it."""
    return bytes(
        IP(src=SRC, dst=DST, id=ident, ttl=ttl, options=b"\x01\x01\x01\x00")
        / TCP(sport=40000, dport=443, flags="PA", seq=7, options=[("MSS", 1460)])
        / b"some payload"
    )


def scapy_rewrite(packet: bytes, **changes: object) -> bytes:
    """The packet with IP/TCP fields changed and every checksum recomputed by scapy."""
    pkt = IP(packet)
    for name, value in changes.items():
        layer = pkt if name in ("src", "dst", "ttl", "id") else pkt[TCP]
        setattr(layer, name, value)
    pkt.chksum = None
    pkt[TCP].chksum = None
    return bytes(pkt)


def _get16(buf: bytearray, off: int) -> int:
    return int.from_bytes(buf[off : off + 2], "big")


def _put16(buf: bytearray, off: int, value: int) -> None:
    buf[off : off + 2] = value.to_bytes(2, "big")


def incremental_rewrite(
    packet: bytes,
    src: str | None = None,
    dst: str | None = None,
    sport: int | None = None,
    dport: int | None = None,
) -> bytes:
    """Rewrite addresses and ports, updating both checksums the RFC 1624 way."""
    buf = bytearray(packet)
    l4 = (buf[0] & 0xF) * 4
    for off, new_addr in ((12, src), (16, dst)):
        if new_addr is not None:
            old = int.from_bytes(buf[off : off + 4], "big")
            new = int(ipaddress.IPv4Address(new_addr))
            buf[off : off + 4] = new.to_bytes(4, "big")
            _put16(buf, 10, checksum_update32(_get16(buf, 10), old, new))
            _put16(buf, l4 + 16, checksum_update32(_get16(buf, l4 + 16), old, new))
    for off, new_port in ((l4, sport), (l4 + 2, dport)):
        if new_port is not None:
            old = _get16(buf, off)
            _put16(buf, off, new_port)
            _put16(buf, l4 + 16, checksum_update16(_get16(buf, l4 + 16), old, new_port))
    return bytes(buf)


def assert_checksums_verify(packet: bytes) -> None:
    pkt = IP(packet)
    ihl = pkt.ihl * 4
    assert checksum(packet[:ihl]) == 0
    segment = packet[ihl : pkt.len]
    pseudo = pkt.src, pkt.dst
    initial = ones_complement_sum(
        ipaddress.IPv4Address(pseudo[0]).packed
        + ipaddress.IPv4Address(pseudo[1]).packed
        + struct.pack("!BBH", 0, 6, len(segment))
    )
    assert checksum(segment, initial) == 0


def test_snat_updates_equal_scapys_recomputation() -> None:
    packet = ipv4_tcp()
    ours = incremental_rewrite(packet, src="203.0.113.77", sport=61000)
    assert ours == scapy_rewrite(packet, src="203.0.113.77", sport=61000)
    assert_checksums_verify(ours)


def test_dnat_updates_equal_scapys_recomputation() -> None:
    packet = ipv4_tcp()
    ours = incremental_rewrite(packet, dst="10.1.2.3", dport=8443)
    assert ours == scapy_rewrite(packet, dst="10.1.2.3", dport=8443)
    assert_checksums_verify(ours)


@given(
    src=st.ip_addresses(v=4).map(str),
    dst=st.ip_addresses(v=4).map(str),
    sport=word,
    dport=word,
    ident=word,
)
def test_random_rewrites_equal_scapys_recomputation(
    src: str, dst: str, sport: int, dport: int, ident: int
) -> None:
    packet = ipv4_tcp(ident=ident)
    ours = incremental_rewrite(packet, src=src, dst=dst, sport=sport, dport=dport)
    assert ours == scapy_rewrite(packet, src=src, dst=dst, sport=sport, dport=dport)


@given(src=st.ip_addresses(v=4).map(str), dst=st.ip_addresses(v=4).map(str))
def test_update_bytes_equals_update32(src: str, dst: str) -> None:
    packet = ipv4_tcp()
    old = packet[12:20]
    new = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    ip_csum = int.from_bytes(packet[10:12], "big")
    by_words = checksum_update32(
        checksum_update32(ip_csum, int.from_bytes(old[:4]), int.from_bytes(new[:4])),
        int.from_bytes(old[4:]),
        int.from_bytes(new[4:]),
    )
    assert checksum_update_bytes(ip_csum, old, new) == by_words
    assert by_words == IP(scapy_rewrite(packet, src=src, dst=dst)).chksum


def test_ttl_decrement_updates_header_checksum() -> None:
    packet = bytearray(ipv4_tcp(ttl=64))
    old = _get16(packet, 8)  # TTL and protocol share one 16-bit word
    packet[8] -= 1
    _put16(packet, 10, checksum_update16(_get16(packet, 10), old, _get16(packet, 8)))
    assert bytes(packet) == scapy_rewrite(ipv4_tcp(ttl=64), ttl=63)


@given(src=st.ip_addresses(v=6).map(str), sport=word)
def test_ipv6_address_rewrite_with_update_bytes(src: str, sport: int) -> None:
    packet = bytes(
        IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=40000, dport=53) / b"question"
    )
    buf = bytearray(packet)
    new = ipaddress.IPv6Address(src).packed
    csum = checksum_update_bytes(_get16(buf, 46), bytes(buf[8:24]), new)
    csum = checksum_update16(csum, _get16(buf, 40), sport)
    buf[8:24] = new
    _put16(buf, 40, sport)
    _put16(buf, 46, csum)
    expected = IPv6(packet)
    expected.src = src
    expected[UDP].sport = sport
    expected[UDP].chksum = None
    scapy_csum = IPv6(bytes(expected))[UDP].chksum
    # UDP sends a computed 0 as 0xffff; an incremental update may yield either form.
    assert csum == scapy_csum or {csum, scapy_csum} == {0, 0xFFFF}
    if csum != 0:
        assert bytes(buf) == bytes(expected)


# -- RFC 1624's corner cases ----------------------------------------------------------


def test_rfc1624_example_gives_0000_not_ffff() -> None:
    # RFC 1624 section 3: the other header words sum to 0xCD7A and a field
    # changes from 0x5555 to 0x3285. RFC 1141's formula gives 0xFFFF; the
    # right answer, the one a full recomputation gives, is 0x0000.
    before = bytes.fromhex("cd7a5555")
    after = bytes.fromhex("cd7a3285")
    assert checksum(before) == 0xDD2F
    assert checksum(after) == 0x0000
    assert checksum_update16(0xDD2F, 0x5555, 0x3285) == 0x0000


@given(word, word, word)
@example(0x0000, 0x0000, 0x0001)  # ~csum + ~old + new = 0x1ffff: folding once is not enough
@example(0x0000, 0x0000, 0xFFFF)
@example(0xFFFF, 0xFFFF, 0x0000)
@example(0x1234, 0x5678, 0x5678)
def test_update16_is_rfc1624_equation_3(csum: int, old: int, new: int) -> None:
    # HC' = ~(~HC + ~m + m'), summed with the reference ones'-complement loop.
    words = struct.pack("!HHH", ~csum & 0xFFFF, ~old & 0xFFFF, new)
    assert checksum_update16(csum, old, new) == reference_checksum(words)


@given(word, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_update32_is_two_update16(csum: int, old: int, new: int) -> None:
    words = struct.pack(
        "!HHHHH", ~csum & 0xFFFF, ~old >> 16 & 0xFFFF, ~old & 0xFFFF, new >> 16, new & 0xFFFF
    )
    assert checksum_update32(csum, old, new) == reference_checksum(words)


def _ident_for_zero_checksum() -> int:
    """The IP identification that makes ipv4_tcp()'s header checksum 0x0000."""
    base = IP(ipv4_tcp(ident=0)).chksum
    # The identification word adds to the header sum: pick it to make the sum 0xffff.
    return 0xFFFF - (~base & 0xFFFF)


def test_header_with_checksum_0000_updates_like_a_recomputation() -> None:
    packet = ipv4_tcp(ident=_ident_for_zero_checksum())
    assert IP(packet).chksum == 0x0000
    ours = incremental_rewrite(packet, dst="10.9.8.7", dport=1)
    assert ours == scapy_rewrite(packet, dst="10.9.8.7", dport=1)
    assert_checksums_verify(ours)


def test_update_landing_on_0000_gives_0000() -> None:
    packet = ipv4_tcp()
    # Choose the new source address's low word so the new header sums to 0xffff.
    header_sum = ~IP(packet).chksum & 0xFFFF
    old_low = int.from_bytes(packet[14:16], "big")
    without = header_sum + (~old_low & 0xFFFF)  # ones'-complement subtraction
    without = (without & 0xFFFF) + (without >> 16)
    new_low = 0xFFFF - without
    src = str(ipaddress.IPv4Address(packet[12:14] + new_low.to_bytes(2, "big")))
    expected = scapy_rewrite(packet, src=src)
    assert IP(expected).chksum == 0x0000
    assert incremental_rewrite(packet, src=src) == expected


def test_header_stored_with_ffff_updates_like_a_recomputation() -> None:
    # A header whose checksum should be 0x0000 but was stored as 0xffff (the
    # "-0" an RFC 1141 updater produces) still verifies, and an RFC 1624
    # update of it gives what a full recomputation gives.
    packet = bytearray(ipv4_tcp(ident=_ident_for_zero_checksum()))
    _put16(packet, 10, 0xFFFF)
    assert checksum(packet[:24]) == 0
    ours = incremental_rewrite(bytes(packet), src="192.0.2.200")
    assert ours == scapy_rewrite(bytes(packet), src="192.0.2.200")
    assert_checksums_verify(ours)


@given(
    st.lists(word, min_size=3, max_size=40),
    st.data(),
)
def test_update16_equals_recomputation_on_any_buffer(
    words: list[int], data: st.DataObject
) -> None:
    # Word 0 is a fixed non-zero word (like IPv4's version/IHL), word 1 the
    # checksum; any other word changes. With a non-zero word present the
    # update gives exactly the full checksum, 0x0000 included.
    words = [0x4500, 0, *words]
    index = data.draw(st.integers(2, len(words) - 1))
    new = data.draw(word)

    def pack(ws: list[int]) -> bytes:
        return struct.pack(f"!{len(ws)}H", *ws)

    csum = checksum(pack(words))
    changed = [*words]
    changed[index] = new
    assert checksum_update16(csum, words[index], new) == checksum(pack(changed))


@given(st.binary(min_size=20, max_size=80), st.data())
def test_update_bytes_equals_recomputation_on_any_buffer(body: bytes, data: st.DataObject) -> None:
    buf = b"\x45\x00\x00\x00" + body[: len(body) & ~1]
    start = 2 * data.draw(st.integers(2, len(buf) // 2 - 1))
    length = 2 * data.draw(st.integers(1, (len(buf) - start) // 2))
    new = data.draw(st.binary(min_size=length, max_size=length))
    csum = checksum(buf)
    changed = buf[:start] + new + buf[start + length :]
    assert checksum_update_bytes(csum, buf[start : start + length], new) == checksum(changed)


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"\x01", b"\x02"), (b"\x01\x02", b"\x01\x02\x03\x04"), (b"\x01\x02\x03", b"\x04\x05\x06")],
    ids=["odd", "different-lengths", "odd-equal-lengths"],
)
def test_update_bytes_refuses_unequal_or_odd_fields(old: bytes, new: bytes) -> None:
    with pytest.raises(ValueError, match="even length"):
        checksum_update_bytes(0x1234, old, new)
