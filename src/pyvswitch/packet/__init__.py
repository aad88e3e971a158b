"""Packet layer: header codecs, Internet checksums and the pcap file format.

Pure: nothing here performs I/O or reads a clock. The header classes are for
building packets, tests and display; the datapath's hot path does not use them
(it reads header bytes directly, see :mod:`pyvswitch.flow.extract`).
"""

from pyvswitch.packet.addr import (
    ip4_to_bytes,
    ip4_to_str,
    ip6_to_bytes,
    ip6_to_str,
    mac_to_bytes,
    mac_to_str,
)
from pyvswitch.packet.checksum import (
    checksum,
    checksum_update16,
    checksum_update32,
    checksum_update_bytes,
    ones_complement_sum,
)
from pyvswitch.packet.headers import (
    ARP,
    ICMP,
    ICMPV6,
    TCP,
    UDP,
    VLAN,
    Ethernet,
    Header,
    IPv4,
    IPv6,
    IPv6ExtHeader,
    IPv6Fragment,
    NeighborDiscovery,
    Raw,
    build,
    parse,
)

__all__ = [
    "ARP",
    "ICMP",
    "ICMPV6",
    "TCP",
    "UDP",
    "VLAN",
    "Ethernet",
    "Header",
    "IPv4",
    "IPv6",
    "IPv6ExtHeader",
    "IPv6Fragment",
    "NeighborDiscovery",
    "Raw",
    "build",
    "checksum",
    "checksum_update16",
    "checksum_update32",
    "checksum_update_bytes",
    "ip4_to_bytes",
    "ip4_to_str",
    "ip6_to_bytes",
    "ip6_to_str",
    "mac_to_bytes",
    "mac_to_str",
    "ones_complement_sum",
    "parse",
]
