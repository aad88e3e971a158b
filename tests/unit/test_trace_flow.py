"""``ofproto/trace BRIDGE BR_FLOW``'s flow, read as Open vSwitch's parse_ofp_exact_flow().

tests/interop/test_ovs_trace.py compares the errors and the traces with
Open vSwitch 3.1 itself; these are the cases where pyvswitch differs on
purpose (it refuses a value Open vSwitch would silently cut) and the reading
of the flow into a key.
"""

from __future__ import annotations

import pytest

from pyvswitch.flow.layout import FIELDS, VLAN_CFI
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.ofp_text import META_FIELDS
from pyvswitch.vswitchd import oftrace
from pyvswitch.vswitchd.oftrace import parse_trace_flow


def field(key: int, name: str) -> int:
    return FIELDS[name].get(key)


def test_a_flow_reads_into_the_key_it_names() -> None:
    key = parse_trace_flow(
        "in_port=p2 tcp,nw_src=192.0.2.1,tp_dst=80,dl_vlan=5,dl_vlan_pcp=3", {"p2": 2}
    )
    assert field(key, "in_port") == 2
    assert field(key, "dl_type") == 0x0800
    assert field(key, "nw_proto") == 6
    assert field(key, "nw_src") == 0xC0000201
    assert field(key, "tp_dst") == 80
    assert field(key, "vlan_tci") == VLAN_CFI | 3 << 13 | 5


def test_a_flow_without_an_input_port_comes_from_none() -> None:
    # Open vSwitch traces such a flow as from in_port=ANY (OFPP_NONE).
    assert field(parse_trace_flow("ip"), "in_port") == 0xFFFF
    assert field(parse_trace_flow("in_port=0,ip"), "in_port") == 0xFFFF


def test_keys_and_values_split_as_open_vswitch_splits_them() -> None:
    # "KEY:VALUE" and "KEY(VALUE)" too, with blanks or commas between pairs.
    for text in ("in_port:3,ip", "in_port(3) ip", "  in_port=3,,ip  "):
        key = parse_trace_flow(text)
        assert (field(key, "in_port"), field(key, "dl_type")) == (3, 0x0800), text


@pytest.mark.parametrize(
    ("flow", "error"),
    [
        # Open vSwitch reads 1.2.3.400 as 1.2.3.144, VLAN 5000 as 904, nw_tos=3
        # as 0 and cuts the others to their width: a trace of another packet
        # than the one typed, so these are refused, as pvs-ofctl refuses them.
        ("ip,nw_src=1.2.3.400", "bad value for nw_src (1.2.3.400: invalid IP address)"),
        (
            "dl_vlan=5000",
            "bad value for dl_vlan (5000: VLAN ID out of range 0..4095 in dl_vlan)",
        ),
        (
            "ip,nw_tos=3",
            "bad value for nw_tos (3: nw_tos holds the DSCP bits of the ToS byte, so it "
            "must be a multiple of 4 (use nw_ecn for the low two bits))",
        ),
        (
            "dl_vlan_pcp=9",
            "bad value for dl_vlan_pcp (9: value too large for 3-bit field dl_vlan_pcp)",
        ),
        (
            "ipv6,ipv6_label=0x100000",
            "bad value for ipv6_label (0x100000: value too large for 20-bit field ipv6_label)",
        ),
        # Fields pyvswitch does not have are named as such, not "unknown".
        ("ct_state=+trk", "ct_state: field not supported by pyvswitch"),
        ("vlan_vid=5", "vlan_vid: field not supported by pyvswitch (use dl_vlan or vlan_tci)"),
        ("mpls", "mpls: protocol not supported by pyvswitch"),
    ],
)
def test_values_open_vswitch_would_cut_are_refused(flow: str, error: str) -> None:
    with pytest.raises(FlowParseError) as info:
        parse_trace_flow(flow)
    assert str(info.value) == f"{flow}: {error}"


def test_the_inner_vlan_tag_can_be_traced() -> None:
    # Open vSwitch's trace has no name for it ("unknown field vlan_tci1").
    key = parse_trace_flow("vlan_tci=0x1005,vlan_tci1=0x1006")
    assert (field(key, "vlan_tci"), field(key, "vlan_tci1")) == (0x1005, 0x1006)


def test_every_field_has_a_prerequisite_the_trace_can_check() -> None:
    for name, meta in META_FIELDS.items():
        prereq = oftrace._TRACE_PREREQS.get(name, meta.prereq)
        assert prereq is None or prereq in oftrace._PREREQ_OK, name
