"""Differential test: tunnel ports configured in Open vSwitch 3.1 and in pyvswitch.

Each configuration goes to OVS (``ovs-vsctl add-port ... type=vxlan
options:...`` on a dummy datapath) and to pyvswitch's pure code
(:func:`parse_tunnel_options`, :class:`TunnelPorts`); the Interface ``error``
column, the warnings OVS logs, ``dpif/show``, ``tnl/ports/show``,
``ofproto/list-tunnels``, which port a decapsulated packet lands on
(``ofproto/trace``) and the outer header OVS pushes must agree.

The tunnel module of OVS is global to the daemon, so this module starts its
own sandbox rather than share the session's.
"""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING

import pytest

from pyvswitch.flow.flow import Flow
from pyvswitch.flow.layout import FIELDS, TNL_F_CSUM, TNL_F_DONT_FRAGMENT, TNL_F_KEY
from pyvswitch.netdev.vport import TunnelOptionError, VxlanNetdev
from pyvswitch.ofproto.tnl_config import (
    TunnelConfigError,
    format_dpif_show,
    parse_tunnel_options,
)
from pyvswitch.ofproto.tnl_ports import TunnelPortExistsError, TunnelPorts
from tests.interop.ovs_sandbox import OvsSandbox, started_sandbox
from tests.unit.test_tnl_ports import DP_PORTS, PORTS, RECEIVE_CASES
from tests.unit.test_vport_config import REFUSED, SHOWN

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.ovs

ETH_IP = (
    "eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),"
    "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=1,tos={tos},ttl=17,frag=no),icmp(type=8,code=0)"
)
ETH_ARP = (
    "eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0806),"
    "arp(sip=10.0.0.1,tip=10.0.0.2,op=1,sha=50:54:00:00:00:01,tha=00:00:00:00:00:00)"
)


@pytest.fixture(scope="module")
def sb() -> Iterator[OvsSandbox]:
    """A private OVS with bridge br0 (dummy datapath, ports p1..p3)."""
    with started_sandbox() as sandbox:
        sandbox.add_dummy_bridge("br0", 3)
        yield sandbox


def _log_size(sb: OvsSandbox) -> int:
    return len((sb.dir / "ovs-vswitchd.log").read_text())


def _logged(sb: OvsSandbox, since: int, module: str) -> list[str]:
    """The messages ``module`` logged at WARN since offset ``since``, continuation lines kept."""
    text = (sb.dir / "ovs-vswitchd.log").read_text()[since:]
    entries = re.split(r"\n(?=\d{4}-\d\d-\d\dT)", text.strip())
    prefix = f"|{module}|WARN|"
    return [e.split(prefix, 1)[1] for e in entries if prefix in e]


def _add(sb: OvsSandbox, name: str, type_: str, options: dict[str, str], ofport: int = 0) -> None:
    args = ["add-port", "br0", name, "--", "set", "Interface", name, f"type={type_}"]
    args += [f"options:{key}={value}" for key, value in options.items()]
    if ofport:
        args.append(f"ofport_request={ofport}")
    # ovs-vsctl exits non-zero when the port fails; the error column says why.
    sb.run("ovs-vsctl", "--timeout=20", f"--db=unix:{sb.db_sock}", *args, check=False)


def _error(sb: OvsSandbox, name: str) -> str | None:
    value = sb.vsctl("get", "Interface", name, "error").strip()
    return None if value == "[]" else str(json.loads(value))


def _dpif_show(sb: OvsSandbox) -> dict[str, tuple[int, str]]:
    """dpif/show's ports: name -> (datapath port, text in the parentheses)."""
    found = re.findall(
        r"^\s+(\S+) \d+/(\d+): \((.*)\)$", sb.appctl("dpif/show").stdout, re.MULTILINE
    )
    return {name: (int(odp), text) for name, odp, text in found}


@pytest.mark.parametrize(("type_", "options", "error"), REFUSED)
def test_refusals_match_ovs(
    sb: OvsSandbox, type_: str, options: dict[str, str], error: str
) -> None:
    since = _log_size(sb)
    _add(sb, "t1", type_, options)
    try:
        with pytest.raises(TunnelConfigError) as info:
            parse_tunnel_options("t1", type_, options)
        assert str(info.value) == error == _error(sb, "t1")
        # What OVS logs from netdev_vport (nothing when it refuses silently).
        logged = _logged(sb, since, "netdev_vport")
        assert (logged[0] if logged else "") == "\n".join(info.value.lines)
    finally:
        sb.vsctl("--if-exists", "del-port", "br0", "t1")


@pytest.mark.parametrize(("type_", "options", "shown"), SHOWN)
def test_dpif_show_and_warnings_match_ovs(
    sb: OvsSandbox, type_: str, options: dict[str, str], shown: str
) -> None:
    since = _log_size(sb)
    _add(sb, "t1", type_, options)
    try:
        parsed = parse_tunnel_options("t1", type_, options)
        assert _error(sb, "t1") is None
        _, text = _dpif_show(sb)["t1"]
        assert text == format_dpif_show(parsed.config) == shown
        logged = _logged(sb, since, "netdev_vport")
        assert (logged[0] if logged else "") == "\n".join(parsed.warnings)
    finally:
        sb.vsctl("--if-exists", "del-port", "br0", "t1")


def test_unknown_options_logged_in_ovs_order(sb: OvsSandbox) -> None:
    options = {"remote_ip": "192.0.2.1"} | {f"opt{i}": "1" for i in range(20)}
    since = _log_size(sb)
    _add(sb, "u1", "geneve", options)
    try:
        parsed = parse_tunnel_options("u1", "geneve", options)
        assert _logged(sb, since, "netdev_vport")[0] == "\n".join(parsed.warnings)
        assert len(parsed.unknown) == 20
    finally:
        sb.vsctl("--if-exists", "del-port", "br0", "u1")


def test_gbp_sequence_matches_ovs(sb: OvsSandbox) -> None:
    steps = [
        ("y1", {"remote_ip": "192.0.2.92", "key": "123"}),
        ("y2", {"remote_ip": "1.1.1.1", "payload_type": "mpls"}),
        ("y3", {"remote_ip": "1.1.1.2", "exts": "gbp", "dst_port": "5555"}),
        ("y4", {"remote_ip": "1.1.1.3", "dst_port": "5555"}),
        ("y5", {"remote_ip": "1.1.1.4", "exts": "gbp,foo", "dst_port": "5555"}),
        ("y6", {"remote_ip": "1.1.1.5", "exts": "gbp", "dst_port": "5556"}),
        ("y7", {"remote_ip": "1.1.1.6", "exts": "gbp", "dst_port": "5556"}),
    ]
    ours: dict[str, VxlanNetdev] = {}
    try:
        for name, options in steps:
            _add(sb, name, "vxlan", options)
            dev = VxlanNetdev(name)
            try:
                dev.configure(options)
            except TunnelOptionError as exc:
                dev.close()
                mine: str | None = str(exc)
            else:
                mine = None
                ours[name] = dev
                # OVS opens a netdev named after the shared datapath port when
                # it creates that port, and counts it as plain VXLAN.
                if dev.dpif_port not in ours:
                    ours[dev.dpif_port] = VxlanNetdev(dev.dpif_port)
            assert mine == _error(sb, name), name
    finally:
        for dev in ours.values():
            dev.close()
        for name, _ in steps:
            sb.vsctl("--if-exists", "del-port", "br0", name)


def _add_all(sb: OvsSandbox, model: TunnelPorts) -> None:
    for name, type_, options, ofport in PORTS:
        _add(sb, name, type_, options, ofport)
        config = parse_tunnel_options(name, type_, options).config
        model.add(name, "br0", ofport, config, DP_PORTS[config.dpif_port])


def _del_all(sb: OvsSandbox) -> None:
    for name, *_ in PORTS:
        sb.vsctl("--if-exists", "del-port", "br0", name)
    sb.vsctl("--if-exists", "del-port", "br0", "t10")


def test_port_map_matches_ovs(sb: OvsSandbox) -> None:
    model = TunnelPorts()
    try:
        _add_all(sb, model)
        shown = _dpif_show(sb)
        for name, *_ in PORTS:
            assert _error(sb, name) is None
            port = model.port(name)
            assert port is not None
            assert shown[name][0] == port.odp_port
        assert sb.appctl("tnl/ports/show").stdout == model.show()
        assert sb.appctl("ofproto/list-tunnels").stdout == model.list_tunnels()

        # The same identity again is refused, with OVS's warning.
        since = _log_size(sb)
        clash = {"remote_ip": "192.0.2.92", "key": "123"}
        _add(sb, "t10", "vxlan", clash)
        with pytest.raises(TunnelPortExistsError) as info:
            model.add("t10", "br0", 19, parse_tunnel_options("t10", "vxlan", clash).config, 4789)
        assert _logged(sb, since, "tunnel") == [str(info.value)]
        assert _error(sb, "t10") == "could not add network device t10 to ofproto (File exists)"

        # The last GRE tunnel gone, OVS deletes gre_sys from the datapath.
        for name in ("t5", "t6"):
            sb.vsctl("del-port", "br0", name)
            freed = model.remove(name)
        assert freed == DP_PORTS["gre_sys"]
        assert "gre_sys" not in sb.appctl("dpctl/show").stdout
        assert sb.appctl("tnl/ports/show").stdout == model.show()
        assert sb.appctl("ofproto/list-tunnels").stdout == model.list_tunnels()

        # New options: OVS removes the port from its map and adds it again.
        for name, type_, options, _ in PORTS:
            if name in ("t9", "t2"):
                changed = (
                    {**options, "dst_port": "4791"} if name == "t9" else {**options, "ttl": "5"}
                )
                sb.vsctl(
                    "set", "Interface", name, *(f"options:{k}={v}" for k, v in changed.items())
                )
                config = parse_tunnel_options(name, type_, changed).config
                model.reconfigure(name, config, 4791 if name == "t9" else 4789)
        assert _dpif_show(sb)["t9"][0] == 4791
        assert sb.appctl("tnl/ports/show").stdout == model.show()
        assert sb.appctl("ofproto/list-tunnels").stdout == model.list_tunnels()
    finally:
        _del_all(sb)


def _search(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, f"{pattern!r} not in:\n{text}"
    return found


def _trace(sb: OvsSandbox, flow: str) -> tuple[str, str]:
    result = sb.appctl("ofproto/trace", "ovs-dummy", flow, check=False)
    return result.stdout, result.stderr


@pytest.mark.parametrize(
    ("odp_port", "tun_id", "src", "dst", "expected"),
    # A datapath port OVS does not have cannot be traced.
    [case for case in RECEIVE_CASES if case[0] in DP_PORTS.values()],
)
def test_receive_matches_ovs(
    sb: OvsSandbox, odp_port: int, tun_id: int, src: str, dst: str, expected: str | None
) -> None:
    model = TunnelPorts()
    try:
        _add_all(sb, model)
        v6 = ":" in src
        addresses = f"ipv6_src={src},ipv6_dst={dst}" if v6 else f"src={src},dst={dst}"
        tunnel = f"tunnel(tun_id={tun_id:#x},{addresses},ttl=64,flags(key))"
        out, err = _trace(sb, f"{tunnel},in_port({odp_port}),{ETH_IP.format(tos=0)}")
        if "no OpenFlow tunnel port for this packet" in err:
            theirs = None
        else:
            ofport = int(_search(r"^Flow: .*?\bin_port=(\d+)", out).group(1))
            theirs = next(name for name, _, _, port in PORTS if port == ofport)
        flow = Flow(tun_id=tun_id)
        if v6:
            flow.tun_ipv6_src, flow.tun_ipv6_dst = int(IPv6Address(src)), int(IPv6Address(dst))
        else:
            flow.tun_src, flow.tun_dst = int(IPv4Address(src)), int(IPv4Address(dst))
        found = model.receive(odp_port, flow)
        assert (found.name if found else None) == theirs == expected
    finally:
        _del_all(sb)


# Ports whose pushed outer header OVS shows in a trace, and the OpenFlow
# actions that send to them (set_field fills in what the port takes from the flow).
SENDS = [
    (
        "vxlan",
        {
            "remote_ip": "192.0.2.10",
            "tos": "inherit",
            "ttl": "inherit",
            "csum": "true",
            "out_key": "77",
        },
        "",
    ),
    (
        "gre",
        {"remote_ip": "flow", "key": "flow", "df_default": "false", "tos": "0x20"},
        "set_field:10.1.1.1->tun_dst,set_field:99->tun_id,",
    ),
    (
        "gre",
        {"remote_ip": "192.0.2.10", "key": "6", "csum": "true", "seq": "true", "ttl": "9"},
        "",
    ),
    ("geneve", {"remote_ip": "192.0.2.10", "in_key": "5", "tos": "0x40", "ttl": "inherit"}, ""),
    (
        "vxlan",
        {"remote_ip": "192.0.2.10", "dst_port": "4792", "out_key": "flow"},
        "set_field:0x1234->tun_id,",
    ),
]


@pytest.mark.parametrize(("type_", "options", "actions"), SENDS)
@pytest.mark.parametrize("tos", ["0x2b", "0x2", "0x1", "0x0", "arp"])
def test_send_matches_the_header_ovs_pushes(
    sb: OvsSandbox, type_: str, options: dict[str, str], actions: str, tos: str
) -> None:
    # The underlay: br0 owns 192.0.2.1, reaches 10.1.1.0/24 via 192.0.2.254,
    # knows both neighbours, and sends what it tunnels out of p3.
    sb.appctl("netdev-dummy/ip4addr", "br0", "192.0.2.1/24")
    sb.appctl("ovs/route/add", "192.0.2.0/24", "br0", check=False)
    sb.appctl("ovs/route/add", "10.1.1.0/24", "br0", "192.0.2.254", check=False)
    sb.appctl("tnl/neigh/set", "br0", "192.0.2.10", "aa:55:aa:55:00:10")
    sb.appctl("tnl/neigh/set", "br0", "192.0.2.254", "aa:55:aa:55:00:fe")
    sb.ofctl("add-flow", "br0", "in_port=LOCAL,actions=output:3")
    sb.ofctl("add-flow", "br0", "in_port=1,actions=" + actions + "output:50")
    _add(sb, "s1", type_, options, 50)
    try:
        out, err = _trace(sb, f"in_port(1),{ETH_ARP if tos == 'arp' else ETH_IP.format(tos=tos)}")
        assert not err
        config = parse_tunnel_options("s1", type_, options).config
        model = TunnelPorts()
        model.add("s1", "br0", 50, config, 0)
        if tos == "arp":
            flow = Flow(dl_type=0x0806, nw_proto=1)
        else:
            flow = Flow(dl_type=0x0800, nw_proto=1, nw_tos=int(tos, 16), nw_ttl=17)
        if "tun_dst" in actions:
            flow.tun_dst = int(IPv4Address("10.1.1.1"))
        flow.tun_id = 99 if "99->tun_id" in actions else (0x1234 if "0x1234" in actions else 0)
        sent = model.send("s1", flow)

        ip = re.search(
            r"ipv4\(src=[\d.]+,dst=([\d.]+),proto=\d+,tos=(\w+),ttl=(\d+),frag=(\w+)\)", out
        )
        assert ip is not None, out
        assert ip.group(1) == str(IPv4Address(flow.tun_dst))
        assert int(ip.group(2), 16) == flow.tun_tos
        assert int(ip.group(3)) == flow.tun_ttl
        assert (int(ip.group(4), 16) == 0x4000) == bool(flow.tun_flags & TNL_F_DONT_FRAGMENT)
        if type_ == "gre":
            gre = re.search(r"gre\(\(flags=(\w+),proto=0x6558\)(.*?)\)\)", out)
            assert gre is not None, out
            assert bool(int(gre.group(1), 16) & 0x8000) == bool(flow.tun_flags & TNL_F_CSUM)
            key = re.search(r"key=(\w+)", gre.group(2))
            assert bool(key) == bool(flow.tun_flags & TNL_F_KEY)
            if key:
                assert int(key.group(1), 16) == flow.tun_id
        else:
            udp = re.search(r"udp\(src=0,dst=(\d+),csum=(\w+)\),\w+\(.*?vni=(\w+)\)", out)
            assert udp is not None, out
            assert int(udp.group(1)) == flow.tun_tp_dst
            assert (udp.group(2) == "0xffff") == bool(flow.tun_flags & TNL_F_CSUM)
            assert int(udp.group(3), 16) == flow.tun_id & 0xFFFFFF
        # The inner fields the result depended on are those OVS's megaflow matches.
        megaflow = _search(r"^Megaflow: (.*)$", out).group(1)
        nw_tos = FIELDS["nw_tos"]
        assert ("nw_tos=" in megaflow) == bool(sent.wc & nw_tos.put(0xFC))
        assert ("nw_ecn=" in megaflow) == bool(sent.wc & nw_tos.put(0x03))
        assert ("nw_ttl=" in megaflow) == bool(sent.wc & FIELDS["nw_ttl"].mask)
    finally:
        sb.vsctl("--if-exists", "del-port", "br0", "s1")
        sb.ofctl("del-flows", "br0")
