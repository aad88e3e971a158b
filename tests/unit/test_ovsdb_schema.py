"""Schema parsing and validation (pyvswitch.ovsdb.schema)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pyvswitch.ovsdb.schema import BaseType, ColumnType, DbSchema, SchemaError, load_vswitch_schema


def _schema(**tables: Any) -> dict[str, Any]:
    return {"name": "Test", "version": "1.0.0", "tables": tables}


def test_vswitch_schema_loads_from_package() -> None:
    schema = load_vswitch_schema()
    assert schema.name == "Open_vSwitch"
    for table in (
        "Open_vSwitch",
        "Bridge",
        "Port",
        "Interface",
        "Mirror",
        "Controller",
        "Manager",
        "NetFlow",
        "sFlow",
        "IPFIX",
        "Flow_Sample_Collector_Set",
        "QoS",
        "Queue",
        "SSL",
        "AutoAttach",
        "Flow_Table",
        "Datapath",
        "CT_Zone",
        "CT_Timeout_Policy",
    ):
        assert table in schema.tables
    bridge = schema.tables["Bridge"]
    assert bridge.indexes == (("name",),)
    assert not bridge.is_root
    assert schema.tables["Open_vSwitch"].is_root
    assert schema.tables["Open_vSwitch"].max_rows == 1
    name = bridge.columns["name"]
    assert not name.mutable
    assert name.type.is_scalar
    ports = bridge.columns["ports"].type
    assert ports.key.ref_table == "Port"
    assert ports.key.is_strong_ref
    assert ports.n_min == 0
    assert ports.n_max is None
    mirror_out = schema.tables["Mirror"].columns["output_port"].type
    assert mirror_out.key.is_weak_ref
    assert mirror_out.is_optional_scalar
    fail_mode = bridge.columns["fail_mode"].type.key
    assert fail_mode.enum == frozenset({"standalone", "secure"})
    tag = schema.tables["Port"].columns["tag"].type.key
    assert (tag.min_integer, tag.max_integer) == (0, 4095)


def test_round_trip_through_json() -> None:
    schema = load_vswitch_schema()
    again = DbSchema.from_json(json.loads(json.dumps(schema.to_json())))
    assert again == schema


def test_type_to_english_matches_ovsdb_server() -> None:
    schema = load_vswitch_schema()
    ovs = schema.tables["Open_vSwitch"].columns
    assert ovs["ovs_version"].type.to_english() == "set of up to 1 strings"
    assert ovs["external_ids"].type.to_english() == "map of (string, string) pairs"
    assert ovs["dpdk_initialized"].type.to_english() == "boolean"
    interfaces = schema.tables["Port"].columns["interfaces"].type
    assert interfaces.to_english() == "set of 1 or more uuids"
    vlans = schema.tables["Bridge"].columns["flood_vlans"].type
    assert vlans.to_english() == "set of up to 4096 integers"


def test_short_and_long_type_forms() -> None:
    assert ColumnType.from_json("integer", "x") == ColumnType(BaseType("integer"))
    long = ColumnType.from_json({"key": {"type": "integer"}, "min": 1, "max": 1}, "x")
    assert long == ColumnType(BaseType("integer"))
    assert ColumnType(BaseType("integer")).to_json() == "integer"
    unlimited = ColumnType.from_json({"key": "string", "min": 0, "max": "unlimited"}, "x")
    assert unlimited.n_max is None
    assert unlimited.to_json() == {"key": "string", "min": 0, "max": "unlimited"}


def test_enum_single_value_and_set() -> None:
    one = BaseType.from_json({"type": "string", "enum": "a"}, "x")
    assert one.enum == frozenset({"a"})
    assert one.to_json() == {"type": "string", "enum": "a"}
    two = BaseType.from_json({"type": "integer", "enum": ["set", [2, 1]]}, "x")
    assert two.to_json() == {"type": "integer", "enum": ["set", [1, 2]]}


def test_no_isroot_anywhere_means_all_roots() -> None:
    schema = DbSchema.from_json(_schema(A={"columns": {"x": {"type": "integer"}}}))
    assert schema.tables["A"].is_root


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"A": {"columns": {"x": {"type": "float"}}}}, "table A column x"),
        ({"A": {"columns": {"x": {"type": {"key": "integer", "min": 2}}}}}, "table A column x"),
        ({"A": {"columns": {"x": {"type": {"key": "integer", "max": 0}}}}}, "table A column x"),
        (
            {"A": {"columns": {"x": {"type": {"key": {"type": "uuid", "refTable": "B"}}}}}},
            "refTable B",
        ),
        (
            {"A": {"columns": {"x": {"type": {"key": {"type": "string", "minInteger": 1}}}}}},
            "minInteger is not allowed",
        ),
        (
            {"A": {"columns": {"x": {"type": {"key": {"type": "uuid", "refType": "weak"}}}}}},
            "refType requires refTable",
        ),
        (
            {
                "A": {
                    "columns": {
                        "x": {
                            "type": {"key": {"type": "integer", "minInteger": 5, "maxInteger": 1}}
                        }
                    }
                }
            },
            "greater than",
        ),
        ({"A": {"columns": {"_x": {"type": "integer"}}}}, "reserved"),
        ({"A": {"columns": {}}}, "table A"),
        ({"A": {"columns": {"x": {"type": "integer"}}, "indexes": [["y"]]}}, "index column"),
        ({"A": {"columns": {"x": {"type": "integer"}}, "maxRows": 0}}, "maxRows"),
        ({"A": {"columns": {"x": {"type": "integer", "bogus": 1}}}}, "table A column x"),
        (
            {"A": {"columns": {"x": {"type": {"key": {"type": "string", "enum": ["set", [1]]}}}}}},
            "enum",
        ),
    ],
)
def test_bad_schemas_name_the_culprit(tables: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        DbSchema.from_json(_schema(**tables))


def test_bad_version_and_name() -> None:
    good = _schema(A={"columns": {"x": {"type": "integer"}}})
    bad = copy.deepcopy(good)
    bad["version"] = "1.0"
    with pytest.raises(SchemaError, match="version"):
        DbSchema.from_json(bad)
    bad = copy.deepcopy(good)
    bad["name"] = "no spaces"
    with pytest.raises(SchemaError, match="name"):
        DbSchema.from_json(bad)
