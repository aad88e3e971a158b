"""Switches side by side on real namespaces: veth, Linux bridge, Open vSwitch, pyvswitch.

Run as root: ``./run bench`` (or ``.venv/bin/python -m benchmarks.bench_switches``).

Every row builds its own namespaces: a client and a server, each on a veth
pair, and between them nothing (the direct veth, the ceiling), the Linux
bridge, Open vSwitch 3.1's userspace datapath or pyvswitch, each switch
running inside a namespace of its own. Open vSwitch and pyvswitch then chain
N = 1, 2, 4, 8 bridges, joined by patch ports or by veth pairs. Each row
measures ping round trips, iperf3 TCP throughput and 64-byte frames per
second offered (trafgen) and delivered, with the switch's CPU time per
million frames, and records the veths' offload settings; then it tears
everything down. Rows are measured in rounds, every row once per round, so
that other work on the machine spreads over all of them; the table gives
medians over the rounds. See ``docs/performance.md`` for the method and the
figures.

Open vSwitch 3.1's userspace datapath leaves the partial checksums of a veth
with default offloads unfinished, so TCP through it fails; its rows run with
transmit checksum offload (and so TSO) off on the hosts' veths, and once
more with ``other_config:userspace-tso-enable=true`` and default offloads,
its best setting. One row with default offloads shows the failure. pyvswitch
runs with the default offloads.

Three more rows (``vxlan-*``) put the client and the server on two sides of
a VXLAN tunnel (VNI 42) over an underlay veth: the server's end is always a
kernel VXLAN device, the client's is the kernel (a Linux bridge and a VXLAN
device), Open vSwitch 3.1 or pyvswitch, both with native tunnelling
(``br-int`` and ``br-phy``). Open vSwitch 3.1 pops no frame whose checksums
a kernel peer left unfinished and pushes none it read so, with or without
userspace TSO; its VXLAN row therefore has transmit checksum offload off on
every device of both hosts.

Options: ``--quick`` (N in {1, 2}, one round, short runs: about three
minutes), ``--only REGEX`` (rows whose name it matches), ``--out DIR``
(default ``benchmarks/results/<timestamp>``). Output: ``results.md``,
``results.json`` (every raw number) and PNG plots. Every loop and wait is
bounded; every namespace and link is named ``pvs-<run>...`` and removed,
also on Ctrl-C or SIGTERM; processes are stopped by their pids.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import switch_report
from benchmarks.switch_rows import FULL, QUICK, RowSpec, all_rows, merge, run_round
from benchmarks.switches import OpenVswitch

if TYPE_CHECKING:
    from types import FrameType

HERE = Path(__file__).resolve().parent
#: A one-minute load average above this before the run means other work
#: competes with the generator and the switches for the CPUs.
BUSY = 0.5
TOOLS = ("ip", "ping", "ss", "ethtool", "iperf3", "trafgen", "timeout")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""

    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return (
            (done.stdout or done.stderr).strip().splitlines()[0]
            if done.returncode == 0
            else "unknown"
        )

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[0],
        "cpu": cpu,
        "ovs": first_line(["ovs-vswitchd", "--version"]),
        "iperf3": first_line(["iperf3", "--version"]),
        "trafgen": first_line(["trafgen", "--version"]),
        "pyvswitch": pyvswitch_version(),
    }


def pyvswitch_version() -> str:
    """The commit measured, marked when the working tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(HERE.parent), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()  # fmt: skip

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head} with uncommitted changes" if dirty else head


def missing_requirements(rows: list[RowSpec]) -> list[str]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if any(r.switch == "ovs" for r in rows):
        missing += OpenVswitch.missing()
    return missing


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_switches", description=(__doc__ or "").splitlines()[0]
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="N in {1, 2}, one round, short runs")
    add("--only", metavar="REGEX", help="only the rows whose name REGEX matches (re.search)")
    add("--out", type=Path, metavar="DIR", help="results folder (default results/<timestamp>)")
    add("--list", action="store_true", help="print the selected rows' names and exit")
    return parser.parse_args(argv)


def select_rows(args: argparse.Namespace) -> list[RowSpec]:
    rows = all_rows()
    if args.quick:
        rows = [r for r in rows if r.bridges <= 2]
    if args.only:
        try:
            pattern = re.compile(args.only)
        except re.error as exc:
            raise SystemExit(
                f"bench_switches: --only {args.only!r} is not a regex: {exc}"
            ) from exc
        rows = [r for r in rows if pattern.search(r.name)]
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = select_rows(args)
    if args.list:
        print("\n".join(r.name for r in rows))
        return 0
    if not rows:
        print(f"bench_switches: no row matches --only {args.only!r} (see --list)", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench_switches: needs root (network namespaces)", file=sys.stderr)
        return 2
    missing = missing_requirements(rows)
    if missing:
        print(f"bench_switches: missing {', '.join(missing)} (./run bench installs them)",
              file=sys.stderr)  # fmt: skip
        return 2

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGTERM and SIGHUP end the run like Ctrl-C, through the rows' cleanup.
    # Ctrl-C's own handler is set too: a process started in the background by
    # a non-interactive shell begins with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    durations = QUICK if args.quick else FULL
    started = datetime.now().astimezone()
    out = args.out or HERE / "results" / started.strftime("%Y%m%d-%H%M%S")
    run_id = secrets.token_hex(2)
    data: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "settings": vars(durations),
        "machine": machine(),
    }
    print(f"{len(rows)} rows, {durations.rounds} rounds, namespaces pvs-{run_id}*; "
          f"results in {out}")  # fmt: skip
    load = float(data["machine"]["loadavg_before"])
    if load > BUSY:
        print(f"warning: load average {load:.2f}: other work shares the CPUs, expect noise")
    clock = time.monotonic()
    rounds: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in rows}
    status = 0
    try:
        for number in range(durations.rounds):
            for index, spec in enumerate(rows):
                # The round and the row are in every name, so a row whose
                # teardown failed cannot collide with a later one.
                got = run_round(spec, f"pvs-{run_id}{number}{index:02d}", durations)
                rounds[spec.name].append(got)
                print(f"{number + 1}/{durations.rounds} {spec.name:22} {progress(got)}",
                      flush=True)  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted: cleaned up; writing the rounds measured so far", file=sys.stderr)
        status = 130
    data["seconds"] = time.monotonic() - clock
    data["machine"]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[0]
    data["rows"] = [merge(spec, rounds[spec.name]) for spec in rows if rounds[spec.name]]
    written = switch_report.write(data, out)
    if not any(p.suffix == ".png" for p in written):
        print("plots skipped: matplotlib is not installed (./run bench installs it)")
    print("\n".join(f"wrote {p}" for p in written))
    return status


def progress(got: dict[str, Any]) -> str:
    """One round of one row, in a few words."""
    if got["error"]:
        return f"FAILED: {got['error']}"
    tcp, pps, ping = got.get("tcp", {}), got.get("pps", {}), got.get("ping", {})
    parts = [
        f"TCP {tcp['gbps'][0]:.2f} Gbit/s" if "gbps" in tcp else "TCP failed",
        "pps failed" if "samples" not in pps else
        f"{pps['samples'][0]['delivered'] / pps['samples'][0]['seconds'] / 1e3:.1f} kpps",
        f"{ping['received']}/{ping['sent']} pings" if "sent" in ping else "ping failed",
    ]  # fmt: skip
    return f"{', '.join(parts)}  ({got['seconds']:.0f} s)"


if __name__ == "__main__":
    sys.exit(main())
