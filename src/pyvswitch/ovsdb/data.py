"""OVSDB data: atoms and datums, their JSON forms (RFC 7047 §5.1) and checks.

In memory an atom is a Python ``int``, ``float``, ``bool``, ``str`` or
``uuid.UUID``, and a datum (the value of one column) is a tuple sorted the way
ovsdb-server sorts it: a tuple of atoms for a set or a scalar, a tuple of
``(key, value)`` pairs for a map. Sorted tuples make datums hashable (index
checks) and make equal values compare equal, and printing them in order gives
the same JSON as ovsdb-server.

Error messages copy ovsdb-server's (``lib/ovsdb-data.c``) word for word, because
clients such as ovs-vsctl show them to users and tests compare them.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from typing import Any

from pyvswitch.ovsdb.schema import BaseType, ColumnType, atom_sort_key

Atom = int | float | bool | str | uuid.UUID
Datum = tuple[Any, ...]

# Resolves a "named-uuid" to the UUID it stands for within one transaction;
# None where named UUIDs are not allowed (snapshots, journal records).
NamedUuidResolver = Callable[[str, BaseType], uuid.UUID]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def dumps(value: Any) -> str:
    """JSON as ovsdb-server writes it in error "syntax" members (sorted keys, compact)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class OvsdbError(Exception):
    """An RFC 7047 error object: a tag ("error"), details and, optionally, the bad JSON."""

    def __init__(self, tag: str, details: str, syntax: Any = None, *, has_syntax: bool = False):
        super().__init__(details)
        self.tag = tag
        self.details = details
        self.syntax = syntax
        # A syntax error may be about JSON null itself, so presence is a flag.
        self.has_syntax = has_syntax or syntax is not None

    def to_json(self) -> dict[str, Any]:
        """The error object as ovsdb-server puts it in a transaction result."""
        out: dict[str, Any] = {"error": self.tag, "details": self.details}
        if self.has_syntax:
            out["syntax"] = dumps(self.syntax)
        return out


def syntax_error(json_value: Any, details: str, tag: str = "syntax error") -> OvsdbError:
    """An error about a piece of JSON, which ovsdb-server echoes back in "syntax"."""
    return OvsdbError(tag, details, json_value, has_syntax=True)


# ---------------------------------------------------------------------------
# Atoms


def _unwrap(value: Any, name: str, inner: type) -> Any:
    """``[name, inner]`` -> inner, or ovsdb-server's "expected [...]" error."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and value[0] == name
        and isinstance(value[1], inner)
    ):
        return value[1]
    kind = "array" if inner is list else "string"
    raise syntax_error(value, f'expected ["{name}", <{kind}>]')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_uuid(text: str) -> uuid.UUID | None:
    """The UUID in canonical 36-character form, or None (OVS accepts no other form)."""
    if len(text) != 36 or text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def atom_from_json(base: BaseType, value: Any, named: NamedUuidResolver | None = None) -> Atom:
    """Parse one atom and check it against the base type's constraints."""
    atom: Atom
    kind = base.type
    if kind == "integer":
        if not _is_int(value) or not _INT64_MIN <= value <= _INT64_MAX:
            raise syntax_error(value, "expected integer")
        atom = value
    elif kind == "real":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise syntax_error(value, "expected real")
        atom = float(value)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise syntax_error(value, "expected boolean")
        atom = value
    elif kind == "string":
        if not isinstance(value, str):
            raise syntax_error(value, "expected string")
        atom = value
    else:
        atom = _uuid_from_json(base, value, named)
    check_atom(base, atom)
    return atom


def _uuid_from_json(base: BaseType, value: Any, named: NamedUuidResolver | None) -> uuid.UUID:
    try:
        text = _unwrap(value, "uuid", str)
    except OvsdbError:
        # ovsdb-server tries "named-uuid" only where a symbol table exists
        # (inside a transaction) and reports the "uuid" error otherwise.
        if (
            named is not None
            and isinstance(value, list)
            and len(value) == 2
            and value[0] == "named-uuid"
            and isinstance(value[1], str)
        ):
            return named(value[1], base)
        raise
    parsed = parse_uuid(text)
    if parsed is None:
        raise syntax_error(value, f'"{text}" is not a valid UUID')
    return parsed


def atom_to_json(base: BaseType, atom: Atom) -> Any:
    """The JSON form of an atom."""
    if base.type == "uuid":
        return ["uuid", str(atom)]
    return atom


def _string_needs_quotes(text: str) -> bool:
    # ovsdb-data.c's string_needs_quotes(): a bare word starts with a letter
    # or "_", goes on with letters, digits, "_", "-" and ".", and is never
    # "true", "false" or a UUID.
    if not text or not (text[0].isascii() and (text[0].isalpha() or text[0] == "_")):
        return True
    if any(not (c.isascii() and (c.isalnum() or c in "_-.")) for c in text[1:]):
        return True
    return text in {"true", "false"} or parse_uuid(text) is not None


def atom_to_string(base: BaseType, atom: Atom) -> str:
    """An atom the way ovsdb-server prints it in error details (and ovs-vsctl shows it)."""
    if base.type == "string":
        assert isinstance(atom, str)
        return json.dumps(atom, ensure_ascii=False) if _string_needs_quotes(atom) else atom
    if base.type == "boolean":
        return "true" if atom else "false"
    if base.type == "real":
        assert isinstance(atom, float)
        return _format_real(atom)
    return str(atom)


def _format_real(value: float) -> str:
    # C's "%.*g" with DBL_DIG (15) digits, which is what ovsdb-server prints.
    return f"{value:.15g}"


def check_atom(base: BaseType, atom: Atom) -> None:
    """Raise ovsdb-server's "constraint violation" if the atom breaks its base type's rules."""
    if base.enum is not None:
        if atom not in base.enum:
            allowed = ", ".join(atom_to_string(base, a) for a in sorted(base.enum))
            raise OvsdbError(
                "constraint violation",
                f"{atom_to_string(base, atom)} is not one of the allowed values ([{allowed}])",
            )
        return
    if base.type in ("integer", "real"):
        _check_range(base, atom)
    elif base.type == "string":
        assert isinstance(atom, str)
        n = len(atom)
        if base.min_length is not None and n < base.min_length:
            raise OvsdbError(
                "constraint violation",
                f'"{atom}" length {n} is less than minimum allowed length {base.min_length}',
            )
        if base.max_length is not None and n > base.max_length:
            raise OvsdbError(
                "constraint violation",
                f'"{atom}" length {n} is greater than maximum allowed length {base.max_length}',
            )


def _check_range(base: BaseType, atom: Atom) -> None:
    lo: float | None
    hi: float | None
    if base.type == "integer":
        lo, hi = base.min_integer, base.max_integer
        fmt: Callable[[Any], str] = str
    else:
        lo, hi = base.min_real, base.max_real
        fmt = _format_real
    assert isinstance(atom, int | float)
    if (lo is None or atom >= lo) and (hi is None or atom <= hi):
        return
    if lo is not None and hi is not None:
        text = f"{fmt(atom)} is not in the valid range {fmt(lo)} to {fmt(hi)} (inclusive)"
    elif lo is not None:
        text = f"{fmt(atom)} is less than minimum allowed value {fmt(lo)}"
    else:
        text = f"{fmt(atom)} is greater than maximum allowed value {fmt(hi)}"
    raise OvsdbError("constraint violation", text)


def default_atom(base: BaseType) -> Atom:
    """The atom a column gets when an insert does not set it (RFC 7047 §5.2.1)."""
    defaults: dict[str, Atom] = {
        "integer": 0,
        "real": 0.0,
        "boolean": False,
        "string": "",
        "uuid": uuid.UUID(int=0),
    }
    return defaults[base.type]


# ---------------------------------------------------------------------------
# Datums


def default_datum(ctype: ColumnType) -> Datum:
    """The default value of a column: empty, or one default atom (or pair) when min is 1."""
    if ctype.n_min == 0:
        return ()
    if ctype.value is not None:
        return ((default_atom(ctype.key), default_atom(ctype.value)),)
    return (default_atom(ctype.key),)


def normalize(ctype: ColumnType, items: list[Any]) -> Datum:
    """Sort atoms (or pairs by key) into the canonical datum order."""
    if ctype.value is not None:
        return tuple(sorted(items, key=lambda kv: atom_sort_key(kv[0])))
    return tuple(sorted(items, key=atom_sort_key))


def datum_from_json(
    ctype: ColumnType, value: Any, named: NamedUuidResolver | None = None
) -> Datum:
    """Parse a column value, checking set sizes, duplicates and atom constraints."""
    is_map = ctype.value is not None
    if is_map or (
        isinstance(value, list) and value and isinstance(value[0], str) and value[0] == "set"
    ):
        kind = "map" if is_map else "set"
        inner = _unwrap(value, kind, list)
        n = len(inner)
        n_max = ctype.n_max if ctype.n_max is not None else 2**32 - 1
        if n < ctype.n_min or n > n_max:
            if ctype.n_min == 1 and n_max == 1:
                text = f"{kind} must have exactly one member but {n} are present"
            else:
                text = f"{kind} must have {ctype.n_min} to {n_max} members but {n} are present"
            raise syntax_error(value, text)
        items: list[Any] = []
        for element in inner:
            if is_map:
                assert ctype.value is not None
                if not isinstance(element, list) or len(element) != 2:
                    raise syntax_error(element, "expected 2-element array")
                key = atom_from_json(ctype.key, element[0], named)
                items.append((key, atom_from_json(ctype.value, element[1], named)))
            else:
                items.append(atom_from_json(ctype.key, element, named))
        datum = normalize(ctype, items)
        keys = [kv[0] for kv in datum] if is_map else list(datum)
        if len(set(keys)) != len(keys):
            raise OvsdbError(
                "ovsdb error", "map contains duplicate key" if is_map else "set contains duplicate"
            )
        return datum
    # A bare atom is a one-element set (RFC 7047 <set>).
    return (atom_from_json(ctype.key, value, named),)


def datum_to_json(ctype: ColumnType, datum: Datum) -> Any:
    """The JSON form ovsdb-server sends: bare atom for one-element sets, tagged otherwise."""
    if ctype.value is not None:
        value_type = ctype.value
        return [
            "map",
            [[atom_to_json(ctype.key, k), atom_to_json(value_type, v)] for k, v in datum],
        ]
    if len(datum) == 1:
        return atom_to_json(ctype.key, datum[0])
    return ["set", [atom_to_json(ctype.key, a) for a in datum]]


def datum_to_string(ctype: ColumnType, datum: Datum) -> str:
    """A datum the way ovsdb-server prints it in error details."""
    n_max = ctype.n_max if ctype.n_max is not None else 2**32 - 1
    if ctype.value is not None:
        value_type = ctype.value
        parts = [
            f"{atom_to_string(ctype.key, k)}={atom_to_string(value_type, v)}" for k, v in datum
        ]
    else:
        parts = [atom_to_string(ctype.key, a) for a in datum]
    text = ", ".join(parts)
    if n_max > 1 or not datum:
        open_, close = ("{", "}") if ctype.value is not None else ("[", "]")
        return f"{open_}{text}{close}"
    return text


def conforms(ctype: ColumnType, datum: Datum) -> bool:
    """Whether the number of elements fits the column's min and max."""
    return len(datum) >= ctype.n_min and (ctype.n_max is None or len(datum) <= ctype.n_max)


def check_float(value: float) -> bool:
    """Whether a real result is finite (ovsdb-server refuses infinities and NaN)."""
    return math.isfinite(value)
