"""A match: a flow key value and a mask of the same shape, both packed ints.

A packet's key ``k`` matches when ``k & mask == value``. Masks are per bit,
so CIDR prefixes and arbitrary bit masks are the same thing here. The value
never has bits outside the mask (they are cleared when set), so two matches
that accept the same packets compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvswitch.flow.layout import FIELDS, KEY_BITS


class FlowParseError(ValueError):
    """A flow or match string is malformed; the message names the bad field or value."""


@dataclass(frozen=True, slots=True)
class Match:
    """An immutable (value, mask) pair over the packed flow key."""

    value: int = 0
    mask: int = 0

    def matches(self, key: int) -> bool:
        """Whether a packed flow key matches."""
        return key & self.mask == self.value

    def get(self, name: str) -> tuple[int, int]:
        """The (value, mask) of storage field ``name``, unshifted."""
        fld = FIELDS[name]
        return fld.get(self.value), fld.get(self.mask)

    def is_exact(self, name: str) -> bool:
        """Whether storage field ``name`` is matched on all its bits."""
        fld = FIELDS[name]
        return self.mask & fld.mask == fld.mask

    def with_field(self, name: str, value: int, mask: int | None = None) -> Match:
        """A copy with storage field ``name`` set to ``value`` under ``mask`` (full if None).

        Bits outside ``mask`` keep their previous state; bits inside are
        replaced, so setting a field twice keeps the last value.
        """
        fld = FIELDS[name]
        full = (1 << fld.bits) - 1
        m = full if mask is None else mask & full
        shifted_mask = m << fld.shift
        new_mask = self.mask | shifted_mask
        new_value = (self.value & ~shifted_mask) | ((value & m) << fld.shift)
        return Match(new_value & new_mask, new_mask)

    def without_field(self, name: str) -> Match:
        """A copy with storage field ``name`` fully wildcarded."""
        fld = FIELDS[name]
        return Match(self.value & ~fld.mask, self.mask & ~fld.mask)

    def __and__(self, other: Match) -> Match:
        """The intersection of two matches' masks applied to this value (for megaflows)."""
        return Match(self.value & other.mask, self.mask & other.mask)

    @classmethod
    def exact(cls, key: int, mask: int | None = None) -> Match:
        """The match for one key under ``mask`` (every bit if None)."""
        m = (1 << KEY_BITS) - 1 if mask is None else mask
        return cls(key & m, m)
