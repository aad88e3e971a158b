"""The reference document's compute node on real network namespaces.

Fig. 1.1 of the reference document, built with the tools a user would type:

* namespace ``<prefix>node`` is the compute node. pvs-vswitchd runs inside it
  with ``br-int`` and ``br-eth1``, so their internal ports and every device
  name of the story (``tap-vm1``, ``eth1``, ``int-br-eth1``...) live there and
  nothing is added to the machine's own namespace;
* three VMs are namespaces on veth pairs whose node ends are ``br-int``
  ports: ``vm1`` and ``vm2`` belong to tenant A (local VLAN 1), ``vm3`` to
  tenant B (local VLAN 2);
* ``br-eth1``'s ``eth1`` is a veth to the physical network: a second
  pvs-vswitchd in namespace ``<prefix>tor`` plays the top-of-rack switch,
  which delivers provider VLAN 101 and 102 to the two interfaces of the
  ``<prefix>out`` namespace (the outside router). A switch plays it because
  802.1Q interfaces need the kernel's 8021q module, which not every machine
  has; the frames on ``eth1`` carry real tags either way;
* the bridges are joined by the patch pair ``int-br-eth1``/``phy-br-eth1`` and
  carry the VLAN translation flows the OpenStack OVS agent installs.

Then the two bridges are rewired through a veth pair with the same names and
OpenFlow port numbers, the same traffic runs, and the difference is shown.
Everything is named with a per-run prefix and removed at the end, also on
Ctrl-C or SIGTERM; ``./run cleanup`` finds leftovers by the ``pvs-`` prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

#: Tenant: (local VLAN on br-int, provider VLAN on eth1, subnet, gateway).
TENANTS = {
    "A": (1, 101, "192.0.2", "192.0.2.1"),
    "B": (2, 102, "198.51.100", "198.51.100.1"),
}
VMS = {"vm1": ("A", 11), "vm2": ("A", 12), "vm3": ("B", 13)}
#: OpenFlow port numbers of the link between the bridges, kept when it is rewired.
INT_OFPORT, PHY_OFPORT = 10, 10
IPERF_SECONDS = 4


def can_run() -> str | None:
    """None when this process can build the demo on namespaces, else why not."""
    if os.geteuid() != 0:
        return "not running as root"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespaces on this machine"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    if shutil.which("ping") is None:
        return "ping is not installed"
    return None


def agent_flows() -> dict[str, list[str]]:
    """The OVS agent's flows for VLAN provider networks, in ovs-ofctl's syntax."""
    flows: dict[str, list[str]] = {"br-int": [], "br-eth1": []}
    for local, provider, _, _ in TENANTS.values():
        flows["br-int"].append(
            f"priority=3,in_port=int-br-eth1,dl_vlan={provider},"
            f"actions=mod_vlan_vid:{local},NORMAL"
        )
        flows["br-eth1"].append(
            f"priority=4,in_port=phy-br-eth1,dl_vlan={local},actions=mod_vlan_vid:{provider},NORMAL"
        )
    flows["br-int"].append("priority=2,in_port=int-br-eth1,actions=drop")
    flows["br-eth1"].append("priority=2,in_port=phy-br-eth1,actions=drop")
    return flows


def _run(argv: list[str], timeout: float = 60, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise DemoError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


@dataclass
class Daemon:
    """One pvs-vswitchd inside a namespace, with our tools pointed at it."""

    netns: str
    rundir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = (self.rundir / "pvs-vswitchd.log").open("wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-m", "pyvswitch.vswitchd.daemon",
             "--rundir", str(self.rundir), "--pidfile"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        while not (self.rundir / "pvs-vswitchd.ctl").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"pvs-vswitchd in {self.netns} did not start; see {log.name}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tool(self, name: str, *args: str, check: bool = True) -> str:
        env_args = ["env", f"PVS_RUNDIR={self.rundir}", sys.executable, "-m"]
        return _run([*env_args, f"pyvswitch.cli.{name}", *args], check=check)

    def vsctl(self, *args: str) -> str:
        return self.tool("vsctl", "--timeout=30", *args)

    def ofctl(self, *args: str) -> str:
        return self.tool("ofctl", *args)

    def appctl(self, *args: str) -> str:
        return self.tool("appctl", *args)


@dataclass
class Lab:
    """Namespaces and daemons of one run, all removed by :meth:`close`."""

    prefix: str = field(default_factory=lambda: "pvs-" + secrets.token_hex(2) + "-")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pvs-demo-")))
    namespaces: list[str] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)

    def netns(self, role: str) -> str:
        name = self.prefix + role
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        # The story is told in IPv4. Without IPv6 the hosts send no router
        # solicitations or MLD reports on their own, so the flows and the
        # counters shown are the demo's traffic and nothing else.
        for scope in ("all", "default"):
            _run(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
                  f"net.ipv6.conf.{scope}.disable_ipv6=1"])  # fmt: skip
        return name

    def veth(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        """A veth pair from interface a[1] in namespace a[0] to b[1] in b[0], both up."""
        _run(["ip", "-n", a[0], "link", "add", a[1], "type", "veth", "peer", "name", b[1],
              "netns", b[0]])  # fmt: skip
        for ns, name in (a, b):
            _run(["ip", "-n", ns, "link", "set", name, "up"])

    def daemon(self, netns: str, name: str) -> Daemon:
        daemon = Daemon(netns, self.workdir / name)
        self.daemons.append(daemon)
        daemon.start()
        return daemon

    def close(self) -> None:
        for daemon in self.daemons:
            with contextlib.suppress(Exception):
                daemon.stop()
        for ns in self.namespaces:
            _run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def in_ns(ns: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def ping(ns: str, address: str, count: int = 3) -> int:
    """Echo replies received (of ``count``)."""
    done = in_ns(ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", address)
    found = re.search(r"(\d+) received", done.stdout)
    return int(found.group(1)) if found else 0


def iperf(client_ns: str, server_ns: str, address: str) -> tuple[float, int] | None:
    """(Gbit/s, bytes) of one TCP stream for a few seconds; None without iperf3 or on failure."""
    if shutil.which("iperf3") is None:
        return None
    server = subprocess.Popen(
        # timeout bounds the server even if the demo is killed outright.
        [
            "ip",
            "netns",
            "exec",
            server_ns,
            "timeout",
            str(IPERF_SECONDS + 40),
            "iperf3",
            "-s",
            "-1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        try:
            # timeout bounds the client even if the demo is killed outright
            # (an iperf3 whose namespace was deleted spins instead of exiting).
            done = in_ns(
                client_ns, "timeout", str(IPERF_SECONDS + 20), "iperf3", "-c", address,
                "-t", str(IPERF_SECONDS), "-J", "--connect-timeout", "3000",
                timeout=IPERF_SECONDS + 30,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0:
            return None
        received = json.loads(done.stdout)["end"]["sum_received"]
        return float(received["bits_per_second"]) / 1e9, int(received["bytes"])
    finally:
        if server.poll() is None:
            # SIGTERM, which timeout passes on to iperf3 (a SIGKILL would
            # leave iperf3 behind its killed parent).
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
        server.wait(10)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM ends the demo the way Ctrl-C does, so cleanup runs for both."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ComputeNode:
    """The topology, built and rewired through pvs-vsctl and pvs-ofctl."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.node = lab.netns("node")
        self.tor_ns = lab.netns("tor")
        self.out = lab.netns("out")
        self.vm_ns = {vm: lab.netns(vm) for vm in VMS}
        self.sw = lab.daemon(self.node, "node")
        self.tor = lab.daemon(self.tor_ns, "tor")

    def build(self) -> None:
        sw, tor = self.sw, self.tor
        sw.vsctl("add-br", "br-int", "--", "add-br", "br-eth1")
        for vm, (tenant, host) in VMS.items():
            local, _, subnet, _ = TENANTS[tenant]
            self.lab.veth((self.node, f"tap-{vm}"), (self.vm_ns[vm], "eth0"))
            _run(["ip", "-n", self.vm_ns[vm], "addr", "add", f"{subnet}.{host}/24", "dev", "eth0"])
            sw.vsctl("add-port", "br-int", f"tap-{vm}", f"tag={local}")
        # The physical network: eth1 is a trunk to the top-of-rack switch,
        # which hands each provider VLAN to one interface of the router.
        self.lab.veth((self.node, "eth1"), (self.tor_ns, "tor-eth1"))
        sw.vsctl("add-port", "br-eth1", "eth1")
        tor.vsctl("add-br", "br-tor", "--", "add-port", "br-tor", "tor-eth1")
        for name, (_, provider, _, gateway) in TENANTS.items():
            inside, outside = f"net{name.lower()}", f"tor-{name.lower()}"
            self.lab.veth((self.out, inside), (self.tor_ns, outside))
            _run(["ip", "-n", self.out, "addr", "add", f"{gateway}/24", "dev", inside])
            tor.vsctl("add-port", "br-tor", outside, f"tag={provider}")
        self.join("patch")
        for bridge, flows in agent_flows().items():
            for flow in flows:
                sw.ofctl("add-flow", bridge, flow)

    def join(self, kind: str) -> None:
        """Join br-int and br-eth1 by a patch pair or a veth pair, same names and numbers."""
        sw = self.sw
        with contextlib.suppress(DemoError):
            sw.vsctl("--if-exists", "del-port", "int-br-eth1", "--",
                     "--if-exists", "del-port", "phy-br-eth1")  # fmt: skip
        if kind == "patch":
            sw.vsctl(
                "add-port", "br-int", "int-br-eth1", "--",
                "set", "Interface", "int-br-eth1", "type=patch", "options:peer=phy-br-eth1",
                f"ofport_request={INT_OFPORT}", "--",
                "add-port", "br-eth1", "phy-br-eth1", "--",
                "set", "Interface", "phy-br-eth1", "type=patch", "options:peer=int-br-eth1",
                f"ofport_request={PHY_OFPORT}",
            )  # fmt: skip
        else:
            self.lab.veth((self.node, "int-br-eth1"), (self.node, "phy-br-eth1"))
            sw.vsctl(
                "add-port", "br-int", "int-br-eth1", "--",
                "set", "Interface", "int-br-eth1", f"ofport_request={INT_OFPORT}", "--",
                "add-port", "br-eth1", "phy-br-eth1", "--",
                "set", "Interface", "phy-br-eth1", f"ofport_request={PHY_OFPORT}",
            )  # fmt: skip

    def traffic(self) -> dict[str, int]:
        """Pings: within tenant A, each VM to its tenant's outside router."""
        results = {"vm1 -> vm2": ping(self.vm_ns["vm1"], "192.0.2.12")}
        for vm, (tenant, _) in VMS.items():
            results[f"{vm} -> outside"] = ping(self.vm_ns[vm], TENANTS[tenant][3])
        results["vm3 -> vm1 (other tenant)"] = ping(self.vm_ns["vm3"], "192.0.2.11", count=1)
        return results

    def measure_tcp(self) -> Throughput | None:
        """iperf3 from vm1 to the outside, with the compute node's cost per packet and per GB.

        Lookups come from ``dpif/show``'s hit and missed counters, packets
        from eth1's counters (every packet of the run crosses eth1, once): one
        lookup per packet across patch ports, two across a veth pair.
        """
        proc = self.sw.proc
        assert proc is not None
        lookups, packets, cpu = self._lookups(), self._eth1_packets(), cpu_seconds(proc.pid)
        run = iperf(self.vm_ns["vm1"], self.out, "192.0.2.1")
        if run is None:
            return None
        gbps, nbytes = run
        lookups = self._lookups() - lookups
        packets = self._eth1_packets() - packets
        cpu = cpu_seconds(proc.pid) - cpu
        return Throughput(gbps, lookups / max(packets, 1), cpu / max(nbytes / 1e9, 1e-9))

    def _lookups(self) -> int:
        found = re.search(r"hit:(\d+) missed:(\d+)", self.sw.appctl("dpif/show"))
        if found is None:
            raise DemoError("dpif/show printed no lookup counters")
        return int(found.group(1)) + int(found.group(2))

    def _eth1_packets(self) -> int:
        text = self.sw.ofctl("dump-ports", "br-eth1", "eth1")
        counts = re.findall(r"[rt]x pkts=(\d+)", text)
        if len(counts) != 2:
            raise DemoError(f"dump-ports printed no counters for eth1: {text}")
        return sum(map(int, counts))

    def capture_on_patch(self) -> str:
        """What pvs-tcpdump shows on the patch port while vm1 pings the outside.

        No device ever sees these frames (the crossing happens inside the
        datapath's one megaflow), so tcpdump on the host cannot show them.
        On the patch, requests carry tenant A's local VLAN (1: NORMAL tags
        them for the trunk) and replies the provider VLAN (101: br-int's
        agent flow turns it into 1 only after the crossing). Hence ``vlan and
        icmp``: tcpdump's ``icmp`` alone does not look inside a VLAN tag.
        """
        argv = [
            "env", f"PVS_RUNDIR={self.sw.rundir}", sys.executable, "-m", "pyvswitch.cli.tcpdump",
            "-i", "int-br-eth1", "-c", "4", "-n", "-e", "vlan", "and", "icmp",
        ]  # fmt: skip
        capture = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            time.sleep(1.0)  # the capture attaches before the pings start
            ping(self.vm_ns["vm1"], TENANTS["A"][3], count=2)
            out, _ = capture.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            capture.terminate()
            out, _ = capture.communicate(timeout=10)
        finally:
            # Also on Ctrl-C: the capture must not outlive the demo.
            if capture.poll() is None:
                capture.kill()
                capture.wait(10)
        return out

    def icmp_flows(self) -> list[str]:
        return [
            line
            for line in self.sw.appctl("dpctl/dump-flows").splitlines()
            if "eth_type(0x0800)" in line and "ipv4(" in line
        ]


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.rstrip("\n").splitlines())


@dataclass
class Throughput:
    """One iperf3 run through the compute node, and what it cost the switch."""

    gbps: float
    lookups_per_packet: float
    cpu_seconds_per_gb: float


@dataclass
class Outcome:
    """What one wiring (patch or veth) gave."""

    pings: dict[str, int]
    flows: int
    tcp: Throughput | None

    def as_expected(self) -> bool:
        return all(got == _expected(what) for what, got in self.pings.items())


def _expected(what: str) -> int:
    return 0 if "other tenant" in what else 3


def story(node: ComputeNode) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    sw = node.sw
    print("== building Fig. 1.1 with pvs-vsctl and pvs-ofctl")
    node.build()
    print("$ pvs-vsctl show")
    print(_indent(sw.vsctl("show")))
    for bridge in ("br-int", "br-eth1"):
        print(f"$ pvs-ofctl dump-flows {bridge} --no-stats")
        print(_indent(sw.ofctl("dump-flows", bridge, "--no-stats")))
    for kind in ("patch", "veth"):
        if kind == "veth":
            print(
                "\n== rewiring br-int <-> br-eth1 through a veth pair (same names, same ofports)"
            )
            node.join("veth")
            # So that the flows and counts shown next are this wiring's alone.
            sw.appctl("dpctl/del-flows")
        print(f"\n== traffic, bridges joined by {kind} ports")
        pings = node.traffic()
        for what, got in pings.items():
            verdict = "ok" if got == _expected(what) else "UNEXPECTED"
            print(f"   ping {what}: {got} replies ({verdict})")
        flows = node.icmp_flows()
        print(f"$ pvs-appctl dpctl/dump-flows   (the {len(flows)} IPv4 flows)")
        print(_indent("\n".join(flows)))
        if kind == "patch":
            vm1_mac = _mac(node.vm_ns["vm1"], "eth0")
            gateway_mac = _mac(node.out, "neta")
            print("$ pvs-appctl ofproto/trace br-int in_port=tap-vm1,icmp,... (vm1 -> outside)")
            print(
                _indent(
                    sw.appctl(
                        "ofproto/trace",
                        "br-int",
                        f"in_port=tap-vm1,icmp,dl_src={vm1_mac},dl_dst={gateway_mac},"
                        "nw_src=192.0.2.11,nw_dst=192.0.2.1,icmp_type=8",
                    )
                )
            )
            for bridge, port in (("br-int", "int-br-eth1"), ("br-eth1", "phy-br-eth1")):
                print(f"$ pvs-ofctl dump-ports {bridge} {port}")
                print(_indent(sw.ofctl("dump-ports", bridge, port)))
            print(
                "$ pvs-tcpdump -i int-br-eth1 -c 4 -n -e vlan and icmp   (vm1 pings the outside)"
            )
            print(_indent(node.capture_on_patch()))
        tcp = node.measure_tcp()
        print(f"   iperf3 vm1 -> outside, {IPERF_SECONDS} s, one TCP stream: ", end="")
        if tcp is None:
            print("skipped (iperf3 not installed, or it failed)")
        else:
            print(
                f"{tcp.gbps:.2f} Gbit/s, {tcp.lookups_per_packet:.2f} datapath lookups per "
                f"packet, {tcp.cpu_seconds_per_gb:.2f} s of switch CPU per GB"
            )
        results[kind] = Outcome(pings, len(flows), tcp)
    return results


def _mac(ns: str, ifname: str) -> str:
    found = re.search(r"link/ether (\S+)", _run(["ip", "-n", ns, "link", "show", ifname]))
    if found is None:
        raise DemoError(f"{ifname} in {ns} has no MAC address")
    return found.group(1)


def main() -> int:
    """Build, run and tear down; 0 when every ping did what it should."""
    lab = Lab()
    print(
        "pyvswitch demo: the compute node of Fig. 1.1 of the reference document, "
        '"OVS Deep Dive 4:\nOVS netdev and Patch Port", on '
        f"network namespaces named {lab.prefix}*, driven by pvs-vsctl, pvs-ofctl and\n"
        "pvs-appctl.\n"
    )
    try:
        with interruptible():
            results = story(ComputeNode(lab))
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up")
        return 130
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        lab.close()
    patch, veth = results["patch"], results["veth"]
    print("\n== patch vs veth")
    print(f"   IPv4 datapath flows: patch {patch.flows}, veth {veth.flows}")
    if patch.tcp is not None and veth.tcp is not None:
        p, v = patch.tcp, veth.tcp
        print(f"   datapath lookups per packet: patch {p.lookups_per_packet:.2f}, "
              f"veth {v.lookups_per_packet:.2f}")  # fmt: skip
        print(f"   switch CPU per GB:           patch {p.cpu_seconds_per_gb:.2f} s, "
              f"veth {v.cpu_seconds_per_gb:.2f} s")  # fmt: skip
        print(f"   TCP vm1 -> outside:          patch {p.gbps:.2f}, veth {v.gbps:.2f} Gbit/s "
              "(one run each; the top-of-rack switch, a second pvs-vswitchd, is in the path "
              "too)")  # fmt: skip
    ok = patch.as_expected() and veth.as_expected()
    print("\nall pings behaved as expected" if ok else "\nsome pings did not behave as expected")
    return 0 if ok else 1
