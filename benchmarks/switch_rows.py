"""The rows of the switch benchmark: what each builds, one round of it, and the merge.

A row is measured in rounds: a round builds the row's namespaces and
switch, measures once (some pings, one iperf3 run, one generator run) and
tears everything down. The benchmark runs every row once per round, round
after round, so that a burst of other work on the machine spreads over all
rows instead of spoiling one; :func:`merge` then joins a row's rounds into
medians.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from benchmarks import measure
from benchmarks.switches import LinuxBridge, OpenVswitch, Pyvswitch
from benchmarks.switchlab import (
    CLIENT_IP,
    CLIENT_UNDERLAY_IP,
    OFFLOADS,
    OVERLAY_MTU,
    SERVER_IP,
    SERVER_UNDERLAY_IP,
    BenchError,
    RowLab,
    checksum_offload_off,
    offloads,
)

if TYPE_CHECKING:
    from collections.abc import Callable

Json = dict[str, Any]


class Switch(Protocol):
    label: str

    def start(self, lab: RowLab, sw: str) -> None: ...
    def build(
        self, lab: RowLab, sw: str, kind: str, n: int, ends: tuple[str, str]
    ) -> list[str]: ...
    def build_vxlan(self, lab: RowLab, sw: str, ends: tuple[str, str]) -> list[str]: ...
    def pids(self) -> list[int]: ...
    def notes(self) -> list[str]: ...


@dataclass(frozen=True)
class Durations:
    """How long and how often: ``rounds`` rounds, each with these measurements."""

    rounds: int
    tcp_seconds: int
    tcp_omit: int
    pps_seconds: int
    ping_count: int
    ping_interval: float


#: A full run: 4 rounds of about 12 s a row, about 17 minutes for all 23 rows
#: on a 2-core VM.
FULL = Durations(rounds=4, tcp_seconds=3, tcp_omit=1, pps_seconds=3, ping_count=50,
                 ping_interval=0.01)  # fmt: skip
#: A quick run: one round of about 10 s a row, under three minutes for the 15
#: rows with N <= 2 (the VXLAN rows included).
QUICK = Durations(rounds=1, tcp_seconds=2, tcp_omit=1, pps_seconds=2, ping_count=50,
                  ping_interval=0.01)  # fmt: skip


@dataclass(frozen=True)
class RowSpec:
    """One row of the table: what forwards, how many bridges, chained how."""

    name: str
    switch: str  # "none", "linux", "ovs" or "pvs"
    setting: str  # the switch's setting, as the table and the plots name it
    chain: str  # "patch" or "veth" (N=1 has no link between bridges)
    bridges: int
    hosts_tx_off: bool = False
    #: "vxlan" for a row whose client and server talk over VXLAN (the switch
    #: is the client side's tunnel end), "" for the plain rows.
    tunnel: str = ""

    def make_switch(self) -> Switch | None:
        if self.switch == "linux":
            return LinuxBridge()
        if self.switch == "ovs":
            return OpenVswitch(tso=self.setting == "userspace TSO")
        if self.switch == "pvs":
            return Pyvswitch()
        return None

    def label(self) -> str:
        if self.tunnel and self.switch == "linux":
            return f"kernel {self.tunnel}"
        return {"none": "veth pair", "linux": LinuxBridge.label, "ovs": OpenVswitch.label,
                "pvs": Pyvswitch.label}[self.switch]  # fmt: skip

    def topology(self) -> str:
        if self.tunnel:
            if self.switch == "linux":
                return f"Linux bridge + {self.tunnel} device"
            return f"br-int + br-phy, native {self.tunnel}"
        if self.switch == "none":
            return "—"
        return "1" if self.bridges == 1 else f"{self.bridges}, {self.chain}"


def all_rows() -> list[RowSpec]:
    rows = [
        RowSpec("veth-direct", "none", "default offloads", "veth", 0),
        RowSpec("linux-bridge", "linux", "default offloads", "veth", 1),
        RowSpec("ovs-defaults-1br", "ovs", "default offloads", "patch", 1),
        RowSpec("ovs-csumoff-1br", "ovs", "hosts' tx checksum off", "patch", 1, True),
        RowSpec("ovs-csumoff-patch-2", "ovs", "hosts' tx checksum off", "patch", 2, True),
        RowSpec("ovs-csumoff-veth-2", "ovs", "hosts' tx checksum off", "veth", 2, True),
    ]
    for switch, setting, prefix in (
        ("ovs", "userspace TSO", "ovs-tso"),
        ("pvs", "default offloads", "pvs"),
    ):
        rows.append(RowSpec(f"{prefix}-1br", switch, setting, "patch", 1))
        rows += [
            RowSpec(f"{prefix}-{kind}-{n}", switch, setting, kind, n)
            for kind in ("patch", "veth")
            for n in (2, 4, 8)
        ]
    # VXLAN between two namespaces: the client side's tunnel end is the
    # kernel (a Linux bridge and a VXLAN device), Open vSwitch or pyvswitch;
    # the server's is always a kernel VXLAN device. Open vSwitch 3.1 runs
    # with its best working setting for this path (docs/performance.md).
    tx_off = "hosts' tx checksum off"
    rows += [
        RowSpec("vxlan-kernel", "linux", "default offloads", "veth", 1, tunnel="vxlan"),
        RowSpec("vxlan-ovs-csumoff", "ovs", tx_off, "patch", 2, True, tunnel="vxlan"),
        RowSpec("vxlan-pvs", "pvs", "default offloads", "patch", 2, tunnel="vxlan"),
    ]
    return rows


def _attempt(result: Json, part: str, work: Callable[[], Json]) -> None:
    """Run one measurement; a failure is recorded and the others still run."""
    try:
        result[part] = work()
    except BenchError as exc:
        result[part] = {"error": str(exc)}


def run_round(spec: RowSpec, prefix: str, d: Durations) -> Json:
    """Build the row under ``prefix``, measure once, tear down: the round's raw numbers."""
    result: Json = {"error": None, "notes": [], "offloads": {}, "hosts": []}
    start = time.monotonic()
    with RowLab(prefix) as lab:
        try:
            _measure(spec, lab, d, result)
        except BenchError as exc:
            result["error"] = str(exc)
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


@dataclass
class Wiring:
    """What a row built: the two hosts' namespaces and measured devices, every
    device whose offloads are recorded (name -> namespace), the hosts' own
    devices among them, and the switch's pids (for its CPU time)."""

    cli: str
    cdev: str
    srv: str
    sdev: str
    devices: dict[str, str]
    hosts: list[str]
    pids: list[int]


def _wire_plain(spec: RowSpec, lab: RowLab, switch: Switch | None) -> Wiring:
    """The client and server on veths to the switch (or to each other)."""
    cli, srv = lab.netns("cli"), lab.netns("srv")
    cdev, sdev = lab.name("c"), lab.name("s")
    devices = {cdev: cli, sdev: srv}
    pids: list[int] = []
    if switch is None:
        lab.veth((cli, cdev), (srv, sdev))
    else:
        sw = lab.netns("sw")
        ends = (lab.name("pc"), lab.name("ps"))
        lab.veth((sw, ends[0]), (cli, cdev))
        lab.veth((sw, ends[1]), (srv, sdev))
        devices |= dict.fromkeys(ends, sw)
    lab.address(cli, cdev, CLIENT_IP)
    lab.address(srv, sdev, SERVER_IP)
    if spec.hosts_tx_off:
        for dev in (cdev, sdev):
            checksum_offload_off(devices[dev], dev)
    if switch is not None:
        switch.start(lab, sw)
        devices |= dict.fromkeys(switch.build(lab, sw, spec.chain, spec.bridges, ends), sw)
        pids = switch.pids()
    return Wiring(cli, cdev, srv, sdev, devices, [cdev, sdev], pids)


def _wire_vxlan(spec: RowSpec, lab: RowLab, switch: Switch) -> Wiring:
    """Two hosts joined by VXLAN: the switch is the client side's tunnel end.

    The client's veth (overlay address, MTU 1450) goes to the switch's
    namespace ``sw``; an underlay veth joins ``sw`` to the server, whose
    kernel VXLAN device ``<prefix>s`` holds the server's overlay address and
    is where frames are counted as delivered.
    """
    cli, sw, srv = lab.netns("cli"), lab.netns("sw"), lab.netns("srv")
    cdev, sdev = lab.name("c"), lab.name("s")
    ends = (lab.name("pc"), lab.name("ua"))
    underlay = lab.name("ub")
    lab.veth((sw, ends[0]), (cli, cdev))
    lab.veth((sw, ends[1]), (srv, underlay))
    lab.mtu(cli, cdev, OVERLAY_MTU)
    lab.address(cli, cdev, CLIENT_IP)
    lab.address(srv, underlay, SERVER_UNDERLAY_IP)
    lab.vxlan(srv, sdev, underlay, SERVER_UNDERLAY_IP, CLIENT_UNDERLAY_IP)
    lab.address(srv, sdev, SERVER_IP)
    devices = {cdev: cli, sdev: srv, underlay: srv} | dict.fromkeys(ends, sw)
    hosts = [cdev, sdev, underlay]
    if spec.hosts_tx_off:
        for dev in hosts:
            checksum_offload_off(devices[dev], dev)
    switch.start(lab, sw)
    devices |= dict.fromkeys(switch.build_vxlan(lab, sw, ends), sw)
    return Wiring(cli, cdev, srv, sdev, devices, hosts, switch.pids())


def _measure(spec: RowSpec, lab: RowLab, d: Durations, result: Json) -> None:
    switch = spec.make_switch()
    if spec.tunnel:
        if switch is None:
            raise BenchError(f"row {spec.name}: a tunnel row needs a switch at the client's end")
        w = _wire_vxlan(spec, lab, switch)
    else:
        w = _wire_plain(spec, lab, switch)
    cli, srv = w.cli, w.srv
    result["offloads"] = {dev: offloads(ns, dev) for dev, ns in w.devices.items()}
    result["hosts"] = w.hosts
    measure.warm_up(cli)
    _attempt(result, "ping", lambda: vars(measure.ping_rtt(cli, d.ping_count, d.ping_interval)))
    _attempt(result, "tcp", lambda: {"gbps": [measure.tcp_run(
        lab, cli, srv, d.tcp_seconds, d.tcp_omit)]})  # fmt: skip
    config = measure.trafgen_config(cli, w.cdev, srv, w.sdev, lab.tempdir("gen"))
    _attempt(result, "pps", lambda: {"samples": [vars(measure.pps_run(
        lab, ((cli, w.cdev), (srv, w.sdev)), config, d.pps_seconds, w.pids))]})  # fmt: skip
    if switch is not None:
        result["notes"] += switch.notes()


def summarize_offloads(found: dict[str, dict[str, bool]], hosts: list[str]) -> dict[str, str]:
    """One line for the hosts' devices and one for the switch's, as ethtool reported them.

    Devices that differ are listed by group, each device by its role (its
    name without the row's prefix): ``... GRO off (c, ub); ... GRO on (s)``.
    """
    # Character by character, on purpose: the names are interface names.
    prefix = os.path.commonprefix(list(found)) if len(found) > 1 else ""  # noqa: RUF071

    def text(flags: dict[str, bool | None]) -> str:
        on = " ".join(k for k, v in flags.items() if v)
        off = " ".join(k for k, v in flags.items() if v is False)
        return ", ".join(filter(None, [on and f"{on} on", off and f"{off} off"]))

    def describe(names: list[str]) -> str:
        groups: dict[tuple[bool | None, ...], list[str]] = {}
        for name in names:
            key = tuple(found[name].get(label) for label in OFFLOADS.values())
            groups.setdefault(key, []).append(name)
        texts = {key: text(dict(zip(OFFLOADS.values(), key, strict=True))) for key in groups}
        if len(groups) == 1:
            return next(iter(texts.values()))
        return "; ".join(
            f"{texts[key]} ({', '.join(n[len(prefix) :] for n in members)})"
            for key, members in groups.items()
        )

    return {
        "hosts": describe([n for n in found if n in hosts]),
        "ports": describe([n for n in found if n not in hosts]),
    }


def merge(spec: RowSpec, rounds: list[Json]) -> Json:
    """A row's JSON form: its rounds' raw numbers joined, with medians.

    A part (ping, tcp, pps) that failed in every round carries the first
    error; one that failed in some rounds only is measured by the others,
    and the failures become notes.
    """
    row: Json = {
        "name": spec.name,
        "switch": spec.switch,
        "label": spec.label(),
        "setting": spec.setting,
        "chain": spec.chain,
        "bridges": spec.bridges,
        "topology": spec.topology(),
        "tunnel": spec.tunnel,
        "offload_setting": "hosts: tx-csum, TSO off" if spec.hosts_tx_off else "default",
        "rounds": len(rounds),
        "seconds": round(sum(r["seconds"] for r in rounds), 1),
        "notes": [],
        "error": None,
    }
    built = [r for r in rounds if r["error"] is None]
    for number, r in enumerate(rounds, start=1):
        if r["error"] is not None:
            row["notes"].append(f"round {number}: {r['error']}")
    if not built:
        row["error"] = rounds[0]["error"] if rounds else "not run"
        row["offloads"], row["offload_summary"] = {}, {"hosts": "", "ports": ""}
        return row
    row["offloads"] = built[0]["offloads"]
    row["offload_summary"] = summarize_offloads(built[0]["offloads"], built[0]["hosts"])
    row["notes"] += sorted({note for r in built for note in r["notes"]})
    for part, join in (("ping", _join_ping), ("tcp", _join_tcp), ("pps", _join_pps)):
        good = [r[part] for r in built if part in r and "error" not in r[part]]
        failed = [r[part]["error"] for r in built if "error" in r.get(part, {})]
        row[part] = join(good) if good else {"error": failed[0] if failed else "not measured"}
        if good and failed:
            row["notes"] += [f"{part} failed in {len(failed)} rounds: {failed[0]}"]
    return row


def _join_ping(parts: list[Json]) -> Json:
    got = measure.PingResult(
        sum(p["sent"] for p in parts),
        sum(p["received"] for p in parts),
        [t for p in parts for t in p["rtt_ms"]],
    )
    if not got.rtt_ms:
        return {"error": f"none of {got.sent} echoes was answered"}
    return {**vars(got), "median_us": got.median_us(), "p99_us": got.p99_us()}


def _join_tcp(parts: list[Json]) -> Json:
    rates = [g for p in parts for g in p["gbps"]]
    return {"gbps": rates, "median_gbps": statistics.median(rates)}


def _join_pps(parts: list[Json]) -> Json:
    samples = [measure.PpsSample(**s) for p in parts for s in p["samples"]]
    cpu = [c for s in samples if (c := s.cpu_per_mpkt()) is not None]
    return {
        "samples": [vars(s) for s in samples],
        "offered_pps": statistics.median(s.offered_pps() for s in samples),
        "delivered_pps": statistics.median(s.delivered_pps() for s in samples),
        "loss": statistics.median(s.loss() for s in samples),
        "cpu_s_per_mpkt": statistics.median(cpu) if cpu else None,
    }
