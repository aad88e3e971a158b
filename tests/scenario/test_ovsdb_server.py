"""The OVSDB JSON-RPC server, driven over its unix socket the way clients drive it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
from typing import TYPE_CHECKING, Any

import pytest

from pyvswitch.ovsdb.journal import JournalError
from pyvswitch.ovsdb.server import OvsdbServer, open_database

if TYPE_CHECKING:
    from pathlib import Path


class Client:
    """A minimal OVSDB client: JSON values back to back on the socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = ""
        self.next_id = 0
        self.notifications: list[dict[str, Any]] = []
        self.replies: dict[Any, dict[str, Any]] = {}
        #: Request ids in the order their replies arrived.
        self.reply_order: list[Any] = []

    async def call(self, method: str, *params: Any) -> dict[str, Any]:
        return await self.reply(await self.request(method, *params))

    async def request(self, method: str, *params: Any, request_id: Any = "next") -> Any:
        """Send a request without waiting for its reply; returns its id (None: a notification)."""
        if request_id == "next":
            self.next_id += 1
            request_id = self.next_id
        message = {"method": method, "params": list(params), "id": request_id}
        self.writer.write(json.dumps(message).encode())
        await self.writer.drain()
        return request_id

    async def reply(self, request_id: Any, timeout: float = 10) -> dict[str, Any]:
        """The reply to one request, keeping whatever else arrives meanwhile."""
        while request_id not in self.replies:
            await self._read_one(timeout)
        return self.replies.pop(request_id)

    async def silence(self, seconds: float) -> list[dict[str, Any]]:
        """The replies that arrive within ``seconds`` (none, when a request is pending)."""
        before = set(self.replies)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    await self._read_one(seconds)
        return [reply for key, reply in self.replies.items() if key not in before]

    async def _read_one(self, timeout: float) -> None:
        message = await self.receive(timeout)
        if "method" in message:
            self.notifications.append(message)
        else:
            self.replies[message.get("id")] = message
            self.reply_order.append(message.get("id"))

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        decoder = json.JSONDecoder()
        while True:
            text = self.buffer.lstrip()
            if text:
                try:
                    value, end = decoder.raw_decode(text)
                except json.JSONDecodeError:
                    pass
                else:
                    self.buffer = text[end:]
                    return value  # type: ignore[no-any-return]
            chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
            assert chunk, "server closed the connection"
            self.buffer += chunk.decode()


async def start(tmp_path: Path) -> tuple[OvsdbServer, Client]:
    db, journal = open_database(tmp_path / "conf.db")
    server = OvsdbServer(db, journal, db_path=tmp_path / "conf.db")
    await server.listen(tmp_path / "db.sock")
    reader, writer = await asyncio.open_unix_connection(str(tmp_path / "db.sock"))
    return server, Client(reader, writer)


def insert_bridge(name: str) -> list[Any]:
    return [
        "Open_vSwitch",
        {"op": "insert", "table": "Bridge", "row": {"name": name}, "uuid-name": "b"},
        {
            "op": "insert",
            "table": "Open_vSwitch",
            "row": {"bridges": ["set", [["named-uuid", "b"]]]},
        },
    ]


def test_transact_monitor_and_persistence(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, client = await start(tmp_path)
        try:
            assert (await client.call("list_dbs"))["result"] == ["Open_vSwitch"]
            schema = (await client.call("get_schema", "Open_vSwitch"))["result"]
            assert "Bridge" in schema["tables"]
            initial = await client.call(
                "monitor", "Open_vSwitch", "m1", {"Bridge": {"columns": ["name"]}}
            )
            assert initial["result"] == {}
            reply = await client.call("transact", *insert_bridge("br0"))
            assert reply["error"] is None
            assert "uuid" in reply["result"][0]
            update = client.notifications[0] if client.notifications else await client.receive()
            assert update["method"] == "update"
            assert update["params"][0] == "m1"
            rows = update["params"][1]["Bridge"]
            assert [r["new"] for r in rows.values()] == [{"name": "br0"}]
            echo = await client.call("echo", "ping", 1)
            assert echo["result"] == ["ping", 1]
            # The socket is root's only.
            assert stat.S_IMODE((tmp_path / "db.sock").stat().st_mode) == 0o600
        finally:
            await server.close()
            assert server.journal is not None
            server.journal.close()
        # Closing removes the socket, as ovsdb-server does on exit.
        assert not (tmp_path / "db.sock").exists()

    asyncio.run(scenario())
    db, journal = open_database(tmp_path / "conf.db")
    try:
        assert [r["name"][0] for r in db.rows("Bridge").values()] == ["br0"]
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("method", "params", "error"),
    [
        ("get_schema", ["_Server"], "unknown database"),
        ("monitor_cond", ["Open_vSwitch", "x", {}], "unknown method"),
        ("monitor_cond_since", ["Open_vSwitch", "x", {}, None], "unknown method"),
        ("transact", ["Nope"], "unknown database"),
    ],
)
def test_errors_clients_fall_back_from(
    tmp_path: Path, method: str, params: list[Any], error: str
) -> None:
    async def scenario() -> None:
        server, client = await start(tmp_path)
        try:
            reply = await client.call(method, *params)
            assert reply["result"] is None
            assert reply["error"]["error"] == error
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_transaction_that_cannot_be_written_is_refused_and_undone(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, client = await start(tmp_path)
        try:
            assert (await client.call("transact", *insert_bridge("br0")))["error"] is None
            journal = server.journal
            assert journal is not None

            def broken(record: dict[str, Any]) -> None:
                raise JournalError("disk full", path=tmp_path / "conf.db")

            journal.append = broken  # type: ignore[method-assign]
            add_br1 = [
                "Open_vSwitch",
                {"op": "insert", "table": "Bridge", "row": {"name": "br1"}, "uuid-name": "b"},
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [],
                    "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]],
                },
            ]
            reply = await client.call("transact", *add_br1)
            assert reply["error"] is None
            assert reply["result"][-1]["error"] == "I/O error"
            assert "disk full" in reply["result"][-1]["details"]
            names = sorted(r["name"][0] for r in server.db.rows("Bridge").values())
            assert names == ["br0"]
        finally:
            await server.close()

    asyncio.run(scenario())


# -- transactions that wait -----------------------------------------------------------
# What ovsdb-server 3.1 does with the same requests (tests/interop/
# test_ovs_ovsdb_wait.py compares the replies that can be compared live).


def wait_cfg(value: int, timeout: int | None = None) -> dict[str, Any]:
    """A wait until Open_vSwitch's next_cfg is ``value``."""
    op: dict[str, Any] = {
        "op": "wait",
        "table": "Open_vSwitch",
        "where": [],
        "columns": ["next_cfg"],
        "until": "==",
        "rows": [{"next_cfg": value}],
    }
    if timeout is not None:
        op["timeout"] = timeout
    return op


def set_cfg(value: int) -> dict[str, Any]:
    return {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"next_cfg": value}}


def set_external_id(key: str, value: str) -> dict[str, Any]:
    return {
        "op": "mutate",
        "table": "Open_vSwitch",
        "where": [],
        "mutations": [["external_ids", "insert", ["map", [[key, value]]]]],
    }


SELECT = {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}


async def start_with_row(tmp_path: Path) -> tuple[OvsdbServer, Client, Client]:
    """A server whose database holds the Open_vSwitch row (next_cfg 0), and two clients."""
    server, first = await start(tmp_path)
    reader, writer = await asyncio.open_unix_connection(str(tmp_path / "db.sock"))
    second = Client(reader, writer)
    reply = await first.call(
        "transact", "Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}
    )
    assert reply["error"] is None
    return server, first, second


async def external_ids(client: Client) -> list[Any]:
    reply = await client.call(
        "transact",
        "Open_vSwitch",
        {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids"]},
    )
    ids: list[Any] = reply["result"][0]["rows"][0]["external_ids"][1]
    return ids


def test_a_wait_is_answered_when_another_clients_commit_satisfies_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, waiter, other = await start_with_row(tmp_path)
        try:
            pending = await waiter.request(
                "transact", "Open_vSwitch", wait_cfg(1), set_external_id("waited", "yes"), SELECT
            )
            assert await waiter.silence(0.2) == []
            # The pending transaction blocks nobody: the other client reads
            # and writes meanwhile, and is answered first.
            assert (await other.call("transact", "Open_vSwitch", SELECT))["result"] == [
                {"rows": [{"next_cfg": 0}]}
            ]
            assert (await other.call("transact", "Open_vSwitch", set_cfg(1)))["error"] is None
            reply = await waiter.reply(pending, timeout=5)
            assert reply == {
                "id": pending,
                "result": [{}, {"count": 1}, {"rows": [{"next_cfg": 1}]}],
                "error": None,
            }
            assert await external_ids(other) == [["waited", "yes"]]
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_wait_times_out_with_ovsdb_servers_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, waiter, _other = await start_with_row(tmp_path)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            pending = await waiter.request(
                "transact",
                "Open_vSwitch",
                {"op": "comment", "comment": "c"},
                wait_cfg(1, timeout=200),
                set_external_id("waited", "yes"),
            )
            reply = await waiter.reply(pending, timeout=5)
            waited = loop.time() - started
            assert 0.2 <= waited < 5
            result = reply["result"]
            assert reply["error"] is None
            assert result[0] == {}
            assert result[2] is None
            assert result[1]["error"] == "timed out"
            ms = int(result[1]["details"].removeprefix('"wait" timed out after ').split()[0])
            assert result[1] == {
                "error": "timed out",
                "details": f'"wait" timed out after {ms} ms',
            }
            assert 200 <= ms <= waited * 1000 + 1
            assert await external_ids(waiter) == []
            # "timeout": 0 fails at once, as before.
            reply = await waiter.call("transact", "Open_vSwitch", wait_cfg(1, timeout=0))
            assert reply["result"] == [
                {"error": "timed out", "details": '"where" clause test failed'}
            ]
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_commit_that_does_not_satisfy_a_wait_leaves_it_waiting(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, waiter, other = await start_with_row(tmp_path)
        try:
            pending = await waiter.request("transact", "Open_vSwitch", wait_cfg(1, timeout=300))
            assert (await other.call("transact", "Open_vSwitch", set_cfg(2)))["error"] is None
            assert await waiter.silence(0.1) == []
            reply = await waiter.reply(pending, timeout=5)
            assert reply["result"][0]["error"] == "timed out"
        finally:
            await server.close()

    asyncio.run(scenario())


def test_pending_transactions_run_again_in_the_order_they_arrived(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, first, second = await start_with_row(tmp_path)
        try:
            # Both wait for next_cfg 1 and then change it: only the older one
            # can succeed, and its commit leaves the younger one waiting.
            one = await first.request("transact", "Open_vSwitch", wait_cfg(1), set_cfg(10))
            two = await second.request("transact", "Open_vSwitch", wait_cfg(1), set_cfg(20))
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "db.sock"))
            third = Client(reader, writer)
            assert (await third.call("transact", "Open_vSwitch", set_cfg(1)))["error"] is None
            assert (await first.reply(one, timeout=5))["result"] == [{}, {"count": 1}]
            assert await second.silence(0.2) == []
            assert (await third.call("transact", "Open_vSwitch", SELECT))["result"] == [
                {"rows": [{"next_cfg": 10}]}
            ]
            assert (await third.call("transact", "Open_vSwitch", set_cfg(1)))["error"] is None
            assert (await second.reply(two, timeout=5))["result"] == [{}, {"count": 1}]
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_later_request_of_the_same_client_is_answered_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, client, _other = await start_with_row(tmp_path)
        try:
            waiting = await client.request("transact", "Open_vSwitch", wait_cfg(1))
            satisfying = await client.request("transact", "Open_vSwitch", set_cfg(1))
            await client.reply(waiting, timeout=5)
            assert client.reply_order[-2:] == [satisfying, waiting]
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_client_that_disconnects_drops_its_pending_transaction(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, waiter, other = await start_with_row(tmp_path)
        try:
            await waiter.request(
                "transact", "Open_vSwitch", wait_cfg(1), set_external_id("ghost", "yes")
            )
            await asyncio.sleep(0.05)
            assert len(server.triggers) == 1
            waiter.writer.close()
            await waiter.writer.wait_closed()
            for _ in range(100):
                if not server.triggers:
                    break
                await asyncio.sleep(0.01)
            assert server.triggers == []
            assert (await other.call("transact", "Open_vSwitch", set_cfg(1)))["error"] is None
            assert await external_ids(other) == []
        finally:
            await server.close()

    asyncio.run(scenario())


def test_cancel_drops_a_pending_transaction_without_an_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, waiter, other = await start_with_row(tmp_path)
        try:
            pending = await waiter.request(
                "transact", "Open_vSwitch", wait_cfg(1), set_external_id("ghost", "yes")
            )
            # Another client cannot cancel it: request ids are per client.
            await other.request("cancel", pending, request_id=None)
            await waiter.request("cancel", pending, request_id=None)
            assert (await other.call("transact", "Open_vSwitch", set_cfg(1)))["error"] is None
            assert await waiter.silence(0.2) == []
            assert await external_ids(other) == []
            # "cancel" is a notification: as a request it is an unknown method.
            reply = await waiter.call("cancel", pending)
            assert reply["error"]["error"] == "unknown method"
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_request_id_still_pending_cannot_be_reused(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, waiter, other = await start_with_row(tmp_path)
        try:
            await waiter.request("transact", "Open_vSwitch", wait_cfg(1), request_id=7)
            await waiter.request("transact", "Open_vSwitch", wait_cfg(2), request_id=7)
            refused = await waiter.reply(7, timeout=5)
            params = json.dumps(
                ["Open_vSwitch", wait_cfg(2)], sort_keys=True, separators=(",", ":")
            )
            assert refused["error"] == {
                "error": "syntax error",
                "details": "transact: duplicate request ID",
                "syntax": params,
            }
            # The first request is still pending, and still answered.
            assert (await other.call("transact", "Open_vSwitch", set_cfg(1)))["error"] is None
            assert (await waiter.reply(7, timeout=5))["result"] == [{}]
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_transact_notification_is_ignored(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, client, _other = await start_with_row(tmp_path)
        try:
            await client.request("transact", "Open_vSwitch", set_cfg(9), request_id=None)
            assert (await client.call("transact", "Open_vSwitch", SELECT))["result"] == [
                {"rows": [{"next_cfg": 0}]}
            ]
        finally:
            await server.close()

    asyncio.run(scenario())
