"""Transactions that wait, against Open vSwitch's own ovsdb-server.

Each scenario drives a real ovsdb-server (a private one, serving a database of
our schema) and our server the same way, over their unix sockets with a raw
JSON-RPC client, and records what a client sees: the replies, their order,
and the silence while a transaction waits. The records must be equal once
UUIDs and the milliseconds in "timed out after N ms" are replaced (the
milliseconds are checked to lie between the timeout and the time waited).

A second test compares the engine, for a caller that cannot wait, with
``ovsdb-tool transact``, which cannot wait either.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import pytest

from pyvswitch.ovsdb.database import Database
from pyvswitch.ovsdb.schema import load_vswitch_schema
from pyvswitch.ovsdb.server import OvsdbServer
from tests.interop.test_ovs_ovsdb_engine import OUR_SCHEMA, UUID_RE, _need
from tests.interop.test_ovs_ovsdb_engine import OvsdbServer as RealOvsdbServer
from tests.scenario.test_ovsdb_server import (
    SELECT,
    Client,
    set_cfg,
    set_external_id,
    wait_cfg,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.ovs

OVS = "Open_vSwitch"
TIMED_OUT_RE = re.compile(r"^\"wait\" timed out after (\d+) ms$")

Connect = Callable[[], Awaitable[Client]]
Scenario = Callable[[Connect], Awaitable[list[Any]]]


@pytest.fixture
def real() -> Iterator[RealOvsdbServer]:
    _need("ovsdb-tool", "ovsdb-server")
    srv = RealOvsdbServer()
    try:
        with resources.as_file(OUR_SCHEMA) as path:
            srv.start(str(path))
        yield srv
    finally:
        srv.stop()


async def _prepare(connect: Connect) -> Client:
    """A client of a database holding the Open_vSwitch row (next_cfg 0)."""
    client = await connect()
    reply = await client.call("transact", OVS, {"op": "insert", "table": OVS, "row": {}})
    assert reply["error"] is None, reply
    return client


async def _external_ids(client: Client) -> Any:
    reply = await client.call(
        "transact",
        OVS,
        {"op": "select", "table": OVS, "where": [], "columns": ["external_ids"]},
    )
    return reply["result"]


# -- scenarios: each returns what its clients saw --------------------------------------


async def timed_out(connect: Connect) -> list[Any]:
    client = await _prepare(connect)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await client.call(
        "transact",
        OVS,
        {"op": "comment", "comment": "c"},
        wait_cfg(1, timeout=200),
        set_external_id("waited", "yes"),
    )
    return [_timed(reply, 200, loop.time() - started), await _external_ids(client)]


async def satisfied_later(connect: Connect) -> list[Any]:
    waiter = await _prepare(connect)
    other = await connect()
    pending = await waiter.request(
        "transact", OVS, wait_cfg(1), set_external_id("waited", "yes"), SELECT
    )
    seen: list[Any] = [await waiter.silence(0.2)]
    seen.append(await other.call("transact", OVS, SELECT))
    seen.append(await other.call("transact", OVS, set_cfg(1)))
    seen.append(await waiter.reply(pending, timeout=5))
    seen.append(await _external_ids(other))
    return seen


async def unrelated_commit_then_timeout(connect: Connect) -> list[Any]:
    waiter = await _prepare(connect)
    other = await connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    pending = await waiter.request("transact", OVS, wait_cfg(1, timeout=300))
    seen: list[Any] = [await other.call("transact", OVS, set_cfg(2))]
    seen.append(await waiter.silence(0.1))
    reply = await waiter.reply(pending, timeout=5)
    seen.append(_timed(reply, 300, loop.time() - started))
    return seen


async def later_wait_without_timeout(connect: Connect) -> list[Any]:
    # The first wait holds and has a timeout; the second has none, so the
    # transaction outlives the first's timeout. A commit then breaks the first.
    waiter = await _prepare(connect)
    other = await connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    pending = await waiter.request("transact", OVS, wait_cfg(0, timeout=100), wait_cfg(1))
    seen: list[Any] = [await waiter.silence(0.3)]
    seen.append(await other.call("transact", OVS, set_cfg(2)))
    reply = await waiter.reply(pending, timeout=5)
    # The commit came at least 0.3 s after the request (less the time to send it).
    seen.append(_timed(reply, 250, loop.time() - started))
    return seen


async def same_client_order(connect: Connect) -> list[Any]:
    client = await _prepare(connect)
    waiting = await client.request("transact", OVS, wait_cfg(1))
    satisfying = await client.request("transact", OVS, set_cfg(1))
    last = await client.reply(waiting, timeout=5)
    return [client.reply_order[-2:] == [satisfying, waiting], last]


async def pending_in_order(connect: Connect) -> list[Any]:
    first = await _prepare(connect)
    second = await connect()
    third = await connect()
    one = await first.request("transact", OVS, wait_cfg(1), set_cfg(10))
    two = await second.request("transact", OVS, wait_cfg(1), set_cfg(20))
    seen: list[Any] = [await first.silence(0.1)]
    seen.append(await third.call("transact", OVS, set_cfg(1)))
    seen.append(await first.reply(one, timeout=5))
    seen.append(await second.silence(0.2))
    seen.append(await third.call("transact", OVS, SELECT))
    seen.append(await third.call("transact", OVS, set_cfg(1)))
    seen.append(await second.reply(two, timeout=5))
    return seen


async def cancelled(connect: Connect) -> list[Any]:
    waiter = await _prepare(connect)
    other = await connect()
    pending = await waiter.request("transact", OVS, wait_cfg(1), set_external_id("x", "y"))
    await other.request("cancel", pending, request_id=None)
    await waiter.request("cancel", pending, request_id=None)
    seen: list[Any] = [await other.call("transact", OVS, set_cfg(1))]
    seen.append(await waiter.silence(0.3))
    seen.append(await _external_ids(other))
    return seen


async def disconnected(connect: Connect) -> list[Any]:
    waiter = await _prepare(connect)
    other = await connect()
    await waiter.request("transact", OVS, wait_cfg(1), set_external_id("x", "y"))
    await waiter.silence(0.1)
    waiter.writer.close()
    await waiter.writer.wait_closed()
    await asyncio.sleep(0.1)
    return [await other.call("transact", OVS, set_cfg(1)), await _external_ids(other)]


async def duplicate_id(connect: Connect) -> list[Any]:
    waiter = await _prepare(connect)
    other = await connect()
    await waiter.request("transact", OVS, wait_cfg(1), request_id=7)
    await waiter.request("transact", OVS, wait_cfg(2), request_id=7)
    refused = await waiter.reply(7, timeout=5)
    seen: list[Any] = [refused]
    seen.append(await other.call("transact", OVS, set_cfg(1)))
    seen.append(await waiter.reply(7, timeout=5))
    return seen


async def notification(connect: Connect) -> list[Any]:
    client = await _prepare(connect)
    await client.request("transact", OVS, set_cfg(9), request_id=None)
    return [await client.call("transact", OVS, SELECT)]


SCENARIOS: list[Scenario] = [
    timed_out,
    satisfied_later,
    unrelated_commit_then_timeout,
    later_wait_without_timeout,
    same_client_order,
    pending_in_order,
    cancelled,
    disconnected,
    duplicate_id,
    notification,
]


def _timed(reply: dict[str, Any], at_least_ms: int, waited_s: float) -> dict[str, Any]:
    """The reply with "after N ms" replaced, once N is checked to be plausible."""
    results = []
    for result in reply["result"]:
        match = TIMED_OUT_RE.match(result.get("details", "")) if result else None
        if match:
            ms = int(match.group(1))
            assert at_least_ms <= ms <= waited_s * 1000 + 1, (ms, at_least_ms, waited_s)
            results.append({**result, "details": '"wait" timed out after N ms'})
        else:
            results.append(result)
    assert any(r and r.get("details") == '"wait" timed out after N ms' for r in results), reply
    return {**reply, "result": results}


def _normalize(seen: list[Any]) -> Any:
    names: dict[str, str] = {}

    def name(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"<uuid{len(names)}>")

    return json.loads(UUID_RE.sub(name, json.dumps(seen)))


def _error_member(seen: Any) -> Any:
    # ovsdb-server leaves "result" out of an error reply; ours sends "result":
    # null beside the error (as JSON-RPC 1.0 asks). Only the error is compared.
    if isinstance(seen, dict) and seen.get("error") is not None:
        return {"id": seen.get("id"), "error": seen["error"]}
    if isinstance(seen, list):
        return [_error_member(item) for item in seen]
    return seen


async def _on_ovs(real: RealOvsdbServer, scenario: Scenario) -> list[Any]:
    async def connect() -> Client:
        reader, writer = await asyncio.open_unix_connection(str(real.sock))
        return Client(reader, writer)

    return await scenario(connect)


async def _on_ours(tmp_path: Path, scenario: Scenario) -> list[Any]:
    server = OvsdbServer(Database(load_vswitch_schema()))
    sock = tmp_path / "db.sock"
    await server.listen(sock)

    async def connect() -> Client:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        return Client(reader, writer)

    try:
        return await scenario(connect)
    finally:
        await server.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_waiting_transactions_behave_as_in_ovsdb_server(
    real: RealOvsdbServer, tmp_path: Path, scenario: Scenario
) -> None:
    theirs = _error_member(_normalize(asyncio.run(_on_ovs(real, scenario))))
    mine = _error_member(_normalize(asyncio.run(_on_ours(tmp_path, scenario))))
    assert mine == theirs


# -- a caller that cannot wait -----------------------------------------------------------

CANNOT_WAIT: list[list[dict[str, Any]]] = [
    [{"op": "comment", "comment": "c"}, wait_cfg(1), {"op": "comment", "comment": "d"}],
    [wait_cfg(1, timeout=5)],
    [wait_cfg(1, timeout=0)],
    [wait_cfg(0), set_cfg(3)],
    [{**wait_cfg(1), "timeout": 0.5}],
    [{**wait_cfg(1), "timeout": 1e30}],
    [{**wait_cfg(1), "timeout": -1.0}],
    [{**wait_cfg(0), "timeout": 1.0}],
    [{**wait_cfg(1, timeout=0), "foo": 1}],
    [{"op": "wait"}],
    [{"op": "abort", "x": 1}],
]


def test_a_caller_that_cannot_wait_matches_ovsdb_tool_transact() -> None:
    _need("ovsdb-tool")
    real = RealOvsdbServer()
    try:
        with resources.as_file(OUR_SCHEMA) as path:
            real.run("ovsdb-tool", "create", str(real.dir / "db.db"), str(path))
        ours = Database(load_vswitch_schema())
        insert = [{"op": "insert", "table": OVS, "row": {}}]
        real.run("ovsdb-tool", "transact", str(real.dir / "db.db"), json.dumps([OVS, *insert]))
        ours.transact(insert)
        mismatches = []
        for ops in CANNOT_WAIT:
            out = real.run(
                "ovsdb-tool", "transact", str(real.dir / "db.db"), json.dumps([OVS, *ops])
            )
            theirs = json.loads(out.stdout)
            mine = json.loads(json.dumps(ours.transact(json.loads(json.dumps(ops)))[0]))
            if theirs != mine:
                mismatches.append(f"{json.dumps(ops)}\n  ovsdb-tool: {theirs}\n  ours: {mine}")
        assert not mismatches, "\n".join(mismatches)
    finally:
        real.stop()
