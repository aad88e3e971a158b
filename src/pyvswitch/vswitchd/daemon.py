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
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvswitch.netdev import Netdev, NetdevError, netdev_close, netdev_open
from pyvswitch.ofproto.ofproto import Ofproto, OfprotoError
from pyvswitch.ovsdb.server import OvsdbServer, open_database
from pyvswitch.vswitchd.config import BridgeConfig, PortConfig, read_config

if TYPE_CHECKING:
    from pyvswitch.ofproto.bridge import Bridge

log = logging.getLogger("pyvswitch.vswitchd")

OFPP_LOCAL = 0xFFFE
DEFAULT_RUNDIR = "/var/run/pyvswitch"
BATCH = 32


def rundir_default() -> Path:
    """``$PVS_RUNDIR``, as ``$OVS_RUNDIR`` is for Open vSwitch."""
    return Path(os.environ.get("PVS_RUNDIR", DEFAULT_RUNDIR))


def dummy_odp_port(name: str) -> int | None:
    """Open vSwitch's dummy-datapath port number for ``name`` (None: no digits)."""
    digits = re.search(r"\d+", name)
    if digits is None:
        return None
    return int(digits.group()) + (100 if name.startswith("br") else 0)


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

    def __init__(self, rundir: Path, dbdir: Path | None = None) -> None:
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
        self.clock = time.monotonic

    # -- reconciliation --------------------------------------------------------------

    def _schedule_reconcile(self) -> None:
        if self._writing_back or self._reconcile_pending:
            return
        self._reconcile_pending = True
        if self.loop is not None:
            self.loop.call_soon(self.reconcile)

    def _datapath(self, bridge: BridgeConfig) -> Datapath:
        kind = "dummy" if bridge.datapath_type == "dummy" else "netdev"
        if kind not in self.datapaths:
            self.datapaths[kind] = Datapath(kind)
        return self.datapaths[kind]

    def reconcile(self) -> None:
        """Make the running switch what the database says; write back what happened."""
        self._reconcile_pending = False
        wanted, next_cfg = read_config(self.server.db)
        wanted_by_name = {b.name: b for b in wanted}
        results: dict[Any, tuple[int, str | None]] = {}
        # Deletions first, as bridge_reconfigure() does.
        for name, running in list(self.running.items()):
            target = wanted_by_name.get(name)
            if target is None or (target.datapath_type, target.fail_mode) != (
                running.datapath_type,
                running.fail_mode,
            ):
                self._del_bridge(running)
                continue
            keep = {p.name: p for p in target.ports}
            for port in running.ports:
                if keep.get(port.name) != port:
                    self._del_port(running, port)
        for bridge in wanted:
            if bridge.name not in self.running:
                self._add_bridge(bridge)
            running = self.running[bridge.name]
            have = {p.name for p in running.ports}
            added = []
            for port in bridge.ports:
                if port.name not in have:
                    results[port.interface.uuid] = self._add_port(bridge, port)
                added.append(port)
            self.running[bridge.name] = bridge
        self._write_back(results, next_cfg)

    def _add_bridge(self, bridge: BridgeConfig) -> None:
        dp = self._datapath(bridge)
        local = dummy_odp_port(bridge.name) if dp.kind == "dummy" else None
        if local is not None and local in dp.ofp.datapath.ports:
            local = None
        dp.ofp.add_bridge(bridge.name, bridge.fail_mode, local_odp_port=local)
        self.running[bridge.name] = BridgeConfig(
            bridge.name, bridge.datapath_type, bridge.fail_mode, ()
        )
        odp = dp.ofp.bridges[bridge.name].ports[OFPP_LOCAL].odp_port
        assert odp is not None
        with contextlib.suppress(NetdevError):
            dev = netdev_open(bridge.name, "dummy" if dp.kind == "dummy" else "internal")
            dp.devices[odp] = dev
            self._watch(dp, odp, dev)

    def _del_bridge(self, bridge: BridgeConfig) -> None:
        dp = self._datapath(bridge)
        for port in bridge.ports:
            self._del_port(bridge, port)
        local = dp.ofp.bridges[bridge.name].ports.get(OFPP_LOCAL)
        if local is not None and local.odp_port in dp.devices:
            self._close_device(dp, local.odp_port)
        dp.ofp.del_bridge(bridge.name)
        del self.running[bridge.name]

    def _provider(self, dp: Datapath, port: PortConfig) -> str:
        kind = port.interface.type
        if kind == "patch":
            return "patch"
        if dp.kind == "dummy":
            return "dummy"
        return {"": "system", "system": "system"}.get(kind, kind)

    def _add_port(self, bridge: BridgeConfig, port: PortConfig) -> tuple[int, str | None]:
        """Add one port; returns (ofport or -1, error)."""
        dp = self._datapath(bridge)
        iface = port.interface
        if iface.name == bridge.name:
            # The bridge's own port (LOCAL), created with the bridge.
            return OFPP_LOCAL, None
        provider = self._provider(dp, port)
        options = dict(iface.options)
        try:
            dev = netdev_open(iface.name, provider, options)
        except NetdevError as exc:
            return -1, str(exc)
        try:
            odp = None
            if provider != "patch" and dp.kind == "dummy":
                odp = dummy_odp_port(iface.name)
                if odp in dp.ofp.datapath.ports:
                    odp = None
            ofport = dp.ofp.add_port(
                bridge.name,
                port.name,
                provider,
                iface.ofport_request,
                peer=options.get("peer"),
                tag=port.tag,
                trunks=port.trunks,
                vlan_mode=port.vlan_mode,
                odp_port=odp,
            )
        except OfprotoError as exc:
            netdev_close(dev)
            return -1, str(exc)
        if ofport.odp_port is not None:
            dp.devices[ofport.odp_port] = dev
            self._watch(dp, ofport.odp_port, dev)
        else:
            netdev_close(dev)  # a patch port is configuration only
        running = self.running[bridge.name]
        self.running[bridge.name] = BridgeConfig(
            running.name, running.datapath_type, running.fail_mode, (*running.ports, port)
        )
        return ofport.ofport, None

    def _del_port(self, bridge: BridgeConfig, port: PortConfig) -> None:
        dp = self._datapath(bridge)
        of_bridge: Bridge = dp.ofp.bridges[bridge.name]
        ofport = of_bridge.port_by_name(port.name)
        if ofport is not None and ofport.ofport != OFPP_LOCAL:
            if ofport.odp_port is not None and ofport.odp_port in dp.devices:
                self._close_device(dp, ofport.odp_port)
            dp.ofp.del_port(bridge.name, port.name)
        running = self.running[bridge.name]
        self.running[bridge.name] = BridgeConfig(
            running.name,
            running.datapath_type,
            running.fail_mode,
            tuple(p for p in running.ports if p.name != port.name),
        )

    def _close_device(self, dp: Datapath, odp: int) -> None:
        dev = dp.devices.pop(odp)
        fd = dev.fileno()
        if fd is not None and self.loop is not None:
            self.loop.remove_reader(fd)
        netdev_close(dev)

    def _write_back(self, results: dict[Any, tuple[int, str | None]], next_cfg: int) -> None:
        ops: list[Any] = []
        for iface_uuid, (ofport, error) in results.items():
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
        ops.append(
            {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"cur_cfg": next_cfg}}
        )
        self._writing_back = True
        try:
            results_json = self.server.transact(ops)
        finally:
            self._writing_back = False
        for result in results_json:
            if isinstance(result, dict) and "error" in result:
                log.warning("writing back the configuration failed: %s", result)

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

    async def _periodic(self) -> None:
        while not self.stop.is_set():
            for dp in self.datapaths.values():
                dp.ofp.run(self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 1.0)

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.server.listen(self.rundir / "db.sock")
        from pyvswitch.vswitchd.commands import register_commands  # noqa: PLC0415

        unixctl = await register_commands(self)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stop.set)
        self.reconcile()
        periodic = asyncio.create_task(self._periodic())
        await self.stop.wait()
        periodic.cancel()
        await unixctl.close()
        await self.server.close()
        for dp in self.datapaths.values():
            for odp in list(dp.devices):
                self._close_device(dp, odp)
        if self.server.journal is not None:
            self.server.journal.close()


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--pidfile", action="store_true", help="write RUNDIR/pvs-vswitchd.pid")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    rundir = args.rundir or rundir_default()
    dbdir = args.dbdir or (Path(os.environ["PVS_DBDIR"]) if "PVS_DBDIR" in os.environ else None)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s|%(name)s|%(levelname)s|%(message)s",
    )
    rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pidfile = rundir / "pvs-vswitchd.pid"
    if args.pidfile:
        pidfile.write_text(f"{os.getpid()}\n")
    try:
        asyncio.run(Daemon(rundir, dbdir).run())
    finally:
        if args.pidfile:
            with contextlib.suppress(FileNotFoundError):
                pidfile.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
