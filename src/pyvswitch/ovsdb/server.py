"""The OVSDB protocol (RFC 7047) over a unix socket, for the embedded database.

Real Open vSwitch clients (ovs-vsctl, ovsdbapp, Mininet through ovs-vsctl) and
our own tools talk to the database this way. One asyncio server owns the
:class:`~pyvswitch.ovsdb.database.Database` and its
:class:`~pyvswitch.ovsdb.journal.Journal`: a transaction is applied, appended
to the journal (with fsync) and only then answered, so an acknowledged
transaction survives a crash; then every monitor is told what changed.

A transaction whose ``wait`` operation does not hold yet is kept, not failed,
as ovsdb-server keeps it (its "triggers"): it runs again after every commit
that changed something, pending transactions in the order they arrived, until
it succeeds (then it commits and is answered) or its timeout passes (then it is
answered with the "timed out" error). Other requests, of this client or any
other, go on meanwhile. A ``cancel`` notification naming its request id, or
the client disconnecting, drops it without an answer, as ovsdb-server does for
clients that have not asked to be told of database changes.

Framing is OVSDB's: JSON values back to back on the stream, no delimiters.
Methods: ``list_dbs``, ``get_schema``, ``transact``, ``monitor``, ``cancel``,
``echo``, and ``lock``/``steal``/``unlock`` (always granted: there is one
server). ``monitor_cond``, ``monitor_cond_since`` and the ``_Server`` database
answer with the errors Open vSwitch's client library falls back from, to
plain ``monitor`` -- as an older ovsdb-server does. Notifications other than
``cancel`` are ignored, as ovsdb-server ignores them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvswitch.ovsdb.data import syntax_error
from pyvswitch.ovsdb.database import Changes, Database, WaitPending
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
class Trigger:
    """A ``transact`` request waiting for its ``wait`` operations to hold."""

    session: Session
    request_id: Any
    ops: list[Any]
    #: When it was first tried, in whole milliseconds of the event loop's clock.
    created_ms: int
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class Session:
    """One connected client."""

    writer: asyncio.StreamWriter
    monitors: dict[str, Monitor] = field(default_factory=dict)
    #: Its pending transactions, by request id (``_id_key``).
    triggers: dict[str, Trigger] = field(default_factory=dict)

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
        #: Every client's pending transactions, oldest first.
        self.triggers: list[Trigger] = []
        self._triggers_due = False
        self._server: asyncio.base_events.Server | None = None
        self._path: Path | None = None
        self._socket_inode = 0
        self._handlers: set[asyncio.Task[Any]] = set()

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
        self._path, self._socket_inode = path, path.stat().st_ino

    async def close(self) -> None:
        """Stop serving, drop every client and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # As ovsdb-server on exit: remove the socket, but only if it is still
        # ours (a newer server may have replaced it).
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                st = self._path.stat()
                if stat.S_ISSOCK(st.st_mode) and st.st_ino == self._socket_inode:
                    self._path.unlink()
            self._path = None
        for trigger in list(self.triggers):
            self._forget(trigger)
        for session in list(self.sessions):
            session.writer.close()
        # Let each connection's handler see its end and finish, rather than
        # leave it to be cancelled when the event loop stops.
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=1)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        self.sessions.add(session)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
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
            for trigger in list(session.triggers.values()):
                self._forget(trigger)
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
        if not isinstance(params, list):
            params = []
        if msg_id is None:
            if method == "cancel":
                self._cancel(session, params)
            return
        try:
            if method == "transact":
                self._check_db(params)
                self._start_trigger(session, msg_id, params)
                return
            result = self._call(session, method, params)
        except RpcError as exc:
            session.send({"id": msg_id, "result": None, "error": exc.to_json()})
            return
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
        """Apply one transaction now, for callers in this process (the daemon's write-backs).

        It cannot wait: a ``wait`` that does not hold fails at once ("timed
        out" with ``"timeout": 0``, else "not supported"), as in ovsdb-tool.
        """
        results, changes = self.db.transact(ops)
        return self._commit(results, changes)

    # -- pending transactions (ovsdb-server's triggers) ------------------------------

    def _start_trigger(self, session: Session, request_id: Any, params: list[Any]) -> None:
        key = _id_key(request_id)
        if key in session.triggers:
            # ovsdb-server refuses the new request and keeps the pending one.
            error = syntax_error(params, "transact: duplicate request ID")
            session.send({"id": request_id, "result": None, "error": error.to_json()})
            return
        trigger = Trigger(session, request_id, params[1:], _now_ms())
        if not self._try(trigger):
            session.triggers[key] = trigger
            self.triggers.append(trigger)

    def _try(self, trigger: Trigger) -> bool:
        """Run a transaction (again); answer it and return True unless it must wait on."""
        elapsed_ms = _now_ms() - trigger.created_ms
        try:
            results, changes = self.db.transact(trigger.ops, elapsed_ms=elapsed_ms)
        except WaitPending as pending:
            self._arm(trigger, pending.timeout_ms)
            return False
        results = self._commit(results, changes)
        trigger.session.send({"id": trigger.request_id, "result": results, "error": None})
        return True

    def _arm(self, trigger: Trigger, timeout_ms: int | None) -> None:
        """Run the transaction again when its timeout passes (it may differ at each try)."""
        if trigger.timer is not None:
            trigger.timer.cancel()
            trigger.timer = None
        if timeout_ms is None:
            return
        loop = asyncio.get_running_loop()
        # The loop may wake a hair early, before the millisecond clock has
        # reached the timeout; the retry then re-arms a millisecond later.
        when = max((trigger.created_ms + timeout_ms) / 1000, loop.time() + 0.001)
        trigger.timer = loop.call_at(when, self._expire, trigger)

    def _expire(self, trigger: Trigger) -> None:
        trigger.timer = None
        if self._try(trigger):
            self._forget(trigger)

    def _run_triggers(self) -> None:
        """After a commit: run every pending transaction again, oldest first."""
        self._triggers_due = False
        # A commit here only schedules work (monitors' writes, the next run),
        # so the list changes only through the trigger being tried.
        for trigger in list(self.triggers):
            if self._try(trigger):
                self._forget(trigger)

    def _forget(self, trigger: Trigger) -> None:
        if trigger.timer is not None:
            trigger.timer.cancel()
            trigger.timer = None
        trigger.session.triggers.pop(_id_key(trigger.request_id), None)
        with contextlib.suppress(ValueError):
            self.triggers.remove(trigger)

    def _cancel(self, session: Session, params: list[Any]) -> None:
        # ovsdb-server answers a cancelled transaction ("canceled") only to
        # clients that sent set_db_change_aware, which this server does not
        # offer; to the others it says nothing.
        if len(params) == 1:
            trigger = session.triggers.get(_id_key(params[0]))
            if trigger is not None:
                self._forget(trigger)

    # -- committing ------------------------------------------------------------------

    def _commit(self, results: list[Any], changes: Changes | None) -> list[Any]:
        """Persist and publish what a transaction changed; return its results."""
        if changes is not None:
            record = changes.record()
            if self.journal is not None and record:
                try:
                    self.journal.append(record)
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
            if self.triggers and not self._triggers_due:
                # Pending transactions run after the one that committed has
                # been answered, as in ovsdb-server's main loop.
                self._triggers_due = True
                asyncio.get_running_loop().call_soon(self._run_triggers)
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


def _id_key(request_id: Any) -> str:
    """A request id as a dict key: ids are any JSON, compared by value."""
    return json.dumps(request_id, sort_keys=True)


def _now_ms() -> int:
    """The event loop's clock in whole milliseconds, as ovsdb-server's time_msec()."""
    return int(asyncio.get_running_loop().time() * 1000)


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
