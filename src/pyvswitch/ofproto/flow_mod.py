"""Whole flows in ovs-ofctl's syntax: ``table=1,priority=10,ip,nw_dst=192.0.2.1,actions=...``.

The match part is :func:`pyvswitch.flow.ofp_text.parse_match`'s, the actions
part :func:`pyvswitch.ofproto.actions_text.parse_actions`'s; this module adds
the flow's own keywords (``table``, ``priority``, ``cookie``, ``idle_timeout``,
``hard_timeout``) and checks that the actions fit the match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.ofp_text import c_int, parse_match
from pyvswitch.ofproto.actions_text import check_actions, parse_actions
from pyvswitch.ofproto.table import N_TABLES, OFP_DEFAULT_PRIORITY

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pyvswitch.flow.match import Match
    from pyvswitch.ofproto.actions import Action

_LIMITS = {
    "table": N_TABLES - 1,
    "priority": 0xFFFF,
    "idle_timeout": 0xFFFF,
    "hard_timeout": 0xFFFF,
    "cookie": (1 << 64) - 1,
}


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """A parsed flow: match, actions and the flow's own settings."""

    match: Match
    actions: tuple[Action, ...]
    priority: int = OFP_DEFAULT_PRIORITY
    table_id: int = 0
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0


def split_actions(text: str) -> tuple[str, str, str]:
    """``text`` split at its actions, as ovs-ofctl splits it (``str.partition``'s shape).

    ovs-ofctl looks for the word "action" and takes what follows the next
    "=": ``actions=`` and ``action=`` both work.
    """
    at = text.find("action")
    equals = text.find("=", at + 1) if at >= 0 else -1
    if equals < 0:
        return text, "", ""
    return text[:at], text[at : equals + 1], text[equals + 1 :]


def parse_flow(
    text: str, port_names: Mapping[str, int] | None = None, require_actions: bool = True
) -> FlowSpec:
    """Parse a flow as ``ovs-ofctl add-flow`` reads it.

    ``actions=`` comes last and takes the rest of the text (its own commas
    and parentheses included). Raises FlowParseError naming what is wrong.
    """
    head, sep, actions_text = split_actions(text)
    if not sep and require_actions:
        raise FlowParseError("must specify an action")
    head = head.rstrip().rstrip(",")
    match, extra = parse_match(head, port_names=port_names, extra=tuple(_LIMITS))
    values: dict[str, int] = {}
    for name, raw in extra.items():
        try:
            value = c_int(raw)
        except ValueError:
            raise FlowParseError(f'invalid {name} "{raw}"') from None
        if value > _LIMITS[name]:
            raise FlowParseError(f'invalid {name} "{raw}"')
        values[name] = value
    actions = parse_actions(actions_text.strip(), port_names) if sep else ()
    check_actions(actions, match)
    return FlowSpec(
        match,
        actions,
        values.get("priority", OFP_DEFAULT_PRIORITY),
        values.get("table", 0),
        values.get("cookie", 0),
        values.get("idle_timeout", 0),
        values.get("hard_timeout", 0),
    )
