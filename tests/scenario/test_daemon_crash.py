"""pvs-vswitchd killed with SIGKILL while clients commit: nothing acknowledged is lost.

tests/system/test_ovsdb_journal_crash.py kills a process that drives the
journal directly; this kills the whole daemon while an OVSDB client keeps
committing through ``db.sock``, as ovs-vsctl would, with records large
enough that a kill often lands inside a write. After each kill the daemon is
started again on the same files: it must start (the database loads), and
every transaction the server answered must be there. The rounds are bounded
in count and time.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from tests.daemon import start_daemon, stop_daemon
from tests.scenario.ofctl_helpers import ok

if TYPE_CHECKING:
    from pathlib import Path

ROUNDS = 8
BUDGET = 90.0  # seconds for all rounds together
PAD = "x" * 20_000


class _Client:
    """A minimal OVSDB JSON-RPC client on ``db.sock``."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.buffer = ""
        self.decoder = json.JSONDecoder()
        self.next_id = 0

    def call(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.next_id += 1
        self.sock.sendall(
            json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        )
        while True:
            with contextlib.suppress(ValueError):
                message, end = self.decoder.raw_decode(self.buffer.lstrip())
                self.buffer = self.buffer.lstrip()[end:]
                if message.get("id") == self.next_id:
                    return dict(message)
                continue
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("closed")
            self.buffer += data.decode()

    def close(self) -> None:
        self.sock.close()


def _add_key(client: _Client, key: str) -> bool:
    """Insert ``key`` into Open_vSwitch's external_ids; True once the server acknowledged it."""
    reply = client.call(
        "transact",
        [
            "Open_vSwitch",
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [["external_ids", "insert", ["map", [[key, PAD]]]]],
            },
        ],
    )
    results = reply.get("result")
    # Acknowledged: committed, and it changed the one Open_vSwitch row.
    return (
        reply.get("error") is None
        and isinstance(results, list)
        and results[0].get("count") == 1
        and not any("error" in r for r in results if r)
    )


def _keys(rundir: Path) -> set[str]:
    client = _Client(rundir / "db.sock")
    try:
        reply = client.call(
            "transact",
            [
                "Open_vSwitch",
                {
                    "op": "select",
                    "table": "Open_vSwitch",
                    "where": [],
                    "columns": ["external_ids"],
                },
            ],
        )
    finally:
        client.close()
    rows = reply["result"][0]["rows"]
    return {key for row in rows for key, _ in row["external_ids"][1]}


def test_sigkill_during_commits_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rng = random.Random(7)
    acknowledged: set[str] = set()
    deadline = time.monotonic() + BUDGET
    proc = start_daemon(rundir)
    try:
        ok("vsctl", rundir, "--no-wait", "init")
        assert _keys(rundir) == set()
        for round_no in range(ROUNDS):
            stop = threading.Event()

            def commit(round_no: int = round_no, stop: threading.Event = stop) -> None:
                try:
                    client = _Client(rundir / "db.sock")
                    n = 0
                    while not stop.is_set():
                        key = f"r{round_no}k{n}"
                        if _add_key(client, key):
                            acknowledged.add(key)
                        n += 1
                except (OSError, ConnectionError):
                    return

            writer = threading.Thread(target=commit)
            writer.start()
            time.sleep(rng.uniform(0.2, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            stop.set()
            writer.join(20)
            assert not writer.is_alive()
            # The same files again: the daemon starts and has everything it acknowledged.
            proc = start_daemon(rundir)
            missing = acknowledged - _keys(rundir)
            assert not missing, f"round {round_no}: {len(missing)} acknowledged keys lost"
            if time.monotonic() > deadline:
                break
        assert len(acknowledged) > ROUNDS  # the kills did land among commits
    finally:
        stop_daemon(proc)
