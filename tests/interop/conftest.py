"""Fixtures for differential tests against the real Open vSwitch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.interop.ovs_sandbox import OvsSandbox, started_sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def ovs() -> Iterator[OvsSandbox]:
    """A running private Open vSwitch with bridge br0 (dummy datapath, ports p1..p3)."""
    with started_sandbox() as sandbox:
        # pyvswitch's flow layer reads two VLAN tags, as the datapath does;
        # Open vSwitch's bridges look at one unless told otherwise.
        sandbox.vsctl("set", "Open_vSwitch", ".", "other_config:vlan-limit=2")
        sandbox.add_dummy_bridge("br0", 3)
        yield sandbox
