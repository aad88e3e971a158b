"""The datapath: one for every bridge, with its caches and upcalls.

This is Open vSwitch's dpif-netdev in the shape that suits Python:

* **Exact-match cache (EMC)**: a dict from a packet's full flow key to the
  megaflow that last served it. A hit is one dict lookup.
* **Megaflow classifier**: tuple-space search. Every megaflow has a mask; flows
  with the same mask share a *subtable*, a dict keyed by ``key & mask``. A
  lookup probes subtables in order of how many hits they had, most first.
* **Upcall**: a packet neither cache knows goes to the translation callback
  (ofproto's xlate), which returns datapath actions and the mask of every
  field the decision depended on; the result is installed as a megaflow, so
  every later packet that agrees on those fields is forwarded from the cache.

Batches: :meth:`Datapath.receive` takes a batch of frames from one port and
returns output batches per port. Frames that hit the same megaflow are
executed together. Time is an argument (``now``, seconds); nothing here does
I/O. Statistics a megaflow's hits must reach (OpenFlow rule counters, patch
port counters, MAC learning ages) are the megaflow's *sinks*: they are told
about every batch that hits, so they are exact even though translation ran
once.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pyvswitch.dpif.actions import OdpClone, OdpUserspace
from pyvswitch.dpif.execute import execute_batch, has_tunnel_actions
from pyvswitch.dpif.tunnel_exec import TunnelRuntime
from pyvswitch.flow.extract import extract_key
from pyvswitch.flow.layout import FIELDS, KEY_BITS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from pyvswitch.dpif.actions import OdpAction

    #: What userspace actions hand over: each action with the frame as it was then.
    Upcalls = list[tuple[OdpUserspace, bytes]]

#: OVS's default maximum number of EMC entries (EM_FLOW_HASH_ENTRIES).
EMC_ENTRIES = 8192
#: OVS inserts into the EMC with probability 1/100 by default
#: (other_config:emc-insert-inv-prob); 1 means always.
EMC_INSERT_INV_PROB = 100
#: Megaflows unused this long (seconds) are removed, as OVS's default
#: max-idle of 10 s.
MEGAFLOW_IDLE = 10.0
#: How many times a packet may come back from a tnl_pop, as OVS's MAX_RECIRC_DEPTH.
MAX_RECIRC_DEPTH = 6


class StatsSink(Protocol):
    """Something that counts the packets a megaflow forwards (a rule, a patch port)."""

    def account(self, packets: int, nbytes: int, now: float) -> None:
        """Add ``packets`` packets of ``nbytes`` bytes in total, seen at ``now``."""


@dataclass(frozen=True, slots=True)
class UpcallResult:
    """What translation decided for a packet: actions, the mask, and who counts."""

    actions: tuple[OdpAction, ...]
    mask: int
    sinks: tuple[StatsSink, ...] = ()
    #: What the translation depended on besides rules and ports (learned
    #: MACs), so that a change there revalidates only the flows it affects.
    tags: frozenset[object] = frozenset()
    #: Run the actions for this packet, but install no flow: the next
    #: packet asks again (a tunnel whose next hop is still unresolved).
    uncacheable: bool = False


#: The upcall: (packed key, frame, now) -> the translation's result.
Upcall = "Callable[[int, bytes, float], UpcallResult]"


@dataclass(eq=False, slots=True)
class Megaflow:
    """One installed datapath flow."""

    key: int  # the key of the packet whose upcall made it (for revalidation)
    mask: int
    actions: tuple[OdpAction, ...]
    sinks: tuple[StatsSink, ...]
    created: float
    used: float = -1.0
    packets: int = 0
    nbytes: int = 0
    tcp_flags: int = 0
    dead: bool = False
    tags: frozenset[object] = frozenset()
    #: Whether the actions hand frames to userspace (a capture point): only
    #: such flows pay for collecting them on cache hits.
    userspace: bool = False
    #: Whether the actions push, pop or clone (they need the tunnel runtime).
    tunnel: bool = False

    @property
    def value(self) -> int:
        """The masked key: what the classifier files the flow under."""
        return self.key & self.mask


@dataclass(slots=True)
class _Subtable:
    mask: int
    flows: dict[int, Megaflow] = field(default_factory=dict)
    hits: int = 0


@dataclass(slots=True)
class DpifStats:
    """``dpif/show``'s lookup counters: hits (both caches), misses, lost upcalls."""

    hit: int = 0
    missed: int = 0
    lost: int = 0
    emc_hit: int = 0
    megaflow_hit: int = 0


class MegaflowClassifier:
    """Tuple-space search over installed megaflows."""

    def __init__(self) -> None:
        self._subtables: list[_Subtable] = []
        self._by_mask: dict[int, _Subtable] = {}
        self._lookups_since_sort = 0

    def __len__(self) -> int:
        return sum(len(s.flows) for s in self._subtables)

    def __iter__(self) -> Iterator[Megaflow]:
        for sub in self._subtables:
            yield from sub.flows.values()

    def lookup(self, key: int) -> Megaflow | None:
        """The megaflow that matches ``key``, or None."""
        for sub in self._subtables:
            flow = sub.flows.get(key & sub.mask)
            if flow is not None:
                sub.hits += 1
                self._lookups_since_sort += 1
                if self._lookups_since_sort >= 1024:
                    self._sort()
                return flow
        return None

    def _sort(self) -> None:
        # Busy subtables first, as dpif-netdev's subtable ranking does.
        self._subtables.sort(key=lambda s: s.hits, reverse=True)
        self._lookups_since_sort = 0

    def insert(self, flow: Megaflow) -> Megaflow:
        """Install ``flow``; an existing flow with the same mask and value is replaced."""
        sub = self._by_mask.get(flow.mask)
        if sub is None:
            sub = _Subtable(flow.mask)
            self._by_mask[flow.mask] = sub
            self._subtables.append(sub)
        old = sub.flows.get(flow.value)
        if old is not None:
            old.dead = True
        sub.flows[flow.value] = flow
        return flow

    def remove(self, flow: Megaflow) -> None:
        """Remove ``flow`` (a flow already gone is ignored)."""
        flow.dead = True
        sub = self._by_mask.get(flow.mask)
        if sub is None or sub.flows.get(flow.value) is not flow:
            return
        del sub.flows[flow.value]
        if not sub.flows:
            del self._by_mask[flow.mask]
            self._subtables.remove(sub)

    def subtable_count(self) -> int:
        """How many distinct masks are installed."""
        return len(self._subtables)


class Datapath:
    """The shared datapath: ports by number, caches, upcalls, execution.

    ``upcall`` is translation (set by ofproto). ``rng`` drives the EMC's
    probabilistic insertion; pass a seeded one for reproducible tests.
    """

    def __init__(
        self,
        upcall: Callable[[int, bytes, float], UpcallResult] | None = None,
        *,
        emc_entries: int = EMC_ENTRIES,
        emc_insert_inv_prob: int = EMC_INSERT_INV_PROB,
        rng: random.Random | None = None,
    ) -> None:
        self.upcall = upcall
        self.ports: dict[int, str] = {}
        self.megaflows = MegaflowClassifier()
        self.emc: dict[int, Megaflow] = {}
        self.emc_entries = emc_entries
        self.emc_insert_inv_prob = emc_insert_inv_prob
        self.stats = DpifStats()
        self._rng = rng or random.Random(0)  # noqa: S311 - cache sampling, not security
        self._by_tag: dict[object, set[Megaflow]] = {}
        #: Gets what userspace actions hand over on every execution, cache hits
        #: included (the owner's capture points); None: they hand over nothing.
        self.on_userspace: Callable[[Upcalls], None] | None = None
        #: Tunnel ports' types, what pops hand back, drop counters.
        self.tunnels = TunnelRuntime()

    # -- ports --------------------------------------------------------------

    def add_port(self, name: str, port_no: int | None = None) -> int:
        """Add a port and return its datapath number (the lowest free one if not given)."""
        if port_no is None:
            port_no = next(n for n in range(1, 1 << 16) if n not in self.ports)
        if port_no in self.ports:
            raise ValueError(f"datapath port {port_no} is already {self.ports[port_no]}")
        self.ports[port_no] = name
        return port_no

    def del_port(self, port_no: int) -> None:
        """Remove a port; flows that output to it are flushed by the next revalidation."""
        self.ports.pop(port_no, None)

    # -- the packet path ------------------------------------------------------

    def receive(
        self,
        in_port: int,
        frames: list[bytes],
        now: float,
        *,
        tunnel: dict[int, int] | None = None,
        depth: int = 0,
    ) -> dict[int, list[bytes]]:
        """Forward a batch received on ``in_port``; return the frames to send, by port.

        ``tunnel`` gives, by ``id()`` of each frame, the tunnel metadata bits
        of its key: frames a ``tnl_pop`` handed back come in again that way.
        """
        out: dict[int, list[bytes]] = {}
        groups: dict[int, tuple[Megaflow, list[bytes]]] = {}
        # Frames that missed, per flow: Open vSwitch executes the frame that
        # caused an upcall without counting it in the new flow's statistics
        # (after three packets dpctl/dump-flows says packets:2), and so do we.
        # Rules and ports (the sinks) count it as usual.
        missed: dict[int, list[int]] = {}
        emc = self.emc
        stats = self.stats
        for frame in frames:
            key = extract_key(frame, in_port)
            if tunnel is not None:
                key |= tunnel[id(frame)]
            flow = emc.get(key)
            if flow is not None and not flow.dead:
                stats.emc_hit += 1
            else:
                flow = self.megaflows.lookup(key)
                if flow is not None:
                    stats.megaflow_hit += 1
                    self._emc_insert(key, flow)
                else:
                    flow = self._miss(key, frame, now)
                    if flow is None:
                        continue
                    count = missed.setdefault(id(flow), [0, 0])
                    count[0] += 1
                    count[1] += len(frame)
            group = groups.get(id(flow))
            if group is None:
                groups[id(flow)] = (flow, [frame])
            else:
                group[1].append(frame)
        stats.hit = stats.emc_hit + stats.megaflow_hit
        for flow, batch in groups.values():
            nbytes = sum(map(len, batch))
            if missed:
                miss_packets, miss_bytes = missed.get(id(flow), (0, 0))
            else:
                miss_packets = miss_bytes = 0
            if len(batch) > miss_packets:
                flow.packets += len(batch) - miss_packets
                flow.nbytes += nbytes - miss_bytes
                flow.used = now
            for sink in flow.sinks:
                sink.account(len(batch), nbytes, now)
            runtime = self.tunnels if flow.tunnel else None
            if flow.userspace and self.on_userspace is not None:
                upcalls: Upcalls = []
                by_port = execute_batch(batch, flow.actions, upcalls, runtime)
                self.on_userspace(upcalls)
            else:
                by_port = execute_batch(batch, flow.actions, None, runtime)
            for port, sent in by_port.items():
                if port in out:
                    out[port].extend(sent)
                else:
                    out[port] = sent
        if self.tunnels.recirc:
            self._recirculate(out, now, depth)
        return out

    def _recirculate(self, out: dict[int, list[bytes]], now: float, depth: int) -> None:
        """Look up again what ``tnl_pop`` stripped, as received on the tunnel's port."""
        popped = self.tunnels.recirc
        self.tunnels.recirc = []
        if depth >= MAX_RECIRC_DEPTH:
            # A tunnel inside a tunnel inside... as deep as OVS allows, then dropped.
            self.tunnels.coverage["datapath_drop_recirc_error"] += len(popped)
            return
        by_port: dict[int, tuple[list[bytes], dict[int, int]]] = {}
        for port, bits, inner in popped:
            frames, tunnel = by_port.setdefault(port, ([], {}))
            frames.append(inner)
            tunnel[id(inner)] = bits
        for port, (frames, tunnel) in by_port.items():
            sent_by_port = self.receive(port, frames, now, tunnel=tunnel, depth=depth + 1)
            for out_port, sent in sent_by_port.items():
                out.setdefault(out_port, []).extend(sent)

    def _emc_insert(self, key: int, flow: Megaflow) -> None:
        if self.emc_insert_inv_prob > 1 and self._rng.randrange(self.emc_insert_inv_prob):
            return
        if len(self.emc) >= self.emc_entries:
            # Evict an arbitrary (the oldest inserted) entry: dicts keep order.
            self.emc.pop(next(iter(self.emc)))
        self.emc[key] = flow

    def _miss(self, key: int, frame: bytes, now: float) -> Megaflow | None:
        if self.upcall is None:
            self.stats.lost += 1
            return None
        result = self.upcall(key, frame, now)
        self.stats.missed += 1
        flow = Megaflow(
            key,
            result.mask,
            result.actions,
            result.sinks,
            created=now,
            tags=result.tags,
            userspace=_hands_to_userspace(result.actions),
            tunnel=has_tunnel_actions(result.actions),
        )
        if not result.uncacheable:
            self._install(flow)
            self._emc_insert(key, flow)
        return flow

    def _install(self, flow: Megaflow) -> None:
        self.megaflows.insert(flow)
        for tag in flow.tags:
            self._by_tag.setdefault(tag, set()).add(flow)

    def _remove(self, flow: Megaflow) -> None:
        self.megaflows.remove(flow)
        for tag in flow.tags:
            flows = self._by_tag.get(tag)
            if flows is not None:
                flows.discard(flow)
                if not flows:
                    del self._by_tag[tag]

    # -- maintenance ----------------------------------------------------------

    def flows(self) -> list[Megaflow]:
        """Installed megaflows (for dump-flows)."""
        return list(self.megaflows)

    def flush(self) -> None:
        """Remove every megaflow (and so every EMC entry)."""
        for flow in list(self.megaflows):
            self._remove(flow)
        self.emc.clear()

    def expire(self, now: float, idle: float = MEGAFLOW_IDLE) -> int:
        """Remove megaflows unused for ``idle`` seconds; return how many."""
        stale = [f for f in self.megaflows if max(f.used, f.created) + idle <= now]
        for flow in stale:
            self._remove(flow)
        if stale:
            self._drop_dead_emc()
        return len(stale)

    def revalidate(
        self,
        translate: Callable[[int, float], UpcallResult],
        now: float,
        tags: Iterable[object] | None = None,
    ) -> int:
        """Re-translate every megaflow's key; fix or remove those whose result changed.

        This is what keeps the caches honest after OpenFlow rules, ports or
        learned MACs change: a flow that would now be translated differently
        must not keep forwarding. A flow whose mask is unchanged gets the new
        actions; one whose mask changed is removed. Returns how many flows
        were removed. With ``tags``, only the flows whose translation depended
        on one of them are looked at (a learned MAC changes only those).
        """
        if tags is None:
            flows = list(self.megaflows)
        else:
            chosen: set[Megaflow] = set()
            for tag in tags:
                chosen |= self._by_tag.get(tag, set())
            flows = list(chosen)
        removed = 0
        for flow in flows:
            if flow.dead:
                continue
            result = translate(flow.key, now)
            if result.mask != flow.mask or result.uncacheable:
                # Other fields matter now: the flow may cover packets the new
                # translation would treat differently, so it goes.
                self._remove(flow)
                removed += 1
            else:
                # Same fields, so the same packets: update the flow in place,
                # as OVS's revalidators modify a datapath flow. Who counts may
                # have changed too (a replaced rule).
                flow.actions = result.actions
                flow.userspace = _hands_to_userspace(result.actions)
                flow.tunnel = has_tunnel_actions(result.actions)
                flow.sinks = result.sinks
                if result.tags != flow.tags:
                    self._remove(flow)
                    flow.dead = False
                    flow.tags = result.tags
                    self._install(flow)
        if removed:
            self._drop_dead_emc()
        return removed

    def _drop_dead_emc(self) -> None:
        for key in [k for k, f in self.emc.items() if f.dead]:
            del self.emc[key]


def _hands_to_userspace(actions: tuple[OdpAction, ...]) -> bool:
    return any(
        type(action) is OdpUserspace
        or (isinstance(action, OdpClone) and _hands_to_userspace(action.actions))
        for action in actions
    )


def _used(flow: Megaflow, now: float) -> str:
    return "never" if flow.used < 0 else f"{max(now - flow.used, 0.0):.3f}s"


def format_megaflow(
    flow: Megaflow,
    now: float,
    *,
    verbose: bool = False,
    port_names: Mapping[int, str] | None = None,
    for_dpif: bool = False,
) -> str:
    """One line of ``dpctl/dump-flows``, as Open vSwitch's userspace datapath prints it.

    ``verbose`` is ``dump-flows -m``: the flow's ufid first, every attribute
    of the key with its mask, ``dp:ovs`` and the ``dp-extra-info`` of
    OVS's dpif-netdev. ``port_names`` (datapath port number to name) puts
    names in ``in_port()`` and the output actions. ``for_dpif`` is
    ``dpif/dump-flows -m``'s shorter form (no comma after the ufid, nothing
    from the datapath itself).
    """
    from pyvswitch.dpif.actions_text import format_odp_actions  # noqa: PLC0415
    from pyvswitch.flow.odp_text import format_odp_flow  # noqa: PLC0415

    flags = ""
    if flow.tcp_flags:
        flags = ", flags:" + "".join(
            c
            for bit, c in ((2, "S"), (1, "F"), (16, "."), (8, "P"), (4, "R"), (32, "U"))
            if flow.tcp_flags & bit
        )
    key = format_odp_flow(
        flow.key, flow.mask, megaflow=True, verbose=verbose, port_names=port_names
    )
    actions = format_odp_actions(flow.actions)
    if port_names:
        actions = _name_outputs(actions, port_names)
    stats = f"packets:{flow.packets}, bytes:{flow.nbytes}, used:{_used(flow, now)}{flags}"
    if not verbose:
        return f"{key}, {stats}, actions:{actions}"
    if for_dpif:
        return f"ufid:{megaflow_ufid(flow)} {key}, {stats}, actions:{actions}"
    return (
        f"ufid:{megaflow_ufid(flow)}, {key}, {stats}, dp:ovs, actions:{actions}, "
        f"dp-extra-info:miniflow_bits({','.join(map(str, miniflow_bits(flow.mask)))})"
    )


def megaflow_ufid(flow: Megaflow) -> str:
    """A flow's unique id, as OVS prints one (a UUID's form).

    OVS hashes the key with a random basis; ours is a hash of what the flow
    matches, so the same flow has the same id in every run.
    """
    digest = hashlib.blake2b(
        flow.value.to_bytes(_KEY_BYTES, "big") + flow.mask.to_bytes(_KEY_BYTES, "big"),
        digest_size=16,
    ).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def _name_outputs(actions: str, port_names: Mapping[int, str]) -> str:
    """Datapath actions with output ports named; set(...) and the like keep their numbers."""
    items: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(actions + ","):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            item = actions[start:i]
            if item.isdigit() and int(item) in port_names:
                item = port_names[int(item)]
            items.append(item)
            start = i + 1
    return ",".join(items)


# Where the fields of a datapath flow live in Open vSwitch 3.1's ``struct
# flow`` (lib/flow.h), as byte offsets: dpif-netdev's dp-extra-info counts
# the 64-bit words of it that a megaflow's mask touches. VLAN headers are
# left out: OVS's count has been seen to leave them out too.
_OVS_OFFSETS = {
    # struct flow starts with struct flow_tnl (include/openvswitch/packets.h):
    # ip_dst, ipv6_dst, ip_src, ipv6_src, tun_id, flags, ip_tos, ip_ttl, tp_src, tp_dst.
    "tun_dst": 0,
    "tun_ipv6_dst": 4,
    "tun_src": 20,
    "tun_ipv6_src": 24,
    "tun_id": 40,
    "tun_flags": 48,
    "tun_tos": 50,
    "tun_ttl": 51,
    "tun_tp_src": 52,
    "tun_tp_dst": 54,
    "in_port": 428,
    "dl_dst": 472,
    "dl_src": 478,
    "dl_type": 484,
    "nw_src": 512,
    "nw_dst": 516,
    "ipv6_src": 528,
    "ipv6_dst": 544,
    "ipv6_label": 592,
    "nw_frag": 596,
    "nw_tos": 597,
    "nw_ttl": 598,
    "nw_proto": 599,
    "nd_target": 600,
    "arp_sha": 616,
    "arp_tha": 622,
    "tcp_flags": 628,
    "tp_src": 656,
    "tp_dst": 658,
}
# recirc_id and packet_type, which every megaflow matches exactly.
_ALWAYS_WORDS = frozenset((432 // 8, 444 // 8))
_KEY_BYTES = (KEY_BITS + 7) // 8


def miniflow_bits(mask: int) -> tuple[int, int]:
    """dpif-netdev's ``miniflow_bits(A,B)``: the words of ``struct flow`` the mask touches.

    A counts those among the first 64 words, B the others.
    """
    words = set(_ALWAYS_WORDS)
    for name, offset in _OVS_OFFSETS.items():
        field = FIELDS[name]
        value = (mask >> field.shift) & ((1 << (field.nbytes * 8)) - 1)
        for i, byte in enumerate(value.to_bytes(field.nbytes, "big")):
            if byte:
                words.add((offset + i) // 8)
    low = sum(1 for word in words if word < 64)
    return low, len(words) - low
