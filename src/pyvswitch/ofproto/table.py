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

from pyvswitch.flow.layout import FIELDS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyvswitch.flow.match import Match
    from pyvswitch.ofproto.actions import Action

N_TABLES = 255


def _stage_masks() -> tuple[int, ...]:
    def union(names: list[str]) -> int:
        return sum(FIELDS[n].mask for n in names)

    metadata = union(
        ["in_port", "metadata", "tun_id", "tun_src", "tun_dst", *(f"reg{i}" for i in range(16))]
    )
    l2 = union(["dl_src", "dl_dst", "vlan_tpid", "vlan_tci", "vlan_tpid1", "vlan_tci1", "dl_type"])
    l3 = union(
        [
            "nw_src",
            "nw_dst",
            "ipv6_src",
            "ipv6_dst",
            "ipv6_label",
            "nw_proto",
            "nw_tos",
            "nw_ttl",
            "nw_frag",
            "arp_sha",
            "arp_tha",
        ]
    )
    everything = sum(f.mask for f in FIELDS.values())
    return (metadata, metadata | l2, metadata | l2 | l3, everything)


#: Cumulative masks of the lookup stages (see Table.lookup).
_STAGES = _stage_masks()
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
    #: Flow mod flags (``send_flow_rem``, ``reset_counts``...), as flow_cmd.FLOW_FLAGS bits.
    flags: int = 0
    #: When a modify command last changed the rule; None if none has since it was added.
    modified: float | None = None
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
        # Rules by (priority, match): adding, replacing and strict deletes are
        # a dict lookup, so loading a table of thousands of rules is linear.
        self._strict: dict[tuple[int, Match], Rule] = {}
        # Packets, counted by the megaflows whose translation looked this
        # table up (TableCounts).
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
        self._strict[rule.priority, rule.match] = rule
        return old

    def remove(self, rule: Rule) -> None:
        """Remove ``rule`` (which must be in the table)."""
        index = bisect.bisect_left(self._order, (-rule.priority, rule.seq))
        if index >= len(self.rules) or self.rules[index] is not rule:
            raise ValueError(f"rule {rule} is not in table {self.table_id}")
        del self.rules[index]
        del self._order[index]
        del self._strict[rule.priority, rule.match]

    def find_strict(self, match: Match, priority: int) -> Rule | None:
        """The rule with exactly this match and priority."""
        return self._strict.get((priority, match))

    def lookup(self, key: int) -> tuple[Rule | None, int]:
        """The highest-priority rule matching ``key``, and the mask the lookup consulted.

        A packet that agrees with ``key`` on the consulted bits meets the same
        rules with the same outcome, so it gets the same answer. As Open
        vSwitch's staged lookup does, a rule that does not match is looked at
        stage by stage (metadata, then L2, then L3, then L4) and only the
        stages up to the first that differs are consulted: a rule for another
        input port does not make the megaflow match its VLAN.
        """
        consulted = 0
        for rule in self.rules:
            match = rule.match
            for stage in _STAGES:
                bits = match.mask & stage
                consulted |= bits
                if key & bits != match.value & bits:
                    break
            else:
                return rule, consulted
        return None, consulted


class TableCounts:
    """A megaflow sink: its packets counted into the tables its translation looked up.

    As Open vSwitch's table statistics, ``lookups`` and ``matched`` count
    packets, those of the upcall and of every cache hit; a trace or a
    revalidation, which forward no packet, counts nothing. One sink per
    megaflow, however many lookups, keeps the cache-hit path at one call.
    """

    __slots__ = ("looked_up", "matched")

    def __init__(self, lookups: Sequence[tuple[Table, bool]]) -> None:
        self.looked_up = tuple(table for table, _ in lookups)
        self.matched = tuple(table for table, found in lookups if found)

    def account(self, packets: int, nbytes: int, now: float) -> None:  # noqa: ARG002
        for table in self.looked_up:
            table.lookups += packets
        for table in self.matched:
            table.matched += packets
