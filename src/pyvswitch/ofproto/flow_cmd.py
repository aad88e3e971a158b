"""ovs-ofctl's flow table commands as data: read them, then apply them to a bridge.

``add-flow``, ``mod-flows``, ``del-flows``, ``dump-flows`` and the lines of an
``add-flows`` or ``replace-flows`` file each read a flow, but each command
allows other keywords: only additions and modifications take actions,
timeouts and flags (``send_flow_rem``, ``reset_counts``...), only deletions
and dumps take ``out_port``, ``priority`` is part of a strict command's match
but not of a loose one's, and ``cookie`` sets the cookie in an addition but
needs a mask (``cookie=5/-1``) to select rules. :func:`parse_flow_command`
reads those keywords with ovs-ofctl's messages and hands the rest to
:func:`~pyvswitch.ofproto.flow_mod.parse_flow`.

The functions that apply commands follow Open vSwitch's ofproto: a loose
command selects every rule at least as specific as its match, a strict one
the rule with exactly its match and priority; a modification that selects
nothing adds the flow; a modification keeps the rule's timeouts, flags and
counters (unless it says ``reset_counts``). A batch of commands is applied
all or nothing (:func:`apply_commands`), which is what makes ``add-flows``
and ``replace-flows`` atomic.

A parsed command holds the actions as written; :func:`carried` gives the
command as a switch receives it over an OpenFlow version, whose actions are
what the rule then holds (:mod:`pyvswitch.ofproto.actions_wire`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.flow.ofp_text import (
    META_FIELDS,
    PORT_NAMES,
    SHORTHANDS,
    c_int,
    unsupported_keyword,
)
from pyvswitch.ofproto.actions import OFPP_MAX, OFPP_NONE, OFPP_NORMAL, Output
from pyvswitch.ofproto.actions_wire import carry, check_version
from pyvswitch.ofproto.flow_mod import FlowSpec, parse_flow, split_actions
from pyvswitch.ofproto.table import Rule

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from pyvswitch.ofproto.bridge import Bridge
    from pyvswitch.ofproto.table import Table

ADD = "add"
MODIFY = "modify"
MODIFY_STRICT = "modify_strict"
DELETE = "delete"
DELETE_STRICT = "delete_strict"
DUMP = "dump"
#: The commands a line of an ``add-flows`` file may start with, in the order
#: ovs-ofctl tries them (an abbreviation means the first that it begins).
LINE_COMMANDS = (ADD, DELETE, DELETE_STRICT, MODIFY, MODIFY_STRICT)

#: Flow mod flags by keyword, in the order ovs-ofctl prints them.
FLOW_FLAGS = {
    "send_flow_rem": 1 << 0,
    "check_overlap": 1 << 1,
    "reset_counts": 1 << 2,
    "no_packet_counts": 1 << 3,
    "no_byte_counts": 1 << 4,
}
RESET_COUNTS = FLOW_FLAGS["reset_counts"]
CHECK_OVERLAP = FLOW_FLAGS["check_overlap"]

_WITH_ACTIONS = frozenset((ADD, MODIFY, MODIFY_STRICT))
_WITH_PRIORITY = frozenset((ADD, MODIFY, MODIFY_STRICT, DELETE_STRICT))
_WITH_OUT_PORT = frozenset((DELETE, DELETE_STRICT, DUMP))
_SETS_COOKIE = frozenset((ADD, MODIFY, MODIFY_STRICT))
#: What dump-flows prints and a flow may therefore carry: ignored, as ovs-ofctl
#: ignores them, so that its output can be fed back.
_STATISTICS = frozenset(("duration", "n_packets", "n_bytes", "idle_age", "hard_age"))
_IGNORED = frozenset(("no_readonly_table", "allow_hidden_fields"))
#: Flow keywords of Open vSwitch's that pyvswitch does not implement.
_UNSUPPORTED = frozenset(("importance", "out_group"))
#: The table number that means "every table" (to select) or "the first" (to add).
ALL_TABLES = 255


class FlowCommandError(ValueError):
    """The switch refused a flow table change; the message says why."""


@dataclass(frozen=True, slots=True)
class FlowCommand:
    """One parsed flow table command.

    ``table`` is None when the command names no table (or table 255):
    every table for selecting, table 0 for adding. ``new_cookie`` is the
    cookie an addition or modification sets (None: not given); ``cookie``
    and ``cookie_mask`` select rules by cookie.
    """

    command: str
    spec: FlowSpec
    table: int | None = None
    new_cookie: int | None = None
    cookie: int = 0
    cookie_mask: int = 0
    out_port: int | None = None
    flags: int = 0

    @property
    def strict(self) -> bool:
        """Whether the command selects by exact match and priority."""
        return self.command in (MODIFY_STRICT, DELETE_STRICT)


def parse_flow_line(text: str, port_names: Mapping[str, int] | None = None) -> FlowCommand:
    """One line of an ``add-flows`` file: a flow, perhaps after a command word.

    As in ovs-ofctl, the first word may be ``add``, ``delete``,
    ``delete_strict``, ``modify`` or ``modify_strict`` (or a beginning of
    one); anything else is a flow to add.
    """
    body = text.lstrip(" \t\r\n")
    word = body
    for stop in ", \t\r\n":
        word = word.split(stop, 1)[0]
    command = next((c for c in LINE_COMMANDS if c.startswith(word)), None)
    if command is None or not word:
        return parse_flow_command(body, ADD, port_names)
    return parse_flow_command(body[len(word) :], command, port_names)


def parse_flow_command(
    text: str, command: str, port_names: Mapping[str, int] | None = None
) -> FlowCommand:
    """Parse ``text`` as ovs-ofctl reads a flow for ``command`` (ADD, MODIFY... or DUMP).

    Raises :class:`FlowParseError` with ovs-ofctl's message.
    """
    with_actions = command in _WITH_ACTIONS
    head, sep, actions = split_actions(text) if with_actions else (text, "", "")
    if with_actions and not sep:
        raise FlowParseError("must specify an action")
    found = _Keywords(command, port_names)
    rest = [item for item in head.replace(",", " ").split() if not found.take(item)]
    if with_actions:
        rest.append(f"actions={actions}")
    spec = parse_flow(",".join(rest), port_names, require_actions=with_actions)
    return FlowCommand(
        command,
        spec,
        found.table,
        found.new_cookie,
        found.cookie,
        found.cookie_mask,
        found.out_port,
        found.flags,
    )


def carried(command: FlowCommand, version: int) -> FlowCommand:
    """The command as the switch receives it over OpenFlow ``version``.

    Its actions become what a rule added by it holds, in the spelling that
    version carries (``set_field`` to ``nw_dst`` is ``mod_nw_dst`` over
    OpenFlow 1.0). Raises :class:`FlowParseError` for actions the version
    cannot carry, as ovs-ofctl refuses to send them.
    """
    spec = command.spec
    check_version(spec.actions, version)
    actions = carry(spec.actions, version, spec.match)
    return dataclasses.replace(command, spec=dataclasses.replace(spec, actions=actions))


class _Keywords:
    """The keywords of a flow that depend on the command, collected while reading it."""

    def __init__(self, command: str, port_names: Mapping[str, int] | None) -> None:
        self.command = command
        self.port_names = port_names
        self.table: int | None = None
        self.new_cookie: int | None = None
        self.cookie = 0
        self.cookie_mask = 0
        self.out_port: int | None = None
        self.flags = 0

    def take(self, item: str) -> bool:
        """Read ``item`` if it is one of ours (True), or leave it to parse_flow (False)."""
        name, _, value = item.partition("=")
        if name in FLOW_FLAGS and self.command in _WITH_ACTIONS:
            self.flags |= FLOW_FLAGS[name]
            return True
        if name in _IGNORED:
            return True
        if name in SHORTHANDS or name in META_FIELDS or unsupported_keyword(name):
            # The match's, which parse_flow reads (and refuses, if unsupported).
            return False
        if name in _UNSUPPORTED:
            raise FlowParseError(f"{name}: not supported by pyvswitch")
        # Any other keyword needs a value, whatever the command, before
        # ovs-ofctl even looks at whether the command allows it.
        if not value:
            raise FlowParseError(f"field {name} missing value")
        allowed = {
            "priority": self.command in _WITH_PRIORITY,
            "idle_timeout": self.command in _WITH_ACTIONS,
            "hard_timeout": self.command in _WITH_ACTIONS,
            "out_port": self.command in _WITH_OUT_PORT,
            "table": True,
            "cookie": True,
            **dict.fromkeys(_STATISTICS, True),
        }
        if not allowed.get(name, False):
            raise FlowParseError(f"unknown keyword {name}")
        if name == "table":
            self.table = _table(value)
        elif name == "cookie":
            self._cookie(value)
        elif name == "out_port":
            port = _port(value, self.port_names)
            self.out_port = None if port == OFPP_NONE else port
        # priority and the timeouts are parse_flow's; statistics are ignored.
        return name not in ("priority", "idle_timeout", "hard_timeout")

    def _cookie(self, text: str) -> None:
        value_text, slash, mask_text = text.partition("/")
        if slash:
            if self.command == ADD:
                raise FlowParseError("flow additions cannot use a cookie mask")
            self.cookie = _u64(value_text)
            self.cookie_mask = _u64(mask_text)
        elif self.command in _SETS_COOKIE:
            self.new_cookie = _u64(value_text)
        else:
            raise FlowParseError(
                "cannot set cookie (to match on a cookie, specify a mask, e.g. cookie=5/-1)"
            )


def _table(text: str) -> int | None:
    # A table is a decimal number up to 255, as ovs-ofctl reads it.
    if not text.isdigit() or int(text) > ALL_TABLES:
        raise FlowParseError(f'unknown table "{text}"')
    table = int(text)
    return None if table == ALL_TABLES else table


def _u64(text: str) -> int:
    """A 64-bit number as C's strtoull reads it (so ``-1`` is every bit)."""
    negative = text.startswith("-")
    try:
        value = c_int(text[1:] if negative else text)
    except ValueError:
        raise FlowParseError(f"invalid numeric format {text}") from None
    if value >> 64:
        raise FlowParseError(f"invalid numeric format {text}")
    return (-value) & ((1 << 64) - 1) if negative else value


def _port(text: str, port_names: Mapping[str, int] | None) -> int:
    if text in PORT_NAMES:
        return PORT_NAMES[text]
    if port_names and text in port_names:
        return port_names[text]
    if text.isdigit() and (int(text) < OFPP_MAX or int(text) in PORT_NAMES.values()):
        return int(text)
    raise FlowParseError(f"{text} is not a valid OpenFlow port")


# -- selecting rules ----------------------------------------------------------------


def selects(command: FlowCommand, rule: Rule) -> bool:
    """Whether a modify, delete or dump command applies to ``rule``."""
    match = command.spec.match
    if command.strict:
        if rule.match != match or rule.priority != command.spec.priority:
            return False
    # Loose: the rule is at least as specific as the match and agrees with it.
    elif rule.match.mask & match.mask != match.mask or rule.match.value & match.mask != (
        match.value
    ):
        return False
    if (rule.cookie ^ command.cookie) & command.cookie_mask:
        return False
    return command.out_port is None or any(
        isinstance(action, Output) and action.port == command.out_port for action in rule.actions
    )


def select_rules(bridge: Bridge, command: FlowCommand) -> list[Rule]:
    """The rules ``command`` applies to, table by table, each table in lookup order."""
    tables = bridge.tables if command.table is None else [bridge.tables[command.table]]
    return [rule for table in tables for rule in table.rules if selects(command, rule)]


# -- changing tables ------------------------------------------------------------------


@contextlib.contextmanager
def all_or_nothing(bridge: Bridge) -> Iterator[None]:
    """Undo every rule change made inside the block if it raises."""
    saved = {table.table_id: list(table.rules) for table in bridge.tables if table.rules}
    try:
        yield
    except BaseException:
        for table in bridge.tables:
            if table.rules or table.table_id in saved:
                _refill(table, saved.get(table.table_id, []))
        raise


def _refill(table: Table, rules: Sequence[Rule]) -> None:
    for rule in list(table.rules):
        table.remove(rule)
    # Each rule keeps its sequence number, so the table's order comes back too.
    for rule in rules:
        table.insert(rule)


def apply_commands(
    bridge: Bridge, commands: Sequence[FlowCommand], now: float, *, add_flags: int = 0
) -> None:
    """Apply ``commands`` in order, all or none; ``add_flags`` is what every addition gets.

    (Over OpenFlow 1.0 and 1.1 an addition always resets counters, which
    Open vSwitch records as the ``reset_counts`` flag.)
    """
    handlers: dict[str, Callable[[Bridge, FlowCommand, float, int], None]] = {
        ADD: add_flow,
        MODIFY: modify_flows,
        MODIFY_STRICT: modify_flows,
        DELETE: delete_flows,
        DELETE_STRICT: delete_flows,
    }
    with all_or_nothing(bridge):
        for command in commands:
            handlers[command.command](bridge, command, now, add_flags)


def add_flow(bridge: Bridge, command: FlowCommand, now: float, add_flags: int = 0) -> None:
    """Add the command's flow, replacing a rule with the same match and priority."""
    spec = command.spec
    table_id = command.table or 0
    table = bridge.tables[table_id]
    flags = command.flags | add_flags
    if flags & CHECK_OVERLAP and any(_overlaps(rule, spec) for rule in table.rules):
        raise FlowCommandError(
            f"OFPFMFC_OVERLAP: the flow overlaps another flow of priority {spec.priority} "
            f"in table {table_id}"
        )
    rule = Rule(
        spec.match,
        spec.actions,
        spec.priority,
        table_id,
        command.new_cookie or 0,
        spec.idle_timeout,
        spec.hard_timeout,
        created=now,
        used=now,
        flags=flags,
    )
    old = table.find_strict(spec.match, spec.priority)
    if old is not None and not flags & RESET_COUNTS:
        rule.n_packets, rule.n_bytes = old.n_packets, old.n_bytes
    table.insert(rule)


def _overlaps(rule: Rule, spec: FlowSpec) -> bool:
    """Whether a packet could match both at one priority (an identical flow does not count)."""
    if rule.priority != spec.priority or rule.match == spec.match:
        return False
    # They agree wherever both look.
    common = rule.match.mask & spec.match.mask
    return (rule.match.value ^ spec.match.value) & common == 0


def modify_flows(bridge: Bridge, command: FlowCommand, now: float, add_flags: int = 0) -> None:
    """Give the selected rules the command's actions (and cookie); add the flow if none.

    ``add_flags`` is unused: only an addition command gets them, not an
    addition a modification makes.
    """
    del add_flags
    rules = select_rules(bridge, command)
    if not rules:
        add_flow(bridge, command, now)
        return
    for rule in rules:
        new = dataclasses.replace(
            rule,
            actions=command.spec.actions,
            cookie=rule.cookie if command.new_cookie is None else command.new_cookie,
            modified=now,
        )
        if command.flags & RESET_COUNTS:
            new.n_packets = new.n_bytes = 0
        # Same match, priority and sequence number: it takes the old one's place.
        bridge.tables[rule.table_id].insert(new)


def delete_flows(bridge: Bridge, command: FlowCommand, now: float, add_flags: int = 0) -> None:
    """Remove the selected rules."""
    del now, add_flags
    for rule in select_rules(bridge, command):
        bridge.tables[rule.table_id].remove(rule)


def replace_flows(
    bridge: Bridge,
    commands: Sequence[FlowCommand],
    now: float,
    *,
    version: int,
    add_flags: int = 0,
) -> tuple[int, int]:
    """Make the bridge's tables hold exactly these flows; return (added, deleted).

    As ``ovs-ofctl replace-flows`` does, only differences change anything: a
    rule whose match, priority and table are in the list keeps its counters
    unless its actions, cookie or timeouts differ; the last of two flows with
    the same match, priority and table wins. ``commands`` are as written and
    ``version`` is the OpenFlow version ovs-ofctl would speak: like
    ovs-ofctl, we compare the flows as written with the rules as that version
    carries them back (so ``set_field:...->nw_dst`` differs from a rule
    holding ``mod_nw_dst`` and is added again), and add them as carried.
    """
    wanted: dict[tuple[int, object, int], FlowCommand] = {}
    for command in commands:
        wanted[(command.table or 0, command.spec.match, command.spec.priority)] = command
    added = deleted = 0
    with all_or_nothing(bridge):
        for table in bridge.tables:
            for rule in list(table.rules):
                key = (table.table_id, rule.match, rule.priority)
                update = wanted.pop(key) if key in wanted else None
                if update is None:
                    table.remove(rule)
                    deleted += 1
                elif _differs(rule, update, version):
                    add_flow(bridge, carried(update, version), now, add_flags)
                    added += 1
        for command in wanted.values():
            add_flow(bridge, carried(command, version), now, add_flags)
            added += 1
    return added, deleted


def _differs(rule: Rule, command: FlowCommand, version: int) -> bool:
    spec = command.spec
    dumped = carry(rule.actions, version, rule.match)
    return (dumped, rule.cookie, rule.idle_timeout, rule.hard_timeout) != (
        spec.actions,
        command.new_cookie or 0,
        spec.idle_timeout,
        spec.hard_timeout,
    )


def set_fail_mode(bridge: Bridge, fail_mode: str, now: float) -> None:
    """Change the bridge's fail mode, treating its default flow as Open vSwitch does.

    Open vSwitch empties the tables when the fail mode changes, and then a
    standalone bridge (with no controller) gets ``priority=0 actions=NORMAL``
    again. Here every other rule stays: going secure removes that flow, going
    standalone adds it when table 0 has no catch-all flow of priority 0.
    """
    bridge.fail_mode = fail_mode
    table = bridge.tables[0]
    default = table.find_strict(Match(), 0)
    if fail_mode == "standalone" and default is None:
        table.insert(Rule(Match(), (Output(OFPP_NORMAL),), priority=0, created=now, used=now))
    elif fail_mode != "standalone" and default and default.actions == (Output(OFPP_NORMAL),):
        table.remove(default)
