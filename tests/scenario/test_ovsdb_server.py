"""The OVSDB JSON-RPC server, driven over its unix socket the way clients drive it."""

from __future__ import annotations

import asyncio
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

    async def call(self, method: str, *params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.writer.write(
            json.dumps({"method": method, "params": list(params), "id": self.next_id}).encode()
        )
        await self.writer.drain()
        while True:
            message = await self.receive()
            if message.get("id") == self.next_id:
                return message
            self.notifications.append(message)

    async def receive(self) -> dict[str, Any]:
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
            chunk = await asyncio.wait_for(self.reader.read(65536), 10)
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
        finally:
            await server.close()
            assert server.journal is not None
            server.journal.close()
        # The socket is root's only.
        assert stat.S_IMODE((tmp_path / "db.sock").stat().st_mode) == 0o600

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
