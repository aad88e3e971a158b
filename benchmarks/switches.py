"""The switches under test, each started inside the row's ``sw`` namespace.

* :class:`LinuxBridge`: the kernel's bridge (``ip link add type bridge``);
* :class:`OpenVswitch`: Open vSwitch's own ovsdb-server and ovs-vswitchd,
  started by hand with ``--detach`` and a private run directory (never the
  init system, and with ``--disable-system`` so the kernel datapath is never
  asked for); its bridges use the userspace datapath (``datapath_type=netdev``)
  and its ports are veth ends, opened as ``system`` ports;
* :class:`Pyvswitch`: pvs-vswitchd, configured with pvs-vsctl.

Both virtual switches build the same chain with the same ``ovs-vsctl``
command line: ``n`` bridges in a row, joined by patch pairs or by veth pairs,
the client's port on the first bridge and the server's on the last. Every
bridge runs its default flow (NORMAL). Running the switch inside a namespace
keeps its bridges' internal ports (and Open vSwitch's ``ovs-netdev`` device)
out of the machine's own namespace.

For the VXLAN rows each switch is instead the client side's tunnel end
(:meth:`build_vxlan`): the two virtual switches with native tunnelling, as
OVS's userspace tunnelling guide sets it up and with the same ``ovs-vsctl``
command line (``br-int`` with the client's port and a vxlan port, ``br-phy``
with the underlay veth and the tunnel endpoint address on its internal
port), the kernel with a Linux bridge joining the client's port to a kernel
VXLAN device.
"""

from __future__ import annotations

import os
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.switchlab import (
    CLIENT_UNDERLAY_IP,
    SERVER_UNDERLAY_IP,
    UNDERLAY,
    VNI,
    BenchError,
    run,
)

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable

    from benchmarks.switchlab import RowLab

OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
OVS_PROGRAMS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl")
#: How long a daemon may take to start and answer.
START_LIMIT = 30.0
#: How long a switch may take to mirror the kernel's route to the underlay.
ROUTE_LIMIT = 15.0


def chain_commands(
    lab: RowLab, sw: str, kind: str, n: int, ends: tuple[str, str], datapath_type: str = ""
) -> tuple[list[str], list[str]]:
    """``ovs-vsctl`` arguments for a chain of ``n`` bridges, and the veths it needs.

    The veth pairs between bridges (``kind == "veth"``) are created here, in
    namespace ``sw``; the returned list names their ends.
    """
    bridges = [lab.name(f"b{i}") for i in range(1, n + 1)]
    args: list[str] = []
    for bridge in bridges:
        args += ["--", "add-br", bridge]
        if datapath_type:
            args += ["--", "set", "Bridge", bridge, f"datapath_type={datapath_type}"]
    args += ["--", "add-port", bridges[0], ends[0], "--", "add-port", bridges[-1], ends[1]]
    links: list[str] = []
    for i, (left, right) in enumerate(pairwise(bridges), start=1):
        if kind == "patch":
            a, b = lab.name(f"p{i}a"), lab.name(f"p{i}b")
            args += [
                "--", "add-port", left, a,
                "--", "set", "Interface", a, "type=patch", f"options:peer={b}",
                "--", "add-port", right, b,
                "--", "set", "Interface", b, "type=patch", f"options:peer={a}",
            ]  # fmt: skip
        else:
            a, b = lab.name(f"v{i}a"), lab.name(f"v{i}b")
            lab.veth((sw, a), (sw, b))
            links += [a, b]
            args += ["--", "add-port", left, a, "--", "add-port", right, b]
    return args[1:], links


def vxlan_commands(
    lab: RowLab, ends: tuple[str, str], datapath_type: str = ""
) -> tuple[list[str], str, str]:
    """``ovs-vsctl`` arguments for a VXLAN tunnel end, and its two bridges' names.

    ``br-int`` (here ``<prefix>bi``) gets the client's port ``ends[0]`` and a
    vxlan port to the server's underlay address with VNI :data:`VNI`;
    ``br-phy`` (``<prefix>bp``) gets the underlay veth ``ends[1]``.
    """
    bint, bphy, tun = lab.name("bi"), lab.name("bp"), lab.name("vx")
    args = ["add-br", bint]
    if datapath_type:
        args += ["--", "set", "Bridge", bint, f"datapath_type={datapath_type}"]
    args += [
        "--", "add-port", bint, ends[0],
        "--", "add-port", bint, tun,
        "--", "set", "Interface", tun, "type=vxlan",
        f"options:remote_ip={SERVER_UNDERLAY_IP}", f"options:key={VNI}",
        "--", "add-br", bphy,
    ]  # fmt: skip
    if datapath_type:
        args += ["--", "set", "Bridge", bphy, f"datapath_type={datapath_type}"]
    args += ["--", "add-port", bphy, ends[1]]
    return args, bint, bphy


def tunnel_endpoint(
    lab: RowLab, sw: str, bridges: tuple[str, str], appctl: Callable[..., str]
) -> None:
    """The endpoint address on ``br-phy``'s internal port, both bridges up, and a
    bounded wait until the switch has mirrored the kernel's route to the underlay
    (before it, the first packets would find no route)."""
    bint, bphy = bridges
    lab.address(sw, bphy, CLIENT_UNDERLAY_IP)
    for bridge in (bint, bphy):
        run(["ip", "-n", sw, "link", "set", bridge, "up"])
    route = f"{UNDERLAY}.0/24 dev {bphy}"
    deadline = time.monotonic() + ROUTE_LIMIT
    while route not in (shown := appctl("ovs/route/show")):
        if time.monotonic() > deadline:
            raise BenchError(
                f"no route {route!r} in ovs/route/show after {ROUTE_LIMIT:.0f} s: {shown!r}"
            )
        time.sleep(0.2)


class LinuxBridge:
    """The kernel's bridge, one of it, with the two ports."""

    label = "Linux bridge"

    def start(self, lab: RowLab, sw: str) -> None:
        """Nothing runs: the kernel forwards."""

    def build(self, lab: RowLab, sw: str, kind: str, n: int, ends: tuple[str, str]) -> list[str]:
        if n != 1 or kind not in {"patch", "veth"}:
            raise BenchError("the Linux bridge rows use one bridge")
        bridge = lab.name("b1")
        run(["ip", "-n", sw, "link", "add", bridge, "type", "bridge"])
        for port in ends:
            run(["ip", "-n", sw, "link", "set", port, "master", bridge])
        run(["ip", "-n", sw, "link", "set", bridge, "up"])
        return []

    def build_vxlan(self, lab: RowLab, sw: str, ends: tuple[str, str]) -> list[str]:
        """A bridge joining the client's port to a kernel VXLAN device over ``ends[1]``,
        which holds the endpoint address itself (the kernel needs no ``br-phy``)."""
        bridge, tun = lab.name("b1"), lab.name("vx")
        lab.address(sw, ends[1], CLIENT_UNDERLAY_IP)
        lab.vxlan(sw, tun, ends[1], CLIENT_UNDERLAY_IP, SERVER_UNDERLAY_IP)
        run(["ip", "-n", sw, "link", "add", bridge, "type", "bridge"])
        for port in (ends[0], tun):
            run(["ip", "-n", sw, "link", "set", port, "master", bridge])
        run(["ip", "-n", sw, "link", "set", bridge, "up"])
        return [tun]

    def pids(self) -> list[int]:
        return []

    def notes(self) -> list[str]:
        return []


class OpenVswitch:
    """Open vSwitch 3.1's userspace datapath, with or without userspace TSO."""

    label = "Open vSwitch userspace"

    def __init__(self, tso: bool) -> None:
        self.tso = tso
        self.dir = Path()
        self.env: dict[str, str] = {}
        self._pids: list[int] = []

    @staticmethod
    def missing() -> list[str]:
        """Open vSwitch programs (or its schema) this machine lacks."""
        from shutil import which

        gone = [p for p in OVS_PROGRAMS if which(p) is None]
        return gone + ([str(OVS_SCHEMA)] if not OVS_SCHEMA.exists() else [])

    def ovs(self, *argv: str, ns: str | None = None) -> str:
        prefix = ["ip", "netns", "exec", ns] if ns else []
        return run([*prefix, *argv], env=self.env, cwd=self.dir, timeout=START_LIMIT)

    def vsctl(self, *args: str) -> str:
        return self.ovs("ovs-vsctl", "--timeout=30", f"--db=unix:{self.dir / 'db.sock'}", *args)

    def start(self, lab: RowLab, sw: str) -> None:
        self.dir = lab.tempdir("ovs")
        self.env = {
            **os.environ,
            **{
                f"OVS_{what}DIR": str(self.dir)
                for what in ("RUN", "LOG", "DB", "SYSCONF", "PKGDATA")
            },
        }
        db = self.dir / "conf.db"
        self.ovs("ovsdb-tool", "create", str(db), str(OVS_SCHEMA))
        self.ovs("ovsdb-server", "--detach", "--no-chdir", "--pidfile", "--log-file",
                 f"--remote=punix:{self.dir / 'db.sock'}", str(db), ns=sw)  # fmt: skip
        self._pids = [lab.adopt(self.dir / "ovsdb-server.pid")]
        self.vsctl("--no-wait", "init")
        # Open vSwitch reads this setting once, when ovs-vswitchd starts.
        tso = "true" if self.tso else "false"
        self.vsctl(
            "--no-wait", "set", "Open_vSwitch", ".", f"other_config:userspace-tso-enable={tso}"
        )
        self.ovs("ovs-vswitchd", "--disable-system", "--detach", "--no-chdir", "--pidfile",
                 "--log-file", f"unix:{self.dir / 'db.sock'}", ns=sw)  # fmt: skip
        self._pids.append(lab.adopt(self.dir / "ovs-vswitchd.pid"))

    def build(self, lab: RowLab, sw: str, kind: str, n: int, ends: tuple[str, str]) -> list[str]:
        args, links = chain_commands(lab, sw, kind, n, ends, datapath_type="netdev")
        self.vsctl(*args)
        return links

    def appctl(self, *args: str) -> str:
        return self.ovs("ovs-appctl", "--timeout=30", *args)

    def build_vxlan(self, lab: RowLab, sw: str, ends: tuple[str, str]) -> list[str]:
        args, bint, bphy = vxlan_commands(lab, ends, datapath_type="netdev")
        self.vsctl(*args)
        tunnel_endpoint(lab, sw, (bint, bphy), self.appctl)
        return []

    def pids(self) -> list[int]:
        return list(self._pids)

    def notes(self) -> list[str]:
        """What ovs-vswitchd's log says about userspace TSO: proof the setting took."""
        log = self.dir / "ovs-vswitchd.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        enabled = "Segmentation Offloading support enabled" in text
        if self.tso and not enabled:
            raise BenchError("ovs-vswitchd did not log that userspace TSO is enabled")
        return ["ovs-vswitchd: userspace TSO enabled"] if enabled else []


class Pyvswitch:
    """pvs-vswitchd in the ``sw`` namespace, configured with pvs-vsctl."""

    label = "pyvswitch"

    def __init__(self) -> None:
        self.dir = Path()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, lab: RowLab, sw: str) -> None:
        self.dir = lab.tempdir("pvs")
        log = self.dir / "pvs-vswitchd.log"
        self.proc = lab.spawn(
            ["ip", "netns", "exec", sw, sys.executable, "-m", "pyvswitch.vswitchd.daemon",
             "--rundir", str(self.dir), "--pidfile"],
            log=log,
        )  # fmt: skip
        deadline = time.monotonic() + START_LIMIT
        while not (self.dir / "pvs-vswitchd.ctl").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"pvs-vswitchd did not start: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 5) -> str:
        log = self.dir / "pvs-vswitchd.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def vsctl(self, *args: str) -> str:
        env = {**os.environ, "PVS_RUNDIR": str(self.dir)}
        argv = [sys.executable, "-m", "pyvswitch.cli.vsctl", "--timeout=30", *args]
        return run(argv, env=env, timeout=60)

    def build(self, lab: RowLab, sw: str, kind: str, n: int, ends: tuple[str, str]) -> list[str]:
        args, links = chain_commands(lab, sw, kind, n, ends)
        self.vsctl(*args)
        return links

    def appctl(self, *args: str) -> str:
        env = {**os.environ, "PVS_RUNDIR": str(self.dir)}
        argv = [sys.executable, "-m", "pyvswitch.cli.appctl", *args]
        return run(argv, env=env, timeout=60)

    def build_vxlan(self, lab: RowLab, sw: str, ends: tuple[str, str]) -> list[str]:
        args, bint, bphy = vxlan_commands(lab, ends)
        self.vsctl(*args)
        tunnel_endpoint(lab, sw, (bint, bphy), self.appctl)
        return []

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def notes(self) -> list[str]:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"pvs-vswitchd exited: {self.log_tail()}")
        return []


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds used so far by the processes ``pids`` (all threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name may hold spaces; the fields after it are fixed.
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def alive(pids: list[int]) -> bool:
    return all(Path(f"/proc/{pid}").exists() for pid in pids)
