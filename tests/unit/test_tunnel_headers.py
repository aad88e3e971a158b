"""Tunnel headers (packet/tunnel.py) against scapy, and the tnl_push/tnl_pop action text.

Scapy builds and parses the headers independently of our code: each
encapsulation we build is read back by scapy, and each scapy builds is
read by ours. The expected action texts were printed by Open vSwitch 3.1's
``dpctl/parse-actions`` (tests/interop/test_ovs_tnl_actions.py asks it again).
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE as SCAPY_GRE
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN as SCAPY_VXLAN
from scapy.packet import Raw

from pyvswitch.dpif.actions import OdpTnlPop, OdpTnlPush
from pyvswitch.dpif.actions_text import format_odp_actions, parse_odp_actions
from pyvswitch.flow.match import FlowParseError
from pyvswitch.packet.tunnel import (
    GRE,
    VXLAN,
    Geneve,
    GeneveOption,
    OuterIPv4,
    OuterIPv6,
    OuterUDP,
    TunnelError,
    TunnelHeader,
    decapsulate,
)

INNER = bytes(Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07") / IP() / Raw(b"x" * 30))
MACS = ("f8:bc:12:44:34:b6", "aa:55:aa:55:00:00")
IP4 = OuterIPv4("192.0.2.88", "192.0.2.92", 17, tos=0x10, ttl=63)
IP6 = OuterIPv6("2001:db8::88", "2001:db8::92", 17, tclass=0x2C, label=0x12345, hlimit=60)


def _header(
    ip: OuterIPv4 | OuterIPv6, tunnel: VXLAN | Geneve | GRE, csum: int = 0
) -> TunnelHeader:
    if isinstance(tunnel, GRE):
        ip = (
            OuterIPv4(ip.src, ip.dst, 47)
            if isinstance(ip, OuterIPv4)
            else OuterIPv6(ip.src, ip.dst, 47)
        )
        return TunnelHeader(*MACS, ip, None, tunnel)
    port = 4789 if isinstance(tunnel, VXLAN) else 6081
    return TunnelHeader(*MACS, ip, OuterUDP(49152, port, csum), tunnel)


def _check_outer(pkt: Ether, header: TunnelHeader, wire: bytes) -> None:
    """Scapy's view of our outer headers: recomputing lengths and checksums changes nothing."""
    assert pkt.dst == MACS[0]
    assert pkt.src == MACS[1]
    if isinstance(header.ip, OuterIPv4):
        ip = pkt[IP]
        assert (ip.src, ip.dst, ip.tos, ip.ttl, ip.id, ip.flags.DF) == (
            "192.0.2.88",
            "192.0.2.92",
            0x10 if header.udp else 0,
            63 if header.udp else 64,
            0,
            1,
        )
    else:
        ip6 = pkt[IPv6]
        assert (ip6.src, ip6.dst) == ("2001:db8::88", "2001:db8::92")
    rebuilt = pkt.copy()
    for layer in (IP, UDP, IPv6):
        if rebuilt.haslayer(layer):
            for name in ("len", "chksum", "plen"):
                if name in rebuilt[layer].fields and not (
                    layer is UDP and name == "chksum" and pkt[UDP].chksum == 0
                ):
                    del rebuilt[layer].fields[name]
    assert bytes(rebuilt) == wire


@pytest.mark.parametrize("ip", [IP4, IP6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("csum", [0, 0xFFFF], ids=["nocsum", "csum"])
def test_vxlan_built_reads_in_scapy(ip: OuterIPv4 | OuterIPv6, csum: int) -> None:
    header = _header(ip, VXLAN(0x7B), csum)
    wire = header.encapsulate(INNER)
    pkt = Ether(wire)
    assert pkt[SCAPY_VXLAN].flags == 0x08
    assert pkt[SCAPY_VXLAN].vni == 0x7B
    assert bytes(pkt[SCAPY_VXLAN].payload) == INNER
    # UDP's checksum is 0 over IPv4 unless asked, and always computed over IPv6.
    assert (pkt[UDP].chksum != 0) == (bool(csum) or isinstance(ip, OuterIPv6))
    _check_outer(pkt, header, wire)
    assert decapsulate(wire) == (
        TunnelHeader(*MACS, ip, OuterUDP(49152, 4789, pkt[UDP].chksum), VXLAN(0x7B)),
        INNER,
    )


@pytest.mark.parametrize("key", [None, 0x1C8])
@pytest.mark.parametrize("seq", [None, 5])
@pytest.mark.parametrize("csum", [False, True])
@pytest.mark.parametrize("ip", [IP4, IP6], ids=["ipv4", "ipv6"])
def test_gre_built_reads_in_scapy(
    key: int | None, seq: int | None, csum: bool, ip: OuterIPv4 | OuterIPv6
) -> None:
    header = _header(ip, GRE(key=key, seq=seq, csum=0 if csum else None))
    wire = header.encapsulate(INNER)
    gre = Ether(wire)[SCAPY_GRE]
    assert (gre.chksum_present, gre.key_present, gre.seqnum_present) == (
        int(csum),
        int(key is not None),
        int(seq is not None),
    )
    assert gre.proto == 0x6558
    assert (gre.key, gre.sequence_number) == (key, seq)
    if csum:
        # Scapy computes the checksum itself when the field is left empty.
        check = gre.copy()
        check.chksum = None
        assert bytes(check)[4:6] == gre.chksum.to_bytes(2, "big")
    assert bytes(gre.payload) == INNER
    parsed, inner = decapsulate(wire)
    assert inner == INNER
    assert parsed.tunnel == GRE(key=key, seq=seq, csum=gre.chksum if csum else None)


def test_gre_from_scapy_parses_and_checks_its_checksum() -> None:
    frame = bytes(
        Ether()
        / IP(src="192.0.2.1", dst="192.0.2.2")
        / SCAPY_GRE(chksum_present=1, key_present=1, key=77, proto=0x6558)
        / INNER
    )
    header, inner = decapsulate(frame)
    assert (header.tunnel.key, inner) == (77, INNER)  # type: ignore[union-attr]
    broken = bytearray(frame)
    broken[-1] ^= 1
    with pytest.raises(TunnelError, match="bad GRE checksum"):
        decapsulate(bytes(broken))


OPTIONS = [
    (),
    (GeneveOption(0xFFFF, 0x80, b"\0\0\0\x0a"),),
    (GeneveOption(0x0102, 0x01, bytes(range(8))), GeneveOption(0xFFFF, 0x02, b"")),
]


@pytest.mark.parametrize("options", OPTIONS, ids=["none", "one-critical", "two"])
@pytest.mark.parametrize("oam", [False, True])
def test_geneve_built_reads_in_scapy(options: tuple[GeneveOption, ...], oam: bool) -> None:
    tunnel = Geneve(0x7B, options, oam=oam, critical=any(o.critical for o in options))
    wire = _header(IP4, tunnel).encapsulate(INNER)
    gen = Ether(wire)[GENEVE]
    assert (gen.version, gen.vni, gen.proto, gen.oam, gen.critical) == (
        0,
        0x7B,
        0x6558,
        int(oam),
        int(tunnel.critical),
    )
    assert gen.optionlen == sum(1 + len(o.data) // 4 for o in options)
    got = [(o.classid, o.type, o.data) for o in gen.options]
    assert got == [(o.opt_class, o.type, o.data) for o in options]
    assert decapsulate(wire)[0].tunnel == tunnel


def test_geneve_from_scapy_parses() -> None:
    gen = GENEVE(
        vni=42, proto=0x6558, options=[GeneveOptions(classid=0x102, type=0x81, data=b"abcdefgh")]
    )
    frame = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(dport=6081) / gen / INNER)
    header, inner = decapsulate(frame)
    assert inner == INNER
    assert header.tunnel == Geneve(42, (GeneveOption(0x102, 0x81, b"abcdefgh"),))
    assert header.tunnel.options[0].critical  # type: ignore[union-attr]


def test_vxlan_from_scapy_parses() -> None:
    frame = bytes(
        Ether()
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / UDP(dport=4789)
        / SCAPY_VXLAN(vni=9)
        / INNER
    )
    header, inner = decapsulate(frame)
    assert (header.tunnel, inner) == (VXLAN(9), INNER)


GOOD_V4 = _header(IP4, VXLAN(5)).encapsulate(INNER)


def _patched(frame: bytes, offset: int, new: bytes) -> bytes:
    return frame[:offset] + new + frame[offset + len(new) :]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_patched(GOOD_V4, 42, b"\x0c"), "not exactly the I flag"),
        (_patched(GOOD_V4, 42, b"\x00"), "not exactly the I flag"),
        (_patched(GOOD_V4, 24, b"\x00\x00"), "bad IPv4 header checksum"),
        (bytes(Ether() / IP() / UDP(dport=4789) / b"\x08\0\0"), "truncated VXLAN header"),
        (GOOD_V4[:30], "truncated IPv4 header"),
        (_patched(GOOD_V4, 14, b"\x46"), "no IPv4 options"),
        (bytes(Ether() / IP() / UDP(dport=6081) / GENEVE(version=1)), "version 1"),
        (
            bytes(Ether() / IP() / UDP(dport=6081) / GENEVE(optionlen=2)),
            "truncated Geneve options",
        ),
        (
            bytes(Ether() / IP() / UDP(dport=6081) / GENEVE(optionlen=1) / b"\0\0\0\x01"),
            "overruns the options",
        ),
        (
            bytes(Ether() / IP() / UDP(dport=4789, chksum=0x1234) / SCAPY_VXLAN(vni=1)),
            "bad UDP checksum",
        ),
        (bytes(Ether() / IP() / UDP(dport=9) / SCAPY_VXLAN(vni=1)), "no tunnel listens"),
    ],
)
def test_malformed_frames_are_refused_with_the_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(TunnelError, match=reason):
        decapsulate(frame)


@settings(max_examples=400)
@given(st.binary(max_size=120), st.integers(0, 3))
def test_arbitrary_bytes_raise_only_tunnel_errors(data: bytes, kind: int) -> None:
    prefix = GOOD_V4[:42] if kind == 0 else b""
    try:
        if kind == 1:
            Geneve.parse(data)
        elif kind == 2:
            GRE.parse(data)
        else:
            decapsulate(prefix + data)
    except TunnelError:
        pass


@settings(max_examples=200)
@given(st.integers(0, len(GOOD_V4) - 1), st.integers(1, 255))
def test_corrupted_frames_raise_only_tunnel_errors(offset: int, xor: int) -> None:
    frame = bytearray(GOOD_V4)
    frame[offset] ^= xor
    with contextlib.suppress(TunnelError):
        decapsulate(bytes(frame))


# -- action text ----------------------------------------------------------------------

_ETH = "eth(dst=f8:bc:12:44:34:b6,src=aa:55:aa:55:00:00,dl_type=0x0800)"
_ETH6 = "eth(dst=f8:bc:12:44:34:b6,src=aa:55:aa:55:00:00,dl_type=0x86dd)"
_V4 = "ipv4(src=1.1.2.88,dst=1.1.2.92,proto={},tos=0,ttl=64,frag=0x4000)"
_V6 = "ipv6(src=2001:db8::88,dst=2001:db8::92,label=291,proto={},tclass=0x2c,hlimit=64)"
# Texts Open vSwitch 3.1's dpctl/parse-actions printed back unchanged.
OVS_TEXTS = [
    "tnl_pop(4789)",
    f"tnl_push(tnl_port(4789),header(size=50,type=4,{_ETH},{_V4.format(17)},"
    "udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x7b)),out_port(100))",
    f"tnl_push(tnl_port(4789),header(size=70,type=4,{_ETH6},{_V6.format(17)},"
    "udp(src=0,dst=4789,csum=0xffff),vxlan(flags=0x8000000,vni=0x7b)),out_port(100))",
    f"tnl_push(tnl_port(6081),header(size=50,type=5,{_ETH},{_V4.format(17)},"
    "udp(src=0,dst=6081,csum=0x0),geneve(vni=0x7b)),out_port(100))",
    f"tnl_push(tnl_port(6081),header(size=58,type=5,{_ETH},{_V4.format(17)},"
    "udp(src=0,dst=6081,csum=0x0),geneve(oam,crit,vni=0x7b,"
    "options({class=0xffff,type=0x80,len=4,0xa}))),out_port(100))",
    f"tnl_push(tnl_port(6081),header(size=66,type=5,{_ETH},{_V4.format(17)},"
    "udp(src=0,dst=6081,csum=0x0),geneve(vni=0x7b,options({class=0x102,type=0x1,len=8,"
    "0x100000002}{class=0xffff,type=0x2,len=0}))),out_port(100))",
    f"tnl_push(tnl_port(3),header(size=42,type=3,{_ETH},{_V4.format(47)},"
    "gre((flags=0x2000,proto=0x6558),key=0x1c8)),out_port(100))",
    f"tnl_push(tnl_port(3),header(size=50,type=3,{_ETH},{_V4.format(47)},"
    "gre((flags=0xb000,proto=0x6558),csum=0x0,key=0x1c8,seq=0x5)),out_port(100))",
    f"tnl_push(tnl_port(3),header(size=38,type=3,{_ETH},{_V4.format(47)},"
    "gre((flags=0x0,proto=0x6558))),out_port(100))",
    f"tnl_push(tnl_port(3),header(size=62,type=109,{_ETH6},{_V6.format(47)},"
    "gre((flags=0x2000,proto=0x6558),key=0x1c8)),out_port(100))",
]


@pytest.mark.parametrize("text", OVS_TEXTS)
def test_ovs_tunnel_action_texts_round_trip(text: str) -> None:
    actions = parse_odp_actions(text)
    assert format_odp_actions(actions) == text
    assert parse_odp_actions(format_odp_actions(actions)) == actions


def test_tnl_push_header_describes_the_bytes_scapy_reads() -> None:
    (action,) = parse_odp_actions(OVS_TEXTS[1])
    assert isinstance(action, OdpTnlPush)
    assert (action.tnl_port, action.out_port) == (4789, 100)
    template = action.header.template()
    assert len(template) == 50
    # OVS keeps lengths at 0 in the template, so each layer is read on its own.
    ip, udp, vxlan = IP(template[14:34]), UDP(template[34:42]), SCAPY_VXLAN(template[42:])
    assert (ip.src, ip.dst, ip.flags.DF, ip.id, ip.len, ip.ttl) == (
        "1.1.2.88",
        "1.1.2.92",
        1,
        0,
        0,
        64,
    )
    assert (udp.sport, udp.dport, udp.len, udp.chksum) == (0, 4789, 0, 0)
    assert (vxlan.flags, vxlan.vni) == (0x08, 0x7B)
    # The template's IPv4 checksum covers that total length of 0.
    check = ip.copy()
    del check.chksum
    assert IP(bytes(check)).chksum == ip.chksum
    assert parse_odp_actions("tnl_pop(6081),3") == (OdpTnlPop(6081), *parse_odp_actions("3"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (OVS_TEXTS[1].replace("size=50", "size=51"), "has size=50,type=4"),
        (OVS_TEXTS[1].replace("type=4", "type=5"), "has size=50,type=4"),
        (OVS_TEXTS[-1].replace("type=109", "type=3"), "type=109"),
        (OVS_TEXTS[4].replace("len=4,0xa", "len=3,0xa"), "multiples of 4"),
        (OVS_TEXTS[4].replace("len=4,0xa", "len=4,0x1122334455"), "more than len=4"),
        (OVS_TEXTS[6].replace(",key=0x1c8", ""), "expected key= in this order"),
        (OVS_TEXTS[6].replace("flags=0x2000", "flags=0x4000"), "only the C, K and S"),
        (OVS_TEXTS[1].replace("vni=0x7b", "vni=0x1000000"), "out of range in vxlan"),
        (OVS_TEXTS[1].replace("ttl=64,frag", "frag=0x4000,ttl"), "in this order"),
        ("tnl_pop(x)", "bad number in tnl_pop"),
    ],
)
def test_bad_tunnel_action_text_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(FlowParseError, match=reason):
        parse_odp_actions(text)
