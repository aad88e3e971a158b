"""The switch benchmark runs end to end and leaves nothing behind.

Speeds are never asserted: only that a quick run of the direct-veth row
writes its files, that its numbers are consistent with each other (nothing
delivered that was not offered, a median no larger than the 99th
percentile), and that its namespaces are gone afterwards.
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

import pytest

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
