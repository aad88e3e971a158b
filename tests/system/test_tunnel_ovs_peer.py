"""Native tunnelling against Open vSwitch 3.1's userspace datapath as the far end.

Host A is set up as in :mod:`tests.system.test_tunnel_netns` (pvs-vswitchd,
``br-int`` with a VM and a tunnel port, ``br-phy`` holding the underlay
address). Host B runs the real ``ovsdb-server`` and ``ovs-vswitchd``,
started by hand in its namespace under a temporary directory (never through
systemd, no kernel datapath: ``--disable-system``, ``datapath_type=netdev``)
and stopped by the pids they wrote. Its mirror image of host A's setup:
``br-phy`` with host B's end of the underlay veth as a system port and the
underlay address on the bridge's internal port, ``br-int`` with a tunnel
port back to host A, and the overlay address on ``br-int``'s internal port
(MTU 1450), where host B's kernel answers.

For vxlan, gre and geneve: ping and a TCP transfer with hashed bytes, both
ways; and the same ``ofproto/trace`` on both switches (an echo request into
the tunnel) gives the same ``Datapath actions:`` line, once the addresses
and port numbers that differ by side are named by their role.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.interop.ovs_sandbox import SCHEMA, require_ovs
from tests.system.netns import NetnsLab, ip
from tests.system.test_tunnel_netns import (
    A_IP,
    B_IP,
    B_OVERLAY_IP,
    KEY,
    OVERLAY_MTU,
    UNDERLAY,
    VM_IP,
    Hosts,
    build_host_a,
    hashed_transfer,
    ping_until,
    received,
    two_hosts,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.netns, pytest.mark.ovs]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int, grace: float = 10) -> None:
    """SIGTERM ``pid``, then SIGKILL if it is still there after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class OvsPeer:
    """ovsdb-server and ovs-vswitchd (userspace datapath only) inside namespace ``ns``."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="pvs-ovspeer-"))
        self.env = {
            **os.environ,
            **{f"OVS_{what}DIR": str(self.dir) for what in ("RUN", "LOG", "DB", "SYSCONF")},
            "OVS_PKGDATADIR": str(self.dir),
        }
        self.pids: list[int] = []

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """One Open vSwitch program inside the namespace, against this instance (30 s at most)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, *argv],
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        return done

    def _adopt(self, daemon: str) -> None:
        pidfile = self.dir / f"{daemon}.pid"
        self.pids.append(int(pidfile.read_text().strip()))

    def start(self) -> None:
        db = self.dir / "conf.db"
        self.run("ovsdb-tool", "create", str(db), str(SCHEMA))
        self.run("ovsdb-server", "--detach", "--no-chdir", "--pidfile", "--log-file",
                 f"--remote=punix:{self.dir / 'db.sock'}", str(db))  # fmt: skip
        self._adopt("ovsdb-server")
        self.vsctl("--no-wait", "init")
        self.run("ovs-vswitchd", "--disable-system", "--detach", "--no-chdir", "--pidfile",
                 "--log-file", f"unix:{self.dir / 'db.sock'}")  # fmt: skip
        self._adopt("ovs-vswitchd")

    def stop(self) -> None:
        """Stop both daemons by their pids (newest first) and remove the directory."""
        for pid in reversed(self.pids):
            stop_pid(pid)
        self.pids.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def vsctl(self, *args: str) -> str:
        return self.run(
            "ovs-vsctl", "--timeout=30", f"--db=unix:{self.dir / 'db.sock'}", *args
        ).stdout

    def appctl(self, *args: str) -> str:
        return self.run("ovs-appctl", "--timeout=30", *args).stdout

    def log_tail(self, chars: int = 8000) -> str:
        log = self.dir / "ovs-vswitchd.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


@contextlib.contextmanager
def ovs_on_host_b(hosts: Hosts) -> Iterator[OvsPeer]:
    """Open vSwitch running on host B, stopped however the test ends."""
    peer = OvsPeer(hosts.host_b)
    try:
        peer.start()
        try:
            yield peer
        except BaseException:
            print(f"--- ovs-vswitchd.log on host B:\n{peer.log_tail()}")
            raise
    finally:
        peer.stop()


def build_host_b(peer: OvsPeer, hosts: Hosts, kind: str) -> None:
    """Host B as host A, with Open vSwitch: the overlay address on br-int's own port."""
    peer.vsctl(
        "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev",
        "--", "set", "Interface", "br-int", f"mtu_request={OVERLAY_MTU}",
        "--", "add-port", "br-int", "tun0",
        "--", "set", "Interface", "tun0", f"type={kind}",
        f"options:remote_ip={A_IP}", f"options:key={KEY}",
        "--", "add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
        "--", "add-port", "br-phy", hosts.b_nic,
    )  # fmt: skip
    # The underlay address moves from the NIC to the bridge port, as the
    # userspace tunnelling guide says.
    ip("addr", "flush", "dev", hosts.b_nic, netns=hosts.host_b)
    ip("addr", "add", f"{B_IP}/24", "dev", "br-phy", netns=hosts.host_b)
    ip("link", "set", "br-phy", "up", netns=hosts.host_b)
    ip("addr", "add", f"{B_OVERLAY_IP}/24", "dev", "br-int", netns=hosts.host_b)
    ip("link", "set", "br-int", "up", netns=hosts.host_b)


def _normalized(actions: str, names: dict[str, str]) -> str:
    """A ``Datapath actions:`` line with side-specific values named by role."""
    for value, role in names.items():
        actions = actions.replace(value, role)
    actions = re.sub(r"(?<![0-9a-f:])([0-9a-f]{2}:){5}[0-9a-f]{2}", "MAC", actions)
    actions = re.sub(r"tnl_port\(\d+\)", "tnl_port(N)", actions)
    actions = re.sub(r"out_port\(\d+\)\),\d+", "out_port(N)),M", actions)
    return re.sub(r"udp\(src=\d+", "udp(src=S", actions)


def _datapath_actions(trace: str) -> str:
    found = re.search(r"^Datapath actions: (.*)$", trace, re.MULTILINE)
    assert found, trace
    return found.group(1)


def mac_of(ns: str, dev: str) -> str:
    found = re.search(r"link/ether ([0-9a-f:]{17})", ip("link", "show", dev, netns=ns))
    assert found
    return found.group(1)


@pytest.mark.parametrize("kind", ["vxlan", "gre", "geneve"])
def test_open_vswitch_as_the_far_end(kind: str, lab: NetnsLab, tmp_path: Path) -> None:
    require_ovs()
    with two_hosts(lab, tmp_path) as hosts, ovs_on_host_b(hosts) as peer:
        build_host_a(hosts, kind)
        build_host_b(peer, hosts, kind)
        # Both daemons mirror the kernel's routes; wait until both have the underlay's.
        route = f"{UNDERLAY}.0/24 dev br-phy"
        wait_for("pvs-vswitchd's underlay route", lambda: route in hosts.appctl("ovs/route/show"))
        wait_for("ovs-vswitchd's underlay route", lambda: route in peer.appctl("ovs/route/show"))

        ping_until(hosts.vm, B_OVERLAY_IP)
        assert received(hosts.vm, B_OVERLAY_IP) == 5
        assert received(hosts.host_b, VM_IP) == 5

        hashed_transfer(hosts.vm, hosts.host_b, B_OVERLAY_IP)
        hashed_transfer(hosts.host_b, hosts.vm, VM_IP)

        # The same packet into the tunnel on each side: an echo request from
        # the VM (host B's br-int port) to the other side's overlay address,
        # whose MAC both bridges have learned by now.
        vm_mac = mac_of(hosts.vm, "eth0")
        b_mac = mac_of(hosts.host_b, "br-int")
        ours = hosts.appctl(
            "ofproto/trace", "br-int",
            f"in_port={hosts.vm_port},icmp,dl_src={vm_mac},dl_dst={b_mac},"
            f"nw_src={VM_IP},nw_dst={B_OVERLAY_IP},nw_ttl=64",
        )  # fmt: skip
        theirs = peer.appctl(
            "ofproto/trace", "br-int",
            f"in_port=LOCAL,icmp,dl_src={b_mac},dl_dst={vm_mac},"
            f"nw_src={B_OVERLAY_IP},nw_dst={VM_IP},nw_ttl=64",
        )  # fmt: skip
        ours_actions = _normalized(_datapath_actions(ours), {A_IP: "LOCAL", B_IP: "REMOTE"})
        theirs_actions = _normalized(_datapath_actions(theirs), {B_IP: "LOCAL", A_IP: "REMOTE"})
        assert "tnl_push(" in ours_actions, ours
        assert ours_actions == theirs_actions, f"ours:\n{ours}\nOpen vSwitch's:\n{theirs}"
