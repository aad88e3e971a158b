"""The OVSDB protocol (RFC 7047) over a unix socket, for the embedded database.

Real Open vSwitch clients (ovs-vsctl, ovsdbapp, Mininet through ovs-vsctl) and
our own tools talk to the database this way. One asyncio server owns the
:class:`~pyvswitch.ovsdb.database.Database` and its
:class:`~pyvswitch.ovsdb.journal.Journal`: a transaction is applied, appended
to the journal (with fsync) and only then answered, so an acknowledged
transaction survives a crash; then every monitor is told what changed.

Framing is OVSDB's: JSON values back to back on the stream, no delimiters.
Methods: ``list_dbs``, ``get_schema``, ``transact``, ``monitor``, ``cancel``,
``echo``, and ``lock``/``steal``/``unlock`` (always granted: there is one
server). ``monitor_cond``, ``monitor_cond_since`` and the ``_Server`` database
answer with the errors Open vSwitch's client library falls back from, to
plain ``monitor`` -- as an older ovsdb-server does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvswitch.ovsdb.database import Changes, Database
from pyvswitch.ovsdb.journal import Journal, JournalError
from pyvswitch.ovsdb.schema import DbSchema, load_vswitch_schema

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("pyvswitch.ovsdb")

#: Compact the journal when it grows past this many bytes.
COMPACT_AT = 4 << 20
#: The most a client may send before a complete JSON value (a bound on memory).
MAX_PENDING = 64 << 20


class RpcError(Exception):
    """An error reply: ``error`` is OVSDB's short code, ``details`` the explanation."""

    def __init__(self, error: str, details: str = "") -> None:
        super().__init__(f"{error}: {details}" if details else error)
        self.error = error
        self.details = details

    def to_json(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(eq=False)
class Monitor:
    """One ``monitor`` request of one client."""

    monitor_id: Any
    requests: dict[str, Any]


@dataclass(eq=False)
class Session:
    """One connected client."""

    writer: asyncio.StreamWriter
    monitors: dict[str, Monitor] = field(default_factory=dict)

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(json.dumps(message, separators=(",", ":")).encode())


class OvsdbServer:
    """Serves one database (and persists it) to any number of clients."""

    def __init__(
        self,
        db: Database,
        journal: Journal | None = None,
        compact_at: int = COMPACT_AT,
        db_path: Path | None = None,
    ) -> None:
        self.db = db
        self.journal = journal
        self.db_path = db_path
        #: Called after every committed transaction (the daemon reconciles).
        self.on_commit: Callable[[], None] | None = None
        self.compact_at = compact_at
        self.sessions: set[Session] = set()
        self._server: asyncio.base_events.Server | None = None

    @property
    def name(self) -> str:
        return self.db.schema.name

    # -- sockets -------------------------------------------------------------------

    async def listen(self, path: Path) -> None:
        """Serve on unix socket ``path`` (mode 0600: root's configuration only)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old_mask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(path))
        finally:
            os.umask(old_mask)
        path.chmod(0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for session in list(self.sessions):
            session.writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        self.sessions.add(session)
        decoder = json.JSONDecoder()
        buffer = ""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buffer += chunk.decode("utf-8", errors="replace")
                if len(buffer) > MAX_PENDING:
                    log.warning("client sent %d bytes without a complete message", len(buffer))
                    break
                while True:
                    buffer = buffer.lstrip()
                    if not buffer:
                        break
                    try:
                        message, end = decoder.raw_decode(buffer)
                    except json.JSONDecodeError:
                        break  # incomplete: wait for more bytes
                    buffer = buffer[end:]
                    self._handle(session, message)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.sessions.discard(session)
            writer.close()

    # -- JSON-RPC ----------------------------------------------------------------

    def _handle(self, session: Session, message: Any) -> None:
        if not isinstance(message, dict):
            return
        method = message.get("method")
        msg_id = message.get("id")
        if method is None:
            return  # a reply (to an echo we sent): nothing to do
        params = message.get("params", [])
        try:
            result = self._call(session, method, params if isinstance(params, list) else [])
        except RpcError as exc:
            if msg_id is not None:
                session.send({"id": msg_id, "result": None, "error": exc.to_json()})
            return
        if msg_id is not None:
            session.send({"id": msg_id, "result": result, "error": None})

    def _check_db(self, params: list[Any]) -> None:
        if not params or params[0] != self.name:
            name = params[0] if params else ""
            raise RpcError(
                "unknown database",
                f"{name} is not a database this server serves"
                if name != "_Server"
                else "_Server database is not supported",
            )

    def _call(self, session: Session, method: str, params: list[Any]) -> Any:
        if method == "echo":
            return params
        if method == "list_dbs":
            return [self.name]
        if method == "get_schema":
            self._check_db(params)
            return self.db.schema.to_json()
        if method == "transact":
            self._check_db(params)
            return self.transact(params[1:])
        if method == "monitor":
            self._check_db(params)
            if len(params) < 3 or not isinstance(params[2], dict):
                raise RpcError("syntax error", "monitor needs a database, an id and requests")
            monitor_id, requests = params[1], params[2]
            key = json.dumps(monitor_id)
            if key in session.monitors:
                raise RpcError("duplicate monitor ID", key)
            initial = self.db.monitor_initial(requests)
            session.monitors[key] = Monitor(monitor_id, requests)
            return initial
        if method == "monitor_cancel":
            key = json.dumps(params[0] if params else None)
            if session.monitors.pop(key, None) is None:
                raise RpcError("unknown monitor", key)
            return {}
        if method in ("lock", "steal"):
            return {"locked": True}
        if method == "unlock":
            return {}
        raise RpcError("unknown method", method)

    def transact(self, ops: list[Any]) -> list[Any]:
        """Apply one transaction: commit, persist, then notify monitors."""
        results, changes = self.db.transact(ops)
        if changes is not None:
            if self.journal is not None:
                try:
                    self.journal.append(changes.record())
                    if self.journal.size > self.compact_at:
                        self.journal.compact(self.db.to_json())
                except (JournalError, OSError) as exc:
                    # Not durable, so not committed: go back to what the file
                    # holds, and tell the client the transaction failed, the
                    # way ovsdb-server reports a failed commit (an error
                    # object after the operations' results).
                    log.exception("database file could not be written")
                    self._reload()
                    error = RpcError("I/O error", f"the database file could not be written: {exc}")
                    return [*results, error.to_json()]
            self._notify(changes)
            if self.on_commit is not None:
                self.on_commit()
        return results

    def _reload(self) -> None:
        if self.journal is None or self.db_path is None:
            return
        self.journal.close()
        self.db, self.journal = open_database(self.db_path, self.db.schema)

    def _notify(self, changes: Changes) -> None:
        for session in self.sessions:
            for monitor in session.monitors.values():
                filtered = _monitor_updates(changes, monitor.requests)
                if filtered:
                    session.send(
                        {"id": None, "method": "update", "params": [monitor.monitor_id, filtered]}
                    )


def _monitor_columns(requests: dict[str, Any]) -> dict[str, list[str] | None]:
    """The tables and columns a ``monitor`` request asks for (None: every column)."""
    out: dict[str, list[str] | None] = {}
    for table, reqs in requests.items():
        columns: list[str] | None = []
        for req in reqs if isinstance(reqs, list) else [reqs]:
            if isinstance(req, dict) and "columns" in req and columns is not None:
                columns += [c for c in req["columns"] if c not in columns]
            else:
                columns = None
        out[table] = columns
    return out


def _selected(requests: dict[str, Any], table: str, kind: str) -> bool:
    """Whether a monitor's ``select`` asks for ``kind`` (insert/delete/modify) in ``table``."""
    reqs = requests.get(table, [])
    for req in reqs if isinstance(reqs, list) else [reqs]:
        if not isinstance(req, dict) or req.get("select", {}).get(kind, True):
            return True
    return False


def _monitor_updates(changes: Changes, requests: dict[str, Any]) -> dict[str, Any]:
    """The part of a transaction's <table-updates> one monitor asked for."""
    out: dict[str, Any] = {}
    for table, rows in changes.for_monitor(_monitor_columns(requests)).items():
        kept = {}
        for uuid, change in rows.items():
            kind = (
                "insert" if "old" not in change else "delete" if "new" not in change else "modify"
            )
            if _selected(requests, table, kind):
                kept[uuid] = change
        if kept:
            out[table] = kept
    return out


# -- running it on its own ------------------------------------------------------------


def open_database(path: Path, schema: DbSchema | None = None) -> tuple[Database, Journal]:
    """Load (or create) the database stored at ``path``."""
    schema = schema or load_vswitch_schema()
    empty = Database(schema)
    journal, snapshot, records = Journal.open(path, empty.to_json())
    db = Database.from_json(schema, snapshot)
    for record in records:
        db.apply_record(record)
    return db, journal


async def _serve(db_path: Path, socket_path: Path) -> None:
    db, journal = open_database(db_path)
    server = OvsdbServer(db, journal, db_path=db_path)
    await server.listen(socket_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving %s on %s", db_path, socket_path)
    await stop.wait()
    await server.close()
    journal.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pyvswitch.ovsdb.server",
        description="Serve the configuration database alone.",
    )
    parser.add_argument("--db", type=Path, required=True, help="the database file")
    parser.add_argument("--remote", required=True, help="punix:PATH to listen on")
    args = parser.parse_args(argv)
    if not args.remote.startswith("punix:"):
        parser.error(f"{args.remote}: only punix:PATH remotes are supported")
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve(args.db, Path(args.remote[len("punix:") :])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
