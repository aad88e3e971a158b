"""OpenFlow rules and tables.

A table is a list of rules in lookup order (priority, highest first; among
equal priorities the older rule first). Lookup is linear: it runs only on the
slow path (an upcall), and records in the caller's wildcard mask every field
the decision looked at, which is what makes the resulting megaflow correct.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvswitch.flow.match import Match
    from pyvswitch.ofproto.actions import Action

N_TABLES = 255
OFP_DEFAULT_PRIORITY = 32768
_SEQUENCE = itertools.count()


@dataclass(eq=False, slots=True)
class Rule:
    """One OpenFlow flow entry, with its counters."""

    match: Match
    actions: tuple[Action, ...]
    priority: int = OFP_DEFAULT_PRIORITY
    table_id: int = 0
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    created: float = 0.0
    used: float = 0.0
    n_packets: int = 0
    n_bytes: int = 0
    seq: int = field(default_factory=lambda: next(_SEQUENCE))

    def account(self, packets: int, nbytes: int, now: float) -> None:
        """Count packets forwarded by this rule (from an upcall or a cache hit)."""
        self.n_packets += packets
        self.n_bytes += nbytes
        self.used = max(self.used, now)

    def expired(self, now: float) -> str | None:
        """Which timeout has passed (``idle`` or ``hard``), or None."""
        if self.hard_timeout and now >= self.created + self.hard_timeout:
            return "hard"
        if self.idle_timeout and now >= max(self.used, self.created) + self.idle_timeout:
            return "idle"
        return None


class Table:
    """One OpenFlow table."""

    def __init__(self, table_id: int) -> None:
        self.table_id = table_id
        self.rules: list[Rule] = []
        self._order: list[tuple[int, int]] = []
        self.lookups = 0
        self.matched = 0

    def __len__(self) -> int:
        return len(self.rules)

    def insert(self, rule: Rule) -> Rule | None:
        """Add ``rule``; a rule with the same match and priority is replaced and returned."""
        old = self.find_strict(rule.match, rule.priority)
        if old is not None:
            self.remove(old)
        position = (-rule.priority, rule.seq)
        index = bisect.bisect(self._order, position)
        self._order.insert(index, position)
        self.rules.insert(index, rule)
        return old

    def remove(self, rule: Rule) -> None:
        """Remove ``rule`` (which must be in the table)."""
        index = self.rules.index(rule)
        del self.rules[index]
        del self._order[index]

    def find_strict(self, match: Match, priority: int) -> Rule | None:
        """The rule with exactly this match and priority."""
        for rule in self.rules:
            if rule.priority == priority and rule.match == match:
                return rule
        return None

    def lookup(self, key: int) -> tuple[Rule | None, int]:
        """The highest-priority rule matching ``key``, and the mask the lookup consulted.

        The mask is the union of the masks of every rule examined: a packet
        that agrees with ``key`` on those bits meets the same rules in the same
        order, so it gets the same answer.
        """
        self.lookups += 1
        consulted = 0
        for rule in self.rules:
            match = rule.match
            consulted |= match.mask
            if key & match.mask == match.value:
                self.matched += 1
                return rule, consulted
        return None, consulted
