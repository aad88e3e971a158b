"""The MAC learning table NORMAL uses: where each (VLAN, MAC) was last seen.

As Open vSwitch's lib/mac-learning.c: entries age out after ``idle`` seconds
(300 by default, ``other_config:mac-aging-time``, kept within 15..3600), the
table holds at most ``max_entries`` (2048 by default, ``mac-table-size``,
kept within 10..1000000) and evicts the least recently used entry when full.
Both can change while the table is in use (:meth:`MacTable.set_idle_time`,
:meth:`MacTable.set_max_entries`). Time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAC_ENTRY_DEFAULT_IDLE = 300.0
MAC_DEFAULT_MAX = 2048
#: The bounds Open vSwitch keeps the aging time (seconds) and the table size within.
MAC_ENTRY_IDLE_RANGE = (15, 3600)
MAC_MAX_RANGE = (10, 1000 * 1000)


def normalize_idle_time(idle: int) -> int:
    """The aging time Open vSwitch uses when asked for ``idle`` seconds.

    It is kept within 15..3600; Open vSwitch takes the number as unsigned,
    so a negative one counts as very large (3600).
    """
    low, high = MAC_ENTRY_IDLE_RANGE
    return high if idle < 0 else min(max(idle, low), high)


def normalize_max_entries(size: int) -> int:
    """The table size Open vSwitch uses when asked for ``size`` entries.

    It is kept within 10..1000000; as for the aging time, a negative number
    counts as very large.
    """
    low, high = MAC_MAX_RANGE
    return high if size < 0 else min(max(size, low), high)


@dataclass(slots=True)
class MacEntry:
    """Where one MAC was last seen on one VLAN."""

    port: int
    expires: float


class MacTable:
    """(vlan, mac) -> port, with aging and LRU eviction."""

    def __init__(
        self, idle: float = MAC_ENTRY_DEFAULT_IDLE, max_entries: int = MAC_DEFAULT_MAX
    ) -> None:
        self.idle = idle
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, int], MacEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def set_idle_time(self, idle: int) -> None:
        """Age entries after ``idle`` seconds from now on (see :func:`normalize_idle_time`).

        As in Open vSwitch, entries already learned keep their age: each
        expires when it reaches the new aging time (at once, if it is older).
        """
        idle_s = float(normalize_idle_time(idle))
        delta = idle_s - self.idle
        if delta:
            for entry in self._entries.values():
                entry.expires += delta
            self.idle = idle_s

    def set_max_entries(self, size: int) -> int:
        """Hold at most ``size`` entries (see :func:`normalize_max_entries`).

        A table that is now too big forgets its least recently used entries
        at once, as Open vSwitch's next mac_learning_run() does; returns how
        many, so that the caller revalidates when some went.
        """
        self.max_entries = normalize_max_entries(size)
        evicted = 0
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            evicted += 1
        return evicted

    def learn(self, mac: int, vlan: int, port: int, now: float) -> bool:
        """Record that ``mac`` on ``vlan`` was seen on ``port``; True if that is news.

        News (a new entry, or a MAC that moved) means cached forwarding
        decisions may be stale, so the caller revalidates.
        """
        key = (vlan, mac)
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            entry.expires = now + self.idle
            self._entries.move_to_end(key)
            if entry.port == port:
                return False
            entry.port = port
            return True
        if entry is None and len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = MacEntry(port, now + self.idle)
        self._entries.move_to_end(key)
        return True

    def lookup(self, mac: int, vlan: int, now: float) -> int | None:
        """The port ``mac`` was last seen on in ``vlan``, unless it has aged out."""
        entry = self._entries.get((vlan, mac))
        if entry is None or entry.expires <= now:
            return None
        return entry.port

    def expire(self, now: float) -> int:
        """Drop aged-out entries; return how many."""
        stale = [k for k, e in self._entries.items() if e.expires <= now]
        for key in stale:
            del self._entries[key]
        return len(stale)

    def flush(self, port: int | None = None) -> None:
        """Forget everything (or everything learned on ``port``)."""
        if port is None:
            self._entries.clear()
            return
        for key in [k for k, e in self._entries.items() if e.port == port]:
            del self._entries[key]

    def entries(self, now: float) -> list[tuple[int, int, int, float]]:
        """(port, vlan, mac, age in seconds) for ``fdb/show``."""
        return [
            (e.port, vlan, mac, max(0.0, now - (e.expires - self.idle)))
            for (vlan, mac), e in self._entries.items()
            if e.expires > now
        ]
