"""The tunnel port map: identities, shared datapath ports, receive and send, as OVS 3.1.

The expected listings were printed by OVS 3.1 for the same ports (added in
this order, one transaction each, to a dummy bridge);
tests/interop/test_ovs_vport_config.py asks OVS again.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from pyvswitch.flow.flow import Flow
from pyvswitch.flow.layout import FIELDS, TNL_F_CSUM, TNL_F_DONT_FRAGMENT, TNL_F_KEY, TNL_F_OAM
from pyvswitch.ofproto.tnl_config import TunnelConfig, parse_tunnel_options
from pyvswitch.ofproto.tnl_ports import TunnelPortExistsError, TunnelPorts

# (name, type, options, OpenFlow port); the datapath numbers a dummy
# datapath gives the shared ports follow.
PORTS = [
    ("t1", "vxlan", {"remote_ip": "192.0.2.92", "key": "123"}, 10),
    ("t2", "vxlan", {"remote_ip": "192.0.2.93", "key": "flow"}, 11),
    ("t3", "vxlan", {"remote_ip": "flow", "key": "123"}, 12),
    ("t4", "vxlan", {"remote_ip": "flow", "local_ip": "flow", "in_key": "5", "out_key": "6"}, 13),
    (
        "t5",
        "gre",
        {
            "remote_ip": "192.0.2.92",
            "local_ip": "192.0.2.1",
            "tos": "inherit",
            "ttl": "inherit",
            "csum": "true",
            "df_default": "false",
        },
        14,
    ),
    ("t6", "gre", {"remote_ip": "192.0.2.92", "packet_type": "legacy_l3"}, 15),
    ("t7", "geneve", {"remote_ip": "2001:db8::92", "key": "flow", "tos": "0x20"}, 16),
    ("t8", "geneve", {"remote_ip": "192.0.2.92", "packet_type": "ptap", "out_key": "flow"}, 17),
    ("t9", "vxlan", {"remote_ip": "192.0.2.92", "dst_port": "4790"}, 18),
]
DP_PORTS = {"vxlan_sys_4789": 4789, "gre_sys": 4, "genev_sys_6081": 6081, "vxlan_sys_4790": 4790}

OVS_PORTS_SHOW = """\
Listening ports:
vxlan_sys_4789 (4789) ref_cnt=4
gre_sys (4) ref_cnt=2
genev_sys_6081 (6081) ref_cnt=2
vxlan_sys_4790 (4790) ref_cnt=1
"""
OVS_LIST_TUNNELS = """\
port 4: t5 (gre: 192.0.2.1->192.0.2.92, key=0, legacy_l2, dp port=4, ttl=inherit, \
tos=inherit, df=false, csum=true)
port 4790: t9 (vxlan: ::->192.0.2.92, key=0, legacy_l2, dp port=4790, ttl=64)
port 4789: t1 (vxlan: ::->192.0.2.92, key=0x7b, legacy_l2, dp port=4789, ttl=64)
port 4: t6 (gre: ::->192.0.2.92, key=0, legacy_l3, dp port=4, ttl=64)
port 6081: t8 (geneve: ::->192.0.2.92, key=0, ptap, dp port=6081, out_key=flow, ttl=64)
port 4789: t3 (vxlan: ::->flow, key=0x7b, legacy_l2, dp port=4789, ttl=64)
port 4789: t4 (vxlan: flow->flow, key=0x5, legacy_l2, dp port=4789, out_key=0x6, ttl=64)
port 4789: t2 (vxlan: ::->192.0.2.93, key=flow, legacy_l2, dp port=4789, ttl=64)
port 6081: t7 (geneve: ::->2001:db8::92, key=flow, legacy_l2, dp port=6081, ttl=64, tos=0x20)
"""


def _config(name: str, type_: str, options: dict[str, str]) -> TunnelConfig:
    return parse_tunnel_options(name, type_, options).config


def _ports() -> TunnelPorts:
    ports = TunnelPorts()
    for name, type_, options, ofport in PORTS:
        config = _config(name, type_, options)
        ports.add(name, "br0", ofport, config, DP_PORTS[config.dpif_port])
    return ports


def _v4(text: str) -> int:
    return int(IPv4Address(text))


def test_listings_are_ovs() -> None:
    ports = _ports()
    assert ports.show() == OVS_PORTS_SHOW
    assert ports.list_tunnels() == OVS_LIST_TUNNELS
    assert TunnelPorts().show() == "Listening ports:\n"
    assert TunnelPorts().list_tunnels() == ""


def test_same_identity_is_refused_with_ovs_warning() -> None:
    ports = _ports()
    config = _config("t10", "vxlan", {"remote_ip": "192.0.2.92", "key": "123"})
    with pytest.raises(TunnelPortExistsError) as info:
        ports.add("t10", "br0", 19, config, 4789)
    assert str(info.value) == (
        "t10: attempting to add tunnel port with same config as port 't1' "
        "(::->192.0.2.92, key=0x7b, legacy_l2, dp port=4789)"
    )
    assert "t10" not in ports
    assert ports.show() == OVS_PORTS_SHOW
    # Only what a receiver sees counts: another out_key or TTL does not help,
    # another packet_type or UDP port does.
    clash = _config("t11", "vxlan", {"remote_ip": "192.0.2.92", "in_key": "123", "ttl": "9"})
    with pytest.raises(TunnelPortExistsError):
        ports.add("t11", "br0", 20, clash, 4789)
    other = _config(
        "t12", "vxlan", {"remote_ip": "192.0.2.92", "key": "123", "packet_type": "ptap"}
    )
    ports.add("t12", "br0", 21, other, 4789)
    # No key and key=0 are the same identity.
    with pytest.raises(TunnelPortExistsError, match="same config as port 't9'"):
        ports.add(
            "t13",
            "br0",
            22,
            _config("t13", "vxlan", {"remote_ip": "192.0.2.92", "dst_port": "4790", "key": "0"}),
            4790,
        )


def test_shared_ports_are_reference_counted() -> None:
    ports = _ports()
    assert ports.datapath_port("gre_sys") == 4
    assert ports.remove("t5") is None
    assert ports.remove("t6") == 4  # the last GRE port: the caller deletes gre_sys
    assert ports.datapath_port("gre_sys") is None
    assert ports.remove("t9") == 4790
    assert ports.remove("nonexistent") is None
    assert ports.show() == (
        "Listening ports:\nvxlan_sys_4789 (4789) ref_cnt=4\ngenev_sys_6081 (6081) ref_cnt=2\n"
    )
    # A new GRE port listens again, after the others.
    ports.add("g", "br1", 1, _config("g", "gre", {"remote_ip": "10.0.0.1"}), 5)
    assert ports.show().endswith("gre_sys (5) ref_cnt=1\n")
    assert ports.port("g") is not None
    assert [p.name for p in ports.ports()] == ["t1", "t2", "t3", "t4", "t7", "t8", "g"]


def test_reconfigure_moves_the_port() -> None:
    ports = _ports()
    new = _config("t9", "vxlan", {"remote_ip": "192.0.2.92", "dst_port": "4791"})
    port = ports.reconfigure("t9", new, 4791)
    assert (port.ofport, port.odp_port, port.bridge) == (18, 4791, "br0")
    assert "vxlan_sys_4790" not in ports.show()
    assert ports.show().endswith("vxlan_sys_4791 (4791) ref_cnt=1\n")
    with pytest.raises(KeyError):
        ports.reconfigure("nope", new, 4791)


# (datapath port, tun_id, outer source, outer destination, the port that takes it)
RECEIVE_CASES: list[tuple[int, int, str, str, str | None]] = [
    (4789, 123, "192.0.2.92", "192.0.2.1", "t1"),  # exact key and remote first
    (4789, 7, "192.0.2.93", "192.0.2.1", "t2"),  # then key=flow
    (4789, 123, "10.0.0.9", "192.0.2.1", "t3"),  # then remote_ip=flow
    (4789, 5, "10.0.0.9", "10.0.0.8", "t4"),  # then local_ip=flow too
    (4789, 6, "10.0.0.9", "10.0.0.8", None),  # out_key is not matched
    (4789, 124, "192.0.2.92", "192.0.2.1", None),
    (4, 0, "192.0.2.92", "192.0.2.1", "t5"),  # the configured local address
    (4, 0, "192.0.2.92", "192.0.2.2", None),  # t6 takes only L3 packets
    (6081, 9, "2001:db8::92", "2001:db8::1", "t7"),
    (6081, 0, "192.0.2.92", "192.0.2.1", "t8"),  # a ptap port takes L2 too
    (6081, 1, "192.0.2.92", "192.0.2.1", None),
    (4790, 0, "192.0.2.92", "192.0.2.1", "t9"),
    (4790, 0, "192.0.2.93", "192.0.2.1", None),
    (4791, 0, "192.0.2.92", "192.0.2.1", None),  # no tunnel on that datapath port
]


def _tunnel_flow(tun_id: int, src: str, dst: str) -> Flow:
    if ":" in src:
        return Flow(
            tun_id=tun_id, tun_ipv6_src=int(IPv6Address(src)), tun_ipv6_dst=int(IPv6Address(dst))
        )
    return Flow(tun_id=tun_id, tun_src=_v4(src), tun_dst=_v4(dst))


@pytest.mark.parametrize(("odp_port", "tun_id", "src", "dst", "expected"), RECEIVE_CASES)
def test_receive_order_is_ovs(
    odp_port: int, tun_id: int, src: str, dst: str, expected: str | None
) -> None:
    found = _ports().receive(odp_port, _tunnel_flow(tun_id, src, dst))
    assert (found.name if found else None) == expected


def test_receive_prefers_legacy_ports_and_l3() -> None:
    ports = _ports()
    found = ports.receive(4, _tunnel_flow(0, "192.0.2.92", "192.0.2.2"), l3=True)
    assert found is not None
    assert found.name == "t6"
    ports.add("a", "br0", 30, _config("a", "geneve", {"remote_ip": "192.0.2.92"}), 6081)
    found = ports.receive(6081, _tunnel_flow(0, "192.0.2.92", "192.0.2.1"))
    assert found is not None
    assert found.name == "a"  # a legacy port before the ptap one (t8)
    assert TunnelPorts().receive(4789, _tunnel_flow(0, "1.1.1.1", "1.1.1.2")) is None


def _ip_flow(**fields: int) -> Flow:
    base = {"dl_type": 0x0800, "nw_tos": 0x2B, "nw_ttl": 17, "nw_proto": 1}
    return Flow(**{**base, **fields})


def test_send_sets_the_tunnel_fields_as_ovs() -> None:
    ports = TunnelPorts()
    # The traced configuration: OVS pushed tos=0x2a, ttl=17, DF, csum, vni 0x4d.
    s1 = _config(
        "s1",
        "vxlan",
        {
            "remote_ip": "192.0.2.10",
            "tos": "inherit",
            "ttl": "inherit",
            "csum": "true",
            "out_key": "77",
        },
    )
    ports.add("s1", "br0", 30, s1, 4789)
    flow = _ip_flow(tun_flags=TNL_F_OAM)
    sent = ports.send("s1", flow)
    assert sent.odp_port == 4789
    assert (flow.tun_dst, flow.tun_src, flow.tun_ipv6_dst) == (_v4("192.0.2.10"), 0, 0)
    assert (flow.tun_id, flow.tun_tos, flow.tun_ttl, flow.tun_tp_dst) == (77, 0x2A, 17, 4789)
    assert flow.tun_flags == TNL_F_OAM | TNL_F_DONT_FRAGMENT | TNL_F_CSUM | TNL_F_KEY
    nw_tos = FIELDS["nw_tos"]
    assert sent.wc == FIELDS["nw_ttl"].mask | nw_tos.mask
    assert sent.pkt_mark is None

    # Not IP: the configured (default) TTL and TOS, nothing read.
    arp = Flow(dl_type=0x0806, nw_tos=0x2B, nw_ttl=17)
    sent = ports.send("s1", arp)
    assert (arp.tun_tos, arp.tun_ttl, sent.wc) == (0, 64, 0)


def test_send_with_flow_endpoints_and_fixed_tos() -> None:
    ports = TunnelPorts()
    s2 = _config(
        "s2",
        "gre",
        {
            "remote_ip": "flow",
            "key": "flow",
            "df_default": "false",
            "tos": "0x20",
            "egress_pkt_mark": "9",
        },
    )
    ports.add("s2", "br0", 31, s2, 4)
    flow = _ip_flow(tun_dst=_v4("10.1.1.1"), tun_id=99, tun_flags=TNL_F_DONT_FRAGMENT)
    sent = ports.send("s2", flow)
    # What OVS pushed: dst 10.1.1.1, tos 0x22 (CE sent as ECT(0)), TTL 64, no DF, key 0x63.
    assert (flow.tun_dst, flow.tun_id, flow.tun_tos, flow.tun_ttl) == (
        _v4("10.1.1.1"),
        99,
        0x22,
        64,
    )
    assert flow.tun_flags == TNL_F_KEY
    assert flow.tun_tp_dst == 0
    assert sent.wc == FIELDS["nw_tos"].put(0x03)
    assert sent.pkt_mark == 9


def test_send_ipv6_and_keyless() -> None:
    ports = TunnelPorts()
    s3 = _config("s3", "geneve", {"remote_ip": "2001:db8::5", "local_ip": "2001:db8::1"})
    ports.add("s3", "br0", 32, s3, 6081)
    flow = _ip_flow(nw_tos=0x01, tun_src=_v4("1.1.1.1"), tun_dst=_v4("2.2.2.2"), tun_id=5)
    ports.send("s3", flow)
    assert (flow.tun_src, flow.tun_dst) == (0, 0)
    assert flow.tun_ipv6_dst == int(IPv6Address("2001:db8::5"))
    assert flow.tun_ipv6_src == int(IPv6Address("2001:db8::1"))
    assert (flow.tun_id, flow.tun_tos, flow.tun_tp_dst) == (0, 0x01, 6081)
    assert flow.tun_flags == TNL_F_DONT_FRAGMENT
    with pytest.raises(KeyError):
        ports.send("nope", flow)
