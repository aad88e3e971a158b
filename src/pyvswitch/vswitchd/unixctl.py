"""The control socket: Open vSwitch's "unixctl" protocol, which ``ovs-appctl`` speaks.

A daemon registers commands (``dpif/show``, ``ofproto/trace``, ...) and serves
them on a unix socket; ``pvs-appctl`` and the real ``ovs-appctl`` call them.
The protocol is OVS's ``lib/unixctl.c``: JSON-RPC 1.0 requests
``{"method": NAME, "params": [STRING...], "id": ID}`` answered by
``{"id": ID, "result": TEXT, "error": null}`` or ``{"id": ID, "error": TEXT}``,
JSON values back to back on the stream with no framing. As in OVS, a non-empty
reply text always ends with a newline (one is added when missing), the
argument-count and unknown-command errors carry OVS's wording, and anything
that is not a request closes the connection.

Requests on one connection are answered one at a time, in order (OVS does not
read a connection's next request before it has answered the previous one);
connections are served concurrently, so a handler that awaits (a coroutine)
holds up only its own client.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import inspect
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvswitch import __version__

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    #: A command's implementation: its arguments (without the command name) in,
    #: the reply text out, or :class:`UnixctlError` raised for an error reply.
    Handler = Callable[[list[str]], str | Awaitable[str]]

log = logging.getLogger("pyvswitch.unixctl")

#: ``max_args`` for a command that takes any number of arguments (OVS's INT_MAX).
UNLIMITED = 2**31 - 1
#: The most a client may send before a complete request (a bound on memory).
MAX_PENDING = 16 << 20


class UnixctlError(Exception):
    """Raised by a handler: the client gets ``message`` as an error reply."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _ProtocolError(Exception):
    """The peer sent something that is not a unixctl request: drop the connection."""


@dataclass(frozen=True)
class Command:
    """One registered command, as ``unixctl_command_register()`` records it."""

    name: str
    usage: str
    min_args: int
    max_args: int
    handler: Handler


def _reply_text(text: str) -> str:
    # unixctl_command_reply__() appends the newline a non-empty body lacks, so
    # ovs-appctl's output always ends a line whatever the handler returned.
    return text + "\n" if text and not text.endswith("\n") else text


class UnixctlServer:
    """Serves registered commands on a unix socket, the way ovs-vswitchd serves ovs-appctl."""

    def __init__(self, program: str = "pvs-vswitchd", version: str | None = None) -> None:
        self.program = program
        self.version = version or f"{program} (pyvswitch) {__version__}"
        self.commands: dict[str, Command] = {}
        self.path: Path | None = None
        self._server: asyncio.base_events.Server | None = None
        self._socket_inode: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.register("list-commands", "", 0, 0, self._list_commands)
        self.register("version", "", 0, 0, lambda _args: self.version)

    # -- commands ------------------------------------------------------------------

    def register(
        self, name: str, usage: str, min_args: int, max_args: int, handler: Handler
    ) -> None:
        """Add command ``name`` taking ``min_args`` to ``max_args`` string arguments.

        ``usage`` is what ``list-commands`` shows after the name ("bridge [port]").
        ``handler(args)`` returns the reply text (or a coroutine that does) or
        raises :class:`UnixctlError` for an error reply.
        """
        if name in self.commands:
            # OVS asserts the same: two handlers for one name is a programming error.
            raise ValueError(f"unixctl command {name!r} is already registered")
        if not 0 <= min_args <= max_args:
            raise ValueError(f"{name}: bad argument counts {min_args}..{max_args}")
        self.commands[name] = Command(name, usage, min_args, max_args, handler)

    def _list_commands(self, _args: list[str]) -> str:
        # OVS: "  %-23s %s\n" per command, sorted by name with strcmp(); a
        # command without usage keeps the space after its padded name.
        lines = ["The available commands are:\n"]
        lines += [f"  {name:<23} {self.commands[name].usage}\n" for name in sorted(self.commands)]
        return "".join(lines)

    async def call(self, method: str, params: list[Any]) -> tuple[bool, str]:
        """Run one request: ``(True, result text)`` or ``(False, error text)``."""
        command = self.commands.get(method)
        if command is None:
            error = (
                f'"{method}" is not a valid command (use "list-commands" to see a list of '
                "valid commands)"
            )
        elif len(params) < command.min_args:
            error = f'"{method}" command requires at least {command.min_args} arguments'
        elif len(params) > command.max_args:
            error = f'"{method}" command takes at most {command.max_args} arguments'
        elif not all(isinstance(p, str) for p in params):
            error = f'"{method}" command has non-string argument'
        else:
            try:
                # object: a handler outside mypy's view may return anything.
                result: object = command.handler(list(params))
                if inspect.isawaitable(result):
                    result = await result
            except UnixctlError as exc:
                error = exc.message
            except Exception as exc:
                # OVS would abort the daemon; one broken command should not
                # take the switch down, so the client gets the error and the
                # log gets the traceback.
                log.exception("unixctl command %r failed", method)
                error = f'"{method}" command failed: {exc}'
            else:
                if not isinstance(result, str):
                    log.error("unixctl command %r returned %r, not text", method, result)
                    error = f'"{method}" command failed: it returned no text'
                else:
                    return True, _reply_text(result)
        return False, _reply_text(error)

    # -- sockets -------------------------------------------------------------------

    async def listen(self, path: Path | str) -> None:
        """Serve on unix socket ``path`` (mode 0600: controlling the switch is root's)."""
        path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        # The umask makes the socket private from the moment it exists, so no
        # one can connect in the window before the chmod.
        old_mask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(path))
        finally:
            os.umask(old_mask)
        path.chmod(0o600)
        self.path = path
        self._socket_inode = path.stat().st_ino

    async def close(self) -> None:
        """Stop listening, drop every client and remove the socket file."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        # As OVS on exit: remove the socket, but only if it is still ours (a
        # newer daemon may have replaced it).
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                st = self.path.stat()
                if stat.S_ISSOCK(st.st_mode) and st.st_ino == self._socket_inode:
                    self.path.unlink()
            self.path = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        buffer = ""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                # An incremental decoder: a character split between two reads
                # must not turn into two replacement characters.
                buffer += decoder.decode(chunk)
                messages, buffer = split_json_values(buffer)
                for message in messages:
                    msg_id, method, params = _parse_request(message)
                    ok, text = await self.call(method, params)
                    reply = (
                        {"id": msg_id, "result": text, "error": None}
                        if ok
                        else {"id": msg_id, "error": text}
                    )
                    writer.write(json.dumps(reply, separators=(",", ":")).encode())
                    await writer.drain()
        except _ProtocolError as exc:
            log.warning("unixctl client dropped: %s", exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # close() cancels connections (a handler may be waiting for
            # something that will never come). The task is asyncio.streams',
            # whose done-callback would log a cancelled task as an error, so
            # it ends quietly instead.
            pass
        finally:
            self._connections.discard(task)
            writer.close()


def split_json_values(text: str) -> tuple[list[Any], str]:
    """The complete JSON values at the start of ``text``, and the rest (an incomplete value).

    Raises :class:`_ProtocolError` when the text cannot become valid JSON.
    """
    values: list[Any] = []
    text = text.lstrip()
    if len(text) > MAX_PENDING:
        raise _ProtocolError(f"{len(text)} bytes without a complete request")
    # A request is an object, so a complete one ends with "}"; decoding only
    # then keeps a large message arriving in many reads from being re-parsed
    # from its start after every read.
    if not text.rstrip().endswith("}"):
        return values, text
    decoder = json.JSONDecoder()
    while text:
        try:
            value, end = decoder.raw_decode(text)
        except json.JSONDecodeError as exc:
            # The text ends with "}", so the value can only be incomplete if
            # the parser ran off the end or is inside a string; an error
            # anywhere else is a syntax error that more bytes cannot fix.
            if exc.pos >= len(text) or exc.msg.startswith("Unterminated string"):
                break
            raise _ProtocolError(f"syntax error in JSON: {exc}") from None
        values.append(value)
        text = text[end:].lstrip()
    return values, text


def _parse_request(message: Any) -> tuple[Any, str, list[Any]]:
    # OVS's jsonrpc layer closes the connection on anything other than a
    # well-formed request: a reply, a notification (null id), params that are
    # not an array.
    if not isinstance(message, dict):
        raise _ProtocolError(f"expected a JSON object, got {type(message).__name__}")
    method = message.get("method")
    params = message.get("params")
    msg_id = message.get("id")
    if not isinstance(method, str) or not isinstance(params, list) or msg_id is None:
        raise _ProtocolError(f"not a JSON-RPC request: {json.dumps(message)[:200]}")
    return msg_id, method, params
