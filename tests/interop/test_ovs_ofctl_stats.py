"""Differential tests: pvs-ofctl's dump-aggregate, dump-ports-desc and dump-tables.

Both switches get the same rules in tables 0, 3 and 100 and the same
traffic; ovs-ofctl and pvs-ofctl then ask the same questions over each
OpenFlow version, and the outputs must agree (the comparison of
``test_ovs_ofctl.py``: Ethernet addresses are Open vSwitch's own). Table
lookup counters count packets, upcalls and cache hits alike, and nothing
for a trace: a trace is made on both before the tables are dumped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.interop.switch_pair import appctl, switch_pair
from tests.scenario.ofctl_helpers import PING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.interop.test_ovs_ofctl import Switches

pytestmark = pytest.mark.ovs

RULES = [
    "priority=5,ip,actions=output:2",
    "table=3,priority=5,arp,actions=drop",
    "table=100,actions=drop",
    "table=101,actions=drop",
    "table=253,actions=drop",
    "priority=0,actions=drop",
]


@pytest.fixture(scope="module")
def switches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switches]:
    with switch_pair(tmp_path_factory) as pair:
        for ofctl in (pair.ovs_ofctl, pair.pvs_ofctl):
            assert ofctl("del-flows", "br0").returncode == 0
            for rule in RULES:
                assert ofctl("add-flow", "br0", rule).returncode == 0
        pair.inject("p1", PING, 3)
        for which in ("ovs", "pvs"):
            traced = appctl(pair, which, "ofproto/trace", "br0", "in_port=1,ip")
            assert traced.returncode == 0, traced.stderr
        yield pair


VERSIONS = ["OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow14", "OpenFlow15"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "args",
    [
        ("dump-aggregate", "br0"),
        ("dump-aggregate", "br0", "ip"),
        ("dump-aggregate", "br0", "table=3"),
        ("dump-aggregate", "br0", "in_port=p1"),
        ("dump-aggregate", "br0", "out_port=2"),
        ("--no-names", "dump-aggregate", "br0", "ip"),
        ("--names", "dump-aggregate", "br0", "ip"),
        ("dump-aggregate", "br1"),
        ("dump-ports-desc", "br0"),
        ("dump-ports-desc", "br0", "p1"),
        ("dump-ports-desc", "br0", "2"),
        ("dump-ports-desc", "br0", "LOCAL"),
        ("dump-ports-desc", "br0", "99"),
        ("dump-ports-desc", "br1"),
    ],
)
def test_aggregates_and_port_descriptions(
    switches: Switches, version: str, args: tuple[str, ...]
) -> None:
    status, output, _ = switches.compare("-O", version, *args)
    assert status == 0
    assert output


@pytest.mark.parametrize("version", ["OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15"])
@pytest.mark.parametrize("bridge", ["br0", "br1"])
def test_dump_tables(switches: Switches, version: str, bridge: str) -> None:
    ovs = switches.ovs_ofctl("-O", version, "dump-tables", bridge)
    ours = switches.pvs_ofctl("-O", version, "dump-tables", bridge)
    assert (ours.returncode, ours.stderr) == (ovs.returncode, ovs.stderr) == (0, "")
    assert ours.stdout == ovs.stdout
    if bridge == "br0":
        # The three pings, the first an upcall, the others cache hits.
        assert "lookup=3, matched=3" in ours.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("dump-aggregate", "br0", "bogus=1"),
        ("dump-aggregate", "br0", "priority=5"),
        ("dump-aggregate", "br0", "table=300"),
        ("dump-aggregate", "br9"),
        ("dump-aggregate", "br0", "a", "b"),
        ("dump-ports-desc", "br0", "nope"),
        ("dump-ports-desc", "br9"),
        ("dump-ports-desc", "br0", "a", "b"),
        ("dump-tables", "br9"),
        ("dump-tables", "br0", "x"),
        ("dump-tables",),
    ],
)
def test_errors(switches: Switches, args: tuple[str, ...]) -> None:
    status, output, errors = switches.compare(*args)
    assert (status, output) == (1, "")
    assert errors.startswith("ofctl: ")


def test_commands_pyvswitch_does_not_have_say_so(switches: Switches) -> None:
    # mod-port would have to change what forwarding does (no-flood, down...),
    # which pyvswitch's ports do not support yet: it is refused, not faked.
    result = switches.pvs_ofctl("mod-port", "br0", "p1", "no-flood")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "pvs-ofctl: 'mod-port' command is not supported by pyvswitch\n"
    assert switches.ovs_ofctl("mod-port", "br0", "p1", "up").returncode == 0
