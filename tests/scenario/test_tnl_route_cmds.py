"""The route table and the neighbour cache through our tools, as an operator uses them.

pvs-vswitchd runs with dummy datapaths and ``--disable-system-route`` (as
Open vSwitch's tunnel tests run it); addresses come from
``netdev-dummy/ip4addr|ip6addr``, routes from ``ovs/route/add``, neighbours
from ``tnl/neigh/set``, all through pvs-appctl. The texts are Open vSwitch's;
tests/interop/test_ovs_tnl_route.py compares them with Open vSwitch 3.1.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import subprocess
import time
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING

import pytest

from pyvswitch.ofproto.tnl_route import KernelRoute, RouteTable
from pyvswitch.vswitchd import route_sync
from pyvswitch.vswitchd.route_sync import KernelView, RouteSync
from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import ok, port, tool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

NO_KERNEL = ["--disable-system-route"]


def appctl(rundir: Path, *args: str) -> str:
    return ok("appctl", rundir, *args)


def refused(rundir: Path, *args: str) -> str:
    """The first line of the error a command gets (it must fail)."""
    result = tool("appctl", rundir, *args)
    assert result.returncode != 0, (args, result.stdout)
    return result.stderr.splitlines()[0]


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Path]:
    """br0 (dummy datapath) with dummy ports p1 and p2, and br-phy without ports."""
    with running_daemon(tmp_path, NO_KERNEL) as rundir:
        ok(
            "vsctl",
            rundir,
            "--timeout=20",
            *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
            *("--", "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=dummy"),
            *port("br0", "p1", 1),
            *port("br0", "p2", 2),
        )
        yield rundir


def test_the_setup_of_open_vswitchs_tunnel_tests(switch: Path) -> None:
    """tunnel-push-pop.at: an address on the bridge, a route through it, with a mark too."""
    assert appctl(switch, "netdev-dummy/ip4addr", "br0", "1.1.2.92/24") == "OK\n"
    assert appctl(switch, "netdev-dummy/ip6addr", "br0", "2001:cafe::92/24") == "OK\n"
    assert appctl(switch, "ovs/route/add", "1.1.2.92/24", "br0") == "OK\n"
    assert appctl(switch, "ovs/route/add", "1.1.2.92/24", "br0", "pkt_mark=1234") == "OK\n"
    assert appctl(switch, "ovs/route/add", "2001:cafe::92/24", "br0") == "OK\n"
    assert appctl(switch, "ovs/route/show") == (
        "Route Table:\n"
        "User: 1.1.2.0/24 dev br0 SRC 1.1.2.92\n"
        "User: 1.1.2.0/24 MARK 1234 dev br0 SRC 1.1.2.92\n"
        "User: 2001:ca00::/24 dev br0 SRC 2001:cafe::92\n"
    )
    assert appctl(switch, "ovs/route/lookup", "1.1.2.88") == (
        "src 1.1.2.92\ngateway ::\ndev br0\n"
    )
    assert appctl(switch, "ovs/route/lookup", "1.1.2.88", "pkt_mark=1234") == (
        "src 1.1.2.92\ngateway ::\ndev br0\n"
    )
    assert appctl(switch, "ovs/route/lookup", "2001:cafe::88") == (
        "src 2001:cafe::92\ngateway ::\ndev br0\n"
    )
    assert refused(switch, "ovs/route/lookup", "1.1.3.88") == "Not found"


def test_a_default_route_through_a_gateway(switch: Path) -> None:
    appctl(switch, "netdev-dummy/ip4addr", "br-phy", "192.0.2.10/24")
    assert appctl(switch, "ovs/route/add", "0.0.0.0/0", "br-phy", "192.0.2.1") == "OK\n"
    assert appctl(switch, "ovs/route/add", "192.0.2.0/24", "br-phy") == "OK\n"
    assert appctl(switch, "ovs/route/lookup", "198.51.100.7") == (
        "src 192.0.2.10\ngateway 192.0.2.1\ndev br-phy\n"
    )
    # The longer prefix wins: on the link, no gateway.
    assert appctl(switch, "ovs/route/lookup", "192.0.2.77") == (
        "src 192.0.2.10\ngateway ::\ndev br-phy\n"
    )
    assert appctl(switch, "ovs/route/del", "192.0.2.0/24") == "OK\n"
    assert "gateway 192.0.2.1" in appctl(switch, "ovs/route/lookup", "192.0.2.77")
    assert refused(switch, "ovs/route/del", "192.0.2.0/24") == "Not found"


def test_a_route_needs_an_address_on_its_device(switch: Path) -> None:
    """A missing address is the usual setup mistake; the refusal is Open vSwitch's."""
    assert refused(switch, "ovs/route/add", "1.1.2.0/24", "br0") == "Error while inserting route."
    # An address on another port does not help.
    appctl(switch, "netdev-dummy/ip4addr", "p1", "1.1.2.92/24")
    assert refused(switch, "ovs/route/add", "1.1.2.0/24", "br0") == "Error while inserting route."
    assert appctl(switch, "ovs/route/add", "1.1.2.0/24", "p1") == "OK\n"
    assert refused(switch, "ovs/route/add", "1.1.2.0/33", "br0") == "Invalid parameters"
    assert refused(switch, "ovs/route/add", "1.1.2.0/24", "br0", "x") == (
        "Invalid pkt_mark or gateway"
    )
    assert refused(switch, "ovs/route/lookup", "1.1.2.0/24") == "Invalid parameters"
    assert refused(switch, "netdev-dummy/ip4addr", "nosuch", "1.1.2.92/24") == (
        "Unknown Dummy Interface"
    )
    assert refused(switch, "netdev-dummy/ip4addr", "p1", "1.1.2.92/40") == (
        "1.1.2.92/40: IPv4 network prefix bits not between 0 and 32, inclusive"
    )


def test_a_refused_route_is_logged_as_open_vswitch_logs_it(tmp_path: Path) -> None:
    log = tmp_path / "pvs.log"
    with running_daemon(tmp_path, [*NO_KERNEL, f"--log-file={log}"]) as rundir:
        appctl(rundir, "vlog/set", "ovs_router:file:dbg")
        refused(rundir, "ovs/route/add", "9.9.9.0/24", "br0")
        refused(rundir, "tnl/neigh/set", "br0", "1.1.2.x", "00:11:22:33:44:55")
    text = log.read_text()
    assert "|ovs_router|DBG|src addr not available for route 9.9.9.0" in text
    assert '|socket_util|ERR|"1.1.2.x" is not a valid IP address' in text


def _wait_for(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_addresses_go_with_their_port(switch: Path) -> None:
    appctl(switch, "netdev-dummy/ip4addr", "p2", "10.0.0.1/8")
    assert appctl(switch, "ovs/route/add", "10.0.0.0/8", "p2") == "OK\n"
    ok("vsctl", switch, "--timeout=20", "del-port", "p2")
    assert refused(switch, "netdev-dummy/ip4addr", "p2", "10.0.0.1/8") == (
        "Unknown Dummy Interface"
    )
    ok(
        "vsctl",
        switch,
        "--timeout=20",
        "add-port",
        "br0",
        "p2",
        "--",
        "set",
        "Interface",
        "p2",
        "type=dummy",
    )

    def forgotten() -> bool:
        return tool("appctl", switch, "ovs/route/add", "10.1.0.0/16", "p2").returncode != 0

    # The new port has no address: a new route through it is refused, while
    # the route made before keeps its source (as in Open vSwitch).
    _wait_for(forgotten)
    assert "User: 10.0.0.0/8 dev p2 SRC 10.0.0.1\n" in appctl(switch, "ovs/route/show")
    # 0.0.0.0 takes the address away.
    appctl(switch, "netdev-dummy/ip4addr", "p2", "10.0.0.1/8")
    assert appctl(switch, "ovs/route/add", "10.1.0.0/16", "p2") == "OK\n"
    appctl(switch, "netdev-dummy/ip4addr", "p2", "0.0.0.0/0")
    assert refused(switch, "ovs/route/add", "10.2.0.0/16", "p2") == "Error while inserting route."


HEADER = (
    "IP                                            MAC                 Bridge\n"
    "==========================================================================\n"
)


def test_neighbours_set_show_and_flush(switch: Path) -> None:
    assert appctl(switch, "tnl/neigh/show") == HEADER
    assert appctl(switch, "tnl/neigh/set", "br-phy", "1.1.2.88", "0:11:22:33:44:55") == "OK\n"
    assert appctl(switch, "tnl/arp/set", "br-phy", "2001:cafe::88", "f8:bc:12:44:34:b6") == "OK\n"
    assert appctl(switch, "tnl/arp/show") == (
        HEADER
        + "1.1.2.88                                      00:11:22:33:44:55   br-phy\n"
        + "2001:cafe::88                                 f8:bc:12:44:34:b6   br-phy\n"
    )
    # A new MAC replaces the old one.
    appctl(switch, "tnl/neigh/set", "br-phy", "1.1.2.88", "00:11:22:33:44:66")
    assert "1.1.2.88                                      00:11:22:33:44:66   br-phy\n" in (
        appctl(switch, "tnl/neigh/show")
    )
    assert refused(switch, "tnl/neigh/set", "br-phy", "1.1.2", "00:11:22:33:44:55") == (
        "bad IP address"
    )
    assert refused(switch, "tnl/neigh/set", "br-phy", "1.1.2.1", "00:11:22") == "bad MAC address"
    assert appctl(switch, "tnl/neigh/flush") == "OK\n"
    assert appctl(switch, "tnl/neigh/show") == HEADER


def test_neighbours_age_on_the_virtual_clock(switch: Path) -> None:
    appctl(switch, "time/stop")
    assert appctl(switch, "tnl/neigh/aging") == "900\n"
    appctl(switch, "tnl/neigh/set", "br-phy", "1.1.2.88", "00:11:22:33:44:55")
    appctl(switch, "time/warp", "899000")
    assert "1.1.2.88" in appctl(switch, "tnl/neigh/show")
    appctl(switch, "time/warp", "1000")
    assert appctl(switch, "tnl/neigh/show") == HEADER
    # A shorter aging time shortens entries already there.
    appctl(switch, "tnl/neigh/set", "br-phy", "1.1.2.89", "00:11:22:33:44:56")
    assert appctl(switch, "tnl/neigh/aging", "10") == "OK\n"
    assert appctl(switch, "tnl/arp/aging") == "10\n"
    appctl(switch, "time/warp", "9000")
    assert "1.1.2.89" in appctl(switch, "tnl/neigh/show")
    appctl(switch, "time/warp", "1000")
    assert appctl(switch, "tnl/neigh/show") == HEADER
    for bad in ("0", "3601", "ten"):
        assert refused(switch, "tnl/neigh/aging", bad) == "bad aging value"


def test_without_kernel_routes_the_table_starts_empty(switch: Path) -> None:
    time.sleep(1.5)  # time enough for a kernel read, had one been wanted
    assert appctl(switch, "ovs/route/show") == "Route Table:\n"


def _loopback_has_127_0_0_1() -> bool:
    done = subprocess.run(
        ["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=False
    )
    return "inet 127.0.0.1/8" in done.stdout


def test_kernel_routes_are_mirrored_as_cached(tmp_path: Path) -> None:
    """Without --disable-system-route the namespace's routes appear (read, never changed)."""
    if not _loopback_has_127_0_0_1():
        pytest.skip("this namespace's loopback has no 127.0.0.1/8")
    with running_daemon(tmp_path) as rundir:

        def mirrored() -> bool:
            return "Cached: 127.0.0.1/32 dev lo SRC 127.0.0.1 local\n" in appctl(
                rundir, "ovs/route/show"
            )

        _wait_for(mirrored)
        assert appctl(rundir, "ovs/route/lookup", "127.0.0.1") == (
            "src 127.0.0.1\ngateway ::\ndev lo\n"
        )
        # A user route through a kernel device, listed among the kernel's.
        assert appctl(rundir, "ovs/route/add", "127.1.0.0/16", "lo") == "OK\n"
        show = appctl(rundir, "ovs/route/show")
        assert re.search(r"^User: 127\.1\.0\.0/16 dev lo SRC 127\.0\.0\.1$", show, re.MULTILINE)
        # Kernel routes are not the user's to delete.
        assert refused(rundir, "ovs/route/del", "127.0.0.1/32") == "Not found"


# -- keeping in step with the kernel (the reads faked, the scheduling real) -------------


class _FakeDaemon:
    def __init__(self) -> None:
        self.datapaths: dict[str, object] = {}
        self.routes = RouteTable()


def test_kernel_reads_happen_at_start_and_after_announcements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[float] = []
    view = KernelView(
        addresses={"eth0": [IPv4Interface("192.0.2.2/24")]},
        routes=[KernelRoute(IPv4Network("0.0.0.0/0"), "eth0", IPv4Address("192.0.2.1"))],
    )

    def fake_read(with_routes: bool, only: frozenset[str] | None) -> KernelView:
        assert with_routes
        assert only is None
        reads.append(time.monotonic())
        return view

    monkeypatch.setattr(route_sync, "read_kernel", fake_read)

    async def body() -> None:
        daemon = _FakeDaemon()
        sync = RouteSync(daemon, system_routes=True)  # type: ignore[arg-type]
        sync._notify_failed = True  # no real announcements: they are sent by hand below
        sync.start()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if daemon.routes.routes():
                break
        assert daemon.routes.show() == (
            "Route Table:\nCached: 0.0.0.0/0 dev eth0 GW 192.0.2.1 SRC 192.0.2.2\n"
        )
        assert daemon.routes.owner_of(IPv4Address("192.0.2.2")) == "eth0"
        version = daemon.routes.version
        # A burst of announcements makes one more read, at least MIN_GAP later.
        mine, theirs = socket.socketpair()
        mine.setblocking(False)
        sync._notify = mine
        loop = asyncio.get_running_loop()
        for _ in range(20):
            theirs.send(b"change")
            sync._on_notify(loop)
        await asyncio.sleep(route_sync.MIN_GAP + 0.3)
        assert len(reads) == 2
        assert reads[1] - reads[0] >= route_sync.MIN_GAP - 0.05
        # The same view again changes nothing a lookup could see.
        assert daemon.routes.version == version
        await sync.stop()
        theirs.close()
        assert sync._notify is None

    asyncio.run(body())


def test_a_failing_kernel_read_is_logged_once_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_read(with_routes: bool, only: frozenset[str] | None) -> KernelView:
        raise OSError("netlink says no")

    monkeypatch.setattr(route_sync, "read_kernel", failing_read)
    monkeypatch.setattr(route_sync, "POLL_INTERVAL", 0.0)
    monkeypatch.setattr(route_sync, "MIN_GAP", 0.0)
    monkeypatch.setattr(route_sync, "TICK", 0.05)

    async def body() -> None:
        daemon = _FakeDaemon()
        sync = RouteSync(daemon, system_routes=True)  # type: ignore[arg-type]
        sync._notify_failed = True
        sync.start()
        await asyncio.sleep(0.5)
        await sync.stop()
        assert daemon.routes.routes() == []

    with caplog.at_level(logging.DEBUG, logger="pyvswitch.route_table"):
        asyncio.run(body())
    failures = [r for r in caplog.records if "netlink says no" in r.getMessage()]
    assert len(failures) > 1
    assert [r.levelno for r in failures].count(logging.WARNING) == 1
