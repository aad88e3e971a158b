"""The three measurements of a row: ping round trips, TCP throughput, 64-byte frame rate.

* **Round trip**: ``ping`` from the client to the server, many echoes at a
  short interval; the median and the 99th percentile of the reported times.
* **TCP**: ``iperf3``, one stream from client to server for a few seconds
  after one omitted second (TCP's slow start); the rate the server received.
* **Frame rate**: ``trafgen`` (netsniff-ng) sends one 64-byte UDP frame (60
  bytes and the FCS the veth never carries) as fast as it can from the client
  for a few seconds, to the server's MAC address but an IP address nobody
  owns, so the server's kernel counts and drops it without answering. Offered
  is what the client's veth end transmitted (sent plus dropped there),
  delivered is what the server's end received: interface counters, read
  before and after. The switch's CPU use over the same time comes from
  ``/proc/PID/stat`` (user plus system time of all its threads).

Every external program runs under a time limit; the generator is also
bounded by a frame count, so it stops even if this process is killed.
"""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.switches import alive, cpu_seconds
from benchmarks.switchlab import (
    BLACKHOLE_IP,
    CLIENT_IP,
    SERVER_IP,
    STOP_WAIT,
    BenchError,
    in_ns,
    link_stats,
    mac_of,
    signal_group,
)

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.switchlab import RowLab

IPERF_PORT = 5201


def warm_up(cli: str, attempts: int = 5) -> None:
    """Ping until the path answers, so every bridge has learned both MAC addresses."""
    for _ in range(attempts):
        done = in_ns(cli, "ping", "-c", "3", "-i", "0.2", "-W", "2", SERVER_IP,
                     check=False, timeout=30)  # fmt: skip
        if re.search(r"\b[1-9]\d* received", done):
            return
    raise BenchError(f"no echo reply from {SERVER_IP} after {attempts} tries: no path")


@dataclass
class PingResult:
    sent: int
    received: int
    rtt_ms: list[float]

    def median_us(self) -> float | None:
        return statistics.median(self.rtt_ms) * 1000 if self.rtt_ms else None

    def p99_us(self) -> float | None:
        if not self.rtt_ms:
            return None
        ordered = sorted(self.rtt_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


def ping_rtt(cli: str, count: int, interval: float) -> PingResult:
    """``count`` echoes ``interval`` seconds apart; each reply's round trip."""
    out = in_ns(cli, "ping", "-n", "-c", str(count), "-i", f"{interval}", "-W", "1", SERVER_IP,
                check=False, timeout=count * interval + 30)  # fmt: skip
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
    sent = re.search(r"(\d+) packets transmitted", out)
    return PingResult(int(sent.group(1)) if sent else count, len(times), times)


def _listening(srv: str) -> bool:
    out = in_ns(srv, "ss", "-Hltn", f"sport = :{IPERF_PORT}", check=False, timeout=10)
    return bool(out.strip())


def tcp_run(lab: RowLab, cli: str, srv: str, seconds: int, omit: int) -> float:
    """Gbit/s the server received in one iperf3 run of one stream."""
    limit = seconds + omit + 15
    # The server runs one test (-1); ``timeout`` ends it if no client comes.
    server = lab.spawn(["timeout", str(limit + 30), "ip", "netns", "exec", srv,
                        "iperf3", "-s", "-1", "-B", SERVER_IP, "-p", str(IPERF_PORT)])  # fmt: skip
    for _ in range(100):
        if _listening(srv) or server.poll() is not None:
            break
        time.sleep(0.05)
    if not _listening(srv):
        raise BenchError("iperf3 server did not start listening")
    argv = ["iperf3", "-c", SERVER_IP, "-p", str(IPERF_PORT), "-t", str(seconds),
            "-O", str(omit), "-J", "--connect-timeout", "3000"]  # fmt: skip
    out = in_ns(cli, *argv, check=False, timeout=limit)
    try:
        report = json.loads(out)
    except json.JSONDecodeError as exc:
        raise BenchError(f"iperf3 printed no report: {out[:200]!r}") from exc
    if "error" in report:
        raise BenchError(f"iperf3: {report['error']}")
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e9


def trafgen_config(cli: str, cdev: str, srv: str, sdev: str, workdir: Path) -> Path:
    """A trafgen configuration: one 60-byte UDP frame from the client to the server's MAC.

    The frame is built with scapy, so its bytes (checksums included) do not
    depend on any code of ours.
    """
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frame = bytes(
        Ether(src=mac_of(cli, cdev), dst=mac_of(srv, sdev))
        / IP(src=CLIENT_IP, dst=BLACKHOLE_IP, ttl=64)
        / UDP(sport=1024, dport=9)
    )
    frame += bytes(60 - len(frame))
    path = workdir / "frame.trafgen"
    path.write_text("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n")
    return path


@dataclass
class PpsSample:
    seconds: float
    offered: int
    delivered: int
    #: CPU seconds the switch's processes used; None where the kernel forwards.
    cpu: float | None

    def offered_pps(self) -> float:
        return self.offered / self.seconds

    def delivered_pps(self) -> float:
        return self.delivered / self.seconds

    def loss(self) -> float:
        return 1 - self.delivered / self.offered if self.offered else 1.0

    def cpu_per_mpkt(self) -> float | None:
        if self.cpu is None or not self.delivered:
            return None
        return self.cpu / (self.delivered / 1e6)


#: Time for queues inside the switch to drain before the counters are read.
SETTLE = 0.5


#: trafgen's own bound: frames per second of its run it may send before it
#: stops by itself, far above what it reaches here (about 0.7 million).
GENERATOR_CAP = 10_000_000


def generate(lab: RowLab, cli: str, cdev: str, config: Path, seconds: int) -> float:
    """Run trafgen for ``seconds``; the seconds it really ran.

    trafgen is started directly (``ip netns exec`` becomes trafgen, so the
    pid is its own) and stopped with SIGINT, its way to finish, sent to its
    process group so its sending worker gets it. It must stop before the
    row's namespaces are deleted (a worker whose device has gone was seen to
    spin on), which :meth:`RowLab.close` ensures for an interrupted run.
    ``--num`` bounds it even if this process is killed.
    """
    proc = lab.spawn(["ip", "netns", "exec", cli, "trafgen", "--dev", cdev, "--in", str(config),
                      "--cpus", "1", "--num", str(GENERATOR_CAP * seconds), "--no-sock-mem",
                      "--notouch-irq", "--no-cpu-stats"])  # fmt: skip
    start = time.monotonic()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        # The worker that sends must see the SIGINT too, so the whole group.
        signal_group(proc, signal.SIGINT)
        try:
            proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired as exc:
            signal_group(proc, signal.SIGKILL)
            proc.wait(STOP_WAIT)
            raise BenchError("trafgen did not stop on SIGINT") from exc
    return time.monotonic() - start


def pps_run(
    lab: RowLab,
    ends: tuple[tuple[str, str], tuple[str, str]],
    config: Path,
    seconds: int,
    pids: list[int],
) -> PpsSample:
    """One run of the generator for ``seconds``, counted at both ends."""
    (cli, cdev), (srv, sdev) = ends
    sent0, got0 = link_stats(cli, cdev)["tx"], link_stats(srv, sdev)["rx"]
    cpu0 = cpu_seconds(pids) if pids else None
    elapsed = generate(lab, cli, cdev, config, seconds)
    time.sleep(SETTLE)
    if pids and not alive(pids):
        raise BenchError("the switch died under the generator's load")
    cpu = cpu_seconds(pids) - cpu0 if cpu0 is not None else None
    sent, got = link_stats(cli, cdev)["tx"], link_stats(srv, sdev)["rx"]
    offered = (sent["packets"] - sent0["packets"]) + (sent["dropped"] - sent0["dropped"])
    if offered <= 0:
        raise BenchError("trafgen sent nothing")
    return PpsSample(elapsed, offered, got["packets"] - got0["packets"], cpu)
