"""Our classic BPF interpreter against libpcap's own, and against Linux's documented rules.

The differential tests compile tcpdump expressions with libpcap and run the
program with both interpreters on frames built by scapy (and on random
bytes): the return values must be equal, frame for frame. libpcap's
interpreter (``pcap_offline_filter``) is the reference, not our code. The
instruction classes libpcap's compiler rarely or never emits are checked with
hand-written programs whose results follow from the rules in the kernel's
``Documentation/networking/filter.rst``; the opcodes are written out as
numbers from ``linux/filter.h`` so that the tests do not lean on our tables.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.igmp import IGMP
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, LLC, STP, Dot1AD, Dot1Q, Dot3, Ether
from scapy.packet import Raw

from pyvswitch.capture.compile import (
    LibpcapFilter,
    LibpcapMissingError,
    compile_filter,
)
from pyvswitch.packet.bpf import BpfError, BpfProgram


@functools.cache
def _libpcap_available() -> bool:
    try:
        compile_filter("")
    except LibpcapMissingError:
        return False
    return True


needs_libpcap = pytest.mark.skipif(
    not _libpcap_available(), reason="libpcap (Debian's libpcap0.8) is not installed"
)

ACCEPT = 262144  # what a libpcap program compiled with tcpdump's snapshot length returns

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"
H1, H2, H3 = "192.0.2.1", "198.51.100.2", "203.0.113.3"


def _eth(dst: str = MAC_B, src: str = MAC_A) -> Ether:
    return Ether(dst=dst, src=src)


def _frames() -> dict[str, bytes]:
    tcp_syn = _eth() / IP(src=H2, dst=H1) / TCP(sport=40000, dport=80, flags="S")
    tcp_ack = (
        _eth(MAC_A, MAC_B) / IP(src=H1, dst=H2, ttl=63) / TCP(sport=443, dport=40001, flags="A")
    )
    frames = {
        "tcp syn to 80": tcp_syn,
        "tcp ack from 443": tcp_ack / Raw(b"x" * 200),
        "tcp fin+ack 1500": _eth() / IP(src=H3, dst=H1) / TCP(sport=1500, dport=22, flags="FA"),
        "dns query": _eth() / IP(src=H2, dst=H3) / UDP(sport=40002, dport=53) / Raw(b"q" * 30),
        "dns answer": _eth() / IP(src=H3, dst=H2) / UDP(sport=53, dport=40002) / Raw(b"a" * 90),
        "udp 1999": _eth() / IP(src=H2, dst=H3, tos=3) / UDP(sport=1999, dport=2001),
        "icmp echo": _eth() / IP(src=H1, dst=H3) / ICMP(type=8) / Raw(b"p" * 56),
        "icmp reply": _eth() / IP(src=H3, dst=H1) / ICMP(type=0),
        "igmp": _eth("01:00:5e:00:00:16") / IP(src=H2, dst="224.0.0.22") / IGMP(),
        "ip options": _eth() / IP(dst=H1, options=[IPOption_Router_Alert()]) / TCP(dport=80),
        "first fragment": _eth() / IP(src=H2, dst=H1, flags="MF", frag=0) / TCP(dport=80),
        "later fragment": _eth() / IP(src=H2, dst=H1, frag=100, proto=6) / Raw(b"\0" * 40),
        "vlan 10 tcp 80": _eth() / Dot1Q(vlan=10, prio=5) / IP(src=H2, dst=H1) / TCP(dport=80),
        "vlan 20 udp": _eth() / Dot1Q(vlan=20) / IP(src=H2, dst=H3) / UDP(sport=53),
        "qinq 100/10": _eth() / Dot1AD(vlan=100) / Dot1Q(vlan=10) / IP(dst=H1) / TCP(dport=80),
        "vlan arp": _eth("ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=10) / ARP(psrc=H1, pdst=H2),
        "ip6 tcp 80": _eth()
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / TCP(sport=40000, dport=80, flags="S"),
        "ip6 dns answer": _eth() / IPv6(src="2001:db8:1::53", dst="2001:db8::1") / UDP(sport=53),
        "ip6 echo": _eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(),
        "ip6 ns": _eth("33:33:ff:00:00:02")
        / IPv6(src="fe80::1", dst="ff02::1:ff00:2")
        / ICMPv6ND_NS(tgt="2001:db8::2"),
        "ip6 fragment": _eth()
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(offset=0, m=1)
        / UDP(sport=53),
        "ip6 hop-by-hop": _eth()
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / TCP(dport=80),
        "arp request": _eth("ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc=H1, pdst=H2),
        "arp reply": _eth(MAC_A, MAC_B) / ARP(op=2, psrc=H2, pdst=H1, hwsrc=MAC_B),
        "rarp": Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_A, type=0x8035) / Raw(b"\0" * 28),
        "stp": Dot3(dst="01:80:c2:00:00:00", src=MAC_A) / LLC() / STP(),
        "lldp": Ether(dst="01:80:c2:00:00:0e", src=MAC_A, type=0x88CC) / Raw(b"\x02\x07" * 10),
        "jumbo-ish": _eth() / IP(src=H1, dst=H2) / UDP(sport=5000, dport=5001) / Raw(b"j" * 1400),
    }
    out = {name: bytes(packet) for name, packet in frames.items()}
    syn = bytes(tcp_syn)
    # Frames cut inside each header: a load past the end must reject them.
    for cut in (0, 1, 13, 14, 20, 33, 34, 40, 50):
        out[f"tcp syn cut to {cut}"] = syn[:cut]
    out["vlan 10 tcp 80 cut to 16"] = out["vlan 10 tcp 80"][:16]
    out["ip6 tcp 80 cut to 56"] = out["ip6 tcp 80"][:56]
    return out


FRAMES = _frames()

EXPRESSIONS = [
    "",
    "icmp",
    "icmp[icmptype] = icmp-echo",
    "igmp",
    "tcp",
    "udp",
    "ip",
    "ip6",
    "arp",
    "rarp",
    "stp",
    "llc",
    "ether proto 0x88cc",
    f"host {H1}",
    f"src host {H2}",
    f"dst host {H3}",
    "net 198.51.100.0/24",
    "dst net 192.0.2.0 mask 255.255.255.0",
    "net 2001:db8::/48",
    "ip6 src host 2001:db8::1",
    "port 80",
    "tcp port 80",
    "udp port 53",
    "udp and src port 53",
    "src port 53 or dst port 53",
    "portrange 1000-2000",
    "tcp dst portrange 20-25",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0",
    "tcp[tcpflags] == tcp-ack",
    "vlan",
    "vlan 10",
    "vlan 20",
    "vlan 10 and tcp port 80",
    "vlan 100 and vlan 10",
    "vlan and arp",
    "ether host 02:00:00:00:00:0a",
    "ether src 02:00:00:00:00:0b",
    "ether broadcast",
    "ether multicast",
    "ip multicast",
    "ip6 multicast",
    "greater 100",
    "less 64",
    "len >= 1000",
    "ip[8] = 63",
    "ip[0] & 0xf > 5",
    "ip[6:2] & 0x1fff != 0",
    "ip[6] & 0x20 != 0",
    "icmp6",
    "icmp6 and ip6[40] == 135",
    "ip6 proto 44",
    "ip proto 17",
    "not tcp",
    "not (tcp or udp)",
    "tcp or udp and port 53",
    f"host {H1} and (port 80 or port 443)",
    f"(host {H1} or host {H3}) and not icmp",
    "ip[2:2] - 20 > 40",
    "tcp[13] % 3 = 2",
    "ip[1] ^ 0xff = 0xfc",
    "(ip[0] & 0xf) * 4 = 24",
    "ip[0] / 16 = 4",
    "ip[8] >> 1 = 32",
    "ip[0] << 2 = 0x114",
    "ip[0] << ip[1] = 0x228",
    "ip[8] - ip[8] = 0 and -ip[1] = 0xfffffffd",
    "udp[8:4] = 0x61616161",
    "ip6[6] = 17 or ip6[6] = 44",
]


@needs_libpcap
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_verdicts_equal_libpcap_on_every_frame(expression: str) -> None:
    instructions = compile_filter(expression)
    ours = BpfProgram(instructions).run
    theirs = LibpcapFilter(instructions)
    got = {name: ours(frame) for name, frame in FRAMES.items()}
    expected = {name: theirs(frame) for name, frame in FRAMES.items()}
    assert got == expected
    # Every expression but the empty one must both accept and reject some frame
    # of the corpus, or the comparison above would prove little.
    if expression:
        assert set(got.values()) == {0, ACCEPT}, f"{expression!r} gave {set(got.values())}"


# Frames that start like real ones and go on with random bytes, so random
# data reaches the deeper branches of the programs.
_HEADS = [
    b"",
    bytes.fromhex("02000000000b02000000000a") + b"\x08\x00",
    bytes.fromhex("02000000000b02000000000a") + b"\x08\x00\x45\x00",
    bytes.fromhex("02000000000b02000000000a") + b"\x86\xdd\x60\x00\x00\x00\x00\x20",
    bytes.fromhex("02000000000b02000000000a") + b"\x81\x00\x00\x0a",
    bytes.fromhex("02000000000b02000000000a") + b"\x81\x00\x00\x0a\x08\x00\x46",
    bytes.fromhex("ffffffffffff02000000000a") + b"\x08\x06\x00\x01\x08\x00\x06\x04",
]
_FUZZED_EXPRESSIONS = [
    "tcp port 80",
    "udp and src port 53",
    "vlan 10 and tcp port 80",
    "tcp[tcpflags] & tcp-syn != 0",
    "ip6 and tcp",
    "icmp6 and ip6[40] == 135",
    "not (arp or icmp) and len > 60",
    "net 192.0.2.0/24 or ether multicast",
    "portrange 1000-2000 or ip[6:2] & 0x1fff != 0",
    "(ip[0] & 0xf) * 4 > 20 and ip[2:2] / 2 > 30",
]


@functools.cache
def _fuzzed_programs() -> list[tuple[str, BpfProgram, LibpcapFilter]]:
    return [
        (expression, BpfProgram(program := compile_filter(expression)), LibpcapFilter(program))
        for expression in _FUZZED_EXPRESSIONS
    ]


@needs_libpcap
@settings(max_examples=400)
@given(head=st.sampled_from(_HEADS), tail=st.binary(max_size=90))
def test_verdicts_equal_libpcap_on_random_bytes(head: bytes, tail: bytes) -> None:
    frame = head + tail
    for expression, ours, theirs in _fuzzed_programs():
        assert ours.run(frame) == theirs(frame), expression


# Opcodes from linux/filter.h, written out so the tests do not use our tables.
LD_IMM, LDX_IMM, LD_LEN, LDX_LEN = 0x00, 0x01, 0x80, 0x81
LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
LD_W_IND, LD_H_IND, LD_B_IND = 0x40, 0x48, 0x50
LD_MEM, LDX_MEM, ST, STX, LDX_MSH = 0x60, 0x61, 0x02, 0x03, 0xB1
ADD_K, ADD_X, SUB_K, SUB_X, MUL_K, MUL_X = 0x04, 0x0C, 0x14, 0x1C, 0x24, 0x2C
DIV_K, DIV_X, MOD_K, MOD_X = 0x34, 0x3C, 0x94, 0x9C
AND_K, OR_K, XOR_K, XOR_X, LSH_K, LSH_X, RSH_K, RSH_X, NEG = (
    0x54,
    0x44,
    0xA4,
    0xAC,
    0x64,
    0x6C,
    0x74,
    0x7C,
    0x84,
)
JA, JEQ_K, JEQ_X, JGT_K, JGE_X, JSET_K, JSET_X = 0x05, 0x15, 0x1D, 0x25, 0x3D, 0x45, 0x4D
RET_K, RET_A, TAX, TXA = 0x06, 0x16, 0x07, 0x87

FRAME = bytes(range(0x10, 0x50))  # 64 bytes: byte i holds 0x10 + i


def ret_a(*body: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    return [*body, (RET_A, 0, 0, 0)]


# Each program's result, worked out from filter.rst's description of the
# instruction (32-bit unsigned arithmetic, big-endian loads).
HAND_PROGRAMS = [
    ("ld word", ret_a((LD_W_ABS, 0, 0, 4)), 0x14151617),
    ("ld half", ret_a((LD_H_ABS, 0, 0, 62)), 0x4E4F),
    ("ld byte", ret_a((LD_B_ABS, 0, 0, 63)), 0x4F),
    ("ld word past the end", ret_a((LD_W_ABS, 0, 0, 61)), 0),
    ("ld half past the end", ret_a((LD_H_ABS, 0, 0, 63)), 0),
    ("ld byte past the end", ret_a((LD_B_ABS, 0, 0, 64)), 0),
    ("ld word far past the end", ret_a((LD_W_ABS, 0, 0, 0x7FFFFFFF)), 0),
    ("ld [x+k]", ret_a((LDX_IMM, 0, 0, 8), (LD_W_IND, 0, 0, 2)), 0x1A1B1C1D),
    ("ldh [x+k]", ret_a((LDX_IMM, 0, 0, 60), (LD_H_IND, 0, 0, 2)), 0x4E4F),
    ("ldb [x+k]", ret_a((LDX_IMM, 0, 0, 60), (LD_B_IND, 0, 0, 3)), 0x4F),
    ("ldb [x+k] past the end", ret_a((LDX_IMM, 0, 0, 60), (LD_B_IND, 0, 0, 4)), 0),
    ("ld [x+k] with x near 2**32", ret_a((LDX_IMM, 0, 0, 0xFFFFFFFF), (LD_W_IND, 0, 0, 2)), 0),
    # 4 * (byte 5 & 0xf): byte 5 is 0x15, so X = 20.
    ("ldxb 4*([k]&0xf)", ret_a((LDX_MSH, 0, 0, 5), (TXA, 0, 0, 0)), 20),
    ("ldxb past the end", ret_a((LDX_MSH, 0, 0, 64), (TXA, 0, 0, 0)), 0),
    ("ld #len", ret_a((LD_LEN, 0, 0, 0)), 64),
    ("ldx #len", ret_a((LDX_LEN, 0, 0, 0), (TXA, 0, 0, 0)), 64),
    ("add wraps", ret_a((LD_IMM, 0, 0, 0xFFFFFFFF), (ADD_K, 0, 0, 2)), 1),
    ("add x", ret_a((LD_IMM, 0, 0, 5), (LDX_IMM, 0, 0, 7), (ADD_X, 0, 0, 0)), 12),
    ("sub wraps", ret_a((LD_IMM, 0, 0, 1), (SUB_K, 0, 0, 2)), 0xFFFFFFFF),
    ("sub x", ret_a((LD_IMM, 0, 0, 5), (LDX_IMM, 0, 0, 7), (SUB_X, 0, 0, 0)), 0xFFFFFFFE),
    ("mul wraps", ret_a((LD_IMM, 0, 0, 0x10000), (MUL_K, 0, 0, 0x10001)), 0x10000),
    ("mul x", ret_a((LD_IMM, 0, 0, 6), (LDX_IMM, 0, 0, 7), (MUL_X, 0, 0, 0)), 42),
    ("div", ret_a((LD_IMM, 0, 0, 100), (DIV_K, 0, 0, 7)), 14),
    ("div x", ret_a((LD_IMM, 0, 0, 100), (LDX_IMM, 0, 0, 9), (DIV_X, 0, 0, 0)), 11),
    ("div x by zero ends with 0", ret_a((LD_IMM, 0, 0, 100), (DIV_X, 0, 0, 0)), 0),
    ("mod", ret_a((LD_IMM, 0, 0, 100), (MOD_K, 0, 0, 7)), 2),
    ("mod x", ret_a((LD_IMM, 0, 0, 100), (LDX_IMM, 0, 0, 9), (MOD_X, 0, 0, 0)), 1),
    ("mod x by zero ends with 0", ret_a((LD_IMM, 0, 0, 100), (MOD_X, 0, 0, 0)), 0),
    ("and", ret_a((LD_IMM, 0, 0, 0xF0F0), (AND_K, 0, 0, 0x3C3C)), 0x3030),
    ("or", ret_a((LD_IMM, 0, 0, 0xF000), (OR_K, 0, 0, 0x000F)), 0xF00F),
    ("xor", ret_a((LD_IMM, 0, 0, 0xFF00FF00), (XOR_K, 0, 0, 0x0FF00FF0)), 0xF0F0F0F0),
    ("xor x", ret_a((LD_IMM, 0, 0, 6), (LDX_IMM, 0, 0, 3), (XOR_X, 0, 0, 0)), 5),
    ("lsh drops high bits", ret_a((LD_IMM, 0, 0, 0x80000001), (LSH_K, 0, 0, 1)), 2),
    ("lsh x", ret_a((LD_IMM, 0, 0, 1), (LDX_IMM, 0, 0, 31), (LSH_X, 0, 0, 0)), 0x80000000),
    ("rsh", ret_a((LD_IMM, 0, 0, 0x80000000), (RSH_K, 0, 0, 31)), 1),
    ("rsh x", ret_a((LD_IMM, 0, 0, 0x100), (LDX_IMM, 0, 0, 4), (RSH_X, 0, 0, 0)), 0x10),
    ("neg", ret_a((LD_IMM, 0, 0, 1), (NEG, 0, 0, 0)), 0xFFFFFFFF),
    ("neg of 0", ret_a((NEG, 0, 0, 0)), 0),
    ("neg of 2**31", ret_a((LD_IMM, 0, 0, 0x80000000), (NEG, 0, 0, 0)), 0x80000000),
    ("a and x start at 0", ret_a((ADD_X, 0, 0, 0)), 0),
    ("tax", ret_a((LD_IMM, 0, 0, 9), (TAX, 0, 0, 0), (LD_IMM, 0, 0, 0), (TXA, 0, 0, 0)), 9),
    (
        "scratch memory",
        ret_a(
            (LD_IMM, 0, 0, 3),
            (ST, 0, 0, 15),
            (LDX_IMM, 0, 0, 4),
            (STX, 0, 0, 0),
            (LD_MEM, 0, 0, 0),
            (LDX_MEM, 0, 0, 15),
            (ADD_X, 0, 0, 0),
        ),
        7,
    ),
    ("ret k", [(RET_K, 0, 0, 96)], 96),
    ("ja skips", [(JA, 0, 0, 1), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)], 2),
    (
        "jeq true",
        [(LD_B_ABS, 0, 0, 0), (JEQ_K, 0, 1, 0x10), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)],
        1,
    ),
    (
        "jgt false",
        [(LD_B_ABS, 0, 0, 0), (JGT_K, 0, 1, 0x10), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)],
        2,
    ),
    (
        "jge x",
        [
            (LDX_IMM, 0, 0, 5),
            (LD_IMM, 0, 0, 5),
            (JGE_X, 1, 0, 0),
            (RET_K, 0, 0, 1),
            (RET_K, 0, 0, 2),
        ],
        2,
    ),
    (
        "jeq x with jt equal to jf",
        [(LDX_IMM, 0, 0, 5), (JEQ_X, 1, 1, 0), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)],
        2,
    ),
    (
        "jset",
        [(LD_IMM, 0, 0, 0b1010), (JSET_K, 0, 1, 0b0100), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)],
        2,
    ),
    (
        "jset x",
        [
            (LD_IMM, 0, 0, 0b1010),
            (LDX_IMM, 0, 0, 0b0010),
            (JSET_X, 0, 1, 0),
            (RET_K, 0, 0, 1),
            (RET_K, 0, 0, 2),
        ],
        1,
    ),
]


@pytest.mark.parametrize(
    ("program", "expected"),
    [(program, expected) for _, program, expected in HAND_PROGRAMS],
    ids=[name for name, _, _ in HAND_PROGRAMS],
)
def test_instruction_semantics_follow_linux(
    program: list[tuple[int, int, int, int]], expected: int
) -> None:
    assert BpfProgram(program).run(FRAME) == expected


@needs_libpcap
@pytest.mark.parametrize(
    ("program", "expected"),
    [(program, expected) for _, program, expected in HAND_PROGRAMS],
    ids=[name for name, _, _ in HAND_PROGRAMS],
)
def test_hand_written_programs_agree_with_libpcap(
    program: list[tuple[int, int, int, int]], expected: int
) -> None:
    # libpcap's interpreter follows the same rules for all of these; it checks
    # that the expected values above are read from filter.rst correctly.
    assert LibpcapFilter(program)(FRAME) == expected


@needs_libpcap
def test_shift_by_x_of_32_or_more_uses_the_low_five_bits_as_linux_does() -> None:
    program = ret_a((LD_IMM, 0, 0, 3), (LDX_IMM, 0, 0, 33), (LSH_X, 0, 0, 0))
    assert BpfProgram(program).run(FRAME) == 6
    # libpcap's own interpreter differs here (it gives 0); see the module docstring.
    assert LibpcapFilter(program)(FRAME) == 0
    right = ret_a((LD_IMM, 0, 0, 0x40), (LDX_IMM, 0, 0, 34), (RSH_X, 0, 0, 0))
    assert BpfProgram(right).run(FRAME) == 0x10


def test_frames_of_any_buffer_type_are_read_the_same() -> None:
    program = BpfProgram(ret_a((LD_W_ABS, 0, 0, 0), (LDX_MSH, 0, 0, 1), (ADD_X, 0, 0, 0)))
    expected = 0x10111213 + 4 * 1
    assert program.run(FRAME) == expected
    assert program.run(bytearray(FRAME)) == expected
    assert program.run(memoryview(FRAME)) == expected


def _ladder(rungs: int) -> list[tuple[int, int, int, int]]:
    """A program nested ``rungs`` deep: it returns i + 1 for the first zero byte i.

    Both branches of every test lead to blocks of their own, so the translated
    Python nests one level per rung, deeper than Python's limit of 100.
    """
    program = []
    for i in range(rungs):
        program += [
            (LD_B_ABS, 0, 0, i),
            (JEQ_K, 0, 2, 0),
            (LD_IMM, 0, 0, i + 1),
            (RET_A, 0, 0, 0),
        ]
    return [*program, (RET_K, 0, 0, 0)]


@functools.cache
def _ladder_program() -> BpfProgram:
    return BpfProgram(_ladder(120))


@given(
    frame=st.binary(max_size=110).map(lambda b: bytes(x | 1 for x in b)),
    zero=st.integers(0, 109),
)
def test_deeply_nested_programs_run(frame: bytes, zero: int) -> None:
    if zero < len(frame):
        frame = frame[:zero] + b"\0" + frame[zero + 1 :]
    first_zero = frame.find(b"\0")
    # Without a zero byte, the rung after the last byte loads past the end,
    # which rejects the frame.
    expected = first_zero + 1 if first_zero >= 0 else 0
    assert _ladder_program().run(frame) == expected


@needs_libpcap
def test_a_long_chain_of_hosts_compiles_and_runs() -> None:
    hosts = [f"198.51.100.{i}" for i in range(1, 200)]
    program = compile_filter(" or ".join(f"host {h}" for h in hosts))
    ours, theirs = BpfProgram(program), LibpcapFilter(program)
    for last in (1, 57, 199, 200, 250):
        frame = bytes(Ether() / IP(src=H1, dst=f"198.51.100.{last}") / UDP())
        assert ours.run(frame) == theirs(frame) == (ACCEPT if last < 200 else 0)


@needs_libpcap
def test_programs_of_the_kernel_limit_run_and_longer_ones_are_refused() -> None:
    longest = [(LD_IMM, 0, 0, 0)] * 4094 + [(ADD_K, 0, 0, 5), (RET_A, 0, 0, 0)]
    assert BpfProgram(longest).run(FRAME) == LibpcapFilter(longest)(FRAME) == 5
    with pytest.raises(BpfError, match="has 4097 instructions; the limit is 4096"):
        BpfProgram([(LD_IMM, 0, 0, 0), *longest])


# Random valid straight-line-and-forward-branch programs, run by both
# interpreters. Shifts by X are left out: libpcap differs from Linux there
# (see above). Slots 0 and 1 are written first, so reads of them are valid.
_RANDOM_STATEMENTS = st.one_of(
    st.tuples(
        st.sampled_from([LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_W_IND, LD_H_IND, LD_B_IND, LDX_MSH]),
        st.integers(0, 70),
    ),
    st.tuples(
        st.sampled_from([LD_IMM, LDX_IMM, ADD_K, SUB_K, MUL_K, AND_K, OR_K, XOR_K]),
        st.integers(0, 0xFFFFFFFF),
    ),
    st.tuples(st.sampled_from([DIV_K, MOD_K]), st.integers(1, 0xFFFFFFFF)),
    st.tuples(st.sampled_from([LSH_K, RSH_K]), st.integers(0, 31)),
    st.tuples(
        st.sampled_from(
            [ADD_X, SUB_X, MUL_X, DIV_X, MOD_X, XOR_X, NEG, TAX, TXA, LD_LEN, LDX_LEN]
        ),
        st.just(0),
    ),
    st.tuples(st.sampled_from([ST, STX, LD_MEM, LDX_MEM]), st.integers(0, 1)),
)


@st.composite
def _random_programs(draw: st.DrawFn) -> list[tuple[int, int, int, int]]:
    program: list[tuple[int, int, int, int]] = [
        (LD_IMM, 0, 0, draw(st.integers(0, 0xFFFFFFFF))),
        (ST, 0, 0, 0),
        (STX, 0, 0, 1),
    ]
    end = len(program) + draw(st.integers(1, 30))  # where the final return goes
    for pc in range(len(program), end):
        if draw(st.booleans()):
            code = draw(st.sampled_from([JEQ_K, JGT_K, JSET_K, JEQ_X, JGE_X, JSET_X]))
            k = draw(st.integers(0, 0xFFFFFFFF) | st.integers(0, 70))
            offsets = st.integers(0, end - pc - 1)
            program.append((code, draw(offsets), draw(offsets), k))
        else:
            code, k = draw(_RANDOM_STATEMENTS)
            program.append((code, 0, 0, k))
    return [*program, (RET_A, 0, 0, 0)]


@needs_libpcap
@settings(max_examples=300)
@given(program=_random_programs(), frame=st.binary(max_size=80))
def test_random_programs_agree_with_libpcap(
    program: list[tuple[int, int, int, int]], frame: bytes
) -> None:
    assert BpfProgram(program).run(frame) == LibpcapFilter(program)(frame)


REFUSED = [
    ("empty", [], "needs at least one instruction"),
    ("no return at the end", [(LD_IMM, 0, 0, 0)], "the last instruction must be a return"),
    ("unknown opcode", [(0x99, 0, 0, 0), (RET_K, 0, 0, 0)], "unknown opcode 0x99"),
    ("ret x", [(0x0E, 0, 0, 0)], "unknown opcode 0x0e"),
    ("ld imm of half size", [(0x08, 0, 0, 0), (RET_A, 0, 0, 0)], "unknown opcode 0x08"),
    (
        "jump past the end",
        [(JEQ_K, 0, 1, 0), (RET_K, 0, 0, 0)],
        r"instruction 0 \{ 0x15, 0, 1, 0x00000000 \}: jumps to 2, past the last instruction",
    ),
    ("ja past the end", [(JA, 0, 0, 1), (RET_K, 0, 0, 0)], "jumps to 2, past the last"),
    (
        "ja backwards",
        [(RET_K, 0, 0, 0), (JA, 0, 0, 0xFFFFFFFE), (RET_K, 0, 0, 0)],
        "instruction 1 .*: jumps backwards",
    ),
    ("memory slot 16", [(ST, 0, 0, 16), (RET_K, 0, 0, 0)], "scratch memory slot 16 does not"),
    ("read before write", [(LD_MEM, 0, 0, 3), (RET_A, 0, 0, 0)], "reads scratch memory slot 3"),
    (
        "read before write on one path",
        [
            (LD_B_ABS, 0, 0, 0),
            (JEQ_K, 0, 1, 0),
            (ST, 0, 0, 2),
            (LD_MEM, 0, 0, 2),
            (RET_A, 0, 0, 0),
        ],
        "instruction 3 .*: reads scratch memory slot 2, which a path to it leaves unwritten",
    ),
    ("div by constant 0", [(DIV_K, 0, 0, 0), (RET_A, 0, 0, 0)], "divides by the constant 0"),
    ("mod by constant 0", [(MOD_K, 0, 0, 0), (RET_A, 0, 0, 0)], "divides by the constant 0"),
    ("shift by 32", [(LSH_K, 0, 0, 32), (RET_A, 0, 0, 0)], "shifts by 32 bits"),
    ("right shift by 40", [(RSH_K, 0, 0, 40), (RET_A, 0, 0, 0)], "shifts by 40 bits"),
    (
        "ancillary load",
        [(LD_B_ABS, 0, 0, 0xFFFFF000 + 44), (RET_A, 0, 0, 0)],
        r"loads at a negative offset, which Linux reserves for ancillary data \(SKF_AD_\*\)",
    ),
    ("code too wide", [(0x10006, 0, 0, 0)], "code 65542 is not an unsigned 16-bit value"),
    ("k too wide", [(RET_K, 0, 0, 1 << 32)], "k 4294967296 is not an unsigned 32-bit value"),
    ("negative jt", [(JEQ_K, -1, 0, 0), (RET_K, 0, 0, 0)], "jt -1 is not an unsigned 8-bit value"),
    ("not a tuple", [(RET_K, 0, 0)], r"\(6, 0, 0\) is not a \(code, jt, jf, k\) tuple"),
    ("a string field", [(RET_K, 0, 0, "1")], "k '1' is not an unsigned 32-bit value"),
]


@pytest.mark.parametrize(
    ("program", "message"),
    [(program, message) for _, program, message in REFUSED],
    ids=[name for name, _, _ in REFUSED],
)
def test_invalid_programs_are_refused_with_the_reason(program: list[object], message: str) -> None:
    with pytest.raises(BpfError, match=message):
        BpfProgram(program)


@needs_libpcap
def test_protochain_is_refused_because_it_jumps_backwards() -> None:
    # libpcap implements protochain with a backward jump, which the kernel
    # refuses too; tcpdump then filters in userspace. We refuse it clearly.
    with pytest.raises(BpfError, match="jumps backwards; classic BPF jumps only forward"):
        BpfProgram(compile_filter("ip6 protochain 6"))
