"""OVSDB schemas (RFC 7047 §3.2): parse, validate, and write back as JSON.

The classes mirror ovsdb-server's (``ovsdb/table.h``, ``lib/ovsdb-types.h``):
a database schema has tables, a table has columns, a column has a type made of
a key base type, an optional value base type (for maps) and min/max counts.
Errors name the table and column at fault, since a schema is written by hand.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

ATOMIC_TYPES = ("integer", "real", "boolean", "string", "uuid")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SchemaError(ValueError):
    """A schema that RFC 7047 (or ovsdb-server) would refuse; the message says where."""


def _expect(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise SchemaError(f"{where}: {what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def atom_sort_key(atom: Any) -> Any:
    """Order atoms as ovsdb-server does; UUIDs by their 128-bit value (uuid_compare_3way)."""
    return atom.int if isinstance(atom, uuid.UUID) else atom


@dataclass(frozen=True)
class BaseType:
    """One atomic type with its constraints (RFC 7047 <base-type>)."""

    type: str
    enum: frozenset[Any] | None = None
    min_integer: int | None = None
    max_integer: int | None = None
    min_real: float | None = None
    max_real: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    ref_table: str | None = None
    ref_type: str = "strong"

    @property
    def is_strong_ref(self) -> bool:
        """A uuid that must name an existing row of ref_table (and keeps it alive)."""
        return self.ref_table is not None and self.ref_type == "strong"

    @property
    def is_weak_ref(self) -> bool:
        """A uuid that is dropped when the row it names goes away."""
        return self.ref_table is not None and self.ref_type == "weak"

    @classmethod
    def from_json(cls, value: Any, where: str) -> BaseType:
        """Parse an <atomic-type> or <base-type>."""
        if isinstance(value, str):
            _expect(value in ATOMIC_TYPES, where, f"unknown atomic type {value!r}")
            return cls(value)
        _expect(isinstance(value, dict), where, "a base type must be a string or an object")
        allowed = {
            "type",
            "enum",
            "minInteger",
            "maxInteger",
            "minReal",
            "maxReal",
            "minLength",
            "maxLength",
            "refTable",
            "refType",
        }
        extra = sorted(set(value) - allowed)
        _expect(not extra, where, f"unknown member(s) {', '.join(extra)} in base type")
        kind = value.get("type")
        _expect(kind in ATOMIC_TYPES, where, f"unknown atomic type {kind!r}")
        kwargs: dict[str, Any] = {}
        specific = {
            "integer": ("minInteger", "maxInteger"),
            "real": ("minReal", "maxReal"),
            "string": ("minLength", "maxLength"),
            "uuid": ("refTable", "refType"),
            "boolean": (),
        }[kind]
        for key in allowed - {"type", "enum"}:
            if key in value:
                _expect(key in specific, where, f"{key} is not allowed for type {kind}")
        if kind == "integer":
            for key, attr in (("minInteger", "min_integer"), ("maxInteger", "max_integer")):
                if key in value:
                    _expect(_is_int(value[key]), where, f"{key} must be an integer")
                    kwargs[attr] = value[key]
        elif kind == "real":
            for key, attr in (("minReal", "min_real"), ("maxReal", "max_real")):
                if key in value:
                    ok = _is_int(value[key]) or isinstance(value[key], float)
                    _expect(ok, where, f"{key} must be a number")
                    kwargs[attr] = float(value[key])
        elif kind == "string":
            for key, attr in (("minLength", "min_length"), ("maxLength", "max_length")):
                if key in value:
                    ok = _is_int(value[key]) and value[key] >= 0
                    _expect(ok, where, f"{key} must be a non-negative integer")
                    kwargs[attr] = value[key]
        elif kind == "uuid":
            if "refTable" in value:
                _expect(isinstance(value["refTable"], str), where, "refTable must be a string")
                kwargs["ref_table"] = value["refTable"]
            if "refType" in value:
                _expect("refTable" in value, where, "refType requires refTable")
                ok = value["refType"] in ("strong", "weak")
                _expect(ok, where, 'refType must be "strong" or "weak"')
                kwargs["ref_type"] = value["refType"]
        lo_hi = (
            ("min_integer", "max_integer"),
            ("min_real", "max_real"),
            ("min_length", "max_length"),
        )
        for lo, hi in lo_hi:
            if lo in kwargs and hi in kwargs:
                _expect(kwargs[lo] <= kwargs[hi], where, f"{lo} is greater than {hi}")
        if "enum" in value:
            kwargs["enum"] = _parse_enum(cls(kind), value["enum"], where)
        return cls(kind, **kwargs)

    def to_json(self) -> Any:
        """The RFC 7047 form: the bare type name when there are no constraints."""
        out: dict[str, Any] = {"type": self.type}
        if self.enum is not None:
            atoms = sorted(self.enum, key=atom_sort_key)
            out["enum"] = atoms[0] if len(atoms) == 1 else ["set", atoms]
        for attr, key in (
            ("min_integer", "minInteger"),
            ("max_integer", "maxInteger"),
            ("min_real", "minReal"),
            ("max_real", "maxReal"),
            ("min_length", "minLength"),
            ("max_length", "maxLength"),
            ("ref_table", "refTable"),
        ):
            if getattr(self, attr) is not None:
                out[key] = getattr(self, attr)
        if self.ref_table is not None and self.ref_type != "strong":
            out["refType"] = self.ref_type
        return out["type"] if len(out) == 1 else out


def _parse_enum(base: BaseType, value: Any, where: str) -> frozenset[Any]:
    # The enum is a datum of the unconstrained base type, one or more atoms.
    if isinstance(value, list) and len(value) == 2 and value[0] == "set":
        _expect(isinstance(value[1], list) and value[1] != [], where, "enum must not be empty")
        items = value[1]
    else:
        items = [value]
    atoms: set[Any] = set()
    for item in items:
        atoms.add(_enum_atom(base.type, item, where))
    _expect(len(atoms) == len(items), where, "enum contains duplicates")
    return frozenset(atoms)


def _enum_atom(kind: str, item: Any, where: str) -> Any:
    ok = {
        "integer": _is_int(item),
        "real": _is_int(item) or isinstance(item, float),
        "boolean": isinstance(item, bool),
        "string": isinstance(item, str),
        "uuid": isinstance(item, list) and len(item) == 2 and item[0] == "uuid",
    }[kind]
    _expect(ok, where, f"enum value {item!r} is not of type {kind}")
    if kind == "real":
        return float(item)
    if kind == "uuid":
        return uuid.UUID(item[1])
    return item


@dataclass(frozen=True)
class ColumnType:
    """A column's type (RFC 7047 <type>): key, optional value, min and max (None = unlimited)."""

    key: BaseType
    value: BaseType | None = None
    n_min: int = 1
    n_max: int | None = 1

    @property
    def is_scalar(self) -> bool:
        """Exactly one atom."""
        return self.value is None and self.n_min == 1 and self.n_max == 1

    @property
    def is_optional_scalar(self) -> bool:
        """Zero or one atom."""
        return self.value is None and self.n_min == 0 and self.n_max == 1

    @property
    def is_map(self) -> bool:
        """Key-value pairs."""
        return self.value is not None

    @property
    def is_set(self) -> bool:
        """A set (ovsdb-server counts any non-scalar, non-map type as a set)."""
        return self.value is None and not self.is_scalar

    def to_english(self) -> str:
        """ovsdb_type_to_english(), used in ovsdb-server's error details."""
        if self.is_scalar:
            return self.key.type
        kind = "map" if self.is_map else "set"
        if self.n_max is None:
            count = f" of {self.n_min} or more" if self.n_min else " of"
        elif self.n_min:
            count = f" of {self.n_min} to {self.n_max}"
        else:
            count = f" of up to {self.n_max}"
        if self.value is not None:
            return f"{kind}{count} ({self.key.type}, {self.value.type}) pairs"
        return f"{kind}{count} {self.key.type}s"

    @classmethod
    def from_json(cls, value: Any, where: str) -> ColumnType:
        """Parse an RFC 7047 <type>."""
        if isinstance(value, str):
            return cls(BaseType.from_json(value, where))
        _expect(isinstance(value, dict), where, "type must be a string or an object")
        extra = sorted(set(value) - {"key", "value", "min", "max"})
        _expect(not extra, where, f"unknown member(s) {', '.join(extra)} in type")
        _expect("key" in value, where, "type has no key")
        key = BaseType.from_json(value["key"], where)
        val = BaseType.from_json(value["value"], where) if "value" in value else None
        n_min = value.get("min", 1)
        n_max = value.get("max", 1)
        _expect(_is_int(n_min) and n_min in (0, 1), where, "min must be 0 or 1")
        if n_max == "unlimited":
            n_max = None
        else:
            _expect(_is_int(n_max) and n_max >= 1, where, 'max must be >= 1 or "unlimited"')
            _expect(n_max >= n_min, where, "max must not be less than min")
        return cls(key, val, n_min, n_max)

    def to_json(self) -> Any:
        """The RFC 7047 form, as short as it can be."""
        if self.is_scalar and isinstance(self.key.to_json(), str):
            return self.key.type
        out: dict[str, Any] = {"key": self.key.to_json()}
        if self.value is not None:
            out["value"] = self.value.to_json()
        if self.n_min != 1:
            out["min"] = self.n_min
        if self.n_max != 1:
            out["max"] = "unlimited" if self.n_max is None else self.n_max
        return out


@dataclass(frozen=True)
class ColumnSchema:
    """One column: name, type, and whether it may change after insert / is kept on disk."""

    name: str
    type: ColumnType
    mutable: bool = True
    ephemeral: bool = False

    def to_json(self) -> dict[str, Any]:
        """The RFC 7047 <column-schema>."""
        out: dict[str, Any] = {"type": self.type.to_json()}
        if self.ephemeral:
            out["ephemeral"] = True
        if not self.mutable:
            out["mutable"] = False
        return out


UUID_TYPE = ColumnType(BaseType("uuid"))
# Every table has these two columns, which a schema may not declare.
UUID_COLUMN = ColumnSchema("_uuid", UUID_TYPE, mutable=False)
VERSION_COLUMN = ColumnSchema("_version", UUID_TYPE, mutable=False)


@dataclass(frozen=True)
class TableSchema:
    """One table: its columns (without _uuid/_version), root flag, row limit, indexes."""

    name: str
    columns: dict[str, ColumnSchema]
    is_root: bool = False
    max_rows: int | None = None
    indexes: tuple[tuple[str, ...], ...] = ()

    def column(self, name: str) -> ColumnSchema | None:
        """A column by name, including the implicit _uuid and _version."""
        if name == "_uuid":
            return UUID_COLUMN
        if name == "_version":
            return VERSION_COLUMN
        return self.columns.get(name)

    def to_json(self) -> dict[str, Any]:
        """The RFC 7047 <table-schema>."""
        out: dict[str, Any] = {"columns": {n: c.to_json() for n, c in self.columns.items()}}
        if self.is_root:
            out["isRoot"] = True
        if self.max_rows is not None:
            out["maxRows"] = self.max_rows
        if self.indexes:
            out["indexes"] = [list(i) for i in self.indexes]
        return out


@dataclass(frozen=True)
class DbSchema:
    """A whole database schema."""

    name: str
    version: str
    tables: dict[str, TableSchema]
    cksum: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> DbSchema:
        """Parse and validate a <database-schema>; raises SchemaError naming what is wrong."""
        _expect(isinstance(value, dict), "schema", "must be a JSON object")
        extra = sorted(set(value) - {"name", "version", "cksum", "tables"})
        _expect(not extra, "schema", f"unknown member(s) {', '.join(extra)}")
        name = value.get("name")
        _expect(isinstance(name, str) and bool(_ID.match(name)), "schema", "bad or missing name")
        version = value.get("version", "0.0.0")
        ok = isinstance(version, str) and re.fullmatch(r"\d+\.\d+\.\d+", version) is not None
        _expect(ok, "schema", f"version {version!r} is not of the form x.y.z")
        cksum = value.get("cksum")
        _expect(cksum is None or isinstance(cksum, str), "schema", "cksum must be a string")
        tables_json = value.get("tables")
        _expect(isinstance(tables_json, dict), "schema", "tables must be an object")
        tables = {tn: _table_from_json(tn, tj) for tn, tj in tables_json.items()}
        if not any(t.is_root for t in tables.values()):
            # Schemas from before "isRoot" existed had no garbage collection:
            # ovsdb-server treats all their tables as roots.
            tables = {
                tn: TableSchema(t.name, t.columns, True, t.max_rows, t.indexes)
                for tn, t in tables.items()
            }
        for table in tables.values():
            for column in table.columns.values():
                for base in (column.type.key, column.type.value):
                    if base is not None and base.ref_table is not None:
                        _expect(
                            base.ref_table in tables,
                            f"table {table.name} column {column.name}",
                            f"refTable {base.ref_table} is not a table in this schema",
                        )
        return cls(name, version, tables, cksum)

    def to_json(self) -> dict[str, Any]:
        """The RFC 7047 <database-schema>."""
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.cksum is not None:
            out["cksum"] = self.cksum
        out["tables"] = {n: t.to_json() for n, t in self.tables.items()}
        return out


def _table_from_json(name: Any, value: Any) -> TableSchema:
    where = f"table {name}"
    _expect(isinstance(name, str) and bool(_ID.match(name)), where, "bad table name")
    _expect(not name.startswith("_"), where, "table names beginning with _ are reserved")
    _expect(isinstance(value, dict), where, "must be an object")
    extra = sorted(set(value) - {"columns", "isRoot", "maxRows", "indexes"})
    _expect(not extra, where, f"unknown member(s) {', '.join(extra)}")
    columns_json = value.get("columns")
    _expect(isinstance(columns_json, dict) and bool(columns_json), where, "needs columns")
    columns: dict[str, ColumnSchema] = {}
    for cname, cjson in columns_json.items():
        cwhere = f"table {name} column {cname}"
        ok = isinstance(cname, str) and bool(_ID.match(cname))
        _expect(ok, cwhere, "bad column name")
        _expect(not cname.startswith("_"), cwhere, "column names beginning with _ are reserved")
        _expect(isinstance(cjson, dict) and "type" in cjson, cwhere, "needs a type")
        cextra = sorted(set(cjson) - {"type", "ephemeral", "mutable"})
        _expect(not cextra, cwhere, f"unknown member(s) {', '.join(cextra)}")
        for flag in ("ephemeral", "mutable"):
            if flag in cjson:
                _expect(isinstance(cjson[flag], bool), cwhere, f"{flag} must be a boolean")
        columns[cname] = ColumnSchema(
            cname,
            ColumnType.from_json(cjson["type"], cwhere),
            mutable=cjson.get("mutable", True),
            ephemeral=cjson.get("ephemeral", False),
        )
    is_root = value.get("isRoot", False)
    _expect(isinstance(is_root, bool), where, "isRoot must be a boolean")
    max_rows = value.get("maxRows")
    ok = max_rows is None or (_is_int(max_rows) and max_rows >= 1)
    _expect(ok, where, "maxRows must be a positive integer")
    indexes: list[tuple[str, ...]] = []
    for index in value.get("indexes", []):
        ok = isinstance(index, list) and bool(index)
        _expect(ok, where, "an index must be a non-empty list of column names")
        for cname in index:
            _expect(cname in columns, where, f"index column {cname!r} is not a column")
        indexes.append(tuple(index))
    return TableSchema(name, columns, is_root, max_rows, tuple(indexes))


def load_vswitch_schema() -> DbSchema:
    """The Open_vSwitch schema shipped in this package (vswitch.ovsschema)."""
    text = resources.files(__package__).joinpath("vswitch.ovsschema").read_text("utf-8")
    return DbSchema.from_json(json.loads(text))
