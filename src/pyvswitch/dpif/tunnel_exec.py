"""Running ``tnl_push`` and ``tnl_pop``: native tunnelling inside the datapath.

Open vSwitch's userspace datapath builds and strips outer headers itself
(``lib/netdev-native-tnl.c``): translation decides the whole outer header once
per megaflow, as a template with the lengths left at zero, and the datapath
fills in, per packet, what depends on the packet: the IP and UDP lengths, the
IPv4 header checksum, the UDP source port (a hash of the inner flow, so that
one flow keeps one port and ECMP in the underlay keeps it in order), a GRE
sequence number. Popping checks the outer header (:func:`decapsulate` does
every check) and turns it into the tunnel metadata of the flow key, with which
the inner frame is looked up again as received on the tunnel's port.

A frame that fails a check is dropped and counted under Open vSwitch's
coverage name, ``datapath_drop_tunnel_pop_error``. A Geneve frame's options
go into the key as the wire had them (no TLV map is needed here, and each
bridge has its own): translation drops a frame whose options its bridge's
map refuses (a critical option it does not name, a length not the mapped
one) with a datapath flow that counts each such frame under
``drop_action_invalid_tunnel_metadata``, on a cache hit too, because it
matches the options' layout exactly (:mod:`pyvswitch.ofproto.tlv_map`;
Open vSwitch 3.1 forwards such frames then). What comes out too short for an
Ethernet header counts as ``datapath_drop_rx_invalid_packet``, a GRE packet
carrying no Ethernet frame (for a ``legacy_l3`` port, which we lack) as
``datapath_drop_upcall_error``: where Open vSwitch 3.1 counts them.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from pyvswitch.flow.extract import extract_key
from pyvswitch.flow.layout import (
    FIELDS,
    TNL_F_CSUM,
    TNL_F_KEY,
    TNL_F_OAM,
)
from pyvswitch.flow.odp_text import geneve_bits
from pyvswitch.packet.checksum import checksum
from pyvswitch.packet.tunnel import (
    ETH_TYPE_TEB,
    GRE,
    VXLAN,
    Geneve,
    OuterIPv4,
    TunnelError,
    TunnelHeader,
    decapsulate,
)

if TYPE_CHECKING:
    from pyvswitch.dpif.actions import OdpTnlPush

#: Open vSwitch's default ``tnl/egress_port_range``.
EGRESS_PORT_MIN = 32768
EGRESS_PORT_MAX = 61000

#: Outer packets too large for the underlay: our own counter (OVS has none).
OVERSIZE_DROP = "datapath_drop_tunnel_oversize"
OVERSIZE_KEPT = 64
#: Coverage names, as Open vSwitch's ``coverage/read-counter`` knows them.
POP_ERROR = "datapath_drop_tunnel_pop_error"
INVALID_TUNNEL_METADATA = "drop_action_invalid_tunnel_metadata"
UPCALL_ERROR = "datapath_drop_upcall_error"
RX_INVALID = "datapath_drop_rx_invalid_packet"
#: Counted by translation's drop flows (ofproto/xlate_tunnel.py), read with the others.
CONGESTION_DROP = "drop_action_congestion"

_ETH_HEADER_LEN = 14

_ETH_IPV4 = b"\x08\x00"
_IP4 = "ip4"


@dataclass(slots=True)
class TunnelRuntime:
    """What tunnel actions need from the datapath that runs them.

    ``kinds`` gives each tunnel port's type and UDP port (``("vxlan",
    4789)``, ``("gre", 0)``), which the pop checks the frame against;
    ``recirc`` collects what pops produced, as ``(tunnel port, tunnel
    metadata bits of the key, inner frame)``, for the datapath to look up
    again; ``coverage`` counts drops by Open vSwitch's names.
    """

    kinds: dict[int, tuple[str, int]] = field(default_factory=dict)
    recirc: list[tuple[int, int, bytes]] = field(default_factory=list)
    coverage: Counter[str] = field(default_factory=Counter)
    port_min: int = EGRESS_PORT_MIN
    port_max: int = EGRESS_PORT_MAX
    gre_seq: dict[int, int] = field(default_factory=dict)
    #: The MTU of each datapath port an outer packet may leave by (the owner
    #: keeps it current); a port not listed is not checked.
    mtu: dict[int, int] = field(default_factory=dict)
    #: Outer packets dropped for their size, as (tunnel port, out port, bytes),
    #: for the owner to log; the most recent OVERSIZE_KEPT only.
    oversize: list[tuple[int, int, int]] = field(default_factory=list)

    def fits(self, action: OdpTnlPush, inner_len: int) -> bool:
        """Whether ``inner_len`` bytes behind the push's header fit; counted if not.

        Tunnels do not fragment (neither does Open vSwitch): an outer packet
        larger than the MTU of the port the push sends it by, or than an IP
        packet can be, is dropped here, where the reason is still known,
        rather than lost in a device.
        """
        outer = inner_len + action.header.size
        mtu = self.mtu.get(action.out_port)
        # Up to two VLAN tags may follow the Ethernet header.
        if outer - 14 <= _IP_MAX and (mtu is None or outer <= mtu + 14 + 8):
            return True
        self.coverage[OVERSIZE_DROP] += 1
        del self.oversize[: max(0, len(self.oversize) - OVERSIZE_KEPT + 1)]
        self.oversize.append((action.tnl_port, action.out_port, outer))
        return False

    def source_port(self, inner: bytes) -> int:
        """The UDP source port for ``inner``: a hash of its flow into the egress range.

        The hash is of the packet's flow key (addresses, ports, protocol), so
        every packet of a flow gets the same port, and Python's hash of an
        integer is the same in every run.
        """
        # The inner flow's addresses, protocol and ports only: TCP flags,
        # ToS or TTL must not send one connection's packets different ways.
        digest = _mix64(hash(extract_key(inner, 0) & _FLOW_TUPLE)) & 0xFFFFFFFF
        return ((digest * (self.port_max - self.port_min)) >> 32) + self.port_min


_IP_MAX = 0xFFFF
_FLOW_TUPLE = sum(
    FIELDS[name].mask
    for name in (
        "dl_type",
        "nw_src",
        "nw_dst",
        "ipv6_src",
        "ipv6_dst",
        "nw_proto",
        "tp_src",
        "tp_dst",
    )
)
_M64 = (1 << 64) - 1


def _mix64(value: int) -> int:
    """splitmix64's finaliser: every input bit moves about half the output bits.

    Python's hash of an integer is the integer modulo 2**61 - 1, which keeps
    close values close; scaled into the port range, they would all land on
    one port.
    """
    z = value & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


# -- push ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pusher:
    """A ``tnl_push`` ready to run: the template and where its per-packet fields go."""

    header: TunnelHeader
    template: bytes
    #: The plain, common case: VXLAN or Geneve over IPv4 without a UDP
    #: checksum, where only lengths, the IPv4 checksum and the source port change.
    simple_udp4: bool


@lru_cache(maxsize=1024)
def _pusher(action: OdpTnlPush) -> _Pusher:
    header = action.header
    simple = (
        isinstance(header.ip, OuterIPv4)
        and header.udp is not None
        and not header.udp.csum
        and isinstance(header.tunnel, VXLAN | Geneve)
    )
    return _Pusher(header, header.template(), simple)


def push(action: OdpTnlPush, inner: bytes, runtime: TunnelRuntime) -> bytes:
    """``inner`` behind the action's outer header, every per-packet field filled in."""
    pusher = _pusher(action)
    header = pusher.header
    if pusher.simple_udp4:
        raw = bytearray(pusher.template)
        total = len(raw) - 14 + len(inner)
        struct.pack_into("!H", raw, 16, total)
        struct.pack_into("!H", raw, 24, 0)
        struct.pack_into("!H", raw, 24, checksum(raw[14:34]))
        struct.pack_into("!H", raw, 34, runtime.source_port(inner))
        struct.pack_into("!H", raw, 38, total - 20)
        return bytes(raw) + inner
    udp = header.udp
    if udp is not None:
        udp = dataclasses.replace(udp, src=runtime.source_port(inner))
    tunnel = header.tunnel
    if isinstance(tunnel, GRE) and tunnel.seq is not None:
        # Each tunnel port numbers its packets, as OVS's GRE netdev does.
        seq = runtime.gre_seq.get(action.tnl_port, 0)
        runtime.gre_seq[action.tnl_port] = (seq + 1) & 0xFFFFFFFF
        tunnel = dataclasses.replace(tunnel, seq=seq)
    return dataclasses.replace(header, udp=udp, tunnel=tunnel).encapsulate(inner)


# -- pop -------------------------------------------------------------------------------


def _ip_int(text: str) -> int:
    import ipaddress  # noqa: PLC0415 - only popped packets need it

    return int(ipaddress.ip_address(text))


#: How each tunnel field is put into a key (made once: pops run per packet).
_PUT = {name: fld.put for name, fld in FIELDS.items() if name.startswith("tun_")}


def tunnel_bits(header: TunnelHeader) -> int:
    """The tunnel metadata of the flow key for a packet that arrived behind ``header``."""
    put = _PUT
    ip = header.ip
    flags = 0
    if isinstance(ip, OuterIPv4):
        bits = put["tun_src"](_ip_int(ip.src)) | put["tun_dst"](_ip_int(ip.dst))
        # The outer DF bit is not kept: OVS's userspace datapath never sets
        # the df flag on receive (only the kernel's does), and megaflows
        # match tun_flags, so ours must not differ.
        bits |= put["tun_tos"](ip.tos) | put["tun_ttl"](ip.ttl)
    else:
        bits = put["tun_ipv6_src"](_ip_int(ip.src)) | put["tun_ipv6_dst"](_ip_int(ip.dst))
        bits |= put["tun_tos"](ip.tclass) | put["tun_ttl"](ip.hlimit)
    if header.udp is not None:
        bits |= put["tun_tp_src"](header.udp.src) | put["tun_tp_dst"](header.udp.dst)
        if header.udp.csum:
            flags |= TNL_F_CSUM
    tunnel = header.tunnel
    if isinstance(tunnel, VXLAN | Geneve):
        bits |= put["tun_id"](tunnel.vni)
        flags |= TNL_F_KEY
        if isinstance(tunnel, Geneve):
            if tunnel.oam:
                flags |= TNL_F_OAM
            if tunnel.options:
                bits |= geneve_bits(tunnel.options_bytes())
    else:
        if tunnel.key is not None:
            bits |= put["tun_id"](tunnel.key)
            flags |= TNL_F_KEY
        if tunnel.csum is not None:
            flags |= TNL_F_CSUM
    return bits | put["tun_flags"](flags)


def pop(port: int, frame: bytes, runtime: TunnelRuntime) -> None:
    """Strip the outer header of ``frame`` for tunnel port ``port``, or drop and count it.

    What is left goes to ``runtime.recirc`` to be looked up again.
    """
    kind = runtime.kinds.get(port)
    if kind is None:
        runtime.coverage[POP_ERROR] += 1
        return
    name, udp_port = kind
    try:
        header, inner = decapsulate(frame, {udp_port: name} if udp_port else {})
    except TunnelError:
        runtime.coverage[POP_ERROR] += 1
        return
    tunnel = header.tunnel
    expected = {"vxlan": VXLAN, "geneve": Geneve, "gre": GRE}.get(name)
    if expected is None or not isinstance(tunnel, expected):
        runtime.coverage[POP_ERROR] += 1
        return
    if isinstance(tunnel, GRE) and tunnel.protocol != ETH_TYPE_TEB:
        # A layer-3 payload (GRE protocol 0x0800 and the like) is for a
        # packet_type=legacy_l3 port, which we do not have: OVS pops it,
        # finds no port that takes it, and drops it for a failed upcall.
        runtime.coverage[UPCALL_ERROR] += 1
        return
    if len(inner) < _ETH_HEADER_LEN:
        # Too short to be an Ethernet frame: OVS's datapath drops what comes
        # out of the pop as it drops such a frame from any port.
        runtime.coverage[RX_INVALID] += 1
        return
    runtime.recirc.append((port, tunnel_bits(header), inner))


__all__ = [
    "CONGESTION_DROP",
    "EGRESS_PORT_MAX",
    "EGRESS_PORT_MIN",
    "INVALID_TUNNEL_METADATA",
    "POP_ERROR",
    "RX_INVALID",
    "UPCALL_ERROR",
    "TunnelRuntime",
    "pop",
    "push",
    "tunnel_bits",
]
