"""Network namespaces and veth pairs for system tests, always cleaned up.

Every name starts with ``pvs-`` and a per-run suffix, so parallel runs never
collide and ``./run cleanup`` can find leftovers. Addresses are only ever given
inside the namespaces a test creates, from documentation ranges. Interface
names are at most 15 characters (IFNAMSIZ - 1).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def can_use_netns() -> str | None:
    """None when this process can create namespaces and veths, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespaces here"
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0:
        return "iproute2 (ip) is missing"
    return None


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip`` (inside ``netns`` when given); bounded to 20 s."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=20).stdout


def in_netns(
    netns: str, *argv: str, timeout: float = 60, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command inside ``netns`` (bounded in time)."""
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@dataclass
class NetnsLab:
    """What one test made: namespaces and root-namespace links, removed in :meth:`cleanup`."""

    prefix: str = field(default_factory=lambda: "pvs-" + secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    _counter: int = 0

    def name(self, role: str) -> str:
        """A unique name for something this test makes (max 15 characters)."""
        self._counter += 1
        return f"{self.prefix}{role[:3]}{self._counter}"[:15]

    def netns(self) -> str:
        """A new, empty namespace with loopback up."""
        ns = self.name("ns")
        ip("netns", "add", ns)
        self.namespaces.append(ns)
        ip("link", "set", "lo", "up", netns=ns)
        return ns

    def veth(self, peer_netns: str | None = None, mtu: int | None = None) -> tuple[str, str]:
        """A veth pair: one end in the root namespace (no address), the other in
        ``peer_netns`` when given. Both ends up. Returns (root end, peer end)."""
        a, b = self.name("va"), self.name("vb")
        ip("link", "add", a, "type", "veth", "peer", "name", b)
        self.links.append(a)
        if peer_netns:
            ip("link", "set", b, "netns", peer_netns)
        for end, ns in ((a, None), (b, peer_netns)):
            if mtu:
                ip("link", "set", end, "mtu", str(mtu), netns=ns)
            ip("link", "set", end, "up", netns=ns)
        return a, b

    def raw_socket(self, ifname: str, netns: str | None = None) -> socket.socket:
        """An AF_PACKET socket bound to ``ifname`` inside ``netns`` (or the root namespace).

        The socket stays in the namespace it was made in, so a test can send
        and receive as the far end of a link without a subprocess.
        """

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            sock.bind((ifname, 0))
            sock.setblocking(False)
            return sock

        return self.run_in(netns, make) if netns else make()

    @staticmethod
    def run_in(netns: str, fn: Callable[[], socket.socket]) -> socket.socket:
        from pyroute2 import netns as pr_netns

        pr_netns.pushns(netns)
        try:
            return fn()
        finally:
            pr_netns.popns()

    def cleanup(self) -> None:
        for link in self.links:
            ip("link", "del", link, check=False)
        for ns in self.namespaces:
            ip("netns", "del", ns, check=False)


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    """A NetnsLab for one test; skips the test when namespaces cannot be used."""
    why = can_use_netns()
    if why:
        pytest.skip(f"network namespaces unavailable: {why}")
    made = NetnsLab()
    try:
        yield made
    finally:
        with contextlib.suppress(Exception):
            made.cleanup()
