"""The tunnel neighbour cache, as Open vSwitch's ``lib/tnl-neigh-cache.c`` keeps it.

Native tunnelling writes the outer Ethernet header itself, so it needs the
MAC address of the next hop (the tunnel's remote end, or the route's
gateway) on the underlay bridge. The cache maps (bridge, IP address) to a
MAC address; it is filled by snooping ARP replies, gratuitous ARP and IPv6
neighbour advertisements that reach the bridge, and by ``tnl/neigh/set``.

As in Open vSwitch 3.1:

* An entry lives ``aging`` seconds (900 by default, ``tnl/neigh/aging``
  takes 1 to 3600) after it was last set *or looked up*: a neighbour in use
  does not expire (translation looks it up, and so does every packet a
  cached tunnel flow sends, through ``xlate_tunnel.NeighRefresh``).
  Lowering the aging time shortens entries that would outlive the new time.
* Entries set by hand age like learned ones (Open vSwitch 3.1 has no
  static entries and its listing has no static/dynamic column).
* An expired entry is no longer found; :meth:`NeighCache.run` removes it (the
  daemon's periodic work, which ``time/warp`` also runs). Until then the
  listing marks it ``STALE``, as Open vSwitch does.
* IPv4 addresses and IPv4-mapped IPv6 addresses are the same key.

The listing shows entries in the order they were first added, where Open
vSwitch shows them in its hash table's order, which changes from run to run
(its own tests sort the lines).

Times are seconds on the caller's clock (the daemon's virtual clock): this
module reads no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from pyvswitch.ofproto.tnl_route import (
    IFNAMSIZ_MAX,
    format_mapped,
    from128,
    inet_pton4,
    inet_pton6,
    normalized,
    scan_int,
    to128,
)

if TYPE_CHECKING:
    from pyvswitch.ofproto.tnl_route import IPAddress

#: Open vSwitch's default aging time, in seconds (NEIGH_ENTRY_DEFAULT_IDLE_TIME_MS).
DEFAULT_AGING = 900
#: The longest aging time ``tnl/neigh/aging`` accepts, in seconds.
MAX_AGING = 3600

#: The listing's two header lines, as Open vSwitch writes them.
SHOW_HEADER = (
    "IP                                            MAC                 Bridge\n"
    "==========================================================================\n"
)
#: The IP column's width: INET6_ADDRSTRLEN.
_IP_COLUMN = 46


@dataclass(slots=True)
class NeighEntry:
    """One neighbour: its MAC on one bridge, until ``expires`` (caller's clock)."""

    bridge: str
    ip: IPAddress
    mac: bytes
    expires: float


class NeighCache:
    """(bridge, IP) -> MAC with aging; pure, times come from the caller.

    :attr:`version` grows whenever an entry appears, changes or goes, which
    is when Open vSwitch tells translation to look again (``tnl_conf_seq``).
    """

    def __init__(self, aging: int = DEFAULT_AGING) -> None:
        self._aging = aging
        self._entries: dict[tuple[str, int], NeighEntry] = {}
        #: Grows on every change that can alter a lookup's answer.
        self.version = 0

    @property
    def aging(self) -> int:
        """The aging time in seconds."""
        return self._aging

    def set_aging(self, seconds: int, now: float) -> None:
        """Change the aging time; entries that would outlive it from now are shortened."""
        if not 1 <= seconds <= MAX_AGING:
            raise ValueError(f"aging time {seconds} is outside 1..{MAX_AGING} seconds")
        self._aging = seconds
        expires = now + seconds
        for entry in self._entries.values():
            entry.expires = min(entry.expires, expires)

    @staticmethod
    def _key(bridge: str, ip: IPAddress) -> tuple[str, int]:
        # Open vSwitch keeps bridge names in IFNAMSIZ bytes.
        return bridge[:IFNAMSIZ_MAX], to128(ip)

    def lookup(self, bridge: str, ip: IPAddress, now: float) -> bytes | None:
        """The MAC of ``ip`` on ``bridge``, or None; a hit keeps the entry alive longer."""
        entry = self._entries.get(self._key(bridge, ip))
        if entry is None or entry.expires <= now:
            return None
        entry.expires = now + self._aging
        return entry.mac

    def set(self, bridge: str, ip: IPAddress, mac: bytes, now: float) -> None:
        """Learn (or refresh) that ``ip`` has ``mac`` on ``bridge`` (``tnl/neigh/set``)."""
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
        key = self._key(bridge, ip)
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now and entry.mac == mac:
            entry.expires = now + self._aging
            return
        self._entries[key] = NeighEntry(key[0], normalized(ip), bytes(mac), now + self._aging)
        self.version += 1

    def snoop_arp(self, bridge: str, sender_ip: IPAddress, sender_mac: bytes, now: float) -> bool:
        """An ARP reply or gratuitous ARP seen on ``bridge``: learn its sender.

        The caller decides that the packet is one to learn from (Open
        vSwitch's ``tnl_arp_snoop()``: an ARP reply, or a gratuitous request
        or reply); a zero sender MAC is ignored here. True when learned.
        """
        if sender_mac == bytes(6):
            return False
        self.set(bridge, sender_ip, sender_mac, now)
        return True

    def snoop_nd(self, bridge: str, target_ip: IPAddress, target_mac: bytes, now: float) -> bool:
        """An IPv6 neighbour advertisement seen on ``bridge``: learn its target.

        ``target_mac`` is the advertisement's target link-layer address
        option; one without it (zero) is ignored, as Open vSwitch ignores it.
        """
        if target_mac == bytes(6):
            return False
        self.set(bridge, target_ip, target_mac, now)
        return True

    def flush(self, bridge: str | None = None) -> bool:
        """Forget every entry (``tnl/neigh/flush``), or those of one bridge. True if any went."""
        doomed = [k for k in self._entries if bridge is None or k[0] == bridge[:IFNAMSIZ_MAX]]
        for key in doomed:
            del self._entries[key]
        if doomed:
            self.version += 1
        return bool(doomed)

    def run(self, now: float) -> bool:
        """Remove expired entries (the periodic work). True if any went."""
        doomed = [k for k, e in self._entries.items() if e.expires <= now]
        for key in doomed:
            del self._entries[key]
        if doomed:
            self.version += 1
        return bool(doomed)

    def entries(self) -> list[NeighEntry]:
        """Every entry, expired ones not yet removed included, in listing order."""
        return list(self._entries.values())

    def show(self, now: float) -> str:
        """``tnl/neigh/show``'s text, as Open vSwitch 3.1 writes it."""
        lines = [SHOW_HEADER]
        for entry in self._entries.values():
            ip = format_mapped(to128(entry.ip))
            mac = ":".join(f"{b:02x}" for b in entry.mac)
            stale = " STALE" if entry.expires <= now else ""
            lines.append(f"{ip:<{_IP_COLUMN}}{mac}   {entry.bridge}{stale}\n")
        return "".join(lines)


# -- Open vSwitch's parsers for tnl/neigh/set and tnl/neigh/aging ---------------------


def parse_neigh_ip(text: str) -> IPAddress | None:
    """``tnl/neigh/set``'s IP argument: IPv6 if it has a colon, else IPv4; None if bad.

    Open vSwitch's ``lookup_ip()``/``lookup_ipv6()`` take numeric addresses
    only (``inet_pton()``): no host names, no leading zeros in IPv4.
    """
    if ":" in text:
        value = inet_pton6(text)
        return None if value is None else from128(value)
    value4 = inet_pton4(text)
    return None if value4 is None else IPv4Address(value4)


def eth_addr_from_string(text: str) -> bytes | None:
    """Open vSwitch's ``eth_addr_from_string()``: six ``%hhx`` joined by colons, nothing after.

    As ``ovs_scan()`` reads them, each part may have a sign, a ``0x`` prefix
    and any number of hex digits, of which the low 8 bits count.
    """
    octets = []
    pos = 0
    for i in range(6):
        if i:
            if not text.startswith(":", pos):
                return None
            pos += 1
        found = scan_int(text, pos, 16)
        if found is None:
            return None
        octets.append(found[0] & 0xFF)
        pos = found[1]
    return bytes(octets) if pos == len(text) else None


def parse_aging(text: str) -> int | None:
    """``tnl/neigh/aging``'s argument: ``%u`` (32 bits kept), 1 to 3600, else None."""
    found = scan_int(text, 0, 10)
    if found is None:
        return None
    seconds = found[0] & 0xFFFFFFFF
    return seconds if 1 <= seconds <= MAX_AGING else None
