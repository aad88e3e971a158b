"""The README's first command, as root: the compute node on real namespaces."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.system.netns import can_use_netns

pytestmark = pytest.mark.netns


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def _prefix(output: str) -> str:
    found = re.search(r"network namespaces named (pvs-[0-9a-f]+-)\*", output)
    assert found, output
    return found.group(1)


@pytest.fixture(autouse=True)
def _needs_netns() -> None:
    why = can_use_netns()
    if why:
        pytest.skip(f"network namespaces unavailable: {why}")


def test_demo_on_namespaces_tells_the_patch_versus_veth_story() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pyvswitch.demo"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "all pings behaved as expected" in out, out
    assert out.count("ping vm3 -> vm1 (other tenant): 0 replies (ok)") == 2
    assert out.count("ping vm1 -> outside: 3 replies (ok)") == 2
    # The heart of the reference document: one datapath flow per direction
    # across both bridges by patch, one per bridge by veth. Three VMs talk to
    # the outside (2 directions each) and vm1 to vm2 (2 flows on br-int alone).
    assert "IPv4 datapath flows: patch 8, veth 14" in out, out
    # The trace crosses the patch and the agent's flow rewrites the VLAN.
    assert 'bridge("br-eth1")' in out
    assert "mod_vlan_vid:101" in out
    assert re.search(r"Datapath actions: push_vlan\(vid=101,pcp=0\),\d+", out)
    # Exact counters on both ends of the patch: what one sends, the other receives.
    ports = re.findall(r"rx pkts=(\d+), bytes=(\d+),.*\n\s+tx pkts=(\d+), bytes=(\d+)", out)
    assert len(ports) == 2
    (int_rx, int_rxb, int_tx, int_txb), (phy_rx, phy_rxb, phy_tx, phy_txb) = ports
    assert (int_tx, int_txb) == (phy_rx, phy_rxb)
    assert (int_rx, int_rxb) == (phy_tx, phy_txb)
    assert int(int_tx) > 0
    # pvs-tcpdump on the patch port, where no device sees the frames: both
    # directions, requests in the local VLAN, replies still in the provider's.
    assert "4 packets captured" in out
    assert re.search(r"vlan 1, .*ICMP echo request", out)
    assert re.search(r"vlan 101, .*ICMP echo reply", out)
    # Measured on the iperf3 run: each packet is looked up once across the
    # patch, twice across the veth pair (a kernel trip in between).
    if shutil.which("iperf3"):
        found = re.search(r"datapath lookups per packet: patch ([\d.]+), veth ([\d.]+)", out)
        assert found, out
        assert float(found.group(1)) < 1.1
        assert float(found.group(2)) > 1.9
    # Everything the demo made is gone.
    assert _namespaces(_prefix(out)) == []


def test_demo_cleans_up_when_stopped_midway() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvswitch.demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("== traffic"):
                proc.send_signal(signal.SIGTERM)
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = "".join(seen) + rest
    assert "interrupted: cleaning up" in out
    assert proc.returncode == 130
    assert _namespaces(_prefix(out)) == []
