"""pvs-vswitchd: the daemon that owns the database, the devices and the datapath.

It serves the configuration database (OVSDB protocol, ``db.sock``) and the
control socket (unixctl, ``pvs-vswitchd.ctl``) in its run directory, and after
every committed transaction reconciles the database into devices, bridges and
ports -- deletions before additions -- then writes back what happened
(``Interface.ofport``, or ``-1`` and ``error``; ``mac_in_use``; ``link_state``)
and copies ``next_cfg`` to ``cur_cfg``, which is what the real ``ovs-vsctl``
waits for. Frames move between devices and the pure core
(:class:`~pyvswitch.ofproto.ofproto.Ofproto`) in one asyncio loop.

Bridges with ``datapath_type=dummy`` run the way Open vSwitch's own tests run
them: every port is an in-memory dummy device (the bridge's own port is
``dummy-internal``), and datapath port numbers follow OVS's dummy rule (the
first run of digits in the name; names starting with ``br`` add 100). Other
bridges drive real devices (system, internal, tap).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvswitch import __version__
from pyvswitch.dpif.tunnel_exec import EGRESS_PORT_MAX, EGRESS_PORT_MIN
from pyvswitch.netdev import Netdev, NetdevError, netdev_close, netdev_open
from pyvswitch.ofproto.actions import OFPP_MAX
from pyvswitch.ofproto.flow_cmd import set_fail_mode
from pyvswitch.ofproto.ofproto import Ofproto, OfprotoError
from pyvswitch.ofproto.tnl_neigh import NeighCache
from pyvswitch.ofproto.tnl_route import RouteTable
from pyvswitch.ofproto.xlate_tunnel import TUNNEL_TYPES
from pyvswitch.ovsdb.journal import JournalError
from pyvswitch.ovsdb.server import OvsdbServer, open_database
from pyvswitch.vswitchd.capture import SOCKET_NAME as CAPTURE_SOCKET
from pyvswitch.vswitchd.capture import CaptureServer
from pyvswitch.vswitchd.config import (
    BridgeConfig,
    InterfaceConfig,
    PortConfig,
    mirror_settings,
    read_config,
)
from pyvswitch.vswitchd.daemonize import DaemonizeError, Detacher, Pidfile, absolute_pidfile
from pyvswitch.vswitchd.flowstore import FLOWS_FILE, FlowStore, FlowStoreError
from pyvswitch.vswitchd.route_sync import RouteSync
from pyvswitch.vswitchd.status import mirror_statistics_updates, stats_interval_ms, status_updates
from pyvswitch.vswitchd.timeval import Clock
from pyvswitch.vswitchd.vlog import CONSOLE, OFF, Vlog, VlogError

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvswitch.ofproto.bridge import Bridge
    from pyvswitch.vswitchd.status import Running

log = logging.getLogger("pyvswitch.vswitchd")
#: Open vSwitch's modules for what tunnel configuration logs.
vport_log = logging.getLogger("pyvswitch.netdev_vport")
tunnel_log = logging.getLogger("pyvswitch.tunnel")
netdev_log = logging.getLogger("pyvswitch.netdev")

OFPP_LOCAL = 0xFFFE
#: The signals that stop the daemon cleanly, as SIGTERM and SIGINT stop ovs-vswitchd.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
DEFAULT_RUNDIR = "/var/run/pyvswitch"
BATCH = 64


def rundir_default() -> Path:
    """``$PVS_RUNDIR``, as ``$OVS_RUNDIR`` is for Open vSwitch."""
    return Path(os.environ.get("PVS_RUNDIR", DEFAULT_RUNDIR))


def dummy_odp_port(name: str) -> int | None:
    """Open vSwitch's dummy-datapath port number for ``name`` (None: no digits)."""
    digits = re.search(r"\d+", name)
    if digits is None:
        return None
    number = int(digits.group()) + (100 if name.startswith("br") else 0)
    # Port 0 is not given out by number (OVS's choose_port() wants a
    # positive one): "vif0" gets the first free port, like a name without digits.
    return number if 0 < number < 1 << 16 else None


#: The interface types a dummy datapath plays with dummy devices, as
#: ``ovs-vswitchd --enable-dummy=override`` does; any other type is refused
#: there as anywhere (a typo must not become a working port).
_DUMMY_STANDINS = frozenset(
    ("", "system", "internal", "tap", "dummy", "dummy-internal", "dummy-pmd")
)


def _datapath_kind(bridge: BridgeConfig) -> str:
    """The datapath a bridge runs on: ``dummy``, or ``netdev`` for every other type."""
    return "dummy" if bridge.datapath_type == "dummy" else "netdev"


def _device_mac(dp: Datapath, name: str) -> int | None:
    """The MAC of the device called ``name`` on ``dp`` (translation's port_mac)."""
    for dev in dp.devices.values():
        if dev.name == name:
            return int.from_bytes(dev.mac, "big")
    return None


def _port_type(dp: Datapath, iface_type: str, provider: str) -> str:
    """The port's type as dpif/show prints it.

    An internal port on a dummy datapath is a dummy device playing an internal
    one: ``dummy-internal``, as Open vSwitch names it.
    """
    if dp.kind == "dummy" and iface_type == "internal":
        return "dummy-internal"
    return provider


def _add_order(ports: tuple[PortConfig, ...]) -> list[PortConfig]:
    """The order to add ports in.

    Ports with an ``ofport_request`` first, then those that had a number
    before, then new ones, so that no newcomer takes a number another port
    asked for or held (Open vSwitch adds requested ports first too).
    """
    return sorted(
        ports,
        key=lambda p: (p.interface.ofport_request is None, p.interface.ofport_before is None),
    )


def _local_port_due(bridge: BridgeConfig, port: PortConfig) -> bool:
    """Whether a new bridge's own port is to be added before ``port`` (see reconcile()).

    It comes after the ports with an ``ofport_request``, and before its own
    Port row, whose settings apply to it.
    """
    return port.interface.ofport_request is None or port.interface.name == bridge.name


def _ofport_wanted(bridge: Bridge, iface: InterfaceConfig) -> int | None:
    """The OpenFlow port number to ask for.

    ``ofport_request``, else the number the interface had before (as
    ovs-vswitchd's iface_pick_ofport() does) if it is still free, else None
    (the bridge picks one: see Bridge.allocate_ofport()).
    """
    if iface.ofport_request is not None:
        return iface.ofport_request
    before = iface.ofport_before
    if before is not None and before < OFPP_MAX and before not in bridge.ports:
        return before
    return None


class Datapath:
    """One datapath type's core and the devices behind its ports."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ofp = Ofproto()
        self.devices: dict[int, Netdev] = {}  # odp port -> device

    @property
    def full_name(self) -> str:
        return "dummy@ovs-dummy" if self.kind == "dummy" else "netdev@ovs-netdev"


class Daemon:
    """The daemon's state: database server, datapaths, devices, control commands."""

    def __init__(
        self, rundir: Path, dbdir: Path | None = None, *, system_routes: bool = True
    ) -> None:
        self.rundir = rundir
        self.db_path = (dbdir or rundir) / "conf.db"
        db, journal = open_database(self.db_path)
        self.server = OvsdbServer(db, journal, db_path=self.db_path)
        self.server.on_commit = self._schedule_reconcile
        self.datapaths: dict[str, Datapath] = {}
        self.running: dict[str, BridgeConfig] = {}
        self._reconcile_pending = False
        self._writing_back = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop = asyncio.Event()
        #: Every time the daemon uses comes from here (see timeval.py).
        self.clock = Clock()
        self._stats_interval_ms = 0
        self._stats_due = float("-inf")
        #: pvs-tcpdump's way in (capture.sock): captures on any port.
        self.capture = CaptureServer(self)
        #: Native tunnelling's route table and neighbour cache (ovs/route/*,
        #: tnl/neigh/*), and what keeps the routes in step with the kernel.
        self.routes = RouteTable()
        #: tnl/egress_port_range: the UDP source ports tunnels pick from.
        self.tnl_port_range = (EGRESS_PORT_MIN, EGRESS_PORT_MAX)
        self.neigh = NeighCache()
        self.route_sync = RouteSync(self, system_routes=system_routes)

    # -- reconciliation --------------------------------------------------------------

    def _schedule_reconcile(self) -> None:
        if self._writing_back or self._reconcile_pending:
            return
        self._reconcile_pending = True
        if self.loop is not None:
            self.loop.call_soon(self.reconcile)

    def _datapath(self, bridge: BridgeConfig) -> Datapath:
        """The datapath ``bridge`` runs on, made when it is the first to use it."""
        kind = _datapath_kind(bridge)
        if kind not in self.datapaths:
            dp = self.datapaths[kind] = Datapath(kind)
            # One route table and neighbour cache for the whole switch, as in
            # Open vSwitch; translation asks the devices for MACs.
            dp.ofp.routes = self.routes
            dp.ofp.neigh = self.neigh
            dp.ofp.port_mac = functools.partial(_device_mac, dp)
            runtime = dp.ofp.datapath.tunnels
            runtime.port_min, runtime.port_max = self.tnl_port_range
        return self.datapaths[kind]

    @functools.cached_property
    def flow_store(self) -> FlowStore:
        """The bridges' OpenFlow rules as saved for the next start, beside the database."""
        return FlowStore(self.db_path.parent / FLOWS_FILE)

    def reconcile(self) -> None:
        """Make the running switch what the database says; write back what happened."""
        self._reconcile_pending = False
        wanted, next_cfg = read_config(self.server.db)
        wanted_by_name = {b.name: b for b in wanted}
        results: dict[Any, tuple[int, str | None]] = {}
        # Deletions first, as bridge_reconfigure() does.
        for name, running in list(self.running.items()):
            target = wanted_by_name.get(name)
            if target is None or target.datapath_type != running.datapath_type:
                self._del_bridge(running)
                continue
            if target.fail_mode != running.fail_mode:
                self._set_fail_mode(running, target.fail_mode)
            keep = {p.name: p for p in target.ports}
            for port in running.ports:
                wanted_port = keep.get(port.name)
                if wanted_port == port:
                    continue
                if wanted_port is not None and self._reconfigure_port(running, port, wanted_port):
                    continue
                self._del_port(running, port)
        for bridge in wanted:
            new = bridge.name not in self.running
            if new:
                self._add_bridge(bridge)
            running = self.running[bridge.name]
            have = {p.name for p in running.ports}
            for port in _add_order(bridge.ports):
                if new and _local_port_due(bridge, port):
                    # The bridge's own port is one of the ports Open vSwitch
                    # adds after those with an ofport_request, so on a fresh
                    # datapath they get the port numbers first.
                    self._add_local_port(bridge)
                    new = False
                if port.name not in have:
                    results[port.interface.uuid] = self._add_port(bridge, port)
            if new:
                self._add_local_port(bridge)
            self._configure_mirrors(running, bridge)
            if (bridge.mac_aging_time, bridge.mac_table_size) != (
                running.mac_aging_time,
                running.mac_table_size,
            ):
                self._configure_mac_table(bridge)
            if bridge.hwaddr is not None and bridge.hwaddr != running.hwaddr:
                self._set_bridge_mac(bridge, bridge.hwaddr)
            self.running[bridge.name] = bridge
        # A bridge that has left the database takes its saved rules with it:
        # a new bridge of the same name starts afresh.
        self.flow_store.forget(set(self.flow_store.bridges) - set(wanted_by_name))
        self._tunnel_housekeeping()
        self._write_back(results, next_cfg)

    def _set_bridge_mac(self, bridge: BridgeConfig, mac: bytes) -> None:
        """Give the bridge's own port ``mac`` (``other_config:hwaddr``)."""
        dp = self._datapath(bridge)
        local = dp.ofp.bridges[bridge.name].ports[OFPP_LOCAL].odp_port
        dev = dp.devices.get(local) if local is not None else None
        if dev is None:
            return
        try:
            dev.set_mac(mac)
        except NetdevError as exc:
            log.warning("%s: cannot set hwaddr: %s", bridge.name, exc)
        # Translation that compared addresses with the old MAC is stale.
        dp.ofp.need_revalidate = True

    def _add_bridge(self, bridge: BridgeConfig) -> None:
        """A new bridge, its own (LOCAL) port still to add (:meth:`_add_local_port`)."""
        dp = self._datapath(bridge)
        of_bridge = dp.ofp.add_bridge(bridge.name, bridge.fail_mode, with_local_port=False)
        self.flow_store.restore(of_bridge, self.clock())
        dp.ofp.on_rules_expired = self._save_flows
        self.running[bridge.name] = BridgeConfig(
            bridge.name, bridge.datapath_type, bridge.fail_mode, ()
        )

    def _add_local_port(self, bridge: BridgeConfig) -> None:
        """Give a new bridge its own port: an internal device named after it."""
        dp = self._datapath(bridge)
        local = dummy_odp_port(bridge.name) if dp.kind == "dummy" else None
        if local is not None and local in dp.ofp.datapath.ports:
            local = None
        port = dp.ofp.add_port(bridge.name, bridge.name, "internal", OFPP_LOCAL, odp_port=local)
        odp = port.odp_port
        assert odp is not None
        with contextlib.suppress(NetdevError):
            dev = netdev_open(bridge.name, "dummy" if dp.kind == "dummy" else "internal")
            dp.devices[odp] = dev
            self._watch(dp, odp, dev)

    def _configure_mac_table(self, bridge: BridgeConfig) -> None:
        """Apply ``other_config:mac-aging-time`` and ``mac-table-size`` to a running bridge.

        As in Open vSwitch, learned entries keep their age under a new aging
        time, and a table now too big forgets its least recently used
        entries at once; cached forwarding that used what went is redone.
        """
        dp = self._datapath(bridge)
        macs = dp.ofp.bridges[bridge.name].macs
        macs.set_idle_time(bridge.mac_aging_time)
        dropped = macs.set_max_entries(bridge.mac_table_size)
        dropped += macs.expire(self.clock())
        if dropped:
            dp.ofp.need_revalidate = True

    def _del_bridge(self, bridge: BridgeConfig) -> None:
        dp = self._datapath(bridge)
        for port in bridge.ports:
            self._del_port(bridge, port)
        local = dp.ofp.bridges[bridge.name].ports.get(OFPP_LOCAL)
        if local is not None and local.odp_port in dp.devices:
            self._close_device(dp, local.odp_port)
        dp.ofp.del_bridge(bridge.name)
        del self.running[bridge.name]
        if not dp.ofp.bridges:
            # As Open vSwitch closes a dpif backer no bridge uses: the
            # datapath goes (dpif/show and dpctl/dump-dps no longer list it),
            # and one made for a later bridge starts with fresh counters.
            for odp in list(dp.devices):
                self._close_device(dp, odp)
            del self.datapaths[dp.kind]

    def _set_fail_mode(self, running: BridgeConfig, fail_mode: str) -> None:
        """Change a running bridge's fail mode, keeping its ports and rules.

        Open vSwitch flushes every flow when the fail mode changes, then a
        standalone bridge gets its NORMAL flow back. We keep the user's rules
        and treat only the default NORMAL flow as Open vSwitch does.
        """
        dp = self._datapath(running)
        bridge = dp.ofp.bridges[running.name]
        set_fail_mode(bridge, fail_mode, self.clock())
        dp.ofp.need_revalidate = True
        self.running[running.name] = dataclasses.replace(running, fail_mode=fail_mode)
        self._save_flows(running.name)

    def _save_flows(self, name: str) -> None:
        """Save a bridge's rules after a change no client waits for (logged if it fails)."""
        bridge = next(
            (dp.ofp.bridges[name] for dp in self.datapaths.values() if name in dp.ofp.bridges),
            None,
        )
        error = None
        try:
            if bridge is not None:
                self.flow_store.update(bridge)
        except FlowStoreError as exc:
            error = exc
        if error is not None:
            log.error("%s", error)

    def _provider(self, dp: Datapath, port: PortConfig) -> str:
        kind = port.interface.type
        if kind in ("patch", *TUNNEL_TYPES):
            return kind
        if dp.kind == "dummy" and kind in _DUMMY_STANDINS:
            return "dummy"
        return {"": "system", "system": "system"}.get(kind, kind)

    def _add_port(self, bridge: BridgeConfig, port: PortConfig) -> tuple[int, str | None]:
        """Add one port; returns (ofport or -1, error)."""
        if port.error is not None:
            # The configuration reader refused this port (a bond): report the
            # reason on the interface rather than run part of the port.
            return -1, port.error
        dp = self._datapath(bridge)
        iface = port.interface
        if iface.name == bridge.name:
            # The bridge's own port (LOCAL), created with the bridge; its
            # Port row's VLAN settings apply to it like to any port.
            local = dp.ofp.bridges[bridge.name].ports[OFPP_LOCAL]
            local.tag = port.tag
            local.trunks = frozenset(port.trunks)
            local.vlan_mode = port.vlan_mode
            dp.ofp.need_revalidate = True
            return OFPP_LOCAL, None
        provider = self._provider(dp, port)
        options = dict(iface.options)
        try:
            dev = netdev_open(iface.name, provider, options)
        except NetdevError as exc:
            lines = getattr(exc, "log_lines", None)
            if lines:
                vport_log.warning("%s", "\n".join(lines))
                strerror = getattr(exc, "strerror", None) or "Invalid argument"
                netdev_log.warning("%s: could not set configuration (%s)", iface.name, strerror)
            return -1, str(exc)
        tunnel = getattr(dev, "tunnel", None) if provider in TUNNEL_TYPES else None
        for warning in getattr(dev, "warnings", ()):
            vport_log.warning("%s", warning)
        try:
            odp = None
            if tunnel is not None:
                # A dummy datapath numbers a shared tunnel port after its UDP
                # port (4789, 6081), as Open vSwitch's does; GRE takes the
                # first free number.
                odp = tunnel.dst_port if dp.kind == "dummy" else None
            elif provider != "patch" and dp.kind == "dummy":
                odp = dummy_odp_port(iface.name)
                if odp in dp.ofp.datapath.ports:
                    odp = None
            ofport = dp.ofp.add_port(
                bridge.name,
                port.name,
                _port_type(dp, iface.type, provider),
                _ofport_wanted(dp.ofp.bridges[bridge.name], iface),
                peer=options.get("peer"),
                tag=port.tag,
                trunks=port.trunks,
                vlan_mode=port.vlan_mode,
                odp_port=odp,
                tunnel=tunnel,
            )
        except OfprotoError as exc:
            netdev_close(dev)
            if tunnel is not None:
                # Two tunnels a receiver could not tell apart: OVS's words.
                tunnel_log.warning("%s", exc)
                message = f"could not add network device {iface.name} to ofproto (File exists)"
                log.warning("%s", message)
                return -1, message
            return -1, str(exc)
        if tunnel is not None:
            netdev_close(dev)  # configuration only, like a patch port
        elif ofport.odp_port is not None:
            dp.devices[ofport.odp_port] = dev
            self._watch(dp, ofport.odp_port, dev)
        else:
            netdev_close(dev)  # a patch port is configuration only
        running = self.running[bridge.name]
        self.running[bridge.name] = dataclasses.replace(running, ports=(*running.ports, port))
        return ofport.ofport, None

    def _reconfigure_port(self, bridge: BridgeConfig, old: PortConfig, new: PortConfig) -> bool:
        """Apply new interface options to a running device in place; False when it cannot be.

        Only a change of options alone, on a port with a device of its own
        (not a patch or tunnel port, nor the bridge's own): the port keeps
        its number, counters, learned MACs and address, as Open vSwitch
        reconfigures a netdev in place. Anything else is a new port.
        """
        same_but_options = dataclasses.replace(
            old, interface=dataclasses.replace(old.interface, options=new.interface.options)
        )
        if same_but_options != new or old.name == bridge.name:
            return False
        if old.interface.type in ("patch", *TUNNEL_TYPES):
            return False
        dp = self._datapath(bridge)
        found = dp.ofp.find_port(old.name)
        device = (
            dp.devices.get(found[1].odp_port)
            if found is not None and found[1].odp_port is not None
            else None
        )
        if device is None:
            return False
        try:
            device.configure(dict(new.interface.options))
        except NetdevError as exc:
            # The port is made again, and its Interface row gets the reason.
            log.info("%s: new options not applied in place: %s", old.name, exc)
            return False
        return True

    def _del_port(self, bridge: BridgeConfig, port: PortConfig) -> None:
        dp = self._datapath(bridge)
        of_bridge: Bridge = dp.ofp.bridges[bridge.name]
        ofport = of_bridge.port_by_name(port.name)
        if ofport is not None and ofport.ofport != OFPP_LOCAL:
            if ofport.odp_port is not None and ofport.odp_port in dp.devices:
                self._close_device(dp, ofport.odp_port)
            dp.ofp.del_port(bridge.name, port.name)
        running = self.running[bridge.name]
        self.running[bridge.name] = dataclasses.replace(
            running, ports=tuple(p for p in running.ports if p.name != port.name)
        )

    def _configure_mirrors(self, before: BridgeConfig, bridge: BridgeConfig) -> None:
        """Give a bridge the mirrors of its row (``before``: as it ran until now).

        As ovs-vswitchd, this is done on every change to the database, and
        what it logs about a mirror it ignores or trims is logged each time.
        """
        if not (before.mirrors or bridge.mirrors):
            return
        ofp = self._datapath(bridge).ofp
        ports = {p.name for p in ofp.bridges[bridge.name].ports.values()}
        mirrors = []
        for cfg in bridge.mirrors:
            mirror, messages = mirror_settings(bridge.name, cfg, ports)
            for level, text in messages:
                log.log(level, "%s", text)
            if mirror is not None:
                mirrors.append(mirror)
        for text in ofp.set_mirrors(bridge.name, mirrors):
            log.warning("%s", text)

    def _mirror_statistics(self) -> dict[str, tuple[int, int]]:
        """(packets, bytes) each running mirror sent, by the UUID of its row."""
        return {
            key: (stats.tx_packets, stats.tx_bytes)
            for dp in self.datapaths.values()
            for key, stats in dp.ofp.mirror_stats().items()
        }

    def _close_device(self, dp: Datapath, odp: int) -> None:
        dev = dp.devices.pop(odp)
        fd = dev.fileno()
        if fd is not None and self.loop is not None:
            self.loop.remove_reader(fd)
        netdev_close(dev)

    def _write_back(self, results: dict[Any, tuple[int, str | None]], next_cfg: int) -> None:
        ops: list[Any] = []
        errors = {iface_uuid: error for iface_uuid, (_, error) in results.items()}
        # A patch port's peer may have come or gone with any change, not only
        # its own: every running patch port's error is brought up to date.
        rows = self.server.db.rows("Interface")
        for iface_uuid, error in self._patch_peer_errors().items():
            if iface_uuid in results:
                errors[iface_uuid] = error
            elif tuple(rows[iface_uuid]["error"]) != (() if error is None else (error,)):
                ops.append(
                    {
                        "op": "update",
                        "table": "Interface",
                        "where": [["_uuid", "==", ["uuid", str(iface_uuid)]]],
                        "row": {"error": error if error is not None else ["set", []]},
                    }
                )
        for iface_uuid, (ofport, _) in results.items():
            error = errors[iface_uuid]
            row: dict[str, Any] = {
                "ofport": ofport,
                "error": error if error is not None else ["set", []],
            }
            ops.append(
                {
                    "op": "update",
                    "table": "Interface",
                    "where": [["_uuid", "==", ["uuid", str(iface_uuid)]]],
                    "row": row,
                }
            )
        ops += status_updates(
            self.server.db,
            self._running_interfaces(),
            statistics=False,
            egress=self._tunnel_egress(),
        )
        ops.append(
            {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"cur_cfg": next_cfg}}
        )
        self._transact_own(ops, "the configuration")
        self._log_results(results)

    def _patch_peer_errors(self) -> dict[Any, str | None]:
        """Each running patch interface's ``error``, by its UUID: None when its peer is usable.

        Usable, as in Open vSwitch: a patch port of that name on the same
        datapath whose own peer is this port. Otherwise the port stays (with
        its number) and carries Open vSwitch's words, naming the datapath
        type of its bridge.
        """
        errors: dict[Any, str | None] = {}
        for bridge in self.running.values():
            dp = self.datapaths.get(_datapath_kind(bridge))
            of_bridge = None if dp is None else dp.ofp.bridges.get(bridge.name)
            if dp is None or of_bridge is None:
                continue
            for port in bridge.ports:
                ofport = of_bridge.port_by_name(port.name)
                if ofport is None or ofport.type != "patch":
                    continue
                errors[port.interface.uuid] = (
                    None
                    if dp.ofp.patch_peer(ofport) is not None
                    else f"No usable peer '{ofport.peer}' exists in "
                    f"'{bridge.datapath_type or 'system'}' datapath."
                )
        return errors

    def _log_results(self, results: dict[Any, tuple[int, str | None]]) -> None:
        """Log each interface added or refused, as ovs-vswitchd's bridge module does."""
        where = {
            port.interface.uuid: (bridge.name, port.interface.name)
            for bridge in self.running.values()
            for port in bridge.ports
        }
        for iface_uuid, (ofport, error) in results.items():
            bridge, name = where.get(iface_uuid, ("?", str(iface_uuid)))
            if error is None:
                log.info("bridge %s: added interface %s on port %d", bridge, name, ofport)
            else:
                log.warning("bridge %s: could not add interface %s: %s", bridge, name, error)

    def _transact_own(self, ops: list[Any], what: str) -> None:
        """Commit the daemon's own write-back, which must not start a reconciliation."""
        self._writing_back = True
        try:
            results_json = self.server.transact(ops)
        finally:
            self._writing_back = False
        for result in results_json:
            if isinstance(result, dict) and "error" in result:
                log.warning("writing back %s failed: %s", what, result)

    def _running_interfaces(self) -> dict[str, Running]:
        """Each running interface by name: its device (None for a patch port) and its port."""
        found: dict[str, Running] = {}
        for bridge in self.running.values():
            of_bridge = self._datapath(bridge).ofp.bridges.get(bridge.name)
            if of_bridge is None:
                continue
            devices = self._datapath(bridge).devices
            for port in bridge.ports:
                ofport = of_bridge.port_by_name(port.name)
                if ofport is None:
                    continue
                dev = None if ofport.odp_port is None else devices.get(ofport.odp_port)
                if dev is not None or ofport.type in ("patch", *TUNNEL_TYPES):
                    found[port.interface.name] = (dev, ofport)
        return found

    def _tunnel_egress(self) -> dict[str, tuple[str, bool] | None]:
        """For each tunnel interface, the device its remote address routes by, and its carrier."""
        egress: dict[str, tuple[str, bool] | None] = {}
        for dp in self.datapaths.values():
            for tport in dp.ofp.tunnels.ports():
                remote = tport.config.remote_ip
                route = None if remote == "flow" else self.routes.lookup(remote)
                if route is None:
                    egress[tport.name] = None
                    continue
                dev = next((d for d in dp.devices.values() if d.name == route.dev), None)
                egress[tport.name] = (route.dev, dev is not None and dev.carrier)
        return egress

    def _refresh_status(self) -> None:
        """Write back status that changed and, when due, the statistics (as ovs-vswitchd)."""
        interval = stats_interval_ms(self.server.db)
        if interval != self._stats_interval_ms:
            # A new interval takes effect at once, as in Open vSwitch.
            self._stats_interval_ms = interval
            self._stats_due = float("-inf")
        now = self.clock()
        statistics = now >= self._stats_due
        if statistics:
            self._stats_due = now + interval / 1000
        ops = status_updates(
            self.server.db,
            self._running_interfaces(),
            statistics=statistics,
            egress=self._tunnel_egress(),
        )
        if statistics:
            ops += mirror_statistics_updates(self.server.db, self._mirror_statistics())
        if ops:
            log.debug("writing back the status of %d interfaces", len(ops))
            self._transact_own(ops, "interface status")

    # -- packets ---------------------------------------------------------------------

    def _watch(self, dp: Datapath, odp: int, dev: Netdev) -> None:
        fd = dev.fileno()
        if fd is not None and self.loop is not None:
            self.loop.add_reader(fd, self._on_readable, dp, odp)

    def _on_readable(self, dp: Datapath, odp: int) -> None:
        dev = dp.devices.get(odp)
        if dev is None:
            return
        frames = dev.recv(BATCH)
        if frames:
            self.forward(dp, odp, frames)

    def forward(self, dp: Datapath, odp: int, frames: list[bytes]) -> None:
        """Frames received on datapath port ``odp``: run them through the core and send."""
        src = dp.devices.get(odp)
        if src is not None:
            src.capture_rx(frames)
        for out_port, out in dp.ofp.receive(odp, frames, self.clock()).items():
            dev = dp.devices.get(out_port)
            if dev is not None:
                dev.capture_tx(out)
                dev.send(out)

    def run_once(self) -> None:
        """The periodic work: timeouts, aging and expiry at the clock's time, then write-back.

        ``time/warp`` calls it after every step, so what a warp makes happen
        is done before the next command.
        """
        now = self.clock()
        # Neighbours age first, so that the datapaths revalidate in this tick.
        self.neigh.run(now)
        for dp in self.datapaths.values():
            dp.ofp.run(now)
        self._tunnel_housekeeping()
        self._refresh_status()

    def _tunnel_housekeeping(self) -> None:
        """Keep the datapaths' view of port MTUs current; log outer packets dropped for size."""
        for dp in self.datapaths.values():
            runtime = dp.ofp.datapath.tunnels
            runtime.mtu = {odp: dev.mtu for odp, dev in dp.devices.items()}
            dropped, runtime.oversize = runtime.oversize, []
            for tnl_port, out_port, size in dropped:
                ports = dp.ofp.datapath.ports
                log.warning(
                    "%s: dropped a %d-byte tunnel packet: larger than the MTU %s of %s "
                    "(tunnels do not fragment: lower the overlay's MTU)",
                    ports.get(tnl_port, tnl_port),
                    size,
                    runtime.mtu.get(out_port, "?"),
                    ports.get(out_port, out_port),
                )

    async def _periodic(self) -> None:
        while not self.stop.is_set():
            self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 1.0)

    # -- running ---------------------------------------------------------------------

    async def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until stopped (SIGTERM, SIGINT or ``exit``).

        ``on_ready`` is called once both sockets listen and the database has
        been applied: that is when ``--detach`` lets the starting process go.
        SIGTERM and SIGINT are handled from the start (unblocked here),
        blocked while the daemon cleans up, and on return masked as they were
        when ``run()`` was called.
        """
        self.loop = asyncio.get_running_loop()
        # A stop is handled from before the first socket listens: a signal
        # that came during start-up then stops the daemon cleanly once the
        # start is done, instead of killing it with its sockets left behind.
        for sig in STOP_SIGNALS:
            self.loop.add_signal_handler(sig, self.stop.set)
        # main() holds the signals back until now (see _run()).
        entry_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        self.rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
        from pyvswitch.vswitchd.commands import register_commands  # noqa: PLC0415

        unixctl = None
        try:
            await self.server.listen(self.rundir / "db.sock")
            unixctl = await register_commands(self)
            await self.capture.listen(self.rundir / CAPTURE_SOCKET)
            self.reconcile()
            self.route_sync.start()
            log.info("pvs-vswitchd (pyvswitch) %s", __version__)
            if on_ready is not None:
                on_ready()
            periodic = asyncio.create_task(self._periodic())
            await self.stop.wait()
            periodic.cancel()
        finally:
            # From here on the daemon is stopping: a further signal waits
            # (blocked) rather than cut the clean-up short. The handlers go
            # with the loop, so this also covers main()'s last steps.
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            # Also after a failed start: no socket is left behind.
            await self.route_sync.stop()
            await self.capture.close()
            if unixctl is not None:
                await unixctl.close()
            await self.server.close()
            for dp in self.datapaths.values():
                for odp in list(dp.devices):
                    self._close_device(dp, odp)
            if self.server.journal is not None:
                self.server.journal.close()
            # As the caller had them: main() keeps them blocked to the end,
            # and a caller in a larger program gets Ctrl-C back (and its
            # children do not inherit blocked stop signals).
            signal.pthread_sigmask(signal.SIG_SETMASK, entry_mask)


#: Where ``--log-file`` writes by default: ``$PVS_LOGDIR``, as ``$OVS_LOGDIR``.
DEFAULT_LOGDIR = "/var/log/pyvswitch"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pvs-vswitchd", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rundir",
        type=Path,
        default=None,
        help=f"run directory (default $PVS_RUNDIR or {DEFAULT_RUNDIR})",
    )
    parser.add_argument(
        "--dbdir",
        type=Path,
        default=None,
        help="database directory (default $PVS_DBDIR or the run directory)",
    )
    parser.add_argument(
        "--pidfile",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="write the pid to FILE (default RUNDIR/pvs-vswitchd.pid; relative to RUNDIR)",
    )
    parser.add_argument("--detach", action="store_true", help="run in the background once ready")
    parser.add_argument(
        "--no-chdir", action="store_true", help="with --detach, stay in this directory"
    )
    parser.add_argument(
        "--log-file",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help=f"log to FILE (default $PVS_LOGDIR/pvs-vswitchd.log, PVS_LOGDIR: {DEFAULT_LOGDIR})",
    )
    parser.add_argument(
        "--disable-system-route",
        action="store_true",
        help="do not mirror the kernel's routes into the route table (as ovs-vswitchd's)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        nargs="?",
        action="append",
        metavar="SPEC",
        help="set log levels (MODULE:DESTINATION:LEVEL, e.g. -vconsole:off, -vfile:dbg); "
        "without SPEC, everything at dbg",
    )
    return parser.parse_args(argv)


def _start_logging(args: argparse.Namespace) -> Vlog:
    """Take over logging as ``-v`` and ``--log-file`` say; raises VlogError."""
    # Every module the daemon runs is imported first, so that -v can name any of them.
    import pyvswitch.vswitchd.commands  # noqa: F401, PLC0415

    vlog = Vlog("pvs-vswitchd")
    vlog.install()
    try:
        for spec in args.verbose or ():
            vlog.set_verbosity(spec)
        if args.log_file is not None:
            logdir = Path(os.environ.get("PVS_LOGDIR", DEFAULT_LOGDIR))
            vlog.set_log_file(
                Path(args.log_file) if args.log_file else logdir / "pvs-vswitchd.log"
            )
    except VlogError:
        vlog.uninstall()
        raise
    return vlog


def _refuse(message: str) -> int:
    """A start refused before the daemon ran: the message on stderr, status 1 (as ovs_fatal)."""
    sys.stderr.write(f"pvs-vswitchd: {message}\n")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        vlog = _start_logging(args)
    except VlogError as exc:
        return _refuse(str(exc))
    # Absolute paths: a detached daemon leaves the directory it was started in.
    rundir = (args.rundir or rundir_default()).absolute()
    dbdir = args.dbdir or (Path(os.environ["PVS_DBDIR"]) if "PVS_DBDIR" in os.environ else None)
    pidfile = None
    try:
        rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if dbdir is not None:
            # Made like the run directory: a fresh PVS_DBDIR needs no mkdir first.
            dbdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if args.pidfile is not None:
            pidfile = Pidfile(absolute_pidfile(args.pidfile, rundir))
            pidfile.check()
    except (OSError, DaemonizeError) as exc:
        return _refuse(str(exc))
    try:
        return _run(args, vlog, rundir, dbdir and dbdir.absolute(), pidfile)
    finally:
        vlog.uninstall()


def _run(
    args: argparse.Namespace,
    vlog: Vlog,
    rundir: Path,
    dbdir: Path | None,
    pidfile: Pidfile | None,
) -> int:
    """Start (in the background with ``--detach``), serve, and clean up."""
    on_ready = None
    if args.detach:
        detacher = Detacher()
        try:
            if detacher.fork() is not None:
                return 0
        except DaemonizeError as exc:
            # The child said why on the terminal; the log gets the parent's view too.
            log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
            return _refuse("could not detach from foreground session")

        def on_ready() -> None:
            # As Open vSwitch: a detached daemon has no terminal to log to.
            vlog.set_levels(None, CONSOLE, OFF)
            detacher.ready(chdir=not args.no_chdir)

    # A stop signal that comes before the event loop can handle it (while the
    # pid file is made and the database opened) waits until Daemon.run() has
    # installed its handlers, so that it too stops the daemon cleanly.
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        if pidfile is not None:
            pidfile.create()
        daemon = Daemon(rundir, dbdir, system_routes=not args.disable_system_route)
        asyncio.run(daemon.run(on_ready))
    except (OSError, JournalError, DaemonizeError) as exc:
        log.error("cannot start: %s", exc)  # noqa: TRY400 - the message is the whole story
        return 1
    finally:
        if pidfile is not None:
            pidfile.remove()
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
