"""Differential tests: our action text form against Open vSwitch 3.1's.

Each flow is added with ``ovs-ofctl -O OpenFlow13 add-flow`` to a bridge that
speaks only OpenFlow 1.3 and read back with ``dump-flows``; what Open vSwitch
prints must be what ``format_actions(parse_actions(...))`` prints (the actions
carried over OpenFlow 1.3, then printed). Errors are compared with what
``ovs-ofctl -O OpenFlow13 parse-flow`` prints, taking the reason Open vSwitch
logs before a failed check as ``actions_text`` does. The
cases are the recorded expectations of ``tests/unit/test_actions_text.py``,
re-checked here, and generated action lists.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings

from pyvswitch.flow.match import Match
from pyvswitch.ofproto.actions_text import check_actions, parse_actions
from pyvswitch.ofproto.actions_wire import format_actions
from tests.unit.test_actions_text import (
    ERRORS,
    HEX_DUMP,
    PRINTED,
    REFUSED,
    SWITCH_ERRORS,
    action_cases,
    roundtrip,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyvswitch.ofproto.actions import Action
    from tests.interop.ovs_sandbox import OvsSandbox

pytestmark = pytest.mark.ovs

BRIDGE = "br-act"
OVS_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def of13(ovs: OvsSandbox) -> Iterator[OvsSandbox]:
    """The sandbox with a bridge of its own that speaks only OpenFlow 1.3.

    It has ports ``a1`` (1) and ``uplink`` (7) for the port-name test. Its own
    bridge keeps these flows away from br0, which other tests use.
    """
    ovs.vsctl(
        "add-br",
        BRIDGE,
        "--",
        "set",
        "bridge",
        BRIDGE,
        "datapath-type=dummy",
        "fail-mode=secure",
        "protocols=OpenFlow13",
        "--",
        "add-port",
        BRIDGE,
        "a1",
        "--",
        "set",
        "Interface",
        "a1",
        "type=dummy",
        "ofport_request=1",
        "--",
        "add-port",
        BRIDGE,
        "uplink",
        "--",
        "set",
        "Interface",
        "uplink",
        "type=dummy",
        "ofport_request=7",
    )
    try:
        yield ovs
    finally:
        ovs.vsctl("--if-exists", "del-br", BRIDGE)


def flow_text(match: str, actions: str) -> str:
    return f"{match},actions={actions}" if match else f"actions={actions}"


def ovs_dump(ovs: OvsSandbox, match: str, actions: str, *options: str) -> str:
    """Add one flow over OpenFlow 1.3 and return the actions dump-flows prints for it."""
    ovs.ofctl("-O", "OpenFlow13", "del-flows", BRIDGE)
    ovs.ofctl("-O", "OpenFlow13", "add-flow", BRIDGE, flow_text(match, actions))
    out = ovs.ofctl("-O", "OpenFlow13", "--no-stats", *options, "dump-flows", BRIDGE).stdout
    lines = [line for line in out.splitlines() if "actions=" in line]
    assert len(lines) == 1, out
    return lines[0].split("actions=", 1)[1]


def ovs_parse(ovs: OvsSandbox, match: str, actions: str, version: str = "OpenFlow13") -> str:
    """The actions ``ovs-ofctl parse-flow`` prints for a flow, or what it says is wrong.

    An error is returned as ``actions_text`` words it: the line after
    ``ovs-ofctl:``, with the reason logged before a failed check in front.
    """
    result = ovs.ofctl("-O", version, "parse-flow", flow_text(match, actions), check=False)
    # Only newlines are stripped: one message ends in a space.
    lines = result.stderr.rstrip("\n").splitlines()
    # What parse-flow encodes and then cannot decode, it prints as hex.
    if any(re.match(r"0000000[0-9a-f] ", line) for line in lines + result.stdout.splitlines()):
        return HEX_DUMP
    if result.returncode == 0:
        line = next(x for x in result.stdout.splitlines() if "actions=" in x)
        return line.split("actions=", 1)[1]
    error = next(x for x in reversed(lines) if x.startswith("ovs-ofctl: "))
    error = error.removeprefix("ovs-ofctl: ")
    at = lines.index(f"ovs-ofctl: {error}")
    if error.startswith("actions are invalid with specified match") and at > 0:
        reason = re.search(r"\|(?:ofp_actions|meta_flow)\|WARN\|(.*)$", lines[at - 1])
        if reason:
            error = f"{reason.group(1)}; {error}"
    return error


@pytest.mark.parametrize(("match", "text", "printed"), PRINTED)
def test_dump_flows_prints_actions_as_we_do(
    of13: OvsSandbox, match: str, text: str, printed: str
) -> None:
    assert ovs_dump(of13, match, text) == roundtrip(text, match) == printed


@pytest.mark.parametrize(("match", "text", "message"), ERRORS)
def test_errors_are_worded_as_ovs_ofctl_words_them(
    of13: OvsSandbox, match: str, text: str, message: str
) -> None:
    assert ovs_parse(of13, match, text) == message


def ovs_add_error(ovs: OvsSandbox, match: str, actions: str, *options: str) -> str:
    """The error the switch replies to adding a flow, worded as ``actions_text`` words it."""
    result = ovs.ofctl(
        "-O", "OpenFlow13", *options, "add-flow", BRIDGE, flow_text(match, actions), check=False
    )
    assert result.returncode != 0, result
    code = re.search(r"OFPT_ERROR \(OF1\.3\) \(xid=0x[0-9a-f]+\): (\w+)", result.stderr)
    assert code is not None, result.stderr
    error = f"actions are invalid with specified match ({code.group(1)})"
    reason = re.search(r"\|meta_flow\|WARN\|(.*)", result.stderr)
    return f"{reason.group(1)}; {error}" if reason else error


@pytest.mark.parametrize(("match", "text", "message"), SWITCH_ERRORS)
def test_errors_the_switch_finds_are_worded_as_it_words_them(
    of13: OvsSandbox, match: str, text: str, message: str
) -> None:
    assert ovs_parse(of13, match, text) == HEX_DUMP
    assert ovs_add_error(of13, match, text) == message


def test_goto_table_must_go_forward_as_in_ovs(of13: OvsSandbox) -> None:
    message = ovs_parse(of13, "table=3", "goto_table:3")
    assert message == "actions are invalid with specified match (OFPBIC_BAD_TABLE_ID)"
    with pytest.raises(ValueError, match=re.escape(message)):
        check_actions(parse_actions("goto_table:3"), Match(), table_id=3)
    assert ovs_parse(of13, "table=3", "goto_table:4") == "goto_table:4"
    check_actions(parse_actions("goto_table:4"), Match(), table_id=3)


@pytest.mark.parametrize(("match", "text", "message", "ovs_does"), REFUSED)
def test_what_we_refuse_ovs_gets_wrong(
    of13: OvsSandbox, match: str, text: str, message: str, ovs_does: str
) -> None:
    assert ovs_parse(of13, match, text) == ovs_does
    with pytest.raises(ValueError, match=re.escape(message)):
        roundtrip(text, match)


def test_port_names_print_as_in_dump_flows_with_names(of13: OvsSandbox) -> None:
    text = "output:a1,uplink,resubmit(uplink,2),set_field:a1->in_port"
    names = {"a1": 1, "uplink": 7}
    ours = format_actions(parse_actions(text, names), {v: k for k, v in names.items()})
    assert ovs_dump(of13, "", text, "--names") == ours
    assert ovs_dump(of13, "", text) == format_actions(parse_actions(text, names))


@OVS_SETTINGS
@given(action_cases(converted=False))
def test_generated_actions_print_as_ovs_prints_them(
    of13: OvsSandbox, case: tuple[str, tuple[Action, ...]]
) -> None:
    match, actions = case
    text = format_actions(actions)
    assert ovs_dump(of13, match, text) == text
