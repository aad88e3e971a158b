"""OpenFlow rules that survive a restart (Open vSwitch forgets them; we do not).

The daemon keeps every bridge's rules in ``flows.json`` beside the database:
each rule as a flow in ovs-ofctl's syntax (:func:`~pyvswitch.ofproto.flow_dump.flow_text`,
ports as numbers), read back with the parser ``pvs-ofctl add-flow`` uses::

    {"format": "pyvswitch-flows", "version": 1,
     "bridges": {"br0": ["priority=10,ip,actions=output:2", ...]}}

A bridge is in the file once its rules have changed: by a command
(``pvs-ofctl``), by a change of its fail mode, or because a rule expired. A
rule that timed out is thus gone from the file too and does not come back
after a restart. A bridge that is not in the file starts with the default
rules (the NORMAL flow of a standalone bridge), so a bridge whose rules were
all deleted is stored with none. The file is written before the command is
answered and crash-safely: a temporary file, fsync, rename over the old one,
fsync of the directory; a write that fails leaves the old file, and the
command that needed it is refused and undone.

When the daemon creates a bridge that the file knows, it installs the stored
rules instead of the defaults. Counters start from zero, and idle and hard
timeouts start again from the moment of restoring (the daemon's clock does
not run while it is stopped). A bridge that leaves the database (``del-br``)
leaves the file too. A file that cannot be read or parsed is logged by name
and set aside as ``flows.json.bad``, and the daemon goes on with defaults.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from pyvswitch.flow.match import FlowParseError
from pyvswitch.ofproto.flow_cmd import (
    ADD,
    FlowCommandError,
    all_or_nothing,
    apply_commands,
    parse_flow_command,
)
from pyvswitch.ofproto.flow_dump import flow_text

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from pyvswitch.ofproto.bridge import Bridge

log = logging.getLogger("pyvswitch.vswitchd.flowstore")

FLOWS_FILE = "flows.json"
_FORMAT = "pyvswitch-flows"
_VERSION = 1


class FlowStoreError(Exception):
    """The rules could not be written; the message names the file and the reason."""


def bridge_flows(bridge: Bridge) -> list[str]:
    """Every rule of ``bridge`` in stored form, table by table, in lookup order."""
    return [flow_text(rule) for rule in bridge.rules()]


class FlowStore:
    """The stored rules of every bridge, and the file that holds them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bridges: dict[str, list[str]] = self._load()

    # -- reading ------------------------------------------------------------------

    def _load(self) -> dict[str, list[str]]:
        # A temporary file is what a crash in the middle of a save leaves; the
        # file it was to replace is intact.
        with contextlib.suppress(FileNotFoundError):
            self._temp().unlink()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            return self._set_aside(f"cannot be read ({exc.strerror or exc})")
        try:
            return _parse(data)
        except _CorruptFileError as exc:
            return self._set_aside(str(exc))

    def _set_aside(self, reason: str) -> dict[str, list[str]]:
        bad = self.path.with_name(self.path.name + ".bad")
        try:
            self.path.replace(bad)
            kept = f"the file is kept as {bad}"
        except OSError as exc:
            kept = f"it could not be kept as {bad} ({exc.strerror or exc})"
        log.error("%s: %s; bridges start with their default flows, %s", self.path, reason, kept)
        return {}

    def restore(self, bridge: Bridge, now: float) -> bool:
        """Give a new bridge its stored rules, or date its default ones ``now``.

        Returns whether rules were restored. Stored rules replace the
        defaults, so a user who deleted the NORMAL flow does not get it back.
        """
        flows = self.bridges.get(bridge.name)
        if flows is None:
            for rule in bridge.rules():
                rule.created = rule.used = now
            return False
        try:
            commands = [parse_flow_command(text, ADD) for text in flows]
            with all_or_nothing(bridge):
                for table in bridge.tables:
                    for rule in list(table.rules):
                        table.remove(rule)
                apply_commands(bridge, commands, now)
        except (FlowParseError, FlowCommandError):
            # The file was checked when it was read, so this is a bug, not bad
            # input: the bridge keeps its defaults and the log gets the details.
            log.exception("%s: cannot restore the flows of %s", self.path, bridge.name)
            return False
        log.info("%s: restored %d flows from %s", bridge.name, len(flows), self.path)
        return True

    # -- writing ------------------------------------------------------------------

    def update(self, bridge: Bridge) -> None:
        """Store ``bridge``'s rules as they are now; raises FlowStoreError if that fails.

        On failure nothing changes, in memory or on disk.
        """
        flows = bridge_flows(bridge)
        old = self.bridges.get(bridge.name)
        if old == flows:
            return
        self.bridges[bridge.name] = flows
        try:
            self._save()
        except FlowStoreError:
            if old is None:
                del self.bridges[bridge.name]
            else:
                self.bridges[bridge.name] = old
            raise

    def forget(self, names: Iterable[str]) -> None:
        """Drop the stored rules of bridges that no longer exist (logged if saving fails)."""
        gone = [name for name in names if name in self.bridges]
        if not gone:
            return
        for name in gone:
            del self.bridges[name]
        error = None
        try:
            self._save()
        except FlowStoreError as exc:
            error = exc
        if error is not None:
            log.error("%s", error)

    def _temp(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    def _save(self) -> None:
        document = {"format": _FORMAT, "version": _VERSION, "bridges": self.bridges}
        data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
        temp = self._temp()
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            temp.replace(self.path)
            _fsync_directory(self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise FlowStoreError(
                f"{self.path}: cannot save the flows ({exc.strerror or exc})"
            ) from None


def _fsync_directory(path: Path) -> None:
    # The rename is durable only once the directory entry is on the disk.
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _CorruptFileError(Exception):
    """The flows file is not what this module writes; the message says how."""


def _parse(data: bytes) -> dict[str, list[str]]:
    """The bridges and flows of a flows file; _CorruptFileError says what is wrong with it."""
    try:
        document: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _CorruptFileError(f"not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise _CorruptFileError(f'not a flows file (no "format": "{_FORMAT}")')
    if document.get("version") != _VERSION:
        raise _CorruptFileError(f"unknown version {document.get('version')!r}")
    bridges = document.get("bridges")
    if not isinstance(bridges, dict):
        raise _CorruptFileError('"bridges" is not an object')
    result: dict[str, list[str]] = {}
    for name, flows in bridges.items():
        if not isinstance(flows, list) or not all(isinstance(f, str) for f in flows):
            raise _CorruptFileError(f"bridge {name}: the flows are not a list of strings")
        for text in flows:
            try:
                parse_flow_command(text, ADD)
            except FlowParseError as exc:
                raise _CorruptFileError(f"bridge {name}: flow {text!r}: {exc}") from None
        result[name] = list(flows)
    return result
