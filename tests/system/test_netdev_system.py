"""The system provider against real veth pairs and namespaces (needs root).

Frames are built and checked with scapy. Every wait is bounded; everything a
test makes is named ``pvs-*`` by the ``lab`` fixture and removed afterwards.
Addresses are given only inside the test's namespaces, from 198.51.100.0/24
and 2001:db8:5::/64 (the test VM's own uplink uses 192.0.2.0/24, and its root
namespace would answer ARP for that address on our links).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from pyvswitch.netdev import NetdevError, NetdevOptionError, netdev_close, netdev_open
from pyvswitch.netdev.system import (
    VNET_HDR_LEN,
    SystemNetdev,
    VnetFrame,
    finish_offloads,
    vnet_header,
)
from tests.netdev_harness import make_frame, recv_frames
from tests.system.harness_system import SystemHarness, far_end_socket, quiet_link, recv_all
from tests.system.netns import ip

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pyvswitch.netdev import Netdev
    from tests.system.netns import NetnsLab

pytestmark = pytest.mark.netns

SOL_PACKET = 263
PACKET_VNET_HDR = 15
UDP_SEGMENT = 103

SRC = "02:00:00:00:00:01"
DST = "02:00:00:00:00:02"


@pytest.fixture
def harness(lab: NetnsLab) -> Iterator[SystemHarness]:
    made = SystemHarness(lab)
    try:
        yield made
    finally:
        made.close()


def _udp(payload: bytes = b"pyvswitch" * 8) -> IP:
    return IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=4000, dport=5000) / payload


TAGGINGS = {
    "untagged": lambda: Ether(src=SRC, dst=DST) / _udp(),
    "802.1Q": lambda: Ether(src=SRC, dst=DST) / Dot1Q(vlan=10, prio=5) / _udp(),
    "802.1Q-priority": lambda: Ether(src=SRC, dst=DST) / Dot1Q(vlan=0, prio=3) / _udp(),
    "802.1ad": lambda: Ether(src=SRC, dst=DST, type=0x88A8) / Dot1AD(vlan=300) / _udp(),
    "802.1ad+802.1Q": lambda: (
        Ether(src=SRC, dst=DST, type=0x88A8) / Dot1AD(vlan=300) / Dot1Q(vlan=10) / _udp()
    ),
}


def _recv_until(dev: Netdev, count: int, timeout: float = 3.0) -> list[bytes]:
    """Every frame the device receives (test ethertype or not), bounded in time."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    fd = dev.fileno()
    assert fd is not None
    while len(got) < count and time.monotonic() < deadline:
        select.select([fd], [], [], 0.05)
        got.extend(dev.recv(64))
    return got


@pytest.mark.parametrize("tagging", list(TAGGINGS))
def test_frames_cross_both_ways_byte_identical(harness: SystemHarness, tagging: str) -> None:
    dev = harness.open()
    frame = bytes(TAGGINGS[tagging]())
    assert len(frame) >= 60

    harness.inject([frame])
    received = [f for f in _recv_until(dev, 1) if f[:12] == frame[:12]]
    assert received == [frame]
    assert Ether(received[0]).summary() == Ether(frame).summary()

    assert dev.send([frame]) == 1
    assert harness.far is not None
    arrived = [f for f in recv_all(harness.far, 1, 3.0, keep="all") if f[:12] == frame[:12]]
    assert arrived == [frame]


def test_burst_of_1000_received_and_counted(harness: SystemHarness) -> None:
    dev = harness.open()
    before = dev.stats.rx_packets
    frames = [make_frame(i, size=64 + i % 200) for i in range(1000)]
    harness.inject(frames)
    got = _recv_until(dev, 1000, timeout=10.0)
    # Both ends are quiet (no IPv6, no ARP), so every frame is one of ours.
    assert sorted(got) == sorted(frames)
    assert dev.stats.rx_packets - before == 1000
    assert dev.stats.rx_bytes == sum(map(len, frames))
    assert dev.stats.rx_dropped == 0


def test_burst_of_1000_sent_all_arrive(harness: SystemHarness) -> None:
    dev = harness.open()
    frames = [make_frame(i, size=64 + i % 200) for i in range(1000)]
    assert dev.send(list(frames)) == 1000
    assert dev.stats.tx_packets == 1000
    assert dev.stats.tx_bytes == sum(map(len, frames))
    assert dev.stats.tx_dropped == dev.stats.tx_errors == 0
    assert sorted(harness.collect(1000, timeout=10.0)) == sorted(frames)


def test_ring_overflow_is_counted_as_rx_dropped(harness: SystemHarness) -> None:
    dev = harness.open()
    # More than the ring holds (2048 frames), injected while nobody reads.
    frames = [make_frame(i) for i in range(3000)]
    harness.inject(frames)
    got = _recv_until(dev, 3000, timeout=2.0)
    assert 0 < len(got) < 3000
    # The kernel reports its drops with the next frame that finds room.
    harness.inject([make_frame(3000)])
    got += _recv_until(dev, 1)
    assert got[-1] == make_frame(3000)
    assert dev.stats.rx_packets == len(got)
    assert dev.stats.rx_packets + dev.stats.rx_dropped == 3001


def test_own_transmissions_are_not_received_back(harness: SystemHarness) -> None:
    dev = harness.open()
    frames = [make_frame(i) for i in range(50)]
    assert dev.send(frames) == 50
    assert len(harness.collect(50)) == 50
    assert recv_frames(dev, 1, timeout=0.5) == []
    # The device still receives what the far end sends after that.
    harness.inject([make_frame(99)])
    assert recv_frames(dev, 1) == [make_frame(99)]


def test_frame_over_mtu_without_gso_is_refused_and_counted(harness: SystemHarness) -> None:
    dev = harness.open()
    giant = make_frame(1, size=dev.mtu + 14 + 100)
    assert dev.send([giant, make_frame(2)]) == 1
    assert dev.stats.tx_errors == 1
    assert harness.collect(2, timeout=1.0) == [make_frame(2)]


def test_interface_removed_under_open_device(harness: SystemHarness) -> None:
    dev = harness.open()
    assert harness.root_end is not None
    assert dev.carrier
    ip("link", "del", harness.root_end)
    deadline = time.monotonic() + 5
    while dev.error is None and time.monotonic() < deadline:
        fd = dev.fileno()
        assert fd is not None
        select.select([fd], [], [], 0.05)
        assert dev.recv() == []
    assert dev.error is not None
    assert harness.root_end in dev.error
    assert "disappeared" in dev.error
    assert not dev.carrier
    assert dev.send([make_frame(1), make_frame(2)]) == 0
    assert dev.stats.tx_dropped == 2
    assert dev.recv() == []


def test_interface_recreated_with_the_same_name_is_used_again(harness: SystemHarness) -> None:
    dev = harness.open()
    root_end, far_end, netns = harness.root_end, harness.far_end, harness.netns
    assert root_end is not None
    assert far_end is not None
    assert netns is not None
    fd = dev.fileno()
    ip("link", "del", root_end)
    assert not dev.carrier
    ip("link", "add", root_end, "type", "veth", "peer", "name", far_end)
    ip("link", "set", far_end, "netns", netns)
    ip("link", "set", root_end, "up")
    ip("link", "set", far_end, "up", netns=netns)
    quiet_link(root_end)
    quiet_link(far_end, netns)
    assert harness.far is not None
    harness.far.close()
    harness.far = far_end_socket(harness.lab, far_end, netns)
    # The device rebinds its socket: same descriptor, so a poller need not know.
    assert dev.carrier
    assert dev.error is None
    assert dev.fileno() == fd
    harness.inject([make_frame(1)])
    assert recv_frames(dev, 1) == [make_frame(1)]
    assert dev.send([make_frame(2)]) == 1
    assert harness.collect(1) == [make_frame(2)]


def test_interface_set_down_under_open_device(harness: SystemHarness) -> None:
    dev = harness.open()
    assert harness.root_end is not None
    harness.inject([make_frame(i) for i in range(5)])
    ip("link", "set", harness.root_end, "down")
    # The socket's pending error and the frames left in the ring are dealt
    # with, so a poller is not woken again and again while the link is down.
    fd = dev.fileno()
    assert fd is not None
    wakeups = 0
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            wakeups += 1
        dev.recv()
    assert wakeups < 5
    assert not dev.carrier
    assert dev.error is not None
    assert "down" in dev.error
    assert harness.root_end in dev.error
    assert not dev.up
    assert dev.send([make_frame(1)]) == 0
    assert dev.stats.tx_dropped == 1
    assert dev.recv() == []

    ip("link", "set", harness.root_end, "up")
    deadline = time.monotonic() + 5
    while not dev.carrier and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dev.carrier
    assert dev.error is None
    harness.inject([make_frame(7)])
    assert recv_frames(dev, 1) == [make_frame(7)]


def test_set_up_false_is_not_an_error(harness: SystemHarness) -> None:
    dev = harness.open()
    dev.set_up(False)
    assert not dev.up
    assert not dev.carrier
    assert dev.error is None
    assert dev.send([make_frame(1)]) == 0
    assert dev.stats.tx_dropped == 1
    dev.set_up(True)
    assert dev.up
    deadline = time.monotonic() + 5
    while not dev.carrier and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dev.carrier
    assert dev.send([make_frame(2)]) == 1
    assert harness.collect(1) == [make_frame(2)]


def test_mtu_and_mac_follow_the_kernel(harness: SystemHarness) -> None:
    dev = harness.open()
    assert harness.root_end is not None
    dev.set_mtu(1400)
    assert dev.mtu == 1400
    assert "mtu 1400" in ip("link", "show", harness.root_end)
    dev.set_mac(bytes.fromhex("020000aa0001"))
    assert dev.mac == bytes.fromhex("020000aa0001")
    assert "02:00:00:aa:00:01" in ip("link", "show", harness.root_end)
    with pytest.raises(NetdevError, match=harness.root_end):
        dev.set_mtu(70000)


def test_nonexistent_interface_is_a_clear_error(lab: NetnsLab) -> None:
    missing = lab.name("none")
    with pytest.raises(NetdevError, match=f"{missing}: no such network interface"):
        netdev_open(missing, "system")


def test_options_are_refused(lab: NetnsLab) -> None:
    root_end, _ = lab.veth()
    with pytest.raises(NetdevOptionError, match=f"{root_end}: unknown option 'speed'"):
        netdev_open(root_end, "system", {"speed": "10G"})
    dev = netdev_open(root_end, "system")
    try:
        with pytest.raises(NetdevOptionError, match="'speed'"):
            dev.configure({"speed": "10G"})
        assert dev.carrier
    finally:
        netdev_close(dev)


# -- TCP through a forwarder made of two system devices --------------------------------


@dataclass
class Seen:
    """What the forwarder saw pass."""

    frames: int = 0
    largest: int = 0
    needs_csum: int = 0
    over_mtu: int = 0
    #: Frames over the MTU by the device that received them.
    over_mtu_from: dict[str, int] = field(default_factory=dict)
    vnet_frames: list[VnetFrame] = field(default_factory=list)


def _forward(
    a: Netdev,
    b: Netdev,
    stop: threading.Event,
    seen: Seen,
    out: Callable[[Netdev, list[bytes]], object] | None = None,
) -> None:
    """Move frames between two devices until told to stop (at most 40 s)."""
    route = {a.fileno(): (a, b), b.fileno(): (b, a)}
    fds = [fd for fd in route if fd is not None]
    largest_plain = {a.name: a.mtu + 18, b.name: b.mtu + 18}
    deadline = time.monotonic() + 40
    while not stop.is_set() and time.monotonic() < deadline:
        ready, _, _ = select.select(fds, [], [], 0.05)
        for fd in ready:
            src, dst = route[fd]
            for _ in range(64):
                batch = src.recv(64)
                if not batch:
                    break
                seen.frames += len(batch)
                for frame in batch:
                    seen.largest = max(seen.largest, len(frame))
                    if len(frame) > largest_plain[src.name]:
                        seen.over_mtu += 1
                        seen.over_mtu_from[src.name] = seen.over_mtu_from.get(src.name, 0) + 1
                    if type(frame) is VnetFrame:
                        seen.needs_csum += frame.vnet[0] & 1
                        if len(seen.vnet_frames) < 200:
                            seen.vnet_frames.append(frame)
                if out is None:
                    dst.send(batch)
                else:
                    out(dst, batch)


@dataclass
class Pair:
    """Two namespaces, each with a veth whose root end is a system device.

    Host 1 and host 2 get addresses from 198.51.100.0/24, or 2001:db8:5::/64
    for ``family=6`` (IPv6 stays on in the namespaces then).
    """

    lab: NetnsLab
    family: int = 4
    netns: list[str] = field(default_factory=list)
    root_ends: list[str] = field(default_factory=list)
    far_ends: list[str] = field(default_factory=list)
    devs: list[Netdev] = field(default_factory=list)

    def build(self) -> None:
        for host in (1, 2):
            ns = self.lab.netns()
            root_end, far_end = self.lab.veth(ns)
            quiet_link(root_end)
            if self.family == 4:
                quiet_link(far_end, ns)
                ip("addr", "add", f"198.51.100.{host}/24", "dev", far_end, netns=ns)
            else:
                ip("addr", "add", f"2001:db8:5::{host}/64", "dev", far_end, "nodad", netns=ns)
            self.netns.append(ns)
            self.root_ends.append(root_end)
            self.far_ends.append(far_end)
        for name in self.root_ends:
            self.devs.append(netdev_open(name, "system"))

    def address(self, host: int) -> str:
        return f"198.51.100.{host}" if self.family == 4 else f"2001:db8:5::{host}"

    @property
    def socket_family(self) -> socket.AddressFamily:
        return socket.AF_INET if self.family == 4 else socket.AF_INET6

    def close(self) -> None:
        for dev in self.devs:
            netdev_close(dev)


def _tcp_echo(lab: NetnsLab, pair: Pair, data: bytes, timeout: float = 30.0) -> bytes:
    """Send ``data`` from host 1 to an echo server on host 2; return what came back."""

    def listener() -> socket.socket:
        sock = socket.socket(pair.socket_family, socket.SOCK_STREAM)
        sock.bind((pair.address(2), 0))
        sock.listen(1)
        return sock

    server = lab.run_in(pair.netns[1], listener)
    client = lab.run_in(
        pair.netns[0], lambda: socket.socket(pair.socket_family, socket.SOCK_STREAM)
    )
    server.settimeout(timeout)
    client.settimeout(timeout)
    port = server.getsockname()[1]
    errors: list[BaseException] = []

    def echo() -> None:
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(timeout)
                while chunk := conn.recv(1 << 16):
                    conn.sendall(chunk)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def feed() -> None:
        try:
            client.sendall(data)
            client.shutdown(socket.SHUT_WR)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=echo, daemon=True),
        threading.Thread(target=feed, daemon=True),
    ]
    back = bytearray()
    try:
        threads[0].start()
        client.connect((pair.address(2), port))
        threads[1].start()
        deadline = time.monotonic() + timeout
        while len(back) <= len(data) and time.monotonic() < deadline:
            chunk = client.recv(1 << 16)
            if not chunk:
                break
            back += chunk
    finally:
        client.close()
        server.close()
        for thread in threads:
            thread.join(timeout=5)
    assert not errors, errors
    return bytes(back)


@contextlib.contextmanager
def _forwarding(
    pair: Pair, out: Callable[[Netdev, list[bytes]], object] | None = None
) -> Iterator[Seen]:
    seen = Seen()
    stop = threading.Event()
    thread = threading.Thread(
        target=_forward, args=(pair.devs[0], pair.devs[1], stop, seen, out), daemon=True
    )
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_tcp_through_python_forwarder_with_offloads_on(lab: NetnsLab, family: int) -> None:
    pair = Pair(lab, family)
    try:
        pair.build()
        data = random.Random(7).randbytes(2_000_000)
        with _forwarding(pair) as seen:
            back = _tcp_echo(lab, pair, data)
        assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
        # The veths kept their default offloads: the stacks left checksums to
        # the device and sent GSO super-frames, and both passed.
        assert seen.needs_csum > 0
        assert seen.over_mtu > 0
        assert seen.largest > 1514
        for dev in pair.devs:
            assert dev.stats.tx_errors == dev.stats.tx_dropped == 0
    finally:
        pair.close()


def _set_features(ifname: str, netns: str | None, **wanted: bool) -> None:
    """Switch offload features of one link (ethtool -K) through pyroute2."""
    from pyroute2 import netns as pr_netns
    from pyroute2.ethtool import Ethtool

    if netns:
        pr_netns.pushns(netns)
    try:
        ethtool = Ethtool()
        try:
            features = ethtool.get_features(ifname)
            for name, enable in wanted.items():
                features.features[name.replace("_", "-")].enable = enable
            ethtool.set_features(ifname, features)
        finally:
            ethtool.close()
    finally:
        if netns:
            pr_netns.popns()


def test_gro_frames_larger_than_mtu_pass(lab: NetnsLab) -> None:
    pair = Pair(lab)
    try:
        pair.build()
        # Host 1 sends MTU-sized segments (no TSO, no GSO), and the root end of
        # its veth merges them (veth GRO runs only for a sender without TSO,
        # and turns on with the feature's off-to-on change).
        _set_features(
            pair.far_ends[0],
            pair.netns[0],
            tx_tcp_segmentation=False,
            tx_tcp6_segmentation=False,
            tx_tcp_ecn_segmentation=False,
            tx_tcp_mangleid_segmentation=False,
            tx_generic_segmentation=False,
        )
        _set_features(pair.root_ends[0], None, rx_gro=False)
        _set_features(pair.root_ends[0], None, rx_gro=True)
        data = random.Random(8).randbytes(2_000_000)
        with _forwarding(pair) as seen:
            back = _tcp_echo(lab, pair, data)
        assert back == data
        # Host 1 sent nothing larger than its MTU, so what its veth's root end
        # delivered over the MTU was merged there.
        assert seen.over_mtu_from.get(pair.root_ends[0], 0) > 0
    finally:
        pair.close()


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_finish_offloads_lets_a_device_without_vnet_header_carry_tcp(
    lab: NetnsLab, family: int
) -> None:
    """Frames that leave by a plain raw socket go through finish_offloads first."""
    pair = Pair(lab, family)
    plain: dict[str, socket.socket] = {}
    try:
        pair.build()
        for dev in pair.devs:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            sock.bind((dev.name, 0))
            plain[dev.name] = sock

        def out(dst: Netdev, batch: list[bytes]) -> None:
            for frame in batch:
                for piece in finish_offloads(frame):
                    assert len(piece) <= dst.mtu + 18
                    plain[dst.name].send(piece)

        data = random.Random(9).randbytes(500_000)
        with _forwarding(pair, out) as seen:
            back = _tcp_echo(lab, pair, data)
        assert back == data
        assert seen.over_mtu > 0
        # Every segment made in software carries the checksums scapy computes.
        checked = 0
        for frame in seen.vnet_frames:
            for piece in finish_offloads(frame):
                packet = Ether(piece)
                if TCP not in packet:
                    continue
                wanted = packet[TCP].chksum
                del packet[TCP].chksum
                if IP in packet:
                    del packet[IP].chksum
                assert Ether(bytes(packet)) == Ether(piece)
                assert Ether(bytes(packet))[TCP].chksum == wanted
                checked += 1
        assert checked > 0
    finally:
        for sock in plain.values():
            sock.close()
        pair.close()


@pytest.mark.parametrize("way", ["vnet", "software"])
def test_udp_gso_frame_arrives_as_its_datagrams(lab: NetnsLab, way: str) -> None:
    """A UDP_SEGMENT send crosses as one GSO frame and arrives as its datagrams.

    ``vnet``: forwarded between the two devices, the kernel segments it;
    ``software``: finish_offloads cuts it and plain raw sockets send the pieces.
    """
    pair = Pair(lab)
    plain: dict[str, socket.socket] = {}
    receiver = sender = None
    try:
        pair.build()
        for dev in pair.devs:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            sock.bind((dev.name, 0))
            plain[dev.name] = sock

        def out(dst: Netdev, batch: list[bytes]) -> None:
            for frame in batch:
                for piece in finish_offloads(frame):
                    plain[dst.name].send(piece)

        def make_receiver() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("198.51.100.2", 7000))
            return sock

        def make_sender() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 1000)
            return sock

        receiver = lab.run_in(pair.netns[1], make_receiver)
        sender = lab.run_in(pair.netns[0], make_sender)
        receiver.settimeout(3)
        data = random.Random(10).randbytes(8000)
        with _forwarding(pair, out if way == "software" else None) as seen:
            sender.sendto(b"hello", ("198.51.100.2", 7000))  # resolves ARP first
            assert receiver.recv(2000) == b"hello"
            sender.sendto(data, ("198.51.100.2", 7000))
            got = [receiver.recv(2000) for _ in range(8)]
        assert [len(g) for g in got] == [1000] * 8
        assert b"".join(got) == data
        assert seen.largest == 14 + 20 + 8 + 8000
    finally:
        for sock in (receiver, sender, *plain.values()):
            if sock is not None:
                sock.close()
        pair.close()


def _vnet_socket(lab: NetnsLab, ifname: str, netns: str) -> socket.socket:
    """A far-end raw socket that sends and receives a virtio_net_hdr before each frame."""
    sock = far_end_socket(lab, ifname, netns)
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    return sock


TAGS = {
    "untagged": b"",
    "802.1Q": bytes.fromhex("8100a00a"),
    "802.1ad": bytes.fromhex("88a8012c"),
    "802.1ad+802.1Q": bytes.fromhex("88a8012c8100000a"),
}


@pytest.mark.parametrize("tag", list(TAGS))
def test_partial_checksum_keeps_its_offset_across_vlan_tags(lab: NetnsLab, tag: str) -> None:
    """A tagged frame whose TCP checksum is left to the device crosses both devices.

    The kernel strips the outer tag on receive and counts csum_start without
    it; the device puts the tag back, so it must move csum_start with it, or
    the checksum would be written into the IP header further on. (This
    kernel has no 802.1Q module, so no VLAN interface can carry a real TCP
    stream; a vnet-header socket at each far end plays the stacks.)
    """
    pair = Pair(lab)
    socks: list[socket.socket] = []
    try:
        pair.build()
        socks = [
            _vnet_socket(lab, far, ns) for far, ns in zip(pair.far_ends, pair.netns, strict=True)
        ]
        complete = bytes(
            Ether(src=SRC, dst=DST)
            / IP(src="198.51.100.1", dst="198.51.100.2")
            / TCP(sport=1000, dport=2000, flags="PA", seq=5)
            / Raw(b"offload" * 30)
        )
        l4 = 14 + 20
        partial_check = _pseudo_sum("198.51.100.1", "198.51.100.2", len(complete) - l4)
        partial = complete[: l4 + 16] + partial_check.to_bytes(2, "big") + complete[l4 + 18 :]
        tagged = partial[:12] + TAGS[tag] + partial[12:]
        tagged_complete = complete[:12] + TAGS[tag] + complete[12:]
        start = l4 + len(TAGS[tag])
        socks[0].send(vnet_header(needs_csum=True, csum_start=start, csum_offset=16) + tagged)

        got = [f for f in _recv_until(pair.devs[0], 1) if f[:12] == tagged[:12]]
        assert got == [tagged]
        frame = got[0]
        assert type(frame) is VnetFrame
        assert frame.vnet == vnet_header(needs_csum=True, csum_start=start, csum_offset=16)
        assert finish_offloads(frame) == [tagged_complete]

        assert pair.devs[1].send([frame]) == 1
        arrived = recv_all(socks[1], 1, 3.0, keep="all", skip=VNET_HDR_LEN)
        # The far socket reads a vnet header before each frame. The kernel
        # stripped the outer tag again on the way in (the helper put it back),
        # so that header counts from the untagged frame.
        arrived = [a for a in arrived if a[VNET_HDR_LEN : VNET_HDR_LEN + 12] == tagged[:12]]
        assert [a[VNET_HDR_LEN:] for a in arrived] == [tagged]
        header = arrived[0][:VNET_HDR_LEN]
        outer = 4 if TAGS[tag] else 0
        assert header == vnet_header(needs_csum=True, csum_start=start - outer, csum_offset=16)
    finally:
        for sock in socks:
            sock.close()
        pair.close()


def test_a_vnet_frame_gets_its_checksum_from_the_kernel(lab: NetnsLab) -> None:
    """A frame whose header asks for a checksum reaches a real stack complete."""
    pair = Pair(lab)
    try:
        pair.build()
        complete = bytes(
            Ether(src=SRC, dst=DST)
            / IP(src="198.51.100.1", dst="198.51.100.2")
            / UDP(sport=1000, dport=2000)
            / Raw(b"checksum me")
        )
        l4 = 14 + 20
        partial_check = _pseudo_sum("198.51.100.1", "198.51.100.2", len(complete) - l4, 17)
        partial = complete[: l4 + 6] + partial_check.to_bytes(2, "big") + complete[l4 + 8 :]
        frame = VnetFrame(partial, vnet_header(needs_csum=True, csum_start=l4, csum_offset=6))
        assert finish_offloads(frame) == [complete]

        def receiver() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("198.51.100.2", 2000))
            return sock

        udp = lab.run_in(pair.netns[1], receiver)
        try:
            udp.settimeout(3)
            dst = bytes.fromhex(
                ip("-br", "link", "show", pair.far_ends[1], netns=pair.netns[1])
                .split()[2]
                .replace(":", "")
            )
            frame = VnetFrame(dst + partial[6:], frame.vnet)
            assert pair.devs[1].send([frame]) == 1
            # The UDP socket gets the datagram only if its checksum is right.
            assert udp.recv(100) == b"checksum me"
        finally:
            udp.close()
    finally:
        pair.close()


def _pseudo_sum(src: str, dst: str, l4_length: int, proto: int = 6) -> int:
    """The folded (not complemented) IPv4 pseudo-header sum, as a stack leaves it."""
    words = socket.inet_aton(src) + socket.inet_aton(dst) + bytes((0, proto))
    words += l4_length.to_bytes(2, "big")
    total = sum(int.from_bytes(words[i : i + 2], "big") for i in range(0, len(words), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_system_provider_is_registered(lab: NetnsLab) -> None:
    from pyvswitch.netdev import provider

    root_end, _ = lab.veth()
    assert provider("system") is SystemNetdev
    dev = netdev_open(root_end, "system")
    try:
        assert isinstance(dev, SystemNetdev)
        assert dev.fileno() is not None
        assert dev.get_config() == {}
    finally:
        netdev_close(dev)
