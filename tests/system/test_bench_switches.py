"""The switch benchmark runs end to end and leaves nothing behind.

Speeds are never asserted: only that a quick run of the direct-veth row
(and of the VXLAN rows of the kernel and pyvswitch) writes its files, that
its numbers are consistent with each other (nothing delivered that was not
offered, a median no larger than the 99th percentile), and that its
namespaces and processes are gone afterwards. The report's VXLAN ratios are
checked on made-up rows, without namespaces.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from benchmarks import switch_report

from tests.system.netns import can_use_netns, ip

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_switches", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.netns
def test_quick_direct_veth_row_writes_sane_results(tmp_path: Path) -> None:
    why = can_use_netns()
    if why:
        pytest.skip(f"network namespaces unavailable: {why}")
    missing = [t for t in ("iperf3", "trafgen", "ethtool", "ss") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (./run bench installs them)")
    out = tmp_path / "results"

    done = bench("--quick", "--only", "^veth-direct$", "--out", str(out))

    assert done.returncode == 0, done.stderr
    run_prefix = re.search(r"namespaces (pvs-[0-9a-f]+)\*", done.stdout)
    assert run_prefix, done.stdout
    assert run_prefix.group(1) not in ip("netns", "list")
    data = json.loads((out / "results.json").read_text())
    [row] = data["rows"]
    assert row["name"] == "veth-direct"
    assert row["error"] is None
    assert row["tcp"]["median_gbps"] > 0
    [sample] = row["pps"]["samples"]
    assert 0 < sample["delivered"] <= sample["offered"]
    assert 0 <= row["pps"]["loss"] < 1
    assert row["ping"]["received"] > 0
    assert 0 < row["ping"]["median_us"] <= row["ping"]["p99_us"]
    # The client's and the server's veth ends, nothing else, all named for this run.
    assert len(row["offloads"]) == 2
    assert all(name.startswith(run_prefix.group(1)) for name in row["offloads"])
    assert all("tx-csum" in flags for flags in row["offloads"].values())
    table = (out / "results.md").read_text()
    assert re.search(r"^\| veth-direct \| veth pair \|", table, re.MULTILINE), table
    if importlib.util.find_spec("matplotlib") is not None:
        for plot in ("tcp_vs_n.png", "pps_vs_n.png"):
            assert (out / plot).read_bytes().startswith(b"\x89PNG")


def _pids_with(text: str) -> list[str]:
    """Pids of processes whose command line contains ``text``."""
    found = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True, check=False)
    return found.stdout.split()


@pytest.mark.netns
def test_sigterm_while_the_generator_runs_leaves_nothing_behind(tmp_path: Path) -> None:
    """A SIGTERM in the middle of a frame run stops the generator before its
    namespace goes (a trafgen whose device is deleted spins forever), writes
    what was measured and exits 130."""
    why = can_use_netns()
    if why:
        pytest.skip(f"network namespaces unavailable: {why}")
    if shutil.which("trafgen") is None or shutil.which("iperf3") is None:
        pytest.skip("trafgen or iperf3 missing (./run bench installs them)")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "benchmarks.bench_switches", "--quick",
         "--only", "^veth-direct$", "--out", str(tmp_path / "results")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        found = re.search(r"namespaces (pvs-[0-9a-f]+)\*", proc.stdout.readline())
        assert found
        prefix = found.group(1)
        deadline = time.monotonic() + 60
        while not _pids_with(f"trafgen --dev {prefix}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pids_with(f"trafgen --dev {prefix}"), "the generator never started"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not _pids_with(f"trafgen --dev {prefix}")
    assert prefix not in ip("netns", "list")
    assert (tmp_path / "results" / "results.json").exists()


def test_a_pattern_that_selects_no_row_is_refused() -> None:
    done = bench("--only", "no-such-row")
    assert done.returncode == 2
    assert "no row matches --only 'no-such-row'" in done.stderr


def test_a_bad_pattern_is_refused() -> None:
    done = bench("--only", "ovs-(")
    assert done.returncode != 0
    assert "--only 'ovs-(' is not a regex" in done.stderr


def test_quick_selects_at_most_two_bridges() -> None:
    done = bench("--quick", "--list")
    assert done.returncode == 0
    names = done.stdout.split()
    assert "pvs-patch-2" in names
    assert "ovs-tso-veth-2" in names
    assert not [n for n in names if n.endswith(("-4", "-8"))]


@pytest.mark.netns
def test_quick_vxlan_rows_build_measure_and_compare(tmp_path: Path) -> None:
    """The kernel's and pyvswitch's VXLAN rows: both carry pings, TCP and
    frames to the server's kernel VXLAN device, the report compares them, and
    nothing of the run is left (namespaces, pvs-vswitchd, iperf3, trafgen)."""
    why = can_use_netns()
    if why:
        pytest.skip(f"network namespaces unavailable: {why}")
    missing = [t for t in ("iperf3", "trafgen", "ethtool", "ss") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (./run bench installs them)")
    out = tmp_path / "results"

    done = bench("--quick", "--only", "^vxlan-(kernel|pvs)$", "--out", str(out), timeout=300)

    assert done.returncode == 0, done.stderr
    run_prefix = re.search(r"namespaces (pvs-[0-9a-f]+)\*", done.stdout)
    assert run_prefix, done.stdout
    assert run_prefix.group(1) not in ip("netns", "list")
    assert not _pids_with(run_prefix.group(1))
    data = json.loads((out / "results.json").read_text())
    rows = {row["name"]: row for row in data["rows"]}
    assert sorted(rows) == ["vxlan-kernel", "vxlan-pvs"]
    if "Unknown device type" in (rows["vxlan-kernel"]["error"] or ""):
        pytest.skip(f"this kernel cannot make a vxlan device: {rows['vxlan-kernel']['error']}")
    for row in rows.values():
        assert row["tunnel"] == "vxlan"
        assert row["error"] is None, row
        assert row["tcp"]["median_gbps"] > 0, row["tcp"]
        [sample] = row["pps"]["samples"]
        assert 0 < sample["delivered"] <= sample["offered"], sample
        assert row["ping"]["received"] > 0
        # The server's kernel VXLAN device and its underlay veth are recorded.
        server_devices = [n for n in row["offloads"] if n.endswith(("s", "ub"))]
        assert len(server_devices) == 2, row["offloads"]
    # pyvswitch's CPU time is measured; the kernel has no process.
    assert rows["vxlan-pvs"]["pps"]["cpu_s_per_mpkt"] > 0
    assert rows["vxlan-kernel"]["pps"]["cpu_s_per_mpkt"] is None
    report = (out / "results.md").read_text()
    assert "## VXLAN between two namespaces" in report
    assert re.search(r"^\| vxlan-pvs \| pyvswitch \| br-int \+ br-phy", report, re.MULTILINE)
    assert re.search(r"^\| pyvswitch / kernel vxlan \| [0-9.]+ \| [0-9.]+ \|", report,
                     re.MULTILINE), report  # fmt: skip
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "vxlan.png").read_bytes().startswith(b"\x89PNG")
        # No plain row was run: no empty plots against N.
        assert not (out / "tcp_vs_n.png").exists()


def _row(
    name: str, switch: str, tunnel: str, gbps: float, pps: float, rtt: float
) -> dict[str, Any]:
    """A made-up merged row with just what the report reads."""
    return {
        "name": name, "switch": switch, "label": name, "setting": "default offloads",
        "chain": "patch", "bridges": 1, "topology": "1", "tunnel": tunnel,
        "offload_setting": "default", "notes": [], "error": None,
        "offload_summary": {"hosts": "", "ports": ""},
        "tcp": {"gbps": [gbps], "median_gbps": gbps},
        "pps": {"samples": [{"seconds": 1.0, "offered": pps * 2, "delivered": pps,
                             "cpu": 1.0}],
                "offered_pps": pps * 2, "delivered_pps": pps, "loss": 0.5,
                "cpu_s_per_mpkt": 1e6 / pps},
        "ping": {"median_us": rtt, "p99_us": rtt},
    }  # fmt: skip


def test_vxlan_ratios_compare_the_vxlan_rows_only() -> None:
    rows = [
        _row("pvs-1br", "pvs", "", 8.0, 100_000, 400),
        _row("linux-bridge", "linux", "", 16.0, 200_000, 50),
        _row("vxlan-kernel", "linux", "vxlan", 10.0, 160_000, 100),
        _row("vxlan-ovs-csumoff", "ovs", "vxlan", 0.5, 100_000, 300),
        _row("vxlan-pvs", "pvs", "vxlan", 0.25, 50_000, 600),
    ]
    rows[2]["pps"]["cpu_s_per_mpkt"] = None  # the kernel has no process to measure
    data = {
        "rows": rows, "started": "now", "seconds": 1.0,
        "machine": {"cpus": 2, "cpu": "x", "kernel": "k", "ovs": "o", "pyvswitch": "p"},
        "settings": {"rounds": 1, "tcp_seconds": 1, "tcp_omit": 1, "pps_seconds": 1,
                     "ping_count": 1, "ping_interval": 0.01},
    }  # fmt: skip

    report = switch_report.markdown(data)

    # TCP, delivered frames, round trip, CPU per frame.
    assert "| pyvswitch / Open vSwitch 3.1 userspace | 0.50 | 0.50 | 2.00 | 2.00 |" in report
    assert "| pyvswitch / kernel vxlan | 0.025 | 0.31 | 6.00 | — |" in report
    # The plain rows' ratio is not taken from the VXLAN rows.
    assert "| pyvswitch / Linux bridge | 0.50 | 0.50 | 8.00 |" in report
    main, vxlan = report.split("## VXLAN between two namespaces")
    assert "vxlan-pvs" not in main.split("## Ratios")[0]
    assert "| vxlan-pvs |" in vxlan
