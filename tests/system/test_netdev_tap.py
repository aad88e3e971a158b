"""The tap and internal providers against a real kernel.

Frames are built with scapy and compared byte for byte; what the kernel sees
is read back with ``ip -j link show``. Where the tap's kernel side is moved into
a namespace, the namespace plays a host that pings an address answered by the
test through the device (ARP and ICMP replies built with scapy).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from pyvswitch.netdev import NetdevError, NetdevOptionError, netdev_close, netdev_open
from pyvswitch.netdev.tap import TapNetdev, stable_mac
from tests.netdev_harness import is_test_frame, make_frame
from tests.system.harness_tap import InternalHarness, KernelSideHarness, TapHarness
from tests.system.netns import in_netns, ip

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pyvswitch.netdev import Netdev
    from tests.system.netns import NetnsLab

FAR_MAC = "02:00:00:00:00:0a"  # frames the far side sends
DEV_MAC = "02:00:00:00:00:0b"  # frames the device sends
PEER_MAC = "02:00:00:00:02:02"  # the host the test answers for through the device


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def kernel_link(name: str, netns: str | None = None) -> dict[str, Any]:
    """What ``ip -j link show`` says about ``name``."""
    return json.loads(ip("-j", "link", "show", name, netns=netns))[0]


def kernel_backlog_drops() -> int:
    """Frames the kernel dropped because a CPU's input backlog was full (all CPUs)."""
    stats = Path("/proc/net/softnet_stat").read_text().splitlines()
    return sum(int(line.split()[1], 16) for line in stats)


def link_exists(name: str, netns: str | None = None) -> bool:
    argv = ["ip", *(["-n", netns] if netns else []), "link", "show", name]
    return subprocess.run(argv, capture_output=True, check=False, timeout=20).returncode == 0


def recv_matching(
    dev: Netdev, count: int, match: Callable[[bytes], bool], timeout: float = 3.0
) -> list[bytes]:
    """Frames ``dev`` receives that ``match`` accepts, until ``count`` or ``timeout``."""
    got: list[bytes] = []
    fd = dev.fileno()
    assert fd is not None
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        select.select([fd], [], [], 0.05)
        got.extend(f for f in dev.recv(64) if match(f))
    return got


def scapy_frames(src: str, dst: str) -> list[bytes]:
    """A mix of frames a switch port carries, tagged and untagged, small and full-sized."""
    udp = IP(src="192.0.2.10", dst="192.0.2.20") / UDP(sport=4000, dport=5000)
    return [
        bytes(Ether(src=src, dst=dst) / udp / Raw(b"untagged")),
        bytes(Ether(src=src, dst=dst) / Dot1Q(vlan=10, prio=5) / udp / Raw(b"one tag")),
        bytes(Ether(src=src, dst=dst) / Dot1Q(vlan=0, prio=3) / udp / Raw(b"priority tag")),
        bytes(Ether(src=src, dst=dst) / Dot1AD(vlan=100) / Dot1Q(vlan=20) / udp / Raw(b"q-in-q")),
        bytes(Ether(src=src, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="192.0.2.10", pdst="192.0.2.1")),
        bytes(
            Ether(src=src, dst="33:33:00:00:00:01")
            / IPv6(src="2001:db8::10", dst="ff02::1")
            / UDP(sport=4000, dport=5000)
            / Raw(b"v6")
        ),
        bytes(Ether(src=src, dst=dst) / Dot1Q(vlan=4094) / udp / Raw(bytes(1500 - 28))),
        bytes(
            Ether(src=src, dst=dst) / udp / Raw(bytes(range(256)) * 5 + bytes(1500 - 28 - 1280))
        ),
    ]


def from_mac(mac: str) -> Callable[[bytes], bool]:
    raw = mac_bytes(mac)
    return lambda frame: frame[6:12] == raw


@pytest.fixture(params=[TapHarness, InternalHarness], ids=["tap", "internal"])
def harness(request: pytest.FixtureRequest, lab: NetnsLab) -> Iterator[KernelSideHarness]:
    made: KernelSideHarness = request.param(lab)
    try:
        yield made
    finally:
        made.close()


# -- frames -----------------------------------------------------------------------


@pytest.mark.netns
def test_frames_cross_both_ways_byte_identical(harness: KernelSideHarness) -> None:
    dev = harness.open()
    inbound = scapy_frames(FAR_MAC, DEV_MAC)
    harness.inject(list(inbound))
    assert recv_matching(dev, len(inbound), from_mac(FAR_MAC)) == inbound

    outbound = scapy_frames(DEV_MAC, FAR_MAC)
    assert dev.send(list(outbound)) == len(outbound)
    assert harness.receive(len(outbound), match=from_mac(DEV_MAC)) == outbound


@pytest.mark.netns
def test_burst_of_1000_is_counted(harness: KernelSideHarness) -> None:
    dev = harness.open()
    size = 100
    burst = [make_frame(i, size) for i in range(1000)]

    # Far side to device. Everything recv returns is counted, the kernel's own
    # chatter included, so the counters are compared with what recv returned.
    before = dev.stats.as_dict()
    harness.inject(list(burst))
    returned: list[bytes] = []
    deadline = time.monotonic() + 10
    while sum(map(is_test_frame, returned)) < len(burst) and time.monotonic() < deadline:
        returned.extend(dev.recv(64))
    assert [f for f in returned if is_test_frame(f)] == burst
    assert dev.stats.rx_packets - before["rx_packets"] == len(returned)
    assert dev.stats.rx_bytes - before["rx_bytes"] == sum(map(len, returned))

    # Device to far side. Every write succeeds and is counted. A frame written
    # to a tap then waits in the kernel's per-CPU input backlog; when the CPU
    # is busy elsewhere that backlog can overflow (seen once in about fifteen
    # runs of three suites at once), and the kernel, not the device, counts the
    # loss. So every frame must arrive, in order, or be counted there.
    backlog_before = kernel_backlog_drops()
    assert dev.send(list(burst)) == len(burst)
    assert dev.stats.tx_packets - before["tx_packets"] == len(burst)
    assert dev.stats.tx_bytes - before["tx_bytes"] == len(burst) * size
    assert dev.stats.tx_dropped == before["tx_dropped"]
    arrived = harness.collect(len(burst), timeout=10)
    seen = set(arrived)
    assert arrived == [f for f in burst if f in seen]  # in order, nothing made up
    assert len(arrived) + kernel_backlog_drops() - backlog_before >= len(burst)


# -- link properties ----------------------------------------------------------------


@pytest.mark.netns
def test_mac_and_mtu_are_the_kernels(harness: KernelSideHarness) -> None:
    dev = harness.open()
    name = harness.name
    assert dev.mac == mac_bytes(str(kernel_link(name)["address"]))

    dev.set_mac(mac_bytes("02:00:00:aa:bb:cc"))
    assert kernel_link(name)["address"] == "02:00:00:aa:bb:cc"
    assert dev.mac == mac_bytes("02:00:00:aa:bb:cc")
    dev.set_mtu(9000)
    assert kernel_link(name)["mtu"] == 9000
    assert dev.mtu == 9000

    # A jumbo frame fits now, both ways.
    jumbo = make_frame(7, 9014)
    harness.inject([jumbo])
    assert recv_matching(dev, 1, is_test_frame) == [jumbo]
    assert dev.send([jumbo]) == 1
    assert harness.collect(1) == [jumbo]

    # Changes made behind the device's back are seen too.
    ip("link", "set", name, "mtu", "1400", "address", "02:00:00:11:22:33")
    assert dev.mtu == 1400
    assert dev.mac == mac_bytes("02:00:00:11:22:33")

    # Refusals name the device and leave things as they were.
    with pytest.raises(NetdevError, match=name):
        dev.set_mac(mac_bytes("01:00:5e:00:00:01"))  # multicast: the kernel refuses
    with pytest.raises(NetdevError, match=name):
        dev.set_mtu(40)
    assert dev.mac == mac_bytes("02:00:00:11:22:33")
    assert dev.mtu == 1400
    assert kernel_link(name)["mtu"] == 1400


@pytest.mark.netns
def test_down_means_no_carrier_and_sends_are_dropped(harness: KernelSideHarness) -> None:
    dev = harness.open()
    assert dev.up
    assert dev.carrier

    # Frames queued for the device when it goes down are dropped and counted.
    harness.inject([make_frame(i) for i in range(3)])
    time.sleep(0.05)
    dev.set_up(False)
    assert "UP" not in kernel_link(harness.name)["flags"]
    assert not dev.up
    assert not dev.carrier
    assert dev.recv() == []
    assert dev.stats.rx_dropped >= 3

    sent_before = dev.stats.tx_packets
    assert dev.send([make_frame(i) for i in range(5)]) == 0
    assert dev.stats.tx_dropped == 5
    assert dev.stats.tx_packets == sent_before

    dev.set_up(True)
    assert dev.carrier
    assert dev.send([make_frame(9)]) == 1
    assert harness.collect(1) == [make_frame(9)]

    # The host taking it down is seen as well.
    ip("link", "set", harness.name, "down")
    assert not dev.up
    assert not dev.carrier
    assert dev.send([make_frame(10)]) == 0
    assert dev.stats.tx_dropped == 6


@pytest.mark.netns
@pytest.mark.parametrize("first", ["carrier", "recv", "send"])
def test_deleted_interface_is_an_error_not_an_exception(lab: NetnsLab, first: str) -> None:
    harness = TapHarness(lab)
    try:
        dev = harness.open()
        assert dev.fileno() is not None
        ip("link", "del", harness.name)

        # Whichever call notices first, none raises.
        if first == "carrier":
            assert dev.carrier is False
        elif first == "recv":
            assert dev.recv() == []
        else:
            assert dev.send([make_frame(1)]) == 0
        assert dev.error is not None
        assert harness.name in dev.error
        assert dev.carrier is False
        assert dev.recv() == []
        dropped = dev.stats.tx_dropped
        assert dev.send([make_frame(i) for i in range(3)]) == 0
        assert dev.stats.tx_dropped == dropped + 3
        # A detached descriptor polls readable forever; the owner is told to stop.
        assert dev.fileno() is None
        with pytest.raises(NetdevError, match=harness.name):
            dev.set_mtu(1400)
    finally:
        harness.close()


@pytest.mark.netns
def test_properties_work_inside_a_running_asyncio_loop(harness: KernelSideHarness) -> None:
    # pyroute2's synchronous API refuses to run inside an asyncio loop; the
    # device must not, since a daemon built on asyncio reads these.
    dev = harness.open()

    async def reconfigure() -> tuple[int, bool]:
        dev.set_mtu(1400)
        return dev.mtu, dev.carrier

    assert asyncio.run(reconfigure()) == (1400, True)
    assert kernel_link(harness.name)["mtu"] == 1400


# -- opening, closing, options --------------------------------------------------------


@pytest.mark.netns
def test_close_removes_the_tap_it_created(lab: NetnsLab) -> None:
    name = lab.name("tap")
    lab.links.append(name)
    dev = netdev_open(name, "tap")
    try:
        assert isinstance(dev, TapNetdev)
        assert dev.created
        assert link_exists(name)
    finally:
        netdev_close(dev)
    assert dev.closed
    assert not link_exists(name)
    assert dev.carrier is False
    assert dev.recv() == []
    assert dev.send([make_frame(1)]) == 0
    assert dev.fileno() is None
    dev.close()  # twice is harmless


@pytest.mark.netns
def test_attaches_to_an_existing_persistent_tap_and_leaves_it(lab: NetnsLab) -> None:
    name = lab.name("tap")
    lab.links.append(name)
    ip("tuntap", "add", "dev", name, "mode", "tap")
    dev = netdev_open(name, "tap")
    try:
        assert isinstance(dev, TapNetdev)
        assert not dev.created
        assert not dev.carrier  # down until someone brings it up
        dev.set_up(True)
        assert dev.carrier
    finally:
        netdev_close(dev)
    # Still there, without a carrier now that nobody holds it.
    assert link_exists(name)
    assert "NO-CARRIER" in kernel_link(name)["flags"]


@pytest.mark.netns
def test_open_refusals_name_the_problem(lab: NetnsLab) -> None:
    with pytest.raises(NetdevOptionError, match="'colour'"):
        netdev_open(lab.name("tap"), "tap", {"colour": "blue"})
    with pytest.raises(NetdevError, match="1 to 15 bytes"):
        netdev_open("pvs-" + "x" * 20, "tap")
    veth, _ = lab.veth()
    with pytest.raises(NetdevError, match="exists and is not a tap"):
        netdev_open(veth, "tap")
    assert kernel_link(veth)["link_type"] == "ether"  # untouched


# -- a host behind the device -----------------------------------------------------------


def answer(frame: bytes, address: str) -> tuple[str, bytes] | None:
    """The reply a host at ``address`` with PEER_MAC gives to an ARP request or an echo."""
    pkt = Ether(frame)
    if ARP in pkt and pkt[ARP].op == 1 and pkt[ARP].pdst == address:
        reply = Ether(src=PEER_MAC, dst=pkt.src) / ARP(
            op=2, hwsrc=PEER_MAC, psrc=address, hwdst=pkt[ARP].hwsrc, pdst=pkt[ARP].psrc
        )
        return "arp", bytes(reply)
    if ICMP in pkt and pkt[IP].dst == address and pkt[ICMP].type == 8:
        echo = pkt[ICMP]
        reply = (
            Ether(src=PEER_MAC, dst=pkt.src)
            / IP(src=address, dst=pkt[IP].src)
            / ICMP(type=0, id=echo.id, seq=echo.seq)
            / Raw(bytes(echo.payload))
        )
        return "echo", bytes(reply)
    return None


def serve(
    dev: Netdev, proc: subprocess.Popen[str], address: str, timeout: float
) -> dict[str, int]:
    """Answer for ``address`` through ``dev`` until ``proc`` exits or ``timeout`` passes."""
    answered = {"arp": 0, "echo": 0}
    fd = dev.fileno()
    assert fd is not None
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        select.select([fd], [], [], 0.05)
        for frame in dev.recv(64):
            reply = answer(frame, address)
            if reply is not None:
                answered[reply[0]] += 1
                assert dev.send([reply[1]]) == 1
    return answered


# Pings three times through an ICMP datagram socket; the kernel fills in the
# checksum and identifier, so this is ping without the ping program.
PY_PING = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.settimeout(1.0)
ok = 0
for seq in range(3):
    s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, seq) + b"pyvswitch", (sys.argv[1], 0))
    try:
        ok += s.recv(2048)[0] == 0
    except TimeoutError:
        pass
    time.sleep(0.2)
sys.exit(0 if ok == 3 else 1)
"""


def ping_from(netns: str, address: str, pinger: str) -> subprocess.Popen[str]:
    """Start pinging ``address`` three times from ``netns`` (the caller waits)."""
    if pinger == "ping":
        argv = ["ping", "-c", "3", "-W", "1", "-i", "0.2", address]
    else:
        # Datagram ICMP sockets are allowed to the groups in this range; the
        # setting belongs to the namespace, which the test made.
        in_netns(netns, "sh", "-c", "echo 0 0 > /proc/sys/net/ipv4/ping_group_range")
        argv = [sys.executable, "-c", PY_PING, address]
    return subprocess.Popen(
        ["ip", "netns", "exec", netns, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def ping_through(dev: Netdev, netns: str, address: str, pinger: str) -> tuple[str, dict[str, int]]:
    """Ping ``address`` from ``netns`` while answering through ``dev``; bounded to 20 s."""
    proc = ping_from(netns, address, pinger)
    try:
        answered = serve(dev, proc, address, timeout=20)
        output, _ = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, output
    return output, answered


def move_into(name: str, netns: str, cidr: str) -> None:
    """Move a kernel interface into ``netns``, give it ``cidr`` and bring it up there."""
    ip("link", "set", name, "netns", netns)
    ip("addr", "add", cidr, "dev", name, netns=netns)
    ip("link", "set", name, "up", netns=netns)


@pytest.mark.netns
@pytest.mark.parametrize("pinger", ["ping", "python"])
def test_ping_from_a_namespace_answered_through_the_tap(lab: NetnsLab, pinger: str) -> None:
    if pinger == "ping" and shutil.which("ping") is None:
        pytest.skip("the ping program is not installed (the python pinger covers this)")
    name = lab.name("tap")
    lab.links.append(name)
    ns = lab.netns()
    dev = netdev_open(name, "tap")
    try:
        move_into(name, ns, "192.0.2.1/24")
        # The device follows its kernel side into the namespace.
        assert dev.error is None
        assert dev.up
        assert dev.carrier
        assert dev.mac == mac_bytes(str(kernel_link(name, ns)["address"]))

        output, answered = ping_through(dev, ns, "192.0.2.2", pinger)
        assert answered["arp"] >= 1
        assert answered["echo"] == 3, output

        # Changes made there are seen here; changes from here are refused.
        ip("link", "set", name, "mtu", "1400", netns=ns)
        assert dev.mtu == 1400
        with pytest.raises(NetdevError, match="another network namespace"):
            dev.set_mtu(1500)
    finally:
        netdev_close(dev)
    assert not link_exists(name, ns)


@pytest.mark.netns
def test_follows_its_kernel_side_through_namespaces(lab: NetnsLab) -> None:
    # Three namespaces get three namespace ids (0, 1, 2) here: pyroute2
    # misreads every id but 0, which the provider corrects.
    taps = [lab.name("tap") for _ in range(3)]
    lab.links += taps
    spaces = [lab.netns() for _ in taps]
    devs = [netdev_open(name, "tap") for name in taps]
    try:
        for i, (name, ns) in enumerate(zip(taps, spaces, strict=True)):
            ip("link", "set", name, "netns", ns)
            ip("link", "set", name, "mtu", str(1400 + i), "up", netns=ns)
        assert [dev.mtu for dev in devs] == [1400, 1401, 1402]
        assert all(dev.carrier for dev in devs)

        # Home again: found by the name its descriptor reports.
        ip("link", "set", taps[1], "netns", str(os.getpid()), netns=spaces[1])
        assert devs[1].mtu == 1401
        assert not devs[1].up
        devs[1].set_up(True)
        assert devs[1].carrier

        # Its namespace removed: the interface goes with it, once the kernel
        # has destroyed the namespace, which it does after `ip netns del`
        # returns.
        ip("netns", "del", spaces[2])
        lab.namespaces.remove(spaces[2])
        deadline = time.monotonic() + 10
        while devs[2].carrier and time.monotonic() < deadline:
            time.sleep(0.02)
        assert devs[2].carrier is False
        assert devs[2].error is not None
        assert devs[0].error is None
        assert devs[0].carrier
    finally:
        for dev in devs:
            netdev_close(dev)


# Sends one 8000-byte UDP datagram as a single GSO packet of 1000-byte segments.
GSO_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT
except OSError:
    sys.exit(3)
s.sendto(bytes(range(250)) * 32, ("192.0.2.2", 9999))
"""


@pytest.mark.netns
def test_gso_packets_from_the_kernel_arrive_segmented(lab: NetnsLab) -> None:
    name = lab.name("tap")
    lab.links.append(name)
    ns = lab.netns()
    dev = netdev_open(name, "tap")
    try:
        move_into(name, ns, "192.0.2.1/24")
        ip(
            "neigh",
            "add",
            "192.0.2.2",
            "lladdr",
            PEER_MAC,
            "dev",
            name,
            "nud",
            "permanent",
            netns=ns,
        )
        sent = in_netns(ns, sys.executable, "-c", GSO_SEND, timeout=20, check=False)
        if sent.returncode == 3:
            pytest.skip("this kernel has no UDP GSO (UDP_SEGMENT)")
        assert sent.returncode == 0, sent.stderr

        def is_ours(frame: bytes) -> bool:
            pkt = Ether(frame)
            return UDP in pkt and pkt[UDP].dport == 9999

        frames = recv_matching(dev, 8, is_ours)
        assert len(frames) == 8
        payload = b""
        for frame in frames:
            assert len(frame) <= 14 + dev.mtu
            pkt = Ether(frame)
            checksum = pkt[UDP].chksum
            del pkt[UDP].chksum
            assert Ether(bytes(pkt))[UDP].chksum == checksum  # complete, not offloaded
            payload += bytes(pkt[UDP].payload)
        assert payload == bytes(range(250)) * 32
    finally:
        netdev_close(dev)


# -- internal ports -------------------------------------------------------------------------


@pytest.mark.netns
def test_internal_port_is_named_after_the_bridge_up_with_a_stable_mac(lab: NetnsLab) -> None:
    bridge = lab.name("br")
    other = lab.name("br")
    lab.links += [bridge, other]
    dev = netdev_open(bridge, "internal")
    try:
        link = kernel_link(bridge)
        assert link["ifname"] == bridge
        assert "UP" in link["flags"]
        assert dev.up
        assert dev.carrier
        mac = dev.mac
        assert mac == stable_mac(bridge)
        assert link["address"] == ":".join(f"{b:02x}" for b in mac)
        assert mac[0] & 0x02  # locally administered
        assert not mac[0] & 0x01  # unicast
    finally:
        netdev_close(dev)
    assert not link_exists(bridge)

    # The same bridge gets the same address again; another bridge another one.
    again = netdev_open(bridge, "internal")
    second = netdev_open(other, "internal")
    try:
        assert again.mac == mac
        assert second.mac != mac
        again.set_mac(mac_bytes("02:00:00:00:be:ef"))
        assert kernel_link(bridge)["address"] == "02:00:00:00:be:ef"
    finally:
        netdev_close(again)
        netdev_close(second)


@pytest.mark.netns
def test_internal_port_gives_the_host_an_address(lab: NetnsLab) -> None:
    bridge = lab.name("br")
    lab.links.append(bridge)
    ns = lab.netns()
    dev = netdev_open(bridge, "internal")
    try:
        move_into(bridge, ns, "198.51.100.1/24")
        assert dev.carrier
        _, answered = ping_through(dev, ns, "198.51.100.2", "python")
        assert answered["echo"] == 3

        # Brought back to this process's namespace, it is found again, and
        # can be changed from here again.
        ip("link", "set", bridge, "netns", str(os.getpid()), netns=ns)
        assert not dev.up  # a move takes an interface down
        dev.set_up(True)
        dev.set_mtu(1400)
        assert dev.carrier
        assert kernel_link(bridge)["mtu"] == 1400
    finally:
        netdev_close(dev)
    assert not link_exists(bridge)
