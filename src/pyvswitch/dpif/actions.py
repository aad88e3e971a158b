"""Datapath actions, as data: what the datapath does to a packet after a lookup.

These are Open vSwitch's ODP actions (``OVS_ACTION_ATTR_*``) in the subset
pyvswitch's translation emits. Translation produces a tuple of them per
megaflow; :func:`pyvswitch.dpif.execute.execute` applies them to frames, and
``dpif/actions_text.py`` prints them as ``Datapath actions:`` does
(``push_vlan(vid=10,pcp=0),2,set(eth(src=...)),3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvswitch.packet.tunnel import TunnelHeader


@dataclass(frozen=True, slots=True)
class OdpOutput:
    """Send a copy of the packet, as it is now, to datapath port ``port``."""

    port: int


@dataclass(frozen=True, slots=True)
class OdpTrunc:
    """Cut the packet to at most ``max_len`` bytes where it next leaves (``trunc(N)``).

    As in Open vSwitch's datapath, the cut applies once: to the next output,
    tunnel push or userspace action (or, across a ``clone``, to the first of
    them inside it); the packet itself stays whole for the actions after
    that. Mirrors with a ``snaplen`` and ``output(port=P,max_len=N)`` emit it.
    """

    max_len: int


@dataclass(frozen=True, slots=True)
class OdpPushVlan:
    """Push an 802.1Q/802.1ad tag: ``tpid`` and the TCI (``vid``, ``pcp``)."""

    vid: int
    pcp: int = 0
    tpid: int = 0x8100


@dataclass(frozen=True, slots=True)
class OdpPopVlan:
    """Remove the outermost VLAN tag."""


@dataclass(frozen=True, slots=True)
class OdpSetField:
    """Set a header field to ``value`` (exact), as ``set(eth(src=...))`` does.

    ``field`` is a storage field of the flow key (:mod:`pyvswitch.flow.layout`):
    dl_src, dl_dst, nw_src, nw_dst, nw_tos, nw_ttl, ipv6_src, ipv6_dst,
    ipv6_label, tp_src, tp_dst. Executing it updates the checksums that
    cover the field.

    ``header`` names the datapath header the field is set in, as OVS's text
    does (``set(ipv6(hlimit=..))``, ``set(udp(src=..))``): eth, ipv4, ipv6,
    tcp, udp, sctp, icmp or icmpv6. The flow key keeps IPv4's ToS and IPv6's
    traffic class in one field, and TCP's, UDP's and SCTP's ports and ICMP's
    type and code in another, so the field alone does not say which. Empty
    means the field's usual header (eth, ipv4 for nw_*, ipv6 for ipv6_*, tcp
    for tp_*) when printed, and whichever header the frame carries when
    executed; a header that is named is set only in a frame that has it.
    """

    field: str
    value: int
    header: str = ""


@dataclass(frozen=True, slots=True)
class OdpSetMasked:
    """Set the bits of ``mask`` in a header field to ``value`` (``set(ipv4(tos=0x20/0xfc))``).

    ``field`` and ``header`` are as in :class:`OdpSetField`.
    """

    field: str
    value: int
    mask: int
    header: str = ""


@dataclass(frozen=True, slots=True)
class OdpUserspace:
    """Send the packet to userspace (a controller packet-in or a slow-path reason).

    ``reason`` is the text OVS prints after the Netlink pid, kept as it is:
    ``slow_path(action)``, ``controller(reason=1,dont_send=1,...)``; ``pid`` is
    that pid (0 in Open vSwitch's userspace datapath).
    """

    reason: str
    pid: int = 0


@dataclass(frozen=True, slots=True)
class OdpTnlPush:
    """Put ``header`` in front of the packet and send it to datapath port ``out_port``.

    OVS's native tunnelling (``tnl_push(tnl_port(N),header(...),out_port(M))``):
    ``tnl_port`` is the tunnel's own datapath port, ``out_port`` the underlay
    port the encapsulated packet leaves by. The header's size and tunnel type
    follow from the header itself.
    """

    tnl_port: int
    header: TunnelHeader
    out_port: int


@dataclass(frozen=True, slots=True)
class OdpTnlPop:
    """Strip the tunnel header of a packet for tunnel port ``port`` (``tnl_pop(N)``)."""

    port: int


@dataclass(frozen=True, slots=True)
class OdpClone:
    """Run ``actions`` on a copy of the packet, then go on with the packet as it was.

    Translation wraps a ``tnl_push`` in it when more actions follow, as OVS
    does: the push changes the packet, and what follows must not see it.
    """

    actions: tuple[OdpAction, ...]


OdpAction = (
    OdpOutput
    | OdpTrunc
    | OdpClone
    | OdpPushVlan
    | OdpPopVlan
    | OdpSetField
    | OdpSetMasked
    | OdpUserspace
    | OdpTnlPush
    | OdpTnlPop
)
