"""OpenFlow port numbers as Open vSwitch's alloc_ofp_port() hands them out."""

from __future__ import annotations

from typing import Any

import pytest

from pyvswitch.ofproto.bridge import Bridge


def take(bridge: Bridge, number: int) -> None:
    """Put a port on ``number``, as Ofproto.add_port() does after allocating it."""
    placeholder: Any = object()
    bridge.ports[number] = placeholder


def test_numbers_go_up_and_a_released_one_is_not_given_again_at_once() -> None:
    bridge = Bridge("br0", "secure")
    first = [bridge.allocate_ofport() for _ in range(3)]
    for n in first:
        take(bridge, n)
    assert first == [1, 2, 3]
    del bridge.ports[2]
    bridge.release_ofport(2)
    assert bridge.allocate_ofport() == 4
    # Asked for, a released number is given.
    assert bridge.allocate_ofport(2) == 2


def test_automatic_numbers_stop_below_32768_then_the_oldest_released_comes_back() -> None:
    bridge = Bridge("br0", "secure")
    for _ in range(32767):
        take(bridge, bridge.allocate_ofport())
    assert max(bridge.ports) == 32767
    for n in (7, 5):
        del bridge.ports[n]
        bridge.release_ofport(n)
    assert bridge.allocate_ofport() == 7
    take(bridge, 7)
    assert bridge.allocate_ofport() == 5
    take(bridge, 5)
    with pytest.raises(ValueError, match="no OpenFlow port number is free"):
        bridge.allocate_ofport()
