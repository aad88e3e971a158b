"""The patch provider: configuration only, as in Open vSwitch.

A patch port has no device and moves no packets by itself: when translation
outputs to it, it continues in the peer's bridge (see docs/design.md). This
class validates the configuration exactly as OVS's ``netdev-vport`` does, word
for word, and keeps the counters the datapath updates for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pyvswitch.netdev.base import Netdev, NetdevOptionError
from pyvswitch.netdev.registry import register_provider

if TYPE_CHECKING:
    from collections.abc import Mapping


@register_provider
class PatchNetdev(Netdev):
    """One end of a patch pair (type ``patch``); ``options:peer`` names the other end."""

    type: ClassVar[str] = "patch"
    options: ClassVar[frozenset[str]] = frozenset(("peer",))

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.peer: str | None = None

    def configure(self, options: Mapping[str, str]) -> None:
        # The three messages, and the order they are checked in, are Open
        # vSwitch's own (set_patch_config() in lib/netdev-vport.c). An empty
        # peer counts as missing here; OVS would accept it and never connect.
        peer = options.get("peer")
        if not peer:
            raise NetdevOptionError(f"{self.name}: patch type requires valid 'peer' argument")
        if len(options) > 1:
            raise NetdevOptionError(f"{self.name}: patch type takes only a 'peer' argument")
        if peer == self.name:
            raise NetdevOptionError(f"{self.name}: patch peer must not be self")
        super().configure(options)
        self.peer = peer

    def account_rx(self, packets: int, nbytes: int) -> None:
        """Count frames that crossed into this end (the datapath calls this)."""
        self.stats.rx_packets += packets
        self.stats.rx_bytes += nbytes

    def account_tx(self, packets: int, nbytes: int) -> None:
        """Count frames that left by this end (the datapath calls this)."""
        self.stats.tx_packets += packets
        self.stats.tx_bytes += nbytes
