"""Bridges: ports with OpenFlow numbers, 255 tables, a fail mode, a MAC table.

Pure configuration and state; translation (xlate.py) reads it. Every bridge
of one :class:`pyvswitch.ofproto.ofproto.Ofproto` shares one datapath, so
ports other than patch ports also have a datapath port number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyvswitch.flow.match import Match
from pyvswitch.ofproto.actions import OFPP_LOCAL, OFPP_MAX, OFPP_NORMAL, Output
from pyvswitch.ofproto.mac_learning import MacTable
from pyvswitch.ofproto.mirror import Mirrors
from pyvswitch.ofproto.table import N_TABLES, Rule, Table

VLAN_MODES = ("access", "trunk", "native-tagged", "native-untagged")


@dataclass(slots=True)
class PortCounters:
    """Packet counters ofproto keeps for ports the datapath never sees (patch ports)."""

    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0


class PatchTx:
    """Counts what leaves a bridge by a patch port (a megaflow sink)."""

    __slots__ = ("counters",)

    def __init__(self, counters: PortCounters) -> None:
        self.counters = counters

    def account(self, packets: int, nbytes: int, now: float) -> None:  # noqa: ARG002
        self.counters.tx_packets += packets
        self.counters.tx_bytes += nbytes


class PatchRx:
    """Counts what enters a bridge by a patch port (a megaflow sink)."""

    __slots__ = ("counters",)

    def __init__(self, counters: PortCounters) -> None:
        self.counters = counters

    def account(self, packets: int, nbytes: int, now: float) -> None:  # noqa: ARG002
        self.counters.rx_packets += packets
        self.counters.rx_bytes += nbytes


@dataclass(eq=False, slots=True)
class OfPort:
    """One port of a bridge, as ofproto sees it."""

    name: str
    ofport: int
    type: str
    odp_port: int | None  # None for patch ports: they are not datapath ports
    peer: str | None = None
    tag: int | None = None
    trunks: frozenset[int] = frozenset()
    vlan_mode: str | None = None
    counters: PortCounters = field(default_factory=PortCounters)

    def mode(self) -> str:
        """The effective VLAN mode, with OVS's default: access if tagged, else trunk."""
        if self.vlan_mode:
            return self.vlan_mode
        return "access" if self.tag is not None else "trunk"

    def carries(self, vlan: int) -> bool:
        """Whether frames of ``vlan`` (0 for none) may use this port."""
        mode = self.mode()
        if mode == "access":
            return vlan == (self.tag or 0)
        if mode in ("native-tagged", "native-untagged") and vlan == (self.tag or 0):
            return True
        return not self.trunks or vlan in self.trunks


#: Automatic OpenFlow port numbers are below this, as in alloc_ofp_port()
#: (the upper part of the range is left to controllers).
_AUTO_OFPORTS = min(OFPP_MAX, 32768)


class Bridge:
    """One bridge: ports, tables, fail mode, MAC learning."""

    def __init__(self, name: str, fail_mode: str = "standalone") -> None:
        if fail_mode not in ("standalone", "secure"):
            raise ValueError(f"{name}: fail_mode must be standalone or secure, not {fail_mode!r}")
        self.name = name
        self.fail_mode = fail_mode
        # Ports in the order they were added: flooding visits them in this
        # order, as Open vSwitch visits its bundles (the bridge's own port first).
        self.ports: dict[int, OfPort] = {}
        self.tables = [Table(i) for i in range(N_TABLES)]
        self.macs = MacTable()
        self.flood_vlans: frozenset[int] = frozenset()
        self.mirrors = Mirrors()
        # allocate_ofport()'s state: the last number it gave, and the numbers
        # deleted ports gave up, in the order they did.
        self._alloc_cursor = 0
        self._released: dict[int, int] = {}
        self._release_count = 0
        if fail_mode == "standalone":
            # As OVS, a standalone bridge with no controller starts with one
            # flow that makes it a learning switch.
            self.tables[0].insert(Rule(Match(), (Output(OFPP_NORMAL),), priority=0))

    def port_by_name(self, name: str) -> OfPort | None:
        """The port called ``name``, if any."""
        return next((p for p in self.ports.values() if p.name == name), None)

    def allocate_ofport(self, request: int | None = None) -> int:
        """``request`` if it is free and valid, else a number chosen as Open vSwitch chooses.

        That is alloc_ofp_port(): the numbers after the last one given, in
        turn, skipping those in use and those a deleted port had, so that a
        new port does not inherit the rules written for an old one; only
        when the range is used up is the longest-released number taken
        again. Automatic numbers are below 32768 (the rest of the range is
        left to controllers). Open vSwitch also treats a number released
        more than an hour ago as free when its search reaches it; this layer
        reads no clock, and the search reaches it only after the range wraps.
        """
        if request is not None:
            if request == OFPP_LOCAL or 1 <= request < OFPP_MAX:
                if request not in self.ports:
                    self._released.pop(request, None)
                    return request
                raise ValueError(f"{self.name}: ofport {request} is already in use")
            raise ValueError(f"{self.name}: ofport_request {request} is outside 1..{OFPP_MAX - 1}")
        number = self._alloc_cursor
        for _ in range(_AUTO_OFPORTS - 1):
            number = number + 1 if number + 1 < _AUTO_OFPORTS else 1
            if number not in self.ports and number not in self._released:
                self._alloc_cursor = number
                return number
        free = [n for n in self._released if n not in self.ports]
        if not free:
            raise ValueError(f"{self.name}: no OpenFlow port number is free")
        oldest = min(free, key=self._released.__getitem__)
        del self._released[oldest]
        return oldest

    def release_ofport(self, ofport: int) -> None:
        """A port gave up ``ofport``: it is given again only when no other is left."""
        if ofport != OFPP_LOCAL:
            self._released[ofport] = self._release_count
            self._release_count += 1

    def rules(self) -> list[Rule]:
        """Every rule, table by table."""
        return [rule for table in self.tables for rule in table.rules]
