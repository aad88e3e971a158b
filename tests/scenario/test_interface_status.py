"""What the Interface table shows about running ports, and the options a dummy port takes.

The values are Open vSwitch 3.1's (tests/interop/test_ovs_interface_status.py
compares them with it): ``link_resets`` 0 and ``ifindex`` 0 for ports without
a kernel device, a dummy port's ``ifindex`` from ``options:ifindex``, dummy
addresses numbered in the order ports are made, and a patch or tunnel port's
``mac_in_use``, which Open vSwitch picks at random and we make from the name:
the address ``pvs-ofctl show`` gives the port. A dummy port accepts every
option Open vSwitch's does and, as OVS, ignores one it does not know, but logs
a warning naming it.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import pytest
from scapy.layers.l2 import Ether

from pyvswitch.flow.ofp_text import str_to_int
from pyvswitch.netdev import NetdevOptionError, netdev_close, netdev_open
from pyvswitch.netdev.dummy import DummyNetdev
from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import PING, inject, ok, port_counts

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DUMMY_LOG = "pyvswitch.netdev_dummy"


@pytest.fixture
def opened() -> Iterator[list[DummyNetdev]]:
    """Dummy devices a test opens with netdev_open, closed afterwards."""
    devices: list[DummyNetdev] = []
    yield devices
    for dev in devices:
        netdev_close(dev)


def open_dummy(opened: list[DummyNetdev], name: str, **options: str) -> DummyNetdev:
    dev = netdev_open(name, "dummy", options)
    assert isinstance(dev, DummyNetdev)
    opened.append(dev)
    return dev


# -- the options of a dummy port -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # What ovs-vswitchd 3.1 made of each as options:ifindex.
        ("7", 7),
        (" 8", 8),
        ("+3", 3),
        ("010", 10),
        ("-5", -5),
        ("2147483647", 2147483647),
        ("abc", None),
        ("7x", None),
        ("8 ", None),
        ("0x10", None),
        ("1_0", None),
        ("99999999999", None),
        ("", None),
    ],
)
def test_integer_options_are_read_as_open_vswitch_reads_them(text: str, value: int | None) -> None:
    assert str_to_int(text) == value


def test_open_vswitchs_dummy_options_are_accepted(
    opened: list[DummyNetdev], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=DUMMY_LOG):
        dev = open_dummy(opened, "pvs-st-d1", ifindex="7", n_rxq="2", n_txq="3", numa_id="1")
    assert dev.ifindex == 7
    assert dev.get_config() == {"ifindex": "7", "n_rxq": "2", "n_txq": "3", "numa_id": "1"}
    # The queue and NUMA options only matter to Open vSwitch's dummy-pmd: no word.
    assert caplog.records == []


def test_an_unknown_option_is_ignored_with_a_warning_naming_it(
    opened: list[DummyNetdev], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=DUMMY_LOG):
        dev = open_dummy(opened, "pvs-st-d2", ifindx="7")
    assert dev.ifindex is None
    assert dev.get_config() == {"ifindx": "7"}
    assert [r.getMessage() for r in caplog.records] == [
        "pvs-st-d2: ignoring unknown option 'ifindx' (a dummy interface takes: ifindex, "
        "n_rxq, n_txq, numa_id, pcap, pstream, rxq_pcap, stream, tx_pcap)"
    ]


def test_stream_options_are_accepted_but_not_supported(
    opened: list[DummyNetdev], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.WARNING, logger=DUMMY_LOG):
        open_dummy(opened, "pvs-st-d3", pstream=f"punix:{tmp_path}/d3.sock")
        open_dummy(opened, "pvs-st-d4", stream=f"unix:{tmp_path}/d3.sock")
    assert [r.getMessage() for r in caplog.records] == [
        "pvs-st-d3: option pstream is not supported by pyvswitch's dummy interface (ignored)",
        "pvs-st-d4: option stream is not supported by pyvswitch's dummy interface (ignored)",
    ]
    assert not (tmp_path / "d3.sock").exists()


def test_a_bad_ifindex_counts_as_none_with_a_warning(
    opened: list[DummyNetdev], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=DUMMY_LOG):
        dev = open_dummy(opened, "pvs-st-d5", ifindex="7x")
    assert dev.ifindex is None
    assert [r.getMessage() for r in caplog.records] == [
        "pvs-st-d5: option ifindex '7x' is not an integer (ignored)"
    ]


def test_a_refused_configuration_warns_about_nothing(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger=DUMMY_LOG),
        pytest.raises(NetdevOptionError, match="option pcap: directory of"),
    ):
        netdev_open("pvs-st-d6", "dummy", {"pcap": str(tmp_path / "no" / "x.pcap"), "bogus": "1"})
    assert caplog.records == []


def test_dummy_addresses_are_numbered_in_the_order_ports_are_made() -> None:
    # Names whose bytes add up to the same sum once got the same address.
    first, second = DummyNetdev("p12"), DummyNetdev("p21")
    assert first.mac[:2] == second.mac[:2] == b"\xaa\x55"
    assert int.from_bytes(second.mac, "big") == int.from_bytes(first.mac, "big") + 1


# -- the Interface table -----------------------------------------------------------


def vsctl(rundir: Path, *args: str) -> str:
    return ok("vsctl", rundir, "--timeout=20", *args).strip()


def columns(rundir: Path, name: str, *wanted: str) -> dict[str, str]:
    text = vsctl(rundir, f"--columns={','.join(wanted)}", "list", "Interface", name)
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in text.splitlines())}


def show_addresses(rundir: Path, bridge: str) -> dict[str, str]:
    """Each port's address as ``pvs-ofctl show`` gives it."""
    text = ok("ofctl", rundir, "show", bridge)
    return dict(re.findall(r"^ \S+\((\S+)\): addr:(\S+)$", text, re.MULTILINE))


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Path]:
    """A daemon logging to pvs.log, with br0 (dummy d1, patch pa, vxlan vx) and br1 (patch pb)."""
    with running_daemon(tmp_path, [f"--log-file={tmp_path / 'pvs.log'}"]):
        vsctl(tmp_path, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy")
        vsctl(tmp_path, "add-port", "br0", "d1", "--", "set", "Interface", "d1", "type=dummy")
        vsctl(
            tmp_path,
            *("add-port", "br0", "pa", "--", "set", "Interface", "pa", "type=patch"),
            *("options:peer=pb", "--", "add-br", "br1", "--", "set", "bridge", "br1"),
            *("datapath_type=dummy", "--", "add-port", "br1", "pb", "--", "set", "Interface"),
            *("pb", "type=patch", "options:peer=pa"),
        )
        vsctl(
            tmp_path,
            *("add-port", "br0", "vx", "--", "set", "Interface", "vx", "type=vxlan"),
            "options:remote_ip=192.0.2.9",
        )
        yield tmp_path


STATUS = ("admin_state", "link_state", "link_resets", "ifindex", "mtu")


def test_ports_without_a_kernel_device_show_no_link_resets_and_ifindex_0(switch: Path) -> None:
    assert columns(switch, "d1", *STATUS) == {
        "admin_state": "up",
        "link_state": "up",
        "link_resets": "0",
        "ifindex": "0",
        "mtu": "1500",
    }
    assert columns(switch, "br0", *STATUS) == columns(switch, "d1", *STATUS)
    for name in ("pa", "pb", "vx"):
        assert columns(switch, name, *STATUS) == {
            "admin_state": "up",
            "link_state": "up",
            "link_resets": "0",
            "ifindex": "0",
            "mtu": "[]",
        }, name


def test_patch_and_tunnel_ports_use_the_address_ofctl_shows(switch: Path) -> None:
    shown = show_addresses(switch, "br0") | show_addresses(switch, "br1")
    for name in ("pa", "pb", "vx", "d1", "br0"):
        assert vsctl(switch, "get", "Interface", name, "mac_in_use") == f'"{shown[name]}"', name
    # Made from the name: locally administered, and not the same for two ports.
    assert shown["pa"].startswith("02:")
    assert len({shown["pa"], shown["pb"], shown["vx"]}) == 3


def test_a_patch_port_keeps_its_address_across_a_restart(tmp_path: Path) -> None:
    seen: list[str] = []
    for _ in range(2):
        with running_daemon(tmp_path):
            if not seen:
                vsctl(
                    tmp_path,
                    *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
                    *("--", "add-port", "br0", "pa", "--", "set", "Interface", "pa"),
                    *("type=patch", "options:peer=pb"),
                )
            seen.append(vsctl(tmp_path, "get", "Interface", "pa", "mac_in_use"))
    assert seen[0] == seen[1] != "[]"


def test_a_dummy_port_with_open_vswitchs_options_runs(switch: Path) -> None:
    vsctl(
        switch,
        *("add-port", "br0", "d3", "--", "set", "Interface", "d3", "type=dummy"),
        *("options:ifindex=7", "options:n_rxq=2", "options:bogus=1"),
    )
    assert columns(switch, "d3", "error", "ifindex", "link_resets", "link_state") == {
        "error": "[]",
        "ifindex": "7",
        "link_resets": "0",
        "link_state": "up",
    }
    assert vsctl(switch, "get", "Interface", "d3", "ofport") != "-1"
    # A new ifindex is shown; a negative one is shown as 0, as Open vSwitch does.
    vsctl(switch, "set", "Interface", "d3", "options:ifindex=-5")
    assert vsctl(switch, "get", "Interface", "d3", "ifindex") == "0"
    vsctl(switch, "set", "Interface", "d3", "options:ifindex=12")
    assert vsctl(switch, "get", "Interface", "d3", "ifindex") == "12"
    log = (switch / "pvs.log").read_text()
    assert re.search(r"\|netdev_dummy\|WARN\|d3: ignoring unknown option 'bogus' ", log), log


def test_a_failed_interface_has_no_link_resets(switch: Path) -> None:
    vsctl(switch, "add-port", "br0", "bad", "--", "set", "Interface", "bad", "type=patch")
    assert columns(switch, "bad", "ofport", "link_resets", "ifindex", "mac_in_use") == {
        "ofport": "-1",
        "link_resets": "[]",
        "ifindex": "[]",
        "mac_in_use": "[]",
    }


def test_new_options_are_applied_in_place(tmp_path: Path) -> None:
    """As Open vSwitch: the port keeps its number, address, counters and learned MACs."""
    with running_daemon(tmp_path / "run") as rundir:
        vsctl(
            rundir,
            *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
            *("--", "add-port", "br0", "p1", "--", "add-port", "br0", "p2"),
        )
        inject(rundir, "p1", PING)
        before = columns(rundir, "p1", "ofport", "mac_in_use")
        counts = port_counts(rundir, "br0", "p1")
        assert counts[0] == 1
        learned = ok("appctl", rundir, "fdb/show", "br0")
        pcap = tmp_path / "p1-tx.pcap"
        vsctl(rundir, "set", "Interface", "p1", f"options:tx_pcap={pcap}")
        assert columns(rundir, "p1", "ofport", "mac_in_use") == before
        assert port_counts(rundir, "br0", "p1") == counts
        assert ok("appctl", rundir, "fdb/show", "br0") == learned
        # The new option is in force: what p1 sends is recorded.
        # B answers from p2: learned, so the reply goes to p1 alone.
        back = Ether(PING)
        back.src, back.dst = back.dst, back.src
        inject(rundir, "p2", bytes(back))
        assert pcap.stat().st_size > 24
        # A type change is a new port, as in Open vSwitch.
        vsctl(rundir, "set", "Interface", "p2", "type=patch", "options:peer=nosuch")
        assert "p2 2/none: (patch: peer=nosuch)" in ok("appctl", rundir, "dpif/show")
