"""Header codecs, checked both ways against scapy.

Every case describes one packet twice: once with scapy's classes and once with
ours. The tests then check that scapy's bytes parse (with ours) into the same
field values scapy dissects from them, that our builder produces the very
bytes scapy produces, and that scapy dissects our bytes into the fields we
asked for, with the checksums and lengths scapy itself would compute.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.config import conf
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6NDOptUnknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting,
    RouterAlert,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, LLC, Dot1AD, Dot1Q, Dot3, Ether
from scapy.packet import NoPayload, Packet, Padding, Raw

import pyvswitch.packet as pv
from pyvswitch.packet.headers import ParseError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

conf.verb = 0

MAC_A = "50:54:00:00:00:0a"
MAC_B = "50:54:00:00:00:0b"
IP_A = "192.0.2.1"
IP_B = "198.51.100.2"
IP6_A = "2001:db8::a"
IP6_B = "2001:db8:1::b"
# Ports scapy binds to no application protocol, so it dissects payloads as Raw.
PORT_A = 40000
PORT_B = 50000

# TCP options: MSS 1460, NOP, window scale 7, SACK permitted, timestamps (1, 2).
TCP_OPTIONS = (
    struct.pack("!BBH", 2, 4, 1460)
    + b"\x01"
    + struct.pack("!BBB", 3, 3, 7)
    + struct.pack("!BB", 4, 2)
    + struct.pack("!BBII", 8, 10, 1, 2)
)
SCAPY_TCP_OPTIONS = [
    ("MSS", 1460),
    ("NOP", None),
    ("WScale", 7),
    ("SAckOK", b""),
    ("Timestamp", (1, 2)),
]
# IPv4 options: NOP, then record route with room for one address (pointer 4).
IP_OPTIONS = b"\x01" + bytes([7, 7, 4]) + ipaddress.IPv4Address("203.0.113.9").packed
ROUTER_ALERT_AND_PADN = bytes.fromhex("05020000") + bytes.fromhex("0100")
AH_ICV = bytes(range(0xA0, 0xAC))


def ether() -> Ether:
    return Ether(dst=MAC_A, src=MAC_B)


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def norm6(text: str) -> str:
    """An IPv6 address the way glibc's inet_ntop() prints it (as our parser does)."""
    return socket.inet_ntop(socket.AF_INET6, ip6(text))


# -- scapy -> our header classes ------------------------------------------------------

AFTER_AH: dict[int, type[Packet]] = {6: TCP, 17: UDP, 60: IPv6ExtHdrDestOpt}


def scapy_layers(pkt: Packet) -> Iterator[Packet]:
    """Yield a scapy packet's layers outermost first.

    scapy does not dissect what follows an authentication header, so that part
    is dissected here by the header AH announces.
    """
    layer: Packet = pkt
    while not isinstance(layer, NoPayload):
        yield layer
        if isinstance(layer, AH) and isinstance(layer.payload, Raw) and layer.nh in AFTER_AH:
            layer = AFTER_AH[layer.nh](bytes(layer.payload))
        else:
            layer = layer.payload


def own_bytes(layer: Packet) -> bytes:
    """The bytes of one scapy layer, without its payload."""
    whole = bytes(layer)
    return whole[: len(whole) - len(bytes(layer.payload))]


def convert(layer: Packet) -> pv.Header | None:
    """Our header with the field values scapy gives one layer (None: no such header)."""
    if isinstance(layer, Ether):
        return pv.Ethernet(dst=layer.dst, src=layer.src, type=layer.type)
    if isinstance(layer, Dot3):
        return pv.Ethernet(dst=layer.dst, src=layer.src, type=layer.len)
    if isinstance(layer, Dot1Q):  # Dot1AD is a subclass
        return pv.VLAN(
            vid=layer.vlan,
            pcp=layer.prio,
            dei=layer.dei,
            type=layer.type,
            tpid=layer.underlayer.type,
        )
    if isinstance(layer, ARP):
        assert (layer.hwlen, layer.plen) == (6, 4)
        return pv.ARP(
            op=layer.op,
            sha=layer.hwsrc,
            spa=layer.psrc,
            tha=layer.hwdst,
            tpa=layer.pdst,
            htype=layer.hwtype,
            ptype=layer.ptype,
        )
    if isinstance(layer, IP):
        return pv.IPv4(
            src=layer.src,
            dst=layer.dst,
            proto=layer.proto,
            tos=layer.tos,
            ttl=layer.ttl,
            id=layer.id,
            df=bool(layer.flags.DF),
            mf=bool(layer.flags.MF),
            frag=layer.frag,
            options=b"".join(bytes(o) for o in layer.options),
            ihl=layer.ihl,
            len=layer.len,
            chksum=layer.chksum,
            reserved_flag=bool(layer.flags.evil),
        )
    if isinstance(layer, IPv6):
        return pv.IPv6(
            src=norm6(layer.src),
            dst=norm6(layer.dst),
            nh=layer.nh,
            tc=layer.tc,
            fl=layer.fl,
            hlim=layer.hlim,
            plen=layer.plen,
        )
    if isinstance(layer, IPv6ExtHdrHopByHop | IPv6ExtHdrDestOpt):
        kind = 0 if isinstance(layer, IPv6ExtHdrHopByHop) else 60
        assert len(own_bytes(layer)) == (layer.len + 1) * 8
        return pv.IPv6ExtHeader(kind=kind, nh=layer.nh, data=own_bytes(layer)[2:])
    if isinstance(layer, IPv6ExtHdrRouting):
        data = struct.pack("!BBI", layer.type, layer.segleft, layer.reserved)
        data += b"".join(ip6(a) for a in layer.addresses)
        assert layer.len == (len(data) + 2) // 8 - 1
        return pv.IPv6ExtHeader(kind=43, nh=layer.nh, data=data)
    if isinstance(layer, IPv6ExtHdrFragment):
        return pv.IPv6Fragment(nh=layer.nh, offset=layer.offset, m=bool(layer.m), id=layer.id)
    if isinstance(layer, AH):
        data = struct.pack("!HII", layer.reserved, layer.spi, layer.seq) + layer.icv
        assert layer.payloadlen == (len(data) + 2) // 4 - 2
        return pv.IPv6ExtHeader(kind=51, nh=layer.nh, data=data + (layer.padding or b""))
    if isinstance(layer, TCP):
        return pv.TCP(
            sport=layer.sport,
            dport=layer.dport,
            seq=layer.seq,
            ack=layer.ack,
            flags=(layer.reserved << 9) | int(layer.flags),
            window=layer.window,
            urgptr=layer.urgptr,
            options=own_bytes(layer)[20:],
            dataofs=layer.dataofs,
            chksum=layer.chksum,
        )
    if isinstance(layer, UDP):
        return pv.UDP(sport=layer.sport, dport=layer.dport, len=layer.len, chksum=layer.chksum)
    if isinstance(layer, ICMP):
        assert layer.type in (0, 8), "only echo is described field by field"
        rest = struct.pack("!HH", layer.id, layer.seq)
        return pv.ICMP(type=layer.type, code=layer.code, rest=rest, chksum=layer.chksum)
    if isinstance(layer, ICMPv6EchoRequest | ICMPv6EchoReply):
        body = struct.pack("!HH", layer.id, layer.seq)
        return pv.ICMPV6(type=layer.type, code=layer.code, body=body, chksum=layer.cksum)
    if isinstance(layer, ICMPv6ND_NS | ICMPv6ND_NA):
        flags = layer.res
        if isinstance(layer, ICMPv6ND_NA):
            flags |= (layer.R << 31) | (layer.S << 30) | (layer.O << 29)
        return pv.NeighborDiscovery(
            type=layer.type,
            code=layer.code,
            target=norm6(layer.tgt),
            flags=flags,
            chksum=layer.cksum,
        )
    return None


def from_scapy(pkt: Packet) -> list[pv.Header]:
    """Our header list with the values scapy dissected, payload and padding as one Raw."""
    out: list[pv.Header] = []
    tail = b""
    for layer in scapy_layers(pkt):
        if isinstance(layer, Raw | Padding):
            tail += layer.load
            continue
        nd = out[-1] if out and isinstance(out[-1], pv.NeighborDiscovery) else None
        # ICMPv6NDOptDstLLAddr subclasses ICMPv6NDOptSrcLLAddr: compare exact types.
        if nd is not None and type(layer) is ICMPv6NDOptSrcLLAddr:
            nd.sll = layer.lladdr
            continue
        if nd is not None and type(layer) is ICMPv6NDOptDstLLAddr:
            nd.tll = layer.lladdr
            continue
        if nd is not None and isinstance(layer, ICMPv6NDOptUnknown):
            nd.options.append((layer.type, own_bytes(layer)[2:]))
            continue
        header = convert(layer)
        if header is None:
            tail += bytes(layer)
            break
        out.append(header)
        if isinstance(layer, ICMPv6EchoRequest | ICMPv6EchoReply):
            tail += layer.data
    if tail:
        out.append(pv.Raw(tail))
    return out


def assert_fields_match(expected: list[pv.Header], actual: list[pv.Header]) -> None:
    """Every field ``expected`` sets (not None) has that value in ``actual``."""
    assert [type(h).__name__ for h in actual] == [type(h).__name__ for h in expected]
    for want, got in zip(expected, actual, strict=True):
        for f in dataclasses.fields(want):
            value = getattr(want, f.name)
            if value is not None:
                assert getattr(got, f.name) == value, f"{type(want).__name__}.{f.name}"


# Fields scapy computes when they are None, by layer class.
COMPUTED_FIELDS: dict[type[Packet], tuple[str, ...]] = {
    IP: ("ihl", "len", "chksum"),
    IPv6: ("plen",),
    IPv6ExtHdrHopByHop: ("len",),
    IPv6ExtHdrDestOpt: ("len",),
    IPv6ExtHdrRouting: ("len",),
    TCP: ("dataofs", "chksum"),
    UDP: ("len", "chksum"),
    ICMP: ("chksum",),
    ICMPv6EchoRequest: ("cksum",),
    ICMPv6EchoReply: ("cksum",),
    ICMPv6ND_NS: ("cksum",),
    ICMPv6ND_NA: ("cksum",),
}


def scapy_recomputed(pkt: Packet, keep: frozenset[str] = frozenset()) -> Packet:
    """A copy of a dissected packet with lengths and checksums left for scapy to compute.

    ``keep`` names fields (``"UDP.len"``) to leave as they are.
    """
    copy = pkt.copy()
    layer = copy
    while not isinstance(layer, NoPayload):
        for name in COMPUTED_FIELDS.get(type(layer), ()):
            if f"{type(layer).__name__}.{name}" not in keep:
                setattr(layer, name, None)
        layer = layer.payload
    return Ether(bytes(copy))


# -- the cases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    scapy: Callable[[], Packet]
    ours: Callable[[], list[pv.Header]]
    #: scapy fields ("UDP.len") the case sets on purpose to what scapy would not compute.
    explicit: frozenset[str] = frozenset()


CASES: dict[str, Case] = {
    "ethernet": Case(
        lambda: Ether(dst=MAC_A, src=MAC_B, type=0x88B5) / Raw(b"local experimental"),
        lambda: [pv.Ethernet(dst=MAC_A, src=MAC_B, type=0x88B5), pv.Raw(b"local experimental")],
    ),
    "ethernet-802.3-length": Case(
        lambda: Dot3(dst=MAC_A, src=MAC_B) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"stp"),
        lambda: [pv.Ethernet(dst=MAC_A, src=MAC_B), pv.Raw(b"\x42\x42\x03stp")],
    ),
    "802.1q": Case(
        lambda: (
            ether()
            / Dot1Q(vlan=100, prio=5, dei=1)
            / IP(src=IP_A, dst=IP_B, id=1)
            / UDP(sport=PORT_A, dport=PORT_B)
            / b"tagged"
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.VLAN(vid=100, pcp=5, dei=1),
            pv.IPv4(src=IP_A, dst=IP_B, id=1),
            pv.UDP(sport=PORT_A, dport=PORT_B),
            pv.Raw(b"tagged"),
        ],
    ),
    "qinq": Case(
        lambda: (
            ether()
            / Dot1AD(vlan=4000, prio=3)
            / Dot1Q(vlan=17, prio=1, dei=1)
            / IP(src=IP_A, dst=IP_B, id=2)
            / UDP(sport=PORT_A, dport=PORT_B)
            / b"double"
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.VLAN(vid=4000, pcp=3, tpid=0x88A8),
            pv.VLAN(vid=17, pcp=1, dei=1),
            pv.IPv4(src=IP_A, dst=IP_B, id=2),
            pv.UDP(sport=PORT_A, dport=PORT_B),
            pv.Raw(b"double"),
        ],
    ),
    "arp-request": Case(
        lambda: (
            Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_B)
            / ARP(op=1, hwsrc=MAC_B, psrc=IP_A, hwdst="00:00:00:00:00:00", pdst=IP_B)
        ),
        lambda: [
            pv.Ethernet(dst="ff:ff:ff:ff:ff:ff", src=MAC_B),
            pv.ARP(op=1, sha=MAC_B, spa=IP_A, tha="00:00:00:00:00:00", tpa=IP_B),
        ],
    ),
    "arp-reply-padded": Case(
        lambda: (
            ether()
            / ARP(op=2, hwsrc=MAC_A, psrc=IP_B, hwdst=MAC_B, pdst=IP_A)
            / Padding(b"\0" * 18)
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.ARP(op=2, sha=MAC_A, spa=IP_B, tha=MAC_B, tpa=IP_A),
            pv.Raw(b"\0" * 18),
        ],
    ),
    "ipv4-options-tcp": Case(
        lambda: (
            ether()
            / IP(
                src=IP_A,
                dst=IP_B,
                id=0x1234,
                tos=0xB8,
                ttl=3,
                flags="DF",
                options=[IPOption_NOP(), IPOption_RR(routers=["203.0.113.9"])],
            )
            / TCP(
                sport=PORT_A,
                dport=PORT_B,
                seq=0x01020304,
                ack=0xFFFFFFF0,
                flags="SAUECN",
                window=0xFFFF,
                urgptr=7,
                options=SCAPY_TCP_OPTIONS,
            )
            / b"payload"
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv4(src=IP_A, dst=IP_B, id=0x1234, tos=0xB8, ttl=3, df=True, options=IP_OPTIONS),
            pv.TCP(
                sport=PORT_A,
                dport=PORT_B,
                seq=0x01020304,
                ack=0xFFFFFFF0,
                flags=0x1F2,  # NS CWR ECE URG ACK SYN
                window=0xFFFF,
                urgptr=7,
                options=TCP_OPTIONS,
            ),
            pv.Raw(b"payload"),
        ],
    ),
    "ipv4-tcp-reserved-bits": Case(
        lambda: (
            ether()
            / IP(src=IP_A, dst=IP_B, id=3, flags="evil")
            / TCP(sport=PORT_A, dport=PORT_B, flags="FPA", reserved=5, window=1)
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv4(src=IP_A, dst=IP_B, id=3, reserved_flag=True),
            pv.TCP(sport=PORT_A, dport=PORT_B, flags=0xA19, window=1),
        ],
    ),
    "ipv4-first-fragment": Case(
        lambda: (
            ether()
            / IP(src=IP_A, dst=IP_B, id=77, flags="MF")
            / UDP(sport=PORT_A, dport=PORT_B, len=1008)
            / (b"f" * 16)
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv4(src=IP_A, dst=IP_B, id=77, mf=True),
            pv.UDP(sport=PORT_A, dport=PORT_B, len=1008),
            pv.Raw(b"f" * 16),
        ],
        # The UDP length covers the whole datagram, not this fragment.
        explicit=frozenset({"UDP.len"}),
    ),
    "ipv4-later-fragment": Case(
        # The payload looks like a TCP header, but at offset 185 it is not one.
        lambda: (
            ether()
            / IP(src=IP_A, dst=IP_B, id=77, frag=185, proto=6)
            / Raw(bytes(TCP(sport=PORT_A, dport=PORT_B)))
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv4(src=IP_A, dst=IP_B, id=77, frag=185, proto=6),
            pv.Raw(bytes(TCP(sport=PORT_A, dport=PORT_B))),
        ],
    ),
    "icmp-echo-request": Case(
        lambda: ether() / IP(src=IP_A, dst=IP_B, id=4) / ICMP(type=8, id=0x4321, seq=9) / b"ping",
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv4(src=IP_A, dst=IP_B, id=4),
            pv.ICMP.echo(0x4321, 9),
            pv.Raw(b"ping"),
        ],
    ),
    "icmp-echo-reply": Case(
        lambda: ether() / IP(src=IP_B, dst=IP_A, id=5) / ICMP(type=0, id=0x4321, seq=9) / b"pong",
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv4(src=IP_B, dst=IP_A, id=5),
            pv.ICMP.echo(0x4321, 9, request=False),
            pv.Raw(b"pong"),
        ],
    ),
    "ipv6-udp": Case(
        lambda: (
            ether()
            / IPv6(src=IP6_A, dst=IP6_B, tc=0xB8, fl=0xABCDE, hlim=7)
            / UDP(sport=PORT_A, dport=PORT_B)
            / b"six"
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src=IP6_A, dst=IP6_B, tc=0xB8, fl=0xABCDE, hlim=7),
            pv.UDP(sport=PORT_A, dport=PORT_B),
            pv.Raw(b"six"),
        ],
    ),
    "ipv6-tcp": Case(
        lambda: (
            ether()
            / IPv6(src=IP6_A, dst=IP6_B)
            / TCP(sport=PORT_A, dport=PORT_B, flags="FA", seq=1, ack=2, options=SCAPY_TCP_OPTIONS)
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src=IP6_A, dst=IP6_B),
            pv.TCP(sport=PORT_A, dport=PORT_B, flags=0x11, seq=1, ack=2, options=TCP_OPTIONS),
        ],
    ),
    "ipv6-extension-chain": Case(
        lambda: (
            ether()
            / IPv6(src=IP6_A, dst=IP6_B)
            / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrRouting(addresses=["2001:db8::1", "2001:db8::2"], segleft=0)
            / IPv6ExtHdrFragment(m=1, id=0xCAFE)
            / TCP(sport=PORT_A, dport=PORT_B, flags="S")
            / b"first"
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src=IP6_A, dst=IP6_B),
            pv.IPv6ExtHeader(kind=0, data=ROUTER_ALERT_AND_PADN),
            pv.IPv6ExtHeader(kind=60, data=bytes.fromhex("0104") + bytes(4)),
            pv.IPv6ExtHeader(kind=43, data=bytes(6) + ip6("2001:db8::1") + ip6("2001:db8::2")),
            pv.IPv6Fragment(m=True, id=0xCAFE),
            pv.TCP(sport=PORT_A, dport=PORT_B, flags=0x002),
            pv.Raw(b"first"),
        ],
    ),
    "ipv6-ah": Case(
        lambda: (
            ether()
            / IPv6(src=IP6_A, dst=IP6_B)
            / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
            / AH(nh=60, payloadlen=4, spi=0x100, seq=7, icv=AH_ICV)
            / IPv6ExtHdrDestOpt()
            / UDP(sport=PORT_A, dport=PORT_B)
            / b"authenticated"
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src=IP6_A, dst=IP6_B),
            pv.IPv6ExtHeader(kind=0, data=ROUTER_ALERT_AND_PADN),
            pv.IPv6ExtHeader(kind=51, data=struct.pack("!HII", 0, 0x100, 7) + AH_ICV),
            pv.IPv6ExtHeader(kind=60, data=bytes.fromhex("0104") + bytes(4)),
            pv.UDP(sport=PORT_A, dport=PORT_B),
            pv.Raw(b"authenticated"),
        ],
    ),
    "ipv6-later-fragment": Case(
        lambda: (
            ether()
            / IPv6(src=IP6_A, dst=IP6_B)
            / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
            / IPv6ExtHdrFragment(nh=6, offset=100, m=1, id=0xCAFE)
            / Raw(bytes(TCP(sport=PORT_A, dport=PORT_B)))
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src=IP6_A, dst=IP6_B),
            pv.IPv6ExtHeader(kind=0, data=ROUTER_ALERT_AND_PADN),
            pv.IPv6Fragment(nh=6, offset=100, m=True, id=0xCAFE),
            pv.Raw(bytes(TCP(sport=PORT_A, dport=PORT_B))),
        ],
    ),
    "icmpv6-echo-request": Case(
        lambda: (
            ether()
            / IPv6(src=IP6_A, dst=IP6_B)
            / ICMPv6EchoRequest(id=0x1234, seq=0xFFFF, data=b"ping6")
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src=IP6_A, dst=IP6_B),
            pv.ICMPV6(type=128, body=struct.pack("!HH", 0x1234, 0xFFFF)),
            pv.Raw(b"ping6"),
        ],
    ),
    "icmpv6-echo-reply": Case(
        lambda: (
            ether() / IPv6(src=IP6_B, dst=IP6_A) / ICMPv6EchoReply(id=0x1234, seq=1, data=b"pong6")
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src=IP6_B, dst=IP6_A),
            pv.ICMPV6(type=129, body=struct.pack("!HH", 0x1234, 1)),
            pv.Raw(b"pong6"),
        ],
    ),
    "nd-solicitation-sll": Case(
        lambda: (
            Ether(dst="33:33:ff:00:00:0b", src=MAC_A)
            / IPv6(src="fe80::a", dst="ff02::1:ff00:b", hlim=255)
            / ICMPv6ND_NS(tgt="fe80::b")
            / ICMPv6NDOptSrcLLAddr(lladdr=MAC_A)
        ),
        lambda: [
            pv.Ethernet(dst="33:33:ff:00:00:0b", src=MAC_A),
            pv.IPv6(src="fe80::a", dst="ff02::1:ff00:b", hlim=255),
            pv.NeighborDiscovery(type=135, target="fe80::b", sll=MAC_A),
        ],
    ),
    "nd-advertisement-tll": Case(
        lambda: (
            ether()
            / IPv6(src="fe80::b", dst="fe80::a", hlim=255)
            / ICMPv6ND_NA(tgt="fe80::b", R=0, S=1, O=1)
            / ICMPv6NDOptDstLLAddr(lladdr=MAC_B)
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src="fe80::b", dst="fe80::a", hlim=255),
            pv.NeighborDiscovery(type=136, target="fe80::b", tll=MAC_B, flags=0x60000000),
        ],
    ),
    "nd-advertisement-router-more-options": Case(
        lambda: (
            ether()
            / IPv6(src="fe80::b", dst="ff02::1", hlim=255)
            / ICMPv6ND_NA(tgt="2001:db8::b", R=1, S=0, O=1)
            / ICMPv6NDOptDstLLAddr(lladdr=MAC_B)
            / ICMPv6NDOptUnknown(type=14, len=1, data=b"nonce!")
        ),
        lambda: [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            pv.IPv6(src="fe80::b", dst="ff02::1", hlim=255),
            pv.NeighborDiscovery(
                type=136,
                target="2001:db8::b",
                tll=MAC_B,
                flags=0xA0000000,
                options=[(14, b"nonce!")],
            ),
        ],
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


# -- both directions, field by field --------------------------------------------------


def test_scapy_built_frame_parses_into_scapys_fields(case: Case) -> None:
    frame = bytes(case.scapy())
    assert pv.parse(frame) == from_scapy(Ether(frame))


def test_scapy_built_frame_parses_into_the_described_headers(case: Case) -> None:
    # The same check against the hand-written description, so that a mistake in
    # the scapy translation above cannot hide a parser bug.
    assert_fields_match(case.ours(), pv.parse(bytes(case.scapy())))


def test_parsed_frame_rebuilds_byte_for_byte(case: Case) -> None:
    frame = bytes(case.scapy())
    assert pv.build(*pv.parse(frame)) == frame


def test_our_frame_is_the_frame_scapy_builds(case: Case) -> None:
    assert pv.build(*case.ours()) == bytes(case.scapy())


def test_our_frame_dissects_in_scapy_into_the_fields_we_gave(case: Case) -> None:
    headers = case.ours()
    assert_fields_match(headers, from_scapy(Ether(pv.build(*headers))))


def test_our_lengths_and_checksums_are_the_ones_scapy_computes(case: Case) -> None:
    frame = pv.build(*case.ours())
    dissected = Ether(frame)
    recomputed = scapy_recomputed(dissected, keep=case.explicit)
    for ours, theirs in zip(scapy_layers(dissected), scapy_layers(recomputed), strict=True):
        for name in COMPUTED_FIELDS.get(type(ours), ()):
            assert getattr(ours, name) == getattr(theirs, name), f"{ours.name}.{name}"
    assert bytes(recomputed) == frame


def test_ah_case_upper_layer_checksum_matches_scapy_without_ah() -> None:
    # scapy does not dissect past AH, so recompute the UDP checksum the way
    # RFC 8200 defines it (the pseudo-header ignores extension headers).
    headers = CASES["ipv6-ah"].ours()
    frame = pv.build(*headers)
    udp = next(h for h in pv.parse(frame) if isinstance(h, pv.UDP))
    plain = Ether(
        bytes(
            ether()
            / IPv6(src=IP6_A, dst=IP6_B)
            / UDP(sport=PORT_A, dport=PORT_B)
            / b"authenticated"
        )
    )
    assert (udp.len, udp.chksum) == (plain[UDP].len, plain[UDP].chksum)


def test_our_tcp_options_decode_in_scapy() -> None:
    frame = pv.build(*CASES["ipv4-options-tcp"].ours())
    dissected = Ether(frame)
    assert dissected[TCP].options == SCAPY_TCP_OPTIONS
    assert str(dissected[TCP].flags) == "SAUECN"
    assert dissected[IP].options[1].routers == ["203.0.113.9"]
    assert dissected[IP].ihl == 7
    assert dissected[TCP].dataofs == 10


def test_ipv4_options_are_padded_to_a_word() -> None:
    record_route = IP_OPTIONS[1:]  # 7 bytes, padded with one end-of-list octet
    frame = pv.build(
        pv.Ethernet(dst=MAC_A, src=MAC_B),
        pv.IPv4(src=IP_A, dst=IP_B, id=1, options=record_route),
        pv.UDP(sport=PORT_A, dport=PORT_B),
    )
    scapy_frame = bytes(
        ether()
        / IP(src=IP_A, dst=IP_B, id=1, options=[IPOption_RR(routers=["203.0.113.9"])])
        / UDP(sport=PORT_A, dport=PORT_B)
    )
    assert frame == scapy_frame
    ipv4 = pv.parse(frame)[1]
    assert isinstance(ipv4, pv.IPv4)
    assert (ipv4.ihl, ipv4.options) == (7, record_route + b"\0")


def test_padding_past_the_ipv6_payload_is_not_an_nd_option() -> None:
    # Bytes past the IPv6 payload length that look like an option are
    # Ethernet padding. (Our builder has no notion of padding, so this case
    # goes one way only.)
    padding = b"\x0e\x01padpad"
    frame = bytes(
        Ether(dst="33:33:ff:00:00:0b", src=MAC_A)
        / IPv6(src="fe80::a", dst="ff02::1:ff00:b", hlim=255)
        / ICMPv6ND_NS(tgt="fe80::b")
        / ICMPv6NDOptSrcLLAddr(lladdr=MAC_A)
        / Padding(padding)
    )
    headers = pv.parse(frame)
    assert headers == from_scapy(Ether(frame))
    nd = headers[2]
    assert isinstance(nd, pv.NeighborDiscovery)
    assert (nd.sll, nd.tll, nd.options) == (MAC_A, None, [])
    assert headers[3] == pv.Raw(padding)
    assert pv.build(*headers) == frame


def test_parse_fills_the_upper_layer_past_ipv6_extension_headers() -> None:
    headers = pv.parse(bytes(CASES["ipv6-extension-chain"].scapy()))
    assert [type(h).__name__ for h in headers] == [
        "Ethernet",
        "IPv6",
        "IPv6ExtHeader",
        "IPv6ExtHeader",
        "IPv6ExtHeader",
        "IPv6Fragment",
        "TCP",
        "Raw",
    ]
    ipv6, hbh, dstopt, routing, frag = headers[1:6]
    assert isinstance(ipv6, pv.IPv6)
    assert isinstance(frag, pv.IPv6Fragment)
    exts = [hbh, dstopt, routing]
    assert all(isinstance(h, pv.IPv6ExtHeader) for h in exts)
    assert [(h.kind, h.nh) for h in exts if isinstance(h, pv.IPv6ExtHeader)] == [
        (0, 60),
        (60, 43),
        (43, 44),
    ]
    assert (ipv6.nh, frag.nh) == (0, 6)


@pytest.mark.parametrize("name", ["ipv4-later-fragment", "ipv6-later-fragment"])
def test_later_fragment_has_no_l4_header(name: str) -> None:
    frame = bytes(CASES[name].scapy())
    headers = pv.parse(frame)
    assert not any(isinstance(h, pv.TCP | pv.UDP | pv.ICMP) for h in headers)
    assert headers[-1] == pv.Raw(bytes(TCP(sport=PORT_A, dport=PORT_B)))


def test_first_ipv6_fragment_has_its_l4_header() -> None:
    frame = bytes(CASES["ipv6-extension-chain"].scapy())
    frag = next(h for h in pv.parse(frame) if isinstance(h, pv.IPv6Fragment))
    assert (frag.offset, frag.m) == (0, True)
    assert any(isinstance(h, pv.TCP) for h in pv.parse(frame))


def test_icmp_echo_accessors() -> None:
    icmp = pv.ICMP.echo(0x4321, 9)
    assert (icmp.type, icmp.code, icmp.id, icmp.seq) == (8, 0, 0x4321, 9)
    parsed = pv.parse(bytes(CASES["icmp-echo-reply"].scapy()))[2]
    assert isinstance(parsed, pv.ICMP)
    assert (parsed.type, parsed.id, parsed.seq) == (0, 0x4321, 9)


def test_vlan_tci_packs_pcp_dei_vid() -> None:
    assert pv.VLAN(vid=0x123, pcp=5, dei=1).tci == 0xB123
    tag = Ether(pv.build(pv.Ethernet(dst=MAC_A, src=MAC_B), pv.VLAN(vid=0xFFF, pcp=7, dei=1)))
    assert (tag[Dot1Q].vlan, tag[Dot1Q].prio, tag[Dot1Q].dei) == (0xFFF, 7, 1)


@pytest.mark.parametrize(
    "tag",
    [pv.VLAN(vid=4096), pv.VLAN(vid=-1), pv.VLAN(pcp=8), pv.VLAN(dei=2)],
    ids=["vid-4096", "vid-negative", "pcp-8", "dei-2"],
)
def test_vlan_out_of_range_is_refused(tag: pv.VLAN) -> None:
    with pytest.raises(ValueError, match="VLAN tag out of range"):
        pv.build(pv.Ethernet(), tag)


@pytest.mark.parametrize("l4", [pv.TCP(), pv.UDP(), pv.ICMPV6(), pv.NeighborDiscovery()])
def test_pseudo_header_checksum_without_ip_is_refused(l4: pv.Header) -> None:
    with pytest.raises(ValueError, match="needs an enclosing IP header"):
        pv.build(pv.Ethernet(), l4)


def test_build_fills_next_protocol_fields_of_the_headers_given() -> None:
    eth, vlan, ipv4, udp = pv.Ethernet(), pv.VLAN(), pv.IPv4(), pv.UDP()
    pv.build(eth, vlan, ipv4, udp)
    assert (eth.type, vlan.type, ipv4.proto) == (0x8100, 0x0800, 17)
    assert (udp.len, udp.chksum) == (None, None)  # computed on the wire, not stored


@pytest.mark.parametrize("version", [4, 6])
def test_udp_checksum_that_computes_to_zero_is_sent_as_ffff(version: int) -> None:
    # A 2-byte payload equal to the checksum of the same datagram with a zero
    # payload makes the ones'-complement sum 0xffff, so the checksum is 0.
    def layers(payload: bytes) -> list[pv.Header | bytes]:
        net = pv.IPv4(src=IP_A, dst=IP_B) if version == 4 else pv.IPv6(src=IP6_A, dst=IP6_B)
        return [
            pv.Ethernet(dst=MAC_A, src=MAC_B),
            net,
            pv.UDP(sport=PORT_A, dport=PORT_B),
            payload,
        ]

    probe = next(h for h in pv.parse(pv.build(*layers(b"\0\0"))) if isinstance(h, pv.UDP))
    assert probe.chksum is not None
    frame = pv.build(*layers(probe.chksum.to_bytes(2, "big")))
    udp = next(h for h in pv.parse(frame) if isinstance(h, pv.UDP))
    assert udp.chksum == 0xFFFF
    assert scapy_recomputed(Ether(frame))[UDP].chksum == 0xFFFF
    assert bytes(scapy_recomputed(Ether(frame))) == frame


# -- wrong checksums survive a round trip ---------------------------------------------


def _checksummed_cases() -> list[str]:
    return [
        name
        for name, case in sorted(CASES.items())
        if any(
            f.name in ("chksum", "cksum")
            for layer in scapy_layers(case.scapy())
            for f in layer.fields_desc
        )
    ]


@pytest.mark.parametrize("name", _checksummed_cases())
def test_wrong_checksums_parse_and_rebuild_byte_for_byte(name: str) -> None:
    pkt = CASES[name].scapy()
    correct = Ether(bytes(pkt))
    wrong = []
    for layer, good in zip(scapy_layers(pkt), scapy_layers(correct), strict=True):
        for fname in ("chksum", "cksum"):
            if any(f.name == fname for f in layer.fields_desc):
                bad = getattr(good, fname) ^ 0x5A5A
                setattr(layer, fname, bad)
                wrong.append(bad)
    frame = bytes(pkt)
    assert frame != bytes(correct)
    headers = pv.parse(frame)
    assert [h.chksum for h in headers if getattr(h, "chksum", None) is not None] == wrong
    assert headers == from_scapy(Ether(frame))
    assert pv.build(*headers) == frame


def test_wrong_lengths_parse_and_rebuild_byte_for_byte() -> None:
    pkt = ether() / IP(src=IP_A, dst=IP_B, len=1000) / UDP(sport=1, dport=2, len=3) / b"xyz"
    frame = bytes(pkt)
    headers = pv.parse(frame)
    ipv4, udp = headers[1:3]
    assert isinstance(ipv4, pv.IPv4)
    assert isinstance(udp, pv.UDP)
    assert (ipv4.len, udp.len) == (1000, 3)
    assert pv.build(*headers) == frame


# -- random field values, both directions ---------------------------------------------

ipv4_addr = st.ip_addresses(v=4).map(str)
# Mostly zero and 0xffff words, so that runs of zeros and IPv4-mapped forms are common.
ipv6_addr = st.lists(
    st.one_of(st.sampled_from([0, 0xFFFF]), st.integers(0, 0xFFFF)), min_size=8, max_size=8
).map(lambda words: socket.inet_ntop(socket.AF_INET6, struct.pack("!8H", *words)))
port = st.integers(0, 0xFFFF)
payload = st.binary(max_size=64)


@given(
    src=ipv4_addr,
    dst=ipv4_addr,
    tos=st.integers(0, 255),
    ttl=st.integers(0, 255),
    ident=st.integers(0, 0xFFFF),
    df=st.booleans(),
    sport=port,
    dport=port,
    seq=st.integers(0, 2**32 - 1),
    ack=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 0xFFF),  # the 9 flags and the 3 reserved bits above them
    window=port,
    urgptr=port,
    data=payload,
)
def test_random_ipv4_tcp_both_ways(
    src: str,
    dst: str,
    tos: int,
    ttl: int,
    ident: int,
    df: bool,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    urgptr: int,
    data: bytes,
) -> None:
    scapy_frame = bytes(
        ether()
        / IP(src=src, dst=dst, tos=tos, ttl=ttl, id=ident, flags="DF" if df else 0)
        / TCP(
            sport=sport,
            dport=dport,
            seq=seq,
            ack=ack,
            flags=flags & 0x1FF,
            reserved=flags >> 9,
            window=window,
            urgptr=urgptr,
        )
        / Raw(data)
    )
    ours = [
        pv.Ethernet(dst=MAC_A, src=MAC_B),
        pv.IPv4(src=src, dst=dst, tos=tos, ttl=ttl, id=ident, df=df),
        pv.TCP(
            sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window, urgptr=urgptr
        ),
        data,
    ]
    our_frame = pv.build(*ours)
    assert our_frame == scapy_frame
    parsed = pv.parse(scapy_frame)
    assert parsed == from_scapy(Ether(scapy_frame))
    assert pv.build(*parsed) == scapy_frame


@given(
    src=ipv6_addr,
    dst=ipv6_addr,
    tc=st.integers(0, 255),
    fl=st.integers(0, 0xFFFFF),
    hlim=st.integers(0, 255),
    sport=port,
    dport=port,
    data=payload,
)
def test_random_ipv6_udp_both_ways(
    src: str, dst: str, tc: int, fl: int, hlim: int, sport: int, dport: int, data: bytes
) -> None:
    scapy_frame = bytes(
        ether()
        / IPv6(src=src, dst=dst, tc=tc, fl=fl, hlim=hlim)
        / UDP(sport=sport, dport=dport)
        / Raw(data)
    )
    ours = [
        pv.Ethernet(dst=MAC_A, src=MAC_B),
        pv.IPv6(src=src, dst=dst, tc=tc, fl=fl, hlim=hlim),
        pv.UDP(sport=sport, dport=dport),
        data,
    ]
    assert pv.build(*ours) == scapy_frame
    parsed = pv.parse(scapy_frame)
    assert parsed == from_scapy(Ether(scapy_frame))
    assert pv.build(*parsed) == scapy_frame


@given(ipv6_addr)
def test_parsed_ipv6_addresses_print_as_inet_ntop(addr: str) -> None:
    frame = bytes(ether() / IPv6(src=addr, dst=addr, nh=59))
    parsed = pv.parse(frame)[1]
    assert isinstance(parsed, pv.IPv6)
    assert parsed.src == parsed.dst == socket.inet_ntop(socket.AF_INET6, ip6(addr))


# -- truncation and inconsistency -----------------------------------------------------

# What a ParseError must name when the first missing byte falls in a header.
TRUNCATION_NAMES: list[tuple[type[Packet], str]] = [
    (Ether, "Ethernet header"),
    (Dot3, "Ethernet header"),
    (Dot1Q, "VLAN tag"),
    (ARP, "ARP header"),
    (IP, "IPv4 (header|options)"),
    (IPv6, "IPv6 header"),
    (IPv6ExtHdrFragment, "IPv6 fragment header"),
    (IPv6ExtHdrHopByHop, "IPv6 extension header"),
    (IPv6ExtHdrDestOpt, "IPv6 extension header"),
    (IPv6ExtHdrRouting, "IPv6 extension header"),
    (AH, "IPv6 extension header"),
    (TCP, "TCP (header|options)"),
    (UDP, "UDP header"),
    (ICMP, "ICMP header"),
    (ICMPv6EchoRequest, "ICMPv6 (header|message)"),
    (ICMPv6EchoReply, "ICMPv6 (header|message)"),
    (ICMPv6ND_NS, "(ICMPv6 header|neighbour discovery message)"),
    (ICMPv6ND_NA, "(ICMPv6 header|neighbour discovery message)"),
    (ICMPv6NDOptSrcLLAddr, "neighbour discovery option"),
    (ICMPv6NDOptDstLLAddr, "neighbour discovery option"),
    (ICMPv6NDOptUnknown, "neighbour discovery option"),
]


ND_OPTIONS = (ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr, ICMPv6NDOptUnknown)


def header_spans(frame: bytes) -> list[tuple[int, int, str, type[Packet]]]:
    """(start, end, name pattern, scapy class) of every header in a frame, by scapy."""
    spans = []
    pos = 0
    for layer in scapy_layers(Ether(frame)):
        if isinstance(layer, Raw | Padding):
            break
        size = len(own_bytes(layer))
        if isinstance(layer, ICMPv6EchoRequest | ICMPv6EchoReply):
            size = 8
        name = next((n for cls, n in TRUNCATION_NAMES if isinstance(layer, cls)), None)
        if name is None:  # an unknown layer (LLC) is payload to us
            break
        spans.append((pos, pos + size, name, type(layer)))
        pos += size
    return spans


def test_truncated_frames_raise_parse_error_naming_the_header(case: Case) -> None:
    frame = bytes(case.scapy())
    spans = header_spans(frame)
    assert spans, "every case has headers"
    for start, end, name, cls in spans:
        for cut in range(start, end):
            if issubclass(cls, ND_OPTIONS) and cut == start:
                continue  # no option at all is a complete message
            with pytest.raises(ParseError, match=f"{name} truncated at offset {start}:"):
                pv.parse(frame[:cut])
    # Cut right after the last header: what is left parses without error.
    last = spans[-1][1]
    assert pv.build(*pv.parse(frame[:last])) == frame[:last]


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(ParseError, ValueError)
    with pytest.raises(
        ValueError, match=r"^Ethernet header truncated at offset 0: need 14 bytes, have 2$"
    ):
        pv.parse(b"\x01\x02")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (bytes(ether() / IP(version=5)), "IPv4 header with version 5"),
        (bytes(ether() / IP(ihl=4)), "IPv4 header length 4 is below 5"),
        (bytes(ether() / IPv6(version=4, src=IP6_A, dst=IP6_B)), "IPv6 header with version 4"),
        (bytes(ether() / IP(src=IP_A, dst=IP_B) / TCP(dataofs=4)), "TCP data offset 4"),
        (bytes(ether() / ARP(hwlen=8)) + bytes(8), "ARP with address lengths 8/4"),
        (
            bytes(
                ether()
                / IPv6(src=IP6_A, dst=IP6_B, hlim=255)
                / ICMPv6ND_NS(tgt="fe80::1")
                / ICMPv6NDOptUnknown(type=14, len=0, data=b"")
            ),
            "neighbour discovery option of length 0",
        ),
    ],
    ids=["ipv4-version", "ipv4-ihl", "ipv6-version", "tcp-dataofs", "arp-hlen", "nd-opt-len0"],
)
def test_inconsistent_headers_raise_parse_error(frame: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        pv.parse(frame)


# -- regressions: bugs these tests found (xfail until fixed in e3598c2) -------------


def test_nd_option_cut_after_one_byte_raises() -> None:
    frame = bytes(CASES["nd-solicitation-sll"].scapy())
    option_start = len(frame) - 8
    with pytest.raises(ParseError, match="neighbour discovery option"):
        pv.parse(frame[: option_start + 1])


def test_nd_options_keep_their_wire_order() -> None:
    frame = bytes(
        ether()
        / IPv6(src="fe80::a", dst="ff02::1:ff00:b", hlim=255)
        / ICMPv6ND_NS(tgt="fe80::b")
        / ICMPv6NDOptUnknown(type=14, len=1, data=b"nonce!")
        / ICMPv6NDOptSrcLLAddr(lladdr=MAC_A)
    )
    assert pv.build(*pv.parse(frame)) == frame


def test_ipv6_fragment_reserved_bits_rebuild_byte_for_byte() -> None:
    frame = bytes(
        ether()
        / IPv6(src=IP6_A, dst=IP6_B)
        / IPv6ExtHdrFragment(nh=17, res1=0x5A, res2=2, offset=3, id=9)
        / (b"z" * 16)
    )
    assert pv.build(*pv.parse(frame)) == frame


def test_routing_header_final_destination_is_in_the_pseudo_header() -> None:
    final = "2001:db8::f"
    routing = struct.pack("!BBI", 0, 1, 0) + ip6(final)
    frame = pv.build(
        pv.Ethernet(dst=MAC_A, src=MAC_B),
        pv.IPv6(src=IP6_A, dst=IP6_B),
        pv.IPv6ExtHeader(kind=43, data=routing),
        pv.UDP(sport=PORT_A, dport=PORT_B),
        b"routed",
    )
    dissected = Ether(frame)
    assert dissected[IPv6ExtHdrRouting].addresses == [final]
    assert dissected[IPv6ExtHdrRouting].segleft == 1
    assert dissected[UDP].chksum == scapy_recomputed(dissected)[UDP].chksum


@pytest.mark.parametrize(
    "routing",
    [
        IPv6ExtHdrRouting(addresses=["2001:db8::1", "2001:db8::f"], segleft=2),
        IPv6ExtHdrRouting(addresses=["2001:db8::1", "2001:db8::f"], segleft=0),
        IPv6ExtHdrSegmentRouting(addresses=["2001:db8::f", "2001:db8::1"], segleft=1),
        IPv6ExtHdrSegmentRouting(addresses=["2001:db8::f", "2001:db8::1"], segleft=0),
    ],
    ids=["type0-segleft2", "type0-segleft0", "srh-segleft1", "srh-segleft0"],
)
def test_upper_layer_checksum_behind_a_routing_header_is_scapys(routing: Packet) -> None:
    # scapy puts the final destination (last address for type 0, first for a
    # segment routing header) in the pseudo-header when segments are left.
    frame = bytes(
        ether() / IPv6(src=IP6_A, dst=IP6_B) / routing / UDP(sport=PORT_A, dport=PORT_B) / b"r"
    )
    headers = pv.parse(frame)
    udp = headers[-2]
    assert isinstance(udp, pv.UDP)
    assert udp.chksum == Ether(frame)[UDP].chksum
    udp.chksum = None
    assert pv.build(*headers) == frame
