"""Port mirroring: Open vSwitch's Mirror table, applied inside translation.

A mirror selects packets -- every packet of its bridge (``select_all``), those
entering by some ports (``select_src_port``), those leaving by some
(``select_dst_port``), optionally only in some VLANs (``select_vlan``) -- and
sends a copy of each to one port (``output_port``) or floods it in one VLAN
(``output_vlan``, Open vSwitch's RSPAN). As ofproto-dpif-xlate.c does it:

* a packet entering the bridge is copied after the first table lookup and
  before the rule's actions run; a packet leaving by a port is copied right
  after the output to that port. Each copy is a datapath output in the same
  megaflow, so mirroring costs no extra lookup and works from the cache;
* the copy is in the VLAN the packet has on the selected port, and is tagged
  or not as the output port's VLAN mode says (as NORMAL would send it there);
* a translation sends at most one copy to each destination of a bridge (two
  mirrors with the same output are one destination); entering another bridge
  starts afresh there;
* a mirror's output port is reserved: NORMAL never floods to it, and what
  arrives on it is dropped;
* a mirror counts the copies it sends (``statistics``); a mirror that another
  one with the same destination pre-empted counts nothing.

Open vSwitch's mirrors never see a packet cross a patch port: the crossing
happens inside translation, where its mirror code never looks. Ours do: a
patch port selected as a source copies what enters its bridge through it, as
a destination what leaves its bridge through it, at the crossing and with the
packet as it is there (see :func:`leave_by_patch` and :func:`enter_by_patch`).

Pure: configuration in, datapath actions (through the translation) out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from pyvswitch.flow.layout import FIELDS, VLAN_CFI

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from pyvswitch.dpif.datapath import StatsSink
    from pyvswitch.flow.flow import Flow
    from pyvswitch.ofproto.bridge import Bridge, OfPort

#: Open vSwitch's limit of mirrors per bridge (MAX_MIRRORS).
MAX_MIRRORS = 32
#: The VLAN ID bits (and "a tag is present") of the outer tag, in the flow key.
_VID_MASK = (0x0FFF | VLAN_CFI) << FIELDS["vlan_tci"].shift

#: Where a mirror sends its copies: (output port, None) or (None, output VLAN).
Destination = tuple[str | None, int | None]


@dataclass(frozen=True)
class Mirror:
    """One mirror's configuration, ports named as the bridge names them.

    Exactly one of ``output_port`` and ``output_vlan`` is set. ``key``
    identifies the mirror across reconfigurations, so that its counters
    survive a change (the daemon uses the row's UUID); empty means the name.
    """

    name: str
    select_all: bool = False
    select_src_port: frozenset[str] = frozenset()
    select_dst_port: frozenset[str] = frozenset()
    #: The VLANs selected; empty selects all.
    select_vlan: frozenset[int] = frozenset()
    output_port: str | None = None
    output_vlan: int | None = None
    key: str = ""
    #: The most bytes of each packet a copy keeps (the Mirror's ``snaplen``); 0 is all.
    snaplen: int = 0

    def __post_init__(self) -> None:
        if (self.output_port is None) == (self.output_vlan is None):
            raise ValueError(f"mirror {self.name}: needs exactly one of output_port, output_vlan")

    @property
    def identity(self) -> str:
        return self.key or self.name

    @property
    def destination(self) -> Destination:
        return (self.output_port, self.output_vlan)

    def selects_src(self, port: str) -> bool:
        return self.select_all or port in self.select_src_port

    def selects_dst(self, port: str) -> bool:
        return self.select_all or port in self.select_dst_port


@dataclass(slots=True)
class MirrorStats:
    """What a mirror sent, as the Mirror table's ``statistics`` reports it (a megaflow sink)."""

    tx_packets: int = 0
    tx_bytes: int = 0

    def account(self, packets: int, nbytes: int, now: float) -> None:  # noqa: ARG002
        self.tx_packets += packets
        self.tx_bytes += nbytes


@dataclass(frozen=True, slots=True)
class ActiveMirror:
    """A mirror running in a bridge: its configuration, counters and slot.

    The slot is Open vSwitch's mirror index: mirrors are considered in slot
    order, and a new mirror takes the lowest free slot, so which of two
    mirrors with one destination sends (and counts) the copy is OVS's choice.
    """

    mirror: Mirror
    stats: MirrorStats
    slot: int


class Mirrors:
    """A bridge's mirrors, in slot order, and the ports they reserve for their copies."""

    __slots__ = ("active", "outputs")

    def __init__(self, active: Iterable[ActiveMirror] = ()) -> None:
        self.active = tuple(sorted(active, key=lambda m: m.slot))
        self.outputs = frozenset(
            m.mirror.output_port for m in self.active if m.mirror.output_port is not None
        )

    def configs(self) -> tuple[Mirror, ...]:
        """The configurations, in slot order."""
        return tuple(m.mirror for m in self.active)

    def reconfigure(self, wanted: Sequence[Mirror]) -> tuple[Mirrors, list[str]]:
        """These mirrors instead, and why any of them could not be created.

        A mirror that was already running (same identity) keeps its slot and
        its counters; new ones take free slots in the order given.
        """
        running = {m.mirror.identity: m for m in self.active}
        kept = [
            ActiveMirror(m, running[m.identity].stats, running[m.identity].slot)
            for m in wanted
            if m.identity in running
        ]
        used = {m.slot for m in kept}
        free = iter([s for s in range(MAX_MIRRORS) if s not in used])
        refused = []
        for m in wanted:
            if m.identity in running:
                continue
            slot = next(free, None)
            if slot is None:
                refused.append(
                    f"maximum of {MAX_MIRRORS} port mirrors reached, cannot create {m.name}"
                )
            else:
                kept.append(ActiveMirror(m, MirrorStats(), slot))
        return Mirrors(kept), refused


# -- translation ----------------------------------------------------------------------


class Translation(Protocol):
    """What mirroring reads and changes of a translation in progress (xlate's context)."""

    bridge: Bridge
    flow: Flow
    may_learn: bool
    stopped: bool
    sinks: list[StatsSink]
    sent: set[tuple[int, int]]
    #: The destinations that got a copy in the current bridge.
    mirrors: set[Destination]
    #: While a copy is sent: the mirror's snaplen, which its outputs apply.
    snaplen: int

    def consult(self, mask: int) -> None: ...
    def consult_field(self, name: str) -> None: ...
    def warning(self, text: str) -> None: ...
    def error(self, text: str) -> None: ...


#: The translation; ``output`` arguments are how it sends a copy: NORMAL's
#: output to a port in a VLAN (xlate's _normal_output).
_T = TypeVar("_T", bound=Translation)


def ingress(ctx: _T, output: Callable[[_T, OfPort, int], None]) -> None:
    """After the first lookup: drop what a reserved port received, else copy the input.

    As Open vSwitch, the rule that matched keeps its place in the trace and
    its counters, but none of its actions run.
    """
    bridge = ctx.bridge
    port = bridge.ports.get(ctx.flow.in_port)
    if port is None or not bridge.mirrors.active:
        return
    if port.name in bridge.mirrors.outputs:
        ctx.warning(
            f"dropping packet received on port {port.name}, "
            "which is reserved exclusively for mirroring"
        )
        ctx.stopped = True
        return
    _mirror_packet(ctx, port, src=True, output=output)


def egress(ctx: _T, port: OfPort, output: Callable[[_T, OfPort, int], None]) -> None:
    """Right after an output to ``port``: copy it for the mirrors that select its output."""
    if ctx.bridge.mirrors.active:
        _mirror_packet(ctx, port, src=False, output=output)


def leave_by_patch(
    ctx: _T, port: OfPort, output: Callable[[_T, OfPort, int], None]
) -> set[Destination]:
    """A packet leaves ``ctx.bridge`` by patch port ``port``: copy it as for any output.

    Returns the destinations served so far in this bridge, which the caller
    puts back when translation returns from the peer bridge.
    """
    egress(ctx, port, output)
    return ctx.mirrors


def enter_by_patch(
    ctx: _T, came_from: Bridge, peer: OfPort, output: Callable[[_T, OfPort, int], None]
) -> None:
    """The packet enters ``ctx.bridge`` by patch port ``peer``: copy it as for any input.

    Another bridge's mirrors start with no destination served, as in Open
    vSwitch's patch_port_output().
    """
    if ctx.bridge is not came_from:
        ctx.mirrors = set()
    if ctx.bridge.mirrors.active:
        _mirror_packet(ctx, peer, src=True, output=output)


def normal_drops_input(ctx: Translation, port: OfPort) -> bool:
    """NORMAL's check: a packet that arrived on a mirror's output port goes nowhere."""
    if port.name not in ctx.bridge.mirrors.outputs:
        return False
    if ctx.may_learn:
        # Open vSwitch reports this only for a real packet.
        ctx.warning(
            f"dropping packet received on port {port.name}, "
            "which is reserved exclusively for mirroring"
        )
    ctx.error("input port is mirror output port, dropping")
    return True


def is_reserved(bridge: Bridge, port: OfPort) -> bool:
    """Whether ``port`` is some mirror's output (NORMAL does not flood to it)."""
    return port.name in bridge.mirrors.outputs


def _mirror_packet(
    ctx: _T, port: OfPort, *, src: bool, output: Callable[[_T, OfPort, int], None]
) -> None:
    """Copy the packet to the destinations of the mirrors that select it on ``port``."""
    candidates = [
        active
        for active in ctx.bridge.mirrors.active
        if (active.mirror.selects_src(port.name) if src else active.mirror.selects_dst(port.name))
        and active.mirror.destination not in ctx.mirrors
    ]
    vlan = input_vlan(ctx, port, decides=bool(candidates))
    if vlan is None:
        return
    for active in candidates:
        mirror = active.mirror
        if mirror.destination in ctx.mirrors:
            # Served meanwhile, by a copy's own output.
            continue
        if mirror.select_vlan:
            if ctx.flow.vlan_tci & VLAN_CFI:
                # Whether there is a tag at all is always matched (the
                # ethertype); its VLAN ID only when a decision reads it.
                ctx.consult(_VID_MASK)
            if vlan not in mirror.select_vlan:
                continue
        # Recorded before sending: the copy's own output must not trigger
        # this destination again.
        ctx.mirrors.add(mirror.destination)
        ctx.sinks.append(active.stats)
        _send(ctx, mirror, vlan, output)


def _send(ctx: _T, mirror: Mirror, vlan: int, output: Callable[[_T, OfPort, int], None]) -> None:
    bridge = ctx.bridge
    # A copy is never suppressed as a repeat of an output the translation
    # already made (xlate's loop rule), nor does it suppress a later one: a
    # rule that also outputs to the mirror's port sends both, as in OVS.
    sent, ctx.sent = ctx.sent, set()
    # Every output the copy makes cuts it (a trunc before each, as OVS's
    # ctx->mirror_snaplen does), in the underlay of a tunnel and, unlike in
    # OVS, which skips such a copy, beyond a patch port too.
    snaplen, ctx.snaplen = ctx.snaplen, mirror.snaplen
    try:
        if mirror.output_port is not None:
            out = bridge.port_by_name(mirror.output_port)
            if out is not None:
                output(ctx, out, vlan)
            return
        assert mirror.output_vlan is not None
        # RSPAN: flood in the output VLAN, unless the packet is in it already
        # or is for a reserved multicast address (802.1D link-local).
        if vlan == mirror.output_vlan:
            return
        ctx.consult_field("dl_dst")
        if ctx.flow.dl_dst >> 4 == 0x0180C200000:
            return
        for out in list(bridge.ports.values()):
            if out.carries(mirror.output_vlan) and not is_reserved(bridge, out):
                output(ctx, out, mirror.output_vlan)
    finally:
        ctx.sent = sent
        ctx.snaplen = snaplen


def input_vlan(
    ctx: Translation, port: OfPort, *, decides: bool, refusal: str | None = None
) -> int | None:
    """The VLAN the packet is in on ``port``, or None if the port would not take it.

    NORMAL asks this of its input port, and Open vSwitch asks it before
    anything else whenever the bridge has mirrors, warning in the trace
    either way. Only when the answer changes what is sent (``decides``)
    does the megaflow match the VLAN ID it read. ``refusal`` is the trace's
    error line when the port refuses the packet (NORMAL's).
    """
    flow = ctx.flow
    vid = 0
    if flow.vlan_tci & VLAN_CFI:
        if decides:
            # Whether there is a tag at all is already matched.
            ctx.consult(_VID_MASK)
        vid = flow.vlan_tci & 0x0FFF
    mode = port.mode()
    if mode == "access":
        if vid:
            ctx.warning(
                f"dropping VLAN {vid} tagged packet received on port {port.name} "
                f"configured as VLAN {port.tag or 0} access port"
            )
            if refusal:
                ctx.error(refusal)
            return None
        return port.tag or 0
    if not vid and mode in ("native-tagged", "native-untagged"):
        return port.tag or 0
    if not port.carries(vid):
        ctx.warning(
            f"dropping VLAN {vid} packet received on port {port.name} not "
            f"configured for trunking VLAN {vid}"
        )
        if refusal:
            ctx.error(refusal)
        return None
    return vid
