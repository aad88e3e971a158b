"""Packets per second through the datapath, in process, on in-memory ports.

Run: ``.venv/bin/python -m benchmarks.bench_datapath``.

Side by side in one run (ratios are what to read; absolute rates drift on a
shared machine):

* one bridge, NORMAL, exact-match cache hot;
* the same with the EMC off (every packet takes the megaflow classifier);
* two bridges joined by a patch pair (one lookup for both);
* eight bridges in a patch chain (still one lookup);
* the cost of an upcall (translation and install), per packet.

Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pyvswitch.ofproto.ofproto import Ofproto

SRC = "02:00:00:00:00:01"
DST = "02:00:00:00:00:02"


def frames(n_flows: int, size: int = 64) -> list[bytes]:
    out = []
    for i in range(n_flows):
        pkt = (
            Ether(src=SRC, dst=DST)
            / IP(src="198.51.100.1", dst="203.0.113.1")
            / UDP(sport=1024 + i, dport=53)
        )
        raw = bytes(pkt)
        out.append(raw + bytes(max(size - len(raw), 0)))
    return out


def chain(n_bridges: int, emc: bool) -> tuple[Ofproto, int, int]:
    """``n_bridges`` bridges in a row, joined by patch pairs; returns (ofproto, in, out)."""
    ofp = Ofproto(emc_insert_inv_prob=1 if emc else 1 << 30, rng=random.Random(1))
    for b in range(n_bridges):
        ofp.add_bridge(f"br{b}", "secure")
    first = ofp.add_port("br0", "in", "dummy", 1).odp_port
    last = ofp.add_port(f"br{n_bridges - 1}", "out", "dummy", 2).odp_port
    assert first is not None
    assert last is not None
    from pyvswitch.flow.match import Match
    from pyvswitch.ofproto.actions import Output

    for b in range(n_bridges):
        if b + 1 < n_bridges:
            ofp.add_port(f"br{b}", f"to{b + 1}", "patch", 10, peer=f"from{b}")
            ofp.add_port(f"br{b + 1}", f"from{b}", "patch", 20, peer=f"to{b + 1}")
        out_port = 10 if b + 1 < n_bridges else 2
        ofp.add_flow(f"br{b}", Match(), (Output(out_port),), priority=1)
    if emc:
        # Make the EMC hot: normal insertion is 1/100, this run wants all.
        ofp.datapath.emc_insert_inv_prob = 1
    return ofp, first, last


def normal_bridge(emc: bool) -> tuple[Ofproto, int, int]:
    ofp = Ofproto(emc_insert_inv_prob=1 if emc else 1 << 30, rng=random.Random(1))
    ofp.add_bridge("br0")
    a = ofp.add_port("br0", "a", "dummy", 1).odp_port
    b = ofp.add_port("br0", "b", "dummy", 2).odp_port
    assert a is not None
    assert b is not None
    # Teach the bridge where DST lives, so NORMAL unicasts.
    reply = bytes(Ether(src=DST, dst=SRC) / IP() / UDP())
    ofp.receive(b, [reply], 0.0)
    return ofp, a, b


def rate(
    ofp: Ofproto, port: int, batch: list[bytes], out_port: int, rounds: int, budget: float
) -> float:
    ofp.receive(port, batch, 0.0)  # warm: upcalls happen here
    assert len(ofp.receive(port, batch, 0.0).get(out_port, [])) == len(batch)
    results = []
    deadline = time.perf_counter() + budget
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(50):
            ofp.receive(port, batch, 1.0)
        results.append(50 * len(batch) / (time.perf_counter() - start))
        if time.perf_counter() > deadline:
            break
    return statistics.median(results)


def upcall_cost(n: int) -> float:
    """Seconds per upcall through two NORMAL bridges joined by a patch pair.

    Every frame has its own source MAC, which NORMAL's megaflows match on, so
    every frame misses both caches: translation, learning and install.
    """
    ofp = Ofproto(emc_insert_inv_prob=1, rng=random.Random(1))
    ofp.add_bridge("br0")
    ofp.add_bridge("br1")
    first = ofp.add_port("br0", "in", "dummy", 1).odp_port
    ofp.add_port("br1", "out", "dummy", 2)
    ofp.add_port("br0", "patch0", "patch", 10, peer="patch1")
    ofp.add_port("br1", "patch1", "patch", 20, peer="patch0")
    assert first is not None
    batch = [
        bytes(Ether(src=f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", dst=DST) / IP() / UDP())
        for i in range(n)
    ]
    start = time.perf_counter()
    for frame in batch:
        ofp.receive(first, [frame], 0.0)
    elapsed = time.perf_counter() - start
    assert ofp.datapath.stats.missed == n
    return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=8, help="distinct flows in the traffic")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    batch = (frames(args.flows) * (args.batch // args.flows + 1))[: args.batch]
    budget = 20.0
    cases = {
        "1 bridge, NORMAL, EMC hot": (*normal_bridge(True),),
        "1 bridge, NORMAL, EMC off (megaflows only)": (*normal_bridge(False),),
        "2 bridges, patch pair, EMC hot": (*chain(2, True),),
        "8 bridges, patch chain, EMC hot": (*chain(8, True),),
        "8 bridges, patch chain, EMC off": (*chain(8, False),),
    }
    base = None
    print(f"batches of {args.batch} frames over {args.flows} flows, median of {args.rounds}")
    for name, (ofp, port, out) in cases.items():
        pps = rate(ofp, port, batch, out, args.rounds, budget)
        base = base or pps
        print(f"  {name:45s} {pps:12,.0f} pkt/s  {pps / base:5.2f}x")
    cost = upcall_cost(500)
    print(
        f"  upcall (translate, learn, install), 2 bridges {cost * 1e6:9.1f} us each"
        f"  ({1 / cost:,.0f}/s)"
    )


if __name__ == "__main__":
    main()
