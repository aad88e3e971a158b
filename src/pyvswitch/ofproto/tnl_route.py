"""The switch's own route table, as Open vSwitch's ``lib/ovs-router.c`` keeps it.

Native tunnelling needs to know, for a tunnel's remote address, which bridge
the encapsulated packet leaves through, the next hop and the source address
to put in the outer header. Open vSwitch does not ask the kernel for each
packet: it keeps a table of its own, filled by ``ovs/route/add`` ("User"
routes) and by mirroring the kernel's routes ("Cached" routes, the local
ones marked ``local``). This module is that table; it does no I/O, and
:mod:`pyvswitch.vswitchd.route_sync` feeds it the kernel's routes and the
addresses of devices.

How Open vSwitch decides, and so how we do:

* Every address is handled as 128 bits, IPv4 as IPv4-mapped IPv6
  (``::ffff:a.b.c.d``) with the prefix length plus 96.
* A route's priority is its prefix length (in those 128 bits) for a kernel
  route, plus 64 for a kernel ``local`` route, plus 32 for a user route;
  the matching route of highest priority wins. So a user route beats a kernel
  route that is up to 32 bits more specific, as in Open vSwitch.
* A route's source address is chosen when it is added, from the addresses of
  its output device: the one whose subnet holds the destination with the
  longest mask (for an IPv4 destination only IPv4 addresses count); failing
  that, the one whose subnet holds the gateway. No such address: the route is
  refused ("Error while inserting route.").
* ``pkt_mark`` must match exactly (0 for packets without a mark).
* Listing order is the order of Open vSwitch's classifier: groups of equal
  prefix length by their highest priority, and routes in a group in the
  order they were added (a route replaced by one for the same prefix, mark
  and priority keeps its place).

Where we differ from Open vSwitch 3.1, on purpose: :meth:`RouteTable.lookup`
with a source address (a tunnel's ``local_ip``) accepts an address that any
device has, not only one the kernel's ``local`` routes list, so that
``local_ip`` works on dummy ports whose addresses come from
``netdev-dummy/ip4addr`` (Open vSwitch 3.4 and later behave so; 3.1 fails
routing there).

The parsers at the end read addresses the way Open vSwitch's commands do
(``ovs_scan()`` and glibc's ``inet_pton()``), so that the commands accept and
refuse what Open vSwitch does with its words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import TYPE_CHECKING, Literal

from pyvswitch.packet.addr import ip6_to_str

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
IPInterface = IPv4Interface | IPv6Interface

#: The longest device name Open vSwitch keeps (IFNAMSIZ less the NUL).
IFNAMSIZ_MAX = 15

_ALL = (1 << 128) - 1
_V4_MAPPED = 0xFFFF << 32

#: The reply of ``ovs/route/add`` when the route cannot go in.
INSERT_ERROR = "Error while inserting route."


class RouteError(ValueError):
    """A route was refused. ``str()`` is Open vSwitch's reply; ``detail`` says why."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


# -- 128-bit addresses ------------------------------------------------------------


def to128(ip: IPAddress) -> int:
    """``ip`` as Open vSwitch holds it: IPv4 as an IPv4-mapped IPv6 address."""
    return _V4_MAPPED | int(ip) if ip.version == 4 else int(ip)


def is_v4_mapped(value: int) -> bool:
    """Whether a 128-bit address is IPv4-mapped (``::ffff:a.b.c.d``)."""
    return value >> 32 == 0xFFFF


def from128(value: int) -> IPAddress:
    """The address back as ``ipaddress`` has it: IPv4 for an IPv4-mapped one."""
    if is_v4_mapped(value):
        return IPv4Address(value & 0xFFFFFFFF)
    return IPv6Address(value)


def normalized(ip: IPAddress) -> IPAddress:
    """``ip``, with an IPv4-mapped IPv6 address turned into the IPv4 address it holds.

    Open vSwitch does not tell them apart, so neither do our tables.
    """
    return from128(to128(ip))


def format_mapped(value: int) -> str:
    """Open vSwitch's ``ipv6_format_mapped()``: dotted decimal for IPv4, else inet_ntop's."""
    if is_v4_mapped(value):
        return str(IPv4Address(value & 0xFFFFFFFF))
    return ip6_to_str(value.to_bytes(16, "big"))


def prefix_mask(plen: int) -> int:
    """A 128-bit mask of ``plen`` leading one bits."""
    return (_ALL << (128 - plen)) & _ALL


def _iface128(iface: IPInterface) -> tuple[int, int]:
    """(address, mask) of a device address, in Open vSwitch's 128-bit form.

    An IPv4 mask is mapped like an address (``::ffff:255.255.255.0``), as
    ``in6_addr_set_mapped_ipv4()`` maps it, so its bit count is 16 more.
    """
    if iface.version == 4:
        return to128(iface.ip), _V4_MAPPED | int(iface.netmask)
    return int(iface.ip), int(iface.netmask)


# -- routes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """One route, as a lookup returns it and ``ovs/route/show`` lists it."""

    #: The destination prefix.
    prefix: IPNetwork
    #: The output device (a bridge name, for native tunnelling).
    dev: str
    #: The next hop; None when the destination is on the link.
    gateway: IPAddress | None
    #: The source address for packets on this route.
    src: IPAddress
    #: The ``pkt_mark`` a packet must carry to use this route.
    mark: int
    #: Open vSwitch's priority (see the module docstring).
    priority: int
    #: A kernel ``local`` route (an address of this host).
    local: bool
    #: ``"user"`` (``ovs/route/add``) or ``"cached"`` (mirrored from the kernel).
    kind: Literal["user", "cached"]


@dataclass(frozen=True, slots=True)
class KernelRoute:
    """A kernel route to mirror, as :mod:`pyvswitch.vswitchd.route_sync` reads it."""

    prefix: IPNetwork
    dev: str
    gateway: IPAddress | None = None
    local: bool = False
    mark: int = 0


@dataclass(slots=True)
class _Rule:
    net: int
    plen: int
    mark: int
    priority: int
    route: Route


def _prefix_of(net: int, plen: int) -> IPNetwork:
    if is_v4_mapped(net) and plen >= 96:
        return IPv4Network((net & 0xFFFFFFFF, plen - 96))
    return IPv6Network((net, plen))


def _destination(dest: IPNetwork | IPInterface) -> tuple[int, int]:
    """(address, prefix length) in 128 bits; an interface keeps its host bits.

    Open vSwitch chooses the source address with the address as typed
    (``1.1.2.92/16`` finds ``1.1.2.92``'s subnet) and stores the route masked.
    """
    if isinstance(dest, IPv4Interface | IPv6Interface):
        address, plen = dest.ip, dest.network.prefixlen
    else:
        address, plen = dest.network_address, dest.prefixlen
    return to128(address), plen + (96 if address.version == 4 else 0)


class RouteTable:
    """Routes by longest prefix and priority, and the addresses of devices.

    Pure: nothing here reads the kernel or a clock. :attr:`version` grows on
    every change, so a user of lookups (translation, whose results datapath
    flows keep) can tell when to look again.
    """

    def __init__(self) -> None:
        # Prefix length (128-bit) -> rules in the order they were added (a
        # replaced rule keeps its place), as the classifier's subtables keep
        # them; the dict keeps the order the subtables were made in.
        self._subtables: dict[int, list[_Rule]] = {}
        self._order: list[tuple[int, list[_Rule]]] | None = None
        self._addresses: dict[str, tuple[IPInterface, ...]] = {}
        self._owners: dict[int, str] = {}
        #: Grows on every change to routes or addresses.
        self.version = 0

    # -- device addresses ---------------------------------------------------------

    def set_device_addresses(self, dev: str, addresses: Sequence[IPInterface]) -> None:
        """The addresses device ``dev`` has now (empty: none, or the device is gone).

        Routes already in the table keep the source address they were given;
        Open vSwitch does the same.
        """
        new = tuple(addresses)
        if self._addresses.get(dev, ()) == new:
            return
        if new:
            self._addresses[dev] = new
        else:
            self._addresses.pop(dev, None)
        self._owners = {}
        for name, ifaces in self._addresses.items():
            for iface in ifaces:
                self._owners.setdefault(to128(iface.ip), name)
        self.version += 1

    def device_addresses(self, dev: str) -> tuple[IPInterface, ...]:
        """The addresses of device ``dev``, in the order they were given."""
        return self._addresses.get(dev, ())

    def devices(self) -> list[str]:
        """Names of the devices that have addresses."""
        return list(self._addresses)

    def owner_of(self, ip: IPAddress) -> str | None:
        """The device that has address ``ip`` (the first one given), or None."""
        return self._owners.get(to128(ip))

    def source_address(self, dst: IPAddress, dev: str) -> IPAddress | None:
        """The address of ``dev`` a route to ``dst`` would use (OVS's ``get_src_addr()``)."""
        found = self._source128(to128(dst), dev)
        return None if found is None else from128(found)

    def _source128(self, dst: int, dev: str) -> int | None:
        best, best_bits = None, -1
        ipv4 = is_v4_mapped(dst)
        for iface in self._addresses.get(dev, ()):
            address, mask = _iface128(iface)
            if ipv4 and not is_v4_mapped(address):
                continue
            bits = mask.bit_count()
            # Strictly longer only: among equal masks the first address wins.
            if dst & mask == address & mask and bits > best_bits:
                best, best_bits = address, bits
        return best

    # -- changing routes ------------------------------------------------------------

    def add_user(
        self,
        dest: IPNetwork | IPInterface,
        dev: str,
        gateway: IPAddress | None = None,
        *,
        mark: int = 0,
    ) -> Route:
        """``ovs/route/add``: insert (or replace) a user route; raises RouteError."""
        address, plen = _destination(dest)
        return self._insert(address, plen, dev, gateway, mark, plen + 32, local=False)

    def add_cached(
        self,
        dest: IPNetwork | IPInterface,
        dev: str,
        gateway: IPAddress | None = None,
        *,
        local: bool = False,
        mark: int = 0,
    ) -> Route | None:
        """Mirror one kernel route; None (and nothing added) when ``dev`` has no fitting address.

        Open vSwitch skips such a route the same way, logging it at debug level only.
        """
        address, plen = _destination(dest)
        try:
            return self._insert(
                address, plen, dev, gateway, mark, plen + (64 if local else 0), local=local
            )
        except RouteError:
            return None

    def replace_cached(self, routes: Iterable[KernelRoute]) -> None:
        """Forget every kernel route and mirror ``routes`` instead, in their order.

        This is what Open vSwitch does when the kernel's table changes:
        flush the cached routes, then insert the whole dump again.
        """
        self.flush_cached()
        for route in routes:
            self.add_cached(
                route.prefix, route.dev, route.gateway, local=route.local, mark=route.mark
            )

    def delete_user(self, dest: IPNetwork | IPInterface, *, mark: int = 0) -> bool:
        """``ovs/route/del``: remove the user route for exactly this prefix and mark."""
        address, plen = _destination(dest)
        net = address & prefix_mask(plen)
        mark &= 0xFFFFFFFF
        return self._remove(
            plen, lambda r: r.net == net and r.mark == mark and r.priority == plen + 32
        )

    def flush_cached(self) -> None:
        """Remove every route mirrored from the kernel; user routes stay."""
        for plen in list(self._subtables):
            self._remove(plen, lambda rule: rule.route.kind == "cached")

    def _insert(
        self,
        address: int,
        plen: int,
        dev: str,
        gateway: IPAddress | None,
        mark: int,
        priority: int,
        *,
        local: bool,
    ) -> Route:
        gw = 0 if gateway is None else to128(gateway)
        # A source from the destination's subnet, else from the gateway's.
        src = self._source128(address, dev)
        if src is None and gw:
            src = self._source128(gw, dev)
        if src is None:
            raise RouteError(
                INSERT_ERROR, f"src addr not available for route {format_mapped(address)}"
            )
        net = address & prefix_mask(plen)
        route = Route(
            prefix=_prefix_of(net, plen),
            dev=dev[:IFNAMSIZ_MAX],
            gateway=from128(gw) if gw else None,
            src=from128(src),
            mark=mark & 0xFFFFFFFF,
            priority=priority,
            local=local,
            kind="cached" if local or priority == plen else "user",
        )
        rules = self._subtables.setdefault(plen, [])
        rule = _Rule(net, plen, route.mark, priority, route)
        same = next(
            (
                i
                for i, r in enumerate(rules)
                if (r.net, r.mark, r.priority) == (net, route.mark, priority)
            ),
            None,
        )
        if same is None:
            rules.append(rule)
        else:
            rules[same] = rule
        self._changed()
        return route

    def _remove(self, plen: int, which: Callable[[_Rule], bool]) -> bool:
        rules = self._subtables.get(plen, [])
        kept = [r for r in rules if not which(r)]
        if len(kept) == len(rules):
            return False
        if kept:
            self._subtables[plen] = kept
        else:
            del self._subtables[plen]
        self._changed()
        return True

    def _changed(self) -> None:
        self._order = None
        self.version += 1

    # -- reading --------------------------------------------------------------------

    def _groups(self) -> list[tuple[int, list[_Rule]]]:
        """Subtables as (highest priority, rules in listing order), best first."""
        if self._order is None:
            groups = [
                (max(r.priority for r in rules), rules) for rules in self._subtables.values()
            ]
            # A stable sort: subtables of equal priority stay in creation order.
            groups.sort(key=lambda group: -group[0])
            self._order = groups
        return self._order

    def routes(self) -> list[Route]:
        """Every route, in ``ovs/route/show``'s order."""
        return [rule.route for _, rules in self._groups() for rule in rules]

    def _best(self, dst: int, mark: int) -> _Rule | None:
        best: _Rule | None = None
        for top, rules in self._groups():
            if best is not None and best.priority >= top:
                break
            for rule in rules:
                if (
                    rule.mark == mark
                    and dst & prefix_mask(rule.plen) == rule.net
                    and (best is None or rule.priority > best.priority)
                ):
                    best = rule
        return best

    def lookup(
        self, dst: IPAddress, *, mark: int = 0, src: IPAddress | None = None
    ) -> Route | None:
        """The route for packets to ``dst`` carrying ``pkt_mark`` ``mark``, or None.

        The returned route's ``gateway`` is the next hop (None: ``dst`` is on
        the link) and ``src`` the source address to use. With ``src`` (a
        tunnel's ``local_ip``), the route is returned only if ``src`` is an
        address of this switch's devices or of a kernel ``local`` route, and
        its ``src`` is that address.
        """
        mark &= 0xFFFFFFFF
        if src is not None and self.owner_of(src) is None:
            own = self._best(to128(src), mark)
            if own is None or not own.route.local:
                return None
        best = self._best(to128(dst), mark)
        if best is None:
            return None
        if src is not None:
            return dataclasses.replace(best.route, src=normalized(src))
        return best.route

    def show(self) -> str:
        """``ovs/route/show``'s text, byte for byte as Open vSwitch 3.1 writes it."""
        lines = ["Route Table:\n"]
        for route in self.routes():
            net, plen = _destination(route.prefix)
            shown = (plen - 96) & 0xFF if is_v4_mapped(net) else plen
            text = (
                f"{'Cached' if route.kind == 'cached' else 'User'}: {format_mapped(net)}/{shown}"
            )
            if route.mark:
                text += f" MARK {route.mark}"
            text += f" dev {route.dev}"
            if route.gateway is not None:
                text += f" GW {format_mapped(to128(route.gateway))}"
            text += f" SRC {format_mapped(to128(route.src))}"
            if route.local:
                text += " local"
            lines.append(text + "\n")
        return "".join(lines)


def format_lookup(route: Route) -> str:
    """``ovs/route/lookup``'s reply for a route found (``gateway ::`` when on the link)."""
    gateway = 0 if route.gateway is None else to128(route.gateway)
    return (
        f"src {format_mapped(to128(route.src))}\n"
        f"gateway {format_mapped(gateway)}\n"
        f"dev {route.dev}\n"
    )


# -- Open vSwitch's address parsers ----------------------------------------------------


class OvsParseError(ValueError):
    """Text Open vSwitch's parsers refuse; ``str()`` is Open vSwitch's message."""


_SPACE = " \t\n\v\f\r"


def scan_int(text: str, pos: int, base: int) -> tuple[int, int] | None:
    """One integer conversion of ``ovs_scan()`` (``%d``, ``%u``, ``%i``, ``%x``) at ``pos``.

    White space is skipped, then a sign, then (base 16, or 0 meaning any) a
    ``0x`` prefix, then digits. Returns (value, end) -- the value untruncated
    and negative for ``-`` (callers keep the bits their C type would) -- or
    None when there is no digit. Unlike C's ``strtol()``, a ``0x`` with no hex
    digit after it fails, as in Open vSwitch.
    """
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    negative = text.startswith("-", pos)
    if text.startswith(("-", "+"), pos):
        pos += 1
    if base in (0, 16) and text[pos : pos + 2] in ("0x", "0X"):
        base, pos = 16, pos + 2
    elif base == 0:
        base = 8 if text.startswith("0", pos) else 10
    start = pos
    value = 0
    while pos < len(text):
        digit = "0123456789abcdef".find(text[pos].lower())
        if digit < 0 or digit >= base:
            break
        value = value * base + digit
        pos += 1
    if pos == start:
        return None
    return (-value if negative else value), pos


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def inet_pton4(text: str) -> int | None:
    """Read IPv4 as glibc's ``inet_pton(AF_INET)``: four decimal octets, no leading zeros.

    None when it is not such an address.
    """
    octets = text.split(".")
    if len(octets) != 4:
        return None
    value = 0
    for octet in octets:
        if not octet or not octet.isascii() or not octet.isdigit():
            return None
        if (len(octet) > 1 and octet[0] == "0") or int(octet) > 255:
            return None
        value = value << 8 | int(octet)
    return value


def inet_pton6(text: str) -> int | None:
    """Read IPv6 as glibc's ``inet_pton(AF_INET6)``: a 128-bit integer, or None.

    Hex groups of up to four digits, one ``::``, and an IPv4 tail in dotted
    decimal where two groups would go; no zone (``%eth0``), unlike ``ipaddress``.
    """
    if not text or (text[0] == ":" and not text.startswith("::")):
        return None
    pos = 1 if text.startswith("::") else 0
    groups: list[int] = []
    gap: int | None = None
    token_start = pos
    digits, value = 0, 0
    while pos < len(text):
        char = text[pos]
        pos += 1
        hexit = "0123456789abcdef".find(char.lower()) if char.isascii() else -1
        if hexit >= 0:
            if digits == 4:
                return None
            value, digits = value << 4 | hexit, digits + 1
            continue
        if char == ":":
            token_start = pos
            if not digits:
                if gap is not None:
                    return None
                gap = len(groups)
                continue
            if pos == len(text) or len(groups) >= 8:
                return None
            groups.append(value)
            digits, value = 0, 0
            continue
        if char == "." and len(groups) <= 6:
            tail = inet_pton4(text[token_start:])
            if tail is None:
                return None
            groups += [tail >> 16, tail & 0xFFFF]
            digits = 0
            break
        return None
    if digits:
        if len(groups) >= 8:
            return None
        groups.append(value)
    if gap is not None:
        if len(groups) == 8:
            return None
        groups[gap:gap] = [0] * (8 - len(groups))
    if len(groups) != 8:
        return None
    result = 0
    for group in groups:
        result = result << 16 | group
    return result


def _scan_ip4(text: str, pos: int) -> tuple[int, int] | None:
    """``IP_SCAN_FMT`` (``%hhu.%hhu.%hhu.%hhu``): each octet keeps its low 8 bits."""
    value = 0
    for i in range(4):
        if i:
            if not text.startswith(".", pos):
                return None
            pos += 1
        found = scan_int(text, pos, 10)
        if found is None:
            return None
        octet, pos = found
        value = value << 8 | (octet & 0xFF)
    return value, pos


def ip_parse_masked_len(text: str) -> tuple[int, int, int]:
    """Open vSwitch's ``ip_parse_masked_len()``: (address, mask, characters read).

    ``IP/MASK``, ``IP/PLEN`` or ``IP`` (mask all ones). Raises OvsParseError.
    """
    found = _scan_ip4(text, 0)
    if found is None:
        raise OvsParseError(f"{text}: invalid IP address")
    address, pos = found
    if text.startswith("/", pos):
        mask = _scan_ip4(text, pos + 1)
        if mask is not None:
            return address, mask[0], mask[1]
        prefix = scan_int(text, pos + 1, 10)
        if prefix is not None:
            plen = _int32(prefix[0])
            if not 0 <= plen <= 32:
                raise OvsParseError(
                    f"{text}: IPv4 network prefix bits not between 0 and 32, inclusive"
                )
            return address, (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF, prefix[1]
    return address, 0xFFFFFFFF, pos


def ip_parse_masked(text: str) -> tuple[int, int]:
    """``ip_parse_masked()``: (address, mask) with nothing after; raises OvsParseError."""
    address, mask, end = ip_parse_masked_len(text)
    if end != len(text):
        raise OvsParseError(f"{text}: invalid IP address")
    return address, mask


def _cidr_bits(mask: int, width: int) -> int | None:
    """The prefix length of a mask of ``width`` bits, or None when not contiguous."""
    inverted = ~mask & ((1 << width) - 1)
    if inverted & (inverted + 1):
        return None
    return width - inverted.bit_length()


def ip_parse_cidr(text: str) -> tuple[int, int]:
    """``ip_parse_cidr()``: (address, prefix length); the mask must be contiguous."""
    address, mask, end = ip_parse_masked_len(text)
    plen = _cidr_bits(mask, 32)
    if plen is None:
        raise OvsParseError(f"{text}: CIDR network required")
    if end != len(text):
        raise OvsParseError(f"{text}: invalid IP address")
    return address, plen


_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def _scan_ipv6_token(text: str, pos: int) -> tuple[str, int] | None:
    """``IPV6_SCAN_FMT``: up to 46 characters of hex digits, colons and dots."""
    end = pos
    while end < len(text) and end - pos < 46 and text[end] in _IPV6_CHARS:
        end += 1
    return (text[pos:end], end) if end > pos else None


def ipv6_parse_cidr(text: str) -> tuple[int, int]:
    """``ipv6_parse_cidr()``: (128-bit address, prefix length); raises OvsParseError."""
    pos = 0
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    token = _scan_ipv6_token(text, pos)
    address = None if token is None else inet_pton6(token[0])
    if token is None or address is None:
        raise OvsParseError(f"{text}: invalid IPv6 address")
    pos = token[1]
    mask = _ALL
    if text.startswith("/", pos):
        prefix = scan_int(text, pos + 1, 10)
        masked = _scan_ipv6_token(text, pos + 1)
        if prefix is not None:
            plen = _int32(prefix[0])
            if not 0 <= plen <= 128:
                raise OvsParseError(
                    f"{text}: IPv6 network prefix bits not between 0 and 128, inclusive"
                )
            mask, pos = prefix_mask(plen), prefix[1]
        elif masked is not None:
            parsed = inet_pton6(masked[0])
            if parsed is None:
                raise OvsParseError(f"{text}: Invalid IPv6 mask")
            mask, pos = parsed, masked[1]
    plen_found = _cidr_bits(mask, 128)
    if plen_found is None:
        raise OvsParseError(f"{text}: IPv6 CIDR network required")
    if pos != len(text):
        raise OvsParseError(f"{text}: invalid IPv6 address")
    return address, plen_found


def scan_pkt_mark(text: str) -> int | None:
    """``ovs_scan(text, "pkt_mark=%i")``: the mark (32 bits kept), or None.

    As ``ovs_scan()``, anything after the number is ignored (``pkt_mark=5x`` is 5).
    """
    if not text.startswith("pkt_mark="):
        return None
    found = scan_int(text, len("pkt_mark="), 0)
    return None if found is None else found[0] & 0xFFFFFFFF


def parse_route_prefix(text: str) -> tuple[IPInterface, bool] | None:
    """An ``ip/plen`` argument of ``ovs/route/*``: (address with prefix, typed as IPv6).

    IPv4 is tried first (``ip_parse_cidr``), then IPv6 (``ipv6_parse_cidr``),
    as Open vSwitch does; None when neither reads it. An IPv4-mapped IPv6
    prefix becomes the IPv4 one it stands for, as it does in Open vSwitch,
    but still counts as typed in IPv6 (its gateway is read as IPv6).
    """
    try:
        address, plen = ip_parse_cidr(text)
    except OvsParseError:
        pass
    else:
        return IPv4Interface((address, plen)), False
    try:
        address6, plen6 = ipv6_parse_cidr(text)
    except OvsParseError:
        return None
    if is_v4_mapped(address6) and plen6 >= 96:
        return IPv4Interface((address6 & 0xFFFFFFFF, plen6 - 96)), True
    return IPv6Interface((address6, plen6)), True
