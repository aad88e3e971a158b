"""The netdev layer: one provider contract, providers registered by type string.

Read :mod:`pyvswitch.netdev.base` for the contract and
``docs/writing-a-netdev-provider.md`` to add a provider. This layer does I/O
(sockets, tap devices, pcap files); the pure layers never import it.
"""

from pyvswitch.netdev.base import (
    CaptureListener,
    Netdev,
    NetdevError,
    NetdevOptionError,
    NetdevStats,
)
from pyvswitch.netdev.registry import (
    netdev_close,
    netdev_open,
    open_devices,
    provider,
    references,
    register_provider,
)

__all__ = [
    "CaptureListener",
    "Netdev",
    "NetdevError",
    "NetdevOptionError",
    "NetdevStats",
    "netdev_close",
    "netdev_open",
    "open_devices",
    "provider",
    "references",
    "register_provider",
]
