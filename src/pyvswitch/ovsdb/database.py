"""The in-memory OVSDB database engine: RFC 7047 transactions, as ovsdb-server runs them.

Pure: no I/O, no clock. A server (``ovsdb/server.py``) feeds it the "params"
of a ``transact`` request after the database name, sends back the result, and
writes ``Changes.record()`` to its journal and ``Changes.updates`` to its
monitors.

A transaction works on copies of the tables it touches and replaces the
committed tables only when every operation and every commit-time check has
passed, so an error anywhere leaves the database as it was (atomicity). The
commit-time checks run in ovsdb-server's order (``ovsdb_txn_precommit``):
strong references, garbage collection of unreferenced rows of non-root tables,
``maxRows``, weak references, index uniqueness. Results and error objects have
ovsdb-server's shapes and texts; ``tests/interop/test_ovs_ovsdb_engine.py``
compares them with a real ovsdb-server.

A ``wait`` whose condition does not hold raises :class:`WaitPending` (the
engine has no clock): the server keeps the transaction and runs it again, with
the time elapsed since its first try, after every commit and when its timeout
comes, as ovsdb-server's triggers do.

Known differences from ovsdb-server:

- Reference counts and garbage collection are computed over the whole database
  after each transaction, not only over the rows the transaction touched. The
  results are the same for any database built by transactions; a snapshot
  loaded with unreferenced non-root rows loses them on the next commit.
- When two rows of one transaction break an index, ovsdb-server names them in
  hash order; we name the older (or earlier-touched) row first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pyvswitch.ovsdb.data import (
    Datum,
    OvsdbError,
    check_atom,
    check_float,
    conforms,
    datum_from_json,
    datum_to_json,
    datum_to_string,
    default_datum,
    normalize,
    parse_uuid,
    syntax_error,
)
from pyvswitch.ovsdb.schema import (
    UUID_TYPE,
    BaseType,
    ColumnSchema,
    ColumnType,
    DbSchema,
    TableSchema,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

Row = dict[str, Datum]
TableUpdates = dict[str, dict[str, dict[str, dict[str, Any]]]]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _is_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and bool(value)
        and (value[0].isascii() and (value[0].isalpha() or value[0] == "_"))
        and all(c in _ID_CHARS for c in value)
    )


def _is_integer(value: Any) -> bool:
    """Whether Open vSwitch's JSON reader would read ``value`` as an integer.

    Its lexer turns any number with an integral value that fits in 64 bits
    into an integer (``1.0`` and ``1e2`` too); other numbers stay real, and
    ovsdb-server refuses a real where it wants an integer ("timeout": 0.5).
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer() and _INT64_MIN <= value <= _INT64_MAX
    return isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX


def _row_to_json(
    table: TableSchema, row: Row, columns: Iterable[str] | None = None
) -> dict[str, Any]:
    names = table.columns if columns is None else columns
    return {n: datum_to_json(table.columns[n].type, row[n]) for n in names}


# ---------------------------------------------------------------------------
# Changes


class Changes:
    """What one committed transaction changed.

    ``updates`` is RFC 7047 <table-updates>: ``{table: {uuid: {"old": ..., "new": ...}}}``
    with whole rows for inserts ("new") and deletes ("old"); for a modified row,
    "old" holds the old values of the changed columns and "new" the whole new row.
    """

    def __init__(
        self, schema: DbSchema, delta: dict[str, dict[uuid.UUID, tuple[Row | None, Row | None]]]
    ):
        self.schema = schema
        self._delta = delta
        self.updates: TableUpdates = self.for_monitor(None)

    def for_monitor(
        self, table_columns: Mapping[str, Iterable[str] | None] | None
    ) -> TableUpdates:
        """<table-updates> for a monitor of some tables and columns (None: everything).

        A modification that changed none of a table's monitored columns is left
        out, as ovsdb-server does.
        """
        out: TableUpdates = {}
        for tname, rows in self._delta.items():
            if table_columns is not None and tname not in table_columns:
                continue
            table = self.schema.tables[tname]
            wanted = table_columns.get(tname) if table_columns is not None else None
            cols = list(table.columns) if wanted is None else list(wanted)
            tout: dict[str, dict[str, Any]] = {}
            for row_uuid, (old, new) in rows.items():
                update: dict[str, Any] = {}
                if old is not None and new is not None:
                    changed = [c for c in cols if old[c] != new[c]]
                    if not changed:
                        continue
                    update["old"] = _row_to_json(table, old, changed)
                    update["new"] = _row_to_json(table, new, cols)
                elif new is not None:
                    update["new"] = _row_to_json(table, new, cols)
                elif old is not None:
                    update["old"] = _row_to_json(table, old, cols)
                tout[str(row_uuid)] = update
            if tout:
                out[tname] = tout
        return out

    def record(self) -> dict[str, dict[str, dict[str, Any] | None]]:
        """A compact journal record ``{table: {uuid: row or null}}``, as OVS's db files hold.

        An insert lists its non-default columns, a modification its changed
        columns, a deletion is null; ``Database.apply_record`` replays it.
        Ephemeral columns (the daemon's status and statistics) are left out,
        as ovsdb-server leaves them out of its file: a transaction that
        changed nothing else gives an empty record, which need not be
        written at all.
        """
        out: dict[str, dict[str, dict[str, Any] | None]] = {}
        for tname, rows in self._delta.items():
            table = self.schema.tables[tname]
            tout: dict[str, dict[str, Any] | None] = {}
            for row_uuid, (old, new) in rows.items():
                if new is None:
                    tout[str(row_uuid)] = None
                    continue
                if old is None:
                    cols = [
                        c
                        for c, cs in table.columns.items()
                        if not cs.ephemeral and new[c] != default_datum(cs.type)
                    ]
                else:
                    cols = [
                        c
                        for c, cs in table.columns.items()
                        if not cs.ephemeral and old[c] != new[c]
                    ]
                    if not cols:
                        continue
                tout[str(row_uuid)] = _row_to_json(table, new, cols)
            if tout:
                out[tname] = tout
        return out

    def __bool__(self) -> bool:
        return bool(self._delta)


# ---------------------------------------------------------------------------
# Operation parsing (ovsdb/ovsdb-parser.c)


class _Parser:
    """Reads the members of one operation, reporting errors the way ovsdb-server words them."""

    def __init__(self, op: Any, index: int, count: int):
        self.json = op
        self.context = f"ovsdb operation {index + 1} of {count}"
        self.used: set[str] = set()
        self.error: OvsdbError | None = None

    def raise_error(self, message: str) -> None:
        if self.error is None:
            self.error = syntax_error(self.json, f"Parsing {self.context} failed: {message}")

    def member(self, name: str, kind: str, *, optional: bool = False) -> Any:
        if self.error is not None:
            return None
        if not isinstance(self.json, dict):
            self.raise_error("Object expected.")
            return None
        self.used.add(name)
        if name not in self.json:
            if not optional:
                self.raise_error(f"Required '{name}' member is missing.")
            return None
        value = self.json[name]
        ok = {
            "id": _is_id(value),
            "string": isinstance(value, str),
            "array": isinstance(value, list),
            "object": isinstance(value, dict),
            "boolean": isinstance(value, bool),
            "integer": _is_integer(value),
        }[kind]
        if not ok:
            self.raise_error(f"Type mismatch for member '{name}'.")
            return None
        return value

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def finish(self) -> OvsdbError | None:
        if self.error is None and isinstance(self.json, dict):
            unused = [k for k in self.json if k not in self.used]
            if unused:
                self.raise_error(f"Member '{unused[0]}' is present but not allowed here.")
        return self.error


# Conditions, as ovsdb/condition.c parses and evaluates them.

_FUNCTIONS = ("<", "<=", "==", "!=", ">=", ">", "includes", "excludes")


@dataclass(frozen=True)
class _Clause:
    column: str
    function: str
    arg: Datum
    ctype: ColumnType

    def matches(self, row: Row, row_uuid: uuid.UUID, version: uuid.UUID) -> bool:
        if self.function in ("true", "false"):
            return self.function == "true"
        if self.column == "_uuid":
            field: Datum = (row_uuid,)
        elif self.column == "_version":
            field = (version,)
        else:
            field = row[self.column]
        fn, arg = self.function, self.arg
        if fn in ("<", "<=", ">", ">="):
            # Only (optional) scalars get here; an empty value is never in order.
            if not field or not arg:
                return False
            a, b = field[0], arg[0]
            ordered: dict[str, bool] = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}
            return ordered[fn]
        if fn == "==":
            return field == arg
        if fn == "!=":
            return field != arg
        field_set = set(field)
        if fn == "includes":
            return all(x in field_set for x in arg)
        if fn == "excludes":
            return not any(x in field_set for x in arg)
        return False


# Mutations, as ovsdb/mutation.c applies them.

_ARITH = {"+=": "add", "-=": "sub", "*=": "mul", "/=": "div", "%=": "mod"}


@dataclass(frozen=True)
class _Mutation:
    column: ColumnSchema
    mutator: str
    arg: Datum
    arg_type: ColumnType

    def apply(self, value: Datum) -> Datum:
        ctype = self.column.type
        if self.mutator in _ARITH:
            return self._arith(value)
        if ctype.is_map and self.mutator == "insert":
            keys = {k for k, _ in value}
            result = normalize(ctype, [*value, *(kv for kv in self.arg if kv[0] not in keys)])
        elif ctype.is_map:
            if self.arg_type.is_map:
                drop_pairs = set(self.arg)
                kept = [kv for kv in value if kv not in drop_pairs]
            else:
                drop_keys = set(self.arg)
                kept = [kv for kv in value if kv[0] not in drop_keys]
            result = tuple(kept)
        elif self.mutator == "insert":
            result = normalize(ctype, list(set(value) | set(self.arg)))
        else:
            drop = set(self.arg)
            result = tuple(a for a in value if a not in drop)
        if not conforms(ctype, result):
            raise OvsdbError(
                "constraint violation",
                f"Attempted to store {len(result)} elements in {ctype.to_english()}.",
            )
        return result

    def _arith(self, value: Datum) -> Datum:
        ctype = self.column.type
        y = self.arg[0]
        out = [self._arith_atom(x, y) for x in value]
        for atom in out:
            check_atom(ctype.key, atom)
        if len(set(out)) != len(out):
            raise OvsdbError(
                "constraint violation",
                f'Result of "{self.mutator}" operation contains duplicates.',
            )
        return normalize(ctype, out)

    def _arith_atom(self, x: Any, y: Any) -> Any:
        op = _ARITH[self.mutator]
        if op in ("div", "mod") and y == 0:
            raise OvsdbError("domain error", "Division by zero.")
        if isinstance(x, float):
            if op == "add":
                result_f = x + y
            elif op == "sub":
                result_f = x - y
            elif op == "mul":
                result_f = x * y
            else:
                result_f = x / y
            if not check_float(result_f):
                raise OvsdbError(
                    "range error", f'Result of "{self.mutator}" operation is out of range.'
                )
            return result_f
        if op == "div":
            # C division truncates toward zero; Python's // floors.
            q = abs(x) // abs(y)
            result = q if (x >= 0) == (y >= 0) else -q
        elif op == "mod":
            r = abs(x) % abs(y)
            result = r if x >= 0 else -r
        else:
            result = {"add": x + y, "sub": x - y, "mul": x * y}[op]
        if not _INT64_MIN <= result <= _INT64_MAX:
            raise OvsdbError(
                "range error", f'Result of "{self.mutator}" operation is out of range.'
            )
        return result


# ---------------------------------------------------------------------------
# Transactions


class WaitPending(Exception):  # noqa: N818 (a report, not an error)
    """A "wait" operation's condition does not hold yet, and it may still come true.

    ovsdb-server keeps such a transaction and runs it again after every commit
    until it succeeds or times out. ``timeout_ms`` is how long after the
    transaction's first try it times out (None: it waits for ever); trying it
    again at that moment, with that ``elapsed_ms``, gives the "timed out" result.
    Nothing is committed and no result is given while it is pending.
    """

    def __init__(self, timeout_ms: int | None) -> None:
        super().__init__(
            "waiting for ever" if timeout_ms is None else f"waiting up to {timeout_ms} ms"
        )
        self.timeout_ms = timeout_ms


@dataclass
class _Symbol:
    uuid: uuid.UUID
    created: bool = False


class _Txn:
    """One transaction in progress: working copies of touched tables and named UUIDs."""

    def __init__(
        self,
        schema: DbSchema,
        committed: dict[str, dict[uuid.UUID, Row]],
        versions: dict[str, dict[uuid.UUID, uuid.UUID]],
        new_uuid: Callable[[], uuid.UUID],
        locks_held: frozenset[str],
        elapsed_ms: int | None,
    ):
        self.schema = schema
        self.committed = committed
        self.versions = versions
        self.new_uuid = new_uuid
        self.locks_held = locks_held
        self.elapsed_ms = elapsed_ms
        self.work: dict[str, dict[uuid.UUID, Row]] = {}
        # Rows touched, per table, in the order touched (dict as ordered set).
        self.touched: dict[str, dict[uuid.UUID, None]] = {}
        self.symbols: dict[str, _Symbol] = {}
        self.gone: set[tuple[str, uuid.UUID]] = set()

    # -- tables and rows

    def rows(self, tname: str) -> dict[uuid.UUID, Row]:
        if tname not in self.work:
            self.work[tname] = dict(self.committed[tname])
        return self.work[tname]

    def touch(self, tname: str, row_uuid: uuid.UUID) -> None:
        self.touched.setdefault(tname, {})[row_uuid] = None

    def named(self, name: str, base: BaseType) -> uuid.UUID:
        del base  # ovsdb-server notes the reference kind only for diagnostics
        symbol = self.symbols.get(name)
        if symbol is None:
            symbol = self.symbols[name] = _Symbol(self.new_uuid())
        return symbol.uuid

    def version(self, tname: str, row_uuid: uuid.UUID) -> uuid.UUID:
        return self.versions[tname].get(row_uuid, uuid.UUID(int=0))

    # -- parsing helpers

    def table(self, p: _Parser) -> TableSchema | None:
        name = p.member("table", "id")
        if name is None:
            return None
        table = self.schema.tables.get(name)
        if table is None:
            p.raise_error(f"No table named {name}.")
        return table

    def parse_row(self, table: TableSchema, row_json: dict[str, Any]) -> Row:
        row: Row = {}
        for cname, value in row_json.items():
            column = table.column(cname)
            if column is None:
                raise syntax_error(
                    row_json, f"No column {cname} in table {table.name}.", "unknown column"
                )
            row[cname] = datum_from_json(column.type, value, self.named)
        return row

    def parse_columns(self, table: TableSchema, value: Any) -> list[str]:
        if value is None:
            return ["_uuid", "_version", *table.columns]
        out: list[str] = []
        for name in value:
            if not isinstance(name, str) or name in out:
                raise syntax_error(value, "array of distinct column names expected")
            if table.column(name) is None:
                raise syntax_error(value, f"{name} is not a valid column name")
            out.append(name)
        return out

    def parse_where(self, table: TableSchema, where: list[Any]) -> list[_Clause]:
        return [self.parse_clause(table, c) for c in where]

    def parse_clause(self, table: TableSchema, clause: Any) -> _Clause:
        if isinstance(clause, bool):
            return _Clause("", "true" if clause else "false", (), UUID_TYPE)
        if (
            not isinstance(clause, list)
            or len(clause) != 3
            or not isinstance(clause[0], str)
            or not isinstance(clause[1], str)
        ):
            raise syntax_error(clause, "Parse error in condition.")
        cname, function, arg_json = clause
        column = table.column(cname)
        if column is None:
            raise syntax_error(
                clause, f"No column {cname} in table {table.name}.", "unknown column"
            )
        if function not in _FUNCTIONS:
            raise OvsdbError("unknown function", f"No function named {function}.")
        ctype = column.type
        arg_type = ctype
        if function in ("<", "<=", ">", ">="):
            if not (ctype.is_scalar or ctype.is_optional_scalar) or ctype.key.type not in (
                "integer",
                "real",
            ):
                raise syntax_error(
                    clause,
                    f'Type mismatch: "{function}" operator may not be applied to column '
                    f"{cname} of type {ctype.to_english()}.",
                )
        elif function in ("includes", "excludes") and not ctype.is_scalar:
            arg_type = ColumnType(ctype.key, ctype.value, 0, None)
        arg = datum_from_json(arg_type, arg_json, self.named)
        return _Clause(cname, function, arg, ctype)

    def query(self, table: TableSchema, clauses: list[_Clause]) -> list[uuid.UUID]:
        rows = self.rows(table.name)
        return [
            u
            for u, row in rows.items()
            if all(c.matches(row, u, self.version(table.name, u)) for c in clauses)
        ]

    def parse_mutation(self, table: TableSchema, value: Any) -> _Mutation:
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not isinstance(value[0], str)
            or not isinstance(value[1], str)
        ):
            raise syntax_error(value, "Parse error in mutation.")
        cname, mutator, arg_json = value
        column = table.column(cname)
        if column is None:
            raise syntax_error(
                value, f"No column {cname} in table {table.name}.", "unknown column"
            )
        if not column.mutable:
            raise syntax_error(
                value,
                f"Cannot mutate immutable column {cname} in table {table.name}.",
                "constraint violation",
            )
        ctype = column.type

        def mismatch() -> OvsdbError:
            return syntax_error(
                value,
                f'Type mismatch: "{mutator}" operator may not be applied to column {cname} '
                f"of type {ctype.to_english()}.",
            )

        if mutator in _ARITH:
            if (
                ctype.is_map
                or ctype.key.type not in ("integer", "real")
                or (mutator == "%=" and ctype.key.type == "real")
            ):
                raise mismatch()
            # The argument is one atom of the key type, without its constraints.
            arg_type = ColumnType(BaseType(ctype.key.type))
            arg = datum_from_json(arg_type, arg_json, self.named)
        elif mutator in ("insert", "delete"):
            if ctype.is_scalar:
                raise mismatch()
            n_max = None if mutator == "delete" else ctype.n_max
            arg_type = ColumnType(ctype.key, ctype.value, 0, n_max)
            try:
                arg = datum_from_json(arg_type, arg_json, self.named)
            except OvsdbError:
                if not (ctype.is_map and mutator == "delete"):
                    raise
                # Deleting from a map also accepts a set of keys.
                arg_type = ColumnType(ctype.key, None, 0, None)
                arg = datum_from_json(arg_type, arg_json, self.named)
        else:
            raise OvsdbError("unknown mutator", f"No mutator named {mutator}.")
        return _Mutation(column, mutator, arg, arg_type)

    # -- operations

    def execute(self, p: _Parser) -> dict[str, Any]:
        op = p.member("op", "id")
        p.check()
        handler: Callable[[_Parser], dict[str, Any]] | None = {
            "insert": self.op_insert,
            "select": self.op_select,
            "update": self.op_update,
            "mutate": self.op_mutate,
            "delete": self.op_delete,
            "wait": self.op_wait,
            "commit": self.op_commit,
            "abort": self.op_abort,
            "comment": self.op_comment,
            "assert": self.op_assert,
        }.get(op)
        if handler is None:
            p.raise_error(f'No operation "{op}"')
            p.check()
            return {}
        return handler(p)

    def op_insert(self, p: _Parser) -> dict[str, Any]:
        table = self.table(p)
        uuid_name = p.member("uuid-name", "id", optional=True)
        uuid_json = p.member("uuid", "string", optional=True)
        row_json = p.member("row", "object")
        p.check()
        assert table is not None
        rows = self.rows(table.name)
        row_uuid: uuid.UUID | None = None
        if uuid_json is not None:
            row_uuid = parse_uuid(uuid_json)
            if row_uuid is None:
                raise syntax_error(uuid_json, "bad uuid")
            if (
                row_uuid in rows
                or row_uuid in self.committed[table.name]
                or (table.name, row_uuid) in self.gone
            ):
                raise syntax_error(
                    uuid_json,
                    "This UUID would duplicate a UUID already present within the table or "
                    "deleted within the same transaction.",
                    "duplicate uuid",
                )
        if uuid_name is not None:
            symbol = self.symbols.get(uuid_name)
            if symbol is not None and symbol.created:
                raise syntax_error(
                    uuid_name,
                    'This "uuid-name" appeared on an earlier "insert" operation.',
                    "duplicate uuid-name",
                )
            if symbol is None:
                symbol = self.symbols[uuid_name] = _Symbol(row_uuid or self.new_uuid())
            elif row_uuid is not None:
                symbol.uuid = row_uuid
            row_uuid = symbol.uuid
            symbol.created = True
        elif row_uuid is None:
            row_uuid = self.new_uuid()
        parsed = self.parse_row(table, row_json)
        row = {n: default_datum(c.type) for n, c in table.columns.items()}
        # _uuid and _version in "row" are parsed but ignored, as ovsdb-server does.
        row.update({n: d for n, d in parsed.items() if not n.startswith("_")})
        rows[row_uuid] = row
        self.touch(table.name, row_uuid)
        return {"uuid": ["uuid", str(row_uuid)]}

    def op_select(self, p: _Parser) -> dict[str, Any]:
        table = self.table(p)
        where = p.member("where", "array")
        columns_json = p.member("columns", "array", optional=True)
        sort_json = p.member("sort", "array", optional=True)
        p.check()
        assert table is not None
        clauses = self.parse_where(table, where)
        columns = self.parse_columns(table, columns_json)
        sort = self.parse_columns(table, sort_json) if sort_json is not None else []
        rows = self.rows(table.name)
        matched = self.query(table, clauses)
        if sort:
            matched.sort(key=lambda u: [self._value(table, u, rows[u], c) for c in sort])
        # ovsdb-server's select is ovsdb_query_distinct(): rows that look the
        # same in the selected columns are returned once.
        seen: set[tuple[Datum, ...]] = set()
        out = []
        for u in matched:
            key = tuple(self._value(table, u, rows[u], c) for c in columns)
            if key not in seen:
                seen.add(key)
                out.append({c: self._json_value(table, u, rows[u], c) for c in columns})
        return {"rows": out}

    def _value(self, table: TableSchema, u: uuid.UUID, row: Row, column: str) -> Datum:
        if column == "_uuid":
            return (u,)
        if column == "_version":
            return (self.version(table.name, u),)
        return row[column]

    def _json_value(self, table: TableSchema, u: uuid.UUID, row: Row, column: str) -> Any:
        if column in ("_uuid", "_version"):
            return ["uuid", str(self._value(table, u, row, column)[0])]
        return datum_to_json(table.columns[column].type, row[column])

    def op_update(self, p: _Parser) -> dict[str, Any]:
        table = self.table(p)
        where = p.member("where", "array")
        row_json = p.member("row", "object")
        p.check()
        assert table is not None
        new = self.parse_row(table, row_json)
        for cname in new:
            column = table.column(cname)
            assert column is not None
            if not column.mutable:
                raise syntax_error(
                    p.json,
                    f"Cannot update immutable column {cname} in table {table.name}.",
                    "constraint violation",
                )
        clauses = self.parse_where(table, where)
        rows = self.rows(table.name)
        matched = self.query(table, clauses)
        for u in matched:
            rows[u] = {**rows[u], **new}
            self.touch(table.name, u)
        return {"count": len(matched)}

    def op_mutate(self, p: _Parser) -> dict[str, Any]:
        table = self.table(p)
        where = p.member("where", "array")
        mutations_json = p.member("mutations", "array")
        p.check()
        assert table is not None
        mutations = [self.parse_mutation(table, m) for m in mutations_json]
        clauses = self.parse_where(table, where)
        rows = self.rows(table.name)
        matched = self.query(table, clauses)
        for u in matched:
            row = dict(rows[u])
            for m in mutations:
                row[m.column.name] = m.apply(row[m.column.name])
            rows[u] = row
            self.touch(table.name, u)
        return {"count": len(matched)}

    def op_delete(self, p: _Parser) -> dict[str, Any]:
        table = self.table(p)
        where = p.member("where", "array")
        p.check()
        assert table is not None
        clauses = self.parse_where(table, where)
        rows = self.rows(table.name)
        matched = self.query(table, clauses)
        for u in matched:
            del rows[u]
            self.touch(table.name, u)
            self.gone.add((table.name, u))
        return {"count": len(matched)}

    def op_wait(self, p: _Parser) -> dict[str, Any]:
        # Members are read in ovsdb-server's order, so that the first missing
        # or mistyped one reported is the same.
        timeout = p.member("timeout", "integer", optional=True)
        where = p.member("where", "array")
        columns_json = p.member("columns", "array", optional=True)
        until = p.member("until", "string")
        rows_json = p.member("rows", "array")
        table = self.table(p)
        p.check()
        assert table is not None
        clauses = self.parse_where(table, where)
        columns = self.parse_columns(table, columns_json)
        timeout_ms = None if timeout is None else int(timeout)
        if timeout_ms is not None and timeout_ms < 0:
            # Echoed as the integer Open vSwitch's JSON reader made of it.
            raise syntax_error(timeout_ms, "timeout must be nonnegative")
        if until not in ("==", "!="):
            raise syntax_error(until, '"until" must be "==" or "!="')
        expected: set[tuple[Datum, ...]] = set()
        for row_json in rows_json:
            if not isinstance(row_json, dict):
                raise syntax_error(row_json, "Object expected.")
            parsed = self.parse_row(table, row_json)
            full = {c: parsed.get(c, self._default(table, c)) for c in columns}
            expected.add(tuple(full[c] for c in columns))
        rows = self.rows(table.name)
        actual = {
            tuple(self._value(table, u, rows[u], c) for c in columns)
            for u in self.query(table, clauses)
        }
        if (actual == expected) != (until == "=="):
            self._unmet_wait(timeout_ms)
        return {}

    def _unmet_wait(self, timeout_ms: int | None) -> None:
        """A wait's condition does not hold: fail, or ask the caller to try again later."""
        elapsed = self.elapsed_ms or 0
        if timeout_ms is not None and elapsed >= timeout_ms:
            if elapsed:
                raise OvsdbError("timed out", f'"wait" timed out after {elapsed} ms')
            raise OvsdbError("timed out", '"where" clause test failed')
        if self.elapsed_ms is None:
            # The caller cannot wait, as with ovsdb-tool's transact.
            raise OvsdbError("not supported", "triggers not supported")
        raise WaitPending(timeout_ms)

    @staticmethod
    def _default(table: TableSchema, column: str) -> Datum:
        if column in ("_uuid", "_version"):
            return (uuid.UUID(int=0),)
        return default_datum(table.columns[column].type)

    def op_commit(self, p: _Parser) -> dict[str, Any]:
        # Durability is the journal's business; the flag is accepted and ignored here.
        p.member("durable", "boolean")
        p.check()
        return {}

    def op_abort(self, p: _Parser) -> dict[str, Any]:
        p.check()
        raise OvsdbError("aborted", "aborted by request")

    def op_comment(self, p: _Parser) -> dict[str, Any]:
        p.member("comment", "string")
        p.check()
        return {}

    def op_assert(self, p: _Parser) -> dict[str, Any]:
        lock = p.member("lock", "id")
        p.check()
        if lock not in self.locks_held:
            raise OvsdbError("not owner", f"Asserted lock {lock} not held.")
        return {}

    # -- commit: the checks of ovsdb_txn_precommit, in its order

    def commit(self) -> dict[str, dict[uuid.UUID, tuple[Row | None, Row | None]]]:
        committed = self.committed
        final = {t: self.work.get(t, committed[t]) for t in self.schema.tables}
        self._check_strong_refs(final)
        self._collect_garbage(final)
        self._check_max_rows(final)
        self._drop_weak_refs(final)
        delta = self._delta(final)
        self._check_indexes(final, delta)
        return delta

    def _refs(self, table: TableSchema, row: Row, strong: bool) -> Iterable[tuple[str, uuid.UUID]]:
        for cname, column in table.columns.items():
            ctype = column.type
            for base, pos in ((ctype.key, 0), (ctype.value, 1)):
                if base is None or base.ref_table is None:
                    continue
                if base.is_strong_ref != strong:
                    continue
                for item in row[cname]:
                    yield base.ref_table, (item[pos] if ctype.is_map else item)

    def _check_strong_refs(self, final: dict[str, dict[uuid.UUID, Row]]) -> None:
        committed = self.committed
        for tname, uuids in self.touched.items():
            table = self.schema.tables[tname]
            for u in uuids:
                row = final[tname].get(u)
                if row is None:
                    continue
                for cname, column in table.columns.items():
                    for ref_table, target in self._column_refs(column, row[cname], strong=True):
                        if target not in final[ref_table] and target not in committed[ref_table]:
                            raise OvsdbError(
                                "referential integrity violation",
                                f"Table {tname} column {cname} row {u} references nonexistent "
                                f"row {target} in table {ref_table}.",
                            )
        counts = self._ref_counts(final)
        for tname, uuids in self.touched.items():
            for u in uuids:
                if u in final[tname] or u not in committed[tname]:
                    continue
                n = counts.get((tname, u), 0)
                if n:
                    raise OvsdbError(
                        "referential integrity violation",
                        f"cannot delete {tname} row {u} because of {n} remaining reference(s)",
                    )

    @staticmethod
    def _column_refs(
        column: ColumnSchema, datum: Datum, *, strong: bool
    ) -> Iterable[tuple[str, uuid.UUID]]:
        ctype = column.type
        for base, pos in ((ctype.key, 0), (ctype.value, 1)):
            if base is None or base.ref_table is None or base.is_strong_ref != strong:
                continue
            for item in datum:
                yield base.ref_table, (item[pos] if ctype.is_map else item)

    def _ref_counts(
        self, final: dict[str, dict[uuid.UUID, Row]]
    ) -> dict[tuple[str, uuid.UUID], int]:
        counts: dict[tuple[str, uuid.UUID], int] = {}
        for tname, rows in final.items():
            table = self.schema.tables[tname]
            if not any(self._has_strong_ref(c) for c in table.columns.values()):
                continue
            for row in rows.values():
                for target in self._refs(table, row, strong=True):
                    counts[target] = counts.get(target, 0) + 1
        return counts

    @staticmethod
    def _has_strong_ref(column: ColumnSchema) -> bool:
        return any(b is not None and b.is_strong_ref for b in (column.type.key, column.type.value))

    def _collect_garbage(self, final: dict[str, dict[uuid.UUID, Row]]) -> None:
        # Rows of non-root tables that no strong reference reaches are deleted,
        # which cascades (a deleted Port releases its Interfaces): this is how
        # ovs-vsctl's del-br removes a bridge's ports by only unlinking the bridge.
        counts = self._ref_counts(final)
        work = [
            (t, u)
            for t, rows in final.items()
            if not self.schema.tables[t].is_root
            for u in rows
            if counts.get((t, u), 0) == 0
        ]
        while work:
            tname, u = work.pop()
            rows = final[tname]
            row = rows.get(u)
            if row is None:
                continue
            if tname not in self.work:
                self.work[tname] = dict(rows)
                final[tname] = self.work[tname]
                rows = final[tname]
            del rows[u]
            self.touch(tname, u)
            for target in self._refs(self.schema.tables[tname], row, strong=True):
                counts[target] -= 1
                if counts[target] == 0 and not self.schema.tables[target[0]].is_root:
                    work.append(target)

    def _check_max_rows(self, final: dict[str, dict[uuid.UUID, Row]]) -> None:
        for tname in self.touched:
            table = self.schema.tables[tname]
            n = len(final[tname])
            if table.max_rows is not None and n > table.max_rows:
                raise OvsdbError(
                    "constraint violation",
                    f'transaction causes "{tname}" table to contain {n} rows, greater than the '
                    f"schema-defined limit of {table.max_rows} row(s)",
                )

    def _drop_weak_refs(self, final: dict[str, dict[uuid.UUID, Row]]) -> None:
        for tname, table in self.schema.tables.items():
            weak_cols = [
                c
                for c in table.columns.values()
                if any(b is not None and b.is_weak_ref for b in (c.type.key, c.type.value))
            ]
            if not weak_cols:
                continue
            for u, row in list(final[tname].items()):
                new_row: Row | None = None
                for column in weak_cols:
                    kept = tuple(
                        item for item in row[column.name] if self._weak_ok(column, item, final)
                    )
                    n_deleted = len(row[column.name]) - len(kept)
                    if not n_deleted:
                        continue
                    if len(kept) < column.type.n_min:
                        inserted = (
                            ""
                            if u in self.committed[tname]
                            else ("(inserted within this transaction) ")
                        )
                        raise OvsdbError(
                            "constraint violation",
                            f"Deletion of {n_deleted} weak reference(s) to deleted (or "
                            f'never-existing) rows from column "{column.name}" in "{tname}" '
                            f"row {u} {inserted}caused this column to become empty, but "
                            "constraints on this column disallow an empty column.",
                        )
                    new_row = dict(new_row or row)
                    new_row[column.name] = kept
                if new_row is not None:
                    if tname not in self.work:
                        self.work[tname] = dict(final[tname])
                        final[tname] = self.work[tname]
                    final[tname][u] = new_row
                    self.touch(tname, u)

    @staticmethod
    def _weak_ok(column: ColumnSchema, item: Any, final: dict[str, dict[uuid.UUID, Row]]) -> bool:
        ctype = column.type
        for base, pos in ((ctype.key, 0), (ctype.value, 1)):
            if base is None or not base.is_weak_ref:
                continue
            assert base.ref_table is not None
            target = item[pos] if ctype.is_map else item
            if target not in final[base.ref_table]:
                return False
        return True

    def _delta(
        self, final: dict[str, dict[uuid.UUID, Row]]
    ) -> dict[str, dict[uuid.UUID, tuple[Row | None, Row | None]]]:
        committed = self.committed
        delta: dict[str, dict[uuid.UUID, tuple[Row | None, Row | None]]] = {}
        for tname, uuids in self.touched.items():
            for u in uuids:
                old = committed[tname].get(u)
                new = final[tname].get(u)
                if old != new:
                    delta.setdefault(tname, {})[u] = (old, new)
        return delta

    def _check_indexes(
        self,
        final: dict[str, dict[uuid.UUID, Row]],
        delta: dict[str, dict[uuid.UUID, tuple[Row | None, Row | None]]],
    ) -> None:
        committed = self.committed
        for tname, changed in delta.items():
            table = self.schema.tables[tname]
            for index in table.indexes:
                seen: dict[tuple[Datum, ...], uuid.UUID] = {}
                # Older rows first, so that the error names the existing row first.
                order = [u for u in final[tname] if u in committed[tname]]
                order += [u for u in final[tname] if u not in committed[tname]]
                for u in order:
                    key = tuple(final[tname][u][c] for c in index)
                    other = seen.get(key)
                    if other is None:
                        seen[key] = u
                        continue
                    if other not in changed and u not in changed:
                        continue
                    raise OvsdbError(
                        "constraint violation",
                        self._index_message(table, index, key, other, u, changed),
                    )

    def _index_message(
        self,
        table: TableSchema,
        index: tuple[str, ...],
        key: tuple[Datum, ...],
        first: uuid.UUID,
        second: uuid.UUID,
        changed: dict[uuid.UUID, tuple[Row | None, Row | None]],
    ) -> str:
        values = _english(
            [datum_to_string(table.columns[c].type, d) for c, d in zip(index, key, strict=True)]
        )
        names = _english([f'"{c}"' for c in index])
        which = "column" if len(index) == 1 else "columns"

        def describe(title: str, u: uuid.UUID) -> str:
            text = f"{title} row, with UUID {u}, "
            old_new = changed.get(u)
            if old_new is None:
                return text + (
                    "existed in the database before this transaction and was not modified by "
                    "the transaction."
                )
            old, new = old_new
            if old is None:
                return text + "was inserted by this transaction."
            assert new is not None
            if all(old[c] == new[c] for c in index):
                return text + (
                    "existed in the database before this transaction, which modified some of "
                    "the row's columns but not any columns in this index."
                )
            before = _english([datum_to_string(table.columns[c].type, old[c]) for c in index])
            return text + f"had the following index values before the transaction: {before}."

        return (
            f'Transaction causes multiple rows in "{table.name}" table to have identical values '
            f"({values}) for index on {which} {names}.  {describe('First', first)}  "
            f"{describe('Second', second)}"
        )


def _english(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


# ---------------------------------------------------------------------------
# The database


class Database:
    """An OVSDB database in memory: committed tables, transactions, snapshots, records."""

    def __init__(self, schema: DbSchema, uuid_factory: Callable[[], uuid.UUID] = uuid.uuid4):
        self.schema = schema
        self._new_uuid = uuid_factory
        self._tables: dict[str, dict[uuid.UUID, Row]] = {t: {} for t in schema.tables}
        self._versions: dict[str, dict[uuid.UUID, uuid.UUID]] = {t: {} for t in schema.tables}

    # -- reading

    def rows(self, table: str) -> Mapping[uuid.UUID, Mapping[str, Datum]]:
        """The committed rows of a table (read-only), datums as sorted tuples."""
        return MappingProxyType(self._tables[table])

    def version(self, table: str, row_uuid: uuid.UUID) -> uuid.UUID:
        """The row's _version (changes at every commit that changes the row)."""
        return self._versions[table][row_uuid]

    def row_json(self, table: str, row_uuid: uuid.UUID) -> dict[str, Any]:
        """One committed row as RFC 7047 <row> JSON (every column, without _uuid/_version)."""
        return _row_to_json(self.schema.tables[table], self._tables[table][row_uuid])

    # -- transactions

    def transact(
        self,
        ops: list[Any],
        locks_held: frozenset[str] = frozenset(),
        elapsed_ms: int | None = None,
    ) -> tuple[list[Any], Changes | None]:
        """Run one transaction (the operations after the database name in "transact" params).

        Returns the result array, shaped as ovsdb-server's: one result per
        operation; on an operation error the error object takes its place and
        the rest are null; on a commit-time error the error is appended after
        all the results. Changes is None when nothing was committed (an error,
        or a transaction that changed nothing). ``locks_held`` are the locks
        the client owns, for "assert".

        ``elapsed_ms`` is how long ago the caller first tried this transaction
        (0 on the first try). A "wait" whose condition does not hold then
        raises :class:`WaitPending` unless its timeout has passed, and the
        caller tries again later, as ovsdb-server's triggers do. With None
        the caller cannot wait: such a "wait" fails at once with "not
        supported", as ovsdb-tool's does ("timeout": 0 still gives "timed out").
        """
        txn = _Txn(
            self.schema, self._tables, self._versions, self._new_uuid, locks_held, elapsed_ms
        )
        results: list[Any] = []
        count = len(ops)
        for i, op in enumerate(ops):
            parser = _Parser(op, i, count)
            error: OvsdbError | None
            try:
                result = txn.execute(parser)
                error = parser.finish()
            except OvsdbError as exc:
                # A parse error (an unknown member too) overrides any other
                # error, as in ovsdb_execute_compose().
                error = parser.finish() or exc
            except WaitPending:
                error = parser.finish()
                if error is None:
                    raise
            if error is not None:
                results.append(error.to_json())
                results.extend(None for _ in range(count - len(results)))
                return results, None
            results.append(result)
        try:
            delta = txn.commit()
        except OvsdbError as exc:
            results.append(exc.to_json())
            return results, None
        if not delta:
            return results, None
        return results, self._install(delta)

    def _install(
        self, delta: dict[str, dict[uuid.UUID, tuple[Row | None, Row | None]]]
    ) -> Changes:
        for tname, rows in delta.items():
            table = self._tables[tname] = dict(self._tables[tname])
            versions = self._versions[tname]
            for u, (_old, new) in rows.items():
                if new is None:
                    del table[u]
                    versions.pop(u, None)
                else:
                    table[u] = new
                    versions[u] = self._new_uuid()
        return Changes(self.schema, delta)

    # -- snapshots, records, monitors

    def to_json(self) -> dict[str, dict[str, dict[str, Any]]]:
        """A full snapshot ``{table: {uuid: row}}`` (every table, every column)."""
        return {
            tname: {
                str(u): _row_to_json(self.schema.tables[tname], row) for u, row in rows.items()
            }
            for tname, rows in self._tables.items()
        }

    @classmethod
    def from_json(
        cls,
        schema: DbSchema,
        snapshot: Mapping[str, Mapping[str, Mapping[str, Any]]],
        uuid_factory: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> Database:
        """A database holding a snapshot made by ``to_json`` (missing columns get defaults)."""
        db = cls(schema, uuid_factory)
        db.apply_record(snapshot)
        return db

    def apply_record(self, record: Mapping[str, Mapping[str, Any]]) -> Changes | None:
        """Replay a journal record from ``Changes.record()``; returns what it changed.

        Values are type-checked, but references and constraints across rows are
        trusted: the record was made by a committed transaction.
        """
        delta: dict[str, dict[uuid.UUID, tuple[Row | None, Row | None]]] = {}
        for tname, rows in record.items():
            table = self.schema.tables.get(tname)
            if table is None:
                raise OvsdbError("syntax error", f"No table named {tname}.")
            for text, row_json in rows.items():
                u = parse_uuid(text)
                if u is None:
                    raise syntax_error(text, f'"{text}" is not a valid UUID')
                old = self._tables[tname].get(u)
                if row_json is None:
                    if old is not None:
                        delta.setdefault(tname, {})[u] = (old, None)
                    continue
                base = (
                    dict(old)
                    if old is not None
                    else {n: default_datum(c.type) for n, c in table.columns.items()}
                )
                for cname, value in row_json.items():
                    column = table.columns.get(cname)
                    if column is None:
                        raise syntax_error(
                            row_json, f"No column {cname} in table {tname}.", "unknown column"
                        )
                    base[cname] = datum_from_json(column.type, value)
                if base != old:
                    delta.setdefault(tname, {})[u] = (old, base)
        return self._install(delta) if delta else None

    def monitor_initial(self, requests: Mapping[str, Any]) -> TableUpdates:
        """The initial <table-updates> of a monitor: every row as "new", monitored columns only.

        ``requests`` maps a table name to the columns monitored (a list, or None
        for all), or to RFC 7047 <monitor-request>s (an object or a list of them,
        with optional "columns" and "select"; "select": {"initial": false}
        leaves the table out). Tables without rows are left out, as
        ovsdb-server does.
        """
        out: TableUpdates = {}
        for tname, request in requests.items():
            table = self.schema.tables[tname]
            columns, initial = monitor_columns(table, request)
            rows = self._tables[tname]
            if rows and initial:
                out[tname] = {
                    str(u): {"new": _row_to_json(table, r, columns)} for u, r in rows.items()
                }
        return out


def monitor_columns(table: TableSchema, request: Any) -> tuple[list[str], bool]:
    """The columns a monitor request watches and whether it wants the initial rows."""
    if request is None:
        return list(table.columns), True
    if isinstance(request, dict):
        request = [request]
    if isinstance(request, list) and all(isinstance(r, str) for r in request):
        return list(request), True
    columns: list[str] = []
    initial = False
    for item in request:
        wanted = item.get("columns")
        for name in table.columns if wanted is None else wanted:
            if name not in columns:
                columns.append(name)
        initial = initial or item.get("select", {}).get("initial", True)
    return columns, initial


__all__ = [
    "Changes",
    "Database",
    "OvsdbError",
    "Row",
    "TableUpdates",
    "WaitPending",
    "monitor_columns",
]
