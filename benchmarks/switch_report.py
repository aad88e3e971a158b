"""Writing a switch benchmark's results: JSON, a Markdown table, ratios and PNG plots.

Everything here works from the JSON form of the results (``results.json``),
so ``python -m benchmarks.switch_report DIR`` redraws the table and the plots
of an earlier run without measuring again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

Row = dict[str, Any]

#: The curves of the plots: (switch, setting, chain kind, label).
CURVES = (
    ("pvs", "default offloads", "patch", "pyvswitch, patch chain"),
    ("pvs", "default offloads", "veth", "pyvswitch, veth chain"),
    ("ovs", "userspace TSO", "patch", "Open vSwitch (userspace TSO), patch chain"),
    ("ovs", "userspace TSO", "veth", "Open vSwitch (userspace TSO), veth chain"),
)


#: Headline numbers: name -> (part of the row, key in it).
METRICS = {
    "tcp": ("tcp", "median_gbps"),
    "offered_pps": ("pps", "offered_pps"),
    "delivered_pps": ("pps", "delivered_pps"),
    "loss": ("pps", "loss"),
    "cpu_s_per_mpkt": ("pps", "cpu_s_per_mpkt"),
    "median_us": ("ping", "median_us"),
    "p99_us": ("ping", "p99_us"),
}


def metric(row: Row, name: str) -> float | None:
    """One headline number of a row (None when it was not measured or failed)."""
    part, key = METRICS[name]
    value = row.get(part, {}).get(key)
    return None if value is None else float(value)


def find(rows: list[Row], switch: str, setting: str | None, kind: str, n: int) -> Row | None:
    """The row of ``switch`` (and ``setting``) with ``n`` bridges chained by ``kind``.

    One bridge is the start of both chains, so ``n == 1`` matches either kind.
    """
    for row in rows:
        if row["switch"] != switch or row["bridges"] != n:
            continue
        if setting is not None and row["setting"] != setting:
            continue
        if n == 1 or row["chain"] == kind:
            return row
    return None


def _fmt(value: float | None, spec: str, scale: float = 1.0, unit: str = "") -> str:
    return "—" if value is None else format(value * scale, spec) + unit


def _spread(median: float | None, values: list[float], spec: str) -> str:
    """The median and, when there were several runs, their range: ``7.6 (5.5-9.6)``."""
    if median is None:
        return "—"
    if len(values) < 2:
        return format(median, spec)
    return f"{median:{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def main_table(rows: list[Row]) -> list[str]:
    lines = [
        (
            "| row | switch | bridges | offloads | TCP Gbit/s (range) | offered kpps "
            "| delivered kpps (range) | loss | RTT median µs | RTT p99 µs | CPU s / Mpkt |"
        ),
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        tcp, pps = row.get("tcp", {}), row.get("pps", {})
        tcp_text = _spread(metric(row, "tcp"), tcp.get("gbps", []), ".2f")
        delivered = metric(row, "delivered_pps")
        kpps = [s["delivered"] / s["seconds"] / 1e3 for s in pps.get("samples", [])]
        pps_text = _spread(delivered and delivered / 1e3, kpps, ".0f")
        lines.append(
            f"| {row['name']} | {row['label']} | {row['topology']} | {row['offload_setting']} "
            f"| {'failed' if 'error' in tcp else tcp_text} "
            f"| {_fmt(metric(row, 'offered_pps'), '.0f', 1e-3)} "
            f"| {'failed' if 'error' in pps else pps_text} "
            f"| {_fmt(metric(row, 'loss'), '.1f', 100, '%')} "
            f"| {_fmt(metric(row, 'median_us'), '.0f')} | {_fmt(metric(row, 'p99_us'), '.0f')} "
            f"| {_fmt(metric(row, 'cpu_s_per_mpkt'), '.2f')} |"
        )
    return lines


def offload_table(rows: list[Row]) -> list[str]:
    lines = [
        "| row | hosts' veth ends (client, server) | switch's veth ends |",
        "|---|---|---|",
    ]
    for row in rows:
        hosts, ports = row["offload_summary"]["hosts"], row["offload_summary"]["ports"]
        lines.append(f"| {row['name']} | {hosts} | {ports or '—'} |")
    return lines


def problems(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        for part in ("setup", "ping", "tcp", "pps"):
            error = row.get("error") if part == "setup" else row.get(part, {}).get("error")
            if error:
                lines.append(f"- {row['name']}, {part}: {error}")
        lines += [f"- {row['name']}: {note}" for note in row.get("notes", [])]
    return lines


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}"


def ratios(rows: list[Row]) -> list[str]:
    """The issue's ratios, computed from this run's rows."""
    pvs1 = find(rows, "pvs", None, "patch", 1)
    ovs1 = find(rows, "ovs", "userspace TSO", "patch", 1)
    linux = find(rows, "linux", None, "patch", 1)
    lines = [
        "| ratio | TCP | delivered pps | RTT median (lower is better) |",
        "|---|--:|--:|--:|",
    ]
    for label, other in (
        ("pyvswitch / Open vSwitch userspace TSO, one bridge", ovs1),
        ("pyvswitch / Linux bridge", linux),
    ):
        if pvs1 is None or other is None:
            continue
        cells = [_ratio(metric(pvs1, m), metric(other, m)) for m in ("tcp", "delivered_pps")]
        cells.append(_ratio(metric(pvs1, "median_us"), metric(other, "median_us")))
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += [
        "",
        "| chain | N | TCP at N / at N=1 | delivered pps at N / at N=1 |",
        "|---|--:|--:|--:|",
    ]
    for switch, setting, kind, label in CURVES:
        first = find(rows, switch, setting, kind, 1)
        for n in (2, 4, 8):
            row = find(rows, switch, setting, kind, n)
            if first is None or row is None:
                continue
            tcp = _ratio(metric(row, "tcp"), metric(first, "tcp"))
            pps = _ratio(metric(row, "delivered_pps"), metric(first, "delivered_pps"))
            lines.append(f"| {label} | {n} | {tcp} | {pps} |")
    return lines


def markdown(data: dict[str, Any]) -> str:
    rows: list[Row] = data["rows"]
    host, setup = data["machine"], data["settings"]
    about = (
        f"Run {data['started']} on {host['cpus']} CPUs ({host['cpu']}), kernel "
        f"{host['kernel']}; {host['ovs']}; pyvswitch {host['pyvswitch']}. "
        f"Took {data['seconds']:.0f} s; load average {host.get('loadavg_before', '?')} "
        f"before, {host.get('loadavg_after', '?')} after."
    )
    method = (
        f"{setup['rounds']} rounds; in each, every row is built, measured once and torn down. "
        f"TCP: iperf3, one stream, {setup['tcp_seconds']} s after {setup['tcp_omit']} s "
        f"omitted. Frames: trafgen, 64 bytes, {setup['pps_seconds']} s. Ping: "
        f"{setup['ping_count']} echoes {setup['ping_interval'] * 1000:.0f} ms apart. "
        "Medians over the rounds (ranges in brackets). CPU: the switch's processes over "
        "the frame runs, per million frames delivered."
    )
    lines = [
        "# Switch benchmark results",
        "",
        about,
        "",
        method,
        "",
        *main_table(rows),
        "",
        "## Ratios",
        "",
        *ratios(rows),
        "",
        "## Offloads (ethtool -k at the time of the row)",
        "",
        *offload_table(rows),
    ]
    found = problems(rows)
    if found:
        lines += ["", "## Failures and notes", "", *found]
    return "\n".join(lines) + "\n"


def _values(row: Row, key: str) -> list[float]:
    """Every round's value of a plotted metric (for the range bars)."""
    if key == "tcp":
        return [float(g) for g in row["tcp"]["gbps"]]
    return [s["delivered"] / s["seconds"] for s in row["pps"]["samples"]]


def plots(data: dict[str, Any], out: Path) -> list[Path]:
    """TCP throughput and delivered frames per second against N; [] without matplotlib."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows: list[Row] = data["rows"]
    made = []
    for name, key, scale, unit in (
        ("tcp_vs_n.png", "tcp", 1.0, "TCP throughput, Gbit/s (one stream)"),
        ("pps_vs_n.png", "delivered_pps", 1e-3, "64-byte frames delivered, kpps"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        styles = (("C0", "o-"), ("C0", "s--"), ("C2", "o-"), ("C2", "s--"))
        for (switch, setting, kind, label), (color, style) in zip(CURVES, styles, strict=True):
            points = [
                (n, value * scale, [v * scale for v in _values(row, key)])
                for n in (1, 2, 4, 8)
                if (row := find(rows, switch, setting, kind, n)) is not None
                and (value := metric(row, key)) is not None
            ]
            if points:
                xs = [n for n, _, _ in points]
                ys = [y for _, y, _ in points]
                # The bars span the rounds' range around the median.
                bars = [[y - min(vs) for _, y, vs in points], [max(vs) - y for _, y, vs in points]]
                ax.errorbar(xs, ys, yerr=bars, fmt=style, color=color, label=label, capsize=3)
        for switch, label, color in (
            ("linux", "Linux bridge", "grey"),
            ("none", "veth direct", "black"),
        ):
            row = next((r for r in rows if r["switch"] == switch), None)
            value = metric(row, key) if row else None
            if value is not None:
                ax.axhline(value * scale, linestyle=":", color=color, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("bridges in the chain (N)")
        ax.set_ylabel(unit)
        ax.grid(visible=True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        made.append(out / name)
    return made


def write(data: dict[str, Any], out: Path) -> list[Path]:
    """results.json, results.md and the plots; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "results.md").write_text(markdown(data))
    return [out / "results.json", out / "results.md", *plots(data, out)]


def main() -> int:
    parser = argparse.ArgumentParser(description="Redraw a switch benchmark's table and plots.")
    parser.add_argument("dir", type=Path, help="a results folder with results.json")
    args = parser.parse_args()
    source = args.dir / "results.json"
    if not source.exists():
        print(f"no results.json in {args.dir}", file=sys.stderr)
        return 2
    for path in write(json.loads(source.read_text()), args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
