"""The route table's and neighbour cache's commands, next to Open vSwitch 3.1's.

A private Open vSwitch and a pvs-vswitchd, both with dummy datapaths and
without the kernel's routes (``--disable-system-route``), build the same
bridges and get the same commands through the same client, the real
``ovs-appctl``: ``netdev-dummy/ip4addr|ip6addr``, ``ovs/route/add|del|show|
lookup`` and ``tnl/neigh/*`` (``tnl/arp/*``), valid and not. Exit status,
output and the error line must be the same, byte for byte.

Neighbour listings are compared as sorted lines: Open vSwitch prints them in
its hash table's order, which depends on a random seed (its own tests sort
them too). A last test starts both with the kernel's routes of this
namespace (read only) and compares the ``Cached:`` routes they list.
"""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import (
    SCHEMA,
    OvsSandbox,
    require_ovs,
    started_sandbox,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

Reply = tuple[int, str, str]

TOPOLOGY = [
    *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
    *("--", "add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"),
    *("--", "add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=dummy"),
    "ofport_request=1",
    *("--", "add-port", "br0", "vif0", "--", "set", "Interface", "vif0", "type=internal"),
    *("--", "add-port", "br0", "patch0", "--", "set", "Interface", "patch0", "type=patch"),
    *("options:peer=patch1", "ofport_request=10"),
    *("--", "add-port", "br1", "patch1", "--", "set", "Interface", "patch1", "type=patch"),
    *("options:peer=patch0", "ofport_request=11"),
]


class Pair:
    """The same commands to Open vSwitch and to pvs-vswitchd, through ovs-appctl."""

    def __init__(self, ovs: OvsSandbox, rundir: Path) -> None:
        self.ovs = ovs
        self.rundir = rundir

    def ovs_appctl(self, *args: str) -> Reply:
        done = self.ovs.appctl(*args, check=False)
        return done.returncode, done.stdout, done.stderr.split("\n", 1)[0]

    def pvs_appctl(self, *args: str) -> Reply:
        done = subprocess.run(
            ["ovs-appctl", "--timeout=20", "-t", str(self.rundir / "pvs-vswitchd.ctl"), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return done.returncode, done.stdout, done.stderr.split("\n", 1)[0]

    def same(self, *args: str) -> Reply:
        """Run one command on both; they must answer alike. Returns the answer."""
        ovs, pvs = self.ovs_appctl(*args), self.pvs_appctl(*args)
        assert pvs == ovs, args
        return ovs

    def vsctl_both(self, *args: str) -> None:
        self.ovs.vsctl(*args)
        subprocess.run(
            ["ovs-vsctl", "--timeout=20", f"--db=unix:{self.rundir / 'db.sock'}", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A fresh pair for each test: the route table and the cache are per process."""
    with (
        started_sandbox() as ovs,
        running_daemon(tmp_path, ["--disable-system-route"]) as rundir,
    ):
        both = Pair(ovs, rundir)
        both.vsctl_both(*TOPOLOGY)
        yield both


def _run_all(pair: Pair, commands: list[str]) -> None:
    """Each command on both, in turn; neighbour listings are compared as sorted lines.

    Open vSwitch lists neighbours in its hash table's order, which depends on
    a random seed: its own tests sort the listing too.
    """
    for command in commands:
        args = command.split(" ")
        if args[0] in ("tnl/neigh/show", "tnl/arp/show"):
            assert _sorted_show(pair.pvs_appctl(*args)) == _sorted_show(pair.ovs_appctl(*args))
        else:
            pair.same(*args)


def _sorted_show(reply: Reply) -> tuple[int, list[str], str]:
    lines = reply[1].splitlines()
    return reply[0], lines[:2] + sorted(lines[2:]), reply[2]


def test_list_commands_has_the_same_usages(pair: Pair) -> None:
    wanted = (
        "ovs/route/",
        "tnl/neigh/",
        "tnl/arp/",
        "netdev-dummy/ip4addr",
        "netdev-dummy/ip6addr",
    )

    def ours(listing: str) -> list[str]:
        return [line for line in listing.splitlines() if line.strip().startswith(wanted)]

    ovs = ours(pair.ovs_appctl("list-commands")[1])
    assert len(ovs) == 14
    assert ours(pair.pvs_appctl("list-commands")[1]) == ovs


def test_dummy_addresses(pair: Pair) -> None:
    _run_all(
        pair,
        [
            "netdev-dummy/ip4addr nosuch 1.1.2.92/24",
            "netdev-dummy/ip4addr patch0 1.1.2.92/24",
            "netdev-dummy/ip4addr br0 1.1.2.92",
            "netdev-dummy/ip4addr br0 1.1.2.92/33",
            "netdev-dummy/ip4addr br0 1.1.2.92/-1",
            "netdev-dummy/ip4addr br0 1.1.2.x/24",
            "netdev-dummy/ip4addr br0 1.1.2.92/24x",
            "netdev-dummy/ip4addr br0 1.1.2.92/0x10",
            "netdev-dummy/ip4addr br0 0x1.1.2.3/8",
            "netdev-dummy/ip4addr br0 1.1.2.92/255.255.255.0",
            "netdev-dummy/ip4addr br0 1.1.2.300/24",
            "netdev-dummy/ip4addr br0 01.1.2.3/010",
            "netdev-dummy/ip4addr br0",
            "netdev-dummy/ip6addr nosuch ::1/64",
            "netdev-dummy/ip6addr br0 2001:db8::1",
            "netdev-dummy/ip6addr br0 2001:db8::1/129",
            "netdev-dummy/ip6addr br0 2001:db8::x/64",
            "netdev-dummy/ip6addr br0 1.2.3.4/24",
            "netdev-dummy/ip6addr br0 2001:db8::1/ffff::",
            "netdev-dummy/ip6addr br0 2001:db8::1/ffff:ff::",
            "netdev-dummy/ip6addr br0 2001:db8::1/0:0",
            "netdev-dummy/ip6addr br0 2001:db8::1%eth0/64",
            "netdev-dummy/ip6addr br0 ::ffff:1.2.3.4/120",
            "netdev-dummy/ip4addr p1 10.0.0.1/8",
            "netdev-dummy/ip4addr vif0 10.1.0.1/16",
        ],
    )


#: Addresses both switches get before the route tests.
ADDRESSES = [
    "netdev-dummy/ip4addr br0 1.1.2.92/24",
    "netdev-dummy/ip6addr br0 2001:cafe::92/64",
    "netdev-dummy/ip4addr p1 10.0.0.1/8",
]


def test_routes_without_an_address_are_refused(pair: Pair) -> None:
    _run_all(
        pair,
        [
            "ovs/route/add 1.1.2.0/24 br0",
            "ovs/route/show",
            "ovs/route/add 2001:db8::/32 br0",
            "ovs/route/add 10.0.0.0/8 nosuchdev",
        ],
    )


def test_route_add_show_lookup_del(pair: Pair) -> None:
    _run_all(
        pair,
        [
            *ADDRESSES,
            "ovs/route/add 1.1.2.300/24 br0",
            "ovs/route/add 1.1.2.92 br0",
            "ovs/route/add 1.1.2.92/255.255.0.0 br0",
            "ovs/route/add 1.1.2.92/255.0.255.0 br0",
            "ovs/route/add foo br0",
            "ovs/route/add 0.0.0.0/0 br0 1.1.2.1",
            "ovs/route/add 0.0.0.0/0 br0 1.1.2.1 pkt_mark=0x10",
            "ovs/route/add 0.0.0.0/0 br0 pkt_mark=-1",
            "ovs/route/add 0.0.0.0/0 br0 zz",
            "ovs/route/add 0.0.0.0/0 br0 1.1.2.1 zz",
            "ovs/route/add 0.0.0.0/0 br0 1.1.2.1 pkt_mark=3 pkt_mark=4",
            "ovs/route/add 9.9.9.0/24 br0 5.5.5.5",
            "ovs/route/add 9.9.8.0/24 p1",
            "ovs/route/add 10.2.0.0/16 p1",
            "ovs/route/add 9.9.7.0/24 p1 10.1.1.1",
            "ovs/route/add 9.9.7.0/24 br0 10.1.1.1",
            "ovs/route/add 2001:db8::/32 br0 2001:cafe::1",
            "ovs/route/add 2001:db8::/32 br0 2001:cafe::1 pkt_mark=7",
            "ovs/route/add 2001:db9::/32 br0 zz",
            "ovs/route/add 2001:db9::/32 br0 1.1.2.1",
            "ovs/route/add 2001:dba::/32 p1",
            "ovs/route/add ::/0 br0",
            "ovs/route/add 2001:cafe::/64 br0",
            "ovs/route/add 1.1.2.0/24",
            "ovs/route/show",
            "ovs/route/lookup 1.1.2.5",
            "ovs/route/lookup 1.1.2.5/32",
            "ovs/route/lookup 1.1.2.5/24",
            "ovs/route/lookup 10.2.3.4",
            "ovs/route/lookup 8.8.8.8",
            "ovs/route/lookup 8.8.8.8 pkt_mark=16",
            "ovs/route/lookup 8.8.8.8 pkt_mark=4294967295",
            "ovs/route/lookup 8.8.8.8 pkt_mark=x",
            "ovs/route/lookup 2001:db8::5",
            "ovs/route/lookup 2001:db8::5 pkt_mark=7",
            "ovs/route/lookup 2001:cafe::5",
            "ovs/route/lookup 2002::5",
            "ovs/route/lookup foo",
            "ovs/route/lookup",
            # A route for the same prefix replaces the old one.
            "ovs/route/add 0.0.0.0/0 br0 1.1.2.254",
            "ovs/route/show",
            "ovs/route/del 0.0.0.0/0",
            "ovs/route/del 0.0.0.0/0 pkt_mark=16",
            "ovs/route/del 0.0.0.0/0 pkt_mark=16",
            "ovs/route/del 0.0.0.0/0 mark",
            "ovs/route/del foo",
            "ovs/route/del 1.1.2.0/24 pkt_mark=0",
            "ovs/route/del 2001:db8::1/32 pkt_mark=7",
            "ovs/route/show",
            "ovs/route/lookup 8.8.8.8",
        ],
    )


def test_routes_keep_their_source_when_addresses_change(pair: Pair) -> None:
    _run_all(
        pair,
        [
            *ADDRESSES,
            "ovs/route/add 1.1.2.0/24 br0",
            "netdev-dummy/ip4addr br0 1.1.3.92/24",
            "ovs/route/show",
            "ovs/route/add 1.1.2.0/24 br0",
            "ovs/route/add 1.1.3.0/24 br0",
            "ovs/route/show",
            "ovs/route/lookup 1.1.2.1",
        ],
    )


def test_neighbours(pair: Pair) -> None:
    _run_all(
        pair,
        [
            "time/stop",
            "tnl/neigh/show",
            "tnl/neigh/set br0 1.1.2.88",
            "tnl/neigh/set br0 1.1.2.x 00:11:22:33:44:55",
            "tnl/neigh/set br0 localhost 00:11:22:33:44:55",
            "tnl/neigh/set br0 01.1.2.88 00:11:22:33:44:55",
            "tnl/neigh/set br0 2001:db8::x aa:bb:cc:dd:ee:ff",
            "tnl/neigh/set br0 1.1.2.88 00:11:22:33:44",
            "tnl/neigh/set br0 1.1.2.88 1:2:3:4:5:6x",
            "tnl/neigh/set br0 1.1.2.88 0x1:2:3:4:5:6",
            "tnl/neigh/show",
            "tnl/arp/show",
            "tnl/neigh/set br0 1.1.2.88 100:2:3:4:5:-1",
            "tnl/neigh/show",
            "tnl/neigh/flush",
            "tnl/neigh/show",
            "tnl/arp/set a-very-long-bridge-name 2001:db8::1 aa:bb:cc:dd:ee:ff",
            "tnl/neigh/show",
            "tnl/arp/flush extra",
            "tnl/neigh/aging",
            "tnl/neigh/aging 0",
            "tnl/neigh/aging 3601",
            "tnl/neigh/aging abc",
            "tnl/neigh/aging -5",
            "tnl/neigh/aging 10abc",
            "tnl/arp/aging",
            "tnl/neigh/aging +7",
            "tnl/neigh/aging",
            "tnl/neigh/aging 4294967297",
            "tnl/neigh/aging",
            "tnl/neigh/aging 1 2",
        ],
    )
    _run_all(
        pair,
        [
            "tnl/neigh/set br0 1.1.2.88 00:11:22:33:44:55",
            "tnl/neigh/set br1 ::ffff:1.2.3.4 aa:bb:cc:dd:ee:ff",
            "tnl/arp/set br0 fe80::1 aa:bb:cc:dd:ee:01",
            "tnl/neigh/show",
        ],
    )


def test_neighbours_age_on_the_virtual_clock(pair: Pair) -> None:
    _run_all(
        pair,
        [
            "time/stop",
            "tnl/neigh/set br0 1.1.2.88 00:11:22:33:44:55",
            "time/warp 600000",
            "tnl/neigh/aging 10",
            "tnl/neigh/set br0 1.1.2.89 00:11:22:33:44:56",
            "time/warp 9000",
            "tnl/neigh/show",
            "tnl/neigh/set br0 1.1.2.89 00:11:22:33:44:56",
            "time/warp 1000",
            "tnl/neigh/show",
            "time/warp 9000",
            "tnl/neigh/show",
            "time/warp 1000",
            "tnl/neigh/show",
        ],
    )


class SystemRoutesSandbox(OvsSandbox):
    """Open vSwitch as the sandbox starts it, but with the kernel's routes.

    Without ``--disable-system-route`` it reads this namespace's routes and
    addresses; it changes nothing (no datapath: ``--disable-system``).
    """

    def start(self) -> None:
        self.run("ovsdb-tool", "create", str(self.dir / "conf.db"), str(SCHEMA))
        self.run(
            "ovsdb-server",
            "--detach",
            "--no-chdir",
            "--pidfile",
            "--log-file",
            f"--remote=punix:{self.db_sock}",
            str(self.dir / "conf.db"),
        )
        self.vsctl("--no-wait", "init")
        self.run(
            "ovs-vswitchd",
            "--enable-dummy",
            "--disable-system",
            "--detach",
            "--no-chdir",
            "--pidfile",
            "--log-file",
            f"unix:{self.db_sock}",
        )


def _routes(appctl: Callable[..., Reply]) -> str:
    """``ovs/route/show`` once it lists kernel routes (both read them in the background)."""
    deadline = time.monotonic() + 15
    while True:
        reply = appctl("ovs/route/show")
        if "Cached:" in reply[1] or time.monotonic() > deadline:
            return reply[1]
        time.sleep(0.2)


def test_kernel_routes_are_mirrored_as_open_vswitch_mirrors_them(tmp_path: Path) -> None:
    require_ovs()
    ovs = SystemRoutesSandbox()
    try:
        ovs.start()
        with running_daemon(tmp_path) as rundir:
            both = Pair(ovs, rundir)
            ovs_show = _routes(both.ovs_appctl)
            if "Cached:" not in ovs_show:
                pytest.skip("Open vSwitch mirrors no kernel route in this namespace")
            assert _routes(both.pvs_appctl) == ovs_show
            for dst in ("8.8.8.8", "127.0.0.1", "::1", "2001:db8::1", "fe80::1"):
                both.same("ovs/route/lookup", dst)
            # User routes among kernel ones: the same prefix as a kernel route
            # (listed after it, having a lower priority) and a new length.
            _run_all(
                both,
                [
                    "ovs/route/add 127.0.0.0/8 lo",
                    "ovs/route/add 127.1.0.0/16 lo",
                    "ovs/route/add ::1/128 lo",
                    "ovs/route/show",
                    "ovs/route/lookup 127.1.2.3",
                    "ovs/route/lookup 127.2.2.3",
                    "ovs/route/del 127.0.0.0/8",
                    "ovs/route/del 127.0.0.1/32",
                    "ovs/route/show",
                ],
            )
    finally:
        ovs.stop()
