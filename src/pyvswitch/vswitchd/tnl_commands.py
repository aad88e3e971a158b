"""The route table's and neighbour cache's control commands, as Open vSwitch 3.1 has them.

``ovs/route/add|del|show|lookup`` (lib/ovs-router.c), ``tnl/neigh/show|set|
flush|aging`` and their older names ``tnl/arp/*`` (lib/tnl-neigh-cache.c), and
``netdev-dummy/ip4addr|ip6addr`` (lib/netdev-dummy.c): same usage strings,
argument counts, replies and error texts, and the same log lines (module
``ovs_router`` at debug level for a refused route, ``socket_util`` at error
level for a bad neighbour address).

Where we differ: ``netdev-dummy/ip4addr`` refuses a netmask that is not
contiguous (``1.1.2.92/255.0.255.0``), which Open vSwitch takes; and the
addresses it and ``ip6addr`` set count as the switch's own for a tunnel's
``local_ip`` (see :mod:`pyvswitch.ofproto.tnl_route`).
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import TYPE_CHECKING

from pyvswitch.netdev.dummy import DummyNetdev
from pyvswitch.ofproto.tnl_neigh import eth_addr_from_string, parse_aging, parse_neigh_ip
from pyvswitch.ofproto.tnl_route import (
    OvsParseError,
    RouteError,
    format_lookup,
    inet_pton4,
    inet_pton6,
    ip_parse_masked,
    ipv6_parse_cidr,
    parse_route_prefix,
    scan_int,
    scan_pkt_mark,
)
from pyvswitch.vswitchd.unixctl import UnixctlError

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvswitch.ofproto.tnl_route import IPAddress
    from pyvswitch.vswitchd.daemon import Daemon
    from pyvswitch.vswitchd.unixctl import UnixctlServer

router_log = logging.getLogger("pyvswitch.ovs_router")
socket_log = logging.getLogger("pyvswitch.socket_util")


def register_tnl_commands(daemon: Daemon, server: UnixctlServer) -> None:
    """Put the route, neighbour and dummy-address commands on the control socket."""
    reg = server.register
    reg(
        "ovs/route/add",
        "ip_addr/prefix_len out_br_name [gw] [pkt_mark=mark]",
        2,
        4,
        lambda args: route_add(daemon, args),
    )
    reg("ovs/route/show", "", 0, 0, lambda _args: daemon.routes.show())
    reg(
        "ovs/route/del",
        "ip_addr/prefix_len [pkt_mark=mark]",
        1,
        2,
        lambda args: route_del(daemon, args),
    )
    reg(
        "ovs/route/lookup",
        "ip_addr [pkt_mark=mark]",
        1,
        2,
        lambda args: route_lookup(daemon, args),
    )
    reg("tnl/ports/show", "[-v]", 0, 1, lambda _args: _tnl_ports_show(daemon))
    reg("tnl/egress_port_range", "min max", 0, 2, lambda args: _egress_port_range(daemon, args))
    reg("ofproto/list-tunnels", "", 0, 0, lambda _args: _list_tunnels(daemon))
    # Open vSwitch registers every neighbour command under both names.
    for prefix in ("tnl/arp", "tnl/neigh"):
        reg(f"{prefix}/show", "", 0, 0, lambda _args: daemon.neigh.show(daemon.clock()))
        reg(f"{prefix}/set", "BRIDGE IP MAC", 3, 3, lambda args: neigh_set(daemon, args))
        reg(f"{prefix}/flush", "", 0, 0, lambda _args: neigh_flush(daemon))
        reg(f"{prefix}/aging", "[SECS]", 0, 1, lambda args: neigh_aging(daemon, args))
    reg(
        "netdev-dummy/ip4addr",
        "[netdev] ipaddr/mask-prefix-len",
        2,
        2,
        lambda args: dummy_ip4addr(daemon, args),
    )
    reg("netdev-dummy/ip6addr", "[netdev] ip6addr", 2, 2, lambda args: dummy_ip6addr(daemon, args))


# -- ovs/route/* ------------------------------------------------------------------------


def _gateway(text: str, ipv6: bool) -> IPAddress | None:
    """A gateway argument as ``ip_parse()``/``ipv6_parse()`` read it (inet_pton), or None."""
    if ipv6:
        value = inet_pton6(text)
        return None if value is None else IPv6Address(value)
    value4 = inet_pton4(text)
    return None if value4 is None else IPv4Address(value4)


def route_add(daemon: Daemon, args: list[str]) -> str:
    """``ovs/route/add ip_addr/prefix_len out_br_name [gw] [pkt_mark=mark]``."""
    parsed = parse_route_prefix(args[0])
    if parsed is None:
        raise UnixctlError("Invalid parameters")
    dest, ipv6 = parsed
    mark = 0
    gateway: IPAddress | None = None
    if len(args) > 2:
        # The third argument is a mark or a gateway (a mark is tried first).
        found = scan_pkt_mark(args[2])
        if found is not None:
            mark = found
        else:
            gateway = _gateway(args[2], ipv6)
            if gateway is None:
                raise UnixctlError(
                    "Invalid pkt_mark or IPv6 gateway" if ipv6 else "Invalid pkt_mark or gateway"
                )
    if len(args) > 3:
        found = scan_pkt_mark(args[3])
        if found is None:
            raise UnixctlError("Invalid pkt_mark")
        mark = found
    if gateway is not None and not int(gateway):
        gateway = None  # 0.0.0.0 or ::, as Open vSwitch reads it: no gateway
    try:
        daemon.routes.add_user(dest, args[1], gateway, mark=mark)
    except RouteError as exc:
        router_log.debug("%s", exc.detail)
        raise UnixctlError(str(exc)) from None
    return "OK"


def _mark_argument(args: list[str], index: int) -> int:
    if len(args) <= index:
        return 0
    mark = scan_pkt_mark(args[index])
    if mark is None:
        raise UnixctlError("Invalid pkt_mark")
    return mark


def route_del(daemon: Daemon, args: list[str]) -> str:
    """``ovs/route/del ip_addr/prefix_len [pkt_mark=mark]``: user routes only."""
    parsed = parse_route_prefix(args[0])
    if parsed is None:
        raise UnixctlError("Invalid parameters")
    mark = _mark_argument(args, 1)
    if not daemon.routes.delete_user(parsed[0], mark=mark):
        raise UnixctlError("Not found")
    return "OK"


def route_lookup(daemon: Daemon, args: list[str]) -> str:
    """``ovs/route/lookup ip_addr [pkt_mark=mark]``: a host address, no prefix but /32 or /128."""
    parsed = parse_route_prefix(args[0])
    if parsed is None or parsed[0].network.prefixlen != parsed[0].max_prefixlen:
        raise UnixctlError("Invalid parameters")
    mark = _mark_argument(args, 1)
    route = daemon.routes.lookup(parsed[0].ip, mark=mark)
    if route is None:
        raise UnixctlError("Not found")
    return format_lookup(route)


# -- tnl/neigh/* ------------------------------------------------------------------------


def neigh_set(daemon: Daemon, args: list[str]) -> str:
    """``tnl/neigh/set BRIDGE IP MAC``: any bridge name is taken, as in Open vSwitch."""
    bridge, ip_text, mac_text = args
    ip = parse_neigh_ip(ip_text)
    if ip is None:
        family = "IPv6 " if ":" in ip_text else "IP "
        socket_log.error('"%s" is not a valid %saddress', ip_text, family)
        raise UnixctlError("bad IP address")
    mac = eth_addr_from_string(mac_text)
    if mac is None:
        raise UnixctlError("bad MAC address")
    daemon.neigh.set(bridge, ip, mac, daemon.clock())
    return "OK"


def neigh_flush(daemon: Daemon) -> str:
    daemon.neigh.flush()
    return "OK"


def neigh_aging(daemon: Daemon, args: list[str]) -> str:
    """``tnl/neigh/aging [SECS]``: show the aging time, or set it (1 to 3600)."""
    if not args:
        return str(daemon.neigh.aging)
    seconds = parse_aging(args[0])
    if seconds is None:
        raise UnixctlError("bad aging value")
    daemon.neigh.set_aging(seconds, daemon.clock())
    return "OK"


# -- netdev-dummy/ip4addr, ip6addr --------------------------------------------------------


def _dummy(daemon: Daemon, name: str) -> DummyNetdev:
    """The dummy device ``name`` (a dummy port, or a bridge's port on a dummy datapath)."""
    for dp in daemon.datapaths.values():
        for dev in dp.devices.values():
            if dev.name == name and isinstance(dev, DummyNetdev):
                return dev
    raise UnixctlError("Unknown Dummy Interface")


def _set_address(daemon: Daemon, dev: DummyNetdev, change: Callable[[DummyNetdev], None]) -> str:
    change(dev)
    daemon.route_sync.sync_devices()
    return "OK"


def dummy_ip4addr(daemon: Daemon, args: list[str]) -> str:
    """``netdev-dummy/ip4addr NETDEV IP[/MASK|/PLEN]``: the port's one IPv4 address.

    ``0.0.0.0`` removes it, as a dummy device without an address has 0.0.0.0.
    """
    dev = _dummy(daemon, args[0])
    try:
        address, mask = ip_parse_masked(args[1])
    except OvsParseError as exc:
        raise UnixctlError(str(exc)) from None
    inverted = ~mask & 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise UnixctlError(f"{args[1]}: a netmask that is not contiguous is not supported")
    iface = IPv4Interface((address, 32 - inverted.bit_length()))

    def change(dummy: DummyNetdev) -> None:
        dummy.in4 = iface if address else None

    return _set_address(daemon, dev, change)


def dummy_ip6addr(daemon: Daemon, args: list[str]) -> str:
    """``netdev-dummy/ip6addr NETDEV IP6[/PLEN]``: the port's one IPv6 address.

    ``::`` removes it.
    """
    dev = _dummy(daemon, args[0])
    try:
        address, plen = ipv6_parse_cidr(args[1])
    except OvsParseError as exc:
        raise UnixctlError(str(exc)) from None
    iface = IPv6Interface((address, plen))

    def change(dummy: DummyNetdev) -> None:
        dummy.in6 = iface if address else None

    return _set_address(daemon, dev, change)


def _tnl_ports_show(daemon: Daemon) -> str:
    """``tnl/ports/show``: the shared tunnel datapath ports of every datapath."""
    lines = ["Listening ports:"]
    for kind in sorted(daemon.datapaths):
        lines += daemon.datapaths[kind].ofp.tunnels.show().splitlines()[1:]
    return "\n".join(lines) + "\n"


def _atoi(text: str) -> int:
    """C's atoi(): a decimal number after blanks and a sign, kept as an int; 0 if none."""
    found = scan_int(text, 0, 10)
    if found is None:
        return 0
    value = found[0] & 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _egress_port_range(daemon: Daemon, args: list[str]) -> str:
    """``tnl/egress_port_range [MIN MAX]``: the UDP source ports tunnels pick from.

    As Open vSwitch: with fewer than two arguments it shows the range, a bad
    bound is answered (not refused) with ``Invalid min.``/``Invalid max.``,
    and bounds given the wrong way round are swapped.
    """
    runtimes = [dp.ofp.datapath.tunnels for dp in daemon.datapaths.values()]
    if len(args) < 2:
        low, high = daemon.tnl_port_range
        return f"Tunnel UDP source port range: {low}-{high}\n"
    first, second = _atoi(args[0]), _atoi(args[1])
    if not 0 < first <= 0xFFFF:
        return "Invalid min.\n"
    if not 0 < second <= 0xFFFF:
        return "Invalid max.\n"
    daemon.tnl_port_range = (min(first, second), max(first, second))
    for runtime in runtimes:
        runtime.port_min, runtime.port_max = daemon.tnl_port_range
    return "OK\n"


def _list_tunnels(daemon: Daemon) -> str:
    return "".join(
        daemon.datapaths[k].ofp.tunnels.list_tunnels() for k in sorted(daemon.datapaths)
    )
