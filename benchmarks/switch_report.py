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
    """The plain row of ``switch`` (and ``setting``) with ``n`` bridges chained by ``kind``.

    One bridge is the start of both chains, so ``n == 1`` matches either kind.
    Tunnel rows never match: their switches do other work.
    """
    for row in rows:
        if row.get("tunnel") or row["switch"] != switch or row["bridges"] != n:
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


def plain_rows(rows: list[Row]) -> list[Row]:
    """The rows without a tunnel (results of older runs have no ``tunnel`` key)."""
    return [row for row in rows if not row.get("tunnel")]


def vxlan_rows(rows: list[Row]) -> list[Row]:
    return [row for row in rows if row.get("tunnel") == "vxlan"]


def main_table(rows: list[Row], columns: tuple[str, str] = ("switch", "bridges")) -> list[str]:
    """One line per row; ``columns`` names the label and topology columns."""
    lines = [
        (
            f"| row | {columns[0]} | {columns[1]} | offloads | TCP Gbit/s (range) | offered kpps "
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
        "| row | the hosts' devices (client, server) | the switch's devices |",
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
    """``a / b`` to two decimals, or two significant digits below 0.1 (0.019)."""
    if a is None or not b:
        return "—"
    return f"{a / b:.2f}" if a / b >= 0.1 else f"{a / b:.2g}"


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
    chains = []
    for switch, setting, kind, label in CURVES:
        first = find(rows, switch, setting, kind, 1)
        for n in (2, 4, 8):
            row = find(rows, switch, setting, kind, n)
            if first is None or row is None:
                continue
            tcp = _ratio(metric(row, "tcp"), metric(first, "tcp"))
            pps = _ratio(metric(row, "delivered_pps"), metric(first, "delivered_pps"))
            chains.append(f"| {label} | {n} | {tcp} | {pps} |")
    if chains:
        # A run without chains (``--only``) gets no empty table.
        lines += [
            "",
            "| chain | N | TCP at N / at N=1 | delivered pps at N / at N=1 |",
            "|---|--:|--:|--:|",
            *chains,
        ]
    return lines


#: What a VXLAN row is, for the report.
VXLAN_SETUP = (
    "The client (198.51.100.1, MTU 1450) sends over VXLAN (VNI 42, UDP port 4789) to the "
    "server's kernel VXLAN device (198.51.100.2) across an underlay veth (203.0.113.0/24). "
    "The client side's tunnel end, in its own namespace, is the kernel (a Linux bridge "
    "joining the client's veth to a VXLAN device), Open vSwitch 3.1's userspace datapath "
    "or pyvswitch (both with native tunnelling: br-int with the client's port and a vxlan "
    "port, br-phy with the underlay veth and the endpoint address on its internal port). "
    "Frames are counted as delivered on the server's VXLAN device."
)


def vxlan_ratios(rows: list[Row]) -> list[str]:
    """pyvswitch's VXLAN row against Open vSwitch's and the kernel's, of this run."""
    by_switch = {row["switch"]: row for row in vxlan_rows(rows)}
    ours = by_switch.get("pvs")
    lines = [
        (
            "| ratio | TCP | delivered pps | RTT median (lower is better) "
            "| CPU per frame (lower is better) |"
        ),
        "|---|--:|--:|--:|--:|",
    ]
    for switch, label in (("ovs", "Open vSwitch 3.1 userspace"), ("linux", "kernel vxlan")):
        other = by_switch.get(switch)
        if ours is None or other is None:
            continue
        cells = [
            _ratio(metric(ours, name), metric(other, name))
            for name in ("tcp", "delivered_pps", "median_us", "cpu_s_per_mpkt")
        ]
        lines.append(f"| pyvswitch / {label} | {' | '.join(cells)} |")
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
    lines = ["# Switch benchmark results", "", about, "", method]
    plain, tunnel = plain_rows(rows), vxlan_rows(rows)
    if plain or not tunnel:
        lines += ["", *main_table(plain), "", "## Ratios", "", *ratios(plain)]
    if tunnel:
        lines += [
            "",
            "## VXLAN between two namespaces",
            "",
            VXLAN_SETUP,
            "",
            *main_table(tunnel, ("client side's tunnel end", "setup")),
            "",
            *vxlan_ratios(tunnel),
        ]
    lines += [
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
    rows = plain_rows(data["rows"])
    made = [vxlan_plot(plt, vxlan_rows(data["rows"]), out)] if vxlan_rows(data["rows"]) else []
    if not rows:
        return made
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


#: The VXLAN rows' bars, top to bottom: (switch, label, colour).
VXLAN_BARS = (
    ("linux", "kernel vxlan", "grey"),
    ("ovs", "Open vSwitch 3.1", "C2"),
    ("pvs", "pyvswitch", "C0"),
)


def vxlan_plot(plt: Any, rows: list[Row], out: Path) -> Path:
    """``vxlan.png``: TCP and delivered frames of the VXLAN rows, side by side.

    The scales are linear on purpose: the kernel's bar dwarfing the others is
    the finding. Every bar carries its value, and its range over the rounds.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.2), dpi=100)
    by_switch = {row["switch"]: row for row in rows}
    for ax, key, scale, unit, spec in (
        (axes[0], "tcp", 1.0, "TCP, Gbit/s (one stream)", ".2f"),
        (axes[1], "delivered_pps", 1e-3, "64-byte frames delivered, kpps", ".0f"),
    ):
        bars = [
            (label, color, value * scale, [v * scale for v in _values(row, key)])
            for switch, label, color in VXLAN_BARS
            if (row := by_switch.get(switch)) is not None
            and (value := metric(row, key)) is not None
        ]
        ys = list(range(len(bars)))[::-1]
        values = [value for _, _, value, _ in bars]
        spans = [[v - min(vs) for _, _, v, vs in bars], [max(vs) - v for _, _, v, vs in bars]]
        ax.barh(ys, values, xerr=spans, color=[c for _, c, _, _ in bars], capsize=3)
        ax.set_yticks(ys, [label for label, _, _, _ in bars])
        for y, value in zip(ys, values, strict=True):
            ax.annotate(format(value, spec), (value, y), xytext=(4, 4),
                        textcoords="offset points", fontsize="small")  # fmt: skip
        ax.set_xlabel(unit)
        # Room to the right of the longest bar for its value.
        ax.set_xlim(0, max(values, default=1) * 1.18 or 1)
        ax.grid(visible=True, axis="x", alpha=0.3)
    fig.suptitle("VXLAN between two namespaces (server side: kernel vxlan)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(out / "vxlan.png")
    plt.close(fig)
    return out / "vxlan.png"


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
