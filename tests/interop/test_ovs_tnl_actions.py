"""Differential test: tnl_push/tnl_pop action text, ours against Open vSwitch 3.1's.

OVS reads each text and prints it back (``dpctl/parse-actions``, and
``dpctl/add-flow`` read back with ``dpctl/dump-flows``); pyvswitch's
:func:`format_odp_actions` of :func:`parse_odp_actions` must print the same.
Texts OVS refuses, pyvswitch refuses too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pyvswitch.dpif.actions_text import format_odp_actions, parse_odp_actions
from pyvswitch.flow.match import FlowParseError
from tests.interop.test_ovs_dpif_actions import ovs_dumped_actions, ovs_parse_actions
from tests.unit.test_tunnel_headers import OVS_TEXTS

if TYPE_CHECKING:
    from tests.interop.ovs_sandbox import OvsSandbox

pytestmark = pytest.mark.ovs

# Written differently from how OVS prints them: OVS normalises the numbers.
UNNORMALISED = [
    OVS_TEXTS[1].replace("proto=17,tos=0,ttl=64", "proto=0x11,tos=0x10,ttl=0100"),
    OVS_TEXTS[2].replace("label=291", "label=0x123"),
    OVS_TEXTS[4].replace("vni=0x7b", "vni=123"),
    OVS_TEXTS[5].replace("0x100000002", "0x0000000100000002"),
    OVS_TEXTS[3]
    .replace("geneve(vni=0x7b)", "geneve(vni=0x7b,options({class=0x1,type=0x2,len=4}))")
    .replace("size=50", "size=58"),
]
REFUSED = [
    OVS_TEXTS[1].replace("size=50", "size=51"),
    OVS_TEXTS[1].replace("type=4", "type=5"),
    OVS_TEXTS[-1].replace("type=109", "type=3"),
    OVS_TEXTS[4].replace("len=4,0xa", "len=3,0xa"),
    OVS_TEXTS[4].replace("len=4,0xa", "len=4,0x1122334455"),
]


@pytest.mark.parametrize("text", OVS_TEXTS + UNNORMALISED)
def test_tunnel_action_text_normalises_as_in_ovs(ovs: OvsSandbox, text: str) -> None:
    assert format_odp_actions(parse_odp_actions(text)) == ovs_parse_actions(ovs, text)


@pytest.mark.parametrize("text", [OVS_TEXTS[1] + ",tnl_pop(4789),2", OVS_TEXTS[7]])
def test_tunnel_action_reads_back_from_dump_flows_as_ours(ovs: OvsSandbox, text: str) -> None:
    assert format_odp_actions(parse_odp_actions(text)) == ovs_dumped_actions(ovs, text)


@pytest.mark.parametrize("text", REFUSED)
def test_texts_ovs_refuses_are_refused(ovs: OvsSandbox, text: str) -> None:
    result = ovs.appctl("dpctl/parse-actions", text, check=False)
    assert result.returncode != 0
    assert "odp_actions_from_string (Invalid argument)" in result.stderr
    with pytest.raises(FlowParseError):
        parse_odp_actions(text)
