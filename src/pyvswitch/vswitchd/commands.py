"""The daemon's control commands, as ovs-appctl knows them from ovs-vswitchd.

``dpif/show``, ``dpctl/del-flows`` (the other ``dpctl/`` commands,
``dpif/dump-flows`` and ``ofproto/list`` are :mod:`pyvswitch.vswitchd.dpctl`'s),
``ofproto/trace``, ``fdb/show``, ``fdb/flush``, ``netdev-dummy/receive``,
``time/stop``, ``time/warp``, the ``vlog/`` commands and ``exit``, with Open
vSwitch's output layouts and messages; and our own ``capture/show``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.odp_text import compose_packet, parse_odp_flow
from pyvswitch.netdev.dummy import DummyNetdev
from pyvswitch.ofproto.tnl_config import format_dpif_show
from pyvswitch.ofproto.xlate_tunnel import TUNNEL_TYPES
from pyvswitch.vswitchd.dpctl import register_dpctl_commands
from pyvswitch.vswitchd.ofctl_commands import register_ofctl_commands
from pyvswitch.vswitchd.oftrace import USAGE as TRACE_USAGE
from pyvswitch.vswitchd.oftrace import trace
from pyvswitch.vswitchd.timeval import register_timeval_commands
from pyvswitch.vswitchd.tnl_commands import register_tnl_commands
from pyvswitch.vswitchd.unixctl import UNLIMITED, UnixctlError, UnixctlServer
from pyvswitch.vswitchd.vlog import installed, register_vlog_commands

if TYPE_CHECKING:
    from pyvswitch.vswitchd.daemon import Daemon, Datapath

OFPP_LOCAL = 0xFFFE


async def register_commands(daemon: Daemon) -> UnixctlServer:
    """Start the control socket with the daemon's commands on it."""
    server = UnixctlServer()
    server.register("dpif/show", "", 0, 0, lambda _args: dpif_show(daemon))
    register_dpctl_commands(daemon, server)
    server.register("dpctl/del-flows", "[dp]", 0, 1, lambda args: del_flows(daemon, args))
    server.register("ofproto/trace", TRACE_USAGE, 1, UNLIMITED, lambda args: trace(daemon, args))
    server.register("fdb/show", "bridge", 1, 1, lambda args: fdb_show(daemon, args[0]))
    server.register("fdb/flush", "[bridge]", 0, 1, lambda args: fdb_flush(daemon, args))
    server.register(
        "netdev-dummy/receive", "name packet|flow...", 2, 2, lambda args: receive(daemon, args)
    )
    server.register("exit", "[--cleanup]", 0, 1, lambda _args: _exit(daemon))
    server.register("capture/show", "", 0, 0, lambda _args: daemon.capture.show())
    register_timeval_commands(server, daemon.clock, daemon.run_once)
    vlog = installed()
    if vlog is not None:
        register_vlog_commands(server, vlog)
    register_ofctl_commands(daemon, server)
    server.register(
        "coverage/read-counter", "COUNTER", 1, 1, lambda args: _read_counter(daemon, args[0])
    )
    register_tnl_commands(daemon, server)
    await server.listen(daemon.rundir / "pvs-vswitchd.ctl")
    return server


def _exit(daemon: Daemon) -> str:
    # Open vSwitch's --cleanup also removes the datapath and the devices it
    # made; pvs-vswitchd always removes the devices it made when it exits
    # (the datapath lives in the process), so --cleanup changes nothing.
    # Another argument is ignored, as in Open vSwitch.
    daemon.stop.set()
    return ""


def _read_counter(daemon: Daemon, name: str) -> str:
    """``coverage/read-counter NAME``: a drop counter's total, as Open vSwitch prints it.

    The datapaths count drops under Open vSwitch's coverage names; a name
    nothing counted reads 0, as an unknown counter does in Open vSwitch.
    """
    total = sum(dp.ofp.datapath.tunnels.coverage[name] for dp in daemon.datapaths.values())
    return f"{total}\n"


def dpif_show(daemon: Daemon) -> str:
    """OVS's layout: a datapath line with lookup counters, then bridges and their ports."""
    out = []
    for kind in sorted(daemon.datapaths):
        dp = daemon.datapaths[kind]
        stats = dp.ofp.datapath.stats
        out.append(f"{dp.full_name}: hit:{stats.hit} missed:{stats.missed}")
        for name in sorted(dp.ofp.bridges):
            out.append(f"  {name}:")
            bridge = dp.ofp.bridges[name]
            for port in sorted(bridge.ports.values(), key=lambda p: p.name):
                odp = "none" if port.odp_port is None else str(port.odp_port)
                tunnel = dp.ofp.tunnels.port(port.name) if port.type in TUNNEL_TYPES else None
                if tunnel is not None:
                    kind_text = format_dpif_show(tunnel.config)
                elif port.type == "patch":
                    kind_text = f"patch: peer={port.peer}"
                elif port.ofport == OFPP_LOCAL:
                    kind_text = "dummy-internal" if dp.kind == "dummy" else "internal"
                else:
                    kind_text = port.type
                out.append(f"    {port.name} {port.ofport}/{odp}: ({kind_text})")
    return "\n".join(out) + "\n"


def _one_datapath(daemon: Daemon, args: list[str]) -> Datapath:
    """The datapath named in ``args``, or the only one there is (dpctl's rule)."""
    if args:
        found = next((d for d in daemon.datapaths.values() if d.full_name == args[0]), None)
        if found is None:
            raise UnixctlError("pvs-vswitchd: datapath not found (Invalid argument)")
        return found
    if len(daemon.datapaths) == 1:
        return next(iter(daemon.datapaths.values()))
    reason = "no datapaths exist" if not daemon.datapaths else "multiple datapaths, specify one"
    raise UnixctlError(
        f"pvs-vswitchd: {reason}\npvs-vswitchd: datapath not found (Invalid argument)"
    )


def del_flows(daemon: Daemon, args: list[str]) -> str:
    """``dpctl/del-flows [DP]``: remove every megaflow; the next packets are upcalls again."""
    if args and not any(d.full_name == args[0] for d in daemon.datapaths.values()):
        # Open vSwitch reads a FILE of flows to delete here; we do not.
        raise UnixctlError(
            f'pvs-vswitchd: "{args[0]}" is not a datapath '
            "(deleting the flows listed in a file is not supported)"
        )
    _one_datapath(daemon, args).ofp.datapath.flush()
    return ""


def fdb_flush(daemon: Daemon, args: list[str]) -> str:
    """``fdb/flush [BRIDGE]``: forget the learned MACs of one bridge, or of all."""
    bridges = [
        (dp, bridge)
        for dp in daemon.datapaths.values()
        for name, bridge in dp.ofp.bridges.items()
        if not args or name == args[0]
    ]
    if args and not bridges:
        raise UnixctlError("no such bridge")
    for dp, bridge in bridges:
        bridge.macs.flush()
        # Cached forwarding decisions that used the forgotten MACs must go.
        dp.ofp.need_revalidate = True
        dp.ofp.revalidate(daemon.clock())
    return "table successfully flushed"


def fdb_show(daemon: Daemon, name: str) -> str:
    for dp in daemon.datapaths.values():
        bridge = dp.ofp.bridges.get(name)
        if bridge is not None:
            lines = [" port  VLAN  MAC                Age"]
            for port, vlan, mac, age in bridge.macs.entries(daemon.clock()):
                text = ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))
                shown = "LOCAL" if port == OFPP_LOCAL else str(port)
                lines.append(f"{shown:>5}  {vlan:4d}  {text}  {int(age):3d}")
            return "\n".join(lines) + "\n"
    raise UnixctlError(f"no such bridge: {name}")


def receive(daemon: Daemon, args: list[str]) -> str:
    """Inject a packet (hex bytes or a datapath flow) as if received on dummy port ``name``."""
    name, packet = args
    for dp in daemon.datapaths.values():
        for odp, dev in dp.devices.items():
            if dev.name != name:
                continue
            if not isinstance(dev, DummyNetdev):
                raise UnixctlError(f"{name}: not a dummy port")
            frame = _packet(packet, odp)
            dev.inject([frame])
            daemon.forward(dp, odp, dev.recv(64))
            return ""
    raise UnixctlError(f"no such dummy netdev: {name}")


def _packet(text: str, odp: int) -> bytes:
    compact = "".join(text.split())
    if len(compact) >= 28 and all(c in "0123456789abcdefABCDEF" for c in compact):
        return bytes.fromhex(compact)
    try:
        key, _ = parse_odp_flow(text)
    except FlowParseError as exc:
        raise UnixctlError(f"{exc}") from None
    del odp  # the port is the one named, whatever in_port() says, as in OVS
    return compose_packet(key)
