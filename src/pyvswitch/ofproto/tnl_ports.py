"""The tunnel ports of every bridge, and the datapath ports they share.

This is Open vSwitch 3.1's ofproto/tunnel.c and the port half of
lib/tnl-ports.c, without I/O:

* **Receive identity.** Each tunnel port is known by what a packet arriving
  on it carries: its key (or ``key=flow``), the addresses seen from the
  receiver (``local_ip`` as the packet's destination, ``remote_ip`` as its
  source, either of them ``flow``), the shared datapath port it came in on
  and its ``packet_type`` mode. Two ports with the same identity cannot
  coexist: the second is refused with OVS's warning.
* **Shared datapath ports.** The tunnels of one type and UDP port share one
  datapath port, ``vxlan_sys_4789``, ``genev_sys_6081`` or ``gre_sys``
  (:attr:`TunnelConfig.dpif_port`). The caller creates it in the datapath
  and passes its number to :meth:`TunnelPorts.add`; this module counts its
  users (``tnl/ports/show``'s ``ref_cnt``) and says when the last one left.
* **Receive** (:meth:`TunnelPorts.receive`): which port takes a packet the
  datapath decapsulated, trying the most specific identities first as OVS's
  tnl_find() does. **Send** (:meth:`TunnelPorts.send`): the tunnel metadata
  a packet leaving by a port gets (tnl_port_send()).

Addresses in flows are integers, as :class:`~pyvswitch.flow.flow.Flow` keeps
them: an IPv4 tunnel sets ``tun_src``/``tun_dst``, an IPv6 one
``tun_ipv6_src``/``tun_ipv6_dst``, the other pair being zero.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pyvswitch.flow.layout import FIELDS, TNL_F_CSUM, TNL_F_DONT_FRAGMENT, TNL_F_KEY
from pyvswitch.ofproto.hmap import Hmap, hash_words
from pyvswitch.ofproto.tnl_config import (
    DEFAULT_TTL,
    IPAddress,
    TunnelConfig,
    as_ipv6_int,
    format_ipv6_mapped,
    key_state,
)

if TYPE_CHECKING:
    from pyvswitch.flow.flow import Flow

#: OVS's ``enum netdev_pt_mode`` values (they feed the identity's hash; AWARE is 0).
_PT_MODE = {"legacy_l2": 1, "legacy_l3": 2, "ptap": 0}
_IP_ECN_MASK = 0x03
_IP_ECN_ECT_0 = 0x02
_IP_ECN_CE = 0x03
_IP_DSCP_MASK = 0xFC
_ETH_TYPE_IP = 0x0800
_ETH_TYPE_IPV6 = 0x86DD
_IPPROTO_GRE = 47
_IPPROTO_UDP = 17
#: The flags tnl_port_send() rewrites; OAM, the one flag OpenFlow may set, stays.
_SEND_FLAGS = TNL_F_DONT_FRAGMENT | TNL_F_CSUM | TNL_F_KEY


class TunnelPortExistsError(ValueError):
    """A port with the same receive identity exists; ``str()`` is OVS's warning.

    OVS logs it (module ``tunnel``, level WARN) and refuses the port with
    EEXIST, so the Interface's ``error`` column then reads ``could not add
    network device NAME to ofproto (File exists)``.
    """


@dataclass(frozen=True, slots=True)
class TunnelPort:
    """One tunnel port: its name, bridge, OpenFlow number, configuration and datapath port."""

    name: str
    bridge: str
    ofport: int
    config: TunnelConfig
    odp_port: int


@dataclass(frozen=True, slots=True)
class TunnelSend:
    """What :meth:`TunnelPorts.send` decided besides the flow's new tunnel fields.

    ``odp_port`` is the shared datapath port to output to. ``wc`` holds the
    bits of the packed flow key the result depended on (the inner packet's
    TTL and TOS bits when inherited, its ECN bits whenever it is IP), to be
    added to the megaflow mask. ``pkt_mark`` is the mark the packet leaves
    with (``egress_pkt_mark``), None when the port sets none.
    """

    odp_port: int
    wc: int
    pkt_mark: int | None


@dataclass(frozen=True, slots=True)
class _Match:
    """OVS's ``struct tnl_match``, in its field order (its bytes are hashed)."""

    in_key: int
    ipv6_src: int
    ipv6_dst: int
    odp_port: int
    in_key_flow: bool
    ip_src_flow: bool
    ip_dst_flow: bool
    pt_mode: int

    def map_index(self) -> int:
        """Its table of twelve: by key=flow, then remote=flow, then local (set, any, flow)."""
        ip_src = 2 if self.ip_src_flow else (0 if self.ipv6_src else 1)
        return 6 * self.in_key_flow + 3 * self.ip_dst_flow + ip_src

    def hash(self) -> int:
        """tnl_hash(): hash_words() over the structure's 56 bytes, padding zero."""
        raw = struct.pack(
            "<8s16s16sI???xI4x",
            self.in_key.to_bytes(8, "big"),
            self.ipv6_src.to_bytes(16, "big"),
            self.ipv6_dst.to_bytes(16, "big"),
            self.odp_port,
            self.in_key_flow,
            self.ip_src_flow,
            self.ip_dst_flow,
            self.pt_mode,
        )
        return hash_words(struct.unpack("<14I", raw))

    def format(self) -> str:
        """tnl_match_fmt(): ``::->192.0.2.92, key=0x7b, legacy_l2, dp port=4789``."""
        if not self.ip_dst_flow:
            text = f"{format_ipv6_mapped(self.ipv6_src)}->{format_ipv6_mapped(self.ipv6_dst)}"
        elif not self.ip_src_flow:
            text = f"{format_ipv6_mapped(self.ipv6_src)}->flow"
        else:
            text = "flow->flow"
        text += ", key=flow" if self.in_key_flow else f", key={_c_hex(self.in_key)}"
        pt_mode = next(name for name, value in _PT_MODE.items() if value == self.pt_mode)
        return f"{text}, {pt_mode}, dp port={self.odp_port}"


def _c_hex(value: int) -> str:
    """C's ``%#x``: no prefix for zero."""
    return f"{value:#x}" if value else "0"


def _ip_or_zero(addr: IPAddress | Literal["flow"] | None) -> int:
    """An endpoint as OVS stores it: zero for none and for ``flow``."""
    return 0 if addr is None or isinstance(addr, str) else as_ipv6_int(addr)


def _match_for(config: TunnelConfig, odp_port: int) -> _Match:
    _, in_flow, in_value = key_state(config.in_key)
    return _Match(
        in_key=in_value,
        ipv6_src=_ip_or_zero(config.local_ip),
        ipv6_dst=_ip_or_zero(config.remote_ip),
        odp_port=odp_port,
        in_key_flow=in_flow,
        ip_src_flow=config.local_ip == "flow",
        ip_dst_flow=config.remote_ip == "flow",
        pt_mode=_PT_MODE[config.packet_type],
    )


@dataclass
class _Listening:
    """One line of ``tnl/ports/show``: a shared datapath port and its user count."""

    dev_name: str
    odp_port: int
    nw_proto: int
    ref_cnt: int


@dataclass(eq=False)
class _Entry:
    port: TunnelPort
    match: _Match


def _tnl_dst(flow: Flow) -> int:
    """flow_tnl_dst(): the tunnel destination as an IPv6 integer, IPv4 mapped."""
    return 0xFFFF_0000_0000 | flow.tun_dst if flow.tun_dst else flow.tun_ipv6_dst


def _tnl_src(flow: Flow) -> int:
    return 0xFFFF_0000_0000 | flow.tun_src if flow.tun_src else flow.tun_ipv6_src


class TunnelPorts:
    """Every bridge's tunnel ports, indexed for receive and send (one per switch)."""

    def __init__(self) -> None:
        self._by_name: dict[str, _Entry] = {}
        self._by_match: dict[_Match, _Entry] = {}
        # The twelve tables of OVS, kept only to list ports in OVS's order.
        self._maps: list[Hmap[_Entry] | None] = [None] * 12
        self._listening: list[_Listening] = []

    # -- ports ------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def port(self, name: str) -> TunnelPort | None:
        """The tunnel port called ``name``, or None."""
        entry = self._by_name.get(name)
        return entry.port if entry else None

    def ports(self) -> list[TunnelPort]:
        """All tunnel ports, in the order they were added."""
        return [entry.port for entry in self._by_name.values()]

    def datapath_port(self, dpif_port: str) -> int | None:
        """The number of shared datapath port ``dpif_port`` while a tunnel uses it, else None."""
        for listening in self._listening:
            if listening.dev_name == dpif_port:
                return listening.odp_port
        return None

    def add(
        self, name: str, bridge: str, ofport: int, config: TunnelConfig, odp_port: int
    ) -> TunnelPort:
        """Add tunnel port ``name`` (OpenFlow port ``ofport`` of ``bridge``).

        ``odp_port`` is the number of the shared datapath port
        ``config.dpif_port``, which the caller created if no tunnel used it
        yet (see :meth:`datapath_port`). Raises :class:`TunnelPortExistsError`
        when another port has the same receive identity.
        """
        if name in self._by_name:
            raise ValueError(f"tunnel port {name} is already added")
        match = _match_for(config, odp_port)
        existing = self._by_match.get(match)
        if existing is not None:
            raise TunnelPortExistsError(
                f"{name}: attempting to add tunnel port with same config as port "
                f"'{existing.port.name}' ({match.format()})"
            )
        port = TunnelPort(name, bridge, ofport, config, odp_port)
        entry = _Entry(port, match)
        self._by_name[name] = entry
        self._by_match[match] = entry
        index = match.map_index()
        table = self._maps[index]
        if table is None:
            table = self._maps[index] = Hmap()
        table.insert(entry, match.hash())
        self._listen(config, odp_port)
        return port

    def remove(self, name: str) -> int | None:
        """Remove tunnel port ``name``; unknown names are ignored.

        Returns the shared datapath port's number when its last tunnel left
        (the caller may delete it from the datapath), else None.
        """
        entry = self._by_name.pop(name, None)
        if entry is None:
            return None
        del self._by_match[entry.match]
        index = entry.match.map_index()
        table = self._maps[index]
        assert table is not None  # every entry is in its table
        table.remove(entry)
        if not len(table):
            # OVS frees an empty table and starts a new, small one next time.
            self._maps[index] = None
        return self._unlisten(entry.port.config, entry.port.odp_port)

    def reconfigure(self, name: str, config: TunnelConfig, odp_port: int) -> TunnelPort:
        """New options or datapath port for ``name``: removed and added again, as in OVS.

        If the new identity clashes with another port's, the port is left
        out (OVS does the same) and :class:`TunnelPortExistsError` is raised.
        """
        entry = self._by_name.get(name)
        if entry is None:
            raise KeyError(f"no tunnel port {name}")
        self.remove(name)
        return self.add(name, entry.port.bridge, entry.port.ofport, config, odp_port)

    def _listen(self, config: TunnelConfig, odp_port: int) -> None:
        proto = _IPPROTO_GRE if config.type == "gre" else _IPPROTO_UDP
        for listening in self._listening:
            if listening.odp_port == odp_port and listening.nw_proto == proto:
                listening.ref_cnt += 1
                return
        self._listening.append(_Listening(config.dpif_port, odp_port, proto, 1))

    def _unlisten(self, config: TunnelConfig, odp_port: int) -> int | None:
        proto = _IPPROTO_GRE if config.type == "gre" else _IPPROTO_UDP
        for i, listening in enumerate(self._listening):
            if listening.odp_port == odp_port and listening.nw_proto == proto:
                listening.ref_cnt -= 1
                if listening.ref_cnt:
                    return None
                del self._listening[i]
                return odp_port
        return None

    # -- packets ----------------------------------------------------------------

    def receive(self, odp_port: int, flow: Flow, *, l3: bool = False) -> TunnelPort | None:
        """The port that takes a packet decapsulated on datapath port ``odp_port``, or None.

        ``flow`` carries the outer header's fields (``tun_id``, ``tun_src``,
        ``tun_dst`` or their IPv6 twins). ``l3`` is true for a packet
        without an Ethernet header. The order is OVS's tnl_find(): an exact
        key before ``key=flow``, an exact remote before ``remote_ip=flow``,
        then a configured local address, any, and ``local_ip=flow``; in each
        case a legacy port before a ``packet_type=ptap`` one.
        """
        if not self._by_match:
            return None
        legacy = _PT_MODE["legacy_l3" if l3 else "legacy_l2"]
        dst, src = _tnl_dst(flow), _tnl_src(flow)
        for in_key_flow in (False, True):
            for ip_dst_flow in (False, True):
                for ip_src in range(3):
                    if self._maps[6 * in_key_flow + 3 * ip_dst_flow + ip_src] is None:
                        continue
                    for pt_mode in (legacy, _PT_MODE["ptap"]):
                        # A received packet's destination is the port's
                        # local_ip and its source the port's remote_ip.
                        match = _Match(
                            in_key=0 if in_key_flow else flow.tun_id,
                            ipv6_src=dst if ip_src == 0 else 0,
                            ipv6_dst=0 if ip_dst_flow else src,
                            odp_port=odp_port,
                            in_key_flow=in_key_flow,
                            ip_src_flow=ip_src == 2,
                            ip_dst_flow=ip_dst_flow,
                            pt_mode=pt_mode,
                        )
                        entry = self._by_match.get(match)
                        if entry is not None:
                            return entry.port
        return None

    def send(self, name: str, flow: Flow) -> TunnelSend:
        """Set ``flow``'s tunnel fields for a packet leaving by port ``name`` (in place).

        As OVS's tnl_port_send(): the destination and source from
        ``remote_ip``/``local_ip`` unless they are ``flow`` (then the flow's
        own ``tun_dst``/``tun_src`` stay), ``tun_tp_dst`` the UDP port,
        ``tun_id`` from ``out_key`` unless it is ``flow``, the TTL and DSCP
        configured or, when ``inherit``, the inner IP packet's (a packet that
        is not IP gets 64 and 0), the ECN bits always the inner packet's (CE
        sent as ECT(0)), and the flags DF, CSUM and KEY as configured (OAM
        kept). Raises KeyError for an unknown port.
        """
        entry = self._by_name.get(name)
        if entry is None:
            raise KeyError(f"no tunnel port {name}")
        config, match = entry.port.config, entry.match
        if config.local_ip != "flow":
            flow.tun_src, flow.tun_ipv6_src = _split(match.ipv6_src)
        if config.remote_ip != "flow":
            flow.tun_dst, flow.tun_ipv6_dst = _split(match.ipv6_dst)
        flow.tun_tp_dst = config.dst_port or 0
        out_present, out_flow, out_value = key_state(config.out_key)
        if not out_flow:
            flow.tun_id = out_value

        is_ip = flow.dl_type in (_ETH_TYPE_IP, _ETH_TYPE_IPV6)
        wc = 0
        nw_tos = FIELDS["nw_tos"]
        if config.ttl == "inherit" and is_ip:
            wc |= FIELDS["nw_ttl"].mask
            flow.tun_ttl = flow.nw_ttl
        else:
            flow.tun_ttl = DEFAULT_TTL if config.ttl == "inherit" else config.ttl
        if config.tos == "inherit" and is_ip:
            wc |= nw_tos.put(_IP_DSCP_MASK)
            tos = flow.nw_tos & _IP_DSCP_MASK
        else:
            tos = 0 if config.tos == "inherit" else config.tos
        if is_ip:
            # RFC 6040: the outer header copies the inner ECN field, except
            # that CE goes out as ECT(0).
            wc |= nw_tos.put(_IP_ECN_MASK)
            ecn = flow.nw_tos & _IP_ECN_MASK
            tos |= _IP_ECN_ECT_0 if ecn == _IP_ECN_CE else ecn
        flow.tun_tos = tos

        flags = flow.tun_flags & ~_SEND_FLAGS
        if config.df_default:
            flags |= TNL_F_DONT_FRAGMENT
        if config.csum:
            flags |= TNL_F_CSUM
        if out_present:
            flags |= TNL_F_KEY
        flow.tun_flags = flags
        return TunnelSend(entry.port.odp_port, wc, config.egress_pkt_mark)

    # -- listings -----------------------------------------------------------------

    def show(self) -> str:
        """``tnl/ports/show``: the shared datapath ports being listened on, and their users."""
        lines = ["Listening ports:"]
        lines += [f"{p.dev_name} ({p.odp_port}) ref_cnt={p.ref_cnt}" for p in self._listening]
        return "\n".join(lines) + "\n"

    def list_tunnels(self) -> str:
        """``ofproto/list-tunnels``: every tunnel port, in OVS's table and hash order."""
        out: list[str] = []
        for table in self._maps:
            if table is not None:
                out.extend(_format_port(entry) for entry in table)
        return "".join(out)


def _split(value: int) -> tuple[int, int]:
    """An address as a flow's (IPv4, IPv6) pair, the way tnl_port_send() stores it.

    A mapped address goes to the IPv4 field, except 0.0.0.0, which OVS cannot
    tell from "none" and so keeps in the IPv6 field.
    """
    if value >> 32 == 0xFFFF and value & 0xFFFFFFFF:
        return value & 0xFFFFFFFF, 0
    return 0, value


def _format_port(entry: _Entry) -> str:
    """One line of ``ofproto/list-tunnels`` (OVS's tnl_port_format())."""
    port, config = entry.port, entry.port.config
    text = f"port {port.odp_port}: {port.name} ({config.type}: {entry.match.format()}"
    in_state, out_state = key_state(config.in_key), key_state(config.out_key)
    if in_state != out_state:
        present, is_flow, value = out_state
        shown = "none" if not present else "flow" if is_flow else _c_hex(value)
        text += f", out_key={shown}"
    text += ", ttl=inherit" if config.ttl == "inherit" else f", ttl={config.ttl}"
    if config.tos == "inherit":
        text += ", tos=inherit"
    elif config.tos:
        text += f", tos={config.tos:#x}"
    if not config.df_default:
        text += ", df=false"
    if config.csum:
        text += ", csum=true"
    return text + ")\n"
