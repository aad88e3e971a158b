"""Tunnel port options read as Open vSwitch 3.1 reads them, and printed back as it prints them.

Every expected text below was printed by OVS 3.1 (a sandbox with a dummy
datapath: the Interface ``error`` column, ``dpif/show``, the vswitchd log);
tests/interop/test_ovs_vport_config.py asks OVS again.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING

import pytest

from pyvswitch.netdev import registry
from pyvswitch.netdev.base import NetdevOptionError
from pyvswitch.netdev.vport import GeneveNetdev, GreNetdev, TunnelOptionError, VxlanNetdev
from pyvswitch.ofproto.tnl_config import (
    TunnelConfig,
    TunnelConfigError,
    format_dpif_show,
    format_ipv6,
    parse_tunnel_options,
    tunnel_get_config,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

# (type, options, the Interface error column OVS writes)
REFUSED = [
    ("vxlan", {}, "t1: vxlan type requires valid 'remote_ip' argument"),
    ("gre", {"key": "5"}, "t1: gre type requires valid 'remote_ip' argument"),
    ("vxlan", {"remote_ip": "224.0.0.1"}, "t1: multicast remote_ip=224.0.0.1 not allowed"),
    ("vxlan", {"remote_ip": "ff02::1"}, "t1: multicast remote_ip=ff02::1 not allowed"),
    (
        "vxlan",
        {"remote_ip": "2001:db8::1", "local_ip": "192.0.2.1"},
        "t1: 'remote_ip' and 'local_ip' has to be of the same address family",
    ),
    (
        # Written as IPv6, a mapped address is of the IPv6 family here.
        "vxlan",
        {"remote_ip": "::ffff:1.2.3.4", "local_ip": "1.1.1.1"},
        "t1: 'remote_ip' and 'local_ip' has to be of the same address family",
    ),
    (
        "vxlan",
        {"local_ip": "flow", "remote_ip": "192.0.2.1"},
        "t1: vxlan type requires 'remote_ip=flow' with 'local_ip=flow'",
    ),
    (
        "vxlan",
        {"remote_ip": "192.0.2.1", "packet_type": "legacy_l3"},
        "t1: legacy_l3 configured on VXLAN (without GPE) tunnel that cannot carry L3 traffic",
    ),
    (
        "geneve",
        {"remote_ip": "192.0.2.1", "packet_type": "legacy_l3"},
        "t1: legacy_l3 configured on geneve tunnel that cannot carry L3 traffic",
    ),
    ("vxlan", {"remote_ip": "192.0.2.1", "packet_type": "foo"}, "t1: unknown packet_type 'foo'"),
    (
        "vxlan",
        {"remote_ip": "192.0.2.1", "payload_type": "foo"},
        "t1: could not set configuration (Invalid argument)",
    ),
    (
        "vxlan",
        {"remote_ip": "bad"},
        "t1: bad vxlan 'remote_ip'\nt1: vxlan type requires valid 'remote_ip' argument",
    ),
    (
        "geneve",
        {"remote_ip": "192.0.2.1", "exts": "gbp", "erspan_ver": "3", "remote_cert": "x"},
        "t1: unknown geneve argument 'exts'\nt1: invalid erspan version: 3",
    ),
    (
        "vxlan",
        {"remote_ip": "1.1.1.4", "erspan_idx": "100000"},
        "t1: invalid erspan index: 100000",
    ),
    ("vxlan", {"remote_ip": "1.1.1.6", "erspan_hwid": "40"}, "t1: invalid erspan hardware ID: 40"),
    ("vxlan", {"remote_ip": "1.1.1.6", "erspan_dir": "2"}, "t1: invalid erspan direction: 2"),
    ("vxlan", {"remote_ip": "::"}, "t1: vxlan type requires valid 'remote_ip' argument"),
]

# (type, options, what dpif/show prints in the parentheses)
SHOWN = [
    ("vxlan", {"remote_ip": "192.0.2.92", "key": "123"}, "vxlan: key=123, remote_ip=192.0.2.92"),
    ("gre", {"remote_ip": "192.0.2.93", "foo": "1"}, "gre: remote_ip=192.0.2.93"),
    (
        "vxlan",
        {"remote_ip": "192.0.2.92", "key": "123", "dst_port": "4790"},
        "vxlan: dst_port=4790, key=123, remote_ip=192.0.2.92",
    ),
    (
        "vxlan",
        {"remote_ip": "flow", "local_ip": "flow", "key": "flow"},
        "vxlan: key=flow, local_ip=flow, remote_ip=flow",
    ),
    (
        "gre",
        {
            "remote_ip": "192.0.2.1",
            "tos": "0x20",
            "ttl": "5",
            "csum": "true",
            "seq": "true",
            "df_default": "false",
            "egress_pkt_mark": "7",
        },
        "gre: csum=true, df_default=false, egress_pkt_mark=7, remote_ip=192.0.2.1, seq=true, "
        "tos=0x20, ttl=5",
    ),
    (
        "vxlan",
        {"remote_ip": "192.0.2.1", "in_key": "5", "out_key": "flow", "seq": "true"},
        "vxlan: in_key=5, out_key=flow, remote_ip=192.0.2.1",
    ),
    (
        "gre",
        {"remote_ip": "192.0.2.1", "packet_type": "legacy_l3"},
        "gre: packet_type=legacy_l3, remote_ip=192.0.2.1",
    ),
    (
        "geneve",
        {"remote_ip": "192.0.2.1", "packet_type": "ptap"},
        "geneve: packet_type=ptap, remote_ip=192.0.2.1",
    ),
    (
        "vxlan",
        {
            "remote_ip": "2001:db8:0:0::1",
            "local_ip": "2001:db8::2",
            "tos": "inherit",
            "ttl": "inherit",
            "dst_port": "6000",
        },
        "vxlan: dst_port=6000, local_ip=2001:db8::2, remote_ip=2001:db8::1, tos=inherit, "
        "ttl=inherit",
    ),
    ("gre", {"remote_ip": "192.0.2.1", "dst_port": "6000"}, "gre: remote_ip=192.0.2.1"),
    (
        "vxlan",
        {"remote_ip": "192.0.2.1", "exts": "gpe", "packet_type": "legacy_l3"},
        "vxlan: packet_type=legacy_l3, remote_ip=192.0.2.1",
    ),
    # C's conversions: ttl is a byte, keys are read with base 0, a TOS that
    # overflows an int wraps to 0.
    (
        "vxlan",
        {"remote_ip": "192.0.2.1", "ttl": "300", "key": "0x10", "tos": "0x400000000"},
        "vxlan: key=16, remote_ip=192.0.2.1, ttl=44",
    ),
    ("vxlan", {"remote_ip": "::102:304"}, "vxlan: remote_ip=::1.2.3.4"),
    ("vxlan", {"remote_ip": "::ffff:1.2.3.4"}, "vxlan: remote_ip=1.2.3.4"),
    # The stored values are compared, and a flow key's is 0.
    (
        "vxlan",
        {"remote_ip": "192.0.2.1", "in_key": "flow", "out_key": "0"},
        "vxlan: key=0, remote_ip=192.0.2.1",
    ),
    ("vxlan", {"remote_ip": "192.0.2.1", "dst_port": "0"}, "vxlan: remote_ip=192.0.2.1"),
    (
        "vxlan",
        {"remote_ip": "1.1.1.5", "erspan_idx": "fffff", "erspan_hwid": "3f", "erspan_ver": "257"},
        "vxlan: remote_ip=1.1.1.5",
    ),
    (
        "gre",
        {"remote_ip": "1.1.1.5", "key": "5", "in_key": "6"},
        "gre: in_key=6, out_key=5, remote_ip=1.1.1.5",
    ),
    (
        "gre",
        {"remote_ip": "1.1.1.5", "egress_pkt_mark": "-1"},
        "gre: egress_pkt_mark=4294967295, remote_ip=1.1.1.5",
    ),
    (
        "geneve",
        {"remote_ip": "0.0.0.0", "local_ip": "224.0.0.1"},  # noqa: S104 - not a bind address
        "geneve: local_ip=224.0.0.1, remote_ip=::ffff:0.0.0.0",
    ),
    (
        "geneve",
        {"remote_ip": "1.1.1.1", "csum": "yes", "df_default": "no"},
        "geneve: remote_ip=1.1.1.1",
    ),
]


@pytest.fixture(autouse=True)
def _no_leftover_vxlan_users() -> Iterator[None]:
    """Every VXLAN netdev a test opens is closed, so the GBP bookkeeping starts empty."""
    yield
    assert not VxlanNetdev._users


@pytest.mark.parametrize(("type_", "options", "error"), REFUSED)
def test_refusals_give_ovs_error_column(type_: str, options: dict[str, str], error: str) -> None:
    with pytest.raises(TunnelConfigError) as info:
        parse_tunnel_options("t1", type_, options)
    assert str(info.value) == error


@pytest.mark.parametrize(("type_", "options", "shown"), SHOWN)
def test_dpif_show_text_is_ovs(type_: str, options: dict[str, str], shown: str) -> None:
    assert format_dpif_show(parse_tunnel_options("t1", type_, options).config) == shown


def test_unknown_options_are_warned_about_in_ovs_hash_order() -> None:
    # OVS logged exactly these lines, in this order, for these options.
    options = dict.fromkeys(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "zz", "yy"], "1")
    parsed = parse_tunnel_options("u1", "vxlan", {"remote_ip": "192.0.2.1", **options})
    assert parsed.unknown == ("a", "h", "yy", "j", "d", "f", "e", "b", "zz", "c", "g", "i")
    assert parsed.warnings == tuple(f"u1: unknown vxlan argument '{k}'" for k in parsed.unknown)


def test_warnings_that_do_not_stop_the_port() -> None:
    parsed = parse_tunnel_options("x5", "gre", {"remote_ip": "192.0.2.1", "tos": "1"})
    assert parsed.warnings == ("x5: invalid TOS 1",)
    assert parsed.config.tos == 0
    parsed = parse_tunnel_options("x7", "vxlan", {"remote_ip": "192.0.2.1", "seq": "true"})
    assert parsed.warnings == ("x7: unknown vxlan argument 'seq'",)
    assert parsed.unknown == ("seq",)
    parsed = parse_tunnel_options("x8", "vxlan", {"remote_ip": "1.1.1.1", "exts": "gbp,,foo"})
    assert parsed.warnings == ("x8: unknown extension 'foo'",)
    assert parsed.config.exts == frozenset({"gbp"})
    parsed = parse_tunnel_options("x9", "vxlan", {"remote_ip": "1.1.1.1", "local_ip": "x"})
    assert parsed.warnings == ("x9: bad vxlan 'local_ip'",)
    assert parsed.config.local_ip is None


def test_parsed_configuration() -> None:
    config = parse_tunnel_options(
        "t1",
        "vxlan",
        {
            "remote_ip": "192.0.2.92",
            "local_ip": "192.0.2.1",
            "in_key": "0x7b",
            "out_key": "flow",
            "tos": "inherit",
            "ttl": "017",
            "df_default": "false",
            "csum": "true",
            "egress_pkt_mark": "9",
        },
    ).config
    assert config == TunnelConfig(
        type="vxlan",
        remote_ip=IPv4Address("192.0.2.92"),
        local_ip=IPv4Address("192.0.2.1"),
        in_key=123,
        out_key="flow",
        dst_port=4789,
        tos="inherit",
        ttl=17,  # atoi reads decimal, even with a leading zero
        df_default=False,
        csum=True,
        egress_pkt_mark=9,
    )
    gre = parse_tunnel_options("t2", "gre", {"remote_ip": "2001:db8::9", "seq": "true"}).config
    assert gre.dst_port is None
    assert gre.remote_ip == IPv6Address("2001:db8::9")
    assert gre.seq
    assert gre.ttl == 64
    assert gre.df_default
    assert gre.in_key is None
    assert gre.out_key is None


def test_defaults_and_datapath_port_names() -> None:
    addr = IPv4Address("192.0.2.1")
    assert TunnelConfig("vxlan", addr).dst_port == 4789
    assert TunnelConfig("geneve", addr).dst_port == 6081
    assert TunnelConfig("gre", addr).dst_port is None
    assert TunnelConfig("vxlan", addr).dpif_port == "vxlan_sys_4789"
    assert TunnelConfig("vxlan", addr, dst_port=4790).dpif_port == "vxlan_sys_4790"
    assert TunnelConfig("geneve", addr).dpif_port == "genev_sys_6081"
    assert TunnelConfig("gre", addr).dpif_port == "gre_sys"
    with pytest.raises(ValueError, match="no UDP destination port"):
        TunnelConfig("gre", addr, dst_port=1)
    with pytest.raises(ValueError, match="unknown tunnel type 'lisp'"):
        TunnelConfig("lisp", addr)
    assert tunnel_get_config(TunnelConfig("vxlan", addr)) == {"remote_ip": "192.0.2.1"}


@pytest.mark.parametrize(
    ("address", "text"),
    [
        ("::2", "::2"),
        ("::102:304", "::1.2.3.4"),
        ("::ffff:102:304", "::ffff:1.2.3.4"),
        ("::ffff:0:102:304", "::ffff:0:102:304"),
        ("0:0:0:0:0:1:0:0", "::1:0:0"),
        ("::0.0.1.1", "::101"),
        ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
        ("::0.1.0.0", "::0.1.0.0"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
    ],
)
def test_ipv6_printed_as_glibc_prints_it(address: str, text: str) -> None:
    assert format_ipv6(int(IPv6Address(address))) == text


# -- the providers ---------------------------------------------------------------


def test_providers_open_through_the_registry() -> None:
    for type_, cls in (("vxlan", VxlanNetdev), ("gre", GreNetdev), ("geneve", GeneveNetdev)):
        dev = registry.netdev_open(f"reg_{type_}", type_, {"remote_ip": "192.0.2.9", "key": "7"})
        try:
            assert isinstance(dev, cls)
            assert dev.get_config() == {"key": "7", "remote_ip": "192.0.2.9"}
            assert dev.tunnel is not None
            assert dev.tunnel.in_key == 7
        finally:
            registry.netdev_close(dev)


def test_refusal_is_a_netdev_option_error_and_keeps_the_old_config() -> None:
    with pytest.raises(NetdevOptionError, match="requires valid 'remote_ip'"):
        registry.netdev_open("reg_bad", "vxlan", {})
    assert registry.references("reg_bad") == 0
    dev = VxlanNetdev("t2")
    try:
        dev.configure({"remote_ip": "192.0.2.9", "foo": "x"})
        assert dev.unknown_options == ("foo",)
        assert dev.warnings == ("t2: unknown vxlan argument 'foo'",)
        with pytest.raises(TunnelOptionError) as info:
            dev.configure({"remote_ip": "224.0.0.1"})
        assert str(info.value) == "t2: multicast remote_ip=224.0.0.1 not allowed"
        assert info.value.log_lines == ("t2: multicast remote_ip=224.0.0.1 not allowed",)
        assert info.value.strerror == "Invalid argument"
        assert dev.get_config() == {"remote_ip": "192.0.2.9"}
        assert dev.dpif_port == "vxlan_sys_4789"
    finally:
        dev.close()


def _vxlan(name: str, **options: str) -> VxlanNetdev:
    dev = VxlanNetdev(name)
    try:
        dev.configure(options)
    except BaseException:
        dev.close()
        raise
    return dev


def test_gbp_and_plain_vxlan_cannot_share_a_port() -> None:
    # The sequences OVS was asked (y1..y7 in the interop test).
    message = "VXLAN-GBP, and non-VXLAN-GBP tunnels can't be configured on the same dst_port"
    plain = _vxlan("t3", remote_ip="192.0.2.92", key="123")
    try:
        with pytest.raises(TunnelOptionError) as info:
            _vxlan("y0", remote_ip="1.1.1.1", exts="gbp,foo")
        assert str(info.value) == f"y0: unknown extension 'foo'\ny0: {message}"
        assert info.value.strerror == "File exists"
        # payload_type=mpls sets the same bit as the GBP extension.
        with pytest.raises(TunnelOptionError, match=f"y1: {message}"):
            _vxlan("y1", remote_ip="1.1.1.1", payload_type="mpls")
        gbp = _vxlan("y2", remote_ip="1.1.1.2", exts="gbp", dst_port="5555")
        try:
            with pytest.raises(TunnelOptionError, match=f"y3: {message}"):
                _vxlan("y3", remote_ip="1.1.1.3", dst_port="5555")
            _vxlan("y4", remote_ip="1.1.1.4", exts="gbp", dst_port="5555").close()
            # OVS 3.1 opens a netdev for the shared datapath port, named after
            # it, which counts as plain VXLAN on that port: from then on no
            # other GBP port may join.
            shared = VxlanNetdev("vxlan_sys_5555")
            try:
                with pytest.raises(TunnelOptionError, match=f"y4: {message}"):
                    _vxlan("y4", remote_ip="1.1.1.4", exts="gbp", dst_port="5555")
            finally:
                shared.close()
        finally:
            gbp.close()
        # Once the GBP port is gone, plain VXLAN may use its UDP port.
        _vxlan("y3", remote_ip="1.1.1.3", dst_port="5555").close()
    finally:
        plain.close()
    # With no plain VXLAN left on 4789, GBP may take it.
    _vxlan("y5", remote_ip="1.1.1.5", exts="gbp").close()


def test_a_port_cannot_turn_gbp_while_others_share_its_port() -> None:
    first = _vxlan("v1", remote_ip="1.1.1.1")
    second = _vxlan("v2", remote_ip="1.1.1.2")
    try:
        with pytest.raises(TunnelOptionError, match="v2: VXLAN-GBP"):
            second.configure({"remote_ip": "1.1.1.2", "exts": "gbp"})
        first.close()
        second.configure({"remote_ip": "1.1.1.2", "exts": "gbp"})
        assert second.tunnel is not None
        assert second.tunnel.exts == frozenset({"gbp"})
    finally:
        first.close()
        second.close()
