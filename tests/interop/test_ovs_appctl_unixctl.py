"""The real ovs-appctl against our control socket, and pvs-appctl against ovs-vswitchd.

Each question is asked of Open vSwitch 3.1's ovs-vswitchd (the sandbox of
``conftest.py``) and of a :class:`UnixctlServer` running on the test's event
loop with the same commands registered, through the same client, and the
answers compared: standard output, standard error (the target's name aside)
and exit status.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from pyvswitch import __version__
from pyvswitch.vswitchd.unixctl import UNLIMITED, UnixctlError, UnixctlServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from tests.interop.ovs_sandbox import OvsSandbox

pytestmark = pytest.mark.ovs

Result = tuple[int | None, str, str]


def need_ovs_appctl() -> None:
    if shutil.which("ovs-appctl") is None:
        pytest.skip("ovs-appctl is not installed; './run test' installs it")


async def ovs_appctl(*args: str) -> Result:
    """The real ovs-appctl, as a subprocess, so our server keeps running meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        "ovs-appctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


def pvs_appctl(*args: str) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "pyvswitch.cli.appctl", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.returncode, proc.stdout, proc.stderr


def without_log(stderr: str) -> str:
    """ovs-appctl's stderr without its vlog lines ("2026-...|unixctl|WARN|..."), which we lack."""
    return "".join(
        line for line in stderr.splitlines(keepends=True) if not re.match(r"\d{4}-\d\d-\d\d", line)
    )


def serve(
    tmp_path: Path, setup: Callable[[UnixctlServer], None], body: Callable[[str], Awaitable[None]]
) -> None:
    """Run ``body(socket path)`` while a server set up by ``setup`` listens."""

    async def go() -> None:
        server = UnixctlServer()
        setup(server)
        sock = tmp_path / "pvs-vswitchd.ctl"
        await server.listen(sock)
        try:
            await asyncio.wait_for(body(str(sock)), 120)
        finally:
            await server.close()

    asyncio.run(go())


def list_commands(text: str) -> list[tuple[str, str]]:
    """(name, usage) per command of a list-commands output, checking OVS's layout on the way."""
    lines = text.splitlines()
    assert lines[0] == "The available commands are:"
    commands = []
    for line in lines[1:]:
        name = line.split()[0]
        usage = line[2 + max(len(name), 23) + 1 :]
        assert line == f"  {name:<23} {usage}", line
        commands.append((name, usage))
    return commands


def vswitchd_socket(ovs: OvsSandbox) -> str:
    pid = (ovs.dir / "ovs-vswitchd.pid").read_text().strip()
    return str(ovs.dir / f"ovs-vswitchd.{pid}.ctl")


# -- the real ovs-appctl against our server ---------------------------------------------


def test_list_commands_is_ovs_vswitchd_s(ovs: OvsSandbox, tmp_path: Path) -> None:
    real = ovs.appctl("list-commands")
    commands = list_commands(real.stdout)
    assert ("list-commands", "") in commands
    assert ("version", "") in commands

    def setup(server: UnixctlServer) -> None:
        # Every command ovs-vswitchd has, with its usage: the whole listing
        # must come out byte for byte the same.
        for name, usage in commands:
            if name not in server.commands:
                server.register(name, usage, 0, UNLIMITED, lambda _args: "")

    async def body(sock: str) -> None:
        assert await ovs_appctl("-t", sock, "list-commands") == (0, real.stdout, "")

    serve(tmp_path, setup, body)


@pytest.mark.parametrize(
    "args",
    [
        ["no/such-command"],
        ["no/such-command", "arg"],
        ["version", "extra"],
        ["list-commands", "extra"],
        ["bridge/dump-flows"],
        ["bridge/dump-flows", "a", "b", "c"],
        ["dpif/show", "extra"],
    ],
)
def test_errors_are_ovs_vswitchd_s(ovs: OvsSandbox, tmp_path: Path, args: list[str]) -> None:
    real = ovs.appctl(*args, check=False)
    assert real.returncode == 2  # each is an error reply in OVS too

    def setup(server: UnixctlServer) -> None:
        # The argument counts of ovs-vswitchd's commands of these names.
        server.register("bridge/dump-flows", "[--offload-stats] bridge", 1, 2, lambda _a: "")
        server.register("dpif/show", "", 0, 0, lambda _a: "")

    async def body(sock: str) -> None:
        ours = await ovs_appctl("-t", sock, *args)
        expected_err = real.stderr.replace("ovs-appctl: ovs-vswitchd:", f"ovs-appctl: {sock}:")
        assert ours == (real.returncode, real.stdout, expected_err)

    serve(tmp_path, setup, body)


def test_commands_replies_and_errors(tmp_path: Path) -> None:
    need_ovs_appctl()

    def fail(args: list[str]) -> str:
        raise UnixctlError(f"no such bridge: {args[0]}")

    async def later(args: list[str]) -> str:
        await asyncio.sleep(0.1)
        return f"after {args[0]}"

    def setup(server: UnixctlServer) -> None:
        server.register("test/echo", "[arg...]", 0, UNLIMITED, " ".join)
        server.register("test/fail", "bridge", 1, 1, fail)
        server.register("test/later", "what", 1, 1, later)
        server.register("test/big", "", 0, 0, lambda _a: "0123456789abcdé\n" * 65536)

    async def body(sock: str) -> None:
        assert await ovs_appctl("-t", sock, "test/echo", "a", "b c", "é") == (0, "a b c é\n", "")
        assert await ovs_appctl("-t", sock, "test/later", "tea") == (0, "after tea\n", "")
        assert await ovs_appctl("-t", sock, "test/fail", "br9") == (
            2,
            "",
            f"no such bridge: br9\novs-appctl: {sock}: server returned an error\n",
        )
        # About 1 MB (17 bytes a line).
        status, out, err = await ovs_appctl("-t", sock, "test/big")
        assert (status, err) == (0, "")
        assert out == "0123456789abcdé\n" * 65536
        assert await ovs_appctl("-t", sock, "version") == (
            0,
            f"pvs-vswitchd (pyvswitch) {__version__}\n",
            "",
        )
        # Many ovs-appctl at once.
        many = await asyncio.gather(
            *(ovs_appctl("-t", sock, "test/later", str(i)) for i in range(20))
        )
        assert many == [(0, f"after {i}\n", "") for i in range(20)]

    serve(tmp_path, setup, body)


def test_ovs_appctl_timeout_against_a_command_that_waits(tmp_path: Path) -> None:
    need_ovs_appctl()
    release = asyncio.Event()

    async def wait(_args: list[str]) -> str:
        await release.wait()
        return "done"

    async def body(sock: str) -> None:
        status, out, err = await ovs_appctl("--timeout=1", "-t", sock, "test/wait")
        # Killed by its alarm: a shell reports 128 + SIGALRM = 142, what
        # pvs-appctl exits with.
        assert (status, out) == (-14, "")
        status, _, err = await asyncio.to_thread(
            pvs_appctl, "--timeout=1", "-t", sock, "test/wait"
        )
        assert status == 142
        assert err == f"pvs-appctl: {sock}: no response within the timeout\n"
        release.set()

    serve(tmp_path, lambda server: server.register("test/wait", "", 0, 0, wait), body)


# -- pvs-appctl against the real ovs-vswitchd --------------------------------------------


def test_pvs_appctl_talks_to_ovs_vswitchd(ovs: OvsSandbox) -> None:
    sock = vswitchd_socket(ovs)
    for args in (
        ["version"],
        ["list-commands"],
        ["dpif/show"],
        ["no/such-command"],
        ["version", "extra"],
        ["bridge/dump-flows"],
        ["bridge/dump-flows", "nosuchbridge"],
    ):
        real = ovs.run("ovs-appctl", "-t", sock, *args, check=False)
        ours = pvs_appctl("-t", sock, *args)
        assert ours == (
            real.returncode,
            real.stdout,
            real.stderr.replace("ovs-appctl:", "pvs-appctl:"),
        ), args


# -- what each client says when there is no proper answer ----------------------------------


def test_connection_failures_are_reported_alike(tmp_path: Path) -> None:
    need_ovs_appctl()
    (tmp_path / "plain").write_text("")
    for target in (str(tmp_path / "missing.ctl"), str(tmp_path / "plain")):
        real = subprocess.run(
            ["ovs-appctl", "-t", target, "version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        ours = pvs_appctl("-t", target, "version")
        assert real.returncode == 1
        assert ours == (
            real.returncode,
            real.stdout,
            without_log(real.stderr).replace("ovs-appctl:", "pvs-appctl:"),
        )


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # the server hangs up
        b'{"id":0,"result":5,"error":null}',  # a result that is not text
        b'{"id":0,"error":["no"]}',  # an error that is not text
        b'{"id":0,"result":"ok\\n","error":null}',
        b'{"id":0,"result":"no newline","error":null}',
        b'{"id":0,"error":"bad"}',
    ],
)
def test_misbehaving_servers_are_reported_alike(tmp_path: Path, reply: bytes) -> None:
    need_ovs_appctl()
    sock = str(tmp_path / "fake.ctl")

    async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def body() -> None:
        server = await asyncio.start_unix_server(fake, path=sock)
        try:
            real = await ovs_appctl("-t", sock, "x")
            ours = await asyncio.to_thread(pvs_appctl, "-t", sock, "x")
        finally:
            server.close()
            await server.wait_closed()
        assert ours == (
            real[0],
            real[1],
            without_log(real[2]).replace("ovs-appctl:", "pvs-appctl:"),
        )

    asyncio.run(body())


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-t"],
        ["--target"],
        ["--tar"],
        ["--bogus", "version"],
        ["--bog=x", "version"],
        ["-x", "version"],
        ["--t=x", "version"],
        ["--help=1"],
        ["--timeout=0", "version"],
        ["--timeout=abc", "version"],
        ["--timeout"],
    ],
)
def test_option_errors_are_ovs_appctl_s(args: list[str]) -> None:
    need_ovs_appctl()
    real = subprocess.run(
        ["ovs-appctl", *args], capture_output=True, text=True, check=False, timeout=30
    )
    assert pvs_appctl(*args) == (
        real.returncode,
        real.stdout,
        real.stderr.replace("ovs-appctl:", "pvs-appctl:"),
    )
