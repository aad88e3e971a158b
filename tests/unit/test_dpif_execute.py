"""Executing datapath actions on frames, checked with scapy.

Every frame a set action produces is parsed by scapy, which must find the new
field values, and rebuilt with every checksum deleted: scapy recomputes them
from scratch, so equal bytes mean our incremental updates were right. The
``ovs``-marked tests in ``tests/interop/test_ovs_dpif_actions.py`` compare the
same bytes with what Open vSwitch itself sends.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import LLC, SNAP, Dot1AD, Dot1Q, Dot3, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Packet, Raw

from pyvswitch.dpif.actions import (
    OdpOutput,
    OdpPopVlan,
    OdpPushVlan,
    OdpSetField,
    OdpSetMasked,
    OdpTrunc,
    OdpUserspace,
)
from pyvswitch.dpif.execute import FIELD_HEADERS, execute, execute_batch, field_bits
from pyvswitch.packet.offload import VnetFrame, finish_offloads, vnet_header

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvswitch.dpif.actions import OdpAction

SRC = "50:54:00:00:00:05"
DST = "50:54:00:00:00:07"
PAYLOAD = bytes(range(40))


def eth() -> Packet:
    return Ether(src=SRC, dst=DST)


# Frame builders: name -> (L3 kind, L4 name, function of the L2 wrapper).
L3L4: dict[str, Callable[[], Packet]] = {
    "ip-tcp": lambda: (
        IP(src="192.0.2.1", dst="198.51.100.2", tos=0x25, ttl=64)
        / TCP(sport=1000, dport=80, flags="PA")
        / PAYLOAD
    ),
    "ip-udp": lambda: (
        IP(src="192.0.2.1", dst="198.51.100.2", ttl=64) / UDP(sport=1000, dport=53) / PAYLOAD
    ),
    "ip-icmp": lambda: IP(src="192.0.2.1", dst="198.51.100.2") / ICMP(type=8, code=0) / PAYLOAD,
    "ip-sctp": lambda: IP(src="192.0.2.1", dst="198.51.100.2") / SCTP(sport=5, dport=6) / PAYLOAD,
    "ip6-tcp": lambda: (
        IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x25, fl=0x12345)
        / TCP(sport=1000, dport=80)
        / PAYLOAD
    ),
    "ip6-udp": lambda: (
        IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=9) / UDP(sport=1000, dport=53) / PAYLOAD
    ),
    "ip6-icmp6": lambda: (
        IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(id=7, seq=1, data=PAYLOAD)
    ),
    "ip6-hbh-tcp": lambda: (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / TCP(sport=1, dport=2)
        / PAYLOAD
    ),
}
WRAPS: dict[str, Callable[[Packet], Packet]] = {
    "untagged": lambda p: eth() / p,
    "vlan": lambda p: eth() / Dot1Q(vlan=10, prio=3) / p,
    "qinq": lambda p: eth() / Dot1AD(vlan=100) / Dot1Q(vlan=10, prio=3) / p,
}
FRAMES = {
    f"{wrap}-{name}": bytes(wrapper(build()))
    for wrap, wrapper in WRAPS.items()
    for name, build in L3L4.items()
}


def strip_checksums(pkt: Packet) -> Packet:
    """A copy of ``pkt`` with every checksum deleted, so building recomputes them.

    A UDP checksum of 0 over IPv4 means "none" and is kept.
    """
    copy = pkt.copy()
    layer: Packet = copy
    while layer and not isinstance(layer, Raw):
        names = [n for n in ("chksum", "cksum") if n in layer.fields]
        for name in names:
            if not (isinstance(layer, UDP) and layer.chksum == 0 and IP in copy):
                delattr(layer, name)
        if names and not isinstance(layer, IP):
            # This is the L4 header. Scapy decodes an ICMP error's payload as
            # an inner packet and would rebuild that too: keep it as bytes.
            if layer.payload:
                inner = bytes(layer.payload)
                layer.remove_payload()
                layer.add_payload(Raw(inner))
            break
        layer = layer.payload
    return copy


def checksums_valid(frame: bytes) -> bool:
    return bytes(strip_checksums(Ether(frame))) == frame


@pytest.mark.parametrize("frame_name", sorted(FRAMES))
def test_the_checksum_check_catches_a_bad_checksum(frame_name: str) -> None:
    frame = FRAMES[frame_name]
    assert checksums_valid(frame)
    # The last byte is payload, which every L4 checksum here covers.
    assert not checksums_valid(frame[:-1] + bytes((frame[-1] ^ 1,)))
    wrap, l3, _ = frame_name.split("-", 2)
    if l3 == "ip":
        # A changed TTL leaves the IPv4 header checksum wrong.
        ttl = {"untagged": 14, "vlan": 18, "qinq": 22}[wrap] + 8
        assert not checksums_valid(frame[:ttl] + bytes((frame[ttl] ^ 1,)) + frame[ttl + 1 :])


# Reading fields back with scapy, to check a set action did what it says.
def read_field(frame: bytes, field: str) -> int | None:
    pkt = Ether(frame)
    ip4 = pkt.getlayer(IP)
    ip6 = pkt.getlayer(IPv6)
    l4 = next((pkt.getlayer(c) for c in (TCP, UDP, SCTP) if c in pkt), None)
    if field in ("dl_src", "dl_dst"):
        return int(getattr(pkt, field[3:]).replace(":", ""), 16)
    if field in ("nw_src", "nw_dst"):
        return int(ipaddress.IPv4Address(getattr(ip4, field[3:]))) if ip4 else None
    if field in ("ipv6_src", "ipv6_dst"):
        return int(ipaddress.IPv6Address(getattr(ip6, field[5:]))) if ip6 else None
    if field == "ipv6_label":
        return int(ip6.fl) if ip6 else None
    if field == "nw_tos":
        return int(ip4.tos) if ip4 else int(ip6.tc) if ip6 else None
    if field == "nw_ttl":
        return int(ip4.ttl) if ip4 else int(ip6.hlim) if ip6 else None
    if l4 is not None:
        return int(l4.sport if field == "tp_src" else l4.dport)
    # ICMP and ICMPv6: scapy picks a class by type, so read the first two bytes.
    ip = ip4 if ip4 is not None else ip6
    if ip is not None and ip.payload:
        raw = bytes(ip.payload)
        return raw[0] if field == "tp_src" else raw[1]
    return None


def fields_for(name: str) -> list[str]:
    """The fields a set action can change in a frame built from ``L3L4[name]``."""
    fields = ["dl_src", "dl_dst", "nw_tos", "nw_ttl", "tp_src", "tp_dst"]
    if name.startswith("ip6"):
        fields += ["ipv6_src", "ipv6_dst", "ipv6_label"]
    else:
        fields += ["nw_src", "nw_dst"]
    return fields


NEW = {
    "dl_src": 0x0A0B0C0D0E0F,
    "dl_dst": 0x020000000001,
    "nw_src": 0x0A000001,
    "nw_dst": 0xCB007109,
    "nw_tos": 0xB8,
    "nw_ttl": 7,
    "ipv6_src": int(ipaddress.IPv6Address("fd00::1234:5678")),
    "ipv6_dst": int(ipaddress.IPv6Address("2001:db8:ffff::9")),
    "ipv6_label": 0xABCDE,
    "tp_src": 4242,
    "tp_dst": 8080,
}


# -- outputs, VLANs --------------------------------------------------------------


def test_outputs_only_send_the_same_frame_object_in_order() -> None:
    frame = FRAMES["untagged-ip-tcp"]
    out = execute(frame, [OdpOutput(2), OdpOutput(3), OdpOutput(2)])
    assert [p for p, _ in out] == [2, 3, 2]
    assert all(f is frame for _, f in out)


def test_no_actions_is_drop() -> None:
    assert execute(FRAMES["untagged-ip-tcp"], []) == []
    assert execute_batch([FRAMES["untagged-ip-tcp"]], []) == {}


def test_push_vlan_inserts_a_tag_after_the_macs() -> None:
    frame = FRAMES["untagged-ip-udp"]
    [(port, out)] = execute(frame, [OdpPushVlan(vid=10, pcp=5), OdpOutput(2)])
    assert port == 2
    assert out == frame[:12] + bytes.fromhex("8100a00a") + frame[12:]
    pkt = Ether(out)
    assert (pkt[Dot1Q].vlan, pkt[Dot1Q].prio, pkt[Dot1Q].dei) == (10, 5, 0)


def test_push_vlan_onto_a_tagged_frame_makes_qinq_with_the_new_tag_outermost() -> None:
    frame = FRAMES["vlan-ip-udp"]
    [(_, out)] = execute(frame, [OdpPushVlan(vid=100, tpid=0x88A8), OdpOutput(1)])
    assert out == frame[:12] + bytes.fromhex("88a80064") + frame[12:]
    pkt = Ether(out)
    assert pkt[Dot1AD].vlan == 100
    assert pkt[Dot1Q].vlan == 10


def test_pop_vlan_removes_the_outermost_tag_and_is_a_no_op_when_untagged() -> None:
    qinq = FRAMES["qinq-ip-tcp"]
    [(_, once), (_, twice), (_, thrice)] = execute(
        qinq, [OdpPopVlan(), OdpOutput(1), OdpPopVlan(), OdpOutput(1), OdpPopVlan(), OdpOutput(1)]
    )
    assert once == FRAMES["vlan-ip-tcp"]
    assert twice == FRAMES["untagged-ip-tcp"]
    assert thrice == twice


def test_each_output_sends_the_frame_as_it_is_at_that_point() -> None:
    frame = FRAMES["untagged-ip-tcp"]
    actions: list[OdpAction] = [
        OdpOutput(1),
        OdpPushVlan(vid=10),
        OdpOutput(2),
        OdpSetField("nw_ttl", 3),
        OdpOutput(3),
        OdpPopVlan(),
        OdpOutput(4),
    ]
    out = dict(execute(frame, actions))
    assert out[1] == frame
    assert Ether(out[2])[Dot1Q].vlan == 10
    assert Ether(out[2])[IP].ttl == 64
    assert Ether(out[3])[IP].ttl == 3
    assert Dot1Q in Ether(out[3])
    assert Dot1Q not in Ether(out[4])
    assert Ether(out[4])[IP].ttl == 3
    assert all(checksums_valid(f) for f in out.values())


def test_sets_after_a_push_or_pop_find_the_moved_headers() -> None:
    frame = FRAMES["vlan-ip-udp"]
    actions: list[OdpAction] = [
        OdpPushVlan(vid=7),
        OdpPushVlan(vid=8, tpid=0x88A8),
        OdpSetField("nw_src", NEW["nw_src"]),
        OdpOutput(1),
        OdpPopVlan(),
        OdpPopVlan(),
        OdpPopVlan(),
        OdpSetField("tp_dst", 9),
        OdpOutput(2),
    ]
    out = dict(execute(frame, actions))
    assert read_field(out[1], "nw_src") == NEW["nw_src"]
    assert read_field(out[2], "nw_src") == NEW["nw_src"]
    assert read_field(out[2], "tp_dst") == 9
    assert Dot1Q not in Ether(out[2])
    assert checksums_valid(out[1])
    assert checksums_valid(out[2])


# -- set actions --------------------------------------------------------------------


@pytest.mark.parametrize("frame_name", sorted(FRAMES))
def test_every_settable_field_changes_and_checksums_stay_valid(frame_name: str) -> None:
    frame = FRAMES[frame_name]
    name = frame_name.split("-", 1)[1]
    for field in fields_for(name):
        value = NEW[field]
        if name.endswith(("icmp", "icmp6")) and field.startswith("tp_"):
            value &= 0xFF
        [(_, out)] = execute(frame, [OdpSetField(field, value), OdpOutput(1)])
        assert read_field(out, field) == value, field
        assert checksums_valid(out), field
        assert len(out) == len(frame)


def test_all_fields_at_once() -> None:
    frame = FRAMES["qinq-ip-tcp"]
    actions = [OdpSetField(f, NEW[f]) for f in fields_for("ip-tcp")]
    [(_, out)] = execute(frame, [*actions, OdpOutput(1)])
    for f in fields_for("ip-tcp"):
        assert read_field(out, f) == NEW[f]
    assert checksums_valid(out)


def test_masked_dscp_keeps_ecn_and_masked_ecn_keeps_dscp() -> None:
    frame = FRAMES["untagged-ip-tcp"]  # ToS 0x25: DSCP 9, ECN 1
    [(_, dscp)] = execute(frame, [OdpSetMasked("nw_tos", 0x20, 0xFC), OdpOutput(1)])
    assert Ether(dscp)[IP].tos == 0x21
    [(_, ecn)] = execute(frame, [OdpSetMasked("nw_tos", 0x02, 0x03), OdpOutput(1)])
    assert Ether(ecn)[IP].tos == 0x26
    six = FRAMES["vlan-ip6-tcp"]
    [(_, tclass)] = execute(six, [OdpSetMasked("nw_tos", 0xFF, 0xFC, "ipv6"), OdpOutput(1)])
    assert Ether(tclass)[IPv6].tc == 0xFD
    assert Ether(tclass)[IPv6].fl == 0x12345
    assert all(checksums_valid(f) for f in (dscp, ecn, tclass))


def test_masked_addresses() -> None:
    frame = FRAMES["untagged-ip-udp"]
    [(_, out)] = execute(
        frame,
        [
            OdpSetMasked("nw_src", 0x0A000000, 0xFF000000),
            OdpSetMasked("dl_dst", 0x010000000000, 0x010000000000),
            OdpOutput(1),
        ],
    )
    pkt = Ether(out)
    assert pkt[IP].src == "10.0.2.1"
    assert pkt.dst == "51:54:00:00:00:07"
    assert checksums_valid(out)


def test_a_masked_set_changes_only_the_bits_of_its_mask() -> None:
    # OVS's userspace datapath would OR in the value's other bits (0x1234 ->
    # port 0x1235 here); we deliberately follow OdpSetMasked's meaning.
    frame = FRAMES["untagged-ip-udp"]  # source port 1000 = 0x03e8
    [(_, out)] = execute(frame, [OdpSetMasked("tp_src", 0x1234, 0xFF00), OdpOutput(1)])
    assert Ether(out)[UDP].sport == 0x12E8
    assert checksums_valid(out)


def test_udp_checksum_of_zero_stays_zero_over_ipv4() -> None:
    pkt = eth() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2, chksum=0) / PAYLOAD
    frame = bytes(pkt)
    actions: list[OdpAction] = [
        OdpSetField("nw_src", NEW["nw_src"]),
        OdpSetField("nw_dst", NEW["nw_dst"]),
        OdpSetField("tp_src", 9),
        OdpSetField("tp_dst", 10),
        OdpOutput(1),
    ]
    [(_, out)] = execute(frame, actions)
    udp = Ether(out)[UDP]
    assert udp.chksum == 0
    assert (udp.sport, udp.dport) == (9, 10)
    assert checksums_valid(out)


def test_udp_checksum_that_an_update_makes_zero_is_sent_as_ffff() -> None:
    frame = FRAMES["untagged-ip-udp"]
    csum = Ether(frame)[UDP].chksum
    # RFC 1624: the new checksum is ~(~csum + ~old + new); choose the new port
    # that makes it zero.
    old = 1000
    new = (0xFFFF - (~csum & 0xFFFF) - (~old & 0xFFFF)) % 0xFFFF
    [(_, out)] = execute(frame, [OdpSetField("tp_src", new), OdpOutput(1)])
    assert Ether(out)[UDP].sport == new
    assert Ether(out)[UDP].chksum == 0xFFFF
    assert checksums_valid(out)


def test_icmpv6_checksum_follows_address_changes() -> None:
    frame = FRAMES["vlan-ip6-icmp6"]
    [(_, out)] = execute(
        frame,
        [OdpSetField("ipv6_src", NEW["ipv6_src"]), OdpSetField("ipv6_dst", 1), OdpOutput(1)],
    )
    assert Ether(out)[IPv6].dst == "::1"
    assert Ether(out)[ICMPv6EchoRequest].cksum != Ether(frame)[ICMPv6EchoRequest].cksum
    assert checksums_valid(out)


def test_sctp_port_change_recomputes_the_crc() -> None:
    frame = FRAMES["untagged-ip-sctp"]
    [(_, out)] = execute(frame, [OdpSetField("tp_src", 7, "sctp"), OdpOutput(1)])
    assert Ether(out)[SCTP].sport == 7
    assert checksums_valid(out)


def test_a_wrong_sctp_crc_stays_exactly_as_wrong() -> None:
    good = Ether(FRAMES["untagged-ip-sctp"])
    bad = good.copy()
    bad[SCTP].chksum = good[SCTP].chksum ^ 0x00FF0000
    [(_, out)] = execute(bytes(bad), [OdpSetField("tp_dst", 99), OdpOutput(1)])
    fixed = Ether(bytes(strip_checksums(Ether(out))))
    assert Ether(out)[SCTP].chksum ^ fixed[SCTP].chksum == 0x00FF0000


def test_icmp_type_and_code() -> None:
    frame = FRAMES["vlan-ip-icmp"]
    [(_, out)] = execute(
        frame, [OdpSetField("tp_src", 0, "icmp"), OdpSetField("tp_dst", 3, "icmp"), OdpOutput(1)]
    )
    assert (Ether(out)[ICMP].type, Ether(out)[ICMP].code) == (0, 3)
    assert checksums_valid(out)


def test_named_headers_leave_other_headers_alone() -> None:
    cases = [
        ("untagged-ip6-tcp", OdpSetField("nw_ttl", 1, "ipv4")),
        ("untagged-ip-tcp", OdpSetField("nw_ttl", 1, "ipv6")),
        ("untagged-ip-tcp", OdpSetField("tp_src", 1, "udp")),
        ("untagged-ip-udp", OdpSetField("tp_src", 1, "tcp")),
        ("untagged-ip-tcp", OdpSetField("tp_src", 1, "icmp")),
        ("untagged-ip6-tcp", OdpSetField("nw_src", 1)),
        ("untagged-ip-tcp", OdpSetField("ipv6_src", 1)),
    ]
    for name, action in cases:
        frame = FRAMES[name]
        assert execute(frame, [action, OdpOutput(1)]) == [(1, frame)], (name, action)


def test_setting_a_field_to_its_value_changes_nothing() -> None:
    frame = FRAMES["vlan-ip-tcp"]
    pkt = Ether(frame)
    same = [
        OdpSetField("nw_src", int(ipaddress.IPv4Address(pkt[IP].src))),
        OdpSetField("nw_ttl", pkt[IP].ttl),
        OdpSetField("tp_dst", pkt[TCP].dport),
    ]
    assert execute(frame, [*same, OdpOutput(1)]) == [(1, frame)]


def test_ipv6_extension_headers_are_skipped_to_the_l4_checksum() -> None:
    frame = FRAMES["qinq-ip6-hbh-tcp"]
    [(_, out)] = execute(frame, [OdpSetField("ipv6_dst", 5), OdpOutput(1)])
    assert checksums_valid(out)


def test_routing_header_with_segments_left_keeps_the_final_destination() -> None:
    pkt = (
        eth()
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrRouting(addresses=["2001:db8::99"], segleft=1)
        / UDP(sport=1, dport=2)
        / PAYLOAD
    )
    frame = bytes(pkt)
    # The pseudo-header holds the routing header's final destination, so a
    # destination rewrite leaves the UDP checksum; a source rewrite changes it.
    before = Ether(frame)[UDP].chksum
    [(_, out)] = execute(frame, [OdpSetField("ipv6_dst", 5), OdpOutput(1)])
    assert Ether(out)[UDP].chksum == before
    assert checksums_valid(out)
    [(_, out)] = execute(frame, [OdpSetField("ipv6_src", 5), OdpOutput(1)])
    assert Ether(out)[UDP].chksum != before
    assert checksums_valid(out)


@pytest.mark.parametrize(
    "pkt",
    [
        eth() / IP(src="192.0.2.1", dst="192.0.2.2", proto=6, frag=100) / PAYLOAD,
        eth()
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(nh=17, offset=100)
        / PAYLOAD,
    ],
    ids=["ipv4", "ipv6"],
)
def test_later_fragments_payload_is_not_touched(pkt: Packet) -> None:
    # Open vSwitch 3.1 rewrites two payload bytes here (a checksum that is
    # not there); we deliberately do not.
    frame = bytes(pkt)
    field = "nw_src" if IP in pkt else "ipv6_src"
    [(_, out)] = execute(frame, [OdpSetField(field, 0x0A0A0A0A), OdpOutput(1)])
    assert out.endswith(PAYLOAD)
    assert checksums_valid(out)


def test_frames_through_llc_snap_are_rewritten() -> None:
    inner = LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800) / IP() / TCP()
    # An 802.3 frame: the type field holds the length.
    pkt = Dot3(src=SRC, dst=DST, len=len(inner)) / inner
    [(_, out)] = execute(bytes(pkt), [OdpSetField("nw_ttl", 9), OdpOutput(1)])
    rebuilt = Dot3(out)
    assert rebuilt[IP].ttl == 9
    assert bytes(strip_checksums(rebuilt)) == out


def test_an_ip_header_with_a_bad_length_is_rewritten_but_l4_is_not_touched() -> None:
    # The datapath's L3 offset is known but its sanity check failed, so only
    # the IP header changes, as in OVS.
    frame = bytearray(FRAMES["untagged-ip-tcp"])
    frame[16:18] = (len(frame) + 100).to_bytes(2, "big")
    [(_, out)] = execute(bytes(frame), [OdpSetField("nw_src", 0x0A000001), OdpOutput(1)])
    assert out[26:30] == bytes((10, 0, 0, 1))
    assert out[34:] == frame[34:]


def test_userspace_actions_report_the_frame_as_it_is_then() -> None:
    frame = FRAMES["untagged-ip-tcp"]
    up = OdpUserspace("slow_path(action)")
    upcalls: list[tuple[OdpUserspace, bytes]] = []
    out = execute(frame, [OdpSetField("nw_ttl", 1), up, OdpOutput(2)], upcalls)
    assert [p for p, _ in out] == [2]
    assert upcalls == [(up, out[0][1])]
    assert execute(frame, [up]) == []


def test_malformed_actions_raise_before_touching_a_frame() -> None:
    with pytest.raises(ValueError, match="cannot set vlan_tci"):
        execute(b"", [OdpSetField("vlan_tci", 1)])
    with pytest.raises(ValueError, match="cannot set nw_src in ipv6"):
        execute_batch([b""], [OdpSetField("nw_src", 1, "ipv6")])


# -- batches --------------------------------------------------------------------------


def test_batch_returns_new_per_port_lists_in_batch_order() -> None:
    frames = [FRAMES["untagged-ip-tcp"], FRAMES["vlan-ip-udp"], FRAMES["qinq-ip6-tcp"]]
    out = execute_batch(frames, [OdpOutput(3), OdpOutput(1)])
    assert list(out) == [3, 1]
    assert out[3] == frames
    assert out[1] == frames
    assert out[3] is not frames
    assert out[1] is not out[3]


@pytest.mark.parametrize(
    "actions",
    [
        [OdpOutput(2), OdpOutput(2)],
        [OdpPushVlan(5), OdpOutput(2), OdpPopVlan(), OdpOutput(3)],
        [
            OdpOutput(1),
            OdpSetField("nw_ttl", 1),
            OdpOutput(2),
            OdpSetField("dl_src", 5),
            OdpOutput(1),
        ],
    ],
)
def test_batch_equals_one_frame_at_a_time(actions: list[OdpAction]) -> None:
    frames = list(FRAMES.values())
    expected: dict[int, list[bytes]] = {}
    for frame in frames:
        for port, sent in execute(frame, actions):
            expected.setdefault(port, []).append(sent)
    assert execute_batch(frames, actions) == expected


# -- property tests ---------------------------------------------------------------------


@st.composite
def set_actions(draw: st.DrawFn, name: str) -> list[OdpSetField | OdpSetMasked]:
    """Random exact and masked set actions for the fields a frame ``name`` has."""
    actions: list[OdpSetField | OdpSetMasked] = []
    for _ in range(draw(st.integers(1, 4))):
        field = draw(st.sampled_from(fields_for(name)))
        header = ""
        if field.startswith("tp_") and name.endswith(("icmp", "icmp6")):
            header = "icmp" if name.startswith("ip-") else "icmpv6"
        bits = field_bits(field, header)
        value = draw(st.integers(0, (1 << bits) - 1))
        if draw(st.booleans()):
            actions.append(OdpSetField(field, value, header))
        else:
            mask = draw(st.integers(0, (1 << bits) - 1))
            actions.append(OdpSetMasked(field, value, mask, header))
    return actions


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_random_field_values_keep_every_checksum_valid(data: st.DataObject) -> None:
    frame_name = data.draw(st.sampled_from(sorted(FRAMES)))
    name = frame_name.split("-", 1)[1]
    frame = FRAMES[frame_name]
    actions = data.draw(set_actions(name))
    [(_, out)] = execute(frame, [*actions, OdpOutput(1)])
    assert checksums_valid(out)
    # The last action on each field decides its value (on the bits it masks).
    expected: dict[str, int] = {}
    for action in actions:
        old = expected.get(action.field, read_field(frame, action.field))
        assert old is not None
        mask = action.mask if isinstance(action, OdpSetMasked) else -1
        expected[action.field] = (old & ~mask) | (action.value & mask)
    for field, value in expected.items():
        assert read_field(out, field) == value, field


ANY_ACTION = st.one_of(
    st.builds(OdpOutput, st.integers(0, 5)),
    st.builds(
        OdpPushVlan, st.integers(0, 4095), st.integers(0, 7), st.sampled_from([0x8100, 0x88A8])
    ),
    st.just(OdpPopVlan()),
    st.builds(
        OdpSetMasked,
        st.sampled_from(sorted(FIELD_HEADERS)),
        st.integers(0, (1 << 128) - 1),
        st.integers(0, (1 << 128) - 1),
    ),
    st.builds(
        OdpSetField,
        st.sampled_from(["tp_src", "tp_dst"]),
        st.integers(0, 65535),
        st.sampled_from(["", "tcp", "udp", "sctp", "icmp", "icmpv6"]),
    ),
)


@settings(max_examples=600, deadline=None)
@given(st.data(), st.lists(ANY_ACTION, max_size=8))
def test_truncated_and_damaged_frames_never_raise(
    data: st.DataObject, actions: list[OdpAction]
) -> None:
    frame = data.draw(st.sampled_from(sorted(FRAMES.values())))
    how = data.draw(st.sampled_from(["cut", "garble", "random"]))
    if how == "cut":
        frame = frame[: data.draw(st.integers(0, len(frame)))]
    elif how == "garble":
        pos = data.draw(st.integers(0, len(frame) - 1))
        frame = frame[:pos] + data.draw(st.binary(min_size=1, max_size=8)) + frame[pos + 1 :]
    else:
        frame = data.draw(st.binary(max_size=80))
    out = execute(frame, [*actions, OdpOutput(9)])
    assert out[-1][0] == 9
    pushes = sum(isinstance(a, OdpPushVlan) for a in actions)
    assert len(out[-1][1]) <= len(frame) + 4 * pushes
    assert execute_batch([frame, frame], actions) == execute_batch([frame, frame], actions)


# -- frames that carry offload work (a virtio-net header) ------------------------------


def _partial_tcp(payload: bytes, vlan: int | None = None) -> tuple[VnetFrame, bytes]:
    """A TCP segment whose checksum was left to the device, as a veth hands it
    on: the checksum field holds only the pseudo-header sum. Returns the frame
    and the fully checksummed frame scapy builds for comparison."""
    l2: Packet = Ether(src=SRC, dst=DST) / Dot1Q(vlan=vlan) if vlan else Ether(src=SRC, dst=DST)
    full = bytes(
        l2 / IP(src="192.0.2.1", dst="198.51.100.2") / TCP(sport=1000, dport=80) / payload
    )
    l4 = 14 + (4 if vlan else 0) + 20
    pseudo = ip_pseudo(full, l4)
    partial = full[: l4 + 16] + pseudo.to_bytes(2, "big") + full[l4 + 18 :]
    header = vnet_header(needs_csum=True, csum_start=l4, csum_offset=16)
    return VnetFrame(partial, header), full


def ip_pseudo(frame: bytes, l4: int) -> int:
    """The folded, uncomplemented pseudo-header sum Linux leaves in a partial checksum."""
    ip = frame[l4 - 20 : l4]
    total = sum(int.from_bytes(ip[i : i + 2], "big") for i in range(12, 20, 2))
    total += 6 + len(frame) - l4
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _vnet_fields(frame: bytes) -> tuple[int, ...]:
    assert type(frame) is VnetFrame
    return tuple(struct.unpack("=BBHHHH", frame.vnet))


def test_an_offloaded_frame_keeps_its_header_through_outputs() -> None:
    frame, _ = _partial_tcp(PAYLOAD)
    [(_, out)] = execute(frame, [OdpOutput(2)])
    assert out is frame
    assert execute_batch([frame], [OdpOutput(2)])[2][0] is frame


@pytest.mark.parametrize("batch", [False, True])
def test_push_and_pop_vlan_move_the_checksum_start_with_the_l4_header(batch: bool) -> None:
    frame, full = _partial_tcp(PAYLOAD)
    actions: list[OdpAction] = [
        OdpPushVlan(vid=10, pcp=0),
        OdpOutput(2),
        OdpPopVlan(),
        OdpOutput(3),
    ]
    if batch:
        sent = execute_batch([frame], actions)
        pushed, popped = sent[2][0], sent[3][0]
    else:
        (_, pushed), (_, popped) = execute(frame, actions)
    assert _vnet_fields(pushed)[4] == 14 + 4 + 20
    assert _vnet_fields(popped)[4] == 14 + 20
    # Completing the work where the header now says gives scapy's checksums.
    [done_pushed] = finish_offloads(pushed)
    assert done_pushed == full[:12] + bytes.fromhex("8100000a") + full[12:]
    [done_popped] = finish_offloads(popped)
    assert done_popped == full


def test_a_gso_frame_keeps_its_header_length_in_step_with_a_pushed_tag() -> None:
    frame, _ = _partial_tcp(bytes(3000))
    gso = vnet_header(
        needs_csum=True, csum_start=34, csum_offset=16, gso_type=1, gso_size=1000, hdr_len=54
    )
    [(_, out)] = execute(VnetFrame(bytes(frame), gso), [OdpPushVlan(vid=7), OdpOutput(1)])
    _, gso_type, hdr_len, gso_size, csum_start, _ = _vnet_fields(out)
    assert (gso_type, hdr_len, gso_size, csum_start) == (1, 58, 1000, 38)
    segments = [Ether(s) for s in finish_offloads(out)]
    assert [len(s[TCP].payload) for s in segments] == [1000, 1000, 1000]
    assert all(s[Dot1Q].vlan == 7 for s in segments)
    for seg in segments:
        recomputed = Ether(bytes(seg))
        del recomputed[TCP].chksum
        assert Ether(bytes(recomputed))[TCP].chksum == seg[TCP].chksum


def test_rewriting_l3_fields_of_an_offloaded_frame_finishes_the_work_first() -> None:
    frame, _ = _partial_tcp(bytes(2500))
    gso = vnet_header(
        needs_csum=True, csum_start=34, csum_offset=16, gso_type=1, gso_size=1000, hdr_len=54
    )
    sent = execute(VnetFrame(bytes(frame), gso), [OdpSetField("nw_dst", 0xC0000263), OdpOutput(4)])
    assert [len(Ether(f)[TCP].payload) for _, f in sent] == [1000, 1000, 500]
    for _, data in sent:
        assert type(data) is bytes
        pkt = Ether(data)
        assert pkt[IP].dst == "192.0.2.99"
        check = Ether(data)
        del check[IP].chksum
        del check[TCP].chksum
        rebuilt = Ether(bytes(check))
        assert (rebuilt[IP].chksum, rebuilt[TCP].chksum) == (pkt[IP].chksum, pkt[TCP].chksum)


# -- trunc --------------------------------------------------------------------------


def test_trunc_cuts_only_the_next_output() -> None:
    frame = FRAMES["untagged-ip-tcp"]
    actions: list[OdpAction] = [OdpTrunc(20), OdpOutput(1), OdpOutput(2), OdpTrunc(30)]
    actions += [OdpPushVlan(vid=5), OdpOutput(3), OdpOutput(4)]
    sent = execute(frame, actions)
    assert [(port, len(data)) for port, data in sent] == [
        (1, 20),
        (2, len(frame)),
        (3, 30),
        (4, len(frame) + 4),
    ]
    assert sent[0][1] == frame[:20]
    # The tag pushed after the trunc is inside the 30 bytes kept.
    assert sent[2][1] == (frame[:12] + bytes.fromhex("81000005") + frame[12:])[:30]


def test_trunc_longer_than_the_frame_changes_nothing() -> None:
    frame = FRAMES["untagged-ip-udp"]
    assert execute(frame, [OdpTrunc(65535), OdpOutput(1)]) == [(1, frame)]


def test_trunc_applies_after_the_sets_between_it_and_the_output() -> None:
    frame = FRAMES["untagged-ip-udp"]
    [(_, data)] = execute(frame, [OdpTrunc(40), OdpSetField("nw_ttl", 9), OdpOutput(1)])
    assert data == execute(frame, [OdpSetField("nw_ttl", 9), OdpOutput(1)])[0][1][:40]


def test_trunc_cuts_what_a_userspace_action_hands_over_and_is_then_spent() -> None:
    frame = FRAMES["untagged-ip-udp"]
    upcalls: list[tuple[OdpUserspace, bytes]] = []
    user = OdpUserspace("pvs_capture(id=1,dir=out)")
    sent = execute(frame, [OdpTrunc(20), user, OdpOutput(1)], upcalls)
    assert upcalls == [(user, frame[:20])]
    assert sent == [(1, frame)]


def test_trunc_in_a_batch_cuts_each_frame() -> None:
    frames = [FRAMES["untagged-ip-udp"], FRAMES["untagged-ip-tcp"]]
    out = execute_batch(frames, [OdpTrunc(16), OdpOutput(1), OdpOutput(2)])
    assert out == {1: [f[:16] for f in frames], 2: frames}


def test_trunc_of_an_offloaded_frame_cuts_each_finished_segment() -> None:
    """A cut super-frame would carry offload work its bytes no longer match."""
    frame, _ = _partial_tcp(bytes(2500))
    gso = vnet_header(
        needs_csum=True, csum_start=34, csum_offset=16, gso_type=1, gso_size=1000, hdr_len=54
    )
    sent = execute(VnetFrame(bytes(frame), gso), [OdpTrunc(60), OdpOutput(4), OdpOutput(5)])
    segments = finish_offloads(VnetFrame(bytes(frame), gso))
    assert [(port, data) for port, data in sent] == [
        pair for seg in segments for pair in ((4, bytes(seg)[:60]), (5, bytes(seg)))
    ]
    assert all(type(data) is bytes for _, data in sent)
