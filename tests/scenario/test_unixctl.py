"""The control socket (unixctl) and pvs-appctl, driven end to end in one process.

A :class:`UnixctlServer` runs on the test's event loop; pvs-appctl runs in a
thread (``run()``, with its own output streams) or as a real subprocess, as a
user would start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import stat
import sys
from typing import TYPE_CHECKING, Any

import pytest

from pyvswitch import __version__
from pyvswitch.cli.appctl import run
from pyvswitch.vswitchd.unixctl import UNLIMITED, UnixctlError, UnixctlServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path


class Harness:
    """A server with a few commands, and a way to call pvs-appctl against it."""

    def __init__(self, tmp_path: Path) -> None:
        self.sock = tmp_path / "pvs-vswitchd.ctl"
        self.server = UnixctlServer()
        self.release = asyncio.Event()
        self.calls = 0
        self.server.register("echo", "[arg...]", 0, UNLIMITED, self.echo)
        self.server.register("add", "a b", 2, 2, lambda args: str(int(args[0]) + int(args[1])))
        self.server.register("fail", "[message]", 0, 1, self.fail)
        self.server.register("big", "n", 1, 1, lambda args: "é" * int(args[0]))
        self.server.register("wait", "", 0, 0, self.wait)
        self.server.register("broken", "", 0, 0, lambda _args: str(1 // 0))

    def echo(self, args: list[str]) -> str:
        self.calls += 1
        return "|".join(args)

    def fail(self, args: list[str]) -> str:
        raise UnixctlError(args[0] if args else "it failed")

    async def wait(self, _args: list[str]) -> str:
        # A command that awaits (as the daemon's commands may): it answers
        # only when the test releases it.
        await self.release.wait()
        return "released"

    async def appctl(self, *args: str, target: str | None = None) -> tuple[int, str, str]:
        """pvs-appctl in a thread, so the server keeps running on this loop."""
        out, err = io.StringIO(), io.StringIO()
        argv = ["-t", target or str(self.sock), *args]
        status = await asyncio.to_thread(run, argv, out, err)
        return status, out.getvalue(), err.getvalue()


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path)
    await harness.server.listen(harness.sock)
    try:
        yield harness
    finally:
        await harness.server.close()


def run_scenario(tmp_path: Path, body: Callable[[Harness], Awaitable[None]]) -> None:
    async def go() -> None:
        async with serving(tmp_path) as harness:
            await asyncio.wait_for(body(harness), 60)

    asyncio.run(go())


def server_error(target: str, text: str) -> str:
    return f"{text}\npvs-appctl: {target}: server returned an error\n"


# -- commands and replies -----------------------------------------------------------


def test_command_arguments_reach_the_handler_and_text_comes_back(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        # The handler's text gets the newline OVS always ends a reply with.
        assert await h.appctl("echo", "a", "b c", "", "é") == (0, "a|b c||é\n", "")
        assert await h.appctl("add", "2", "40") == (0, "42\n", "")
        # An empty reply stays empty (OVS adds no newline to nothing).
        assert await h.appctl("echo") == (0, "", "")
        # Options end at the command: what follows is the command's.
        assert await h.appctl("echo", "-t", "--timeout=1") == (0, "-t|--timeout=1\n", "")

    run_scenario(tmp_path, body)


def test_version_and_list_commands(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        assert await h.appctl("version") == (0, f"pvs-vswitchd (pyvswitch) {__version__}\n", "")
        status, out, err = await h.appctl("list-commands")
        assert (status, err) == (0, "")
        # OVS's layout: a heading, then "  %-23s %s" sorted by name, the space
        # kept when there is no usage.
        assert out == (
            "The available commands are:\n"
            "  add                     a b\n"
            "  big                     n\n"
            "  broken                  \n"
            "  echo                    [arg...]\n"
            "  fail                    [message]\n"
            "  list-commands           \n"
            "  version                 \n"
            "  wait                    \n"
        )

    run_scenario(tmp_path, body)


def test_long_command_names_push_the_usage_right(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.register("dpif-netdev/pmd-rxq-rebalance", "[dp]", 0, 1, lambda _a: "")
        h.server.register("exactly-twenty-three-ch", "x", 0, 1, lambda _a: "")
        _, out, _ = await h.appctl("list-commands")
        assert "\n  dpif-netdev/pmd-rxq-rebalance [dp]\n" in out
        assert "\n  exactly-twenty-three-ch x\n" in out

    run_scenario(tmp_path, body)


def test_argument_count_errors_use_ovs_wording(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        t = str(h.sock)
        assert await h.appctl("add", "1") == (
            2,
            "",
            server_error(t, '"add" command requires at least 2 arguments'),
        )
        assert await h.appctl("add", "1", "2", "3") == (
            2,
            "",
            server_error(t, '"add" command takes at most 2 arguments'),
        )
        assert await h.appctl("version", "x") == (
            2,
            "",
            server_error(t, '"version" command takes at most 0 arguments'),
        )

    run_scenario(tmp_path, body)


def test_unknown_command(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        assert await h.appctl("no/such", "x") == (
            2,
            "",
            server_error(
                str(h.sock),
                '"no/such" is not a valid command (use "list-commands" to see a list of '
                "valid commands)",
            ),
        )

    run_scenario(tmp_path, body)


def test_error_replies(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        t = str(h.sock)
        assert await h.appctl("fail") == (2, "", server_error(t, "it failed"))
        # A message that already ends a line is not given a second newline.
        assert await h.appctl("fail", "two\nlines\n") == (
            2,
            "",
            f"two\nlines\npvs-appctl: {t}: server returned an error\n",
        )
        # A handler that raises something else: an error reply, and the
        # server goes on serving.
        status, out, err = await h.appctl("broken")
        assert (status, out) == (2, "")
        assert err.startswith('"broken" command failed: ')
        assert "by zero" in err
        assert await h.appctl("add", "1", "2") == (0, "3\n", "")

    run_scenario(tmp_path, body)


def test_large_reply(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        # 600,000 two-byte characters: 1.2 MB on the wire, read in many
        # pieces that split characters.
        status, out, err = await h.appctl("big", "600000")
        assert (status, err) == (0, "")
        assert out == "é" * 600000 + "\n"

    run_scenario(tmp_path, body)


def test_large_request(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        arg = "x" * (2 << 20)
        status, out, _ = await h.appctl("echo", arg, "y")
        assert (status, out) == (0, arg + "|y\n")

    run_scenario(tmp_path, body)


def test_concurrent_clients_each_get_their_own_reply(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        # A client stuck in a command that awaits holds up no one else.
        stuck = asyncio.create_task(h.appctl("wait"))
        await asyncio.sleep(0.2)
        replies = await asyncio.gather(*(h.appctl("echo", f"client{i}") for i in range(30)))
        assert replies == [(0, f"client{i}\n", "") for i in range(30)]
        assert not stuck.done()
        h.release.set()
        assert await stuck == (0, "released\n", "")

    run_scenario(tmp_path, body)


def test_timeout(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        # ovs-appctl is killed by its alarm: status 128 + SIGALRM.
        assert await h.appctl("--timeout=1", "wait") == (
            142,
            "",
            f"pvs-appctl: {h.sock}: no response within the timeout\n",
        )
        # A reply in time is unaffected by the option.
        assert await h.appctl("--timeout", "5", "echo", "ok") == (0, "ok\n", "")

    run_scenario(tmp_path, body)


# -- targets and options --------------------------------------------------------------


def test_program_name_target_resolves_in_pvs_rundir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVS_RUNDIR", str(tmp_path))

    async def body(h: Harness) -> None:
        # The socket is tmp_path/pvs-vswitchd.ctl: both the default target and
        # its name find it.
        out, err = io.StringIO(), io.StringIO()
        assert await asyncio.to_thread(run, ["echo", "default"], out, err) == 0
        assert out.getvalue() == "default\n"
        assert await h.appctl("echo", "named", target="pvs-vswitchd") == (0, "named\n", "")
        assert await h.appctl("fail", target="pvs-vswitchd") == (
            2,
            "",
            server_error("pvs-vswitchd", "it failed"),
        )

    run_scenario(tmp_path, body)


def test_cannot_connect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PVS_RUNDIR", str(tmp_path))
    out, err = io.StringIO(), io.StringIO()
    assert run(["-t", "nosuchd", "version"], out, err) == 1
    assert err.getvalue() == (
        f'pvs-appctl: cannot connect to "{tmp_path}/nosuchd.ctl" (No such file or directory)\n'
    )
    # A file that is not a listening socket.
    (tmp_path / "plain").write_text("")
    err = io.StringIO()
    assert run(["-t", str(tmp_path / "plain"), "version"], out, err) == 1
    assert err.getvalue() == (
        f'pvs-appctl: cannot connect to "{tmp_path}/plain" (Connection refused)\n'
    )
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("argv", "status", "stdout", "stderr"),
    [
        ([], 1, "", "at least one non-option argument is required (use --help for help)"),
        (["-t"], 1, "", "option requires an argument -- 't'"),
        (["--target"], 1, "", "option '--target' requires an argument"),
        (["--tar"], 1, "", "option '--target' requires an argument"),
        (["--bog=x", "version"], 1, "", "unrecognized option '--bog=x'"),
        (["--bogus", "version"], 1, "", "unrecognized option '--bogus'"),
        (["-x", "version"], 1, "", "invalid option -- 'x'"),
        (["--t=x", "version"], 1, "", "option '--t=x' is ambiguous; possibilities: "
         "'--target' '--timeout'"),
        (["--help=1"], 1, "", "option '--help' doesn't allow an argument"),
        (["--timeout=0", "version"], 1, "", "value 0 on -T or --timeout is invalid"),
        (["-T", "abc", "version"], 1, "", "value abc on -T or --timeout is invalid"),
        (["-V"], 0, f"pvs-appctl (pyvswitch) {__version__}\n", ""),
        (["--vers"], 0, f"pvs-appctl (pyvswitch) {__version__}\n", ""),
    ],
)  # fmt: skip
def test_option_errors(argv: list[str], status: int, stdout: str, stderr: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(argv, out, err) == status
    assert out.getvalue() == stdout
    assert err.getvalue() == (f"pvs-appctl: {stderr}\n" if stderr else "")


def test_help() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(["--help"], out, err) == 0
    assert out.getvalue().startswith("pvs-appctl, for querying and controlling")
    assert "--timeout=SECS" in out.getvalue()


def test_the_command_as_a_user_runs_it(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        # A real process through main(): exit status, stdout, stderr.
        async def appctl(*args: str) -> tuple[int | None, bytes, bytes]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pyvswitch.cli.appctl",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate()
            return proc.returncode, out, err

        t = str(h.sock)
        assert await appctl("-t", t, "echo", "x y") == (0, b"x y\n", b"")
        assert await appctl("-t", t, "fail") == (
            2,
            b"",
            server_error(t, "it failed").encode(),
        )
        status, out, _ = await appctl("-t", t, "big", "300000")
        assert (status, out) == (0, ("é" * 300000 + "\n").encode())

    run_scenario(tmp_path, body)


# -- the wire protocol --------------------------------------------------------------


class Raw:
    """A bare connection to the socket, for what pvs-appctl never sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""

    @classmethod
    async def open(cls, path: Path) -> Raw:
        return cls(*await asyncio.open_unix_connection(str(path)))

    def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)

    async def receive(self) -> Any:
        """The next JSON value, or None when the server closed the connection."""
        decoder = json.JSONDecoder()
        while True:
            text = self.buffer.decode().lstrip()
            if text:
                with contextlib.suppress(json.JSONDecodeError):
                    value, end = decoder.raw_decode(text)
                    self.buffer = text[end:].encode()
                    return value
            chunk = await asyncio.wait_for(self.reader.read(65536), 10)
            if not chunk:
                return None
            self.buffer += chunk


def test_replies_look_like_ovs_vswitchd_replies(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        raw = await Raw.open(h.sock)
        # Two requests in one write, then one request a byte at a time: JSON
        # values back to back, no framing. Ids come back as sent.
        raw.send(
            '{"method":"echo","params":["a"],"id":7} {"method":"fail","params":[],"id":"seven"}\n'
        )
        # An error reply has no "result", as ovs-vswitchd's.
        assert await raw.receive() == {"id": 7, "result": "a\n", "error": None}
        assert await raw.receive() == {"id": "seven", "error": "it failed\n"}
        for byte in json.dumps({"method": "echo", "params": ["é", "b"], "id": [1]}).encode():
            raw.send(bytes([byte]))
            await raw.writer.drain()
        assert await raw.receive() == {"id": [1], "result": "é|b\n", "error": None}
        raw.send('{"method":"echo","params":["a",1],"id":2}')
        assert await raw.receive() == {
            "id": 2,
            "error": '"echo" command has non-string argument\n',
        }
        raw.writer.close()

    run_scenario(tmp_path, body)


@pytest.mark.parametrize(
    "message",
    [
        '{"method":"echo","params":[]}',  # no id: a notification
        '{"method":"echo","params":[],"id":null}',
        '{"method":"echo","id":1}',  # no params
        '{"method":"echo","params":"a","id":1}',
        '{"result":"x","error":null,"id":1}',  # a reply
        "[1, 2]",
        '{"method": }',  # a syntax error
    ],
)
def test_anything_but_a_request_closes_the_connection(tmp_path: Path, message: str) -> None:
    async def body(h: Harness) -> None:
        raw = await Raw.open(h.sock)
        raw.send(message + '{"method":"echo","params":["after"],"id":3}')
        assert await raw.receive() is None
        # Other clients are not affected.
        assert await h.appctl("echo", "still") == (0, "still\n", "")
        assert h.calls == 1

    run_scenario(tmp_path, body)


def test_socket_is_private_and_removed_on_close(tmp_path: Path) -> None:
    async def body() -> None:
        server = UnixctlServer(program="pvs-test", version="pvs-test 1.2.3")
        path = tmp_path / "x.ctl"
        path.write_text("stale")  # a leftover of a crashed daemon is replaced
        await server.listen(path)
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        raw = await Raw.open(path)
        raw.send('{"method":"version","params":[],"id":0}')
        assert await raw.receive() == {"id": 0, "result": "pvs-test 1.2.3\n", "error": None}
        # Closing drops connected clients too.
        await server.close()
        assert await raw.receive() is None
        assert not path.exists()

    asyncio.run(body())


def test_close_leaves_a_socket_that_is_not_its_own(tmp_path: Path) -> None:
    async def body() -> None:
        server = UnixctlServer()
        path = tmp_path / "x.ctl"
        await server.listen(path)
        # Another daemon took the name over (its own socket file).
        path.unlink()
        other = socket.socket(socket.AF_UNIX)
        try:
            other.bind(str(path))
            await server.close()
            assert path.exists()
        finally:
            other.close()
            path.unlink()

    asyncio.run(body())


def test_register_refuses_duplicates_and_bad_counts() -> None:
    server = UnixctlServer()
    with pytest.raises(ValueError, match="already registered"):
        server.register("version", "", 0, 0, lambda _a: "")
    with pytest.raises(ValueError, match="bad argument counts"):
        server.register("x", "", 2, 1, lambda _a: "")


def test_a_reply_that_is_not_text_is_an_error(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.register("nothing", "", 0, 0, lambda _a: None)  # type: ignore[arg-type,return-value]
        status, _, err = await h.appctl("nothing")
        assert status == 2
        assert err.startswith('"nothing" command failed')

    run_scenario(tmp_path, body)


# -- what pvs-appctl does with a misbehaving server ---------------------------------


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b"", "End of file"),
        (b'{"id":0,"result":5,"error":null}', "Invalid argument"),
        (b'{"id":0,"error":{"code":1}}', "Invalid argument"),
        (b"]]]}", "Protocol error"),
    ],
)
def test_transaction_errors(tmp_path: Path, reply: bytes, reason: str) -> None:
    path = tmp_path / "fake.ctl"

    async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        # What the server sends that pvs-appctl skips (a notification, a reply
        # to another id) comes first.
        writer.write(
            b'{"id":null,"method":"update","params":[]}{"id":5,"result":"no","error":null}'
        )
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def body() -> None:
        server = await asyncio.start_unix_server(fake, path=str(path))
        try:
            out, err = io.StringIO(), io.StringIO()
            status = await asyncio.to_thread(run, ["-t", str(path), "x"], out, err)
            assert (status, out.getvalue()) == (1, "")
            assert err.getvalue() == f"pvs-appctl: {path}: transaction error ({reason})\n"
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(body())
