"""Differential tests of the OVSDB engine against Open vSwitch's own ovsdb-server.

A private ovsdb-server (in a ``pvs-ovsdb-*`` temporary directory, stopped by
its pid) serves a database made from OUR schema file; the same corpus of
transactions, errors included, runs there and in ``Database``, and the results
must agree once UUIDs (random on both sides) are replaced by their order of
appearance. A second group checks that OVS's ``ovsdb-tool`` accepts our
schema and that it matches OVS 3.1's ``vswitch.ovsschema`` table by table,
column by column.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pyvswitch.ovsdb.database import Database
from pyvswitch.ovsdb.schema import DbSchema, load_vswitch_schema

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.ovs

OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
OUR_SCHEMA = resources.files("pyvswitch.ovsdb").joinpath("vswitch.ovsschema")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"Open vSwitch is not installed (missing {', '.join(missing)})")


class OvsdbServer:
    """ovsdb-server on a private unix socket, serving a database of our schema."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pvs-ovsdb-"))
        self.sock = self.dir / "db.sock"
        self.pidfile = self.dir / "ovsdb-server.pid"
        self.env = {
            **os.environ,
            "OVS_RUNDIR": str(self.dir),
            "OVS_DBDIR": str(self.dir),
            "OVS_LOGDIR": str(self.dir),
        }

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )

    def start(self, schema_path: str) -> None:
        self.run("ovsdb-tool", "create", str(self.dir / "db.db"), schema_path)
        self.run(
            "ovsdb-server",
            f"--remote=punix:{self.sock}",
            f"--pidfile={self.pidfile}",
            f"--log-file={self.dir / 'ovsdb-server.log'}",
            "--detach",
            "--no-chdir",
            str(self.dir / "db.db"),
        )

    def transact(self, ops: list[Any]) -> list[Any]:
        out = self.run(
            "ovsdb-client", "transact", f"unix:{self.sock}", json.dumps(["Open_vSwitch", *ops])
        )
        result: list[Any] = json.loads(out.stdout)
        return result

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[OvsdbServer]:
    _need("ovsdb-tool", "ovsdb-server", "ovsdb-client")
    srv = OvsdbServer()
    try:
        with resources.as_file(OUR_SCHEMA) as path:
            srv.start(str(path))
        yield srv
    finally:
        srv.stop()


def _b(name: str, **row: Any) -> dict[str, Any]:
    return {"op": "insert", "table": "Bridge", "row": {"name": name, **row}, "uuid-name": name}


def _link(*names: str) -> dict[str, Any]:
    return {
        "op": "mutate",
        "table": "Open_vSwitch",
        "where": [],
        "mutations": [["bridges", "insert", ["set", [["named-uuid", n] for n in names]]]],
    }


def _sel(table: str, cols: list[str], where: list[Any] | None = None) -> dict[str, Any]:
    return {"op": "select", "table": table, "where": where or [], "columns": cols}


OVS = "Open_vSwitch"
# Run in order against both databases; state carries over from one to the next.
CORPUS: list[list[dict[str, Any]]] = [
    [{"op": "insert", "table": OVS, "row": {}}],
    [{"op": "insert", "table": OVS, "row": {}}],  # maxRows 1
    [_sel(OVS, ["next_cfg", "bridges", "external_ids", "ovs_version"])],
    # add-br as ovs-vsctl does it, with names used before the inserts that define them.
    [
        _link("br0"),
        _b("br0", ports=["named-uuid", "p0"]),
        {
            "op": "insert",
            "table": "Port",
            "row": {"name": "br0", "interfaces": ["named-uuid", "i0"]},
            "uuid-name": "p0",
        },
        {
            "op": "insert",
            "table": "Interface",
            "row": {"name": "br0", "type": "internal"},
            "uuid-name": "i0",
        },
    ],
    [
        _sel("Bridge", ["name", "fail_mode", "stp_enable"]),
        _sel("Interface", ["name", "type", "ofport"]),
    ],
    [{"op": "comment", "comment": "hello"}, {"op": "commit", "durable": False}],
    # Syntax and type errors.
    [{"op": "insert", "table": "Bridge", "row": {"name": 1}}],
    [{"op": "insert", "table": "Bridge", "row": {"nme": "x"}}],
    [{"op": "insert", "table": "Bridgex", "row": {}}],
    [{"op": "bogus"}],
    [{"op": "insert", "table": "Queue", "row": {}, "foo": 1}],
    [{"op": "commit"}],
    [{"op": "assert"}],
    [{"op": "update", "table": OVS, "where": []}],
    [{"op": "select", "table": OVS}],
    [{"op": "update", "table": OVS, "where": [], "row": {"iface_types": ["set", ["a", "a"]]}}],
    [
        {
            "op": "update",
            "table": OVS,
            "where": [],
            "row": {"external_ids": ["map", [["a", "1"], ["a", "2"]]]},
        }
    ],
    [{"op": "update", "table": OVS, "where": [], "row": {"external_ids": ["map", [["a"]]]}}],
    [{"op": "update", "table": OVS, "where": [], "row": {"external_ids": "x"}}],
    [{"op": "update", "table": OVS, "where": [], "row": {"ssl": ["uuid", "x"]}}],
    [{"op": "update", "table": OVS, "where": [], "row": {"next_cfg": ["set", []]}}],
    [{"op": "update", "table": OVS, "where": [], "row": {"iface_types": ["set", "a"]}}],
    [{"op": "update", "table": OVS, "where": [], "row": {"ssl": ["set", [["uuid", "a"], 1]]}}],
    [{"op": "update", "table": OVS, "where": [], "row": {"other_config": ["map", [["a", 1]]]}}],
    # Constraints.
    [{"op": "insert", "table": "Bridge", "row": {"fail_mode": "bogus"}}],
    [
        {
            "op": "insert",
            "table": "Bridge",
            "row": {"protocols": ["set", ["OpenFlow13", "OpenFlow99"]]},
        }
    ],
    [{"op": "insert", "table": "Queue", "row": {"dscp": 99}}],
    [{"op": "insert", "table": "Mirror", "row": {"name": "m", "snaplen": 3}}],
    [{"op": "insert", "table": "Controller", "row": {"target": "tcp:1", "max_backoff": 1}}],
    [{"op": "update", "table": "Bridge", "where": [["name", "==", "br0"]], "row": {"name": "c"}}],
    [
        {
            "op": "update",
            "table": "Bridge",
            "where": [],
            "row": {"_uuid": ["uuid", "21111111-2222-3333-4444-555555555555"]},
        }
    ],
    # Referential integrity and garbage collection.
    [{"op": "insert", "table": "Port", "row": {"name": "p"}}],
    [_b("x", ports=["uuid", "12345678-1234-1234-1234-123456789012"]), _link("x")],
    [_b("y", ports=["named-uuid", "nope"]), _link("y")],
    [{"op": "update", "table": OVS, "where": [], "row": {"ssl": ["named-uuid", "s"]}}],
    [_b("orphan"), _sel("Bridge", ["name"], [["name", "==", "orphan"]])],
    [_sel("Bridge", ["name"], [["name", "==", "orphan"]])],
    [
        {
            "op": "insert",
            "table": "Mirror",
            "row": {"name": "m", "output_port": ["named-uuid", "nope"]},
        }
    ],
    [{"op": "delete", "table": "Bridge", "where": []}],
    [{"op": "delete", "table": "Interface", "where": []}],
    # Index uniqueness: one existing row, one new.
    [_b("br0"), _link("br0")],
    [
        _b("br0"),
        {
            "op": "update",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "row": {"external_ids": ["map", [["k", "v"]]]},
        },
        _link("br0"),
    ],
    [_b("dup"), _b("dup2", external_ids=["map", [["a", "b"]]]), _link("dup", "dup2")],
    [
        {
            "op": "update",
            "table": "Bridge",
            "where": [["name", "==", "dup2"]],
            "row": {"flood_vlans": ["set", [1, 2]]},
        }
    ],
    # Named and caller-chosen UUIDs.
    [_b("n1"), _b("n1"), _link("n1")],
    [
        {
            "op": "insert",
            "table": "Queue",
            "row": {},
            "uuid": "11111111-2222-3333-4444-555555555555",
        }
    ],
    [
        {
            "op": "insert",
            "table": "Queue",
            "row": {},
            "uuid": "11111111-2222-3333-4444-555555555555",
        }
    ],
    [{"op": "insert", "table": "Queue", "row": {}, "uuid": "zz"}],
    [
        {
            "op": "insert",
            "table": "Queue",
            "row": {"dscp": 7},
            "uuid": "21111111-2222-3333-4444-555555555555",
            "uuid-name": "q",
        },
        {
            "op": "select",
            "table": "Queue",
            "where": [["_uuid", "==", ["named-uuid", "q"]]],
            "columns": ["_uuid", "dscp"],
        },
    ],
    [
        {
            "op": "insert",
            "table": "Queue",
            "row": {"_uuid": ["uuid", "31111111-2222-3333-4444-555555555555"]},
        }
    ],
    # Mutations.
    [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [
                ["next_cfg", "+=", 5],
                ["external_ids", "insert", ["map", [["a", "1"], ["b", "2"]]]],
            ],
        },
        _sel(OVS, ["next_cfg", "external_ids"]),
    ],
    [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [
                ["external_ids", "delete", ["set", ["a"]]],
                ["external_ids", "insert", ["map", [["b", "9"]]]],
            ],
        },
        _sel(OVS, ["external_ids"]),
    ],
    [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [["external_ids", "delete", ["map", [["b", "9"]]]]],
        },
        _sel(OVS, ["external_ids"]),
    ],
    [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [["external_ids", "delete", ["map", [["b", "2"]]]]],
        },
        _sel(OVS, ["external_ids"]),
    ],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["next_cfg", "/=", 0]]}],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["next_cfg", "%=", 0]]}],
    [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [["next_cfg", "*=", 9223372036854775807]],
        }
    ],
    [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [["next_cfg", "-=", 7], ["next_cfg", "/=", 2]],
        },
        _sel(OVS, ["next_cfg"]),
    ],
    [
        {"op": "mutate", "table": OVS, "where": [], "mutations": [["next_cfg", "%=", 3]]},
        _sel(OVS, ["next_cfg"]),
    ],
    [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [["ovs_version", "insert", ["set", ["a", "b"]]]],
        }
    ],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["ovs_version", "+=", "x"]]}],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["external_ids", "+=", 1]]}],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["dpdk_initialized", "+=", True]]}],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["next_cfg", "^=", 1]]}],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["next_cfg", "-=", {}]]}],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["nope", "-=", 1]]}],
    [{"op": "mutate", "table": OVS, "where": [], "mutations": [["next_cfg", "-="]]}],
    [{"op": "mutate", "table": "Bridge", "where": [], "mutations": [["name", "insert", "x"]]}],
    [
        {
            "op": "mutate",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "mutations": [
                ["flood_vlans", "insert", ["set", [1, 2, 3]]],
                ["flood_vlans", "+=", 4000],
            ],
        },
        _sel("Bridge", ["flood_vlans"], [["name", "==", "br0"]]),
    ],
    [
        {
            "op": "mutate",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "mutations": [["flood_vlans", "+=", 1000]],
        }
    ],
    [
        {
            "op": "mutate",
            "table": "Bridge",
            "where": [],
            "mutations": [["flood_vlans", "insert", 5000]],
        }
    ],
    [
        {
            "op": "mutate",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "mutations": [["flood_vlans", "*=", 0]],
        }
    ],
    [
        {"op": "mutate", "table": OVS, "where": [], "mutations": [["ovs_version", "insert", "a"]]},
        {"op": "mutate", "table": OVS, "where": [], "mutations": [["ovs_version", "insert", "b"]]},
    ],
    [
        {
            "op": "mutate",
            "table": "Port",
            "where": [],
            "mutations": [["interfaces", "delete", ["set", []]]],
        }
    ],
    # Conditions.
    [_sel("Bridge", ["name"], [["name", "==", 1]])],
    [_sel("Bridge", ["name"], [["flood_vlans", "includes", 5000]])],
    [_sel("Bridge", ["name"], [["name", "<", "a"]])],
    [_sel("Bridge", ["name"], [["name", "~", "a"]])],
    [_sel("Bridge", ["name"], [["name"]])],
    [_sel("Bridge", ["name"], [["nope", "==", 1]])],
    [_sel("Bridge", ["nam"])],
    [_sel("Bridge", ["name"], [["flood_vlans", "includes", ["set", [4001, 4002]]]])],
    [_sel("Bridge", ["name"], [["flood_vlans", "excludes", 4001]])],
    [_sel("Bridge", ["name"], [["flood_vlans", "==", ["set", []]]])],
    [_sel("Bridge", ["name"], [["flood_vlans", "!=", ["set", []]]])],
    [_sel("Queue", ["dscp"], [["dscp", "<", 10]])],
    [_sel("Queue", ["dscp"], [["dscp", ">=", 0]])],
    [_sel("Queue", ["dscp"], [["dscp", "!=", 7]])],
    [_sel("Queue", ["dscp"], [["dscp", "excludes", 7]])],
    [
        {"op": "insert", "table": "Queue", "row": {"dscp": 8}},
        _sel("Queue", ["dscp"], [["dscp", "==", ["set", []]]]),
    ],
    [_sel("Queue", ["dscp"], [["dscp", "!=", ["set", []]]])],
    [_sel("Queue", ["dscp"], [["dscp", "includes", ["set", []]]])],
    [_sel("Queue", ["dscp"], [["dscp", "excludes", ["set", []]]])],
    [_sel("Queue", ["dscp"], [["dscp", ">", 7]])],
    [_sel("Bridge", ["name"], [["external_ids", "includes", ["map", [["a", "b"]]]]])],
    [_sel("Bridge", ["name"], [["external_ids", "excludes", ["map", [["a", "c"]]]]])],
    [
        _sel(
            "Bridge", ["name"], [["_uuid", "==", ["uuid", "21111111-2222-3333-4444-555555555555"]]]
        )
    ],
    [_sel("Bridge", ["name"], [True])],
    [_sel("Bridge", ["name", "name"], [False])],
    [_sel("Bridge", ["name", 1], [False])],
    [_sel("Bridge", ["name"], [["name", "!=", "br0"], ["name", "!=", "dup"]])],
    # Wait, abort, assert.
    [
        {
            "op": "wait",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "columns": ["name"],
            "until": "==",
            "rows": [{"name": "br0"}],
            "timeout": 0,
        }
    ],
    [
        {
            "op": "wait",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "columns": ["name"],
            "until": "!=",
            "rows": [{"name": "br0"}],
            "timeout": 0,
        }
    ],
    [
        {
            "op": "wait",
            "table": "Bridge",
            "where": [],
            "until": "==",
            "rows": [{"name": "x"}],
            "timeout": 0,
        }
    ],
    [{"op": "wait", "table": "Queue", "where": [], "columns": ["dscp"], "until": "=", "rows": []}],
    [{"op": "abort"}, {"op": "comment", "comment": "never"}],
    [{"op": "assert", "lock": "foo"}],
    # del-br as ovs-vsctl does it: unlink, and the rest is garbage.
    [
        {
            "op": "mutate",
            "table": OVS,
            "where": [],
            "mutations": [["bridges", "delete", ["set", []]]],
        },
        {"op": "update", "table": OVS, "where": [], "row": {"bridges": ["set", []]}},
    ],
    [_sel("Bridge", ["name"]), _sel("Port", ["name"]), _sel("Interface", ["name"])],
    [{"op": "delete", "table": "Queue", "where": []}, _sel("Queue", ["dscp"])],
]


def _normalize(result: Any, names: dict[str, str]) -> Any:
    # Rows come back in hash order from ovsdb-server: sort them first.
    if isinstance(result, list):
        for item in result:
            if isinstance(item, dict) and "rows" in item:
                item["rows"].sort(key=lambda r: json.dumps(r, sort_keys=True))
    text = json.dumps(result, sort_keys=True)

    def name(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"<uuid{len(names)}>")

    return json.loads(UUID_RE.sub(name, text))


def test_transactions_match_ovsdb_server(server: OvsdbServer) -> None:
    ours = Database(load_vswitch_schema())
    their_names: dict[str, str] = {}
    our_names: dict[str, str] = {}
    # Fixed UUIDs in the corpus stand for themselves on both sides.
    for ops in CORPUS:
        for fixed in UUID_RE.findall(json.dumps(ops)):
            their_names[fixed] = our_names[fixed] = fixed
    mismatches = []
    for ops in CORPUS:
        theirs = _normalize(server.transact(ops), their_names)
        mine = _normalize(ours.transact(json.loads(json.dumps(ops)))[0], our_names)
        if theirs != mine:
            mismatches.append(
                f"{json.dumps(ops)}\n  ovsdb-server: {theirs}\n  pyvswitch:    {mine}"
            )
    assert not mismatches, "\n".join(mismatches)


def test_ovsdb_tool_accepts_our_schema(tmp_path: Path) -> None:
    _need("ovsdb-tool")
    with resources.as_file(OUR_SCHEMA) as path:
        out = subprocess.run(
            ["ovsdb-tool", "schema-name", str(path)], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "Open_vSwitch"
        subprocess.run(
            ["ovsdb-tool", "create", str(tmp_path / "db.db"), str(path)],
            capture_output=True,
            text=True,
            check=True,
        )


def test_our_schema_round_trips_through_ovsdb_client(server: OvsdbServer) -> None:
    out = server.run("ovsdb-client", "get-schema", f"unix:{server.sock}", "Open_vSwitch")
    served = DbSchema.from_json(json.loads(out.stdout))
    assert served == load_vswitch_schema()


def test_our_schema_is_equivalent_to_ovs_31() -> None:
    if not OVS_SCHEMA.exists():
        pytest.skip(f"{OVS_SCHEMA} is not installed")
    theirs = DbSchema.from_json(json.loads(OVS_SCHEMA.read_text()))
    ours = load_vswitch_schema()
    assert ours.name == theirs.name
    assert ours.version == theirs.version
    assert sorted(ours.tables) == sorted(theirs.tables)
    for name, table in theirs.tables.items():
        mine = ours.tables[name]
        assert sorted(mine.columns) == sorted(table.columns), name
        assert mine.is_root == table.is_root, name
        assert mine.max_rows == table.max_rows, name
        assert mine.indexes == table.indexes, name
        for cname, column in table.columns.items():
            # Dataclass equality covers type, key/value constraints, enums,
            # refTable/refType, min/max, mutable and ephemeral.
            assert mine.columns[cname] == column, f"{name}.{cname}"
