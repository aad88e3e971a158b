"""Open vSwitch's hash functions and the order its hash maps iterate in.

Some of what Open vSwitch prints comes out in the order of a hash map: the
warnings ``set_tunnel_config()`` gathers while it walks a port's options (an
``smap``), and ``ofproto/list-tunnels``. To print the same text we reproduce
that order: the hash (``hash_bytes()``/``hash_words()`` of lib/hash.c, the
portable murmur-style code a stock x86-64 build uses) and the bucket layout
of lib/hmap.c (a new node goes to the head of its bucket's chain; the table
doubles when it holds more than two nodes per bucket, rehashing bucket by
bucket, which reverses the chains).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

_M32 = 0xFFFFFFFF
T = TypeVar("T")


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _add(h: int, data: int) -> int:
    # mhash_add(): a zero word leaves the hash as it is before the mix.
    if data:
        data = (data * 0xCC9E2D51) & _M32
        data = _rot(data, 15)
        data = (data * 0x1B873593) & _M32
        h ^= data
    h = _rot(h, 13)
    return (h * 5 + 0xE6546B64) & _M32


def _finish(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def hash_bytes(data: bytes, basis: int = 0) -> int:
    """lib/hash.c ``hash_bytes()``: little-endian words, the tail zero-padded."""
    h = basis
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        h = _add(h, int.from_bytes(data[i : i + 4], "little"))
    if whole < len(data):
        h = _add(h, int.from_bytes(data[whole:], "little"))
    return _finish(h ^ len(data))


def hash_words(words: Sequence[int], basis: int = 0) -> int:
    """lib/hash.h ``hash_words()`` over 32-bit words."""
    h = basis
    for word in words:
        h = _add(h, word)
    return _finish(h ^ (len(words) * 4))


def _calc_mask(capacity: int) -> int:
    mask = capacity // 2
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> shift
    # hmap allocates at least four buckets once it allocates any.
    return mask | ((mask & 1) << 1)


class Hmap(Generic[T]):
    """The iteration order of an OVS ``struct hmap`` holding ``T`` values.

    Only the order is modelled: values are found by identity (``is``) when
    removed, and the table never shrinks on removal, as in OVS.
    """

    def __init__(self) -> None:
        self._mask = 0
        self._buckets: list[list[tuple[int, T]]] = [[]]
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def insert(self, value: T, hash_: int) -> None:
        """``hmap_insert()``: to the head of its bucket, then grow if crowded."""
        self._buckets[hash_ & self._mask].insert(0, (hash_, value))
        self._n += 1
        if self._n // 2 > self._mask:
            new_mask = _calc_mask(self._n)
            if new_mask > self._mask:
                buckets: list[list[tuple[int, T]]] = [[] for _ in range(new_mask + 1)]
                for chain in self._buckets:
                    for node in chain:
                        buckets[node[0] & new_mask].insert(0, node)
                self._buckets = buckets
                self._mask = new_mask

    def remove(self, value: T) -> None:
        """``hmap_remove()``: unlink the node holding ``value``."""
        for chain in self._buckets:
            for i, (_, held) in enumerate(chain):
                if held is value:
                    del chain[i]
                    self._n -= 1
                    return
        raise KeyError("value is not in this hmap")

    def __iter__(self) -> Iterator[T]:
        """``HMAP_FOR_EACH`` order: bucket by bucket, each chain from its head."""
        for chain in self._buckets:
            for _, value in chain:
                yield value


def smap_order(keys: Iterable[str]) -> list[str]:
    """The order ``SMAP_FOR_EACH`` visits an OVSDB map column's keys in.

    The database hands the keys over sorted (OVSDB keeps a map's keys in
    order) and ``smap_add()`` hashes each with ``hash_bytes(key, 0)``.
    """
    table: Hmap[str] = Hmap()
    for key in sorted(keys, key=lambda k: k.encode()):
        table.insert(key, hash_bytes(key.encode()))
    return list(table)
