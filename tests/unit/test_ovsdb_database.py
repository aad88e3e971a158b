"""The OVSDB engine (pyvswitch.ovsdb.database, pyvswitch.ovsdb.data).

Expected error texts were taken from Open vSwitch 3.1's ovsdb-server; the
``ovs``-marked tests/interop/test_ovs_ovsdb_engine.py compares many more live.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.ovsdb.data import OvsdbError, datum_from_json, datum_to_json
from pyvswitch.ovsdb.database import Database, WaitPending
from pyvswitch.ovsdb.schema import DbSchema, load_vswitch_schema

SCHEMA = load_vswitch_schema()
OVS = "Open_vSwitch"


def _uuids() -> Any:
    counter = itertools.count(1)
    return lambda: uuid.UUID(int=next(counter))


def _db() -> Database:
    db = Database(SCHEMA, _uuids())
    ok(db, [{"op": "insert", "table": OVS, "row": {}}])
    return db


def ok(db: Database, ops: list[Any], elapsed_ms: int | None = None) -> list[Any]:
    results, _ = db.transact(ops, elapsed_ms=elapsed_ms)
    assert all(r is not None and "error" not in r for r in results), results
    return results


def err(db: Database, ops: list[Any]) -> dict[str, Any]:
    before = db.to_json()
    results, changes = db.transact(ops)
    assert changes is None
    assert db.to_json() == before, "a failed transaction changed the database"
    errors = [r for r in results if r is not None and "error" in r]
    assert len(errors) == 1, results
    assert results[-1] is None or "error" in results[-1]
    return errors[0]


def add_br(name: str, *ports: str) -> list[Any]:
    ops: list[Any] = [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [["bridges", "insert", ["named-uuid", f"b_{name}"]]],
        },
        {
            "op": "insert",
            "table": "Bridge",
            "uuid-name": f"b_{name}",
            "row": {"name": name, "ports": ["set", [["named-uuid", f"p_{p}"] for p in ports]]},
        },
    ]
    for p in ports:
        ops.append(
            {
                "op": "insert",
                "table": "Port",
                "uuid-name": f"p_{p}",
                "row": {"name": p, "interfaces": ["named-uuid", f"i_{p}"]},
            }
        )
        ops.append(
            {"op": "insert", "table": "Interface", "uuid-name": f"i_{p}", "row": {"name": p}}
        )
    return ops


def names(db: Database, table: str) -> list[str]:
    return sorted(r["name"][0] for r in db.rows(table).values())


def select(db: Database, table: str, cols: list[str], where: list[Any] | None = None) -> list[Any]:
    op = {"op": "select", "table": table, "where": where or [], "columns": cols}
    rows: list[Any] = ok(db, [op])[0]["rows"]
    return rows


# -- data ------------------------------------------------------------------


def test_datum_round_trip_and_forms() -> None:
    cols = SCHEMA.tables["Bridge"].columns
    vlans = cols["flood_vlans"].type
    assert datum_from_json(vlans, ["set", [3, 1]]) == (1, 3)
    assert datum_from_json(vlans, 7) == (7,)
    assert datum_to_json(vlans, (7,)) == 7
    assert datum_to_json(vlans, (1, 3)) == ["set", [1, 3]]
    assert datum_to_json(vlans, ()) == ["set", []]
    ext = cols["external_ids"].type
    assert datum_from_json(ext, ["map", [["b", "2"], ["a", "1"]]]) == (("a", "1"), ("b", "2"))
    assert datum_to_json(ext, (("a", "1"),)) == ["map", [["a", "1"]]]
    ports = cols["ports"].type
    u = "12345678-1234-1234-1234-123456789012"
    assert datum_to_json(ports, datum_from_json(ports, ["uuid", u])) == ["uuid", u]


@pytest.mark.parametrize(
    ("column", "value", "tag", "details"),
    [
        ("name", 1, "syntax error", "expected string"),
        (
            "fail_mode",
            "x",
            "constraint violation",
            "x is not one of the allowed values ([secure, standalone])",
        ),
        (
            "flood_vlans",
            5000,
            "constraint violation",
            "5000 is not in the valid range 0 to 4095 (inclusive)",
        ),
        ("flood_vlans", ["set", [1, 1]], "ovsdb error", "set contains duplicate"),
        ("external_ids", "x", "syntax error", 'expected ["map", <array>]'),
        ("external_ids", ["map", [["a"]]], "syntax error", "expected 2-element array"),
        ("netflow", ["set", [["uuid", "x"]]], "syntax error", '"x" is not a valid UUID'),
        ("netflow", ["named-uuid", "x"], "syntax error", 'expected ["uuid", <string>]'),
        (
            "stp_enable",
            ["set", []],
            "syntax error",
            "set must have exactly one member but 0 are present",
        ),
    ],
)
def test_datum_errors_match_ovsdb_server(column: str, value: Any, tag: str, details: str) -> None:
    with pytest.raises(OvsdbError) as info:
        datum_from_json(SCHEMA.tables["Bridge"].columns[column].type, value)
    assert info.value.tag == tag
    assert info.value.details == details


# -- operations --------------------------------------------------------------


def test_insert_select_with_named_uuids_before_definition() -> None:
    db = _db()
    results = ok(db, add_br("br0", "p1"))
    assert results[0] == {"count": 1}
    assert results[1]["uuid"][0] == "uuid"
    assert names(db, "Bridge") == ["br0"]
    rows = select(db, "Bridge", ["name", "ports"])
    port_uuid = next(iter(db.rows("Port")))
    assert rows == [{"name": "br0", "ports": ["uuid", str(port_uuid)]}]
    row = select(db, "Bridge", ["_uuid", "_version"])[0]
    assert set(row) == {"_uuid", "_version"}


def test_insert_with_caller_chosen_uuid() -> None:
    db = _db()
    chosen = "11111111-2222-3333-4444-555555555555"
    res = ok(
        db,
        [
            {"op": "insert", "table": "Queue", "row": {}, "uuid": chosen, "uuid-name": "q"},
            {
                "op": "select",
                "table": "Queue",
                "where": [["_uuid", "==", ["named-uuid", "q"]]],
                "columns": ["_uuid"],
            },
        ],
    )
    assert res[0] == {"uuid": ["uuid", chosen]}
    assert res[1] == {"rows": [{"_uuid": ["uuid", chosen]}]}
    e = err(db, [{"op": "insert", "table": "Queue", "row": {}, "uuid": chosen}])
    assert e["error"] == "duplicate uuid"
    assert (
        err(db, [{"op": "insert", "table": "Queue", "row": {}, "uuid": "zz"}])["details"]
        == "bad uuid"
    )


def test_duplicate_uuid_name() -> None:
    db = _db()
    e = err(db, [{"op": "insert", "table": "Queue", "row": {}, "uuid-name": "a"}] * 2)
    assert e["error"] == "duplicate uuid-name"


def test_update_and_immutable_columns() -> None:
    db = _db()
    ok(db, add_br("br0"))
    res = ok(
        db,
        [
            {
                "op": "update",
                "table": "Bridge",
                "where": [["name", "==", "br0"]],
                "row": {"stp_enable": True},
            }
        ],
    )
    assert res == [{"count": 1}]
    assert select(db, "Bridge", ["stp_enable"]) == [{"stp_enable": True}]
    e = err(db, [{"op": "update", "table": "Bridge", "where": [], "row": {"name": "x"}}])
    assert e["details"] == "Cannot update immutable column name in table Bridge."
    assert e["error"] == "constraint violation"


def test_mutate_semantics() -> None:
    db = _db()
    ok(db, add_br("br0"))
    ok(
        db,
        [
            {
                "op": "mutate",
                "table": OVS,
                "where": [],
                "mutations": [
                    ["next_cfg", "+=", 5],
                    ["next_cfg", "*=", 3],
                    ["next_cfg", "-=", 22],
                    ["next_cfg", "/=", 2],
                    ["external_ids", "insert", ["map", [["a", "1"], ["b", "2"]]]],
                    ["external_ids", "insert", ["map", [["a", "9"]]]],  # present keys are kept
                    ["external_ids", "delete", ["map", [["b", "9"]]]],  # pair must match
                    ["datapath_types", "insert", ["set", ["netdev", "system"]]],
                    ["datapath_types", "delete", "system"],
                ],
            }
        ],
    )
    row = select(db, OVS, ["next_cfg", "external_ids", "datapath_types"])[0]
    # C division truncates toward zero: (15 - 22) / 2 == -3.
    assert row == {
        "next_cfg": -3,
        "external_ids": ["map", [["a", "1"], ["b", "2"]]],
        "datapath_types": "netdev",
    }
    ok(
        db,
        [
            {
                "op": "mutate",
                "table": OVS,
                "where": [],
                "mutations": [["next_cfg", "%=", 2], ["external_ids", "delete", ["set", ["a"]]]],
            }
        ],
    )
    assert select(db, OVS, ["next_cfg", "external_ids"])[0] == {
        "next_cfg": -1,
        "external_ids": ["map", [["b", "2"]]],
    }
    ok(
        db,
        [
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [],
                "mutations": [
                    ["flood_vlans", "insert", ["set", [1, 2]]],
                    ["flood_vlans", "+=", 10],
                ],
            }
        ],
    )
    assert select(db, "Bridge", ["flood_vlans"])[0] == {"flood_vlans": ["set", [11, 12]]}


@pytest.mark.parametrize(
    ("table", "mutation", "tag", "details"),
    [
        (OVS, ["next_cfg", "/=", 0], "domain error", "Division by zero."),
        (OVS, ["next_cfg", "+=", 2**63 - 1], None, None),
        (OVS, ["next_cfg", "^=", 1], "unknown mutator", "No mutator named ^=."),
        (
            OVS,
            ["ovs_version", "+=", "x"],
            "syntax error",
            'Type mismatch: "+=" operator may not be applied to column ovs_version of type '
            "set of up to 1 strings.",
        ),
        (
            OVS,
            ["ovs_version", "insert", ["set", ["a", "b"]]],
            "syntax error",
            "set must have 0 to 1 members but 2 are present",
        ),
        (OVS, ["nope", "+=", 1], "unknown column", "No column nope in table Open_vSwitch."),
        (OVS, ["next_cfg", "+="], "syntax error", "Parse error in mutation."),
        (
            "Bridge",
            ["name", "insert", "x"],
            "constraint violation",
            "Cannot mutate immutable column name in table Bridge.",
        ),
        (
            "Bridge",
            ["flood_vlans", "+=", 5000],
            "constraint violation",
            "5001 is not in the valid range 0 to 4095 (inclusive)",
        ),
        (
            "Bridge",
            ["flood_vlans", "*=", 0],
            "constraint violation",
            'Result of "*=" operation contains duplicates.',
        ),
        ("Port", ["interfaces", "delete", ["set", []]], None, None),
    ],
)
def test_mutate_errors(
    table: str, mutation: list[Any], tag: str | None, details: str | None
) -> None:
    db = _db()
    ok(
        db,
        [
            *add_br("br0", "p1"),
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [],
                "mutations": [["flood_vlans", "insert", ["set", [1, 2]]]],
            },
        ],
    )
    ops = [{"op": "mutate", "table": table, "where": [], "mutations": [mutation]}]
    if tag is None:
        ok(db, ops)
        return
    e = err(db, ops)
    assert (e["error"], e["details"]) == (tag, details)


def test_overflow_and_set_size_after_mutation() -> None:
    db = _db()
    ok(
        db,
        [
            {
                "op": "mutate",
                "table": OVS,
                "where": [],
                "mutations": [["next_cfg", "+=", 2**63 - 1]],
            }
        ],
    )
    e = err(
        db, [{"op": "mutate", "table": OVS, "where": [], "mutations": [["next_cfg", "+=", 1]]}]
    )
    assert e == {"error": "range error", "details": 'Result of "+=" operation is out of range.'}
    ok(
        db,
        [
            {
                "op": "mutate",
                "table": OVS,
                "where": [],
                "mutations": [["ovs_version", "insert", "a"]],
            }
        ],
    )
    e = err(
        db,
        [
            {
                "op": "mutate",
                "table": OVS,
                "where": [],
                "mutations": [["ovs_version", "insert", "b"]],
            }
        ],
    )
    assert e["details"] == "Attempted to store 2 elements in set of up to 1 strings."


def test_delete_and_conditions() -> None:
    db = _db()
    for dscp in (1, 5, 9):
        ok(
            db,
            [
                {
                    "op": "insert",
                    "table": "Queue",
                    "row": {"dscp": dscp, "external_ids": ["map", [["k", str(dscp)]]]},
                }
            ],
        )
    ok(db, [{"op": "insert", "table": "Queue", "row": {}}])

    def dscps(where: list[Any]) -> list[Any]:
        return sorted(json.dumps(r["dscp"]) for r in select(db, "Queue", ["dscp"], where))

    assert dscps([["dscp", "<", 5]]) == ["1"]
    assert dscps([["dscp", ">=", 5]]) == ["5", "9"]
    assert dscps([["dscp", "!=", 5]]) == ["1", "9", '["set", []]']
    assert dscps([["dscp", "==", ["set", []]]]) == ['["set", []]']
    assert dscps([["external_ids", "includes", ["map", [["k", "9"]]]]]) == ["9"]
    assert dscps([["external_ids", "excludes", ["map", [["k", "9"]]]]]) == [
        "1",
        "5",
        '["set", []]',
    ]
    assert dscps([False]) == []
    res = ok(db, [{"op": "delete", "table": "Queue", "where": [["dscp", "<=", 5]]}])
    assert res == [{"count": 2}]
    assert len(db.rows("Queue")) == 2
    e = err(db, [{"op": "select", "table": "Queue", "where": [["dscp", "<", "a"]]}])
    assert e["error"] == "syntax error"
    e = err(db, [{"op": "select", "table": "Bridge", "where": [["name", "<", "a"]]}])
    assert (
        e["details"]
        == 'Type mismatch: "<" operator may not be applied to column name of type string.'
    )
    assert err(db, [{"op": "select", "table": "Bridge", "where": [["name", "~", "a"]]}]) == {
        "error": "unknown function",
        "details": "No function named ~.",
    }


def test_select_is_distinct_like_ovsdb_server() -> None:
    db = _db()
    ok(
        db,
        [
            {"op": "insert", "table": "Queue", "row": {}},
            {"op": "insert", "table": "Queue", "row": {}},
        ],
    )
    assert select(db, "Queue", ["dscp"]) == [{"dscp": ["set", []]}]
    assert len(select(db, "Queue", ["_uuid"])) == 2


def test_wait_comment_commit_abort_assert() -> None:
    db = _db()
    ok(db, add_br("br0"))
    wait = {
        "op": "wait",
        "table": "Bridge",
        "where": [],
        "columns": ["name"],
        "rows": [{"name": "br0"}],
        "timeout": 0,
    }
    assert ok(
        db,
        [
            {**wait, "until": "=="},
            {"op": "comment", "comment": "c"},
            {"op": "commit", "durable": True},
        ],
    ) == [{}, {}, {}]
    assert err(db, [{**wait, "until": "!="}]) == {
        "error": "timed out",
        "details": '"where" clause test failed',
    }
    assert err(db, [{**wait, "until": "="}])["details"] == '"until" must be "==" or "!="'
    results, _ = db.transact([{"op": "abort"}, {"op": "comment", "comment": "x"}])
    assert results == [{"error": "aborted", "details": "aborted by request"}, None]
    assert err(db, [{"op": "assert", "lock": "l"}]) == {
        "error": "not owner",
        "details": "Asserted lock l not held.",
    }
    assert db.transact([{"op": "assert", "lock": "l"}], locks_held=frozenset({"l"}))[0] == [{}]


# -- wait with a timeout: what the engine reports to the server that waits -----------
# Expected texts are those Open vSwitch 3.1's ovsdb-server (through a JSON-RPC
# client) and ovsdb-tool transact (which cannot wait) gave for the same requests.


def _wait_cfg(value: int, **extra: Any) -> dict[str, Any]:
    """A wait until Open_vSwitch's next_cfg is ``value``."""
    return {
        "op": "wait",
        "table": OVS,
        "where": [],
        "columns": ["next_cfg"],
        "until": "==",
        "rows": [{"next_cfg": value}],
        **extra,
    }


def _set_cfg(value: int) -> dict[str, Any]:
    return {"op": "update", "table": OVS, "where": [], "row": {"next_cfg": value}}


def test_an_unmet_wait_reports_how_long_it_may_wait_and_changes_nothing() -> None:
    db = _db()
    before = db.to_json()
    with pytest.raises(WaitPending) as forever:
        db.transact([_set_cfg(5), _wait_cfg(1)], elapsed_ms=0)
    assert forever.value.timeout_ms is None
    with pytest.raises(WaitPending) as bounded:
        db.transact([_wait_cfg(1, timeout=300), _set_cfg(5)], elapsed_ms=299)
    assert bounded.value.timeout_ms == 300
    assert db.to_json() == before, "a pending transaction changed the database"
    # Once the condition holds, the same transaction runs as usual.
    ok(db, [_set_cfg(1)])
    assert ok(db, [_wait_cfg(1, timeout=300), _set_cfg(5)], elapsed_ms=120) == [{}, {"count": 1}]
    assert select(db, OVS, ["next_cfg"]) == [{"next_cfg": 5}]


@pytest.mark.parametrize(
    ("timeout", "elapsed_ms", "details"),
    [
        # Tried at once with timeout 0: the immediate failure of today's clients.
        (0, 0, '"where" clause test failed'),
        (300, 300, '"wait" timed out after 300 ms'),
        (300, 301, '"wait" timed out after 301 ms'),
        # Timeout 0, but the transaction was pending on another wait and this
        # one stopped holding 200 ms later.
        (0, 200, '"wait" timed out after 200 ms'),
        # Open vSwitch's JSON reader reads 1.0 as the integer 1.
        (1.0, 1, '"wait" timed out after 1 ms'),
    ],
)
def test_a_wait_whose_timeout_passed_fails_as_ovsdb_server_says(
    timeout: float, elapsed_ms: int, details: str
) -> None:
    db = _db()
    before = db.to_json()
    ops = [{"op": "comment", "comment": "c"}, _wait_cfg(1, timeout=timeout), _set_cfg(5)]
    results, changes = db.transact(ops, elapsed_ms=elapsed_ms)
    assert results == [{}, {"error": "timed out", "details": details}, None]
    assert changes is None
    assert db.to_json() == before


def test_a_later_wait_without_timeout_keeps_waiting_after_an_earlier_ones_timeout() -> None:
    # The first wait holds (timeout 100 ms), the second has no timeout:
    # ovsdb-server still waited after 600 ms.
    db = _db()
    ops = [_wait_cfg(0, timeout=100), _wait_cfg(1)]
    with pytest.raises(WaitPending) as pending:
        db.transact(ops, elapsed_ms=600)
    assert pending.value.timeout_ms is None
    # When a commit breaks the first wait, its timeout has long passed.
    ok(db, [_set_cfg(2)])
    results, _ = db.transact(ops, elapsed_ms=601)
    assert results == [{"error": "timed out", "details": '"wait" timed out after 601 ms'}, None]


def test_a_caller_that_cannot_wait_gets_not_supported() -> None:
    db = _db()
    ops = [{"op": "comment", "comment": "c"}, _wait_cfg(1), {"op": "comment", "comment": "d"}]
    results, changes = db.transact(ops)
    assert results == [{}, {"error": "not supported", "details": "triggers not supported"}, None]
    assert changes is None
    assert err(db, [_wait_cfg(1, timeout=5)])["error"] == "not supported"
    assert err(db, [_wait_cfg(1, timeout=0)])["details"] == '"where" clause test failed'


@pytest.mark.parametrize(
    ("extra", "details"),
    [
        (
            {"foo": 1},
            "Parsing ovsdb operation 1 of 1 failed: Member 'foo' is present but not allowed here.",
        ),
        (
            {"timeout": 0.5},
            "Parsing ovsdb operation 1 of 1 failed: Type mismatch for member 'timeout'.",
        ),
        (
            {"timeout": 1e30},
            "Parsing ovsdb operation 1 of 1 failed: Type mismatch for member 'timeout'.",
        ),
        (
            {"timeout": 2**63},
            "Parsing ovsdb operation 1 of 1 failed: Type mismatch for member 'timeout'.",
        ),
        ({"timeout": -1}, "timeout must be nonnegative"),
    ],
)
def test_a_bad_wait_fails_at_once_instead_of_waiting(extra: dict[str, Any], details: str) -> None:
    db = _db()
    results, changes = db.transact([_wait_cfg(1, **extra)], elapsed_ms=0)
    assert changes is None
    assert results[0]["error"] == "syntax error"
    assert results[0]["details"] == details


def test_a_wait_missing_members_names_the_first_as_ovsdb_server_does() -> None:
    db = _db()
    assert err(db, [{"op": "wait"}])["details"] == (
        "Parsing ovsdb operation 1 of 1 failed: Required 'where' member is missing."
    )
    assert err(db, [{"op": "abort", "x": 1}])["details"] == (
        "Parsing ovsdb operation 1 of 1 failed: Member 'x' is present but not allowed here."
    )


def test_parse_errors_wrap_like_ovsdb_server() -> None:
    db = _db()
    e = err(db, [{"op": "insert", "table": "Nope", "row": {}}])
    assert e["details"] == "Parsing ovsdb operation 1 of 1 failed: No table named Nope."
    assert e["syntax"] == '{"op":"insert","row":{},"table":"Nope"}'
    e = err(db, [{"op": "comment", "comment": "x"}, {"op": "commit"}])
    assert (
        e["details"]
        == "Parsing ovsdb operation 2 of 2 failed: Required 'durable' member is missing."
    )
    e = err(db, [{"op": "insert", "table": "Queue", "row": {}, "foo": 1}])
    assert e["details"].endswith("Member 'foo' is present but not allowed here.")
    e = err(db, [{"op": "insert", "table": "Bridge", "row": {"nme": "x"}}])
    assert e == {
        "error": "unknown column",
        "details": "No column nme in table Bridge.",
        "syntax": '{"nme":"x"}',
    }


def test_result_shapes_on_errors() -> None:
    db = _db()
    # An operation error: the rest of the results are null.
    ops = [{"op": "comment", "comment": "a"}, {"op": "bogus"}, {"op": "comment", "comment": "b"}]
    results, _ = db.transact(ops)
    assert results[0] == {}
    assert results[1]["error"] == "syntax error"
    assert results[2] is None
    # A commit error: appended after every result.
    results, _ = db.transact([{"op": "insert", "table": OVS, "row": {}}])
    assert len(results) == 2
    assert results[1]["details"] == (
        'transaction causes "Open_vSwitch" table to contain 2 rows, greater than the '
        "schema-defined limit of 1 row(s)"
    )


# -- integrity -----------------------------------------------------------------


def test_atomicity() -> None:
    db = _db()
    ok(db, add_br("br0", "p1"))
    err(
        db,
        [
            *add_br("br1", "p2"),
            {"op": "update", "table": "Bridge", "where": [], "row": {"stp_enable": True}},
            {"op": "bogus"},
        ],
    )
    assert names(db, "Bridge") == ["br0"]
    assert select(db, "Bridge", ["stp_enable"]) == [{"stp_enable": False}]


def test_strong_references() -> None:
    db = _db()
    ok(db, add_br("br0", "p1"))
    e = err(
        db,
        [
            {"op": "insert", "table": "Port", "row": {"name": "p"}, "uuid-name": "p"},
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [],
                "mutations": [["ports", "insert", ["named-uuid", "p"]]],
            },
        ],
    )
    # The default of a min-1 uuid column is the all-zero UUID, as in ovsdb-server.
    assert e["error"] == "referential integrity violation"
    assert (
        "references nonexistent row 00000000-0000-0000-0000-000000000000 in table Interface."
        in e["details"]
    )
    bridge = next(iter(db.rows("Bridge")))
    e = err(db, [{"op": "delete", "table": "Bridge", "where": []}])
    assert e["details"] == f"cannot delete Bridge row {bridge} because of 1 remaining reference(s)"


def test_garbage_collection_is_how_del_br_works() -> None:
    db = _db()
    ok(db, add_br("br0", "p1", "p2"))
    ok(db, add_br("br1", "p3"))
    # An unreferenced non-root row never makes it into the database.
    ok(db, [{"op": "insert", "table": "Bridge", "row": {"name": "orphan"}}])
    assert names(db, "Bridge") == ["br0", "br1"]
    br0 = next(u for u, r in db.rows("Bridge").items() if r["name"] == ("br0",))
    _, changes = db.transact(
        [
            {
                "op": "mutate",
                "table": OVS,
                "where": [],
                "mutations": [["bridges", "delete", ["uuid", str(br0)]]],
            }
        ]
    )
    assert changes is not None
    assert names(db, "Bridge") == ["br1"]
    assert names(db, "Port") == ["p3"]
    assert names(db, "Interface") == ["p3"]
    assert set(changes.updates) == {OVS, "Bridge", "Port", "Interface"}
    assert all(list(u) == ["old"] for u in changes.updates["Port"].values())


def test_weak_references_are_dropped() -> None:
    db = _db()
    ok(
        db,
        [
            *add_br("br0", "p1", "p2"),
            {
                "op": "insert",
                "table": "Mirror",
                "uuid-name": "m",
                "row": {
                    "name": "m",
                    "output_port": ["named-uuid", "p_p1"],
                    "select_src_port": ["set", [["named-uuid", "p_p1"], ["named-uuid", "p_p2"]]],
                },
            },
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [],
                "mutations": [["mirrors", "insert", ["named-uuid", "m"]]],
            },
        ],
    )
    p1 = next(u for u, r in db.rows("Port").items() if r["name"] == ("p1",))
    p2 = next(u for u, r in db.rows("Port").items() if r["name"] == ("p2",))
    _, changes = db.transact(
        [
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [],
                "mutations": [["ports", "delete", ["uuid", str(p1)]]],
            }
        ]
    )
    assert changes is not None
    mirror = next(iter(db.rows("Mirror").values()))
    assert mirror["output_port"] == ()
    assert mirror["select_src_port"] == (p2,)
    assert "Mirror" in changes.updates
    # A weak reference to a row that never existed is dropped too.
    ok(
        db,
        [
            {
                "op": "update",
                "table": "Mirror",
                "where": [],
                "row": {"output_port": ["uuid", "12345678-1234-1234-1234-123456789012"]},
            }
        ],
    )
    assert next(iter(db.rows("Mirror").values()))["output_port"] == ()


def test_weak_reference_min_is_rechecked() -> None:
    schema = DbSchema.from_json(
        {
            "name": "W",
            "version": "1.0.0",
            "tables": {
                "A": {
                    "columns": {
                        "b": {
                            "type": {"key": {"type": "uuid", "refTable": "B", "refType": "weak"}}
                        }
                    },
                    "isRoot": True,
                },
                "B": {"columns": {"x": {"type": "integer"}}, "isRoot": True},
            },
        }
    )
    db = Database(schema, _uuids())
    ok(
        db,
        [
            {"op": "insert", "table": "B", "row": {}, "uuid-name": "b"},
            {"op": "insert", "table": "A", "row": {"b": ["named-uuid", "b"]}},
        ],
    )
    e = err(db, [{"op": "delete", "table": "B", "where": []}])
    assert e["error"] == "constraint violation"
    assert "Deletion of 1 weak reference(s)" in e["details"]


def test_index_uniqueness() -> None:
    db = _db()
    ok(db, add_br("br0"))
    e = err(db, add_br("br0"))
    assert e["error"] == "constraint violation"
    assert e["details"].startswith(
        'Transaction causes multiple rows in "Bridge" table to have identical values (br0) '
        'for index on column "name".  First row'
    )
    assert "existed in the database before this transaction and was not modified" in e["details"]
    assert "was inserted by this transaction." in e["details"]
    # Renaming away and back within one transaction is fine.
    ok(
        db,
        [
            {"op": "insert", "table": "Manager", "row": {"target": "ptcp:1"}, "uuid-name": "m"},
            {
                "op": "mutate",
                "table": OVS,
                "where": [],
                "mutations": [["manager_options", "insert", ["named-uuid", "m"]]],
            },
        ],
    )
    e = err(
        db,
        [
            {"op": "insert", "table": "Manager", "row": {"target": "ptcp:1"}, "uuid-name": "m"},
            {
                "op": "mutate",
                "table": OVS,
                "where": [],
                "mutations": [["manager_options", "insert", ["named-uuid", "m"]]],
            },
        ],
    )
    assert 'index on column "target"' in e["details"]


# -- changes, snapshots, records, monitors ---------------------------------------


def test_changes_shape() -> None:
    db = _db()
    results, changes = db.transact(add_br("br0", "p1"))
    assert changes is not None
    bridge_uuid = results[1]["uuid"][1]
    new = changes.updates["Bridge"][bridge_uuid]
    assert list(new) == ["new"]
    assert new["new"]["name"] == "br0"
    assert set(new["new"]) == set(SCHEMA.tables["Bridge"].columns)
    ovs_update = next(iter(changes.updates[OVS].values()))
    assert ovs_update["old"] == {"bridges": ["set", []]}
    assert ovs_update["new"]["bridges"] == ["uuid", bridge_uuid]
    record = changes.record()
    assert record["Bridge"][bridge_uuid] == {
        "name": "br0",
        "ports": ["uuid", results[2]["uuid"][1]],
    }
    assert next(iter(record[OVS].values())) == {"bridges": ["uuid", bridge_uuid]}
    # A transaction that changes nothing commits nothing.
    assert (
        db.transact(
            [{"op": "update", "table": "Bridge", "where": [], "row": {"stp_enable": False}}]
        )[1]
        is None
    )
    monitored = changes.for_monitor({"Bridge": ["name"], OVS: ["next_cfg"]})
    assert monitored == {"Bridge": {bridge_uuid: {"new": {"name": "br0"}}}}


def test_snapshot_and_record_replay() -> None:
    db = _db()
    replica = Database.from_json(SCHEMA, db.to_json())
    steps = [
        add_br("br0", "p1", "p2"),
        add_br("br1", "p3"),
        [
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["name", "==", "br1"]],
                "mutations": [["external_ids", "insert", ["map", [["a", "b"]]]]],
            }
        ],
        [{"op": "update", "table": OVS, "where": [], "row": {"bridges": ["set", []]}}],
    ]
    for ops in steps:
        _, changes = db.transact(ops)
        assert changes is not None
        replica.apply_record(json.loads(json.dumps(changes.record())))
        assert replica.to_json() == db.to_json()
        assert (
            Database.from_json(SCHEMA, json.loads(json.dumps(db.to_json()))).to_json()
            == db.to_json()
        )


def test_monitor_initial() -> None:
    db = _db()
    ok(db, add_br("br0", "p1"))
    initial = db.monitor_initial({"Bridge": ["name"], "Port": None, "Queue": None})
    assert set(initial) == {"Bridge", "Port"}
    assert next(iter(initial["Bridge"].values())) == {"new": {"name": "br0"}}
    assert set(next(iter(initial["Port"].values()))["new"]) == set(SCHEMA.tables["Port"].columns)
    raw = db.monitor_initial(
        {"Bridge": {"columns": ["name", "stp_enable"]}, "Port": [{"select": {"initial": False}}]}
    )
    assert set(raw) == {"Bridge"}
    assert next(iter(raw["Bridge"].values())) == {"new": {"name": "br0", "stp_enable": False}}


# -- property: no sequence of transactions breaks integrity -------------------------

_NAMES = ["a", "b", "c", "d"]


@st.composite
def _transactions(draw: st.DrawFn) -> list[Any]:
    ops: list[Any] = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(
            st.sampled_from(
                ["add_br", "add_port", "del_br", "del_port", "set", "mirror", "raw_delete", "bad"]
            )
        )
        name = draw(st.sampled_from(_NAMES))
        if kind == "add_br":
            ops += add_br(
                f"{name}{i}" if draw(st.booleans()) else name,
                *draw(st.lists(st.sampled_from(_NAMES), max_size=2, unique=True)),
            )
        elif kind == "add_port":
            ops += [
                {
                    "op": "insert",
                    "table": "Interface",
                    "row": {"name": f"i{name}"},
                    "uuid-name": f"ni{i}",
                },
                {
                    "op": "insert",
                    "table": "Port",
                    "row": {"name": name, "interfaces": ["named-uuid", f"ni{i}"]},
                    "uuid-name": f"np{i}",
                },
                {
                    "op": "mutate",
                    "table": "Bridge",
                    "where": [["name", "==", draw(st.sampled_from(_NAMES))]],
                    "mutations": [["ports", "insert", ["named-uuid", f"np{i}"]]],
                },
            ]
        elif kind == "del_br":
            ops.append(
                {"op": "update", "table": OVS, "where": [], "row": {"bridges": ["set", []]}}
            )
        elif kind == "del_port":
            ops.append(
                {
                    "op": "update",
                    "table": "Bridge",
                    "where": [["name", "==", name]],
                    "row": {"ports": ["set", []]},
                }
            )
        elif kind == "set":
            ops.append(
                {
                    "op": "mutate",
                    "table": "Bridge",
                    "where": [],
                    "mutations": [
                        [
                            "flood_vlans",
                            draw(st.sampled_from(["insert", "delete", "+="])),
                            draw(st.integers(0, 4200)),
                        ]
                    ],
                }
            )
        elif kind == "mirror":
            ops += [
                {
                    "op": "insert",
                    "table": "Mirror",
                    "row": {"name": name, "select_all": True},
                    "uuid-name": f"nm{i}",
                },
                {
                    "op": "mutate",
                    "table": "Bridge",
                    "where": [],
                    "mutations": [["mirrors", "insert", ["named-uuid", f"nm{i}"]]],
                },
                {
                    "op": "update",
                    "table": "Mirror",
                    "where": [],
                    "row": {"output_port": ["named-uuid", f"np{draw(st.integers(0, 4))}"]},
                },
            ]
        elif kind == "raw_delete":
            ops.append(
                {
                    "op": "delete",
                    "table": draw(st.sampled_from(["Port", "Interface", "Bridge", "Mirror"])),
                    "where": [["name", "==", name]],
                }
            )
        else:
            ops.append(
                {
                    "op": "insert",
                    "table": "Port",
                    "row": {"name": name, "tag": draw(st.integers(4000, 5000))},
                }
            )
    return ops


def _check_integrity(db: Database) -> None:
    schema = db.schema
    incoming: dict[uuid.UUID, int] = {}
    for tname, table in schema.tables.items():
        rows = db.rows(tname)
        for index in table.indexes:
            keys = [tuple(r[c] for c in index) for r in rows.values()]
            assert len(keys) == len(set(keys)), f"index {tname}{index}"
        if table.max_rows is not None:
            assert len(rows) <= table.max_rows
        for row in rows.values():
            for cname, column in table.columns.items():
                ctype = column.type
                datum = row[cname]
                assert len(datum) >= ctype.n_min
                assert ctype.n_max is None or len(datum) <= ctype.n_max
                for base, pos in ((ctype.key, 0), (ctype.value, 1)):
                    if base is None or base.ref_table is None:
                        continue
                    for item in datum:
                        target = item[pos] if ctype.is_map else item
                        assert target in db.rows(base.ref_table), f"dangling {tname}.{cname}"
                        if base.is_strong_ref:
                            incoming[target] = incoming.get(target, 0) + 1
                    if base.type == "integer":
                        for item in datum:
                            atom = item[pos] if ctype.is_map else item
                            assert base.min_integer is None or atom >= base.min_integer
                            assert base.max_integer is None or atom <= base.max_integer
    for tname, table in schema.tables.items():
        if not table.is_root:
            for u in db.rows(tname):
                assert incoming.get(u, 0) > 0, f"unreferenced {tname} row survived"


@given(st.lists(_transactions(), min_size=1, max_size=6))
def test_random_transactions_keep_integrity(transactions: list[list[Any]]) -> None:
    db = _db()
    replica = Database.from_json(SCHEMA, db.to_json())
    for ops in transactions:
        before = db.to_json()
        results, changes = db.transact(ops)
        failed = any(r is not None and "error" in r for r in results)
        if failed:
            assert changes is None
            assert db.to_json() == before
        if changes is not None:
            replica.apply_record(changes.record())
        _check_integrity(db)
        assert replica.to_json() == db.to_json()
    assert Database.from_json(SCHEMA, db.to_json()).to_json() == db.to_json()
