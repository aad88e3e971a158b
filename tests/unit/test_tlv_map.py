"""Geneve options as tun_metadata fields: the TLV map, the flow key, the text forms.

Every expected text here is what Open vSwitch 3.1 printed for the same input
(tests/interop/test_ovs_tlv_map.py asks it again).
"""

from __future__ import annotations

import re

import pytest

from pyvswitch.flow.flow import Flow
from pyvswitch.flow.layout import FIELDS, KEY_BITS
from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.flow.odp_text import format_odp_flow, geneve_bits, geneve_raw, parse_odp_flow
from pyvswitch.flow.ofp_text import format_flow, format_match, parse_match
from pyvswitch.ofproto.actions import SetField
from pyvswitch.ofproto.actions_text import format_actions_as_written, parse_actions
from pyvswitch.ofproto.actions_wire import format_actions
from pyvswitch.ofproto.tlv_map import (
    ADD,
    CLEAR,
    DELETE,
    EMPTY,
    TlvFieldError,
    TlvMap,
    TlvMapError,
    TlvMapping,
    check_flow,
    datapath_mask,
    fields_used,
    format_table_mod,
    format_table_reply,
    metadata_from_key,
    metadata_from_options,
    options_for_push,
    parse_mappings,
    push_mask,
    table_mod,
)
from pyvswitch.packet.tunnel import GeneveOption

MAP = table_mod(
    EMPTY,
    ADD,
    parse_mappings(
        "{class=0xffff,type=0x80,len=4}->tun_metadata0,"
        "{class=0xffff,type=0x1,len=8}->tun_metadata1,"
        "{class=0xffff,type=0x2,len=0}->tun_metadata2"
    ),
)


def _mod(tlv: TlvMap, command: str, text: str = "", in_use: tuple[int, ...] = ()) -> TlvMap:
    return table_mod(tlv, command, parse_mappings(text), in_use)


def _code(tlv: TlvMap, command: str, text: str = "", in_use: tuple[int, ...] = ()) -> str:
    with pytest.raises(TlvMapError) as info:
        _mod(tlv, command, text, in_use)
    return info.value.code


# -- the map ------------------------------------------------------------------------------


def test_mappings_are_read_as_ovs_ofctl_reads_them() -> None:
    assert parse_mappings("{class=65535,type=132,len=4}->tun_metadata7") == (
        TlvMapping(0xFFFF, 0x84, 4, 7),
    )
    # A leading comma is allowed, and no mappings at all.
    assert parse_mappings(",{class=0xfff,type=0x80,len=4}->tun_metadata9") == (
        TlvMapping(0xFFF, 0x80, 4, 9),
    )
    assert parse_mappings("") == ()


@pytest.mark.parametrize(
    "text",
    [
        "{class=0xffff,type=0x84,len=4}->tun_metadata6,",
        "{class=0xffff,type=0x84,len=4}",
        "class=0xffff,type=0x84,len=4->tun_metadata6",
        "{type=0x84,class=0xffff,len=4}->tun_metadata6",
        "{ class=0xffff, type=0x84, len=4 } -> tun_metadata6",
        "{class=08,type=0x80,len=4}->tun_metadata0",
    ],
)
def test_anything_else_is_an_invalid_mapping(text: str) -> None:
    with pytest.raises(FlowParseError, match=r"^invalid tlv mapping$"):
        parse_mappings(text)


def test_numbers_that_do_not_fit_are_refused_not_cut() -> None:
    # ovs-ofctl would map class 0 and type 0 here.
    with pytest.raises(FlowParseError, match="option class 0x10000 does not fit in 16 bits"):
        parse_mappings("{class=0x10000,type=0x84,len=4}->tun_metadata6")
    with pytest.raises(FlowParseError, match="option type 0x100 does not fit in 8 bits"):
        parse_mappings("{class=0xffff,type=0x100,len=4}->tun_metadata6")


def test_adding_keeps_fields_in_order_and_counts_the_space() -> None:
    tlv = _mod(EMPTY, ADD, "{class=0x1,type=0x2,len=124}->tun_metadata2")
    tlv = _mod(tlv, ADD, "{class=0xffff,type=0x80,len=4}->tun_metadata0")
    assert [m.index for m in tlv.mappings] == [0, 2]
    assert tlv.allocated == 128
    assert format_table_reply(tlv, 10) == (
        "NXT_TLV_TABLE_REPLY (xid=0x2):\n"
        " max option space=256 max fields=64\n"
        " allocated option space=128\n"
        "\n"
        " mapping table:\n"
        "  class  type  length  match field\n"
        " ------  ----  ------  --------------\n"
        " 0xffff  0x80       4  tun_metadata0\n"
        "    0x1   0x2     124  tun_metadata2\n"
    )


def test_a_class_of_zero_prints_as_c_does() -> None:
    tlv = _mod(EMPTY, ADD, "{class=0,type=0x84,len=4}->tun_metadata6")
    assert format_table_reply(tlv, 13).splitlines()[0] == "NXT_TLV_TABLE_REPLY (OF1.3) (xid=0x2):"
    assert format_table_reply(tlv, 13).splitlines()[-1] == "      0  0x84       4  tun_metadata6"


def test_mapping_errors_are_open_vswitchs() -> None:
    assert _code(MAP, ADD, "{class=0xffff,type=0x80,len=4}->tun_metadata0") == (
        "NXTTMFC_ALREADY_MAPPED"
    )
    assert _code(MAP, ADD, "{class=0xffff,type=0x80,len=4}->tun_metadata5") == "NXTTMFC_DUP_ENTRY"
    # Twice in one request is a duplicate too, and nothing of it is applied.
    assert (
        _code(
            EMPTY,
            ADD,
            "{class=0xffff,type=0x81,len=4}->tun_metadata1,{class=0xffff,type=0x81,len=4}->tun_metadata2",
        )
        == "NXTTMFC_DUP_ENTRY"
    )
    assert _code(EMPTY, ADD, "{class=1,type=1,len=5}->tun_metadata5") == "NXTTMFC_BAD_OPT_LEN"
    assert _code(EMPTY, ADD, "{class=1,type=1,len=128}->tun_metadata5") == "NXTTMFC_BAD_OPT_LEN"
    assert _code(EMPTY, ADD, "{class=1,type=1,len=4}->tun_metadata64") == "NXTTMFC_BAD_FIELD_IDX"


def test_the_table_holds_256_bytes_of_options_in_all() -> None:
    tlv = _mod(
        EMPTY,
        ADD,
        "{class=1,type=1,len=124}->tun_metadata1,{class=1,type=2,len=124}->tun_metadata2",
    )
    # 248 used: 8 more fit, 12 do not; a zero-length option always fits.
    assert _code(tlv, ADD, "{class=1,type=3,len=12}->tun_metadata3") == "NXTTMFC_TABLE_FULL"
    full = _mod(
        tlv, ADD, "{class=1,type=3,len=8}->tun_metadata3,{class=1,type=4,len=0}->tun_metadata4"
    )
    assert full.allocated == 256
    # Space freed in the middle is used again, even split.
    assert _mod(_mod(full, DELETE, "{class=1,type=3,len=8}->tun_metadata3"), ADD,
                "{class=1,type=5,len=8}->tun_metadata5").allocated == 256  # fmt: skip


def test_deleting_looks_only_at_the_field_index() -> None:
    tlv = _mod(MAP, DELETE, "{class=0x1,type=0x1,len=8}->tun_metadata0")
    assert [m.index for m in tlv.mappings] == [1, 2]
    # An index that is not mapped is no error.
    assert _mod(MAP, DELETE, "{class=0xffff,type=0x80,len=4}->tun_metadata9") == MAP
    assert _mod(MAP, CLEAR) == EMPTY


def test_a_mapping_a_flow_uses_cannot_be_deleted() -> None:
    assert _code(MAP, DELETE, "{class=1,type=1,len=4}->tun_metadata1", (1,)) == (
        "NXTTMFC_INVALID_TLV_DEL"
    )
    assert _code(MAP, CLEAR, in_use=(2,)) == "NXTTMFC_INVALID_TLV_DEL"
    assert _mod(MAP, DELETE, "{class=1,type=1,len=4}->tun_metadata1", (0,)).by_index(1) is None


def test_a_refused_mod_prints_the_request_as_ovs_ofctl_does() -> None:
    mappings = parse_mappings("{class=0xffff,type=0x80,len=4}->tun_metadata0")
    assert format_table_mod("NXTTMFC_ALREADY_MAPPED", ADD, mappings, 10) == (
        "OFPT_ERROR (xid=0x4): NXTTMFC_ALREADY_MAPPED\n"
        "NXT_TLV_TABLE_MOD (xid=0x4):\n"
        " ADD mapping table:\n"
        "  class  type  length  match field\n"
        " ------  ----  ------  --------------\n"
        " 0xffff  0x80       4  tun_metadata0"
    )
    assert format_table_mod("NXTTMFC_INVALID_TLV_DEL", CLEAR, (), 13) == (
        "OFPT_ERROR (OF1.3) (xid=0x2): NXTTMFC_INVALID_TLV_DEL\n"
        "NXT_TLV_TABLE_MOD (OF1.3) (xid=0x2):\n"
        " CLEAR"
    )


def test_a_request_the_switch_cannot_decode_is_dumped_in_hex() -> None:
    mappings = parse_mappings(
        "{class=0xffff,type=0x80,len=5}->tun_metadata0,{class=0xffff,type=0x80,len=6}->tun_metadata1"
    )
    with pytest.raises(TlvMapError) as info:
        table_mod(EMPTY, ADD, mappings)
    text = format_table_mod(info.value.code, ADD, mappings, 12, info.value.warning)
    assert text.splitlines() == [
        "ofp_match|WARN|tlv table option length (5) is not a valid option size",
        "OFPT_ERROR (OF1.2) (xid=0x2): NXTTMFC_BAD_OPT_LEN",
        "NXT_TLV_TABLE_MOD (OF1.2) (xid=0x2): ***decode error: NXTTMFC_BAD_OPT_LEN***",
        "00000000  03 04 00 28 00 00 00 02-00 00 23 20 00 00 00 18 |...(......# ....|",
        "00000010  00 00 00 00 00 00 00 00-ff ff 80 05 00 00 00 00 |................|",
        "00000020  ff ff 80 06 00 01 00 00-                        |........        |",
    ]


# -- the flow key -------------------------------------------------------------------------


def test_option_fields_sit_above_everything_a_frame_sets() -> None:
    assert FIELDS["tun_metadata0"].shift > FIELDS["reg15"].shift
    assert FIELDS["tun_md_present"].shift < FIELDS["tun_metadata0"].shift
    assert FIELDS["tun_metadata63"].shift + FIELDS["tun_metadata63"].bits == KEY_BITS
    assert FIELDS["tun_metadata5"].nbytes == 124


def test_writing_a_field_makes_it_present_and_absent_fields_read_zero() -> None:
    flow = Flow()
    flow.set_tun_metadata(3, 0xABC)
    assert flow.tun_md_present == 0b1000
    assert flow.tun_metadata(3) == 0xABC
    flow.tun_metadata0 = 0  # type: ignore[attr-defined]
    assert flow.tun_md_present == 0b1001
    copy = Flow.from_key(flow.to_key())
    assert copy == flow
    assert copy.tun_metadata(3) == 0xABC
    flow.tun_md_present = 0b0001
    assert flow.tun_metadata(3) == 0
    assert "tun_metadata3" not in repr(flow)


# -- OpenFlow text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("tun_metadata0=0xa/0xf", "tun_metadata0=0xa/0xf"),
        ("tun_metadata0=10", "tun_metadata0=0xa"),
        ("tun_metadata0", "tun_metadata0"),
        ("tun_metadata0=0/0", "tun_metadata0"),
        ("tun_metadata1=0", "tun_metadata1=0"),
        ("priority=5,tun_metadata1,tun_metadata0=0xa", "tun_metadata0=0xa,tun_metadata1"),
        (
            "tun_metadata0=0xa0000000/0xf0000000,tun_metadata1=0x0000000000000001",
            "tun_metadata0=0xa0000000/0xf0000000,tun_metadata1=0x1",
        ),
        ("ip,tun_metadata0=1,tun_id=5,in_port=3", "ip,tun_id=0x5,tun_metadata0=0x1,in_port=3"),
    ],
)
def test_matches_read_and_print_as_ovs_ofctl(text: str, printed: str) -> None:
    match, _ = parse_match(text, extra=("priority",))
    assert format_match(match) == printed
    # What is printed reads back to the same match.
    assert parse_match(printed)[0] == match


def test_a_match_on_an_option_needs_it_present() -> None:
    match, _ = parse_match("tun_metadata0=0")
    assert not match.matches(Flow().to_key())
    assert match.matches(Flow(tun_metadata0=0).to_key())
    assert not match.matches(Flow(tun_metadata0=1).to_key())


def test_a_megaflow_that_needs_an_option_absent_says_np() -> None:
    present = FIELDS["tun_md_present"]
    megaflow = Match(0, present.put(0b101))
    assert format_match(megaflow) == "tun_metadata0=NP,tun_metadata2=NP"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tun_metadata0,tun_metadata0", "field tun_metadata0 set multiple times"),
        (
            ",".join(f"tun_metadata{i}=0x{'12' * 100}" for i in range(3)),
            "field tun_metadata2 exceeds maximum size for tunnel metadata (used 300, max 256)",
        ),
        ("tun_metadata0=", "field tun_metadata0 missing value"),
    ],
)
def test_match_errors_are_ovs_ofctls(text: str, message: str) -> None:
    with pytest.raises(FlowParseError, match=f"^{re.escape(message)}$"):
        parse_match(text)


def test_a_packets_flow_line_shows_its_present_options() -> None:
    flow = Flow(tun_dst=0x01010258, tun_src=0x0101025C, tun_ttl=64, in_port=5)
    flow.set_tun_metadata(0, 0xA)
    assert "tun_flags=0,tun_metadata0=0xa,in_port=5" in format_flow(flow)
    # Without a tunnel destination there is no tunnel to show.
    assert "tun_metadata0" not in format_flow(Flow(tun_metadata0=0xA))


@pytest.mark.parametrize(
    ("text", "as_written", "of10"),
    [
        (
            "set_field:0x1234->tun_metadata1,output:1",
            "set_field:0x1234->tun_metadata1,output:1",
            "set_field:0x1234->tun_metadata1,output:1",
        ),
        (
            "load:0x5->tun_metadata0[0..3],move:tun_metadata0[0..31]->NXM_NX_REG0[]",
            "set_field:0x5/0xf->tun_metadata0,move:NXM_NX_TUN_METADATA0[0..31]->NXM_NX_REG0[]",
            "set_field:0x5/0xf->tun_metadata0,move:NXM_NX_TUN_METADATA0[0..31]->NXM_NX_REG0[]",
        ),
        ("set_field:10->tun_metadata1", "set_field:0xa->tun_metadata1", ""),
    ],
)
def test_writes_print_as_set_field_in_every_version(text: str, as_written: str, of10: str) -> None:
    actions = parse_actions(text)
    assert format_actions_as_written(actions) == as_written
    for version in (10, 13, 15):
        assert format_actions(actions, version=version) == (of10 or as_written)


def test_move_widths_are_the_fields_124_bytes_to_ovs_ofctl() -> None:
    with pytest.raises(
        FlowParseError, match="source field is 32 bits wide but destination is 992"
    ):
        parse_actions("move:NXM_NX_REG1[]->tun_metadata0[]")


# -- flows against the map ---------------------------------------------------------------------


def _flow(text: str) -> tuple[Match, tuple[object, ...]]:
    head, _, actions = text.partition("actions=")
    return parse_match(head.rstrip(","))[0], parse_actions(actions)


def _check(text: str) -> tuple[str, str]:
    match, actions = _flow(text)
    checked, written = check_flow(MAP, match, actions)  # type: ignore[arg-type]
    return format_match(checked), format_actions_as_written(written)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("tun_metadata3=1,actions=drop", "NXFMFC_INVALID_TLV_FIELD"),
        ("actions=set_field:1->tun_metadata5", "NXFMFC_INVALID_TLV_FIELD"),
        ("actions=load:1->tun_metadata3[0..7]", "NXFMFC_INVALID_TLV_FIELD"),
        ("actions=move:tun_metadata0[0..7]->tun_metadata3[0..7]", "NXFMFC_INVALID_TLV_FIELD"),
        ("actions=output:tun_metadata3[0..15]", "NXFMFC_INVALID_TLV_FIELD"),
        ("actions=move:tun_metadata0[]->tun_metadata1[]", "OFPBAC_BAD_SET_LEN"),
        ("actions=move:tun_metadata0[0..63]->tun_metadata1[0..63]", "OFPBAC_BAD_SET_LEN"),
    ],
)
def test_the_switch_refuses_fields_its_map_does_not_have(text: str, code: str) -> None:
    match, actions = _flow(text)
    with pytest.raises(TlvFieldError) as info:
        check_flow(MAP, match, actions)  # type: ignore[arg-type]
    assert info.value.code == code


@pytest.mark.parametrize(
    "text",
    [
        "tun_metadata0=0x1122334455,actions=drop",
        "tun_metadata2=1,actions=drop",
        "actions=set_field:0x1122334455->tun_metadata0",
        "actions=load:1->tun_metadata0[40]",
    ],
)
def test_values_longer_than_their_option_are_refused(text: str) -> None:
    # Open vSwitch keeps a part of them (0x11223344; bit 24), silently.
    match, actions = _flow(text)
    with pytest.raises(FlowParseError, match="option"):
        check_flow(MAP, match, actions)  # type: ignore[arg-type]


def test_a_match_or_write_over_the_whole_option_is_exact() -> None:
    assert _check(
        "tun_metadata0=0xa/0xffffffff,actions=set_field:0xb/0xffffffff->tun_metadata0"
    ) == ("tun_metadata0=0xa", "set_field:0xb->tun_metadata0")
    assert _check("actions=load:0xb->tun_metadata0[0..31]") == ("", "set_field:0xb->tun_metadata0")
    # A zero-length option can only be there or not.
    assert _check("tun_metadata2=0,actions=drop") == ("tun_metadata2", "drop")


def test_the_fields_a_flow_uses() -> None:
    match, actions = _flow("tun_metadata0=1,actions=move:tun_metadata1[0..7]->NXM_NX_REG0[0..7]")
    assert fields_used(match, actions) == {0, 1}  # type: ignore[arg-type]
    assert fields_used(Match(), [SetField("tun_metadata9", 1, 1)]) == {9}


# -- options and fields ------------------------------------------------------------------------


def _opt(opt_class: int, opt_type: int, data: bytes) -> GeneveOption:
    return GeneveOption(opt_class, opt_type, data)


def test_options_become_the_fields_the_map_names() -> None:
    bits = metadata_from_options(
        MAP,
        [_opt(0xFFFF, 0x80, bytes.fromhex("0000000a")), _opt(0xFFFF, 0x00, bytes(4))],
    )
    assert bits is not None
    flow = Flow.from_key(bits)
    assert flow.tun_md_present == 1
    assert flow.tun_metadata(0) == 0xA
    # A zero-length option is present with no data.
    assert (
        Flow.from_key(metadata_from_options(MAP, [_opt(0xFFFF, 2, b"")]) or 0).tun_md_present == 4
    )


def test_unknown_critical_options_and_wrong_lengths_drop_the_packet() -> None:
    assert metadata_from_options(MAP, [_opt(0xFFFF, 0x81, bytes(4))]) is None
    assert metadata_from_options(MAP, [_opt(0xFFFF, 0x80, bytes(8))]) is None
    assert metadata_from_options(EMPTY, [_opt(0xFFFF, 0x01, bytes(4))]) == 0


def test_push_puts_present_fields_in_field_order_with_their_class_and_type() -> None:
    flow = Flow()
    flow.set_tun_metadata(1, 0x1234)
    flow.set_tun_metadata(0, 0xA)
    flow.set_tun_metadata(7, 5)  # no longer mapped: left out
    options = options_for_push(MAP, flow)
    assert options == (
        _opt(0xFFFF, 0x80, bytes.fromhex("0000000a")),
        _opt(0xFFFF, 0x01, bytes.fromhex("0000000000001234")),
    )
    assert options[0].critical
    assert not options[1].critical
    mask = push_mask(MAP, flow)
    assert FIELDS["tun_md_present"].get(mask) == 0b111
    assert FIELDS["tun_metadata0"].get(mask) == 0xFFFFFFFF
    assert FIELDS["tun_metadata2"].get(mask) == 0


def test_a_datapath_key_keeps_the_options_raw_and_matches_their_layout() -> None:
    raw = bytes.fromhex("ffff80010000000affff00010000000b")
    key = geneve_bits(raw)
    assert geneve_raw(key) == raw
    bits = metadata_from_key(MAP, key)
    assert bits is not None
    assert Flow.from_key(bits).tun_metadata(0) == 0xA
    # A megaflow that looked at the low nibble of tun_metadata0.
    mask = datapath_mask(MAP, key, FIELDS["tun_metadata0"].put(0xF))
    assert FIELDS["tun_gnv_len"].get(mask) == 0xFF
    assert FIELDS["tun_gnv_opts"].get(mask).to_bytes(16, "big").hex() == (
        "ffffff1f0000000fffffff1f00000000"
    )


# -- datapath text ------------------------------------------------------------------------------

_TUNNEL = "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64,{},flags(key)),in_port(6081)"


def test_geneve_options_read_and_print_in_a_datapath_key() -> None:
    options = "geneve({class=0xffff,type=0x80,len=4,0xa}{class=0xffff,type=0,len=4,0xb})"
    key, _ = parse_odp_flow(_TUNNEL.format(options))
    assert geneve_raw(key).hex() == "ffff80010000000affff00010000000b"
    assert format_odp_flow(key).startswith(_TUNNEL.format(options))


def test_a_megaflow_shows_option_data_under_its_mask() -> None:
    # dpif/dump-flows in tunnel-push-pop.at, after a rule on tun_metadata0=0xa/0xf.
    text = (
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,{}"
        "geneve({{class=0xffff,type=0x80,len=4,0xa/0xf}}{{class=0xffff,type=0,len=4}}),"
        "flags(-df-csum+key)),recirc_id(0),in_port(6081),packet_type(ns=0,id=0),"
        "eth_type(0x0800),ipv4(frag=no)"
    )
    # A key without a TTL is refused as OVS refuses it: give one, wildcarded.
    key, mask = parse_odp_flow(text.format("ttl=64/0,"))
    assert format_odp_flow(key, mask, megaflow=True) == text.format("")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{class=0xffff,type=0x80,len=5,0xa}", "multiples of 4"),
        ("{class=0xffff,type=0x80,len=4,0x1122334455}", "out of range"),
        ("{class=0x10000,type=0x80,len=4}", "out of range"),
    ],
)
def test_bad_geneve_options_are_refused(options: str, message: str) -> None:
    with pytest.raises(FlowParseError, match=message):
        parse_odp_flow(_TUNNEL.format(f"geneve({options})"))
