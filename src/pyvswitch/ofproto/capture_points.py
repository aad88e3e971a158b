"""Capture points on patch and tunnel ports: where translation hands a packet to a capture.

A patch port has no device, so nothing that watches devices ever sees a
packet cross it: translation carries the packet from one bridge into the
other, and the megaflow it installs outputs straight to the far bridge's
ports (the reason ``tcpdump`` on an Open vSwitch patch port shows nothing).
To capture there without giving up the one-megaflow path, translation emits,
at the crossing and only while someone captures on one of its two ends, a
datapath action that hands the packet, as it is at that moment, to
userspace: ``userspace(pid=0,pvs_capture(id=N,dir=out))``. The datapath runs
it on cache hits like any other action, so captured traffic keeps hitting the
cache; attaching or detaching a capture revalidates the installed flows,
which gain or lose the action.

A crossing from ``pa`` (in bridge A) to its peer ``pb`` (in bridge B) is
*out* of ``pa`` and *in* to ``pb``, as a capture on each end of a veth pair
would see it. Each watched port has one id, which its two actions share
(their direction tells them apart); several captures on one port share the
point, and the owner fans the frames out.

Tunnel ports are the same kind of port: native tunnelling pushes and pops
headers inside the datapath's actions, and no device ever carries the inner
packet. A capture on a tunnel port gets the inner packet as the bridge sends
it to the port (*out*, just before the push) and as it arrives from it
(*in*, after the pop, before the bridge's tables change it).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvswitch.dpif.actions import OdpUserspace

#: The directions as the netdev capture hook names them, seen from the switch:
#: ``rx`` is what a bridge receives on the port, ``tx`` what it sends out of it.
RX = "rx"
TX = "tx"


@dataclass(slots=True)
class _Point:
    """One watched patch port: its id, its two actions, how many captures watch it."""

    port: str
    rx: OdpUserspace
    tx: OdpUserspace
    watchers: int = 1


class CapturePoints:
    """The patch ports someone captures on, and the datapath actions that feed them."""

    def __init__(self) -> None:
        self._points: dict[str, _Point] = {}
        self._by_action: dict[OdpUserspace, tuple[str, str]] = {}
        self._next_id = 1

    def __bool__(self) -> bool:
        return bool(self._points)

    def watch(self, port: str) -> bool:
        """One more capture on patch port ``port``; True when it was not watched before."""
        point = self._points.get(port)
        if point is not None:
            point.watchers += 1
            return False
        point_id = self._next_id
        self._next_id += 1
        point = _Point(
            port,
            OdpUserspace(f"pvs_capture(id={point_id},dir=in)"),
            OdpUserspace(f"pvs_capture(id={point_id},dir=out)"),
        )
        self._points[port] = point
        self._by_action[point.rx] = (port, RX)
        self._by_action[point.tx] = (port, TX)
        return True

    def unwatch(self, port: str) -> bool:
        """One capture fewer on ``port``; True when nobody watches it any more."""
        point = self._points.get(port)
        if point is None:
            return False
        point.watchers -= 1
        if point.watchers > 0:
            return False
        del self._points[port]
        del self._by_action[point.rx]
        del self._by_action[point.tx]
        return True

    def crossing(self, tx_port: str, rx_port: str) -> list[OdpUserspace]:
        """The actions for a packet leaving by ``tx_port`` into its peer ``rx_port``.

        Empty (and then translation emits nothing, and commits nothing early)
        unless one of the two ends is watched.
        """
        if not self._points:
            return []
        return self.sending(tx_port) + self.receiving(rx_port)

    def sending(self, port: str) -> list[OdpUserspace]:
        """The action for a packet the bridge sends out of ``port``, if it is watched."""
        point = self._points.get(port)
        return [point.tx] if point is not None else []

    def receiving(self, port: str) -> list[OdpUserspace]:
        """The action for a packet the bridge receives on ``port``, if it is watched."""
        point = self._points.get(port)
        return [point.rx] if point is not None else []

    def lookup(self, action: OdpUserspace) -> tuple[str, str] | None:
        """The port and direction (``rx``/``tx``) an action of ours reports, else None."""
        return self._by_action.get(action)


__all__ = ["RX", "TX", "CapturePoints"]
