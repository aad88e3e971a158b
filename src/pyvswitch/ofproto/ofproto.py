"""The switch's brain: bridges sharing one datapath, upcalls, flow mods, trace.

:class:`Ofproto` owns the bridges and the one :class:`Datapath`; its
:meth:`Ofproto.upcall` is the datapath's miss handler. Everything is pure:
callers pass ``now`` and move the frames :meth:`Ofproto.receive` returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvswitch.dpif.actions_text import format_odp_actions
from pyvswitch.dpif.datapath import Datapath, UpcallResult
from pyvswitch.flow.extract import extract_key
from pyvswitch.flow.flow import Flow
from pyvswitch.flow.layout import FIELDS, TUNNEL_FIELDS
from pyvswitch.flow.ofp_text import format_flow
from pyvswitch.ofproto.actions import OFPP_LOCAL
from pyvswitch.ofproto.bridge import Bridge, OfPort
from pyvswitch.ofproto.capture_points import CapturePoints
from pyvswitch.ofproto.table import OFP_DEFAULT_PRIORITY, Rule
from pyvswitch.ofproto.tlv_map import EMPTY, TlvMap, metadata_from_key
from pyvswitch.ofproto.tnl_neigh import NeighCache
from pyvswitch.ofproto.tnl_ports import TunnelPortExistsError, TunnelPorts
from pyvswitch.ofproto.tnl_route import RouteTable
from pyvswitch.ofproto.xlate import XlateResult, megaflow_text, translate
from pyvswitch.ofproto.xlate_tunnel import (
    TUNNEL_TYPES,
    no_tunnel_port,
    translate_tunnel_in,
)

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Iterable, Sequence

    from pyvswitch.flow.match import Match
    from pyvswitch.ofproto.actions import Action
    from pyvswitch.ofproto.mirror import Mirror, MirrorStats
    from pyvswitch.ofproto.tnl_config import TunnelConfig


#: Seconds between two ARP/ND requests for one unresolved tunnel next hop.
SOLICIT_INTERVAL = 1.0
#: Next hops remembered for that; more are forgotten all at once (bounded memory).
SOLICIT_MEMORY = 4096


class OfprotoError(ValueError):
    """A configuration or flow change was refused; the message says why."""


class Ofproto:
    """All bridges of one switch, on one datapath."""

    def __init__(
        self, *, emc_insert_inv_prob: int = 100, rng: random.Random | None = None
    ) -> None:
        self.bridges: dict[str, Bridge] = {}
        self.datapath = Datapath(self.upcall, emc_insert_inv_prob=emc_insert_inv_prob, rng=rng)
        self._odp_to_port: dict[int, tuple[Bridge, OfPort]] = {}
        self.need_revalidate = False
        #: MAC table entries that changed since the last revalidation.
        self.dirty_tags: set[object] = set()
        #: Called with a bridge's name when rules of it expire (the daemon saves them).
        self.on_rules_expired: Callable[[str], None] | None = None
        #: Patch ports someone captures on (see capture_points.py).
        self.capture_points = CapturePoints()
        #: Tunnel ports, and what native tunnelling looks up: the route
        #: table and neighbour cache (the daemon shares one of each between
        #: its datapaths, as they are process-wide in Open vSwitch), a port's
        #: MAC and addresses (the daemon knows the devices).
        self.tunnels = TunnelPorts()
        self.routes = RouteTable()
        self.neigh = NeighCache()
        self.port_mac: Callable[[str], int | None] = lambda _name: None
        self.addresses: Callable[[str], Sequence[object]] = self._route_addresses
        self._tnl_versions = (-1, -1)
        #: Packets translation sends of its own accord (ARP requests for
        #: tunnel next hops), as (datapath port they come in by, frame).
        self._injected: list[tuple[int, bytes]] = []
        #: When an ARP/ND request last went out, by (bridge, next hop).
        self._solicited: dict[tuple[str, int], float] = {}
        #: Each bridge's TLV map (add-tlv-map): which Geneve option is which
        #: tun_metadataN field. Per bridge, as in Open vSwitch.
        self.tlv_maps: dict[str, TlvMap] = {}

    def tlv_map(self, bridge_name: str) -> TlvMap:
        """The TLV map of bridge ``bridge_name`` (empty until add-tlv-map)."""
        return self.tlv_maps.get(bridge_name, EMPTY)

    def _route_addresses(self, name: str) -> Sequence[object]:
        return self.routes.device_addresses(name)

    def may_solicit(self, bridge: str, ip: int, now: float) -> bool:
        """Whether to send another ARP/ND request for ``ip`` on ``bridge`` now.

        At most one a second per neighbour: every packet to an unresolved
        next hop asks, and a burst must not flood the underlay.
        """
        last = self._solicited.get((bridge, ip))
        if last is not None and 0 <= now - last < SOLICIT_INTERVAL:
            return False
        if len(self._solicited) >= SOLICIT_MEMORY:
            self._solicited.clear()
        self._solicited[(bridge, ip)] = now
        return True

    def inject(self, odp_port: int, frame: bytes) -> None:
        """Have ``frame`` come in by datapath port ``odp_port`` after the current batch."""
        self._injected.append((odp_port, frame))

    def _tunnel_state_changed(self) -> bool:
        """Whether routes or neighbours changed since translations last saw them."""
        versions = (self.routes.version, self.neigh.version)
        if versions == self._tnl_versions:
            return False
        self._tnl_versions = versions
        return True

    # -- configuration ------------------------------------------------------------

    def add_bridge(
        self,
        name: str,
        fail_mode: str = "standalone",
        local_odp_port: int | None = None,
        *,
        with_local_port: bool = True,
    ) -> Bridge:
        """A new bridge with its LOCAL port (an internal datapath port named after it).

        With ``with_local_port=False`` the caller adds that port later
        (``add_port(name, name, "internal", OFPP_LOCAL)``), as ovs-vswitchd
        adds it after the ports that ask for a number.
        """
        if name in self.bridges:
            raise OfprotoError(f"{name}: a bridge with this name already exists")
        bridge = Bridge(name, fail_mode)
        self.bridges[name] = bridge
        if with_local_port:
            self.add_port(name, name, "internal", OFPP_LOCAL, odp_port=local_odp_port)
        return bridge

    def del_bridge(self, name: str) -> None:
        """Remove a bridge and its ports."""
        bridge = self._bridge(name)
        for ofport in list(bridge.ports):
            self.del_port(name, bridge.ports[ofport].name)
        del self.bridges[name]
        self.tlv_maps.pop(name, None)

    def add_port(
        self,
        bridge_name: str,
        name: str,
        type_: str = "system",
        ofport_request: int | None = None,
        *,
        peer: str | None = None,
        tag: int | None = None,
        trunks: Iterable[int] = (),
        vlan_mode: str | None = None,
        odp_port: int | None = None,
        tunnel: TunnelConfig | None = None,
    ) -> OfPort:
        """Add a port; patch ports (``type_="patch"``) get no datapath port.

        Tunnel ports (``tunnel`` given) share one datapath port per type and
        UDP port (``vxlan_sys_4789``); ``odp_port`` is the number to give it
        when it is made, if free. A tunnel a receiver could not tell apart
        from another is refused with Open vSwitch's words.
        """
        bridge = self._bridge(bridge_name)
        if self.find_port(name) is not None:
            raise OfprotoError(f"{name}: a port with this name already exists")
        if type_ == "patch" and not peer:
            raise OfprotoError(f"{name}: patch type requires valid 'peer' argument")
        if type_ in TUNNEL_TYPES and tunnel is None:
            raise OfprotoError(f"{name}: a {type_} port needs its tunnel configuration")
        try:
            ofport = bridge.allocate_ofport(ofport_request)
        except ValueError as exc:
            raise OfprotoError(str(exc)) from None
        dp_port: int | None
        if tunnel is not None:
            dp_port = self._add_tunnel(bridge_name, name, ofport, tunnel, odp_port)
        else:
            dp_port = None if type_ == "patch" else self.datapath.add_port(name, odp_port)
        port = OfPort(
            name,
            ofport,
            type_,
            dp_port,
            peer=peer,
            tag=tag,
            trunks=frozenset(trunks),
            vlan_mode=vlan_mode,
        )
        bridge.ports[ofport] = port
        if dp_port is not None and tunnel is None:
            self._odp_to_port[dp_port] = (bridge, port)
        self.need_revalidate = True
        return port

    def del_port(self, bridge_name: str, name: str) -> None:
        """Remove a port, the MACs learned on it, and (by revalidation) its flows."""
        bridge = self._bridge(bridge_name)
        port = bridge.port_by_name(name)
        if port is None:
            raise OfprotoError(f"{bridge_name}: no port named {name}")
        del bridge.ports[port.ofport]
        bridge.release_ofport(port.ofport)
        bridge.macs.flush(port.ofport)
        if port.type in TUNNEL_TYPES:
            shared = self.tunnels.remove(name)
            if shared is not None:
                self.datapath.del_port(shared)
                self.datapath.tunnels.kinds.pop(shared, None)
        elif port.odp_port is not None:
            self.datapath.del_port(port.odp_port)
            del self._odp_to_port[port.odp_port]
        self.need_revalidate = True

    def _add_tunnel(
        self, bridge: str, name: str, ofport: int, config: TunnelConfig, odp_port: int | None
    ) -> int:
        """Register a tunnel port and return its shared datapath port (made if new)."""
        shared = self.tunnels.datapath_port(config.dpif_port)
        created = shared is None
        if shared is None:
            if odp_port is not None and odp_port in self.datapath.ports:
                odp_port = None
            shared = self.datapath.add_port(config.dpif_port, odp_port)
        try:
            self.tunnels.add(name, bridge, ofport, config, shared)
        except TunnelPortExistsError as exc:
            if created:
                self.datapath.del_port(shared)
            raise OfprotoError(str(exc)) from None
        self.datapath.tunnels.kinds[shared] = (config.type, config.dst_port or 0)
        return shared

    def set_mirrors(self, bridge_name: str, mirrors: Sequence[Mirror]) -> list[str]:
        """Give a bridge these mirrors, replacing its others; returns why any were refused.

        A mirror that keeps its identity keeps its counters, as in Open vSwitch.
        """
        bridge = self._bridge(bridge_name)
        before = bridge.mirrors.configs()
        bridge.mirrors, refused = bridge.mirrors.reconfigure(mirrors)
        if bridge.mirrors.configs() != before:
            self.need_revalidate = True
        return refused

    def mirror_stats(self) -> dict[str, MirrorStats]:
        """Every running mirror's counters, by its identity (``Mirror.key``, else its name)."""
        return {
            m.mirror.identity: m.stats
            for bridge in self.bridges.values()
            for m in bridge.mirrors.active
        }

    def find_port(self, name: str) -> tuple[Bridge, OfPort] | None:
        """The bridge and port called ``name``, in any bridge."""
        for bridge in self.bridges.values():
            port = bridge.port_by_name(name)
            if port is not None:
                return bridge, port
        return None

    def patch_peer(self, port: OfPort) -> tuple[Bridge, OfPort] | None:
        """The usable peer of patch port ``port``, with its bridge; None when there is none.

        As in Open vSwitch: the patch port ``port`` names, if that port names
        ``port`` back. Anything else forwards nothing (and the Interface row
        says "No usable peer").
        """
        found = self.find_port(port.peer) if port.peer else None
        if found is None or found[1].type != "patch" or found[1].peer != port.name:
            return None
        return found

    def watch_point(self, name: str) -> None:
        """A capture attaches to patch or tunnel port ``name``: flows through it must report."""
        if self.capture_points.watch(name):
            self.need_revalidate = True

    def unwatch_point(self, name: str) -> None:
        """A capture on patch or tunnel port ``name`` ends; the last one takes the actions away."""
        if self.capture_points.unwatch(name):
            self.need_revalidate = True

    def _bridge(self, name: str) -> Bridge:
        try:
            return self.bridges[name]
        except KeyError:
            raise OfprotoError(f"no bridge named {name}") from None

    # -- flow table changes ----------------------------------------------------------

    def add_flow(
        self,
        bridge_name: str,
        match: Match,
        actions: tuple[Action, ...],
        *,
        priority: int = OFP_DEFAULT_PRIORITY,
        table_id: int = 0,
        cookie: int = 0,
        idle_timeout: int = 0,
        hard_timeout: int = 0,
        now: float = 0.0,
    ) -> Rule:
        """Add a rule (replacing one with the same match and priority)."""
        bridge = self._bridge(bridge_name)
        if not 0 <= table_id < len(bridge.tables):
            raise OfprotoError(f"table {table_id} is outside 0..{len(bridge.tables) - 1}")
        rule = Rule(
            match,
            actions,
            priority,
            table_id,
            cookie,
            idle_timeout,
            hard_timeout,
            created=now,
            used=now,
        )
        bridge.tables[table_id].insert(rule)
        self.need_revalidate = True
        return rule

    def del_flows(
        self,
        bridge_name: str,
        match: Match | None = None,
        *,
        priority: int | None = None,
        strict: bool = False,
        table_id: int | None = None,
    ) -> int:
        """Delete rules: loosely (every rule at least as specific as ``match``) or strictly."""
        bridge = self._bridge(bridge_name)
        removed = 0
        for table in bridge.tables:
            if table_id is not None and table.table_id != table_id:
                continue
            for rule in list(table.rules):
                if _selected(rule, match, priority, strict):
                    table.remove(rule)
                    removed += 1
        if removed:
            self.need_revalidate = True
        return removed

    def mod_flows(
        self,
        bridge_name: str,
        match: Match,
        actions: tuple[Action, ...],
        *,
        priority: int | None = None,
        strict: bool = False,
        table_id: int | None = None,
    ) -> int:
        """Replace the actions of the selected rules (counters are kept, as in OVS)."""
        bridge = self._bridge(bridge_name)
        changed = 0
        for table in bridge.tables:
            if table_id is not None and table.table_id != table_id:
                continue
            for rule in table.rules:
                if _selected(rule, match, priority, strict):
                    rule.actions = actions
                    changed += 1
        if changed:
            self.need_revalidate = True
        return changed

    # -- packets -----------------------------------------------------------------------

    def upcall(self, key: int, frame: bytes, now: float) -> UpcallResult:  # noqa: ARG002
        """The datapath's miss handler: translate and let the datapath install."""
        return self._translate(key, now, may_learn=True).upcall_result()

    def _of_key(self, key: int) -> tuple[Bridge, int] | None:
        """The bridge a datapath key arrives at, and the key with its OpenFlow in_port."""
        in_port = FIELDS["in_port"].get(key)
        found = self._odp_to_port.get(in_port)
        if found is None:
            if in_port not in self.datapath.tunnels.kinds:
                return None
            tport = self.tunnels.receive(in_port, Flow.from_key(key))
            if tport is None or tport.bridge not in self.bridges:
                return None
            bridge = self.bridges[tport.bridge]
            port = bridge.ports[tport.ofport]
            of_key = (key & ~FIELDS["in_port"].mask) | FIELDS["in_port"].put(port.ofport)
            # Geneve options become the tun_metadataN fields the bridge's map
            # names (translation drops a packet whose options the map refuses).
            metadata = metadata_from_key(self.tlv_map(bridge.name), key)
            return bridge, of_key if metadata is None else of_key | metadata
        bridge, port = found
        # Translation sees OpenFlow port numbers; the datapath key has odp ones.
        return bridge, (key & ~FIELDS["in_port"].mask) | FIELDS["in_port"].put(port.ofport)

    def _translate(
        self, key: int, now: float, *, may_learn: bool, tracing: bool = False
    ) -> XlateResult:
        found = self._of_key(key)
        in_port = FIELDS["in_port"].get(key)
        tunnel_in = in_port in self.datapath.tunnels.kinds and in_port not in self._odp_to_port
        if found is None:
            if tunnel_in:
                return no_tunnel_port(self, key)
            error = f"no OpenFlow port for datapath port {in_port}"
            return XlateResult((), FIELDS["in_port"].mask, (), Flow.from_key(key), error)
        bridge, of_key = found
        if tunnel_in:
            return translate_tunnel_in(self, bridge, of_key, now, may_learn, tracing)
        result = translate(self, bridge, of_key, now, may_learn=may_learn, tracing=tracing)
        result.mask |= FIELDS["in_port"].mask
        return result

    def receive(self, odp_port: int, frames: list[bytes], now: float) -> dict[int, list[bytes]]:
        """Forward a batch received on datapath port ``odp_port``."""
        if self._tunnel_state_changed():
            self.need_revalidate = True
        if self.need_revalidate or self.dirty_tags:
            self.revalidate(now)
        out = self.datapath.receive(odp_port, frames, now)
        if self._tunnel_state_changed():
            self.need_revalidate = True
        if self.need_revalidate or self.dirty_tags:
            # Learning during this batch's upcalls made older flows stale.
            self.revalidate(now)
        while self._injected:
            injected, self._injected = self._injected, []
            for port, frame in injected:
                for out_port, sent in self.datapath.receive(port, [frame], now).items():
                    out.setdefault(out_port, []).extend(sent)
        return out

    def revalidate(self, now: float) -> int:
        """Bring cached flows up to date with rules, ports and learned MACs.

        After a rule or port change every megaflow is re-translated; after
        MAC learning only the flows that looked those MACs up.
        """
        tags = None if self.need_revalidate else set(self.dirty_tags)
        self.need_revalidate = False
        self.dirty_tags.clear()
        return self.datapath.revalidate(
            lambda key, t: self._translate(key, t, may_learn=False).upcall_result(), now, tags
        )

    def run(self, now: float) -> None:
        """Periodic work: rule timeouts, MAC aging, idle megaflows, revalidation."""
        for bridge in self.bridges.values():
            expired = [r for table in bridge.tables for r in table.rules if r.expired(now)]
            for rule in expired:
                bridge.tables[rule.table_id].remove(rule)
            if expired:
                self.need_revalidate = True
                if self.on_rules_expired is not None:
                    self.on_rules_expired(bridge.name)
            if bridge.macs.expire(now):
                self.need_revalidate = True
        # The neighbour cache is the switch's, not one datapath's: its owner
        # ages it (the daemon, once a tick); a change shows in its version.
        if self._tunnel_state_changed():
            self.need_revalidate = True
        self.datapath.expire(now)
        if self.need_revalidate:
            self.revalidate(now)

    # -- inspection ----------------------------------------------------------------------

    def trace(
        self,
        odp_key: int,
        now: float = 0.0,
        packet: bytes | None = None,
        *,
        generated: bool = False,
    ) -> str:
        """``ofproto/trace`` for a datapath key: what would happen, in OVS's format.

        With ``packet``, that packet is traced: its fields are extracted from
        it, and only the metadata (in_port, the tunnel) comes from ``odp_key``.
        ``generated`` says a packet was made from ``odp_key`` itself
        (``-generate``), which changes no field. A trace with a real packet
        has the side effects forwarding it would have, as in Open vSwitch:
        NORMAL learns its source MAC and says so. Nothing is sent and no
        counter moves. A key from no known port raises :class:`OfprotoError`.
        """
        if packet is not None:
            odp_key = _packet_flow(odp_key, packet)
        found = self._of_key(odp_key)
        if found is None:
            raise OfprotoError(self._translate(odp_key, now, may_learn=False).error or "")
        if metadata_from_key(self.tlv_map(found[0].name), odp_key) is None:
            # OVS's trace refuses such a flow as it reads it.
            raise OfprotoError("Failed to parse Geneve options")
        real = packet is not None or generated
        result = self._translate(odp_key, now, may_learn=real, tracing=True)
        return _trace_text(result, found[1])

    def trace_openflow(
        self,
        bridge_name: str,
        of_key: int,
        now: float = 0.0,
        packet: bytes | None = None,
        *,
        generated: bool = False,
    ) -> str:
        """``ofproto/trace BRIDGE FLOW``: a flow written in OpenFlow terms, in that bridge.

        ``packet`` and ``generated`` are as for :meth:`trace`.
        """
        bridge = self._bridge(bridge_name)
        if packet is not None:
            of_key = _packet_flow(of_key, packet)
        real = packet is not None or generated
        result = translate(self, bridge, of_key, now, may_learn=real, tracing=True)
        return _trace_text(result, of_key)


#: The tunnel fields a packet keeps from the flow it is traced with.
_TUNNEL_MASK = sum(FIELDS[name].mask for name in TUNNEL_FIELDS)


def _packet_flow(key: int, packet: bytes) -> int:
    """The flow of ``packet`` received with the metadata of flow ``key``.

    Open vSwitch copies a flow's packet metadata to the packet
    (``pkt_metadata_from_flow()``) and extracts the flow again: the input
    port stays, the tunnel stays only when it has a destination, and
    everything else, registers and OpenFlow metadata included, comes from the
    packet or is zero.
    """
    has_dst = FIELDS["tun_dst"].get(key) or FIELDS["tun_ipv6_dst"].get(key)
    tunnel = key & _TUNNEL_MASK if has_dst else 0
    return extract_key(packet, FIELDS["in_port"].get(key)) | tunnel


def _trace_text(result: XlateResult, of_key: int) -> str:
    lines = list(result.trace)
    final = format_flow(result.flow)
    first = lines[0][len("Flow: ") :] if lines else ""
    lines += [
        "",
        f"Final flow: {'unchanged' if final == first else final}",
        f"Megaflow: {megaflow_text(result.mask, of_key)}",
        f"Datapath actions: {format_odp_actions(result.actions)}",
    ]
    if result.error:
        lines.append(f"Translation failed ({result.error})")
    return "\n".join(lines)


def _selected(rule: Rule, match: Match | None, priority: int | None, strict: bool) -> bool:
    if match is None:
        return True
    if strict:
        return rule.match == match and (priority is None or rule.priority == priority)
    # Loose: the rule is at least as specific as the given match and agrees with it.
    return (
        rule.match.mask & match.mask == match.mask and rule.match.value & match.mask == match.value
    )


__all__ = ["Ofproto", "OfprotoError"]
