"""ovs-ofctl's flow table commands: reading them, and what they do to a bridge's tables.

The messages are the ones ovs-ofctl 3.1 printed for the same input (recorded
from the real program; tests/interop/test_ovs_ofctl.py checks a set of them
against it again). What the commands do follows Open vSwitch's ofproto, as
observed with ovs-ofctl against ovs-vswitchd: a loose modify ignores the
priority and adds the flow when it selects nothing, keeps timeouts and
counters; a strict delete needs the exact match and priority.
"""

from __future__ import annotations

import pytest

from pyvswitch.flow.match import FlowParseError
from pyvswitch.ofproto.actions import OFPP_NORMAL, Output
from pyvswitch.ofproto.bridge import Bridge
from pyvswitch.ofproto.flow_cmd import (
    ADD,
    DELETE,
    DELETE_STRICT,
    DUMP,
    FLOW_FLAGS,
    MODIFY,
    MODIFY_STRICT,
    RESET_COUNTS,
    FlowCommandError,
    apply_commands,
    parse_flow_command,
    parse_flow_line,
    replace_flows,
    select_rules,
    set_fail_mode,
)
from pyvswitch.ofproto.flow_dump import OF10, flow_text

NAMES = {"p1": 1, "p2": 2}


def bridge_with(*flows: str, fail_mode: str = "secure") -> Bridge:
    bridge = Bridge("br0", fail_mode)
    apply_commands(bridge, [parse_flow_command(f, ADD, NAMES) for f in flows], 0.0)
    return bridge


def texts(bridge: Bridge) -> list[str]:
    return [flow_text(rule) for rule in bridge.rules()]


def run(bridge: Bridge, command: str, text: str, now: float = 1.0, add_flags: int = 0) -> None:
    apply_commands(bridge, [parse_flow_command(text, command, NAMES)], now, add_flags=add_flags)


# -- reading -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "text", "message"),
    [
        (ADD, "foo=1,actions=drop", "unknown keyword foo"),
        (ADD, "foo,actions=drop", "field foo missing value"),
        (ADD, "actions=bogus", "unknown action bogus"),
        (ADD, "ip", "must specify an action"),
        (ADD, "cookie=0x1/0x1", "must specify an action"),
        (ADD, "in_port=nope,actions=drop", "nope: invalid or unknown port for in_port"),
        (ADD, "actions=output:nope", "nope: output to unknown port"),
        (ADD, "table=300,actions=drop", 'unknown table "300"'),
        (ADD, "table=x,actions=drop", 'unknown table "x"'),
        (ADD, "table=,actions=drop", "field table missing value"),
        (ADD, "priority=70000,actions=drop", 'invalid priority "70000"'),
        (ADD, "idle_timeout=x,actions=drop", 'invalid idle_timeout "x"'),
        (ADD, "cookie=1/1,actions=drop", "flow additions cannot use a cookie mask"),
        (ADD, "priority=1,cookie=zz,actions=drop", "invalid numeric format zz"),
        (ADD, "out_port=1,actions=drop", "unknown keyword out_port"),
        (MODIFY, "ip", "must specify an action"),
        (MODIFY, "foo=1,actions=drop", "unknown keyword foo"),
        (DELETE, "priority=10,ip", "unknown keyword priority"),
        (DELETE, "priority", "field priority missing value"),
        (DELETE, "send_flow_rem", "field send_flow_rem missing value"),
        (DELETE, "send_flow_rem=1", "unknown keyword send_flow_rem"),
        (DELETE, "actions", "field actions missing value"),
        (
            DELETE,
            "cookie=5",
            "cannot set cookie (to match on a cookie, specify a mask, e.g. cookie=5/-1)",
        ),
        (DUMP, "actions=drop", "unknown keyword actions"),
        (DUMP, "priority=5", "unknown keyword priority"),
        (DUMP, "out_port=nope", "nope is not a valid OpenFlow port"),
        (DUMP, "cookie=zz/1", "invalid numeric format zz"),
    ],
)
def test_errors_are_ovs_ofctls(command: str, text: str, message: str) -> None:
    with pytest.raises(FlowParseError) as excinfo:
        parse_flow_command(text, command, NAMES)
    assert str(excinfo.value) == message


def test_a_flow_reads_its_own_keywords_and_ignores_dumped_statistics() -> None:
    text = (
        "cookie=0x5, duration=9.763s, table=1, n_packets=3, n_bytes=180, idle_timeout=30, "
        "hard_timeout=60, idle_age=9, send_flow_rem priority=5,tcp,tp_dst=80 actions=drop"
    )
    command = parse_flow_command(text, ADD, NAMES)
    assert (command.table, command.new_cookie, command.flags) == (
        1,
        5,
        FLOW_FLAGS["send_flow_rem"],
    )
    spec = command.spec
    assert (spec.priority, spec.idle_timeout, spec.hard_timeout, spec.actions) == (5, 30, 60, ())


def test_table_255_means_every_table_and_out_port_any_means_every_port() -> None:
    command = parse_flow_command("table=255,out_port=ANY", DELETE, NAMES)
    assert (command.table, command.out_port) == (None, None)
    command = parse_flow_command("out_port=p2,cookie=0x10/0xf0", DUMP, NAMES)
    assert (command.out_port, command.cookie, command.cookie_mask) == (2, 0x10, 0xF0)
    assert parse_flow_command("cookie=1/-1", DELETE).cookie_mask == (1 << 64) - 1


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("priority=5,ip,actions=drop", ADD),
        ("add priority=7,ip,actions=drop", ADD),
        ("  a ip,actions=drop", ADD),
        ("delete ip", DELETE),
        ("delete_strict priority=5,ip", DELETE_STRICT),
        ("modify priority=8,udp,actions=drop", MODIFY),
        ("modify_s udp,actions=drop", MODIFY_STRICT),
        ("arp,actions=drop", ADD),
    ],
)
def test_a_file_line_may_start_with_a_command(line: str, command: str) -> None:
    assert parse_flow_line(line, NAMES).command == command


# -- selecting and changing ---------------------------------------------------------


def test_loose_delete_takes_every_flow_at_least_as_specific_strict_only_the_exact_one() -> None:
    bridge = bridge_with(
        "priority=10,ip,actions=output:1",
        "priority=20,ip,nw_src=192.0.2.1,actions=output:2",
        "priority=10,ip,nw_src=192.0.2.1,actions=output:2",
    )
    run(bridge, DELETE_STRICT, "ip")  # priority 32768: none
    assert len(texts(bridge)) == 3
    run(bridge, DELETE_STRICT, "priority=10,ip")
    assert texts(bridge) == [
        "priority=20,ip,nw_src=192.0.2.1,actions=output:2",
        "priority=10,ip,nw_src=192.0.2.1,actions=output:2",
    ]
    run(bridge, DELETE, "ip,nw_src=192.0.2.1")
    assert texts(bridge) == []


def test_delete_by_out_port_and_cookie() -> None:
    bridge = bridge_with(
        "cookie=0x11,priority=1,actions=output:1",
        "cookie=0x21,priority=2,actions=output:2",
        "cookie=0x22,priority=3,actions=NORMAL",
    )
    run(bridge, DELETE, "out_port=p2")
    assert [r.cookie for r in bridge.rules()] == [0x22, 0x11]
    run(bridge, DELETE, "cookie=0x20/0xf0")
    assert [r.cookie for r in bridge.rules()] == [0x11]


def test_modify_keeps_counters_timeouts_and_position_and_sets_the_cookie_if_given() -> None:
    bridge = bridge_with("priority=7,tcp,idle_timeout=10,actions=output:1", "udp,actions=drop")
    rule = bridge.rules()[-1]
    rule.account(3, 180, 0.5)
    run(bridge, MODIFY, "priority=1,tcp,idle_timeout=99,cookie=0x9,actions=output:2", now=2.0)
    modified = bridge.rules()[-1]
    assert (modified.actions, modified.cookie, modified.idle_timeout) == ((Output(2),), 9, 10)
    assert (modified.n_packets, modified.n_bytes, modified.modified) == (3, 180, 2.0)
    assert modified.created == rule.created
    assert texts(bridge)[0] == "udp,actions=drop"
    run(bridge, MODIFY, "tcp,reset_counts,actions=output:1")
    assert bridge.rules()[-1].n_packets == 0


def test_modify_that_selects_nothing_adds_the_flow() -> None:
    bridge = bridge_with("priority=7,tcp,actions=output:1")
    run(bridge, MODIFY_STRICT, "priority=8,tcp,actions=output:2")
    run(bridge, MODIFY, "udp,actions=output:2")
    assert texts(bridge) == [
        "udp,actions=output:2",
        "priority=8,tcp,actions=output:2",
        "priority=7,tcp,actions=output:1",
    ]


def test_add_over_openflow10_resets_counters_and_says_so() -> None:
    bridge = bridge_with("priority=5,ip,actions=output:1")
    bridge.rules()[0].account(2, 120, 0.5)
    run(bridge, ADD, "priority=5,ip,actions=output:2")  # OpenFlow 1.3: counters stay
    assert bridge.rules()[0].n_packets == 2
    run(bridge, ADD, "priority=5,ip,actions=output:1", add_flags=RESET_COUNTS)
    assert (bridge.rules()[0].n_packets, bridge.rules()[0].flags) == (0, RESET_COUNTS)


def test_a_batch_is_all_or_nothing() -> None:
    bridge = bridge_with("priority=5,check_overlap,ip,actions=output:1")
    batch = [
        parse_flow_command("priority=9,arp,actions=drop", ADD),
        parse_flow_command("ip", DELETE),
        parse_flow_command("priority=6,check_overlap,udp,actions=drop", ADD),
        parse_flow_command("priority=6,check_overlap,ip,actions=drop", ADD),
    ]
    with pytest.raises(FlowCommandError, match="OFPFMFC_OVERLAP"):
        apply_commands(bridge, batch, 1.0)
    assert texts(bridge) == ["priority=5,check_overlap,ip,actions=output:1"]


def test_replace_changes_only_the_differences() -> None:
    bridge = bridge_with(
        "priority=5,ip,actions=output:1",
        "priority=6,udp,actions=output:2",
        "table=1,priority=3,tcp,actions=drop",
    )
    for rule in bridge.rules():
        rule.account(1, 60, 0.5)
    wanted = [
        "priority=5,ip,actions=output:1",
        "priority=6,udp,actions=output:1",
        "priority=6,udp,actions=output:2",
        "priority=9,arp,actions=drop",
    ]
    commands = [parse_flow_command(t, ADD) for t in wanted]
    added, deleted = replace_flows(bridge, commands, 1.0, version=OF10)
    assert (added, deleted) == (1, 1)
    assert texts(bridge) == [
        "priority=9,arp,actions=drop",
        "priority=6,udp,actions=output:2",
        "priority=5,ip,actions=output:1",
    ]
    assert [r.n_packets for r in bridge.rules()] == [0, 1, 1]


def test_select_rules_for_a_dump_is_loose_and_table_by_table() -> None:
    bridge = bridge_with("table=2,ip,actions=drop", "priority=1,ip,nw_dst=192.0.2.1,actions=drop")
    chosen = select_rules(bridge, parse_flow_command("ip", DUMP))
    assert [r.table_id for r in chosen] == [0, 2]
    assert select_rules(bridge, parse_flow_command("table=2,arp", DUMP)) == []


def test_fail_mode_changes_touch_only_the_default_flow() -> None:
    bridge = bridge_with("priority=5,ip,actions=output:1", fail_mode="standalone")
    normal = "priority=0,actions=NORMAL"
    assert texts(bridge) == ["priority=5,ip,actions=output:1", normal]
    set_fail_mode(bridge, "secure", 2.0)
    assert (bridge.fail_mode, texts(bridge)) == ("secure", ["priority=5,ip,actions=output:1"])
    set_fail_mode(bridge, "standalone", 3.0)
    assert texts(bridge) == ["priority=5,ip,actions=output:1", normal]
    assert bridge.tables[0].rules[-1].actions == (Output(OFPP_NORMAL),)
