"""Frames per second through a veth pair: the system provider beside plain socket loops.

Run as root: ``.venv/bin/python -m benchmarks.bench_netdev_system``.

It makes its own ``pvs-*`` namespace and veth pair (tests/system/netns.py) and
removes them when it ends, also on Ctrl-C or SIGTERM. The far end of the veth
sits in the namespace and is played by a raw socket there.

Receive: the far end sends a burst of frames, which the kernel queues both in
the device's ring and in a plain AF_PACKET socket bound to the same
interface; then each is drained and timed on its own: ``SystemNetdev.recv(64)``
against a ``socket.recv()`` loop (one frame per system call). Send:
``SystemNetdev.send()`` in batches of 32 against a ``socket.send()`` loop, the
far end counting what arrives. Sending is timed including the kernel's work
of handing each frame to the namespace's stack, which a veth does inside the
sending call. Both sides run in the same process in interleaved rounds, and
the report gives medians and ratios, because absolute rates on a shared
machine drift from run to run. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import statistics
import sys
import time
from typing import TYPE_CHECKING

from tests.netdev_harness import make_frame
from tests.system.harness_system import far_end_socket, quiet_link, recv_all, send_all
from tests.system.netns import NetnsLab, can_use_netns

from pyvswitch.netdev import netdev_close, netdev_open

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from pyvswitch.netdev import Netdev

SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
SO_RCVBUFFORCE = 33
ETH_P_ALL = 0x0003
#: No single drain or send round may take longer than this (seconds).
ROUND_LIMIT = 10.0


def plain_socket(ifname: str) -> socket.socket:
    """The baseline: a raw socket on the interface, one frame per system call."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    sock.setblocking(False)
    # Like the device: no copies of its own transmissions, and room for a
    # whole burst.
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    return sock


def drain_device(dev: Netdev, count: int) -> int:
    got = 0
    deadline = time.perf_counter() + ROUND_LIMIT
    while got < count and time.perf_counter() < deadline:
        got += len(dev.recv(64))
    return got


def drain_socket(sock: socket.socket, count: int) -> int:
    got = 0
    recv = sock.recv
    deadline = time.perf_counter() + ROUND_LIMIT
    while got < count and time.perf_counter() < deadline:
        try:
            recv(65536)
        except BlockingIOError:
            continue
        got += 1
    return got


def send_device(dev: Netdev, frames: list[bytes]) -> int:
    sent = 0
    for first in range(0, len(frames), 32):
        sent += dev.send(frames[first : first + 32])
    return sent


def send_socket(sock: socket.socket, frames: list[bytes]) -> int:
    send = sock.send
    sent = 0
    for frame in frames:
        try:
            send(frame)
        except BlockingIOError:
            continue
        sent += 1
    return sent


def timed(work: Callable[[], int]) -> tuple[float, int]:
    """(frames per second, frames done) of one call of ``work``."""
    start = time.perf_counter()
    done = work()
    elapsed = time.perf_counter() - start
    return (done / elapsed if elapsed > 0 else 0.0), done


def wait_quiet(sock: socket.socket, dev: Netdev) -> None:
    """Empty both receivers before a round (bounded)."""
    for _ in range(1000):
        if not dev.recv(64):
            break
    with contextlib.suppress(BlockingIOError):
        for _ in range(100_000):
            sock.recv(65536)


def run(args: argparse.Namespace, lab: NetnsLab) -> None:
    netns = lab.netns()
    root_end, far_name = lab.veth(netns)
    quiet_link(root_end)
    quiet_link(far_name, netns)
    far = far_end_socket(lab, far_name, netns)
    plain = plain_socket(root_end)
    dev = netdev_open(root_end, "system")
    try:
        frames = [make_frame(i, size=args.size) for i in range(args.frames)]
        count = len(frames)
        rates: dict[str, list[float]] = {
            "rx dev": [],
            "rx plain": [],
            "tx dev": [],
            "tx plain": [],
        }
        shortfalls: list[str] = []
        deadline = time.monotonic() + args.budget
        for rnd in range(args.rounds):
            if time.monotonic() > deadline:
                print(f"(time budget reached after {rnd} rounds)")
                break
            # Receive: both receivers get the same burst; drain them in turn,
            # the order alternating between rounds.
            wait_quiet(plain, dev)
            send_all(far, frames, timeout=ROUND_LIMIT)
            time.sleep(0.05)
            drains: list[tuple[str, Callable[[], int]]] = [
                ("rx dev", lambda: drain_device(dev, count)),
                ("rx plain", lambda: drain_socket(plain, count)),
            ]
            for name, work in drains if rnd % 2 == 0 else reversed(drains):
                rate, done = timed(work)
                rates[name].append(rate)
                if done != count:
                    shortfalls.append(f"round {rnd} {name}: {done} of {count}")
            # Send: the far end must see every frame of both senders.
            sends: list[tuple[str, Callable[[], int]]] = [
                ("tx dev", lambda: send_device(dev, list(frames))),
                ("tx plain", lambda: send_socket(plain, frames)),
            ]
            for name, work in sends if rnd % 2 == 0 else reversed(sends):
                rate, done = timed(work)
                arrived = len(recv_all(far, count, timeout=ROUND_LIMIT))
                rates[name].append(rate)
                if done != count or arrived != count:
                    shortfalls.append(f"round {rnd} {name}: sent {done}, {arrived} arrived")
        report(args, rates, shortfalls, dev)
    finally:
        netdev_close(dev)
        plain.close()
        far.close()


def report(
    args: argparse.Namespace, rates: dict[str, list[float]], shortfalls: list[str], dev: Netdev
) -> None:
    med = {name: statistics.median(values) for name, values in rates.items() if values}
    if len(med) < len(rates):
        print("no complete round")
        return
    rounds = len(rates["rx dev"])
    print(f"{args.frames} frames of {args.size} bytes per round, median of {rounds} rounds")
    print("receive")
    print(f"  socket.recv() loop, 1 frame per call  {med['rx plain']:12,.0f} frames/s")
    print(f"  SystemNetdev.recv(64), TPACKET_V2 ring {med['rx dev']:12,.0f} frames/s")
    print(f"  ratio system / plain                  {med['rx dev'] / med['rx plain']:12.2f}x")
    print("send")
    print(f"  socket.send() loop, 1 frame per call  {med['tx plain']:12,.0f} frames/s")
    print(f"  SystemNetdev.send(32), sendmmsg       {med['tx dev']:12,.0f} frames/s")
    print(f"  ratio system / plain                  {med['tx dev'] / med['tx plain']:12.2f}x")
    print(f"device statistics: {dev.stats.as_dict()}")
    for line in shortfalls:
        print(f"shortfall: {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    # The device's ring holds 2048 frames, so a receive burst stays below that.
    parser.add_argument("--frames", type=int, default=2000, help="frames per round (max 2000)")
    parser.add_argument("--size", type=int, default=64, help="frame size in bytes (60..1514)")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for all rounds")
    args = parser.parse_args()
    args.frames = max(1, min(args.frames, 2000))
    args.size = max(60, min(args.size, 1514))
    why = can_use_netns()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGTERM and SIGHUP end the run like Ctrl-C does, through the finally
    # block below that removes the namespace and the veth pair. Ctrl-C's own
    # handler is set too: a process started in the background by a
    # non-interactive shell begins with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    lab = NetnsLab()
    try:
        run(args, lab)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        lab.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
