"""Namespaces, links and processes of one benchmark row, all removed when it ends.

A row of the switch benchmark gets namespaces of its own: ``cli`` (the
sender: iperf3 client, ping, trafgen), ``srv`` (the receiver) and, for every
switch, ``sw`` (the switch and all its ports). Every name starts with the
run's ``pvs-`` prefix and the row's number, links included, so parallel runs
never collide and ``./run cleanup`` finds leftovers. Links are created inside
the namespaces, never in the machine's own one, and addresses come from
198.51.100.0/24 (the hosts, or the overlay of the VXLAN rows) and
203.0.113.0/24 (the VXLAN rows' underlay) only. Daemons keep their pid files
directly in a ``pvs-*`` temporary directory, where ``./run cleanup`` looks
for them.

Processes are started through :meth:`RowLab.spawn` and stopped by their pid
in :meth:`RowLab.close`, which the row's ``with`` block runs also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Longest interface name the kernel accepts (IFNAMSIZ - 1).
IFNAMSIZ = 15
#: Bounds for stopping a process: polite wait, then SIGKILL and a last wait.
STOP_WAIT = 10.0

NET = "198.51.100"
CLIENT_IP = f"{NET}.1"
SERVER_IP = f"{NET}.2"
#: The destination of generated frames: on the server's subnet but nobody's
#: address, so the server's kernel counts and drops them without answering.
BLACKHOLE_IP = f"{NET}.99"

#: The VXLAN rows' underlay: the client side's tunnel endpoint (``.1``) and the
#: server's (``.2``); the hosts' addresses above are then the overlay's.
UNDERLAY = "203.0.113"
CLIENT_UNDERLAY_IP = f"{UNDERLAY}.1"
SERVER_UNDERLAY_IP = f"{UNDERLAY}.2"
#: The VXLAN network identifier every VXLAN row uses, and its UDP port.
VNI = 42
VXLAN_PORT = 4789
#: VXLAN over IPv4 adds 50 bytes (Ethernet 14, IPv4 20, UDP 8, VXLAN 8), and
#: neither switch fragments outer packets: the overlay's MTU on a 1500-byte
#: underlay.
OVERLAY_MTU = 1450


class BenchError(RuntimeError):
    """A step of a row failed; the message says which and why."""


def run(argv: list[str], timeout: float = 60, check: bool = True, **kw: Any) -> str:
    """Run a command, bounded in time; a failure names the command and its error."""
    try:
        done: subprocess.CompletedProcess[str] = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=timeout, **kw
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv)}: no answer in {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        why = done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
        raise BenchError(f"{' '.join(argv)}: {why}")
    return done.stdout


def in_ns(ns: str, *argv: str, timeout: float = 60, check: bool = True) -> str:
    """Run a command inside namespace ``ns``."""
    return run(["ip", "netns", "exec", ns, *argv], timeout=timeout, check=check)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int) -> None:
    """SIGTERM, a bounded wait, then SIGKILL: for daemons that detached themselves."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the process group a child of :meth:`RowLab.spawn` leads.

    A group, because some programs work in children of their own: trafgen's
    sending happens in a forked worker, and ``timeout`` runs its command as
    a child. A group outlives its leader while any member lives, and the
    kernel does not reuse its number meanwhile, so this is safe after the
    leader has exited too.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


def stop_proc(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child we started and its group, by its pid, and reap it."""
    signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(STOP_WAIT)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        proc.wait(STOP_WAIT)


@dataclass
class RowLab:
    """What one row made: namespaces, processes, pid files and directories."""

    prefix: str
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pidfiles: list[Path] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)

    def __enter__(self) -> RowLab:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def name(self, role: str) -> str:
        """An interface or bridge name of this row (at most 15 characters)."""
        name = f"{self.prefix}{role}"
        if len(name) > IFNAMSIZ:
            raise BenchError(f"interface name {name!r} is longer than {IFNAMSIZ} characters")
        return name

    def netns(self, role: str) -> str:
        """A new namespace with loopback up and IPv6 off.

        IPv6 is off so that the kernel's own chatter (router solicitations,
        MLD reports, neighbour discovery) neither reaches the switches nor
        counts as delivered frames.
        """
        ns = f"{self.prefix}-{role}"
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        in_ns(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
              "net.ipv6.conf.default.disable_ipv6=1")  # fmt: skip
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        return ns

    def veth(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        """A veth pair from ``a[1]`` in namespace ``a[0]`` to ``b[1]`` in ``b[0]``, both up."""
        run(["ip", "-n", a[0], "link", "add", a[1], "type", "veth", "peer", "name", b[1],
             "netns", b[0]])  # fmt: skip
        for ns, dev in (a, b):
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    def address(self, ns: str, dev: str, address: str) -> None:
        run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev])

    def vxlan(self, ns: str, dev: str, lower: str, local: str, remote: str) -> None:
        """A kernel VXLAN device ``dev`` in ``ns`` (VNI :data:`VNI`, UDP port
        :data:`VXLAN_PORT`) from ``local`` to ``remote`` over ``lower``, with
        the overlay MTU, up.

        It lives in its namespace, which :meth:`close` deletes with it.
        """
        run(["ip", "-n", ns, "link", "add", dev, "type", "vxlan", "id", str(VNI), "remote",
             remote, "local", local, "dstport", str(VXLAN_PORT), "dev", lower])  # fmt: skip
        run(["ip", "-n", ns, "link", "set", dev, "mtu", str(OVERLAY_MTU), "up"])

    def mtu(self, ns: str, dev: str, mtu: int) -> None:
        run(["ip", "-n", ns, "link", "set", dev, "mtu", str(mtu)])

    def tempdir(self, role: str) -> Path:
        """A private directory (mode 0700) for a daemon's database, sockets and pid files."""
        path = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-{role}-"))
        self.dirs.append(path)
        return path

    def spawn(self, argv: list[str], log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a background process, leading a process group of its own, that
        :meth:`close` stops by its pid (see :func:`signal_group`)."""
        if log is None:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        else:
            with log.open("wb") as out:
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def adopt(self, pidfile: Path) -> int:
        """Read the pid a detached daemon wrote, and stop it in :meth:`close`."""
        self.pidfiles.append(pidfile)
        return int(pidfile.read_text().strip())

    def close(self) -> None:
        """Stop every process (newest first), then remove namespaces and directories."""
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                stop_proc(proc)
        for pidfile in reversed(self.pidfiles):
            with contextlib.suppress(FileNotFoundError, ValueError):
                stop_pid(int(pidfile.read_text().strip()))
        for ns in self.namespaces:
            run(["ip", "netns", "del", ns], check=False, timeout=30)
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.procs.clear()
        self.pidfiles.clear()
        self.namespaces.clear()
        self.dirs.clear()


def mac_of(ns: str, dev: str) -> str:
    info = json.loads(run(["ip", "-n", ns, "-j", "link", "show", dev]))
    return str(info[0]["address"])


def link_stats(ns: str, dev: str) -> dict[str, dict[str, int]]:
    """The device's 64-bit counters: {'rx': {...}, 'tx': {...}}."""
    info = json.loads(run(["ip", "-n", ns, "-s", "-j", "link", "show", dev]))
    stats = info[0]["stats64"]
    return {"rx": dict(stats["rx"]), "tx": dict(stats["tx"])}


#: The offload features a row reports, by ``ethtool -k`` name and short label.
#: TSO is read from its IPv4 feature, ``tx-tcp-segmentation``: the aggregate
#: line ``tcp-segmentation-offload`` of ethtool 6.1 also counts features of
#: newer kernels (``tx-tcp-accecn-segmentation``) and says "on" when TSO is off.
OFFLOADS = {
    "tx-checksumming": "tx-csum",
    "rx-checksumming": "rx-csum",
    "tx-tcp-segmentation": "TSO",
    "generic-segmentation-offload": "GSO",
    "generic-receive-offload": "GRO",
}


def offloads(ns: str, dev: str) -> dict[str, bool]:
    """Which of :data:`OFFLOADS` are on for ``dev``, as ``ethtool -k`` reports them."""
    found: dict[str, bool] = {}
    for line in in_ns(ns, "ethtool", "-k", dev, timeout=20).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in OFFLOADS:
            found[OFFLOADS[key.strip()]] = value.split()[0] == "on" if value.split() else False
    return found


def checksum_offload_off(ns: str, dev: str) -> None:
    """Turn off transmit checksum offload, and with it TSO, which depends on it."""
    in_ns(ns, "ethtool", "-K", dev, "tx", "off", timeout=20)
