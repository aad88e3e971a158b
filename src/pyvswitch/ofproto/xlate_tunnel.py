"""Native tunnelling in translation: output to a tunnel port, and tunnel termination.

Open vSwitch's userspace datapath has no kernel tunnel devices: translation
(``ofproto-dpif-xlate.c``, ``native_tunnel_output()`` and
``terminate_native_tunnel()``) does the work, and so do we.

Output to a tunnel port:

1. The port's configuration gives the packet its tunnel metadata (remote and
   local address, key, ToS, TTL, flags; ``flow`` options take them from what
   the flow's actions set).
2. The switch's own route table says which device the outer packet leaves by
   (a bridge's internal port holding the tunnel endpoint address, ``br-phy``)
   and from which source address; the neighbour cache gives the next hop's
   MAC. A miss sends an ARP request (a neighbour solicitation for IPv6) into
   that bridge and drops the packet, as OVS does; no datapath flow keeps
   that drop, so the next packet asks again (requests at most once a second).
3. The outer header is built once, for the megaflow: ``tnl_push``, and
   translation goes on in the underlay bridge as if the outer packet came in
   by that device, inside a ``clone`` so that the actions after it see the
   packet as it was (a clone that ends the actions is printed unwrapped, as
   OVS 3.1 prints it). The underlay's decisions do not narrow the megaflow
   (as in OVS, which revalidates through its xlate cache; we use our
   revalidation tags, so a MAC the underlay learns still updates the flow).

Termination: output to a port that owns an IP address, of a packet addressed
to that address and port on a protocol a tunnel listens on, becomes
``tnl_pop(N)``: the datapath strips the outer header and looks the inner
packet up again, arriving on the tunnel port whose configuration matches its
metadata. ARP replies (and gratuitous ARPs) for our addresses that reach such
a port refresh the neighbour cache on the way.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from pyvswitch.dpif.actions import OdpClone, OdpTnlPop, OdpTnlPush
from pyvswitch.dpif.tunnel_exec import CONGESTION_DROP, INVALID_TUNNEL_METADATA, UPCALL_ERROR
from pyvswitch.flow.layout import (
    FIELDS,
    TNL_F_CSUM,
    TNL_F_DONT_FRAGMENT,
    TNL_F_KEY,
    TUNNEL_FIELDS,
)
from pyvswitch.ofproto.bridge import PatchRx, PatchTx
from pyvswitch.ofproto.tlv_map import (
    datapath_mask,
    metadata_from_key,
    options_for_push,
    push_mask,
)
from pyvswitch.packet.addr import mac_to_str
from pyvswitch.packet.checksum import checksum
from pyvswitch.packet.tunnel import (
    GRE,
    IPV4_DF,
    VXLAN,
    Geneve,
    OuterIPv4,
    OuterIPv6,
    OuterUDP,
    TunnelHeader,
)

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable, Sequence

    from pyvswitch.dpif.actions import OdpAction
    from pyvswitch.dpif.datapath import StatsSink
    from pyvswitch.flow.flow import Flow
    from pyvswitch.ofproto.bridge import Bridge, OfPort
    from pyvswitch.ofproto.ofproto import Ofproto
    from pyvswitch.ofproto.tnl_neigh import NeighCache
    from pyvswitch.ofproto.xlate import XlateResult, _Ctx
    from pyvswitch.packet.tunnel import GeneveOption

#: The netdev types that are tunnels.
TUNNEL_TYPES = frozenset(("vxlan", "gre", "geneve"))

_IPPROTO_UDP = 17
_IPPROTO_GRE = 47
_IPPROTO_ICMPV6 = 58
_ETH_IP = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_ARP = 0x0806
_ARP_REQUEST = 1
_ND_ADVERT = 136
#: ff02::1:ff00:0, the solicited-node multicast prefix (the last 24 bits vary).
_SOLICITED_NODE = int(ipaddress.IPv6Address("ff02::1:ff00:0"))
_ARP_REPLY = 2
_TUNNEL_MASK = sum(FIELDS[name].mask for name in TUNNEL_FIELDS)


def _ip_text(ip: int, v6: bool) -> str:
    return str(ipaddress.IPv6Address(ip) if v6 else ipaddress.IPv4Address(ip))


def _mac_text(mac: int) -> str:
    return mac_to_str(mac.to_bytes(6, "big"))


# -- output --------------------------------------------------------------------------


def tunnel_output(
    ctx: _Ctx,
    port: OfPort,
    last: bool,
    commit: Callable[[_Ctx], None],
    cross: Callable[..., None],
    *,
    trunc_at: int | None = None,
) -> None:
    """Output to tunnel ``port``: push the outer header and go on in the underlay bridge.

    ``commit`` and ``cross`` are xlate's commit of pending header changes
    and its crossing into a bridge by one of its ports (passed in to keep the
    import one way). Afterwards the flow is as it was: what the tunnel port
    set is not seen by later actions (as OVS restores ``flow->tunnel``).
    ``trunc_at`` is where the ``trunc`` of ``output(port=P,max_len=N)``
    was put, when there is one.
    """
    flow = ctx.flow
    saved_flow = flow.copy()
    # The packet as the commit below leaves it, which is what the actions
    # after this output see (the outer header lives inside the clone).
    saved_base: Flow | None = None
    saved_overwritten = ctx.overwritten
    restore = True
    try:
        try:
            sent = ctx.ofproto.tunnels.send(port.name, flow)
        except KeyError:
            ctx.error("Tunneling decided against output")
            return
        ctx.consult(sent.wc)
        if _tnl_dst(flow) == _tnl_dst(ctx.packet):
            # Back to where the packet came from (or, for a packet that came
            # by no tunnel, to no address at all: remote_ip=flow with no
            # tun_dst set). OVS 3.1 leaves what the port set in the flow on
            # this path (its "goto out" skips the restore), so the trace's
            # final flow shows it; so do we.
            ctx.error("Not tunneling to our own address")
            restore = False
            return
        ctx.detail("-> output to native tunnel")
        ctx.sinks.append(PatchTx(port.counters))
        commit(ctx)
        captured = ctx.ofproto.capture_points.sending(port.name)
        if captured:
            # A capture on the tunnel port gets the inner packet as the
            # bridge sends it, whole: a pending trunc moves after it, to cut
            # only what the push encapsulates.
            cut = ctx.odp.pop(trunc_at) if trunc_at is not None else None
            ctx.odp += captured
            if cut is not None:
                ctx.odp.append(cut)
        saved_base = ctx.base.copy()
        _native_output(ctx, port, sent.odp_port, last, cross)
    finally:
        if restore:
            flow.assign(saved_flow)
            ctx.flow = flow
            if saved_base is not None:
                ctx.base.assign(saved_base)
            ctx.overwritten = saved_overwritten


class NeighRefresh:
    """A megaflow sink: packets through a tunnel keep its next hop's entry from aging."""

    __slots__ = ("bridge", "ip", "neigh")

    def __init__(
        self,
        neigh: NeighCache,
        bridge: str,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    ) -> None:
        self.neigh, self.bridge, self.ip = neigh, bridge, ip

    def account(self, packets: int, nbytes: int, now: float) -> None:  # noqa: ARG002
        self.neigh.lookup(self.bridge, self.ip, now)


def _tnl_dst(flow: Flow) -> int:
    """The tunnel destination as one IPv6 number, an IPv4 one mapped (flow_tnl_dst())."""
    if flow.tun_dst:
        return 0xFFFF00000000 | flow.tun_dst
    return flow.tun_ipv6_dst


def _native_output(
    ctx: _Ctx, port: OfPort, tnl_odp: int, last: bool, cross: Callable[..., None]
) -> None:
    ofproto = ctx.ofproto
    flow = ctx.flow
    v6 = not flow.tun_dst and bool(flow.tun_ipv6_dst)
    dst = flow.tun_ipv6_dst if v6 else flow.tun_dst
    local = flow.tun_ipv6_src if v6 else flow.tun_src
    route = ofproto.routes.lookup(_address(dst, v6), src=_address(local, v6) if local else None)
    found = None if route is None else _find_device(ctx, route.dev)
    if route is None or found is None:
        ctx.error("native tunnel routing failed")
        return
    nexthop = int(route.gateway) if route.gateway is not None else dst
    out_bridge, out_dev = found
    ctx.detail(f"-> tunneling to {_ip_text(nexthop, v6)} via {out_dev.name}")
    smac = ofproto.port_mac(out_dev.name)
    if smac is None:
        ctx.error("tunnel output device lacks Ethernet address")
        return
    src = local or int(route.src)
    dmac = ofproto.neigh.lookup(out_bridge.name, _address(nexthop, v6), ctx.now)
    if dmac is None:
        kind = "ND" if v6 else "ARP"
        ctx.detail(
            f"-> neighbor cache miss for {_ip_text(nexthop, v6)} on bridge "
            f"{out_bridge.name}, sending {kind} request"
        )
        # No datapath flow may keep the drop: the next packet must ask again
        # (and, at most once a second, send another request), or a lost
        # reply or an expired entry would black-hole the tunnel for good.
        ctx.uncacheable = True
        if (
            ctx.trace is None
            and out_dev.odp_port is not None
            and ofproto.may_solicit(out_bridge.name, nexthop, ctx.now)
        ):
            request = nd_solicit(smac, src, nexthop) if v6 else arp_request(smac, src, nexthop)
            ofproto.inject(out_dev.odp_port, request)
        return
    # Traffic that hits the datapath's cache keeps the neighbour alive, as
    # OVS's xlate cache does (XC_TNL_NEIGH).
    ctx.sinks.append(NeighRefresh(ofproto.neigh, out_bridge.name, _address(nexthop, v6)))
    dmac_int = int.from_bytes(dmac, "big") if isinstance(dmac, bytes) else int(dmac)
    ctx.detail(
        f"-> tunneling from {_mac_text(smac)} {_ip_text(src, v6)} to "
        f"{_mac_text(dmac_int)} {_ip_text(nexthop, v6)}"
    )
    tport = ofproto.tunnels.port(port.name)
    assert tport is not None  # send() above knew it
    config = tport.config
    options: tuple[GeneveOption, ...] = ()
    if config.type == "geneve":
        # The present tun_metadata fields become options, by the bridge's map.
        tlv = ofproto.tlv_map(tport.bridge)
        options = options_for_push(tlv, flow)
        ctx.consult(push_mask(tlv, flow))
    header = build_header(
        config.type, config.dst_port, flow, smac, dmac_int, src, v6, options=options
    )
    assert out_dev.odp_port is not None
    push = OdpTnlPush(tnl_odp, header, out_dev.odp_port)
    _propagate(ctx.flow, header, src, v6)
    _propagate(ctx.base, header, src, v6)
    saved_odp, saved_wc, saved_learn = ctx.odp, ctx.wc, ctx.may_learn
    # The outer packet is a packet of its own: what the inner one was sent
    # out of does not make it a duplicate, nor does another tunnel's outer
    # packet (their flows differ only in the header the flow cannot show).
    saved_sent = ctx.sent
    ctx.odp = [push]
    ctx.may_learn = False
    ctx.sent = set()
    try:
        cross(ctx, out_bridge, out_dev, last, patch=False)
        inner = tuple(ctx.odp)
    finally:
        # The underlay's lookups do not narrow the megaflow (OVS translates
        # it with a wildcard mask of its own); the tags it collected keep
        # the flow up to date with what the underlay learns.
        ctx.odp, ctx.wc, ctx.may_learn = saved_odp, saved_wc, saved_learn
        ctx.sent = saved_sent
    if len(inner) > 1:
        # When the underlay sent the outer packet nowhere, a push alone
        # would only be work: OVS cancels the whole clone then.
        ctx.odp.append(OdpClone(inner))


def unwrap_trailing_clone(actions: list[OdpAction]) -> None:
    """Replace a ``clone`` that ends ``actions`` by the actions inside it (in place).

    Nothing follows it that needs the packet unchanged. Open vSwitch
    3.1 does this to every translation (xlate_optimize_odp_actions()), one
    level deep, so a tunnel output that is the last to send anything prints
    as ``tnl_push(...),1`` there; later versions keep the clone.
    """
    if actions and isinstance(actions[-1], OdpClone):
        actions[-1:] = actions[-1].actions


def _address(ip: int, v6: bool) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv6Address(ip) if v6 else ipaddress.IPv4Address(ip)


def _find_device(ctx: _Ctx, name: str) -> tuple[Bridge, OfPort] | None:
    """The port named ``name``, in the bridge of that name first (tnl_route_lookup_flow())."""
    bridges = ctx.ofproto.bridges
    preferred = bridges.get(name)
    if preferred is not None:
        port = preferred.port_by_name(name)
        if port is not None:
            return preferred, port
    return ctx.ofproto.find_port(name)


def build_header(
    kind: str,
    dst_port: int | None,
    flow: Flow,
    smac: int,
    dmac: int,
    src: int,
    v6: bool,
    *,
    options: tuple[GeneveOption, ...] = (),
) -> TunnelHeader:
    """The outer header for ``flow``'s tunnel metadata, as OVS's build_header does.

    ``options`` are a Geneve header's; the header's C bit says whether one is critical.
    """
    proto = _IPPROTO_GRE if kind == "gre" else _IPPROTO_UDP
    ip: OuterIPv4 | OuterIPv6
    if v6:
        ip = OuterIPv6(
            _ip_text(src, True),
            _ip_text(flow.tun_ipv6_dst, True),
            proto,
            tclass=flow.tun_tos,
            hlimit=flow.tun_ttl,
        )
    else:
        frag = IPV4_DF if flow.tun_flags & TNL_F_DONT_FRAGMENT else 0
        ip = OuterIPv4(
            _ip_text(src, False),
            _ip_text(flow.tun_dst, False),
            proto,
            tos=flow.tun_tos,
            ttl=flow.tun_ttl,
            frag=frag,
        )
    csum = bool(flow.tun_flags & TNL_F_CSUM)
    eth = (_mac_text(dmac), _mac_text(smac))
    if kind == "gre":
        key = flow.tun_id & 0xFFFFFFFF if flow.tun_flags & TNL_F_KEY else None
        return TunnelHeader(*eth, ip, None, GRE(key=key, csum=0 if csum else None))
    udp = OuterUDP(0, dst_port or 0, 0xFFFF if csum or v6 else 0)
    vni = flow.tun_id & 0xFFFFFF
    tunnel: VXLAN | Geneve
    if kind == "vxlan":
        tunnel = VXLAN(vni)
    else:
        tunnel = Geneve(vni, options, critical=any(option.critical for option in options))
    return TunnelHeader(*eth, ip, udp, tunnel)


def _propagate(flow: Flow, header: TunnelHeader, src: int, v6: bool) -> None:
    """The flow as the underlay sees it: the outer packet (propagate_tunnel_data_to_flow())."""
    flow.dl_dst = int(header.eth_dst.replace(":", ""), 16)
    flow.dl_src = int(header.eth_src.replace(":", ""), 16)
    flow.vlan_tpid = flow.vlan_tci = flow.vlan_tpid1 = flow.vlan_tci1 = 0
    flow.nw_frag = 0
    flow.nw_tos = flow.tun_tos
    flow.nw_ttl = flow.tun_ttl
    flow.tp_src = flow.tun_tp_src
    flow.tp_dst = flow.tun_tp_dst
    if header.udp is not None:
        flow.tp_dst = header.udp.dst
    if v6:
        flow.dl_type = _ETH_IPV6
        flow.ipv6_src = flow.tun_ipv6_src or src
        flow.ipv6_dst = flow.tun_ipv6_dst
        flow.nw_src = flow.nw_dst = 0
    else:
        flow.dl_type = _ETH_IP
        flow.nw_src = flow.tun_src or src
        flow.nw_dst = flow.tun_dst
        flow.ipv6_src = flow.ipv6_dst = 0
    flow.nw_proto = _IPPROTO_GRE if header.udp is None else _IPPROTO_UDP
    flow.arp_sha = flow.arp_tha = flow.nd_target = flow.tcp_flags = 0
    flow.ipv6_label = 0


def arp_request(smac: int, sip: int, tip: int) -> bytes:
    """A broadcast ARP request for ``tip`` from ``sip``/``smac`` (compose_arp())."""
    mac = smac.to_bytes(6, "big")
    return (
        b"\xff" * 6
        + mac
        + b"\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01"
        + mac
        + sip.to_bytes(4, "big")
        + bytes(6)
        + tip.to_bytes(4, "big")
    )


def nd_solicit(smac: int, src: int, target: int) -> bytes:
    """A neighbour solicitation for ``target`` from ``src``/``smac`` (compose_nd_ns()).

    Sent to the target's solicited-node multicast address, with our MAC in
    the source link-layer address option, hop limit 255 (RFC 4861).
    """
    mac = smac.to_bytes(6, "big")
    dst = _SOLICITED_NODE.to_bytes(16, "big")[:13] + target.to_bytes(16, "big")[13:]
    icmp = bytearray(
        b"\x87\x00\x00\x00" + bytes(4) + target.to_bytes(16, "big") + b"\x01\x01" + mac
    )
    pseudo = src.to_bytes(16, "big") + dst + len(icmp).to_bytes(4, "big") + b"\x00\x00\x00\x3a"
    icmp[2:4] = checksum(pseudo + icmp).to_bytes(2, "big")
    ip6 = (
        b"\x60\x00\x00\x00"
        + len(icmp).to_bytes(2, "big")
        + b"\x3a\xff"
        + src.to_bytes(16, "big")
        + dst
    )
    return b"\x33\x33" + dst[12:] + mac + b"\x86\xdd" + ip6 + bytes(icmp)


# -- termination -----------------------------------------------------------------------


def terminate(ctx: _Ctx, port: OfPort) -> bool:
    """Output to ``port``: if it ends a tunnel, emit ``tnl_pop`` and return True.

    Only ports that own an address are looked at, so that other outputs do
    not get the extra fields in their megaflow (as OVS's xport_has_ip()).
    """
    ofproto = ctx.ofproto
    addresses = ofproto.addresses(port.name)
    if not addresses:
        return False
    flow = ctx.flow
    odp = _tnl_port_map_lookup(ctx, port, addresses)
    if odp is not None:
        if ctx.may_learn and flow.dl_type in (_ETH_IP, _ETH_IPV6):
            v6 = flow.dl_type == _ETH_IPV6
            source = flow.ipv6_src if v6 else flow.nw_src
            _neigh_set(ctx, _address(source, v6), flow.dl_src)
        ctx.odp.append(OdpTnlPop(odp))
        return True
    if flow.dl_type == _ETH_ARP and _is_reply_for_us(ctx, addresses):
        _snoop_arp(ctx)
    elif flow.dl_type == _ETH_IPV6 and _is_advert_for_us(ctx, addresses):
        _snoop_nd(ctx)
    return False


def _is_advert_for_us(ctx: _Ctx, addresses: Sequence[object]) -> bool:
    """A neighbour advertisement sent to one of our addresses or its solicited-node group.

    As OVS's is_nd_dst_correct(): the destination is the address itself or
    ff02::1:ffXX:XXXX with its last 24 bits.
    """
    flow = ctx.flow
    ctx.consult_field("nw_proto")
    if flow.nw_proto != _IPPROTO_ICMPV6:
        return False
    ctx.consult_field("tp_src")
    if flow.tp_src != _ND_ADVERT:
        return False
    ctx.consult_field("ipv6_dst")
    for address in addresses:
        ip = getattr(address, "ip", address)
        if not isinstance(ip, ipaddress.IPv6Address):
            continue
        own = int(ip)
        if flow.ipv6_dst == own or flow.ipv6_dst == _SOLICITED_NODE | (own & 0xFFFFFF):
            return True
    return False


def _snoop_nd(ctx: _Ctx) -> None:
    """Learn the target of a neighbour advertisement with a link-layer address (tnl_nd_snoop())."""
    flow = ctx.flow
    ctx.consult_field("nd_target")
    ctx.consult_field("arp_tha")
    if not flow.arp_tha or not ctx.may_learn:
        return
    ctx.ofproto.neigh.snoop_nd(
        ctx.bridge.name,
        ipaddress.IPv6Address(flow.nd_target),
        flow.arp_tha.to_bytes(6, "big"),
        ctx.now,
    )


def _tnl_port_map_lookup(ctx: _Ctx, port: OfPort, addresses: Sequence[object]) -> int | None:
    """Which tunnel datapath port listens for this packet on ``port`` (tnl_port_map_lookup()).

    OVS keeps the listening ports as classifier rules on the destination
    MAC, the EtherType, the destination address, the IP protocol, the
    fragment bits and (UDP only) the destination port, and looks them up in
    stages. The megaflow gets what those stages looked at: the Ethernet
    fields; then, once they match, the address, protocol and fragment bits
    together; then, once those match a UDP rule, the UDP port, whole when it
    is one we listen on, else only as many leading bits as it takes to tell
    it from every port we listen on (the classifier's ports trie).
    """
    ofproto = ctx.ofproto
    flow = ctx.flow
    listening = sorted(ofproto.datapath.tunnels.kinds.items())
    if not listening:
        # No rules: OVS's classifier looks at nothing.
        return None
    ctx.consult_field("dl_type")
    ctx.consult_field("dl_dst")
    mac = ofproto.port_mac(port.name)
    if flow.dl_type not in (_ETH_IP, _ETH_IPV6) or mac is None or flow.dl_dst != mac:
        return None
    v6 = flow.dl_type == _ETH_IPV6
    ctx.consult_field("ipv6_dst" if v6 else "nw_dst")
    ctx.consult_field("nw_proto")
    ctx.consult_field("nw_frag")
    dst = _address(flow.ipv6_dst if v6 else flow.nw_dst, v6)
    if not any(getattr(a, "ip", a) == dst for a in addresses) or flow.nw_frag:
        return None
    if flow.nw_proto == _IPPROTO_GRE:
        return next((odp for odp, (kind, _) in listening if kind == "gre"), None)
    if flow.nw_proto != _IPPROTO_UDP:
        return None
    udp_ports = [(odp, udp_port) for odp, (kind, udp_port) in listening if kind != "gre"]
    if not udp_ports:
        return None
    for odp, udp_port in udp_ports:
        if flow.tp_dst == udp_port:
            ctx.consult_field("tp_dst")
            return odp
    ctx.consult(FIELDS["tp_dst"].put(_distinguishing_bits(flow.tp_dst, [p for _, p in udp_ports])))
    return None


def _distinguishing_bits(value: int, ports: Sequence[int]) -> int:
    """The leading bits of 16-bit ``value`` that tell it from every one of ``ports``.

    One more than the longest prefix it shares with any of them, as a mask.
    """
    shared = max(16 - (value ^ port).bit_length() for port in ports)
    keep = min(shared + 1, 16)
    return (0xFFFF << (16 - keep)) & 0xFFFF


def _is_reply_for_us(ctx: _Ctx, addresses: Sequence[object]) -> bool:
    flow = ctx.flow
    ctx.consult_field("nw_dst")
    target = ipaddress.IPv4Address(flow.nw_dst)
    return any(getattr(a, "ip", a) == target for a in addresses)


def _snoop_arp(ctx: _Ctx) -> None:
    """Learn from an ARP reply or gratuitous ARP (tnl_arp_snoop())."""
    flow = ctx.flow
    ctx.consult_field("nw_proto")
    ctx.consult_field("nw_src")
    ctx.consult_field("arp_sha")
    gratuitous = flow.nw_src == flow.nw_dst
    if flow.nw_proto != _ARP_REPLY and not (gratuitous and flow.nw_proto == _ARP_REQUEST):
        return
    if not flow.arp_sha or not ctx.may_learn:
        return
    _neigh_set(ctx, ipaddress.IPv4Address(flow.nw_src), flow.arp_sha)


def _neigh_set(ctx: _Ctx, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, mac: int) -> None:
    # A change bumps the cache's version; the owner revalidates after the batch.
    ctx.ofproto.neigh.snoop_arp(ctx.bridge.name, ip, mac.to_bytes(6, "big"), ctx.now)


# -- receive -----------------------------------------------------------------------------


def tunnel_receive_mask(key: int) -> int:
    """What a popped packet's megaflow matches of its tunnel, as OVS's tnl_wc_init().

    The key, both addresses (IPv4 or IPv6, whichever the tunnel used), the
    flags that say how it came, and the outer ToS (its ECN bits decide what
    happens to the inner packet); never the TTL or the UDP ports.
    """
    mask = (
        FIELDS["tun_id"].mask
        | FIELDS["tun_tos"].mask
        | FIELDS["tun_flags"].put(TNL_F_DONT_FRAGMENT | TNL_F_CSUM | TNL_F_KEY)
    )
    if FIELDS["tun_dst"].get(key):
        return mask | FIELDS["tun_src"].mask | FIELDS["tun_dst"].mask
    return mask | FIELDS["tun_ipv6_src"].mask | FIELDS["tun_ipv6_dst"].mask


_ECN_MASK = 0x03
_ECN_CE = 0x03


def translate_tunnel_in(
    ofproto: Ofproto, bridge: Bridge, of_key: int, now: float, may_learn: bool, tracing: bool
) -> XlateResult:
    """Translate a packet a ``tnl_pop`` handed back, arriving on its tunnel port.

    RFC 6040 decapsulation first (OVS's tnl_process_ecn()): an outer CE mark
    is copied to an inner packet that is ECN-capable, and an inner packet
    that is not is dropped, as the RFC says.
    """
    from pyvswitch.flow.flow import Flow  # noqa: PLC0415 - xlate imports this module
    from pyvswitch.ofproto.xlate import XlateResult, translate  # noqa: PLC0415

    flow = Flow.from_key(of_key)
    port = bridge.ports[flow.in_port]
    is_ip = flow.dl_type in (_ETH_IP, _ETH_IPV6)
    ce = is_ip and flow.tun_tos & _ECN_MASK == _ECN_CE
    mask = FIELDS["in_port"].mask | tunnel_receive_mask(of_key) | FIELDS["dl_type"].mask
    # The Geneve options' layout is always matched, so that a packet the
    # bridge's TLV map refuses never hits a flow made for one it took.
    tlv = ofproto.tlv_map(bridge.name)
    mask |= datapath_mask(tlv, of_key, 0)
    if metadata_from_key(tlv, of_key) is None:
        dropped = _CoverageSink(ofproto.datapath.tunnels.coverage, INVALID_TUNNEL_METADATA)
        return XlateResult((), mask, (dropped,), flow, "Invalid Geneve tunnel metadata")
    if ce and not flow.nw_tos & _ECN_MASK:
        dropped = _CoverageSink(ofproto.datapath.tunnels.coverage, CONGESTION_DROP)
        return _ecn_drop(bridge, port, flow, of_key, mask, tracing, dropped)
    result = translate(
        ofproto, bridge, of_key, now, may_learn=may_learn, tracing=tracing, ecn_ce=ce
    )
    # The option data rules looked at, in the options' own terms.
    result.mask |= mask | datapath_mask(tlv, of_key, result.mask)
    result.sinks = (PatchRx(port.counters), *result.sinks)
    captured = ofproto.capture_points.receiving(port.name)
    if captured:
        # A capture on the tunnel port gets the inner packet as it arrived,
        # before anything the bridge's actions do to it.
        result.actions = (*captured, *result.actions)
    return result


def _ecn_drop(
    bridge: Bridge,
    port: OfPort,
    flow: Flow,
    of_key: int,
    mask: int,
    tracing: bool,
    dropped: StatsSink,
) -> XlateResult:
    """Drop a Not-ECT packet that arrived in a CE-marked tunnel packet, as OVS 3.1 does.

    OVS has looked the packet up in table 0 already (the rule is credited
    and its match narrows the megaflow) and runs none of its actions; this
    is no translation error, so the trace ends with a plain drop. Each
    packet the megaflow drops counts under ``drop_action_congestion``
    (``dropped``), as OVS's explicit drop action with that reason does.
    """
    from pyvswitch.flow.ofp_text import format_match  # noqa: PLC0415
    from pyvswitch.ofproto.xlate import XlateResult  # noqa: PLC0415

    mask |= FIELDS["nw_tos"].put(_ECN_MASK) | FIELDS["nw_frag"].mask
    rule, consulted = bridge.tables[0].lookup(of_key)
    mask |= consulted
    sinks: list[StatsSink] = [PatchRx(port.counters), dropped]
    trace: list[str] = []
    if tracing:
        header = f'bridge("{bridge.name}")'
        if rule is None:
            line = " 0. No match."
        else:
            match = format_match(rule.match)
            cookie = f", cookie {rule.cookie:#x}" if rule.cookie else ""
            line = f" 0. {match + ', ' if match else ''}priority {rule.priority}{cookie}"
        trace = [f"Flow: {flow_text(flow)}", "", header, "-" * len(header), line]
    if rule is not None:
        sinks.append(rule)
    return XlateResult((), mask, tuple(sinks), flow, None, trace)


def no_tunnel_port(ofproto: Ofproto, key: int) -> XlateResult:
    """A popped packet no tunnel port takes (wrong key or VNI, unknown remote).

    OVS's upcall fails (``receive tunnel port not found``) and the packet is
    dropped and counted under ``datapath_drop_upcall_error``; we install a
    drop flow that matches what the tunnel lookup looked at, and count each
    packet it drops under the same name.
    """
    from pyvswitch.flow.flow import Flow  # noqa: PLC0415 - xlate imports this module
    from pyvswitch.ofproto.xlate import XlateResult  # noqa: PLC0415

    mask = FIELDS["in_port"].mask | tunnel_receive_mask(key)
    dropped = _CoverageSink(ofproto.datapath.tunnels.coverage, UPCALL_ERROR)
    return XlateResult(
        (), mask, (dropped,), Flow.from_key(key), "no OpenFlow tunnel port for this packet"
    )


class _CoverageSink:
    """Counts the packets a megaflow handles under a coverage name (a megaflow sink)."""

    __slots__ = ("counter", "name")

    def __init__(self, counter: Counter[str], name: str) -> None:
        self.counter = counter
        self.name = name

    def account(self, packets: int, nbytes: int, now: float) -> None:  # noqa: ARG002
        self.counter[self.name] += packets


def flow_text(flow: Flow) -> str:
    from pyvswitch.flow.ofp_text import format_flow  # noqa: PLC0415

    return format_flow(flow)
