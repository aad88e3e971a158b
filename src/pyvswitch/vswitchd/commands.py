"""The daemon's control commands, as ovs-appctl knows them from ovs-vswitchd.

``dpif/show``, ``dpctl/dump-flows``, ``ofproto/trace``, ``fdb/show``,
``netdev-dummy/receive`` and ``exit``, with Open vSwitch's output layouts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvswitch.dpif.datapath import format_megaflow
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.odp_text import compose_packet, parse_odp_flow
from pyvswitch.flow.ofp_text import parse_match
from pyvswitch.netdev.dummy import DummyNetdev
from pyvswitch.vswitchd.unixctl import UnixctlError, UnixctlServer

if TYPE_CHECKING:
    from pyvswitch.vswitchd.daemon import Daemon

OFPP_LOCAL = 0xFFFE


async def register_commands(daemon: Daemon) -> UnixctlServer:
    """Start the control socket with the daemon's commands on it."""
    server = UnixctlServer()
    server.register("dpif/show", "", 0, 0, lambda _args: dpif_show(daemon))
    server.register("dpctl/dump-flows", "[dp]", 0, 1, lambda _args: dump_flows(daemon))
    server.register(
        "ofproto/trace",
        "{[dp_name] odp_flow | bridge br_flow}",
        2,
        2,
        lambda args: trace(daemon, args),
    )
    server.register("fdb/show", "bridge", 1, 1, lambda args: fdb_show(daemon, args[0]))
    server.register(
        "netdev-dummy/receive", "name packet|flow...", 2, 2, lambda args: receive(daemon, args)
    )
    server.register("exit", "", 0, 0, lambda _args: _exit(daemon))
    await server.listen(daemon.rundir / "pvs-vswitchd.ctl")
    return server


def _exit(daemon: Daemon) -> str:
    daemon.stop.set()
    return ""


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
                if port.type == "patch":
                    kind_text = f"patch: peer={port.peer}"
                elif port.ofport == OFPP_LOCAL:
                    kind_text = "dummy-internal" if dp.kind == "dummy" else "internal"
                else:
                    kind_text = port.type
                out.append(f"    {port.name} {port.ofport}/{odp}: ({kind_text})")
    return "\n".join(out) + "\n"


def dump_flows(daemon: Daemon) -> str:
    now = daemon.clock()
    lines = []
    for dp in daemon.datapaths.values():
        lines += [format_megaflow(flow, now) for flow in dp.ofp.datapath.flows()]
    return "".join(line + "\n" for line in lines)


def trace(daemon: Daemon, args: list[str]) -> str:
    """Both forms: ``DATAPATH ODP_FLOW`` and ``BRIDGE OPENFLOW_FLOW``."""
    name, flow_text = args
    for dp in daemon.datapaths.values():
        bridge = dp.ofp.bridges.get(name)
        if bridge is not None:
            names = {p.name: p.ofport for p in bridge.ports.values()}
            try:
                match, _ = parse_match(flow_text, port_names=names)
            except FlowParseError as exc:
                raise UnixctlError(f"Bad openflow flow syntax: {flow_text}: {exc}") from None
            return dp.ofp.trace_openflow(name, match.value, daemon.clock()) + "\n"
    found = next((d for d in daemon.datapaths.values() if d.full_name.endswith(name)), None)
    if found is None:
        raise UnixctlError(f"{name}: unknown bridge")
    try:
        key, _ = parse_odp_flow(flow_text)
    except FlowParseError as exc:
        raise UnixctlError(str(exc)) from None
    return found.ofp.trace(key, daemon.clock()) + "\n"


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
