"""The datapath commands of the control socket, as ovs-vswitchd's lib/dpctl.c has them.

``dpctl/dump-flows [-m] [--names] [DP] [filter=FLOW] [type=TYPES] [pmd=N]``,
``dpctl/show [-s] [DP...]``, ``dpctl/dump-dps``, ``dpif/dump-flows [-m]
[--names|--no-names] BRIDGE`` and ``ofproto/list``, with Open vSwitch 3.1's
argument handling, output layouts and messages (``pvs-vswitchd:`` where OVS
says ``ovs-vswitchd:``).

As in OVS, every ``dpctl/`` command first takes options: ``-m``/``--more``
(more detail; each one counts), ``-s``/``--statistics``, ``--names`` and
``--no-names`` (port names instead of numbers; by default only with
``-m``), and ``--clear`` and ``--may-create``, which only the commands we do
not have use. A datapath is named ``TYPE@NAME`` (``dummy@ovs-dummy``); a
command that takes an optional one uses the only datapath there is when
none is named, and OVS's rule for telling a name from another argument.

Where we differ: ``dpctl/show`` lists no port 0. Open vSwitch's userspace
datapath has a port of its own there (``ovs-dummy``) that no bridge uses;
pyvswitch's datapath has none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvswitch.dpif.datapath import format_megaflow
from pyvswitch.flow.layout import FIELDS
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.ofp_text import parse_match
from pyvswitch.vswitchd.unixctl import UNLIMITED, UnixctlError

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvswitch.dpif.datapath import Megaflow
    from pyvswitch.flow.match import Match
    from pyvswitch.vswitchd.daemon import Daemon, Datapath
    from pyvswitch.vswitchd.unixctl import UnixctlServer

OFPP_LOCAL = 0xFFFE
PROGRAM = "pvs-vswitchd"
EINVAL = "Invalid argument"
#: dump-flows' ``type=`` words, and which of them take flows no hardware holds
#: (ours are all such: dp:ovs, not offloaded).
_DUMP_TYPES = frozenset(("ovs", "tc", "dpdk", "offloaded", "non-offloaded", "partially-offloaded"))
_OURS = frozenset(("ovs", "non-offloaded", "all"))
#: OVS's id for the threads that are not PMD threads (``pmd=-1``).
NON_PMD = -1


def register_dpctl_commands(daemon: Daemon, server: UnixctlServer) -> None:
    """Add the datapath commands to the daemon's control socket."""
    commands: list[tuple[str, str, int, int, Callable[[Daemon, list[str]], str]]] = [
        (
            "dpctl/dump-flows",
            "[-m] [--names] [dp] [filter=..] [type=..] [pmd=..]",
            0,
            6,
            dump_flows,
        ),
        ("dpctl/show", "[-s] [dp...]", 0, UNLIMITED, show),
        ("dpctl/dump-dps", "", 0, 0, dump_dps),
        ("dpif/dump-flows", "[-m] [--names | --no-names] bridge", 1, UNLIMITED, dpif_dump_flows),
        ("ofproto/list", "", 0, 0, ofproto_list),
    ]
    for name, usage, least, most, handler in commands:
        server.register(name, usage, least, most, _bound(daemon, handler))


def _bound(
    daemon: Daemon, handler: Callable[[Daemon, list[str]], str]
) -> Callable[[list[str]], str]:
    return lambda args: handler(daemon, args)


# -- options ---------------------------------------------------------------------------


@dataclass
class DpctlOptions:
    """What the options in front of a ``dpctl/`` command asked for."""

    verbosity: int = 0
    statistics: bool = False
    names: bool = False


_LONG = {"--statistics", "--clear", "--may-create", "--more", "--names", "--no-names"}


def parse_options(args: list[str]) -> tuple[DpctlOptions, list[str]]:
    """Split ``args`` into the options and the rest, as ``dpctl_unixctl_handler()`` does.

    Options end at the first word that does not start with ``-`` (a lone
    ``-`` included). Raises :class:`UnixctlError` for an unknown one.
    """
    options = DpctlOptions()
    names: bool | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            if arg not in _LONG:
                raise UnixctlError(f"Unrecognized option {arg}")
            options.verbosity += arg == "--more"
            options.statistics |= arg == "--statistics"
            if arg in ("--names", "--no-names"):
                names = arg == "--names"
        elif arg.startswith("-") and arg != "-":
            for letter in arg[1:]:
                if letter not in "ms":
                    raise UnixctlError(f"Unrecognized option -{letter}")
                options.verbosity += letter == "m"
                options.statistics |= letter == "s"
        else:
            break
        i += 1
    options.names = options.verbosity > 0 if names is None else names
    return options, args[i:]


def _error(message: str, errno_text: str = "") -> UnixctlError:
    """An error as ``dpctl_error()`` words it: program, message, then the errno's text."""
    return UnixctlError(f"{PROGRAM}: {message}" + (f" ({errno_text})" if errno_text else ""))


# -- choosing a datapath ------------------------------------------------------------------


def _by_name(daemon: Daemon, name: str) -> Datapath | None:
    return next((dp for dp in daemon.datapaths.values() if dp.full_name == name), None)


def _only_datapath(daemon: Daemon) -> Datapath | None:
    """The one datapath there is (``get_one_dp()``), or None after saying why not."""
    if len(daemon.datapaths) == 1:
        return next(iter(daemon.datapaths.values()))
    return None


def open_datapath(daemon: Daemon, args: list[str], max_args: int) -> Datapath:
    """``opt_dpif_open()``: the datapath ``args`` name, or the only one.

    The first argument names a datapath if one has that name; otherwise the
    only datapath is used, except when there are exactly ``max_args``
    arguments (then the first one must have been a datapath).
    """
    if args:
        named = _by_name(daemon, args[0])
        if named is not None:
            return named
    if len(args) != max_args:
        found = _only_datapath(daemon)
        if found is not None:
            return found
        reason = (
            "no datapaths exist" if not daemon.datapaths else "multiple datapaths, specify one"
        )
        raise UnixctlError(f"{PROGRAM}: {reason}\n{PROGRAM}: datapath not found ({EINVAL})")
    raise _error("datapath not found", EINVAL)


def port_names(dp: Datapath) -> dict[int, str]:
    """The datapath's port names by number."""
    return dict(dp.ofp.datapath.ports)


# -- dpctl/dump-flows -------------------------------------------------------------------


@dataclass
class _DumpRequest:
    """What ``dpctl/dump-flows`` was asked to show."""

    filter: str | None = None
    types: str | None = None
    pmd: int | None = None


def _trailing(args: list[str]) -> tuple[_DumpRequest, list[str]]:
    """Take ``filter=``, ``type=`` and ``pmd=`` off the end of ``args``, as OVS does.

    Each is looked for at the end, over and over, until the last word is
    none of them (or is one already taken, for filter= and type=).
    """
    request = _DumpRequest()
    rest = list(args)
    while rest:
        last = rest[-1]
        if last.startswith("filter=") and request.filter is None:
            request.filter = last[len("filter=") :]
        elif last.startswith("type=") and request.types is None:
            request.types = last[len("type=") :]
        elif last.startswith("pmd="):
            found = re.match(r"\s*([-+]?\d+)", last[len("pmd=") :])
            if found is None:
                # OVS fails here without a word of explanation.
                raise UnixctlError("")
            request.pmd = int(found.group(1))
        else:
            break
        rest.pop()
    return request, rest


def _parse_filter(text: str, dp: Datapath) -> Match:
    names = {name: number for number, name in port_names(dp).items()}
    try:
        match, _ = parse_match(text, port_names=names)
    except FlowParseError as exc:
        raise _error(f"Failed to parse filter ({exc})") from None
    return match


def _types_show_ours(text: str | None) -> bool:
    """Whether ``type=TEXT`` lets our flows through (all are in the ovs layer, not offloaded)."""
    if text is None:
        return True
    words = [word for word in text.split(",") if word]
    for word in words:
        if word not in _DUMP_TYPES and word != "all":
            raise _error(f"Failed to parse type ({word})", EINVAL)
    return any(word in _OURS for word in words)


def _passes(flow: Megaflow, match: Match) -> bool:
    """Whether a megaflow agrees with a filter wherever both look (OVS's rule)."""
    both = flow.mask & match.mask
    return flow.key & both == match.value & both


def dump_flows(daemon: Daemon, args: list[str]) -> str:
    """``dpctl/dump-flows [-m] [--names] [DP] [filter=FLOW] [type=TYPES] [pmd=N]``.

    The flows come after a ``flow-dump from the main thread:`` line, which
    OVS's userspace datapath prints for the flows of its non-PMD threads
    (all of ours), unless ``pmd=`` chose the thread. ``filter=`` takes an
    OpenFlow match (port names are the datapath's); a flow is shown when it
    agrees with the filter on every field both match.
    """
    options, rest = parse_options(args)
    request, rest = _trailing(rest)
    dp = open_datapath(daemon, rest, 1)
    match = _parse_filter(request.filter, dp) if request.filter is not None else None
    shown = _types_show_ours(request.types)
    if request.pmd is not None and request.pmd != NON_PMD:
        shown = False
    flows = [f for f in dp.ofp.datapath.flows() if match is None or _passes(f, match)]
    if not shown or not flows:
        return ""
    names = port_names(dp) if options.names else None
    now = daemon.clock()
    lines = [] if request.pmd is not None else ["flow-dump from the main thread:"]
    lines += [
        format_megaflow(f, now, verbose=options.verbosity > 0, port_names=names) for f in flows
    ]
    return "".join(line + "\n" for line in lines)


def dpif_dump_flows(daemon: Daemon, args: list[str]) -> str:
    """``dpif/dump-flows [-m] [--names|--no-names] BRIDGE``: the flows of one bridge's ports.

    As in OVS, the bridge is the last word and the options may be anywhere
    before it; other words are ignored.
    """
    verbose = "-m" in args[:-1]
    names = verbose
    for word in args[:-1]:
        if word in ("--names", "--no-names"):
            names = word == "--names"
    for dp in daemon.datapaths.values():
        bridge = dp.ofp.bridges.get(args[-1])
        if bridge is not None:
            ports = {p.odp_port for p in bridge.ports.values() if p.odp_port is not None}
            flows = [f for f in dp.ofp.datapath.flows() if FIELDS["in_port"].get(f.key) in ports]
            now = daemon.clock()
            named = port_names(dp) if names else None
            return "".join(
                format_megaflow(f, now, verbose=verbose, port_names=named, for_dpif=True) + "\n"
                for f in flows
            )
    raise UnixctlError("no such bridge")


# -- dpctl/show, dpctl/dump-dps, ofproto/list -----------------------------------------------------


def _port_type(dp: Datapath, port_no: int) -> str:
    """The datapath's type for a port, as ``dpif_port.type`` names it."""
    internal = "dummy-internal" if dp.kind == "dummy" else "tap"
    for bridge in dp.ofp.bridges.values():
        for port in bridge.ports.values():
            if port.odp_port == port_no:
                if port.ofport == OFPP_LOCAL or port.type == "internal":
                    return internal
                device = dp.devices.get(port_no)
                return device.type if device is not None else port.type
    return "system"


def _human(value: int) -> str:
    """OVS's ``print_human_size()``: `` (1.5 KiB)`` from 1024 bytes up."""
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if value >= 1024**power:
            return f" ({value / 1024**power:.1f} {unit})"
    return ""


def _port_stats(dp: Datapath, port_no: int) -> list[str]:
    device = dp.devices.get(port_no)
    if device is None:
        return []
    s = device.stats
    # Open vSwitch's dummy devices count no errors or drops: it prints "?".
    dummy = device.type == "dummy"

    def count(value: int) -> str:
        return "?" if dummy else str(value)

    rx, tx = s.rx_bytes, s.tx_bytes
    return [
        (
            f"    RX packets:{s.rx_packets} errors:{count(s.rx_errors)} "
            f"dropped:{count(s.rx_dropped)} overruns:? frame:?"
        ),
        (
            f"    TX packets:{s.tx_packets} errors:{count(s.tx_errors)} "
            f"dropped:{count(s.tx_dropped)} aborted:? carrier:?"
        ),
        "    collisions:?",
        f"    RX bytes:{rx}{_human(rx)}  TX bytes:{tx}{_human(tx)}",
    ]


def _show_one(dp: Datapath, statistics: bool) -> list[str]:
    stats = dp.ofp.datapath.stats
    lines = [
        f"{dp.full_name}:",
        f"  lookups: hit:{stats.hit} missed:{stats.missed} lost:{stats.lost}",
        f"  flows: {len(dp.ofp.datapath.flows())}",
    ]
    if dp.kind == "dummy" and 0 not in dp.ofp.datapath.ports:
        # Open vSwitch's dummy datapath has an internal port of its own,
        # number 0, named after it; no bridge uses it and it carries nothing.
        lines.append("  port 0: ovs-dummy (dummy-internal)")
        if statistics:
            lines += [
                "    RX packets:0 errors:? dropped:? overruns:? frame:?",
                "    TX packets:0 errors:? dropped:? aborted:? carrier:?",
                "    collisions:?",
                "    RX bytes:0  TX bytes:0",
            ]
    for port_no, name in sorted(dp.ofp.datapath.ports.items()):
        kind = _port_type(dp, port_no)
        lines.append(f"  port {port_no}: {name}" + ("" if kind == "system" else f" ({kind})"))
        if statistics:
            lines += _port_stats(dp, port_no)
    return lines


def _open_error(name: str) -> str:
    """Why ``dpctl/show NAME`` cannot open a datapath, worded as OVS words it."""
    kind = name.partition("@")[0] if "@" in name else "system"
    # OVS knows the system, netdev and dummy types; it has no system datapath
    # with --disable-system, and we have none at all.
    errno_text = (
        "No such device"
        if kind in ("dummy", "netdev")
        else "Address family not supported by protocol"
    )
    return f"{PROGRAM}: opening datapath {name} failed ({errno_text})"


def show(daemon: Daemon, args: list[str]) -> str:
    """``dpctl/show [-s] [DP...]``: each datapath's lookups, flows and ports, with -s counters."""
    options, names = parse_options(args)
    lines: list[str] = []
    failed = False
    if names:
        for name in names:
            dp = _by_name(daemon, name)
            if dp is None:
                lines.append(_open_error(name))
                failed = True
            else:
                lines += _show_one(dp, options.statistics)
    else:
        for kind in sorted(daemon.datapaths):
            lines += _show_one(daemon.datapaths[kind], options.statistics)
    text = "".join(line + "\n" for line in lines)
    if failed:
        # OVS replies with an error carrying everything it printed.
        raise UnixctlError(text.rstrip("\n"))
    return text


def dump_dps(daemon: Daemon, _args: list[str]) -> str:
    """``dpctl/dump-dps``: the name of every datapath."""
    return "".join(f"{daemon.datapaths[kind].full_name}\n" for kind in sorted(daemon.datapaths))


def ofproto_list(daemon: Daemon, _args: list[str]) -> str:
    """``ofproto/list``: every bridge."""
    names = sorted(name for dp in daemon.datapaths.values() for name in dp.ofp.bridges)
    return "".join(f"{name}\n" for name in names)
