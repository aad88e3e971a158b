"""Flow key extraction speed, beside scapy's parse of the same frames.

Run: ``.venv/bin/python -m benchmarks.bench_extract`` (after ``./run setup``).

The mix is what a virtual switch in a compute node sees: mostly TCP over IPv4,
some UDP, ICMP, ARP, IPv6 and VLAN-tagged traffic. Both sides are timed in the
same run on the same frames, and the report is the ratio, because absolute
rates on a shared machine drift from run to run. Every loop is bounded in
count and time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from pyvswitch.flow import extract_keys

MIX = (
    (
        0.55,
        lambda r: (
            IP(src=_ip4(r), dst=_ip4(r))
            / TCP(sport=r.randrange(1024, 65535), dport=443, flags="A")
            / Raw(b"x" * 100)
        ),
    ),
    (
        0.15,
        lambda r: (
            IP(src=_ip4(r), dst=_ip4(r))
            / UDP(sport=r.randrange(1024, 65535), dport=53)
            / Raw(b"q" * 40)
        ),
    ),
    (0.05, lambda r: IP(src=_ip4(r), dst=_ip4(r)) / ICMP() / Raw(b"p" * 56)),
    (0.05, lambda r: ARP(psrc=_ip4(r), pdst=_ip4(r))),
    (
        0.10,
        lambda r: (
            IPv6(src="2001:db8::1", dst="2001:db8::2")
            / TCP(sport=r.randrange(1024, 65535), dport=80)
            / Raw(b"y" * 80)
        ),
    ),
    (
        0.02,
        lambda _r: (
            IPv6(src="2001:db8::1", dst="ff02::1:ff00:2")
            / ICMPv6ND_NS(tgt="2001:db8::2")
            / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
        ),
    ),
    (
        0.08,
        lambda r: (
            Dot1Q(vlan=r.randrange(1, 4095))
            / IP(src=_ip4(r), dst=_ip4(r))
            / TCP(dport=22)
            / Raw(b"z" * 60)
        ),
    ),
)


def _ip4(r: random.Random) -> str:
    return f"198.51.100.{r.randrange(1, 255)}"


def make_frames(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    weights = [w for w, _ in MIX]
    makers = [m for _, m in MIX]
    frames = []
    for _ in range(count):
        maker = rng.choices(makers, weights)[0]
        frames.append(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / maker(rng)))
    return frames


def rate(work: object, frames: list[bytes], rounds: int, budget: float) -> float:
    """Median frames per second over up to ``rounds`` rounds within ``budget`` seconds."""
    rates = []
    deadline = time.perf_counter() + budget
    for _ in range(rounds):
        start = time.perf_counter()
        work(frames)  # type: ignore[operator]
        rates.append(len(frames) / (time.perf_counter() - start))
        if time.perf_counter() > deadline:
            break
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--scapy-frames", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    frames = make_frames(args.frames)
    ours = rate(lambda fs: extract_keys(fs, 1), frames, args.rounds, 30.0)
    theirs = rate(
        lambda fs: [Ether(f) for f in fs], frames[: args.scapy_frames], args.rounds, 30.0
    )
    print(
        f"frames in the mix:        {len(frames)} (scapy timed on the first {args.scapy_frames})"
    )
    print(f"pyvswitch extract_keys:   {ours:12,.0f} keys/s")
    print(f"scapy Ether(frame):       {theirs:12,.0f} parses/s")
    print(f"ratio pyvswitch / scapy:  {ours / theirs:12.1f}x")


if __name__ == "__main__":
    main()
