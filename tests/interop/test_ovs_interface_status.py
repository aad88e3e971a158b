"""Differential: every Interface column of each kind of port, in Open vSwitch 3.1 and ours.

Both switches get the same ovs-vsctl commands, one port at a time (Open
vSwitch numbers its dummy devices' addresses in the order it makes them):
a dummy port, one with the options netdev-dummy reads and one it ignores,
a patch pair, a VXLAN port and a patch port without a peer. Then every
column of every row must agree, except:

* ``_uuid``;
* ``mac_in_use`` of the patch and tunnel ports and of br1's own port, which
  Open vSwitch picks at random when it makes them (netdev-vport, and a
  bridge without ``other-config:hwaddr``); ours is made from the name and
  must be an address;
* the counters Open vSwitch's netdev-dummy adds to ``statistics`` for its own
  tests and per queue (pyvswitch writes the standard four).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from tests.interop.both import Both, both_started

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.ovs

#: Counters Open vSwitch's netdev-dummy adds for its own tests and per queue.
DUMMY_EXTRAS = re.compile(r"rx_custom_packets_\d+|[rt]x_q\d+_(packets|bytes)")
MAC = re.compile(r'"([0-9a-f]{2}:){5}[0-9a-f]{2}"')
#: Interfaces whose mac_in_use Open vSwitch makes at random.
RANDOM_MAC = ("pa", "pb", "vx", "br1")


def add(both: Both, name: str, *settings: str, bridge: str = "br0") -> None:
    """``add-port`` on both; a port Open vSwitch refuses still makes ovs-vsctl exit 0."""
    args = ("add-port", bridge, name, "--", "set", "Interface", name, *settings)
    for side in (both.ovs, both.pvs):
        assert side("vsctl", *args)[0] == 0, (name, settings)


def row(read: Callable[..., tuple[int, str, str]], name: str) -> dict[str, str]:
    """One Interface row, column by column, without what may differ (see the module)."""
    text = read("vsctl", "list", "Interface", name)[1]
    columns = {}
    for line in text.splitlines():
        key, value = line.split(":", 1)
        columns[key.strip()] = value.strip()
    del columns["_uuid"]
    if name in RANDOM_MAC:
        assert MAC.fullmatch(columns.pop("mac_in_use")), (name, text)
    stats = columns["statistics"].strip("{}").split(", ")
    columns["statistics"] = ", ".join(s for s in stats if not DUMMY_EXTRAS.match(s))
    return columns


def wait_for_status(both: Both, names: tuple[str, ...]) -> None:
    """Wait until both switches wrote the status and statistics of ``names``.

    Open vSwitch writes the status after ovs-vsctl returns, and both write
    statistics on a timer (every 5 s), so a new port may have none for a while.
    """
    deadline = time.monotonic() + 20
    for read in (both.ovs, both.pvs):
        while True:
            rows = {name: row(read, name) for name in names}
            if all(r["link_resets"] != "[]" and r["statistics"] for r in rows.values()):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)


def test_every_interface_column_matches_ovs(tmp_path: Path) -> None:
    with both_started(tmp_path) as both:
        add(both, "d1", "type=dummy")
        both.do(
            "vsctl",
            *("add-port", "br0", "pa", "--", "set", "Interface", "pa", "type=patch"),
            *("options:peer=pb", "--", "add-br", "br1", "--", "set", "bridge", "br1"),
            *("datapath_type=dummy", "--", "add-port", "br1", "pb", "--", "set", "Interface"),
            *("pb", "type=patch", "options:peer=pa"),
        )
        add(both, "vx", "type=vxlan", "options:remote_ip=192.0.2.9")
        add(
            both,
            "d3",
            "type=dummy",
            *("options:ifindex=7", "options:n_rxq=2", "options:n_txq=3", "options:numa_id=1"),
            *("options:pstream=punix:" + str(tmp_path / "d3.sock"), "options:bogus=1"),
        )
        add(both, "bad", "type=patch")
        running = ("br0", "d1", "pa", "pb", "vx", "d3", "br1")
        wait_for_status(both, running)
        for name in (*running, "bad"):
            assert row(both.pvs, name) == row(both.ovs, name), name


#: ``options:ifindex`` texts, each read as OVS's smap_get_int() reads it.
IFINDEX_TEXTS = ("7", " 8", "+3", "010", "-5", "0", "2147483647", "abc", "7x", "0x10", "1e3")


def test_ifindex_comes_from_the_option_as_in_ovs(tmp_path: Path) -> None:
    with both_started(tmp_path) as both:
        names = tuple(f"i{n}" for n in range(len(IFINDEX_TEXTS)))
        for name, text in zip(names, IFINDEX_TEXTS, strict=True):
            add(both, name, "type=dummy", f'options:ifindex="{text}"')
        wait_for_status(both, names)
        for name in names:
            for column in ("ofport", "ifindex", "error", "mac_in_use"):
                both.same("vsctl", "get", "Interface", name, column)
        # A changed option changes the column, as in Open vSwitch.
        both.do("vsctl", "set", "Interface", "i0", "options:ifindex=12")
        deadline = time.monotonic() + 20
        while both.ovs("vsctl", "get", "Interface", "i0", "ifindex")[1] != "12\n":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        both.same("vsctl", "get", "Interface", "i0", "ifindex")
        # dpif/show shows a dummy's ifindex when it has one, as netdev-dummy's config.
        both.same("appctl", "dpif/show")
