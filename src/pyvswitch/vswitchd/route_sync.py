"""Keep the switch's route table in step with the kernel and with its devices' addresses.

Open vSwitch mirrors the kernel's routes of its network namespace into its
own table (``lib/route-table.c``: the main, default and local tables,
unicast and local routes, IPv4 and IPv6), listed as ``Cached:``; and it
reads a device's addresses when it needs a route's source address or must
recognise tunnel packets addressed to the switch. :class:`RouteSync` does
the same for pvs-vswitchd:

* addresses of dummy devices (set by ``netdev-dummy/ip4addr|ip6addr``), read
  from the devices themselves, at once when a command sets them and each
  second (a deleted port's addresses go);
* with real devices, the kernel's view, read through rtnetlink with pyroute2
  in a helper thread so the event loop never waits on it: when the daemon
  starts, whenever the kernel announces a change of routes, addresses or
  links (a netlink socket subscribed to those groups, read from the loop),
  and every 60 s in case an announcement was lost. Without that socket
  (a kernel that refuses it) the kernel is read every 2 s instead. A burst of
  announcements causes one read, and reads are at least 0.5 s apart.

Kernel routes are mirrored unless the daemon runs with
``--disable-system-route`` (as ovs-vswitchd's option, which Open vSwitch's
own tests use with dummy datapaths). Then only the addresses of the real
devices pvs-vswitchd owns are read, and nothing at all from the kernel when
it owns none. With kernel routes, the addresses of every device of the
namespace are read, because a kernel route's source address comes from its
output device, whichever it is.

Nothing here raises into the event loop: a failed read is logged (once at
warning level until a read succeeds again) and the table keeps what it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_network
from typing import TYPE_CHECKING, Any

from pyvswitch.netdev.dummy import DummyNetdev
from pyvswitch.ofproto.tnl_route import KernelRoute

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pyvswitch.ofproto.tnl_route import IPInterface
    from pyvswitch.vswitchd.daemon import Daemon

log = logging.getLogger("pyvswitch.route_table")

#: Seconds between looks at the dummy devices' addresses and the set of devices.
TICK = 1.0
#: Seconds between kernel reads when no change announcements can be had.
POLL_INTERVAL = 2.0
#: Seconds between kernel reads with announcements, in case one was lost.
SAFETY_INTERVAL = 60.0
#: The fewest seconds between two kernel reads.
MIN_GAP = 0.5

# rtnetlink multicast groups (linux/rtnetlink.h RTMGRP_*).
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_IFADDR = 0x100
_RTMGRP_IPV6_ROUTE = 0x400

# Route message values (linux/rtnetlink.h).
_RTN_UNICAST = 1
_RTN_LOCAL = 2
_RT_SCOPE_NOWHERE = 255
#: RT_TABLE_UNSPEC, RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL: the tables
#: Open vSwitch mirrors.
_STANDARD_TABLES = frozenset((0, 253, 254, 255))


@dataclass
class KernelView:
    """What one read of the kernel found: addresses by device, and routes in dump order."""

    addresses: dict[str, list[IPInterface]] = field(default_factory=dict)
    routes: list[KernelRoute] = field(default_factory=list)


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def kernel_routes(messages: Iterable[Any], names: dict[int, str]) -> list[KernelRoute]:
    """The routes Open vSwitch would mirror, from rtnetlink route messages (pyroute2's).

    Unicast and local routes of the standard tables, with an output device;
    not multipath routes, which Open vSwitch 3.1 skips too.
    """
    found = []
    for msg in messages:
        family = msg["family"]
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        table = _attr(msg, "RTA_TABLE")
        table = msg["table"] if table is None else table
        if table not in _STANDARD_TABLES:
            continue
        if msg["type"] not in (_RTN_UNICAST, _RTN_LOCAL) or msg["scope"] == _RT_SCOPE_NOWHERE:
            continue
        oif = _attr(msg, "RTA_OIF")
        if oif is None or oif not in names:
            continue
        # No destination: a default route.
        dst = _attr(msg, "RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")  # noqa: S104
        gateway = _attr(msg, "RTA_GATEWAY")
        found.append(
            KernelRoute(
                prefix=ip_network(f"{dst}/{msg['dst_len']}", strict=False),
                dev=names[oif],
                gateway=ip_address(gateway) if gateway else None,
                local=msg["type"] == _RTN_LOCAL,
                mark=_attr(msg, "RTA_MARK") or 0,
            )
        )
    return found


def kernel_addresses(
    messages: Iterable[Any], names: dict[int, str]
) -> dict[str, list[IPInterface]]:
    """Each device's addresses, from rtnetlink address messages, in the kernel's order."""
    found: dict[str, list[IPInterface]] = {}
    for msg in messages:
        name = names.get(msg["index"])
        if name is None:
            continue
        iface: IPInterface
        if msg["family"] == socket.AF_INET:
            local = _attr(msg, "IFA_LOCAL") or _attr(msg, "IFA_ADDRESS")
            iface = IPv4Interface(f"{local}/{msg['prefixlen']}")
        elif msg["family"] == socket.AF_INET6:
            iface = IPv6Interface(f"{_attr(msg, 'IFA_ADDRESS')}/{msg['prefixlen']}")
        else:
            continue
        found.setdefault(name, []).append(iface)
    return found


def _import_pyroute2() -> None:
    """Import pyroute2 (about 0.3 s, once), so that later imports find it loaded."""
    import pyroute2  # type: ignore[import-untyped, unused-ignore]  # noqa: F401, PLC0415


def read_kernel(with_routes: bool, only: frozenset[str] | None) -> KernelView:
    """Read the namespace's addresses (of devices in ``only``, if given) and routes.

    Blocking: run it in a thread.
    """
    from pyroute2 import IPRoute  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415

    # pyroute2 logs every netlink message at debug level (its import sets its
    # logger to let everything through): its own business, not the daemon's,
    # or ``-vconsole:dbg`` would drown in it. Its warnings still reach the log.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    with IPRoute() as ipr:
        names = {link["index"]: _attr(link, "IFLA_IFNAME") for link in ipr.get_links()}
        if only is not None:
            names = {index: name for index, name in names.items() if name in only}
        view = KernelView(addresses=kernel_addresses(ipr.get_addr(), names))
        if with_routes:
            view.routes = kernel_routes(ipr.route("dump", family=socket.AF_UNSPEC), names)
    return view


class RouteSync:
    """Feeds ``daemon.routes`` with device addresses and (optionally) kernel routes."""

    def __init__(self, daemon: Daemon, *, system_routes: bool = True) -> None:
        self.daemon = daemon
        self.system_routes = system_routes
        self._kernel_addresses: dict[str, list[IPInterface]] = {}
        self._pushed: set[str] = set()
        self._applied: tuple[Any, ...] | None = None
        self._owned: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._reading: asyncio.Future[KernelView] | None = None
        self._dirty = True
        self._waiting = False
        self._last_read = float("-inf")
        self._notify: socket.socket | None = None
        self._notify_failed = False
        self._failing = False

    # -- device addresses (no I/O) ------------------------------------------------------

    def _dummy_addresses(self) -> dict[str, list[IPInterface]]:
        return {
            dev.name: dev.addresses
            for dp in self.daemon.datapaths.values()
            for dev in dp.devices.values()
            if isinstance(dev, DummyNetdev) and dev.addresses
        }

    def _owned_real_devices(self) -> frozenset[str]:
        return frozenset(
            dev.name
            for dp in self.daemon.datapaths.values()
            for dev in dp.devices.values()
            if not isinstance(dev, DummyNetdev)
        )

    def sync_devices(self) -> None:
        """Give the route table the addresses devices have now (dummy ones win a name clash)."""
        merged = {**self._kernel_addresses, **self._dummy_addresses()}
        routes = self.daemon.routes
        for gone in self._pushed - set(merged):
            routes.set_device_addresses(gone, ())
        for name, addresses in merged.items():
            routes.set_device_addresses(name, addresses)
        self._pushed = set(merged)

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        """Begin, on the running event loop (the first kernel read starts at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop reading and close the notification socket; routes stay as they are."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._reading is not None:
            # A read still running in its thread finds its result unwanted
            # (and the loop maybe closed): cancelling says so.
            self._reading.cancel()
            self._reading = None
        self._close_notify()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _kernel_wanted(self) -> bool:
        return self.system_routes or bool(self._owned)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._tick(loop)
            except Exception:  # nothing may escape into the event loop
                log.exception("route synchronisation failed")
            await asyncio.sleep(TICK)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sync_devices()
        owned = self._owned_real_devices()
        if owned != self._owned:
            self._owned = owned
            self._dirty = True
        if not self._kernel_wanted():
            self._close_notify()
            self._kernel_addresses = {}
            return
        if self._notify is None and not self._notify_failed:
            self._open_notify(loop)
        interval = POLL_INTERVAL if self._notify is None else SAFETY_INTERVAL
        if loop.time() - self._last_read >= interval:
            self._dirty = True
        self._maybe_read(loop)

    def _maybe_read(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a kernel read if one is due, none is running and the last was long enough ago."""
        if not self._dirty or self._reading is not None or not self._kernel_wanted():
            return
        wait = self._last_read + MIN_GAP - loop.time()
        if wait > 0:
            if not self._waiting:
                self._waiting = True
                loop.call_later(wait, self._read_after_gap, loop)
            return
        if self._pool is None:
            # pyroute2 is imported here, on the loop's thread, before any
            # read runs in the helper thread: importing it in two threads at
            # once (the helper's read and, say, the tap provider's first use
            # while reconciling) fails on its circular imports with "cannot
            # import name ... from partially initialized module".
            _import_pyroute2()
        self._dirty = False
        self._last_read = loop.time()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pvs-route")
        only = None if self.system_routes else self._owned
        self._reading = loop.run_in_executor(self._pool, read_kernel, self.system_routes, only)
        self._reading.add_done_callback(lambda fut: self._read_done(loop, fut))

    def _read_after_gap(self, loop: asyncio.AbstractEventLoop) -> None:
        self._waiting = False
        if self._task is None:
            # Stopped while this call waited: no new reader thread.
            return
        self._maybe_read(loop)

    def _read_done(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[KernelView]
    ) -> None:
        self._reading = None
        if future.cancelled():
            return
        try:
            view = future.result()
        except Exception as exc:  # noqa: BLE001 - a failed read must not stop the daemon
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "reading the kernel's routes and addresses failed: %s", exc)
            self._failing = True
            return
        self._failing = False
        try:
            self._apply(view)
        except Exception:  # a bug here must not stop the daemon
            log.exception("applying the kernel's routes failed")
        if self._dirty:
            self._maybe_read(loop)

    def _apply(self, view: KernelView) -> None:
        self._kernel_addresses = view.addresses
        self.sync_devices()
        if not self.system_routes:
            return
        # Source addresses are chosen when a route goes in, so the routes are
        # put in again when either they or the addresses changed.
        state = (
            tuple(view.routes),
            tuple((name, tuple(a)) for name, a in sorted(view.addresses.items())),
        )
        if state != self._applied:
            self.daemon.routes.replace_cached(view.routes)
            self._applied = state
            log.debug("mirrored %d kernel routes", len(view.routes))

    # -- change announcements ------------------------------------------------------------

    def _open_notify(self, loop: asyncio.AbstractEventLoop) -> None:
        groups = _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV6_IFADDR
        if self.system_routes:
            groups |= _RTMGRP_IPV4_ROUTE | _RTMGRP_IPV6_ROUTE
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        except OSError as exc:
            self._notify_failed = True
            log.info("no route change announcements (%s): reading every %g s", exc, POLL_INTERVAL)
            return
        try:
            sock.bind((0, groups))
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._on_notify, loop)
        except OSError as exc:
            sock.close()
            self._notify_failed = True
            log.info("no route change announcements (%s): reading every %g s", exc, POLL_INTERVAL)
            return
        self._notify = sock

    def _close_notify(self) -> None:
        if self._notify is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._notify.fileno())
        self._notify.close()
        self._notify = None

    def _on_notify(self, loop: asyncio.AbstractEventLoop) -> None:
        """Something changed in the kernel: empty the socket, then read the kernel again.

        The messages themselves are not parsed: a full read is simple and
        cheap, and an overrun socket (ENOBUFS) means the same thing.
        """
        sock = self._notify
        if sock is None:
            return
        for _ in range(1024):
            try:
                if not sock.recv(65536):
                    break
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # ENOBUFS: announcements were lost, which the read covers too.
                log.debug("route change announcements: %s", exc)
                break
        self._dirty = True
        self._maybe_read(loop)
