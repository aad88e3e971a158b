"""The datapath runs tnl_push, tnl_pop and clone: what leaves, checked with scapy.

A push must produce a frame scapy reads as the outer header translation asked
for, with lengths, checksums and a per-flow UDP source port filled in; a pop
must hand the inner frame back to the datapath with the tunnel metadata in
its key, and drop (and count) what fails a check.
"""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import GRE as SCAPY_GRE
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN as SCAPY_VXLAN

from pyvswitch.dpif.actions import (
    OdpClone,
    OdpOutput,
    OdpTnlPop,
    OdpTnlPush,
    OdpTrunc,
    OdpUserspace,
)
from pyvswitch.dpif.actions_text import format_odp_actions, parse_odp_actions
from pyvswitch.dpif.datapath import Datapath, UpcallResult
from pyvswitch.dpif.execute import execute
from pyvswitch.dpif.tunnel_exec import (
    EGRESS_PORT_MAX,
    EGRESS_PORT_MIN,
    OVERSIZE_DROP,
    POP_ERROR,
    TunnelRuntime,
)
from pyvswitch.flow.layout import FIELDS, TNL_F_KEY
from pyvswitch.flow.odp_text import geneve_raw
from pyvswitch.packet.tunnel import (
    GRE,
    VXLAN,
    Geneve,
    GeneveOption,
    OuterIPv4,
    OuterUDP,
    TunnelHeader,
)

MACS = ("f8:bc:12:44:34:b6", "aa:55:aa:55:00:00")
INNER = bytes(
    Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
    / IP(src="198.51.100.1", dst="198.51.100.2")
    / ICMP()
    / (b"p" * 20)
)
VXLAN_HDR = TunnelHeader(
    *MACS, OuterIPv4("192.0.2.88", "192.0.2.92", 17), OuterUDP(0, 4789), VXLAN(123)
)
PUSH = OdpTnlPush(4789, VXLAN_HDR, 100)


def test_push_fills_lengths_checksum_and_a_source_port_in_range() -> None:
    runtime = TunnelRuntime()
    (port, wire), *rest = execute(INNER, (PUSH, OdpOutput(1)), runtime=runtime)
    assert (port, rest) == (1, [])
    pkt = Ether(wire)
    assert pkt[IP].src == "192.0.2.88"
    assert pkt[IP].dst == "192.0.2.92"
    assert pkt[IP].len == len(wire) - 14
    assert pkt[IP].flags == "DF"
    assert pkt[IP].id == 0
    assert pkt[IP].chksum == IP(bytes(pkt[IP]))[IP].chksum  # scapy's own view of it
    assert IP(bytes(pkt[IP])[:20] + bytes(pkt[IP])[20:]).chksum == pkt[IP].chksum
    assert pkt[UDP].dport == 4789
    assert pkt[UDP].len == len(wire) - 34
    assert pkt[UDP].chksum == 0
    assert EGRESS_PORT_MIN <= pkt[UDP].sport < EGRESS_PORT_MAX
    assert pkt[SCAPY_VXLAN].vni == 123
    assert bytes(pkt[SCAPY_VXLAN].payload) == INNER
    # One flow, one source port: a second packet of it leaves the same way.
    again = execute(INNER, (PUSH, OdpOutput(1)), runtime=runtime)[0][1]
    assert Ether(again)[UDP].sport == pkt[UDP].sport


def test_scapy_checks_the_ipv4_checksum_we_wrote() -> None:
    wire = execute(INNER, (PUSH, OdpOutput(1)), runtime=TunnelRuntime())[0][1]
    outer = Ether(wire)[IP]
    rebuilt = IP(bytes(outer))
    del rebuilt.chksum
    assert IP(bytes(rebuilt)).chksum == outer.chksum


def test_gre_push_numbers_packets_per_port_and_sums_them() -> None:
    header = TunnelHeader(
        *MACS, OuterIPv4("192.0.2.88", "192.0.2.92", 47), None, GRE(key=7, seq=0, csum=0)
    )
    runtime = TunnelRuntime()
    action = OdpTnlPush(3, header, 100)
    seqs = []
    for _ in range(3):
        pkt = Ether(execute(INNER, (action, OdpOutput(1)), runtime=runtime)[0][1])
        gre = pkt[SCAPY_GRE]
        assert gre.key == 7
        assert gre.chksum_present == 1
        raw = bytes(gre)
        rebuilt = SCAPY_GRE(raw)
        del rebuilt.chksum
        assert SCAPY_GRE(bytes(rebuilt)).chksum == gre.chksum
        seqs.append(gre.sequence_number)
    assert seqs == [0, 1, 2]


def test_clone_keeps_the_packet_for_the_actions_after_it() -> None:
    actions = (OdpClone((PUSH, OdpOutput(1))), OdpOutput(2))
    assert format_odp_actions(actions).startswith("clone(tnl_push(tnl_port(4789),")
    assert parse_odp_actions(format_odp_actions(actions)) == actions
    sent = execute(INNER, actions, runtime=TunnelRuntime())
    assert [port for port, _ in sent] == [1, 2]
    assert sent[1][1] == INNER
    assert SCAPY_VXLAN in Ether(sent[0][1])


def _datapath(popped: list[int]) -> Datapath:
    """Outer frames on port 1 pop to tunnel port 4789; inner frames go to port 5."""

    def upcall(key: int, frame: bytes, now: float) -> UpcallResult:
        if FIELDS["in_port"].get(key) == 1:
            return UpcallResult((OdpTnlPop(4789),), FIELDS["in_port"].mask)
        popped.append(key)
        return UpcallResult((OdpOutput(5),), FIELDS["in_port"].mask | FIELDS["tun_id"].mask)

    dp = Datapath(upcall, emc_insert_inv_prob=1)
    dp.tunnels.kinds[4789] = ("vxlan", 4789)
    return dp


def test_pop_looks_the_inner_frame_up_again_with_the_tunnel_in_its_key() -> None:
    popped: list[int] = []
    dp = _datapath(popped)
    wire = execute(INNER, (PUSH, OdpOutput(1)), runtime=TunnelRuntime())[0][1]
    for _ in range(2):
        assert dp.receive(1, [wire], 0.0) == {5: [INNER]}
    key = popped[0]
    assert len(popped) == 1  # the second time, both lookups hit the caches
    assert FIELDS["in_port"].get(key) == 4789
    assert FIELDS["tun_id"].get(key) == 123
    assert FIELDS["tun_src"].get(key) == 0xC0000258  # 192.0.2.88
    assert FIELDS["tun_dst"].get(key) == 0xC000025C
    assert FIELDS["tun_ttl"].get(key) == 64
    assert FIELDS["tun_tp_dst"].get(key) == 4789
    assert FIELDS["tun_flags"].get(key) == TNL_F_KEY  # no df on receive, as in OVS userspace
    assert FIELDS["dl_src"].get(key) == 0x505400000005


def test_bad_outer_headers_are_dropped_and_counted() -> None:
    dp = _datapath([])
    good = execute(INNER, (PUSH, OdpOutput(1)), runtime=TunnelRuntime())[0][1]
    bad_csum = good[:24] + bytes([good[24] ^ 0xFF]) + good[25:]
    no_i_flag = good[:42] + b"\x00" + good[43:]
    truncated = good[:45]
    assert dp.receive(1, [bad_csum, no_i_flag, truncated], 0.0) == {}
    assert dp.tunnels.coverage[POP_ERROR] == 3


def test_geneve_options_stay_in_the_popped_key_as_the_wire_had_them() -> None:
    """The datapath needs no TLV map: translation decides, by the bridge's map, what
    options mean and drops what it refuses (tests/scenario/test_tunnel_geneve_tlv.py)."""
    popped: list[int] = []
    dp = _datapath(popped)
    dp.tunnels.kinds[6081] = ("geneve", 6081)
    options = (GeneveOption(0x0102, 0x80, b"\x00\x00\x00\x0a"), GeneveOption(0xFFFF, 1))
    header = TunnelHeader(
        *MACS, OuterIPv4("192.0.2.88", "192.0.2.92", 17), OuterUDP(0, 6081), Geneve(5, options)
    )
    wire = execute(INNER, (OdpTnlPush(6081, header, 1), OdpOutput(1)), runtime=TunnelRuntime())[0][
        1
    ]

    def upcall(key: int, frame: bytes, now: float) -> UpcallResult:
        if FIELDS["in_port"].get(key) == 1:
            return UpcallResult((OdpTnlPop(6081),), FIELDS["in_port"].mask)
        popped.append(key)
        return UpcallResult((), FIELDS["in_port"].mask)

    dp.upcall = upcall
    dp.receive(1, [wire], 0.0)
    assert len(popped) == 1
    assert geneve_raw(popped[0]) == b"".join(option.build() for option in options)


def test_udp_frames_not_for_a_tunnel_port_are_not_popped() -> None:
    dp = _datapath([])
    plain = bytes(Ether() / IP(src="192.0.2.92", dst="192.0.2.88") / UDP(dport=4790) / (b"x" * 16))
    assert dp.receive(1, [plain], 0.0) == {}
    assert dp.tunnels.coverage[POP_ERROR] == 1


def _tcp(sport: int, flags: str = "S") -> bytes:
    return bytes(
        Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
        / IP(src="198.51.100.1", dst="198.51.100.2")
        / TCP(sport=sport, dport=80, flags=flags)
    )


def test_the_udp_source_port_spreads_flows_and_keeps_each_flow_on_one_port() -> None:
    runtime = TunnelRuntime()
    ports = {runtime.source_port(_tcp(sport)) for sport in range(1000, 1200)}
    # 200 connections over a range of 28232 ports: nearly all distinct.
    assert len(ports) > 190
    assert all(EGRESS_PORT_MIN <= port < EGRESS_PORT_MAX for port in ports)
    # A connection's SYN and its data must not take different paths.
    assert runtime.source_port(_tcp(1000, "S")) == runtime.source_port(_tcp(1000, "PA"))


def test_a_frame_too_large_for_any_ip_packet_is_dropped_not_raised() -> None:
    runtime = TunnelRuntime()
    huge = INNER[:14] + bytes(65522)
    assert execute(huge, (PUSH, OdpOutput(1)), runtime=runtime) == []
    assert runtime.coverage[OVERSIZE_DROP] == 1


def test_a_capture_inside_a_clone_sees_cache_hits() -> None:
    capture = OdpUserspace("pvs_capture(1)")
    seen: list[int] = []

    def upcall(key: int, frame: bytes, now: float) -> UpcallResult:
        return UpcallResult((OdpClone((capture, OdpOutput(2))), OdpOutput(3)), 0)

    dp = Datapath(upcall, emc_insert_inv_prob=1)
    dp.on_userspace = lambda upcalls: seen.append(len(upcalls))
    for _ in range(3):
        dp.receive(1, [INNER], 0.0)
    assert seen == [1, 1, 1]


def test_a_trunc_before_a_push_cuts_the_inner_packet() -> None:
    """As Open vSwitch's datapath applies a pending cut before it encapsulates."""
    [(_, wire)] = execute(INNER, (OdpTrunc(20), PUSH, OdpOutput(1)), runtime=TunnelRuntime())
    assert bytes(Ether(wire)[SCAPY_VXLAN].payload) == INNER[:20]


def test_a_trunc_before_a_clone_cuts_inside_it_and_not_after_it() -> None:
    actions = (OdpTrunc(20), OdpClone((PUSH, OdpOutput(1))), OdpOutput(2))
    assert format_odp_actions(actions).startswith("trunc(20),clone(tnl_push(")
    assert parse_odp_actions(format_odp_actions(actions)) == actions
    [(_, wire), (_, plain)] = execute(INNER, actions, runtime=TunnelRuntime())
    assert bytes(Ether(wire)[SCAPY_VXLAN].payload) == INNER[:20]
    assert plain == INNER


def test_a_trunc_inside_a_clone_after_the_push_cuts_the_outer_packet() -> None:
    """A mirror's snaplen on a tunnel port: the outer packet is cut where it leaves."""
    actions = (OdpClone((PUSH, OdpTrunc(60), OdpOutput(1))), OdpOutput(2))
    [(_, wire), (_, plain)] = execute(INNER, actions, runtime=TunnelRuntime())
    whole = execute(INNER, (PUSH, OdpOutput(1)), runtime=TunnelRuntime())[0][1]
    assert len(wire) == 60
    assert wire[:14] == whole[:14]
    assert plain == INNER
