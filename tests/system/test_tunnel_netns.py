"""Native tunnelling against a kernel tunnel device, between two namespaces as hosts.

Host A runs pvs-vswitchd, set up as ``docs/tunnels.md`` says: ``br-int`` with
a port to a "VM" (a namespace on a veth) and a tunnel port to host B, and
``br-phy``, whose internal port holds host A's underlay address, with a
system port on the veth to host B. Host B is plain Linux: its end of that
veth with its underlay address, and a kernel tunnel device (vxlan, geneve
or gretap) with the overlay address on it. Every veth keeps its default
offloads, so host B's kernel hands over frames with checksums left to the
receiver and TCP super-frames, as a real peer's does.

What is asserted is what a user sees: ping and TCP (bytes hashed at the far
end) both ways; ``tnl/neigh/show`` knows host B, ``ovs/route/show`` has the
underlay route by ``br-phy`` mirrored from the kernel, ``dpif/show`` lists
the tunnel, its port counters moved; and the setup mistakes the issue names
are reported by ``ofproto/trace`` with the reason.

Addresses: the underlay is 203.0.113.0/24 (A .1, B .2), the overlay
198.51.100.0/24 (VM .1, B .2), overlay MTU 1450; nothing in the root
namespace. Names inside the namespaces (``br-int``, ``br-phy``) follow the
document, since the namespaces are this test's own and go away with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.system.netns import NetnsLab, in_netns, ip

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.netns

UNDERLAY = "203.0.113"
OVERLAY = "198.51.100"
A_IP = f"{UNDERLAY}.1"
B_IP = f"{UNDERLAY}.2"
VM_IP = f"{OVERLAY}.1"
B_OVERLAY_IP = f"{OVERLAY}.2"
KEY = 42
OVERLAY_MTU = 1450

#: Our tunnel type -> the kernel's link type for host B's end.
KERNEL_TYPES = {"vxlan": "vxlan", "geneve": "geneve", "gre": "gretap"}


def kernel_link(kind: str, dev: str) -> list[str]:
    """``ip link add NAME`` arguments for host B's ``kind`` tunnel to host A over ``dev``."""
    if kind == "vxlan":
        return ["type", "vxlan", "id", str(KEY), "remote", A_IP, "local", B_IP,
                "dstport", "4789", "dev", dev]  # fmt: skip
    if kind == "geneve":
        # A geneve device takes no local address or lower device: the route decides.
        return ["type", "geneve", "id", str(KEY), "remote", A_IP]
    return ["type", "gretap", "remote", A_IP, "local", B_IP, "key", str(KEY), "dev", dev]


def kernel_lacks(kind: str, lab: NetnsLab) -> str | None:
    """Why this kernel cannot make the far end of a ``kind`` tunnel, or None if it can."""
    probe = lab.netns()
    made = subprocess.run(
        ["ip", "-n", probe, "link", "add", "pvs-probe", *kernel_link(kind, "lo")],
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )
    if made.returncode == 0:
        return None
    return f"this kernel cannot make a {KERNEL_TYPES[kind]} device: {made.stderr.strip()}"


def tool(rundir: Path, name: str, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", f"pyvswitch.cli.{name}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "PVS_RUNDIR": str(rundir)},
    )
    if check and done.returncode != 0:
        pytest.fail(f"pvs-{name} {' '.join(args)} failed: {done.stderr}")
    return done.stdout


@dataclass
class Hosts:
    """The two hosts and the VM; the daemon on host A answers on ``rundir``."""

    lab: NetnsLab
    rundir: Path
    host_a: str
    host_b: str
    vm: str
    #: Host A's end of the underlay veth (a system port of br-phy) and host B's.
    a_nic: str
    b_nic: str
    #: Host A's end of the VM's veth (a system port of br-int).
    vm_port: str

    def vsctl(self, *args: str) -> str:
        return tool(self.rundir, "vsctl", "--timeout=30", *args)

    def appctl(self, *args: str, check: bool = True) -> str:
        return tool(self.rundir, "appctl", *args, check=check)

    def ofctl(self, *args: str) -> str:
        return tool(self.rundir, "ofctl", *args)


def veth_between(lab: NetnsLab, ns1: str, ns2: str, name2: str = "eth0") -> tuple[str, str]:
    """A veth pair from ``ns1`` to ``ns2`` (never touching the root namespace), both up."""
    name1 = lab.name("vt")
    ip("link", "add", name1, "type", "veth", "peer", "name", name2, "netns", ns2, netns=ns1)
    ip("link", "set", name1, "up", netns=ns1)
    ip("link", "set", name2, "up", netns=ns2)
    return name1, name2


@contextlib.contextmanager
def two_hosts(lab: NetnsLab, tmp_path: Path) -> Iterator[Hosts]:
    """Host A with pvs-vswitchd running (no bridges yet), host B and the VM, wired up."""
    host_a, host_b, vm = lab.netns(), lab.netns(), lab.netns()
    a_nic, b_nic = veth_between(lab, host_a, host_b)
    vm_port, vm_if = veth_between(lab, host_a, vm)
    ip("addr", "add", f"{B_IP}/24", "dev", b_nic, netns=host_b)
    ip("link", "set", vm_if, "mtu", str(OVERLAY_MTU), netns=vm)
    ip("addr", "add", f"{VM_IP}/24", "dev", vm_if, netns=vm)
    log = tmp_path / "pvs-vswitchd.log"
    with running_daemon(tmp_path / "run", ["--log-file", str(log)], netns=host_a) as rundir:
        try:
            yield Hosts(lab, rundir, host_a, host_b, vm, a_nic, b_nic, vm_port)
        except BaseException:
            # What the daemon said is the first thing to read when a test fails.
            sys.stderr.write(f"--- {log}:\n{log.read_text(errors='replace')[-20000:]}\n")
            raise


def build_host_a(hosts: Hosts, kind: str, endpoint_on: str = "br-phy") -> None:
    """br-int with the VM and a ``kind`` tunnel to host B; br-phy with the NIC.

    ``endpoint_on`` is the device that gets host A's underlay address: br-phy
    as the document says, the NIC or none at all for the mistake tests.
    """
    hosts.vsctl(
        "add-br", "br-int",
        "--", "add-port", "br-int", hosts.vm_port,
        "--", "add-port", "br-int", "tun0",
        "--", "set", "Interface", "tun0", f"type={kind}",
        f"options:remote_ip={B_IP}", f"options:key={KEY}",
        "--", "add-br", "br-phy",
        "--", "add-port", "br-phy", hosts.a_nic,
    )  # fmt: skip
    if endpoint_on:
        ip("addr", "add", f"{A_IP}/24", "dev", endpoint_on, netns=hosts.host_a)
    ip("link", "set", "br-int", "up", netns=hosts.host_a)
    ip("link", "set", "br-phy", "up", netns=hosts.host_a)


def build_host_b(hosts: Hosts, kind: str) -> None:
    """Host B's kernel tunnel device to host A, with the overlay address on it."""
    dev = "tun0"
    ip("link", "add", dev, *kernel_link(kind, hosts.b_nic), netns=hosts.host_b)
    ip("link", "set", dev, "mtu", str(OVERLAY_MTU), netns=hosts.host_b)
    ip("addr", "add", f"{B_OVERLAY_IP}/24", "dev", dev, netns=hosts.host_b)
    ip("link", "set", dev, "up", netns=hosts.host_b)


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 10) -> None:
    """Poll ``probe`` until it is true (at most ``timeout`` seconds, 0.2 s apart)."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting ({timeout:g} s) for {what}")
        time.sleep(0.2)


def ping_until(ns: str, address: str, attempts: int = 5) -> None:
    """Ping until one round trip succeeds; the first may be spent on ARP resolution
    (the switch drops a packet that finds no neighbour and sends an ARP request)."""
    outputs = []
    for _ in range(attempts):
        done = in_netns(ns, "ping", "-c", "1", "-W", "2", address, check=False, timeout=30)
        if done.returncode == 0:
            return
        outputs.append(done.stdout + done.stderr)
    pytest.fail(f"no reply from {address} in {attempts} pings:\n" + "\n".join(outputs))


def received(ns: str, address: str, count: int = 5) -> int:
    done = in_netns(
        ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", address, check=False, timeout=30
    )
    found = re.search(r"(\d+) received", done.stdout)
    return int(found.group(1)) if found else 0


_RECEIVER = """\
import hashlib, socket, sys
s = socket.create_server(('0.0.0.0', 5001)); s.settimeout(30)
print('listening', flush=True)
c, _ = s.accept(); c.settimeout(30); h = hashlib.sha256(); n = 0
while chunk := c.recv(1 << 16):
    h.update(chunk); n += len(chunk)
print(n, h.hexdigest(), flush=True)
"""

_SENDER = """\
import hashlib, random, socket, sys, time
data = random.Random(int(sys.argv[2])).randbytes(int(sys.argv[3]))
for _ in range(100):
    try:
        c = socket.create_connection((sys.argv[1], 5001), timeout=5); break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit('could not connect to ' + sys.argv[1])
c.settimeout(30); c.sendall(data); c.close()
print(len(data), hashlib.sha256(data).hexdigest())
"""


def hashed_transfer(sender_ns: str, receiver_ns: str, address: str, size: int = 4 << 20) -> None:
    """Send ``size`` random bytes over TCP; what arrives must hash the same."""
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", receiver_ns, sys.executable, "-c", _RECEIVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "listening"
        sender = in_netns(
            sender_ns,
            sys.executable,
            "-c",
            _SENDER,
            address,
            str(size % 1000),
            str(size),
            timeout=90,
            check=False,
        )
        out, err = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait(10)
    assert sender.returncode == 0, f"sender: {sender.stderr}"
    assert out.split() == sender.stdout.split(), f"receiver: {out!r} {err}"
    assert out.split()[0] == str(size)


def port_counters(hosts: Hosts, bridge: str, port: str) -> tuple[int, int]:
    """(rx packets, tx packets) of ``port`` from ``pvs-ofctl dump-ports``."""
    text = hosts.ofctl("dump-ports", bridge, port)
    rx = re.search(r"rx pkts=(\d+)", text)
    tx = re.search(r"tx pkts=(\d+)", text)
    assert rx, text
    assert tx, text
    return int(rx.group(1)), int(tx.group(1))


# -- traffic against the kernel's tunnel devices ---------------------------------------


@pytest.mark.parametrize("kind", ["vxlan", "geneve", "gre"])
def test_ping_and_tcp_to_a_kernel_tunnel(kind: str, lab: NetnsLab, tmp_path: Path) -> None:
    why = kernel_lacks(kind, lab)
    if why:
        pytest.skip(why)
    with two_hosts(lab, tmp_path) as hosts:
        build_host_a(hosts, kind)
        build_host_b(hosts, kind)
        # The daemon mirrors the kernel's routes: wait for the underlay's.
        wait_for(
            "the underlay route in ovs/route/show",
            lambda: f"{UNDERLAY}.0/24 dev br-phy" in hosts.appctl("ovs/route/show"),
        )

        ping_until(hosts.vm, B_OVERLAY_IP)
        assert received(hosts.vm, B_OVERLAY_IP) == 5
        assert received(hosts.host_b, VM_IP) == 5

        hashed_transfer(hosts.vm, hosts.host_b, B_OVERLAY_IP)
        hashed_transfer(hosts.host_b, hosts.vm, VM_IP)

        b_mac = re.search(
            r"link/ether ([0-9a-f:]{17})", ip("link", "show", hosts.b_nic, netns=hosts.host_b)
        )
        assert b_mac
        neigh = hosts.appctl("tnl/neigh/show")
        assert re.search(
            rf"^{re.escape(B_IP)}\s+{b_mac.group(1)}\s+br-phy$", neigh, re.MULTILINE
        ), neigh

        routes = hosts.appctl("ovs/route/show")
        assert re.search(
            rf"^Cached: {UNDERLAY}\.0/24 dev br-phy SRC {A_IP}", routes, re.MULTILINE
        ), routes

        dpif = hosts.appctl("dpif/show")
        assert re.search(
            rf"^\s+tun0 \d+/\d+: \({kind}: key={KEY}, remote_ip={B_IP}\)$", dpif, re.MULTILINE
        ), dpif

        rx, tx = port_counters(hosts, "br-int", "tun0")
        # At least the pings and the data segments of two 4 MiB transfers.
        assert rx > 100, (rx, tx)
        assert tx > 100, (rx, tx)


# -- setup mistakes and the reasons a user is given ------------------------------------


def trace_from_vm(hosts: Hosts) -> str:
    """``ofproto/trace`` of an echo request from the VM to host B's overlay address."""
    vm_mac = re.search(r"link/ether ([0-9a-f:]{17})", ip("link", "show", "eth0", netns=hosts.vm))
    assert vm_mac
    return hosts.appctl(
        "ofproto/trace",
        "br-int",
        f"in_port={hosts.vm_port},icmp,dl_src={vm_mac.group(1)},dl_dst=02:00:00:00:00:02,"
        f"nw_src={VM_IP},nw_dst={B_OVERLAY_IP}",
    )


def test_endpoint_address_on_the_nic_never_resolves_the_far_end(
    lab: NetnsLab, tmp_path: Path
) -> None:
    """The endpoint address on the NIC instead of br-phy: the route names the
    NIC, so the ARP request for host B enters br-phy *from* the NIC (as if the
    NIC had received it) and never leaves by it. The trace says which device
    the tunnel goes by, and the neighbour stays unknown (as in OVS 3.1)."""
    with two_hosts(lab, tmp_path) as hosts:
        build_host_a(hosts, "vxlan", endpoint_on=hosts.a_nic)
        build_host_b(hosts, "vxlan")
        wait_for(
            "the underlay route by the NIC in ovs/route/show",
            lambda: f"{UNDERLAY}.0/24 dev {hosts.a_nic}" in hosts.appctl("ovs/route/show"),
        )
        assert received(hosts.vm, B_OVERLAY_IP, count=3) == 0
        trace = trace_from_vm(hosts)
        assert f"-> tunneling to {B_IP} via {hosts.a_nic}\n" in trace, trace
        assert (
            f"-> neighbor cache miss for {B_IP} on bridge br-phy, sending ARP request" in trace
        ), trace
        assert B_IP not in hosts.appctl("tnl/neigh/show")


def test_no_route_to_the_far_end(lab: NetnsLab, tmp_path: Path) -> None:
    """No underlay address anywhere, so no route to host B: "routing failed", in those words."""
    with two_hosts(lab, tmp_path) as hosts:
        build_host_a(hosts, "vxlan", endpoint_on="")
        build_host_b(hosts, "vxlan")
        time.sleep(1.5)  # a route mirror's read of the kernel, had there been a route
        assert UNDERLAY not in hosts.appctl("ovs/route/show")
        assert received(hosts.vm, B_OVERLAY_IP, count=2) == 0
        trace = trace_from_vm(hosts)
        assert "-> output to native tunnel\n" in trace, trace
        assert ">> native tunnel routing failed\n" in trace, trace


def test_far_end_that_never_answers_arp(lab: NetnsLab, tmp_path: Path) -> None:
    """Host B ignores ARP: every try says the neighbour is missing and sends
    an ARP request, which host B sees arrive; nothing is cached."""
    with two_hosts(lab, tmp_path) as hosts:
        build_host_a(hosts, "vxlan")
        build_host_b(hosts, "vxlan")
        ip("link", "set", hosts.b_nic, "arp", "off", netns=hosts.host_b)
        wait_for(
            "the underlay route in ovs/route/show",
            lambda: f"{UNDERLAY}.0/24 dev br-phy" in hosts.appctl("ovs/route/show"),
        )
        sniffer = hosts.lab.raw_socket(hosts.b_nic, hosts.host_b)
        try:
            assert received(hosts.vm, B_OVERLAY_IP, count=2) == 0
            requests = arp_requests_for(sniffer, B_IP)
        finally:
            sniffer.close()
        assert requests, "no ARP request for host B left br-phy's NIC"
        trace = trace_from_vm(hosts)
        assert f"-> tunneling to {B_IP} via br-phy\n" in trace, trace
        assert (
            f"-> neighbor cache miss for {B_IP} on bridge br-phy, sending ARP request" in trace
        ), trace
        assert B_IP not in hosts.appctl("tnl/neigh/show")


def arp_requests_for(sock: socket.socket, target: str, limit: int = 1000) -> list[bytes]:
    """The ARP requests for ``target`` waiting on a non-blocking packet socket."""
    wanted = bytes(int(part) for part in target.split("."))
    found = []
    for _ in range(limit):
        try:
            frame = sock.recv(65536)
        except BlockingIOError:
            break
        if frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x01" and frame[38:42] == wanted:
            found.append(frame)
    return found
