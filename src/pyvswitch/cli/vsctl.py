"""pvs-vsctl: ovs-vsctl's syntax, output, messages and exit codes, for pyvswitch's database.

It talks OVSDB (RFC 7047) to ``python -m pyvswitch.ovsdb.server`` -- or to any
ovsdb-server with the Open_vSwitch schema -- over a unix socket, the way
ovs-vsctl does: it reads the whole database, runs every command of the
``--``-separated chain against that replica, and commits everything as one
transaction (with ``wait`` operations on what it read and changed, so a
concurrent change makes it start again rather than lose an update). A command
that fails stops the chain before anything is sent: a refused chain changes
nothing.

Waiting for the switch: as ovs-vsctl, unless given ``--no-wait``, a chain that
changes the database also bumps ``Open_vSwitch.next_cfg``, and pvs-vsctl waits
(up to ``--timeout``, forever without one) until pvs-vswitchd has applied the
change and copied it to ``cur_cfg``. A chain whose ``wait-until`` does not hold
yet is run again after every change the server reports (through a
``monitor``), as ovs-vsctl does.

Startup time matters (scripts call this in loops): only the standard library's
``json``, ``os``, ``socket`` and ``sys`` are imported, and the schema comes from
the server, so the tool does not import the database engine.
"""

from __future__ import annotations

import codecs
import json
import os
import socket
import sys
import time
from typing import Any

PROG = "pvs-vsctl"
RUNDIR_DEFAULT = "/var/run/pyvswitch"
# Where pvs-vswitchd --log-file writes unless $PVS_LOGDIR says otherwise
# (vswitchd/daemon.py's DEFAULT_LOGDIR, not imported to keep start-up light).
LOGDIR_DEFAULT = "/var/log/pyvswitch"
# ovs-vsctl's ovsdb_token_is_delim(): characters that end an unquoted token.
DELIMS = ":=, []{}!<>"
UNLIMITED = 2**32 - 1  # UINT_MAX: what ovs-vsctl prints for "unlimited" maxima
RELOPS = (
    "=",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "{=}",
    "{!=}",
    "{<}",
    "{>}",
    "{<=}",
    "{>=}",
    "{in}",
    "{not-in}",
)
# How often a transaction that lost a race (a "wait" that failed) is retried.
MAX_ATTEMPTS = 20

Atom = int | float | bool | str
Datum = tuple[Any, ...]


class VsctlError(Exception):
    """A fatal error: printed as ``pvs-vsctl: MESSAGE``, exit status 1."""


class ExitStatus(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Leave with a status and no message (``br-exists`` answering no)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class TryAgain(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """The database changed under us: run the whole chain again."""


class ConditionNotMet(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """``wait-until`` is not satisfied yet: run the chain again when the database changes."""


# -- schema (a light copy of ovsdb/schema.py: importing that costs ~40 ms) ---------


class Base:
    """An atomic type with its constraints."""

    __slots__ = (
        "enum",
        "max_len",
        "max_value",
        "min_len",
        "min_value",
        "ref_table",
        "ref_type",
        "type",
    )

    def __init__(self, js: Any) -> None:
        if isinstance(js, str):
            js = {"type": js}
        self.type: str = js["type"]
        self.min_value: float | None = js.get("minInteger", js.get("minReal"))
        self.max_value: float | None = js.get("maxInteger", js.get("maxReal"))
        self.min_len: int | None = js.get("minLength")
        self.max_len: int | None = js.get("maxLength")
        self.ref_table: str | None = js.get("refTable")
        self.ref_type: str = js.get("refType", "strong")
        self.enum: tuple[Atom, ...] | None = None
        if "enum" in js:
            e = js["enum"]
            items = e[1] if isinstance(e, list) and e and e[0] == "set" else [e]
            self.enum = tuple(sorted(items))


class CType:
    """A column type: key, optional value, min and max counts."""

    __slots__ = ("key", "n_max", "n_min", "value")

    def __init__(self, key: Base, value: Base | None, n_min: int, n_max: int) -> None:
        self.key, self.value, self.n_min, self.n_max = key, value, n_min, n_max

    @classmethod
    def from_json(cls, js: Any) -> CType:
        if isinstance(js, str):
            return cls(Base(js), None, 1, 1)
        n_max = js.get("max", 1)
        return cls(
            Base(js["key"]),
            Base(js["value"]) if "value" in js else None,
            js.get("min", 1),
            UNLIMITED if n_max == "unlimited" else n_max,
        )

    @property
    def is_map(self) -> bool:
        return self.value is not None

    def to_english(self) -> str:
        # ovsdb_type_to_english(), quoted in parse errors.
        if self.value is None and self.n_min == 1 and self.n_max == 1:
            return self.key.type
        kind = "map" if self.value is not None else "set"
        if self.n_max == UNLIMITED:
            count = f" of {self.n_min} or more" if self.n_min else ""
        elif self.n_min:
            count = f" of {self.n_min} to {self.n_max}"
        else:
            count = f" of up to {self.n_max}"
        if self.value is not None:
            return f"{kind}{count} ({self.key.type}, {self.value.type}) pairs"
        return f"{kind}{count} {self.key.type}s"


UUID_TYPE = CType(Base("uuid"), None, 1, 1)


class Column:
    """One column of a table."""

    __slots__ = ("mutable", "name", "type")

    def __init__(self, name: str, js: dict[str, Any]) -> None:
        self.name = name
        self.type = CType.from_json(js["type"])
        self.mutable: bool = js.get("mutable", True)


class Table:
    """One table; columns sorted by name, as ovs-vsctl's generated IDL lists them."""

    __slots__ = ("columns", "is_root", "name")

    def __init__(self, name: str, js: dict[str, Any]) -> None:
        self.name = name
        self.columns = {n: Column(n, c) for n, c in sorted(js["columns"].items())}
        self.is_root: bool = js.get("isRoot", False)


# -- atoms and datums ------------------------------------------------------------------


def sort_datum(ctype: CType, items: list[Any]) -> Datum:
    if ctype.is_map:
        return tuple(sorted(items, key=lambda kv: kv[0]))
    return tuple(sorted(items))


def default_atom(base: Base) -> Atom:
    defaults: dict[str, Atom] = {
        "integer": 0,
        "real": 0.0,
        "boolean": False,
        "string": "",
        "uuid": "00000000-0000-0000-0000-000000000000",
    }
    return defaults[base.type]


def default_datum(ctype: CType) -> Datum:
    if ctype.n_min == 0:
        return ()
    if ctype.value is not None:
        return ((default_atom(ctype.key), default_atom(ctype.value)),)
    return (default_atom(ctype.key),)


def is_uuid(text: str) -> bool:
    """uuid_from_string(): exactly the 36-character canonical form (any case)."""
    if len(text) != 36:
        return False
    for i, c in enumerate(text):
        if i in (8, 13, 18, 23):
            if c != "-":
                return False
        elif c not in "0123456789abcdefABCDEF":
            return False
    return True


def atom_from_json(base: Base, js: Any) -> Atom:
    if base.type == "uuid":
        return str(js[1])
    if base.type == "real":
        return float(js)
    assert isinstance(js, int | bool | str)
    return js


def datum_from_json(ctype: CType, js: Any) -> Datum:
    if ctype.value is not None:
        vbase = ctype.value
        pairs = [(atom_from_json(ctype.key, k), atom_from_json(vbase, v)) for k, v in js[1]]
        return sort_datum(ctype, pairs)
    if isinstance(js, list) and js and js[0] == "set":
        return sort_datum(ctype, [atom_from_json(ctype.key, a) for a in js[1]])
    return (atom_from_json(ctype.key, js),)


def _needs_quotes(text: str) -> bool:
    # ovsdb-data.c string_needs_quotes().
    if not text or not (text[0].isascii() and (text[0].isalpha() or text[0] == "_")):
        return True
    if any(not (c.isascii() and (c.isalnum() or c in "_-.")) for c in text[1:]):
        return True
    return text in ("true", "false") or is_uuid(text)


def _real_text(value: float) -> str:
    return f"{value:.15g}"  # C's "%.*g" with DBL_DIG


def atom_to_string(base: Base, atom: Atom) -> str:
    if base.type == "string":
        assert isinstance(atom, str)
        return json.dumps(atom, ensure_ascii=False) if _needs_quotes(atom) else atom
    if base.type == "boolean":
        return "true" if atom else "false"
    if base.type == "real":
        assert isinstance(atom, float)
        return _real_text(atom)
    return str(atom)


def atom_to_bare(base: Base, atom: Atom) -> str:
    return atom if base.type == "string" and isinstance(atom, str) else atom_to_string(base, atom)


def datum_to_string(ctype: CType, datum: Datum) -> str:
    if ctype.value is not None:
        vbase = ctype.value
        parts = [f"{atom_to_string(ctype.key, k)}={atom_to_string(vbase, v)}" for k, v in datum]
    else:
        parts = [atom_to_string(ctype.key, a) for a in datum]
    text = ", ".join(parts)
    if ctype.n_max > 1 or not datum:
        return ("{%s}" if ctype.is_map else "[%s]") % text
    return text


def datum_to_bare(ctype: CType, datum: Datum) -> str:
    if ctype.value is not None:
        vbase = ctype.value
        return " ".join(f"{atom_to_bare(ctype.key, k)}={atom_to_bare(vbase, v)}" for k, v in datum)
    return " ".join(atom_to_bare(ctype.key, a) for a in datum)


def check_atom(base: Base, atom: Atom) -> None:
    """ovsdb_atom_check_constraints(), with ovsdb-server's wording."""
    if base.enum is not None:
        if atom not in base.enum:
            allowed = ", ".join(atom_to_string(base, a) for a in base.enum)
            raise VsctlError(
                f"constraint violation: {atom_to_string(base, atom)} "
                f"is not one of the allowed values ([{allowed}])"
            )
        return
    if base.type in ("integer", "real"):
        assert isinstance(atom, int | float)
        lo, hi = base.min_value, base.max_value
        fmt: Any = str if base.type == "integer" else _real_text
        if (lo is None or atom >= lo) and (hi is None or atom <= hi):
            return
        if lo is not None and hi is not None:
            text = f"{fmt(atom)} is not in the valid range {fmt(lo)} to {fmt(hi)} (inclusive)"
        elif lo is not None:
            text = f"{fmt(atom)} is less than minimum allowed value {fmt(lo)}"
        else:
            text = f"{fmt(atom)} is greater than maximum allowed value {fmt(hi)}"
        raise VsctlError(f"constraint violation: {text}")
    if base.type == "string":
        assert isinstance(atom, str)
        n = len(atom)
        if base.min_len is not None and n < base.min_len:
            raise VsctlError(
                f'constraint violation: "{atom}" length {n} is less than minimum '
                f"allowed length {base.min_len}"
            )
        if base.max_len is not None and n > base.max_len:
            raise VsctlError(
                f'constraint violation: "{atom}" length {n} is greater than maximum '
                f"allowed length {base.max_len}"
            )


# -- parsing values as ovs-vsctl does (lib/ovsdb-data.c) -------------------------------


def token_parse(s: str, pos: int) -> tuple[str, int]:
    """ovsdb_token_parse(): a token up to an unquoted delimiter; quotes are kept."""
    out: list[str] = []
    in_quotes = False
    i = pos
    while i < len(s):
        c = s[i]
        i += 1
        if c == "\\":
            if in_quotes:
                out.append("\\")
            if i >= len(s):
                raise VsctlError(f"{s[pos:]}: backslash at end of argument")
            out.append(s[i])
            i += 1
        elif not in_quotes and c in DELIMS:
            i -= 1
            break
        else:
            out.append(c)
            if c == '"':
                in_quotes = not in_quotes
    if in_quotes:
        raise VsctlError(f"{s[pos:]}: quoted string extends past end of argument")
    return "".join(out), i


def _strtoll(text: str) -> int | None:
    # str_to_llong(): strtoll() in base 10 that must consume everything.
    t = text.lstrip(" \t\n\v\f\r")
    body = t[1:] if t[:1] in "+-" else t
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(t)
    return value if -(2**63) <= value < 2**63 else None


def _strtod(text: str) -> float | None:
    t = text.lstrip(" \t\n\v\f\r")
    if not t or t.lower().lstrip("+-") in ("inf", "infinity", "nan") or "_" in t:
        return None
    try:
        value = float(t)
    except ValueError:
        return None
    return None if value in (float("inf"), float("-inf")) else value


class Symbol:
    """An ``@name`` row id: its (placeholder or real) UUID and what we know about it."""

    __slots__ = ("created", "strong_ref", "uuid", "weak_ref")

    def __init__(self, uuid: str) -> None:
        self.uuid = uuid
        self.created = False
        self.strong_ref = False
        self.weak_ref = False


def new_uuid() -> str:
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}"


class Symtab(dict[str, Symbol]):
    """ovsdb_symbol_table: row ids named on the command line."""

    def insert(self, name: str) -> Symbol:
        if name not in self:
            self[name] = Symbol(new_uuid())
        return self[name]


def atom_from_string(
    base: Base, s: str, symtab: Symtab, *, ranges: bool = False
) -> tuple[Atom, Atom | None]:
    """ovsdb_atom_from_string(): an atom (and a range end), constraints checked."""
    atom: Atom
    end: Atom | None = None
    kind = base.type
    if kind == "integer":
        head, sep, _ = s.partition("-") if ranges and "-" in s.lstrip()[1:] else ("", "", "")
        if sep and head.strip():
            # str_to_llong_range(): "A-B", where the minus is not a sign.
            split = len(s) - len(s.lstrip()) + 1 + s.lstrip()[1:].index("-")
            lo, hi = _strtoll(s[:split]), _strtoll(s[split + 1 :])
        else:
            lo = hi = None
        if lo is not None and hi is not None:
            if hi < lo:
                raise VsctlError(f'"{s}" is not a valid range. Range end cannot be before start.')
            atom, end = lo, hi
        else:
            value = _strtoll(s)
            if value is None:
                raise VsctlError(f'"{s}" is not a valid integer' + (" or range" if ranges else ""))
            atom = value
    elif kind == "real":
        real = _strtod(s)
        if real is None:
            raise VsctlError(f'"{s}" is not a valid real number')
        atom = real + 0.0
    elif kind == "boolean":
        if s in ("true", "yes", "on", "1"):
            atom = True
        elif s in ("false", "no", "off", "0"):
            atom = False
        else:
            raise VsctlError(f'"{s}" is not a valid boolean (use "true" or "false")')
    elif kind == "string":
        if not s:
            raise VsctlError(
                'An empty string is not valid as input; use "" to represent the empty string'
            )
        if s[0] == '"':
            if len(s) < 2 or s[-1] != '"':
                raise VsctlError(f"{s}: missing quote at end of quoted string")
            try:
                atom = json.loads(s)
            except ValueError as exc:
                raise VsctlError(f"{s}: {exc.args[0].split(':')[0]}") from None
        else:
            atom = s
    # What is left is the uuid type: "@name" row ids or UUIDs.
    elif s.startswith("@"):
        symbol = symtab.insert(s)
        if base.ref_table is not None:
            if base.ref_type == "strong":
                symbol.strong_ref = True
            else:
                symbol.weak_ref = True
        atom = symbol.uuid
    elif is_uuid(s):
        atom = s.lower()
    else:
        raise VsctlError(f'"{s}" is not a valid UUID')
    check_atom(base, atom)
    if end is not None:
        check_atom(base, end)
    return atom, end


def datum_from_string(ctype: CType, s: str, symtab: Symtab) -> Datum:
    """ovsdb_datum_from_string(): ``a``, ``[a, b]``, ``{k=v}``; count and duplicates checked."""
    is_map = ctype.is_map
    p = len(s) - len(s.lstrip())
    end_delim = ""
    if p < len(s) and s[p] == ("{" if is_map else "["):
        end_delim = "}" if is_map else "]"
        p += 1
        p += len(s[p:]) - len(s[p:].lstrip())
    elif p == len(s):
        raise VsctlError(
            'use "{}" to specify the empty map' if is_map else 'use "[]" to specify the empty set'
        )
    items: list[Any] = []
    while p < len(s) and s[p] != end_delim:
        if s[p] in DELIMS:
            raise VsctlError(f'{s}: unexpected "{s[p]}" parsing {ctype.to_english()}')
        start = p
        token, p = token_parse(s, p)
        key, key_end = atom_from_string(ctype.key, token, symtab, ranges=not is_map)
        if ctype.value is not None:
            p += len(s[p:]) - len(s[p:].lstrip())
            if p < len(s) and s[p] == "=":
                p += 1
                p += len(s[p:]) - len(s[p:].lstrip())
                vtoken, p = token_parse(s, p)
                value, _ = atom_from_string(ctype.value, vtoken, symtab)
                items.append((key, value))
            else:
                # C prints the NUL at the end of the string, which ends the message.
                found = s[p] if p < len(s) else ""
                message = f'{s[start:]}: syntax error at "{found}'
                raise VsctlError(message + ('" expecting "="' if found else ""))
        elif key_end is not None:
            assert isinstance(key, int)
            assert isinstance(key_end, int)
            if key_end - key >= 4096:
                raise VsctlError(f'Range "{token}" is too big.')
            items.extend(range(key, key_end + 1))
        else:
            items.append(key)
        p += len(s[p:]) - len(s[p:].lstrip())
        if p < len(s) and s[p] == ",":
            p += 1
            p += len(s[p:]) - len(s[p:].lstrip())
    if (s[p] if p < len(s) else "") != end_delim:
        raise VsctlError(f'{s}: missing "{end_delim}" at end of data')
    if end_delim:
        p += 1
        if s[p:].strip():
            raise VsctlError(f'{s}: trailing garbage after "{end_delim}"')
    what = "pair(s)" if is_map else "value(s)"
    if len(items) < ctype.n_min:
        raise VsctlError(
            f"{s}: {len(items)} {what} specified but the minimum number is {ctype.n_min}"
        )
    if len(items) > ctype.n_max:
        raise VsctlError(
            f"{s}: {len(items)} {what} specified but the maximum number is {ctype.n_max}"
        )
    datum = sort_datum(ctype, items)
    keys = [kv[0] for kv in datum] if is_map else list(datum)
    if len(set(keys)) != len(keys):
        raise VsctlError(
            f"{s}: map contains duplicate key" if is_map else f"{s}: set contains duplicate value"
        )
    return datum


# -- matching names as ovs-vsctl does (lib/db-ctl-base.c) -------------------------------


def _score(name: str, s: str) -> int:
    """score_partial_match(): exact > case/dash-insensitive equal > prefix length."""
    if name == s:
        return 2**32 - 1
    score = 0
    for a, b in zip(name + "\0", s + "\0", strict=False):
        fa = "_" if a == "-" else a.lower()
        fb = "_" if b == "-" else b.lower()
        if fa != fb:
            break
        if a == "\0":
            return 2**32 - 2
        score += 1
    return score if score == len(s) else 0


class Chooser:
    """Best matches of a partial name among candidates, as get_table()/get_column()."""

    @staticmethod
    def best(names: list[str], wanted: str) -> list[str]:
        best: list[str] = []
        best_score = 0
        for name in names:
            score = _score(name, wanted)
            if score and score >= best_score:
                if score > best_score:
                    best = []
                best.append(name)
                best_score = score
        return sorted(set(best))


# -- talking to the server ---------------------------------------------------------------


class Connection:
    """A blocking OVSDB JSON-RPC client on a unix socket."""

    def __init__(self, target: str, timeout: float | None) -> None:
        if not target.startswith("unix:"):
            raise VsctlError(f'{target}: only "unix:PATH" database remotes are supported')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(target[len("unix:") :])
        except OSError as exc:
            self.sock.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise VsctlError(f"{target}: database connection failed ({reason})") from None
        self.buffer = ""
        # Incremental, so that a character split between two reads survives.
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.decoder = json.JSONDecoder()
        self.next_id = 0
        # --timeout bounds the whole run, waiting for the switch included.
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.db_name = "Open_vSwitch"
        self.tables: list[str] = []  # filled in once the schema is read
        self.monitoring = False
        self.updates = 0  # "update" notifications received
        self.updates_seen = 0

    def close(self) -> None:
        self.sock.close()

    def call(self, method: str, params: list[Any]) -> Any:
        self.next_id += 1
        my_id = self.next_id
        self._send({"method": method, "params": params, "id": my_id})
        while True:
            message = self._next_message()
            if message.get("id") != my_id:
                continue
            if message.get("error") is not None:
                raise VsctlError(f"{method}: {json.dumps(message['error'], sort_keys=True)}")
            return message.get("result")

    def monitor(self) -> None:
        """Ask to be told of every change to the database from now on (no initial rows)."""
        requests = {t: {"select": {"initial": False}} for t in self.tables}
        self.call("monitor", [self.db_name, "pvs-vsctl", requests])
        self.monitoring = True

    def wait_for_change(self) -> None:
        """Block until the monitor reports a change not yet waited for (or the deadline)."""
        while self.updates == self.updates_seen:
            self._next_message()
        self.updates_seen = self.updates

    def _next_message(self) -> dict[str, Any]:
        """The next message; echo requests are answered and updates counted on the way."""
        message = self._receive()
        if message.get("method") == "echo" and "id" in message:
            self._send({"id": message["id"], "result": message.get("params"), "error": None})
        elif message.get("method") == "update":
            self.updates += 1
        return message

    def _send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message, separators=(",", ":")).encode())

    def _receive(self) -> dict[str, Any]:
        while True:
            text = self.buffer.lstrip()
            if text:
                try:
                    value, end = self.decoder.raw_decode(text)
                except ValueError:
                    pass
                else:
                    self.buffer = text[end:]
                    return value if isinstance(value, dict) else {}
            if self.deadline is not None:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise VsctlError("database connection closed")
            self.buffer += self.utf8.decode(chunk)


# -- output --------------------------------------------------------------------------------


class OutTable:
    """A command's tabular output (``list``, ``find``): headings and typed cells."""

    def __init__(self, headings: list[str]) -> None:
        self.headings = headings
        self.rows: list[list[tuple[CType, Datum]]] = []


def atom_to_json(base: Base, atom: Atom) -> Any:
    return ["uuid", atom] if base.type == "uuid" else atom


def datum_to_json(ctype: CType, datum: Datum) -> Any:
    """ovsdb_datum_to_json(): the OVSDB wire form of a value."""
    if ctype.value is not None:
        vbase = ctype.value
        return ["map", [[atom_to_json(ctype.key, k), atom_to_json(vbase, v)] for k, v in datum]]
    if len(datum) == 1:
        return atom_to_json(ctype.key, datum[0])
    return ["set", [atom_to_json(ctype.key, a) for a in datum]]


def json_text(value: Any, pretty: bool = False, depth: int = 0) -> str:
    """Open vSwitch's JSON serializer: sorted members; --pretty puts each item on a line."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return _real_text(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    newline = "\n" + "  " * (depth + 1) if pretty else ""
    if isinstance(value, dict):
        colon = ": " if pretty else ":"
        members = [
            f"{json_text(k)}{colon}{json_text(v, pretty, depth + 1)}"
            for k, v in sorted(value.items())
        ]
        return "{" + newline + ("," + newline).join(members) + "}"
    items = [json_text(v, pretty, depth + 1) for v in value]
    return "[" + (newline if items else "") + ("," + newline).join(items) + "]"


def _html_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _html_cell(element: str, content: str) -> str:
    """A cell whose UUIDs become links to the rows they name (table_print_html_cell__)."""
    out = [f"    <{element}>"]
    p = 0
    while p < len(content):
        if is_uuid(content[p : p + 36]):
            out.append(f'<a href="#{content[p : p + 36]}">{content[p : p + 8]}</a>')
            p += 36
        else:
            out.append(_html_escape(content[p]))
            p += 1
    out.append(f"</{element}>\n")
    return "".join(out)


def _csv_cell(text: str) -> str:
    if not any(c in text for c in '\n",'):
        return text
    return '"' + text.replace('"', '""') + '"'


def _width(text: str) -> int:
    # lib/table.c measures and pads cells in bytes.
    return len(text.encode())


def _pad(text: str, width: int) -> str:
    raw = text.encode()[:width]
    return raw.decode(errors="replace") + " " * (width - len(raw))


class Style:
    """--format, --data, --no-headings, --pretty, --max-column-width (lib/table.c)."""

    def __init__(self) -> None:
        self.format = "list"
        self.data = "string"
        self.headings = True
        self.pretty = False
        self.max_column_width = 0
        # table, list and csv output put a blank line between two tables.
        self.printed: dict[str, int] = {}

    def cell(self, ctype: CType, datum: Datum) -> str:
        if self.data == "json":
            return json_text(datum_to_json(ctype, datum))
        if self.data == "bare":
            return datum_to_bare(ctype, datum)
        return datum_to_string(ctype, datum)

    def render(self, table: OutTable) -> str:
        n = self.printed.get(self.format, 0)
        self.printed[self.format] = n + 1
        separator = "\n" if n and self.format in ("list", "table", "csv") else ""
        if self.format == "json":
            return self._json(table)
        texts = [[self.cell(t, d) for t, d in row] for row in table.rows]
        if self.format == "html":
            return self._html(table, texts)
        if self.format == "csv":
            return separator + self._csv(table, texts)
        if self.format == "table":
            return separator + self._table(table, texts)
        return separator + self._list(table, texts)

    def _list(self, table: OutTable, texts: list[list[str]]) -> str:
        out: list[str] = []
        for y, row in enumerate(texts):
            if y:
                out.append("\n")
            for heading, text in zip(table.headings, row, strict=True):
                out.append(f"{heading:<20}: {text}\n" if self.headings else f"{text}\n")
        return "".join(out)

    def _table(self, table: OutTable, texts: list[list[str]]) -> str:
        widths = []
        for x, heading in enumerate(table.headings):
            w = max((_width(row[x]) for row in texts), default=0)
            if 0 < self.max_column_width < w:
                w = self.max_column_width
            widths.append(max(w, _width(heading)) if self.headings else w)
        lines: list[str] = []
        if self.headings:
            lines.append(" ".join(_pad(h, w) for h, w in zip(table.headings, widths, strict=True)))
            lines.append(" ".join("-" * w for w in widths))
        lines.extend(
            " ".join(_pad(t, w) for t, w in zip(row, widths, strict=True)) for row in texts
        )
        return "".join(line.rstrip(" ") + "\n" for line in lines)

    def _csv(self, table: OutTable, texts: list[list[str]]) -> str:
        rows = [table.headings, *texts] if self.headings else texts
        return "".join(",".join(_csv_cell(t) for t in row) + "\n" for row in rows)

    def _html(self, table: OutTable, texts: list[list[str]]) -> str:
        out = ["<table border=1>\n"]
        if self.headings:
            out.append("  <tr>\n")
            out.extend(_html_cell("th", h) for h in table.headings)
            out.append("  </tr>\n")
        for row in texts:
            out.append("  <tr>\n")
            for heading, text in zip(table.headings, row, strict=True):
                if heading == "_uuid":
                    name = _html_escape(text)
                    out.append(f'    <td><a name="{name}">{_html_escape(text[:8])}</a></td>\n')
                else:
                    out.append(_html_cell("td", text))
            out.append("  </tr>\n")
        out.append("</table>\n")
        return "".join(out)

    def _json(self, table: OutTable) -> str:
        data = [[datum_to_json(t, d) for t, d in row] for row in table.rows]
        document = {"data": data, "headings": table.headings}
        return json_text(document, self.pretty) + "\n"


# -- the commands ---------------------------------------------------------------------------

INT_MAX = 2**31 - 1
# name: (min args, max args, options as ovs-vsctl declares them)
COMMANDS: dict[str, tuple[int, int, str]] = {
    "init": (0, 0, ""),
    "show": (0, 0, ""),
    "emer-reset": (0, 0, ""),
    "add-br": (1, 3, "--may-exist"),
    "del-br": (1, 1, "--if-exists"),
    "list-br": (0, 0, "--real,--fake"),
    "br-exists": (1, 1, ""),
    "br-to-vlan": (1, 1, ""),
    "br-to-parent": (1, 1, ""),
    "br-set-external-id": (2, 3, ""),
    "br-get-external-id": (1, 2, ""),
    "list-ports": (1, 1, ""),
    "add-port": (2, INT_MAX, "--may-exist"),
    "add-bond": (4, INT_MAX, "--may-exist,--fake-iface"),
    "add-bond-iface": (2, 2, "--may-exist"),
    "del-bond-iface": (1, 2, "--if-exists"),
    "del-port": (1, 2, "--if-exists,--with-iface"),
    "port-to-br": (1, 1, ""),
    "list-ifaces": (1, 1, ""),
    "iface-to-br": (1, 1, ""),
    "get-controller": (1, 1, ""),
    "del-controller": (1, 1, ""),
    "set-controller": (1, INT_MAX, "--inactivity-probe="),
    "get-fail-mode": (1, 1, ""),
    "del-fail-mode": (1, 1, ""),
    "set-fail-mode": (2, 2, ""),
    "get-manager": (0, 0, ""),
    "del-manager": (0, 0, ""),
    "set-manager": (1, INT_MAX, "--inactivity-probe="),
    "get-ssl": (0, 0, ""),
    "del-ssl": (0, 0, ""),
    "set-ssl": (3, 3, "--bootstrap"),
    "comment": (0, INT_MAX, ""),
    "get": (2, INT_MAX, "--if-exists,--id="),
    "list": (1, INT_MAX, "--if-exists,--columns="),
    "find": (1, INT_MAX, "--columns="),
    "set": (3, INT_MAX, "--if-exists"),
    "add": (4, INT_MAX, "--if-exists"),
    "remove": (4, INT_MAX, "--if-exists"),
    "clear": (3, INT_MAX, "--if-exists"),
    "create": (2, INT_MAX, "--id="),
    "destroy": (1, INT_MAX, "--if-exists,--all"),
    "wait-until": (2, INT_MAX, ""),
}
COMMAND_OPTIONS = {
    opt.rstrip("=") for _, _, options in COMMANDS.values() for opt in options.split(",") if opt
}
COMMAND_OPTIONS_WITH_ARG = {
    opt.rstrip("=")
    for _, _, options in COMMANDS.values()
    for opt in options.split(",")
    if opt.endswith("=")
}

# How records are named on the command line (ovs-vsctl.c's ctl_table_class):
# table -> (table to look the name up in, its name column, column holding the row).
ROW_IDS: dict[str, list[tuple[str, str | None, str | None]]] = {
    "Bridge": [("Bridge", "name", None)],
    "Controller": [("Bridge", "name", "controller")],
    "Interface": [("Interface", "name", None)],
    "Mirror": [("Mirror", "name", None)],
    "Manager": [("Manager", "target", None)],
    "NetFlow": [("Bridge", "name", "netflow")],
    "Open_vSwitch": [("Open_vSwitch", None, None)],
    "Port": [("Port", "name", None)],
    "QoS": [("Port", "name", "qos")],
    "SSL": [("Open_vSwitch", None, "ssl")],
    "sFlow": [("Bridge", "name", "sflow")],
    "Flow_Table": [("Flow_Table", "name", None)],
    "IPFIX": [("Bridge", "name", "ipfix")],
    "AutoAttach": [("Bridge", "name", "auto_attach")],
    "Flow_Sample_Collector_Set": [("Flow_Sample_Collector_Set", "id", None)],
}

# ovs-vsctl's cmd_show_tables: table -> (name column, columns shown).
SHOW: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "Open_vSwitch": (None, ("manager_options", "bridges", "ovs_version")),
    "Bridge": ("name", ("controller", "fail_mode", "datapath_type", "ports")),
    "Port": ("name", ("tag", "trunks", "interfaces")),
    "Interface": ("name", ("type", "options", "error")),
    "Controller": ("target", ("is_connected",)),
    "Manager": ("target", ("is_connected",)),
}


class Command:
    """One command of the chain: its options, name and arguments."""

    def __init__(self, options: dict[str, str | None], argv: list[str]) -> None:
        self.options = options
        self.argv = argv
        self.name = argv[0]
        self.output: str | OutTable = ""


Row = dict[str, Datum]


class VBridge:
    """A bridge as ovs-vsctl sees it: a Bridge row, or a VLAN ("fake") bridge.

    A fake bridge is a Port of its parent with ``fake_bridge=true`` and a
    ``tag``; ports with the same tag on the parent belong to it.
    """

    __slots__ = ("children", "name", "parent", "ports", "uuid", "vlan")

    def __init__(self, name: str, uuid: str | None, parent: VBridge | None, vlan: int) -> None:
        self.name = name
        self.uuid = uuid  # the Bridge row; None for a fake bridge
        self.parent = parent
        self.vlan = vlan
        self.ports: list[VPort] = []
        self.children: dict[int, VBridge] = {}  # fake bridges by VLAN

    @property
    def real(self) -> VBridge:
        """The bridge itself, or a fake bridge's parent."""
        return self.parent if self.parent is not None else self

    @property
    def row(self) -> str:
        """The Bridge row whose ``ports`` hold this bridge's ports."""
        u = self.real.uuid
        assert u is not None
        return u


class VPort:
    """A Port row on a (real or fake) bridge."""

    __slots__ = ("bridge", "ifaces", "name", "uuid")

    def __init__(self, name: str, uuid: str, bridge: VBridge) -> None:
        self.name = name
        self.uuid = uuid
        self.bridge = bridge
        self.ifaces: list[VIface] = []


class VIface:
    """An Interface row of a port."""

    __slots__ = ("name", "port", "uuid")

    def __init__(self, name: str, uuid: str, port: VPort) -> None:
        self.name = name
        self.uuid = uuid
        self.port = port


def _fake_bridge_vlan(port: Row) -> int | None:
    """port_is_fake_bridge(): the VLAN of a port that stands for a fake bridge."""
    tag = port["tag"]
    if port["fake_bridge"] == (True,) and tag and 0 <= int(tag[0]) <= 4095:
        return int(tag[0])
    return None


class Cache:
    """vsctl_context_populate_cache(): the names ovs-vsctl's commands work with.

    Where the database holds duplicate names (which its indexes forbid, or a
    port listed by two bridges), the first one met wins, as in ovs-vsctl.
    """

    def __init__(self, ctx: Context) -> None:
        self.bridges: dict[str, VBridge] = {}
        self.ports: dict[str, VPort] = {}
        self.ifaces: dict[str, VIface] = {}
        roots = ctx.rows.get("Open_vSwitch", {})
        if not roots:
            return
        br_rows = ctx.rows.get("Bridge", {})
        port_rows = ctx.rows.get("Port", {})
        bridges = [
            (bu, br_rows[bu], str(br_rows[bu]["name"][0]))
            for bu in roots[min(roots)]["bridges"]
            if bu in br_rows
        ]
        # First the bridges, real and fake, so that ports can find their VLAN bridge.
        seen_ports: set[str] = set()
        for bu, row, name in bridges:
            if name in self.bridges:
                continue
            parent = self._add_bridge(name, bu, None, 0)
            for pu in row["ports"]:
                port = port_rows.get(pu)
                if port is None or port["name"][0] in seen_ports:
                    continue
                seen_ports.add(port["name"][0])
                vlan = _fake_bridge_vlan(port)
                if vlan is not None and port["name"][0] not in self.bridges:
                    self._add_bridge(str(port["name"][0]), None, parent, vlan)
        for bu, row, name in bridges:
            bridge = self.bridges[name]
            if bridge.uuid != bu:
                continue
            for pu in row["ports"]:
                port = port_rows.get(pu)
                if port is not None and port["name"][0] not in self.ports:
                    self._add_port(ctx, bridge, pu, port)

    def _add_bridge(
        self, name: str, uuid: str | None, parent: VBridge | None, vlan: int
    ) -> VBridge:
        bridge = VBridge(name, uuid, parent, vlan)
        # A second fake bridge for the same VLAN is a bridge, but owns no ports.
        if parent is not None and vlan not in parent.children:
            parent.children[vlan] = bridge
        self.bridges[name] = bridge
        return bridge

    def _add_port(self, ctx: Context, bridge: VBridge, pu: str, port: Row) -> None:
        name = str(port["name"][0])
        vlan = _fake_bridge_vlan(port)
        if vlan is not None and self.bridges[name].parent is not bridge:
            return  # a fake bridge whose name another bridge took
        tag = port["tag"]
        if tag and 0 <= int(tag[0]) <= 4095:
            bridge = bridge.children.get(int(tag[0]), bridge)
        vport = VPort(name, pu, bridge)
        bridge.ports.append(vport)
        self.ports[name] = vport
        iface_rows = ctx.rows.get("Interface", {})
        for iu in port["interfaces"]:
            iface = iface_rows.get(iu)
            if iface is not None and iface["name"][0] not in self.ifaces:
                viface = VIface(str(iface["name"][0]), iu, vport)
                vport.ifaces.append(viface)
                self.ifaces[viface.name] = viface


class Context:
    """The database replica, the pending changes and the symbol table of one attempt."""

    def __init__(self, schema: dict[str, Table], rows: dict[str, dict[str, Row]]) -> None:
        self.schema = schema
        self.rows = rows
        self.symtab = Symtab()
        self.inserted: dict[str, str] = {}  # placeholder uuid -> table
        self.deleted: dict[str, str] = {}  # uuid -> table (existing rows)
        self.written: dict[tuple[str, str], set[str]] = {}
        self.original: dict[tuple[str, str], Row] = {}
        self.mutations: list[dict[str, Any]] = []
        self.last = False  # running the chain's last command
        self._cache: Cache | None = None  # forgotten at every change
        # Interfaces this chain creates, checked once the switch has applied it.
        self.expected_ifaces: list[str] = []

    # -- rows ----------------------------------------------------------------------

    def table(self, name: str) -> Table:
        matches = Chooser.best(list(self.schema), name)
        if not matches:
            raise VsctlError(f'unknown table "{name}"')
        if len(matches) > 1:
            raise VsctlError(f'"{name}" matches multiple table names: {", ".join(matches)}')
        return self.schema[matches[0]]

    def column(self, table: Table, name: str) -> Column:
        matches = Chooser.best(list(table.columns), name)
        if not matches:
            raise VsctlError(f'{table.name} does not contain a column whose name matches "{name}"')
        if len(matches) > 1:
            raise VsctlError(
                f"{table.name} contains more than one column whose name matches "
                f'"{name}": {", ".join(matches)}'
            )
        return table.columns[matches[0]]

    def insert(self, table: str, uuid: str | None = None) -> str:
        u = uuid or new_uuid()
        self._cache = None
        self.rows.setdefault(table, {})[u] = {
            c.name: default_datum(c.type) for c in self.schema[table].columns.values()
        }
        self.inserted[u] = table
        return u

    def write(self, table: str, u: str, column: str, datum: Datum) -> None:
        row = self.rows[table][u]
        if u not in self.inserted:
            self.original.setdefault((table, u), dict(row))
        self._cache = None
        row[column] = datum
        self.written.setdefault((table, u), set()).add(column)

    def delete(self, table: str, u: str) -> None:
        if self.rows.get(table, {}).pop(u, None) is None:
            return
        self._cache = None
        if u in self.inserted:
            del self.inserted[u]
        else:
            self.deleted[u] = table
        self.written.pop((table, u), None)

    def get_row(self, table: Table, record: str, must_exist: bool) -> str | None:
        """ctl_get_row(): by UUID, by name (ROW_IDS), "." for singletons, UUID prefix."""
        rows = self.rows.get(table.name, {})
        found: str | None = record.lower() if is_uuid(record) else None
        if found is not None and found not in rows:
            found = None
        if found is None:
            for id_table, name_column, uuid_column in ROW_IDS.get(table.name, []):
                found = self._row_by_id(table, id_table, name_column, uuid_column, record)
                if found is not None:
                    break
        if found is None and _partial_uuid_length(record) >= 4:
            prefix = record.lower()
            for u in sorted(rows):
                if u.startswith(prefix):
                    if found is not None:
                        raise VsctlError(
                            f"{table.name} contains 2 or more rows whose UUIDs begin with "
                            f"{record}: at least {found} and {u}"
                        )
                    found = u
        if found is None and must_exist:
            raise VsctlError(f'no row "{record}" in table {table.name}')
        return found

    def _row_by_id(
        self,
        table: Table,
        id_table: str,
        name_column: str | None,
        uuid_column: str | None,
        record: str,
    ) -> str | None:
        candidates = self.rows.get(id_table, {})
        referrer: str | None = None
        if name_column is None:
            if record != "." or len(candidates) != 1:
                return None
            referrer = next(iter(candidates))
        else:
            for u in sorted(candidates):
                if candidates[u].get(name_column) == (record,):
                    if referrer is not None:
                        raise VsctlError(f'multiple rows in {table.name} match "{record}"')
                    referrer = u
        if referrer is None:
            return None
        if uuid_column is None:
            return referrer
        value = candidates[referrer][uuid_column]
        if len(value) == 1 and value[0] in self.rows.get(table.name, {}):
            return str(value[0])
        return None

    def ovs(self) -> str:
        """The Open_vSwitch row, inserted if the database has none (as ovs-vsctl does)."""
        rows = self.rows.setdefault("Open_vSwitch", {})
        if not rows:
            return self.insert("Open_vSwitch")
        return min(rows)

    # -- the bridge/port/interface view (vsctl_context_populate_cache) -----------------

    def cache(self) -> Cache:
        """Bridges (real and fake), ports and interfaces by name, as ovs-vsctl sees them."""
        if self._cache is None:
            self._cache = Cache(self)
        return self._cache

    def find_bridge(self, name: str, must_exist: bool) -> VBridge | None:
        bridge = self.cache().bridges.get(name)
        if bridge is None and must_exist:
            raise VsctlError(f"no bridge named {name}")
        return bridge

    def find_real_bridge(self, name: str) -> VBridge:
        bridge = self.find_bridge(name, True)
        assert bridge is not None
        if bridge.parent is not None:
            raise VsctlError(f"{name} is a fake bridge")
        return bridge

    def find_port(self, name: str, must_exist: bool) -> VPort | None:
        port = self.cache().ports.get(name)
        if port is not None and port.bridge.name == name:
            port = None  # a bridge's local port is not a port to these commands
        if port is None and must_exist:
            raise VsctlError(f"no port named {name}")
        return port

    def find_iface(self, name: str, must_exist: bool) -> VIface | None:
        iface = self.cache().ifaces.get(name)
        if iface is not None and iface.port.bridge.name == name:
            iface = None
        if iface is None and must_exist:
            raise VsctlError(f"no interface named {name}")
        return iface

    def check_conflicts(self, name: str, msg: str) -> None:
        cache = self.cache()
        if name in cache.bridges:
            raise VsctlError(f"{msg} because a bridge named {name} already exists")
        if name in cache.ports:
            raise VsctlError(
                f"{msg} because a port named {name} already exists on bridge "
                f"{cache.ports[name].bridge.name}"
            )
        if name in cache.ifaces:
            raise VsctlError(
                f"{msg} because an interface named {name} already exists on bridge "
                f"{cache.ifaces[name].port.bridge.name}"
            )

    def insert_iface(self, name: str) -> str:
        """A new Interface row, which the switch is then expected to set up."""
        iu = self.insert("Interface")
        self.write("Interface", iu, "name", (name,))
        self.expected_ifaces.append(iu)
        return iu

    def add_to_set(self, table: str, u: str, column: str, item: str) -> None:
        old = self.rows[table][u][column]
        self.write(table, u, column, tuple(sorted((*old, item))))

    def remove_from_set(self, table: str, u: str, column: str, item: str) -> None:
        old = self.rows[table][u][column]
        self.write(table, u, column, tuple(x for x in old if x != item))

    def del_port(self, port: VPort) -> None:
        self.remove_from_set("Bridge", port.bridge.row, "ports", port.uuid)
        for iface in port.ifaces:
            self.delete("Interface", iface.uuid)
        self.delete("Port", port.uuid)

    def del_bridge(self, bridge: VBridge) -> None:
        for child in list(bridge.children.values()):
            self.del_bridge(child)
        for port in bridge.ports:
            self.del_port(port)
        if bridge.uuid is None:
            return  # a fake bridge is nothing but its ports
        for fu, fscset in list(self.rows.get("Flow_Sample_Collector_Set", {}).items()):
            if fscset["bridge"] == (bridge.uuid,):
                self.delete("Flow_Sample_Collector_Set", fu)
        self.remove_from_set("Open_vSwitch", self.ovs(), "bridges", bridge.uuid)
        self.delete("Bridge", bridge.uuid)

    # -- setting columns -------------------------------------------------------------

    def set_column(self, table: Table, u: str, arg: str) -> None:
        """Set ``column[:key]=value`` (set_column() in db-ctl-base.c)."""
        column, key, _, value = parse_column_key_value(self, table, arg, ("=",))
        assert value is not None
        self.check_mutable(table, u, column)
        ctype = column.type
        if key is not None:
            if ctype.value is None:
                raise VsctlError(f"cannot specify key to set for non-map column {column.name}")
            k, _ = atom_from_string(ctype.key, key, self.symtab)
            v, _ = atom_from_string(ctype.value, value, self.symtab)
            old = [kv for kv in self.rows[table.name][u][column.name] if kv[0] != k]
            self.write(table.name, u, column.name, sort_datum(ctype, [*old, (k, v)]))
        else:
            datum = datum_from_string(ctype, value, self.symtab)
            self.write(table.name, u, column.name, datum)

    def check_mutable(self, table: Table, u: str, column: Column) -> None:
        if not column.mutable and u not in self.inserted:
            raise VsctlError(f"cannot modify read-only column {column.name} in table {table.name}")

    # -- the transaction -------------------------------------------------------------------

    def uuid_json(self, u: str) -> list[str]:
        if u in self.inserted:
            return ["named-uuid", "row" + u.replace("-", "_")]
        return ["uuid", u]

    def atom_json(self, base: Base, atom: Atom) -> Any:
        return self.uuid_json(str(atom)) if base.type == "uuid" else atom

    def datum_json(self, ctype: CType, datum: Datum) -> Any:
        if ctype.value is not None:
            vbase = ctype.value
            return [
                "map",
                [[self.atom_json(ctype.key, k), self.atom_json(vbase, v)] for k, v in datum],
            ]
        if len(datum) == 1:
            return self.atom_json(ctype.key, datum[0])
        return ["set", [self.atom_json(ctype.key, a) for a in datum]]

    def operations(self, db: str, comment: str) -> list[Any]:
        """The transaction: checks of what we read, then inserts, updates, deletes."""
        ops: list[Any] = [db]
        for (tname, u), columns in sorted(self.written.items()):
            if u in self.inserted:
                continue
            table = self.schema[tname]
            cols = sorted(columns)
            original = self.original[(tname, u)]
            # Fail (and retry) if anyone changed what we based the new values on.
            ops.append(
                {
                    "op": "wait",
                    "timeout": 0,
                    "table": tname,
                    "where": [["_uuid", "==", ["uuid", u]]],
                    "columns": cols,
                    "until": "==",
                    "rows": [
                        {c: self.datum_json(table.columns[c].type, original[c]) for c in cols}
                    ],
                }
            )
        for u, tname in self.inserted.items():
            table = self.schema[tname]
            row = self.rows[tname][u]
            ops.append(
                {
                    "op": "insert",
                    "table": tname,
                    "uuid-name": "row" + u.replace("-", "_"),
                    "row": {
                        c: self.datum_json(table.columns[c].type, row[c])
                        for c in sorted(self.written.get((tname, u), set()))
                    },
                }
            )
        for (tname, u), columns in sorted(self.written.items()):
            if u in self.inserted:
                continue
            table = self.schema[tname]
            row = self.rows[tname][u]
            ops.append(
                {
                    "op": "update",
                    "table": tname,
                    "where": [["_uuid", "==", ["uuid", u]]],
                    "row": {c: self.datum_json(table.columns[c].type, row[c]) for c in columns},
                }
            )
        for u, tname in sorted(self.deleted.items()):
            # As Open vSwitch's IDL does: rows of non-root tables are left to
            # the server's garbage collection, which deletes them once nothing
            # refers to them (and keeps them if something still does).
            if self.schema[tname].is_root:
                ops.append(
                    {"op": "delete", "table": tname, "where": [["_uuid", "==", ["uuid", u]]]}
                )
        ops.extend(self.mutations)
        if len(ops) > 1:
            ops.append({"op": "comment", "comment": comment})
        return ops


def _partial_uuid_length(text: str) -> int:
    """uuid_is_partial_string(): how many characters of a UUID prefix ``text`` is."""
    for i, c in enumerate(text):
        if i >= 36:
            return 0
        if i in (8, 13, 18, 23):
            if c != "-":
                return 0
        elif c not in "0123456789abcdefABCDEF":
            return 0
    return len(text)


def parse_column_key_value(
    ctx: Context, table: Table, arg: str, operators: tuple[str, ...] | None
) -> tuple[Column, str | None, int, str | None]:
    """Split ``column[:key]OPvalue`` (parse_column_key_value() in db-ctl-base.c)."""
    name, p = token_parse(arg, 0)
    if not name:
        raise VsctlError(f"{arg}: missing column name")
    column = ctx.column(table, name)
    key: str | None = None
    if p < len(arg) and arg[p] == ":":
        key, p = token_parse(arg, p + 1)
    if operators is None:
        if p < len(arg):
            raise VsctlError(f'{arg}: trailing garbage "{arg[p:]}" in argument')
        return column, key, -1, None
    best, best_len = -1, 0
    for i, op in enumerate(operators):
        if len(op) > best_len and arg.startswith(op, p) and len(arg) > p + len(op):
            best, best_len = i, len(op)
    if best < 0:
        quoted = [f'"{op}"' for op in operators]
        if len(quoted) == 1:
            ops = quoted[0]
        elif len(quoted) == 2:
            ops = f"{quoted[0]} or {quoted[1]}"
        else:
            ops = ", ".join(quoted[:-1]) + f", or {quoted[-1]}"
        raise VsctlError(f"{arg}: argument does not end in {ops} followed by a value.")
    return column, key, best, arg[p + best_len :]


# -- command implementations ----------------------------------------------------------------


def _opt(cmd: Command, name: str) -> bool:
    return name in cmd.options


def cmd_init(ctx: Context, cmd: Command) -> None:
    """Nothing to do: the Open_vSwitch row is created for every chain that lacks one."""


def cmd_show(ctx: Context, cmd: Command) -> None:
    out: list[str] = []
    shown: set[str] = set()

    def show_row(tname: str, u: str, level: int) -> None:
        name_column, columns = SHOW[tname]
        row = ctx.rows[tname][u]
        table = ctx.schema[tname]
        indent = " " * (level * 4)
        if name_column is not None:
            name_type = table.columns[name_column].type
            out.append(f"{indent}{tname} {datum_to_string(name_type, row[name_column])}\n")
        else:
            out.append(f"{indent}{u}\n")
        if tname in shown:
            return
        shown.add(tname)
        for cname in columns:
            column = table.columns.get(cname)
            if column is None:
                continue
            ctype, datum = column.type, row[cname]
            ref = ctype.key.ref_table
            if ctype.key.type == "uuid" and ref is not None and ref in SHOW:
                for target in datum:
                    if target in ctx.rows.get(ref, {}):
                        show_row(ref, target, level + 1)
                continue
            if datum != default_datum(ctype):
                out.append(f"{indent}    {cname}: {datum_to_string(ctype, datum)}\n")
        shown.discard(tname)

    for u in sorted(ctx.rows.get("Open_vSwitch", {})):
        show_row("Open_vSwitch", u, 0)
    cmd.output = "".join(out)


def _atoi(text: str, bits: int = 32) -> int:
    """C's atoi() (or atoll() with 64 bits): the leading number, 0 if none.

    Like glibc, the value saturates at the limits of a long and is then cut
    to ``bits`` bits, so that out-of-range input gives what ovs-vsctl gets.
    """
    t = text.lstrip(" \t\n\v\f\r")
    sign = -1 if t[:1] == "-" else 1
    t = t[1:] if t[:1] in "+-" else t
    end = next((i for i, c in enumerate(t) if not "0" <= c <= "9"), len(t))
    value: int = sign * int(t[:end] or "0")
    value = max(-(1 << 63), min((1 << 63) - 1, value)) & ((1 << bits) - 1)
    return value - (1 << bits) if value >> (bits - 1) else value


def _escape_args(words: list[str]) -> str:
    """process_escape_args(): words joined by spaces, quoted where they need it."""
    out = []
    for word in words:
        if any(c in " \t\r\n\v\\'\"" for c in word):
            escaped = word.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{escaped}"')
        else:
            out.append(word)
    return " ".join(out)


def _command_text(cmd: Command) -> str:
    """vsctl_context_to_string(): the command's options and words, as ovs-vsctl quotes them."""
    return _escape_args([*cmd.options, *cmd.argv])


def cmd_add_br(ctx: Context, cmd: Command) -> None:
    br_name = cmd.argv[1]
    parent_name: str | None = None
    vlan = 0
    if len(cmd.argv) == 4:
        parent_name = cmd.argv[2]
        vlan = _atoi(cmd.argv[3])
        if not 0 <= vlan <= 4095:
            raise VsctlError(f"{cmd.name}: vlan must be between 0 and 4095")
    elif len(cmd.argv) != 2:
        raise VsctlError(f"'{cmd.name}' command takes exactly 1 or 3 arguments")
    if _opt(cmd, "--may-exist"):
        existing = ctx.find_bridge(br_name, False)
        if existing is not None:
            _check_existing_bridge(existing, parent_name, vlan)
            return
    ctx.check_conflicts(br_name, f"cannot create a bridge named {br_name}")
    if parent_name is None:
        _add_real_bridge(ctx, br_name)
        return
    parent = ctx.find_bridge(parent_name, False)
    if parent is not None and parent.parent is not None:
        raise VsctlError("cannot create bridge with fake bridge as parent")
    if parent is None:
        raise VsctlError(f"parent bridge {parent_name} does not exist")
    conflict = parent.children.get(vlan)
    if conflict is not None:
        raise VsctlError(
            f"bridge {parent_name} already has a child VLAN bridge {conflict.name} on VLAN {vlan}"
        )
    # A fake bridge is an internal port of its parent, tagged with its VLAN.
    iu = ctx.insert_iface(br_name)
    ctx.write("Interface", iu, "type", ("internal",))
    pu = ctx.insert("Port")
    ctx.write("Port", pu, "name", (br_name,))
    ctx.write("Port", pu, "interfaces", (iu,))
    ctx.write("Port", pu, "fake_bridge", (True,))
    ctx.write("Port", pu, "tag", (vlan,))
    ctx.add_to_set("Bridge", parent.row, "ports", pu)


def _check_existing_bridge(bridge: VBridge, parent_name: str | None, vlan: int) -> None:
    """``--may-exist add-br``: the bridge that exists must be the one asked for."""
    name = bridge.name
    if parent_name is None:
        if bridge.parent is not None:
            raise VsctlError(
                f'"--may-exist add-br {name}" but {name} is a VLAN bridge for VLAN {bridge.vlan}'
            )
        return
    command = f"--may-exist add-br {name} {parent_name} {vlan}"
    if bridge.parent is None:
        raise VsctlError(f'"{command}" but {name} is not a VLAN bridge')
    if bridge.parent.name != parent_name:
        raise VsctlError(f'"{command}" but {name} has the wrong parent {bridge.parent.name}')
    if bridge.vlan != vlan:
        raise VsctlError(
            f'"{command}" but {name} is a VLAN bridge for the wrong VLAN {bridge.vlan}'
        )


def _add_real_bridge(ctx: Context, br_name: str) -> None:
    iu = ctx.insert_iface(br_name)
    ctx.write("Interface", iu, "type", ("internal",))
    pu = ctx.insert("Port")
    ctx.write("Port", pu, "name", (br_name,))
    ctx.write("Port", pu, "interfaces", (iu,))
    bu = ctx.insert("Bridge")
    ctx.write("Bridge", bu, "name", (br_name,))
    ctx.write("Bridge", bu, "ports", (pu,))
    ctx.add_to_set("Open_vSwitch", ctx.ovs(), "bridges", bu)


def cmd_del_br(ctx: Context, cmd: Command) -> None:
    bridge = ctx.find_bridge(cmd.argv[1], not _opt(cmd, "--if-exists"))
    if bridge is not None:
        ctx.del_bridge(bridge)


def cmd_list_br(ctx: Context, cmd: Command) -> None:
    real, fake = _opt(cmd, "--real"), _opt(cmd, "--fake")
    if not real and not fake:
        real = fake = True
    names = sorted(b.name for b in ctx.cache().bridges.values() if (fake if b.parent else real))
    cmd.output = "".join(f"{n}\n" for n in names)


def cmd_br_exists(ctx: Context, cmd: Command) -> None:
    if ctx.find_bridge(cmd.argv[1], False) is None:
        raise ExitStatus(2)


def _bridge(ctx: Context, name: str) -> VBridge:
    bridge = ctx.find_bridge(name, True)
    assert bridge is not None
    return bridge


def cmd_br_to_vlan(ctx: Context, cmd: Command) -> None:
    cmd.output = f"{_bridge(ctx, cmd.argv[1]).vlan}\n"


def cmd_br_to_parent(ctx: Context, cmd: Command) -> None:
    cmd.output = f"{_bridge(ctx, cmd.argv[1]).real.name}\n"


def _external_ids_holder(ctx: Context, bridge: VBridge) -> tuple[str, str, str]:
    """Where a bridge's external IDs live: (table, row, key prefix).

    A fake bridge has no Bridge row: its IDs are kept in its port's
    ``external_ids`` under ``fake-bridge-KEY``.
    """
    if bridge.uuid is not None:
        return "Bridge", bridge.uuid, ""
    return "Port", ctx.cache().ports[bridge.name].uuid, "fake-bridge-"


def cmd_br_set_external_id(ctx: Context, cmd: Command) -> None:
    table, u, prefix = _external_ids_holder(ctx, _bridge(ctx, cmd.argv[1]))
    key = prefix + cmd.argv[2]
    pairs = [kv for kv in ctx.rows[table][u]["external_ids"] if kv[0] != key]
    if len(cmd.argv) > 3:
        pairs.append((key, cmd.argv[3]))
    ctx.write(table, u, "external_ids", tuple(sorted(pairs)))


def cmd_br_get_external_id(ctx: Context, cmd: Command) -> None:
    table, u, prefix = _external_ids_holder(ctx, _bridge(ctx, cmd.argv[1]))
    pairs = ctx.rows[table][u]["external_ids"]
    if len(cmd.argv) > 2:
        values = [v for k, v in pairs if k == prefix + cmd.argv[2]]
        cmd.output = "".join(f"{v}\n" for v in values)
    else:
        cmd.output = "".join(f"{k[len(prefix) :]}={v}\n" for k, v in pairs if k.startswith(prefix))


def cmd_list_ports(ctx: Context, cmd: Command) -> None:
    bridge = _bridge(ctx, cmd.argv[1])
    names = sorted(p.name for p in bridge.ports if p.name != bridge.name)
    cmd.output = "".join(f"{n}\n" for n in names)


def cmd_list_ifaces(ctx: Context, cmd: Command) -> None:
    bridge = _bridge(ctx, cmd.argv[1])
    names = sorted(i.name for p in bridge.ports for i in p.ifaces if i.name != bridge.name)
    cmd.output = "".join(f"{n}\n" for n in names)


def _add_port(
    ctx: Context,
    cmd: Command,
    port_name: str,
    iface_names: list[str],
    settings: list[str],
    fake_iface: bool,
) -> None:
    """add_port() in ovs-vsctl: a port with one interface, or a bond with several."""
    br_name = cmd.argv[1]
    if _opt(cmd, "--may-exist"):
        existing = ctx.find_port(port_name, False)
        if existing is not None:
            if existing.bridge.name != br_name:
                raise VsctlError(
                    f'"{_command_text(cmd)}" but {port_name} is actually attached to bridge '
                    f"{existing.bridge.name}"
                )
            interfaces = ctx.rows["Port"][existing.uuid]["interfaces"]
            have = sorted(str(ctx.rows["Interface"][i]["name"][0]) for i in interfaces)
            if have != sorted(iface_names):
                raise VsctlError(
                    f'"{_command_text(cmd)}" but {port_name} actually has interface(s) '
                    f"{', '.join(have)}"
                )
            return
    ctx.check_conflicts(port_name, f"cannot create a port named {port_name}")
    for name in iface_names:
        ctx.check_conflicts(name, f"cannot create an interface named {name}")
    bridge = _bridge(ctx, br_name)
    ifaces = tuple(ctx.insert_iface(name) for name in iface_names)
    pu = ctx.insert("Port")
    ctx.write("Port", pu, "name", (port_name,))
    ctx.write("Port", pu, "interfaces", tuple(sorted(ifaces)))
    ctx.write("Port", pu, "bond_fake_iface", (fake_iface,))
    if bridge.parent is not None:
        ctx.write("Port", pu, "tag", (bridge.vlan,))
    port_table = ctx.schema["Port"]
    for setting in settings:
        ctx.set_column(port_table, pu, setting)
    ctx.add_to_set("Bridge", bridge.row, "ports", pu)


def cmd_add_port(ctx: Context, cmd: Command) -> None:
    _add_port(ctx, cmd, cmd.argv[2], [cmd.argv[2]], cmd.argv[3:], fake_iface=False)


def cmd_add_bond(ctx: Context, cmd: Command) -> None:
    # The interfaces are the arguments up to the first COLUMN=VALUE setting.
    args = cmd.argv[3:]
    n_ifaces = next((i for i, a in enumerate(args) if "=" in a), len(args))
    if n_ifaces < 2:
        raise VsctlError(
            f"add-bond requires at least 2 interfaces, but only {n_ifaces} were specified"
        )
    _add_port(
        ctx,
        cmd,
        cmd.argv[2],
        args[:n_ifaces],
        args[n_ifaces:],
        fake_iface=_opt(cmd, "--fake-iface"),
    )


def _port(ctx: Context, name: str) -> VPort:
    port = ctx.find_port(name, True)
    assert port is not None
    return port


def cmd_add_bond_iface(ctx: Context, cmd: Command) -> None:
    port = _port(ctx, cmd.argv[1])
    iface_name = cmd.argv[2]
    if _opt(cmd, "--may-exist"):
        iface = ctx.find_iface(iface_name, False)
        if iface is not None:
            if iface.port.uuid == port.uuid:
                return
            raise VsctlError(
                f'"{_command_text(cmd)}" but {iface_name} is actually attached to port '
                f"{iface.port.name}"
            )
    ctx.check_conflicts(iface_name, f"cannot create an interface named {iface_name}")
    ctx.add_to_set("Port", port.uuid, "interfaces", ctx.insert_iface(iface_name))


def cmd_del_bond_iface(ctx: Context, cmd: Command) -> None:
    iface_name = cmd.argv[-1]
    iface = ctx.find_iface(iface_name, not _opt(cmd, "--if-exists"))
    if iface is None:
        return
    if len(cmd.argv) > 2:
        port = _port(ctx, cmd.argv[1])
        if iface.port.uuid != port.uuid:
            raise VsctlError(f"port {cmd.argv[1]} does not have an interface {iface_name}")
    if len(iface.port.ifaces) < 2:
        raise VsctlError(f"cannot delete last interface from port {iface.port.name}")
    ctx.remove_from_set("Port", iface.port.uuid, "interfaces", iface.uuid)
    ctx.delete("Interface", iface.uuid)


def cmd_del_port(ctx: Context, cmd: Command) -> None:
    must_exist = not _opt(cmd, "--if-exists")
    target = cmd.argv[-1]
    port: VPort | None
    if ctx.find_bridge(target, False) is not None:
        if must_exist:
            raise VsctlError(
                f"cannot delete port {target} because it is the local port for bridge "
                f"{target} (deleting this port requires deleting the entire bridge)"
            )
        port = None
    elif not _opt(cmd, "--with-iface"):
        port = ctx.find_port(target, must_exist)
    else:
        port = ctx.find_port(target, False)
        if port is None:
            iface = ctx.find_iface(target, False)
            port = iface.port if iface is not None else None
        if must_exist and port is None:
            raise VsctlError(f"no port or interface named {target}")
    if port is None:
        return
    if len(cmd.argv) == 3:
        bridge = _bridge(ctx, cmd.argv[1])
        if port.bridge is not bridge:
            if port.bridge.parent is bridge:
                raise VsctlError(
                    f"bridge {cmd.argv[1]} does not have a port {cmd.argv[2]} (although "
                    f"its child bridge {port.bridge.name} does)"
                )
            raise VsctlError(f"bridge {cmd.argv[1]} does not have a port {cmd.argv[2]}")
    ctx.del_port(port)


def cmd_port_to_br(ctx: Context, cmd: Command) -> None:
    cmd.output = f"{_port(ctx, cmd.argv[1]).bridge.name}\n"


def cmd_iface_to_br(ctx: Context, cmd: Command) -> None:
    iface = ctx.find_iface(cmd.argv[1], True)
    assert iface is not None
    cmd.output = f"{iface.port.bridge.name}\n"


# -- controllers, managers, SSL ------------------------------------------------------------

# Connection methods Open vSwitch knows (vconn/stream classes, active and passive).
TARGET_TYPES = ("tcp", "unix", "ssl", "ptcp", "punix", "pssl")


def _check_target(target: str) -> None:
    """Warn, as ovs-vsctl does, about a target whose method it does not know."""
    method, colon, _ = target.partition(":")
    if not colon or method not in TARGET_TYPES:
        warn(f'target type "{target}" is possibly erroneous')


def _insert_targets(ctx: Context, cmd: Command, table: str, targets: list[str]) -> tuple[str, ...]:
    """New Controller or Manager rows for ``targets`` (with ``--inactivity-probe``)."""
    probe = cmd.options.get("--inactivity-probe")
    rows = []
    for target in targets:
        _check_target(target)
        u = ctx.insert(table)
        ctx.write(table, u, "target", (target,))
        if probe is not None:
            ctx.write(table, u, "inactivity_probe", (_atoi(probe, 64),))
        rows.append(u)
    return tuple(sorted(rows))


def _controllers(ctx: Context, bridge: VBridge) -> tuple[str, ...]:
    return tuple(ctx.rows["Bridge"][bridge.row]["controller"])


def _targets(ctx: Context, table: str, rows: tuple[str, ...]) -> list[str]:
    return sorted(str(ctx.rows[table][u]["target"][0]) for u in rows if u in ctx.rows[table])


def cmd_get_controller(ctx: Context, cmd: Command) -> None:
    bridge = _bridge(ctx, cmd.argv[1])
    cmd.output = "".join(f"{t}\n" for t in _targets(ctx, "Controller", _controllers(ctx, bridge)))


def cmd_del_controller(ctx: Context, cmd: Command) -> None:
    bridge = ctx.find_real_bridge(cmd.argv[1])
    controllers = _controllers(ctx, bridge)
    if controllers:
        for u in controllers:
            ctx.delete("Controller", u)
        ctx.write("Bridge", bridge.row, "controller", ())


def cmd_set_controller(ctx: Context, cmd: Command) -> None:
    bridge = ctx.find_real_bridge(cmd.argv[1])
    for u in _controllers(ctx, bridge):
        ctx.delete("Controller", u)
    rows = _insert_targets(ctx, cmd, "Controller", cmd.argv[2:])
    ctx.write("Bridge", bridge.row, "controller", rows)


def cmd_get_fail_mode(ctx: Context, cmd: Command) -> None:
    mode = ctx.rows["Bridge"][_bridge(ctx, cmd.argv[1]).row]["fail_mode"]
    cmd.output = f"{mode[0]}\n" if mode and mode[0] else ""


def cmd_del_fail_mode(ctx: Context, cmd: Command) -> None:
    ctx.write("Bridge", ctx.find_real_bridge(cmd.argv[1]).row, "fail_mode", ())


def cmd_set_fail_mode(ctx: Context, cmd: Command) -> None:
    bridge = ctx.find_real_bridge(cmd.argv[1])
    mode = cmd.argv[2]
    if mode not in ("standalone", "secure"):
        raise VsctlError('fail-mode must be "standalone" or "secure"')
    ctx.write("Bridge", bridge.row, "fail_mode", (mode,))


def _del_managers(ctx: Context) -> None:
    ovs = ctx.ovs()
    for u in ctx.rows["Open_vSwitch"][ovs]["manager_options"]:
        ctx.delete("Manager", u)
    ctx.write("Open_vSwitch", ovs, "manager_options", ())


def cmd_get_manager(ctx: Context, cmd: Command) -> None:
    managers = tuple(ctx.rows["Open_vSwitch"][ctx.ovs()]["manager_options"])
    # Unlike get-controller, ovs-vsctl prints each manager target once.
    cmd.output = "".join(f"{t}\n" for t in sorted(set(_targets(ctx, "Manager", managers))))


def cmd_del_manager(ctx: Context, _cmd: Command) -> None:
    _del_managers(ctx)


def cmd_set_manager(ctx: Context, cmd: Command) -> None:
    _del_managers(ctx)
    rows = _insert_targets(ctx, cmd, "Manager", cmd.argv[1:])
    ctx.write("Open_vSwitch", ctx.ovs(), "manager_options", rows)


def cmd_get_ssl(ctx: Context, cmd: Command) -> None:
    ssl = ctx.rows["Open_vSwitch"][ctx.ovs()]["ssl"]
    if not ssl or ssl[0] not in ctx.rows.get("SSL", {}):
        return
    row = ctx.rows["SSL"][ssl[0]]
    bootstrap = "true" if row["bootstrap_ca_cert"] == (True,) else "false"
    cmd.output = (
        f"Private key: {row['private_key'][0]}\n"
        f"Certificate: {row['certificate'][0]}\n"
        f"CA Certificate: {row['ca_cert'][0]}\n"
        f"Bootstrap: {bootstrap}\n"
    )


def cmd_del_ssl(ctx: Context, _cmd: Command) -> None:
    ovs = ctx.ovs()
    ssl = ctx.rows["Open_vSwitch"][ovs]["ssl"]
    if ssl:
        ctx.delete("SSL", ssl[0])
        ctx.write("Open_vSwitch", ovs, "ssl", ())


def cmd_set_ssl(ctx: Context, cmd: Command) -> None:
    ovs = ctx.ovs()
    old = ctx.rows["Open_vSwitch"][ovs]["ssl"]
    if old:
        ctx.delete("SSL", old[0])
    u = ctx.insert("SSL")
    for column, value in zip(("private_key", "certificate", "ca_cert"), cmd.argv[1:], strict=True):
        ctx.write("SSL", u, column, (value,))
    ctx.write("SSL", u, "bootstrap_ca_cert", (_opt(cmd, "--bootstrap"),))
    ctx.write("Open_vSwitch", ovs, "ssl", (u,))


# emer-reset: the tables whose rows go (each is referenced only from a column
# emer-reset clears, so the server collects them too). ovs-vsctl 3.1 also
# names IPFIX and Flow_Sample_Collector_Set, but never reads those tables, so
# their rows stay: a collector set, and the IPFIX row it uses, survive.
EMER_RESET_TABLES = ("Mirror", "Controller", "Manager", "NetFlow", "SSL", "sFlow")
EMER_RESET_BRIDGE_COLUMNS = (
    "controller",
    "fail_mode",
    "mirrors",
    "netflow",
    "sflow",
    "ipfix",
    "flood_vlans",
)


def cmd_emer_reset(ctx: Context, _cmd: Command) -> None:
    """Back to a known good state: no controllers, managers, SSL, mirrors or monitoring."""
    ovs = ctx.ovs()
    ctx.write("Open_vSwitch", ovs, "manager_options", ())
    ctx.write("Open_vSwitch", ovs, "ssl", ())
    for u, row in list(ctx.rows.get("Bridge", {}).items()):
        for column in EMER_RESET_BRIDGE_COLUMNS:
            ctx.write("Bridge", u, column, ())
        # Only the bridge's "hwaddr" survives in other_config.
        kept = tuple(kv for kv in row["other_config"] if kv[0] == "hwaddr")
        ctx.write("Bridge", u, "other_config", kept)
    for u in list(ctx.rows.get("Port", {})):
        ctx.write("Port", u, "other_config", ())
    for u in list(ctx.rows.get("Interface", {})):
        ctx.write("Interface", u, "ingress_policing_rate", (0,))
        ctx.write("Interface", u, "ingress_policing_burst", (0,))
    for table in EMER_RESET_TABLES:
        for u in list(ctx.rows.get(table, {})):
            ctx.delete(table, u)


def cmd_comment(ctx: Context, cmd: Command) -> None:
    """Does nothing: a comment for whoever reads the command line."""


def _create_symbol(ctx: Context, name: str) -> tuple[Symbol, bool]:
    if not name.startswith("@"):
        raise VsctlError(f'row id "{name}" does not begin with "@"')
    new = name not in ctx.symtab
    symbol = ctx.symtab.insert(name)
    if symbol.created:
        raise VsctlError(f'row id "{name}" may only be specified on one --id option')
    symbol.created = True
    return symbol, new


def cmd_get(ctx: Context, cmd: Command) -> None:
    row_id = cmd.options.get("--id")
    must_exist = not _opt(cmd, "--if-exists")
    if row_id is not None and not must_exist:
        raise VsctlError("--if-exists and --id may not be specified together")
    table = ctx.table(cmd.argv[1])
    record = cmd.argv[2]
    u = ctx.get_row(table, record, must_exist)
    if u is None:
        return
    if row_id is not None:
        symbol, new = _create_symbol(ctx, row_id)
        if not new:
            raise VsctlError(
                f'row id "{row_id}" specified on "get" command was used before it was defined'
            )
        symbol.uuid = u
        symbol.strong_ref = True
    out: list[str] = []
    row = ctx.rows[table.name][u]
    for arg in cmd.argv[3:]:
        if arg.lower() in ("_uuid", "-uuid"):
            out.append(f"{u}\n")
            continue
        column, key, _, _ = parse_column_key_value(ctx, table, arg, None)
        ctype, datum = column.type, row[column.name]
        if key is not None:
            if ctype.value is None:
                raise VsctlError(f"cannot specify key to get for non-map column {column.name}")
            k, _ = atom_from_string(ctype.key, key, ctx.symtab)
            values = [v for kk, v in datum if kk == k]
            if not values:
                if must_exist:
                    raise VsctlError(
                        f'no key "{key}" in {table.name} record "{record}" column {column.name}'
                    )
            else:
                out.append(atom_to_string(ctype.value, values[0]))
        else:
            out.append(datum_to_string(ctype, datum))
        out.append("\n")
    cmd.output = "".join(out)


def _columns(ctx: Context, table: Table, names: str | None) -> list[Column | None]:
    """parse_column_names(): None stands for _uuid."""
    if names is None:
        return [None, *table.columns.values()]
    out: list[Column | None] = [
        None if name.lower() == "_uuid" else ctx.column(table, name)
        for name in names.replace(",", " ").split()
    ]
    if not out:
        raise VsctlError("must specify at least one column name")
    return out


def _list_table(columns: list[Column | None]) -> OutTable:
    return OutTable([c.name if c is not None else "_uuid" for c in columns])


def _list_record(
    ctx: Context, table: Table, u: str, columns: list[Column | None], out: OutTable
) -> None:
    row = ctx.rows[table.name][u]
    out.rows.append([(UUID_TYPE, (u,)) if c is None else (c.type, row[c.name]) for c in columns])


def cmd_list(ctx: Context, cmd: Command) -> None:
    table = ctx.table(cmd.argv[1])
    columns = _columns(ctx, table, cmd.options.get("--columns"))
    out = _list_table(columns)
    if len(cmd.argv) > 2:
        for record in cmd.argv[2:]:
            u = ctx.get_row(table, record, not _opt(cmd, "--if-exists"))
            if u is not None:
                _list_record(ctx, table, u, columns, out)
    else:
        for u in sorted(ctx.rows.get(table.name, {})):
            _list_record(ctx, table, u, columns, out)
    cmd.output = out


def _compare(a: Datum, b: Datum) -> int:
    """ovsdb_datum_compare_3way(): by size, then element by element."""
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    for x, y in zip(a, b, strict=True):
        if x != y:
            return -1 if x < y else 1
    return 0


def _includes_all(a: Datum, b: Datum) -> bool:
    return all(x in b for x in a)


def _relop(op: str, a: Datum, b: Datum) -> bool:
    result: bool
    if op in ("=", "{=}"):
        result = _compare(a, b) == 0
    elif op in ("!=", "{!=}"):
        result = _compare(a, b) != 0
    elif op == "<":
        result = _compare(a, b) < 0
    elif op == ">":
        result = _compare(a, b) > 0
    elif op == "<=":
        result = _compare(a, b) <= 0
    elif op == ">=":
        result = _compare(a, b) >= 0
    elif op == "{<}":
        result = len(b) > len(a) and _includes_all(a, b)
    elif op == "{>}":
        result = len(a) > len(b) and _includes_all(b, a)
    elif op in ("{<=}", "{in}"):
        result = _includes_all(a, b)
    elif op == "{>=}":
        result = _includes_all(b, a)
    else:  # {not-in}
        result = not any(x in b for x in a)
    return result


def _condition(ctx: Context, table: Table, u: str, arg: str) -> bool:
    """check_condition(): ``column[:key]OPvalue`` against one row."""
    column, key, op_index, value = parse_column_key_value(ctx, table, arg, RELOPS)
    assert value is not None
    op = RELOPS[op_index]
    ctype, have = column.type, ctx.rows[table.name][u][column.name]
    if key is None:
        return _relop(op, have, datum_from_string(ctype, value, ctx.symtab))
    if ctype.value is None:
        raise VsctlError(f"cannot specify key to check for non-map column {column.name}")
    k, _ = atom_from_string(ctype.key, key, ctx.symtab)
    vtype = CType(ctype.value, None, 0, UNLIMITED)
    want = datum_from_string(vtype, value, ctx.symtab)
    found = [v for kk, v in have if kk == k]
    if not found and not op.startswith("{"):
        return False
    return _relop(op, tuple(found), want)


def cmd_find(ctx: Context, cmd: Command) -> None:
    table = ctx.table(cmd.argv[1])
    columns = _columns(ctx, table, cmd.options.get("--columns"))
    out = _list_table(columns)
    for u in sorted(ctx.rows.get(table.name, {})):
        if all(_condition(ctx, table, u, arg) for arg in cmd.argv[2:]):
            _list_record(ctx, table, u, columns, out)
    cmd.output = out


def cmd_wait_until(ctx: Context, cmd: Command) -> None:
    """Succeed once the record exists and meets every condition; else run again later."""
    table = ctx.table(cmd.argv[1])
    u = ctx.get_row(table, cmd.argv[2], False)
    if u is None or not all(_condition(ctx, table, u, arg) for arg in cmd.argv[3:]):
        raise ConditionNotMet


def cmd_set(ctx: Context, cmd: Command) -> None:
    table = ctx.table(cmd.argv[1])
    u = ctx.get_row(table, cmd.argv[2], not _opt(cmd, "--if-exists"))
    if u is None:
        return
    for arg in cmd.argv[3:]:
        ctx.set_column(table, u, arg)


def _add_remove_target(ctx: Context, cmd: Command) -> tuple[Table, Column, str] | None:
    table = ctx.table(cmd.argv[1])
    column = ctx.column(table, cmd.argv[3])
    u = ctx.get_row(table, cmd.argv[2], not _opt(cmd, "--if-exists"))
    if u is None:
        return None
    ctx.check_mutable(table, u, column)
    return table, column, u


def cmd_add(ctx: Context, cmd: Command) -> None:
    target = _add_remove_target(ctx, cmd)
    if target is None:
        return
    table, column, u = target
    ctype = column.type
    add_type = CType(ctype.key, ctype.value, 1, UNLIMITED)
    old = list(ctx.rows[table.name][u][column.name])
    added: list[Any] = []
    for arg in cmd.argv[4:]:
        for item in datum_from_string(add_type, arg, ctx.symtab):
            keys = [kv[0] for kv in old] if ctype.is_map else old
            item_key = item[0] if ctype.is_map else item
            if item_key not in keys:
                old.append(item)
            if ctype.is_map:
                added = [kv for kv in added if kv[0] != item[0]]
            added.append(item)
    if ctx.last and u not in ctx.inserted:
        # ovs-vsctl 3.1 sends the chain's last "add" as a partial update (a
        # mutate), so the server checks the size and new map values win.
        _mutate_add(ctx, table, column, u, added)
        return
    if len(old) > ctype.n_max:
        kind = "values" if ctype.value is None else "pairs"
        raise VsctlError(
            f'"add" operation would put {len(old)} {kind} in column {column.name} of table '
            f"{table.name} but the maximum number is {ctype.n_max}"
        )
    ctx.write(table.name, u, column.name, sort_datum(ctype, old))


def _mutate_add(ctx: Context, table: Table, column: Column, u: str, added: list[Any]) -> None:
    ctype = column.type
    where = [["_uuid", "==", ctx.uuid_json(u)]]
    if ctype.value is not None:
        keys = sort_datum(CType(ctype.key, None, 0, UNLIMITED), [kv[0] for kv in added])
        key_set = ctx.datum_json(CType(ctype.key, None, 0, UNLIMITED), keys)
        ctx.mutations.append(
            {
                "op": "mutate",
                "table": table.name,
                "where": where,
                "mutations": [[column.name, "delete", key_set]],
            }
        )
    if ctype.value is not None:
        vbase = ctype.value
        pairs = [[ctx.atom_json(ctype.key, k), ctx.atom_json(vbase, v)] for k, v in added]
        value: Any = ["map", pairs]
    else:
        value = ["set", [ctx.atom_json(ctype.key, a) for a in sort_datum(ctype, added)]]
    ctx.mutations.append(
        {
            "op": "mutate",
            "table": table.name,
            "where": where,
            "mutations": [[column.name, "insert", value]],
        }
    )


def cmd_remove(ctx: Context, cmd: Command) -> None:
    target = _add_remove_target(ctx, cmd)
    if target is None:
        return
    table, column, u = target
    ctype = column.type
    rm_type = CType(ctype.key, ctype.value, 1, UNLIMITED)
    old = list(ctx.rows[table.name][u][column.name])
    for arg in cmd.argv[4:]:
        try:
            rm = datum_from_string(rm_type, arg, ctx.symtab)
            by_key = False
        except VsctlError:
            if ctype.value is None:
                raise
            rm = datum_from_string(CType(ctype.key, None, 1, UNLIMITED), arg, ctx.symtab)
            by_key = True
        if ctype.value is None:
            old = [a for a in old if a not in rm]
        elif by_key:
            old = [kv for kv in old if kv[0] not in rm]
        else:
            old = [kv for kv in old if kv not in rm]
    if len(old) < ctype.n_min:
        kind = "values" if ctype.value is None else "pairs"
        raise VsctlError(
            f'"remove" operation would put {len(old)} {kind} in column {column.name} of '
            f"table {table.name} but the minimum number is {ctype.n_min}"
        )
    ctx.write(table.name, u, column.name, tuple(old))


def cmd_clear(ctx: Context, cmd: Command) -> None:
    table = ctx.table(cmd.argv[1])
    u = ctx.get_row(table, cmd.argv[2], not _opt(cmd, "--if-exists"))
    if u is None:
        return
    for name in cmd.argv[3:]:
        column = ctx.column(table, name)
        ctx.check_mutable(table, u, column)
        if column.type.n_min > 0:
            raise VsctlError(
                f'"clear" operation cannot be applied to column {column.name} of table '
                f"{table.name}, which is not allowed to be empty"
            )
        ctx.write(table.name, u, column.name, ())


def cmd_create(ctx: Context, cmd: Command) -> None:
    table = ctx.table(cmd.argv[1])
    row_id = cmd.options.get("--id")
    uuid: str | None = None
    if row_id is not None:
        symbol, _ = _create_symbol(ctx, row_id)
        if table.is_root:
            symbol.strong_ref = True  # root rows stay even when unreferenced
        uuid = symbol.uuid
    u = ctx.insert(table.name, uuid)
    for arg in cmd.argv[2:]:
        ctx.set_column(table, u, arg)
    cmd.output = u  # replaced by the server's UUID after the commit


def cmd_destroy(ctx: Context, cmd: Command) -> None:
    table = ctx.table(cmd.argv[1])
    must_exist = not _opt(cmd, "--if-exists")
    delete_all = _opt(cmd, "--all")
    if delete_all and len(cmd.argv) > 2:
        raise VsctlError("--all and records argument should not be specified together")
    if delete_all and not must_exist:
        raise VsctlError("--all and --if-exists should not be specified together")
    if not delete_all and len(cmd.argv) == 2:
        warn("either --all or records argument should be specified")
        return
    if delete_all:
        for u in sorted(ctx.rows.get(table.name, {})):
            ctx.delete(table.name, u)
        return
    for record in cmd.argv[2:]:
        found = ctx.get_row(table, record, must_exist)
        if found is not None:
            ctx.delete(table.name, found)


RUN = {
    "init": cmd_init,
    "show": cmd_show,
    "emer-reset": cmd_emer_reset,
    "add-br": cmd_add_br,
    "del-br": cmd_del_br,
    "list-br": cmd_list_br,
    "br-exists": cmd_br_exists,
    "br-to-vlan": cmd_br_to_vlan,
    "br-to-parent": cmd_br_to_parent,
    "br-set-external-id": cmd_br_set_external_id,
    "br-get-external-id": cmd_br_get_external_id,
    "list-ports": cmd_list_ports,
    "add-port": cmd_add_port,
    "add-bond": cmd_add_bond,
    "add-bond-iface": cmd_add_bond_iface,
    "del-bond-iface": cmd_del_bond_iface,
    "del-port": cmd_del_port,
    "port-to-br": cmd_port_to_br,
    "list-ifaces": cmd_list_ifaces,
    "iface-to-br": cmd_iface_to_br,
    "get-controller": cmd_get_controller,
    "del-controller": cmd_del_controller,
    "set-controller": cmd_set_controller,
    "get-fail-mode": cmd_get_fail_mode,
    "del-fail-mode": cmd_del_fail_mode,
    "set-fail-mode": cmd_set_fail_mode,
    "get-manager": cmd_get_manager,
    "del-manager": cmd_del_manager,
    "set-manager": cmd_set_manager,
    "get-ssl": cmd_get_ssl,
    "del-ssl": cmd_del_ssl,
    "set-ssl": cmd_set_ssl,
    "comment": cmd_comment,
    "get": cmd_get,
    "list": cmd_list,
    "find": cmd_find,
    "set": cmd_set,
    "add": cmd_add,
    "remove": cmd_remove,
    "clear": cmd_clear,
    "create": cmd_create,
    "destroy": cmd_destroy,
    "wait-until": cmd_wait_until,
}


def precheck(ctx: Context, cmd: Command) -> None:
    """The pre-pass ovs-vsctl runs over every command before any runs: names are checked."""
    name, argv = cmd.name, cmd.argv
    generic = ("get", "list", "find", "set", "add", "remove", "clear", "create", "destroy")
    if name not in (*generic, "wait-until"):
        return
    table = ctx.table(argv[1])
    if name in ("list", "find"):
        _columns(ctx, table, cmd.options.get("--columns"))
    if name in ("set", "find", "wait-until"):
        first = 2 if name == "find" else 3
        for arg in argv[first:]:
            column_name, _ = token_parse(arg, 0)
            if not column_name:
                raise VsctlError(f"{arg}: missing column name")
            ctx.column(table, column_name)
    elif name in ("add", "remove"):
        ctx.column(table, argv[3])
    elif name == "clear":
        for arg in argv[3:]:
            ctx.column(table, arg)
    elif name == "create" and "--id" not in cmd.options and not table.is_root:
        warn(
            f'applying "create" command to table {table.name} without --id option '
            "will have no effect"
        )


def warn(message: str) -> None:
    # ovs-vsctl logs these through vlog (with a timestamp); a plain line is enough here.
    sys.stderr.write(f"{PROG}: warning: {message}\n")


# -- command line -------------------------------------------------------------------------

USAGE = f"""\
{PROG}: pyvswitch's configuration utility (ovs-vsctl's syntax and output)
usage: {PROG} [OPTIONS] COMMAND [ARG...] [-- [OPTIONS] COMMAND [ARG...]]...

Open vSwitch commands:
  init                        initialize database, if not yet initialized
  show                        print overview of database contents
  emer-reset                  reset configuration to clean state

Bridge commands:
  add-br BRIDGE               create a new bridge named BRIDGE
  add-br BRIDGE PARENT VLAN   create new fake BRIDGE in PARENT on VLAN
  del-br BRIDGE               delete BRIDGE and all of its ports
  list-br                     print the names of all the bridges
  br-exists BRIDGE            exit 2 if BRIDGE does not exist
  br-to-vlan BRIDGE           print the VLAN which BRIDGE is on
  br-to-parent BRIDGE         print the parent of BRIDGE
  br-set-external-id BRIDGE KEY VALUE  set KEY on BRIDGE to VALUE
  br-set-external-id BRIDGE KEY  unset KEY on BRIDGE
  br-get-external-id BRIDGE KEY  print value of KEY on BRIDGE
  br-get-external-id BRIDGE  list key-value pairs on BRIDGE

Port commands (a bond is considered to be a single port):
  list-ports BRIDGE           print the names of all the ports on BRIDGE
  add-port BRIDGE PORT [COLUMN[:KEY]=VALUE]...  add network device PORT to BRIDGE
  add-bond BRIDGE PORT IFACE...  add bonded port PORT in BRIDGE from IFACES
  add-bond-iface BOND IFACE   add IFACE to bonded port BOND
  del-bond-iface [BOND] IFACE  delete IFACE from its bonded port
  del-port [BRIDGE] PORT      delete PORT (which may be bonded) from BRIDGE
  port-to-br PORT             print name of bridge that contains PORT

Interface commands (a bond consists of multiple interfaces):
  list-ifaces BRIDGE          print the names of all interfaces on BRIDGE
  iface-to-br IFACE           print name of bridge that contains IFACE

Controller commands (stored only: pvs-vswitchd does not connect to controllers):
  get-controller BRIDGE       print the controllers for BRIDGE
  del-controller BRIDGE       delete the controllers for BRIDGE
  set-controller BRIDGE TARGET...  set the controllers for BRIDGE
  get-fail-mode BRIDGE        print the fail-mode for BRIDGE
  del-fail-mode BRIDGE        delete the fail-mode for BRIDGE
  set-fail-mode BRIDGE MODE   set the fail-mode for BRIDGE to MODE

Manager commands (stored only):
  get-manager                 print the managers
  del-manager                 delete the managers
  set-manager TARGET...       set the list of managers to TARGET...

SSL commands (stored only):
  get-ssl                     print the SSL configuration
  del-ssl                     delete the SSL configuration
  set-ssl PRIV-KEY CERT CA-CERT  set the SSL configuration

Database commands:
  list TBL [REC]              list RECord (or all records) in TBL
  find TBL CONDITION...       list records satisfying CONDITION in TBL
  get TBL REC COL[:KEY]       print values of COLumns in RECord in TBL
  set TBL REC COL[:KEY]=VALUE set COLumn values in RECord in TBL
  add TBL REC COL [KEY=]VALUE add (KEY=)VALUE to COLumn in RECord in TBL
  remove TBL REC COL [KEY=]VALUE  remove (KEY=)VALUE from COLumn
  clear TBL REC COL           clear values from COLumn in RECord in TBL
  create TBL COL[:KEY]=VALUE  create and initialize new record
  destroy TBL REC             delete RECord from TBL
  wait-until TBL REC [COL[:KEY]=VALUE]  wait until condition is true
  comment [ARG]...            do nothing

Options:
  --db=DATABASE               connect to DATABASE
                              (default: unix:$PVS_RUNDIR/db.sock, PVS_RUNDIR
                              defaulting to {RUNDIR_DEFAULT})
  --no-wait                   do not wait for pvs-vswitchd to reconfigure
  -t, --timeout=SECS          wait at most SECS seconds
  --dry-run                   do not commit changes to database
  --oneline                   print exactly one line of output per command

Output formatting options:
  -f, --format=FORMAT         list (default), table, html, csv or json
  -d, --data=FORMAT           cells as string (default), bare or json
  --no-headings               omit table heading row
  --pretty                    pretty-print JSON in output
  --max-column-width=N        truncate table cells to N bytes
  --bare                      equivalent to "--format=list --data=bare --no-headings"

Other options:
  -h, --help                  display this help message
  -V, --version               display version information
"""

# Global options: name -> takes an argument.
GLOBAL_OPTIONS = {
    "--db": True,
    "--no-wait": False,
    "--timeout": True,
    "--format": True,
    "--data": True,
    "--bare": False,
    "--no-headings": False,
    "--pretty": False,
    "--max-column-width": True,
    "--oneline": False,
    "--dry-run": False,
    "--help": False,
    "--version": False,
    "--no-syslog": False,
    "--retry": False,
}
SHORT = {"-t": "--timeout", "-f": "--format", "-d": "--data", "-h": "--help", "-V": "--version"}


class Invocation:
    """Parsed command line: global settings and the chain of commands."""

    def __init__(self) -> None:
        rundir = os.environ.get("PVS_RUNDIR", RUNDIR_DEFAULT)
        self.db = f"unix:{rundir}/db.sock"
        self.timeout: float | None = None
        self.style = Style()
        self.oneline = False
        self.dry_run = False
        self.no_wait = False
        self.commands: list[Command] = []


def parse_args(argv: list[str]) -> Invocation | str:
    """Global options first (as getopt sees them), then ``--``-separated commands."""
    inv = Invocation()
    local: dict[str, str | None] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            matches = [o for o in (*GLOBAL_OPTIONS, *COMMAND_OPTIONS) if o == name]
            if not matches:
                matches = [o for o in (*GLOBAL_OPTIONS, *COMMAND_OPTIONS) if o.startswith(name)]
            if len(matches) != 1:
                what = "unrecognized" if not matches else "ambiguous"
                raise VsctlError(f"{what} option '{arg}'")
            name = matches[0]
            if name in COMMAND_OPTIONS and name not in GLOBAL_OPTIONS:
                if eq and name not in COMMAND_OPTIONS_WITH_ARG:
                    raise VsctlError(f"option '{name}' doesn't allow an argument")
                if not eq and name in COMMAND_OPTIONS_WITH_ARG:
                    # As getopt does, a required argument may be the next word.
                    i += 1
                    if i >= len(argv):
                        raise VsctlError(f"option '{name}' requires an argument")
                    value, eq = argv[i], "="
                # Before the first command, a repeated option simply wins (getopt).
                local[name] = value if eq else None
                i += 1
                continue
            if GLOBAL_OPTIONS[name] and not eq:
                i += 1
                if i >= len(argv):
                    raise VsctlError(f"option '{name}' requires an argument")
                value = argv[i]
            elif not GLOBAL_OPTIONS[name] and eq:
                raise VsctlError(f"option '{name}' doesn't allow an argument")
        else:
            short = arg[:2]
            if short not in SHORT:
                raise VsctlError(f"invalid option -- '{arg[1]}'")
            name = SHORT[short]
            value = arg[2:]
            if GLOBAL_OPTIONS[name] and not value:
                i += 1
                if i >= len(argv):
                    raise VsctlError(f"option requires an argument -- '{arg[1]}'")
                value = argv[i]
        i += 1
        if name == "--help":
            return USAGE
        if name == "--version":
            from pyvswitch import __version__  # noqa: PLC0415 (only --version needs it)

            return f"{PROG} (pyvswitch) {__version__}\n"
        _global_option(inv, name, value)
    _parse_commands(inv, argv[i:], local)
    return inv


def _global_option(inv: Invocation, name: str, value: str) -> None:
    if name == "--db":
        inv.db = value
    elif name == "--timeout":
        try:
            seconds = int(value)
        except ValueError:
            seconds = -1
        if seconds < 0:
            raise VsctlError(f"value {value} on -t or --timeout is invalid")
        inv.timeout = float(seconds) if seconds else None
    elif name == "--format":
        if value not in ("list", "table", "html", "csv", "json"):
            raise VsctlError(f'unknown output format "{value}"')
        inv.style.format = value
    elif name == "--data":
        if value not in ("string", "bare", "json"):
            raise VsctlError(f'unknown data format "{value}"')
        inv.style.data = value
    elif name == "--bare":
        inv.style.format, inv.style.data, inv.style.headings = "list", "bare", False
    elif name == "--no-headings":
        inv.style.headings = False
    elif name == "--pretty":
        inv.style.pretty = True
    elif name == "--max-column-width":
        inv.style.max_column_width = _atoi(value)
    elif name == "--oneline":
        inv.oneline = True
    elif name == "--dry-run":
        inv.dry_run = True
    elif name == "--no-wait":
        inv.no_wait = True
    # --no-syslog, --retry: accepted and ignored.


def _parse_commands(inv: Invocation, argv: list[str], local: dict[str, str | None]) -> None:
    start = 0
    for i in range(len(argv) + 1):
        if i == len(argv) or argv[i] == "--":
            if i > start:
                inv.commands.append(_parse_command(argv[start:i], local))
                local = {}
            elif local:
                raise VsctlError("missing command name (use --help for help)")
            start = i + 1
    if not inv.commands:
        raise VsctlError("missing command name (use --help for help)")


def _parse_command(argv: list[str], options: dict[str, str | None]) -> Command:
    options = dict(options)
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        key, eq, text = argv[i].partition("=")
        if key in options:
            raise VsctlError(f"'{argv[i]}' option specified multiple times")
        options[key] = text if eq else None
        i += 1
    if i == len(argv):
        raise VsctlError("missing command name (use --help for help)")
    name = argv[i]
    if name not in COMMANDS:
        raise VsctlError(f"unknown command '{name}'; use --help for help")
    min_args, max_args, allowed = COMMANDS[name]
    for key, value in options.items():
        at = allowed.find(key)
        end = allowed[at + len(key)] if at >= 0 and at + len(key) < len(allowed) else ""
        if at < 0 or end not in ("=", ",", "?", " ", ""):
            raise VsctlError(f"'{name}' command has no '{key}' option")
        if end != "?" and (end == "=") != (value is not None):
            if end == "=":
                raise VsctlError(f"missing argument to '{key}' option on '{name}' command")
            raise VsctlError(f"'{key}' option on '{name}' does not accept an argument")
    n_args = len(argv) - i - 1
    if n_args < min_args:
        raise VsctlError(f"'{name}' command requires at least {min_args} arguments")
    if n_args > max_args:
        if any(a.startswith("-") for a in argv[i + 1 :]):
            raise VsctlError(
                f"'{name}' command takes at most {max_args} arguments (note that options "
                'must precede command names and follow a "--" argument)'
            )
        raise VsctlError(f"'{name}' command takes at most {max_args} arguments")
    return Command(options, argv[i:])


# -- running -------------------------------------------------------------------------------


def _fetch(conn: Connection) -> tuple[str, dict[str, Table], dict[str, dict[str, Row]]]:
    schema_json = conn.call("get_schema", ["Open_vSwitch"])
    schema = {name: Table(name, t) for name, t in schema_json["tables"].items()}
    conn.db_name, conn.tables = schema_json["name"], sorted(schema)
    ops: list[Any] = ["Open_vSwitch"]
    names = sorted(schema)
    ops.extend({"op": "select", "table": name, "where": []} for name in names)
    results = conn.call("transact", ops)
    rows: dict[str, dict[str, Row]] = {}
    for name, result in zip(names, results, strict=True):
        table = schema[name]
        rows[name] = {
            r["_uuid"][1]: {
                c.name: datum_from_json(c.type, r[c.name])
                if c.name in r
                else default_datum(c.type)
                for c in table.columns.values()
            }
            for r in result["rows"]
        }
    return schema_json["name"], schema, rows


def _run_chain(inv: Invocation, conn: Connection, args_text: str) -> list[Command]:
    db, schema, rows = _fetch(conn)
    ctx = Context(schema, rows)
    for cmd in inv.commands:
        cmd.output = ""
    for cmd in inv.commands:
        precheck(ctx, cmd)
    ctx.ovs()
    for n, cmd in enumerate(inv.commands):
        ctx.last = n == len(inv.commands) - 1
        RUN[cmd.name](ctx, cmd)
    for name, symbol in ctx.symtab.items():
        if not symbol.created:
            raise VsctlError(
                f'row id "{name}" is referenced but never created '
                f'(e.g. with "-- --id={name} create ...")'
            )
        if not symbol.strong_ref:
            kind = "only a weak reference" if symbol.weak_ref else "no reference"
            warn(
                f'row id "{name}" was created but {kind} to it was inserted, '
                "so it will not actually appear in the database"
            )
    ops = ctx.operations(db, f"{PROG}: {args_text}")
    if inv.dry_run or len(ops) == 1:
        return inv.commands
    changes = any(
        op.get("op") in ("insert", "update", "mutate", "delete")
        for op in ops[1:]
        if isinstance(op, dict)
    )
    wait = changes and not inv.no_wait
    if wait:
        ops += [
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [["next_cfg", "+=", 1]],
            },
            {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]},
        ]
    results = conn.call("transact", ops)
    error = None
    for result in results:
        if isinstance(result, dict) and "error" in result:
            if result["error"] == "timed out":
                raise TryAgain
            if result["error"] != "aborted" and error is None:
                error = result
    if error is not None:
        text = json.dumps(error, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        raise VsctlError(f"transaction error: {text}")
    # "create" printed a placeholder: swap in the UUID the server chose.
    real = {}
    for op, result in zip(ops[1:], results, strict=False):
        if op.get("op") == "insert" and isinstance(result, dict) and "uuid" in result:
            real[op["uuid-name"]] = result["uuid"][1]
    for cmd in inv.commands:
        if cmd.name == "create" and isinstance(cmd.output, str):
            cmd.output = real.get("row" + cmd.output.replace("-", "_"), cmd.output) + "\n"
    if wait:
        rows = results[len(ops) - 2]["rows"] if len(results) >= len(ops) - 1 else []
        if rows:
            _wait_for_switch(conn, int(rows[0]["next_cfg"]))
            new_ifaces = [real.get("row" + u.replace("-", "_")) for u in ctx.expected_ifaces]
            _check_new_ifaces(conn, [u for u in new_ifaces if u is not None])
    return inv.commands


def _check_new_ifaces(conn: Connection, uuids: list[str]) -> None:
    """Say which new interfaces the switch could not set up, and why (post_db_reload_do_checks).

    As ovs-vsctl 3.1: one line per failed interface, in the order the chain
    added them, with the switch's reason from the Interface ``error`` column
    when it wrote one, then one line naming the daemon's log directory. These
    are warnings: the chain committed, so the exit status stays 0.
    """
    if not uuids:
        return
    selects = [
        {
            "op": "select",
            "table": "Interface",
            "where": [["_uuid", "==", ["uuid", u]]],
            "columns": ["name", "ofport", "error"],
        }
        for u in uuids
    ]
    results = conn.call("transact", [conn.db_name, *selects])
    lines = []
    for result in results:
        for row in result.get("rows", []):
            if row["ofport"] not in (-1, ["set", []]):
                continue
            # An empty optional column comes back as the empty set.
            error = row["error"] if isinstance(row["error"], str) else ""
            reason = f": {error}" if error else ""
            lines.append(
                f"{PROG}: Error detected while setting up '{row['name']}'{reason}.  "
                "See pvs-vswitchd log for details.\n"
            )
    if lines:
        logdir = os.environ.get("PVS_LOGDIR", LOGDIR_DEFAULT)
        lines.append(f'{PROG}: The default log directory is "{logdir}".\n')
        sys.stderr.write("".join(lines))


def _run(inv: Invocation, conn: Connection, args_text: str) -> list[Command]:
    """Run the chain until it commits: again after a lost race, and for wait-until.

    A ``wait-until`` that is not satisfied yet runs the whole chain again
    after each change to the database, as ovs-vsctl does; only --timeout
    bounds the wait.
    """
    races = 0
    while True:
        try:
            return _run_chain(inv, conn, args_text)
        except TryAgain:
            races += 1
            if races == MAX_ATTEMPTS:
                raise VsctlError("the database kept changing; giving up") from None
        except ConditionNotMet:
            if conn.monitoring:
                conn.wait_for_change()
            else:
                # Changes are reported from now on; the chain runs again at once
                # in case one came before the monitor was in place.
                conn.monitor()


def _wait_for_switch(conn: Connection, next_cfg: int) -> None:
    """Wait until the switch reports ``cur_cfg >= next_cfg`` (bounded by --timeout)."""
    delay = 0.005
    while True:
        results = conn.call(
            "transact",
            [
                "Open_vSwitch",
                {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"]},
            ],
        )
        rows = results[0].get("rows", []) if results else []
        if not rows or int(rows[0]["cur_cfg"]) >= next_cfg:
            return
        if conn.deadline is not None and time.monotonic() > conn.deadline:
            raise TimeoutError
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _emit(inv: Invocation, commands: list[Command]) -> None:
    for cmd in commands:
        if isinstance(cmd.output, OutTable):
            # A table is printed in the chosen format even with --oneline.
            sys.stdout.write(inv.style.render(cmd.output))
            continue
        text = cmd.output
        if inv.oneline:
            text = text.removesuffix("\n").replace("\\", "\\\\").replace("\n", "\\n") + "\n"
        sys.stdout.write(text)
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Run ``pvs-vsctl`` with ``argv`` (default: the process's arguments)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        parsed = parse_args(args)
        if isinstance(parsed, str):
            sys.stdout.write(parsed)
            return 0
        conn = Connection(parsed.db, parsed.timeout)
        try:
            _emit(parsed, _run(parsed, conn, " ".join(args)))
        finally:
            conn.close()
    except VsctlError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 1
    except ExitStatus as exc:
        return exc.status
    except TimeoutError:
        sys.stderr.write(f"{PROG}: timed out\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
