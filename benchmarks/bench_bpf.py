"""Capture filter speed: our BPF interpreter beside libpcap's C ``bpf_filter``.

Run: ``.venv/bin/python -m benchmarks.bench_bpf`` (after ``./run setup``).

Each expression is compiled once by libpcap; both interpreters then run the
same program on the same frames (bench_extract's compute-node mix) in the
same run, and the report is the ratio, because absolute rates on a shared
machine drift. libpcap is reached through ctypes (``pcap_offline_filter``),
so its column includes one foreign call per frame, which is also what any
Python caller of libpcap's filter would pay. The accepted counts are printed
to show that both interpreters gave the same verdicts. Every loop is bounded
in count and time.
"""

from __future__ import annotations

import argparse

from benchmarks.bench_extract import make_frames, rate
from pyvswitch.capture.compile import LibpcapFilter, compile_filter
from pyvswitch.packet.bpf import BpfProgram

EXPRESSIONS = (
    "",
    "arp",
    "tcp port 443",
    "host 198.51.100.7",
    "udp and dst port 53",
    "vlan and tcp port 22",
    "ip6 and tcp dst port 80",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-ack",
    "not (arp or icmp or icmp6)",
    "net 198.51.100.0/28 and (tcp portrange 1000-2000 or udp)",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    frames = make_frames(args.frames)
    print(f"frames in the mix: {len(frames)}")
    print(f"{'expression':56} {'insns':>5} {'accepted':>8} {'ours/s':>12} {'libpcap/s':>12} ratio")
    for expression in EXPRESSIONS:
        instructions = compile_filter(expression)
        ours = BpfProgram(instructions).run
        theirs = LibpcapFilter(instructions)
        accepted = sum(1 for frame in frames if ours(frame))
        if accepted != sum(1 for frame in frames if theirs(frame)):
            raise SystemExit(f"verdicts differ for {expression!r}")
        ours_rate = rate(lambda fs, run=ours: [run(f) for f in fs], frames, args.rounds, 20.0)
        theirs_rate = rate(lambda fs, run=theirs: [run(f) for f in fs], frames, args.rounds, 20.0)
        print(
            f"{expression or '(empty)':56} {len(instructions):5} {accepted:8} "
            f"{ours_rate:12,.0f} {theirs_rate:12,.0f} {ours_rate / theirs_rate:5.2f}x"
        )


if __name__ == "__main__":
    main()
