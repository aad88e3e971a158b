"""The daemon's side of ``pvs-ofctl``: flow tables, port statistics and features.

Open vSwitch's ovs-ofctl speaks OpenFlow to the bridge; pvs-ofctl sends these
unixctl commands instead, and the daemon answers with the text ovs-ofctl
would print (its messages without the ``ovs-ofctl:`` prefix for errors)::

    ofctl/add-flow [OPTIONS] BRIDGE FLOW
    ofctl/add-flows [OPTIONS] BRIDGE TEXT         (TEXT: a whole flows file)
    ofctl/mod-flows [OPTIONS] BRIDGE FLOW
    ofctl/del-flows [OPTIONS] BRIDGE [FLOW]
    ofctl/replace-flows [OPTIONS] BRIDGE TEXT
    ofctl/dump-flows [OPTIONS] BRIDGE [FLOW]
    ofctl/dump-aggregate [OPTIONS] BRIDGE [FLOW]
    ofctl/dump-ports [OPTIONS] BRIDGE [PORT]
    ofctl/dump-ports-desc [OPTIONS] BRIDGE [PORT]
    ofctl/dump-tables [OPTIONS] BRIDGE
    ofctl/show [OPTIONS] BRIDGE
    ofctl/add-tlv-map [OPTIONS] BRIDGE MAP
    ofctl/del-tlv-map [OPTIONS] BRIDGE [MAP]
    ofctl/dump-tlv-map [OPTIONS] BRIDGE

OPTIONS come first and end with ``--`` or the first other word:
``--protocol=OpenFlow1N`` (the version ovs-ofctl would have used, by default
OpenFlow10), ``--strict``, ``--no-stats``, ``--names`` / ``--no-names``
(neither: ovs-ofctl's choice when its output is not a terminal), ``--sort[=FIELD]``,
``--rsort[=FIELD]`` and ``--file=NAME`` (what errors in TEXT are reported
against, ``NAME:LINE: message``).

Flows are read with the bridge's port names (``in_port=p1``, ``output:p2``),
and their actions are kept as they arrive over the OpenFlow version given
(:func:`pyvswitch.ofproto.flow_cmd.carried`).
A change is applied whole or not at all, and the bridge's rules are saved
(:mod:`pyvswitch.vswitchd.flowstore`) before the reply, so a rule the client
was told about survives a restart of the daemon.

Each bridge has a TLV map (:mod:`pyvswitch.ofproto.tlv_map`), which the
``*-tlv-map`` commands change and show and which every flow is checked
against. A refusal the switch itself makes (an ``OFPT_ERROR`` in Open
vSwitch, such as ``NXTTMFC_ALREADY_MAPPED`` or ``NXFMFC_INVALID_TLV_FIELD``)
is answered with what ovs-ofctl prints for it: the error and the request it
refused, which pvs-ofctl prints without its name in front. The maps are kept
in memory only: like Open vSwitch's, they are gone after a restart (rules
that use them are restored but match nothing until the map is added again).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvswitch.flow.layout import FIELDS
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.ofp_text import META_FIELDS, PORT_NAMES, TUN_METADATA_EXACT, format_match
from pyvswitch.ofproto import tlv_map as tlv
from pyvswitch.ofproto.actions import OFPP_LOCAL, OFPP_MAX, SetField
from pyvswitch.ofproto.actions_text import format_actions_as_written, is_tun_metadata
from pyvswitch.ofproto.actions_wire import OF12, check_version
from pyvswitch.ofproto.flow_cmd import (
    ADD,
    DELETE,
    DELETE_STRICT,
    DUMP,
    FLOW_FLAGS,
    MODIFY,
    MODIFY_STRICT,
    RESET_COUNTS,
    FlowCommand,
    FlowCommandError,
    all_or_nothing,
    apply_commands,
    carried,
    parse_flow_command,
    parse_flow_line,
    replace_flows,
    select_rules,
)
from pyvswitch.ofproto.flow_dump import (
    OF10,
    OF11,
    OF13,
    OF15,
    VERSIONS,
    DumpStyle,
    flow_reply_header,
    format_flow_stats,
    sort_rules,
)
from pyvswitch.vswitchd.flowstore import FlowStoreError
from pyvswitch.vswitchd.status import vport_mac
from pyvswitch.vswitchd.unixctl import UNLIMITED, UnixctlError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pyvswitch.flow.match import Match
    from pyvswitch.ofproto.bridge import Bridge, OfPort
    from pyvswitch.vswitchd.daemon import Daemon, Datapath
    from pyvswitch.vswitchd.unixctl import UnixctlServer

#: Open vSwitch reserves its last table (254) for itself.
HIDDEN_TABLE = 254
N_TABLES_SHOWN = 254


def register_ofctl_commands(daemon: Daemon, server: UnixctlServer) -> None:
    """Add the ``ofctl/*`` commands to the daemon's control socket."""
    commands: list[tuple[str, str, int, Callable[[Daemon, _Request], str]]] = [
        ("add-flow", "bridge flow", 2, _add_flow),
        ("add-flows", "bridge text", 2, _add_flows),
        ("mod-flows", "bridge flow", 2, _mod_flows),
        ("del-flows", "bridge [flow]", 1, _del_flows),
        ("replace-flows", "bridge text", 2, _replace_flows),
        ("dump-flows", "bridge [flow]", 1, _dump_flows),
        ("dump-aggregate", "bridge [flow]", 1, _dump_aggregate),
        ("dump-ports", "bridge [port]", 1, _dump_ports),
        ("dump-ports-desc", "bridge [port]", 1, _dump_ports_desc),
        ("dump-tables", "bridge", 1, _dump_tables),
        ("show", "bridge", 1, _show),
        ("add-tlv-map", "bridge map", 2, _add_tlv_map),
        ("del-tlv-map", "bridge [map]", 1, _del_tlv_map),
        ("dump-tlv-map", "bridge", 1, _dump_tlv_map),
    ]
    for name, usage, needed, handler in commands:
        server.register(
            f"ofctl/{name}",
            f"[options] {usage}",
            1,
            UNLIMITED,
            _handler(daemon, handler, needed, len(usage.split())),
        )


def _handler(
    daemon: Daemon, run: Callable[[Daemon, _Request], str], least: int, most: int
) -> Callable[[list[str]], str]:
    def handle(args: list[str]) -> str:
        request = _Request.parse(args)
        if not least <= len(request.words) <= most:
            raise UnixctlError(f"expected {least} to {most} arguments after the options")
        return run(daemon, request)

    return handle


# -- requests ------------------------------------------------------------------------


@dataclass
class _Request:
    """A command's options and words."""

    words: list[str]
    version: int = OF10
    strict: bool = False
    stats: bool = True
    names: bool | None = None
    file: str = "-"
    sort: list[tuple[str | None, bool]] = field(default_factory=list)

    @classmethod
    def parse(cls, args: Sequence[str]) -> _Request:
        request = cls([])
        i = 0
        while i < len(args) and args[i].startswith("--"):
            if args[i] == "--":
                i += 1
                break
            request._option(args[i])
            i += 1
        request.words = list(args[i:])
        return request

    def _option(self, arg: str) -> None:
        name, eq, value = arg[2:].partition("=")
        if name == "protocol" and value in VERSIONS:
            self.version = VERSIONS[value]
        elif name in ("sort", "rsort"):
            # No field, or "priority" in any case, sorts by priority (ovs-ofctl's
            # add_sort_criterion()).
            by_priority = not value or value.lower() == "priority"
            if not by_priority and value not in META_FIELDS:
                raise UnixctlError(f"{value}: unknown field name")
            self.sort.append((None if by_priority else value, name == "rsort"))
        elif name == "file" and eq:
            self.file = value
        elif not eq and name in ("strict", "no-stats", "names", "no-names"):
            self.strict |= name == "strict"
            self.stats &= name != "no-stats"
            if name in ("names", "no-names"):
                self.names = name == "names"
        else:
            raise UnixctlError(f"unknown option {arg}")


def _bridge(daemon: Daemon, name: str) -> tuple[Datapath, Bridge]:
    for dp in daemon.datapaths.values():
        bridge = dp.ofp.bridges.get(name)
        if bridge is not None:
            return dp, bridge
    raise UnixctlError(f"{name} is not a bridge or a socket")


def _port_names(bridge: Bridge) -> dict[str, int]:
    return {port.name: port.ofport for port in bridge.ports.values()}


def _parse(
    text: str,
    command: str,
    dp: Datapath,
    bridge: Bridge,
    version: int = OF10,
    *,
    aggregate: bool = False,
) -> FlowCommand:
    """One flow of a command line, as the switch receives it over ``version``.

    It is checked against the bridge's TLV map (see :func:`_with_tlv_map`;
    ``aggregate`` says a dump is dump-aggregate's).
    """
    try:
        parsed = parse_flow_command(text, command, _port_names(bridge))
        _check_table(parsed)
        _check_tun_metadata_version(parsed, version)
        return _with_tlv_map(dp, bridge, carried(parsed, version), version, aggregate=aggregate)
    except FlowParseError as exc:
        raise UnixctlError(str(exc)) from None


class _SwitchRefusedError(UnixctlError):
    """The switch answered a request with an OpenFlow error; ``text`` is what ovs-ofctl prints."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _check_tun_metadata_version(command: FlowCommand, version: int) -> None:
    # Geneve option fields have NXM and OXM encodings only; OpenFlow 1.1
    # has neither, so ovs-ofctl finds no way to send such a flow.
    if version == OF11 and tlv.fields_used(command.spec.match, command.spec.actions):
        raise FlowParseError(_NO_TLV_FORMAT)


_NO_TLV_FORMAT = (
    "none of the usable flow formats (NXM,OXM) is among the allowed flow formats (OpenFlow11)"
)


def _with_tlv_map(
    dp: Datapath,
    bridge: Bridge,
    command: FlowCommand,
    version: int,
    *,
    index: int = 0,
    replace: bool = False,
    aggregate: bool = False,
) -> FlowCommand:
    """``command`` as the switch takes it with the bridge's TLV map, or its refusal.

    A Geneve option field the map does not name is Open vSwitch's
    ``NXFMFC_INVALID_TLV_FIELD`` (:class:`_SwitchRefusedError`, with what
    ovs-ofctl prints); ``index`` is the flow's place in an ``add-flows``
    (or, ``replace``, a ``replace-flows``) file, which the message's
    transaction id reflects.
    """
    spec = command.spec
    if not tlv.fields_used(spec.match, spec.actions):
        return command
    try:
        match, actions = tlv.check_flow(dp.ofp.tlv_map(bridge.name), spec.match, spec.actions)
    except tlv.TlvFieldError as exc:
        text = _flow_mod_error(exc.code, command, version, index, replace, aggregate=aggregate)
        raise _SwitchRefusedError(text) from None
    return dataclasses.replace(
        command, spec=dataclasses.replace(spec, match=match, actions=actions)
    )


#: The OpenFlow 1.0 match fields: a match on anything else needs Nicira's NXM.
_OF10_FIELDS = frozenset(
    ("in_port", "dl_src", "dl_dst", "dl_type", "vlan_tci", "nw_src", "nw_dst", "nw_proto",
     "nw_tos", "tp_src", "tp_dst")
)  # fmt: skip


def _needs_nxm(command: FlowCommand) -> bool:
    """Whether ovs-ofctl sends this flow over OpenFlow 1.0 in Nicira's format (NXT_FLOW_MOD).

    A match beyond OpenFlow 1.0's fields needs it, and so does a whole
    ``set_field`` to a Geneve option field (a masked one is a load, which
    OpenFlow 1.0's own format carries).
    """
    mask = command.spec.match.mask
    for name, fld in FIELDS.items():
        if mask & fld.mask and name not in _OF10_FIELDS:
            return True
    return any(
        isinstance(a, SetField) and is_tun_metadata(a.field) and a.mask == TUN_METADATA_EXACT
        for a in command.spec.actions
    )


_FLOW_MOD_WORDS = {
    ADD: "ADD",
    MODIFY: "MOD",
    MODIFY_STRICT: "MOD_STRICT",
    DELETE: "DEL",
    DELETE_STRICT: "DEL_STRICT",
}


def _flow_mod_error(
    code: str,
    command: FlowCommand,
    version: int,
    index: int = 0,
    replace: bool = False,
    *,
    aggregate: bool = False,
) -> str:
    """What ovs-ofctl prints when the switch refuses a flow mod with ``code``.

    The error and the flow mod as ovs-ofctl decodes what it sent; the
    transaction id counts the requests ovs-ofctl sent before it.
    """
    spec = command.spec
    table = command.table if command.table is not None else spec.table_id
    if version == OF10:
        nxm = _needs_nxm(command)
        name = "NXT_FLOW_MOD" if nxm else "OFPT_FLOW_MOD"
        # Naming a table over OpenFlow 1.0 takes one more request and reply.
        xid = (8 if nxm else 6) + (2 if table not in (None, 0, 255) else 0)
    else:
        name = f"OFPT_FLOW_MOD{_version_text(version)}"
        xid = 6
    # A file's flows go one after another, each after a request of its own;
    # replace-flows first dumps the bridge's flows.
    xid += index * 2 - (3 if replace else 0)
    of = _version_text(version)
    if command.command == DUMP:
        # A dump's match travels in a statistics request (flows or aggregate).
        stats = "AGGREGATE" if aggregate else "FLOW"
        request = f"NXST_{stats} request" if version == OF10 else f"OFPST_{stats} request{of}"
        xid = 8 if version == OF10 else 6
        shown = format_match(_as_sent(spec.match))
        return f"OFPT_ERROR{of} (xid={xid:#x}): {code}\n{request} (xid={xid:#x}): {shown}"
    priority = None if command.command == DELETE else spec.priority
    parts = [_FLOW_MOD_WORDS.get(command.command, "ADD")]
    if table not in (None, 0, 255):
        parts.append(f"table:{table}")
    match = format_match(_as_sent(spec.match), priority)
    if match:
        parts.append(match)
    if command.new_cookie:
        parts.append(f"cookie:{command.new_cookie:#x}")
    if command.cookie_mask:
        parts.append(f"cookie:{command.cookie:#x}/{command.cookie_mask:#x}")
    if spec.idle_timeout:
        parts.append(f"idle:{spec.idle_timeout}")
    if spec.hard_timeout:
        parts.append(f"hard:{spec.hard_timeout}")
    parts += [flag for flag, bit in FLOW_FLAGS.items() if command.flags & bit]
    parts.append("actions=" + format_actions_as_written(spec.actions))
    return f"OFPT_ERROR{of} (xid={xid:#x}): {code}\n{name} (xid={xid:#x}): {' '.join(parts)}"


def _as_sent(match: Match) -> Match:
    """A match as ovs-ofctl shows what it sent: a Geneve field's mask of whole 0xff bytes is exact.

    ovs-ofctl gives such a field only as many bytes as its value and mask
    need, so a mask of all ones over those bytes is no mask to it.
    """
    for index in tlv.fields_used(match, ()):
        name = f"tun_metadata{index}"
        value, mask = match.get(name)
        length = max((value.bit_length() + 7) // 8, (mask.bit_length() + 7) // 8)
        if mask and mask == (1 << (8 * length)) - 1:
            match = match.with_field(name, value, TUN_METADATA_EXACT)
    return match


def _check_table(command: FlowCommand) -> None:
    # Open vSwitch's last table is its own: a flow there is refused.
    if command.table == HIDDEN_TABLE and command.command in (ADD, MODIFY, MODIFY_STRICT):
        raise FlowParseError(f"OFPBRC_EPERM: table {HIDDEN_TABLE} is read-only")


def _parse_file(
    text: str, name: str, dp: Datapath, bridge: Bridge, version: int, *, replace: bool
) -> list[FlowCommand]:
    """Every flow of a flows file (``#`` starts a comment; blank lines are skipped).

    add-flows lines come as the switch receives them over ``version``;
    replace-flows lines as written, for :func:`replace_flows` to compare.
    """
    names = _port_names(bridge)
    commands: list[tuple[int, FlowCommand]] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.split("#", 1)[0]
        if not line.strip(" \t\n"):
            continue
        try:
            # replace-flows reads flows to add; add-flows lines may start
            # with another command (delete, modify...).
            if replace:
                command = parse_flow_command(line, ADD, names)
                check_version(command.spec.actions, version)
            else:
                command = carried(parse_flow_line(line, names), version)
            _check_table(command)
            _check_tun_metadata_version(command, version)
        except FlowParseError as exc:
            raise UnixctlError(f"{name}:{number}: {exc}") from None
        commands.append((number, command))
    # The switch checks the flows against its TLV map as they arrive, after
    # ovs-ofctl has read the whole file.
    checked = []
    for index, (number, command) in enumerate(commands):
        try:
            checked.append(
                _with_tlv_map(dp, bridge, command, version, index=index, replace=replace)
            )
        except FlowParseError as exc:
            raise UnixctlError(f"{name}:{number}: {exc}") from None
    return checked


def _add_flags(request: _Request) -> int:
    # Over OpenFlow 1.0 and 1.1 an addition always resets the counters.
    return RESET_COUNTS if request.version <= OF11 else 0


def _commit(daemon: Daemon, dp: Datapath, bridge: Bridge, change: Callable[[], None]) -> None:
    """Apply ``change`` and save the bridge's rules; neither happens unless both do."""
    try:
        with all_or_nothing(bridge):
            change()
            daemon.flow_store.update(bridge)
    except (FlowCommandError, FlowStoreError) as exc:
        raise UnixctlError(str(exc)) from None
    finally:
        dp.ofp.need_revalidate = True


# -- flow table changes ----------------------------------------------------------------


def _apply(
    daemon: Daemon, dp: Datapath, bridge: Bridge, commands: list[FlowCommand], add_flags: int = 0
) -> str:
    _commit(
        daemon,
        dp,
        bridge,
        lambda: apply_commands(bridge, commands, daemon.clock(), add_flags=add_flags),
    )
    return ""


def _add_flow(daemon: Daemon, request: _Request) -> str:
    dp, bridge = _bridge(daemon, request.words[0])
    command = _parse(request.words[1], ADD, dp, bridge, request.version)
    return _apply(daemon, dp, bridge, [command], _add_flags(request))


def _add_flows(daemon: Daemon, request: _Request) -> str:
    dp, bridge = _bridge(daemon, request.words[0])
    commands = _parse_file(
        request.words[1], request.file, dp, bridge, request.version, replace=False
    )
    return _apply(daemon, dp, bridge, commands, _add_flags(request))


def _mod_flows(daemon: Daemon, request: _Request) -> str:
    dp, bridge = _bridge(daemon, request.words[0])
    command = _parse(
        request.words[1], MODIFY_STRICT if request.strict else MODIFY, dp, bridge, request.version
    )
    return _apply(daemon, dp, bridge, [command])


def _del_flows(daemon: Daemon, request: _Request) -> str:
    dp, bridge = _bridge(daemon, request.words[0])
    text = request.words[1] if len(request.words) > 1 else ""
    command = _parse(
        text, DELETE_STRICT if request.strict else DELETE, dp, bridge, request.version
    )
    return _apply(daemon, dp, bridge, [command])


def _replace_flows(daemon: Daemon, request: _Request) -> str:
    dp, bridge = _bridge(daemon, request.words[0])
    commands = _parse_file(
        request.words[1], request.file, dp, bridge, request.version, replace=True
    )
    flags = _add_flags(request)

    def change() -> None:
        replace_flows(bridge, commands, daemon.clock(), version=request.version, add_flags=flags)

    _commit(daemon, dp, bridge, change)
    return ""


# -- dumps ---------------------------------------------------------------------------------


def _dump_flows(daemon: Daemon, request: _Request) -> str:
    dp, bridge = _bridge(daemon, request.words[0])
    if request.version == OF11:
        raise UnixctlError("dump-flows: OpenFlow11 is not supported (use another version)")
    text = request.words[1] if len(request.words) > 1 else ""
    try:
        selection = _parse(text, DUMP, dp, bridge, request.version)
    except _SwitchRefusedError as refused:
        # ovs-ofctl prints the error the switch sends back to a dump request
        # as a reply, and exits with success.
        return refused.text + "\n"
    rules = select_rules(bridge, selection)
    if request.sort:
        rules = sort_rules(rules, request.sort)
    # ovs-ofctl prints a reply as it comes (with its header and Open vSwitch's
    # ages) unless it sorts, names ports or hides statistics.
    straight = request.stats and request.names is not True and not request.sort
    # Reserved ports (LOCAL) keep their OpenFlow names, as in ovs-ofctl.
    names = (
        {p.ofport: p.name for p in bridge.ports.values() if p.ofport < OFPP_MAX}
        if request.names
        else None
    )
    style = DumpStyle(request.version, request.stats, straight, names)
    now = daemon.clock()
    lines = [format_flow_stats(rule, now, style) for rule in rules]
    if straight:
        lines.insert(0, flow_reply_header(request.version, _stats_xid(request, text)))
    return "".join(line + "\n" for line in lines)


def _stats_xid(request: _Request, flow_text: str) -> int:
    """The transaction id of a flow or aggregate statistics reply.

    It says how many requests ovs-ofctl sent first: version negotiation takes
    two more over OpenFlow 1.0, and reading a match with port names (unless
    --no-names) two more for the port list.
    """
    extra = 4 if flow_text and request.names is not False else 0
    return (4 if request.version == OF10 else 2) + extra


def _dump_aggregate(daemon: Daemon, request: _Request) -> str:
    """``dump-aggregate BRIDGE [FLOW]``: packets, bytes and flows of the selected rules."""
    dp, bridge = _bridge(daemon, request.words[0])
    text = request.words[1] if len(request.words) > 1 else ""
    try:
        selection = _parse(text, DUMP, dp, bridge, request.version, aggregate=True)
    except _SwitchRefusedError as refused:
        return refused.text + "\n"
    rules = select_rules(bridge, selection)
    name = "NXST_AGGREGATE reply" if request.version == OF10 else "OFPST_AGGREGATE reply"
    return (
        f"{name}{_version_text(request.version)} (xid={_stats_xid(request, text):#x}): "
        f"packet_count={sum(r.n_packets for r in rules)} "
        f"byte_count={sum(r.n_bytes for r in rules)} flow_count={len(rules)}\n"
    )


def _version_text(version: int) -> str:
    return "" if version == OF10 else f" (OF1.{version - OF10})"


def _ports_in_order(bridge: Bridge) -> list[OfPort]:
    """The bridge's ports as ovs-ofctl lists them: by number, LOCAL last."""
    return sorted(bridge.ports.values(), key=lambda p: p.ofport)


def _dump_ports(daemon: Daemon, request: _Request) -> str:
    dp, bridge = _bridge(daemon, request.words[0])
    if request.version != OF10:
        raise UnixctlError("dump-ports: only OpenFlow10 is supported")
    ports = _ports_in_order(bridge)
    # Open vSwitch lists LOCAL first; the others by number.
    ports = ports[-1:] + ports[:-1] if ports and ports[-1].ofport == OFPP_LOCAL else ports
    xid = 2
    if len(request.words) > 1:
        wanted, by_name = _port_number(request.words[1], bridge, request)
        xid += 2 if by_name else 0
        ports = [p for p in ports if wanted is None or p.ofport == wanted]
    lines = [f"OFPST_PORT reply (xid={xid:#x}): {len(ports)} ports"]
    for port in ports:
        lines += _port_stats(dp, port, port.name if request.names else None)
    return "".join(line + "\n" for line in lines)


def _port_number(text: str, bridge: Bridge, request: _Request) -> tuple[int | None, bool]:
    """The port a dump-ports argument names (None: all), and whether it was by name."""
    if text in PORT_NAMES:
        number = PORT_NAMES[text]
        return (None if text in ("ANY", "NONE") else number), False
    if text.isdigit():
        return int(text), False
    port = bridge.port_by_name(text) if request.names is not False else None
    if port is None:
        raise UnixctlError(f"{bridge.name}: unknown port `{text}'")
    return port.ofport, True


def _port_stats(dp: Datapath, port: OfPort, name: str | None) -> list[str]:
    label = "LOCAL" if port.ofport == OFPP_LOCAL else (name or str(port.ofport))
    pad = " " if port.ofport < 10 else ""
    known: dict[str, int | None]
    device = dp.devices.get(port.odp_port) if port.odp_port is not None else None
    if device is None:
        c = port.counters
        known = {"rx": c.rx_packets, "rxb": c.rx_bytes, "tx": c.tx_packets, "txb": c.tx_bytes}
        known |= dict.fromkeys(("rxd", "rxe", "txd", "txe"), None)
    else:
        s = device.stats
        known = {"rx": s.rx_packets, "rxb": s.rx_bytes, "tx": s.tx_packets, "txb": s.tx_bytes}
        # Open vSwitch's dummy devices count no drops or errors; it prints "?".
        dummy = device.type == "dummy"
        known |= {
            "rxd": None if dummy else s.rx_dropped,
            "rxe": None if dummy else s.rx_errors,
            "txd": None if dummy else s.tx_dropped,
            "txe": None if dummy else s.tx_errors,
        }
    v = {key: "?" if value is None else str(value) for key, value in known.items()}
    rx = (
        f"  port {pad}{label}: rx pkts={v['rx']}, bytes={v['rxb']}, drop={v['rxd']}, "
        f"errs={v['rxe']}, frame=?, over=?, crc=?"
    )
    tx = (
        f"           tx pkts={v['tx']}, bytes={v['txb']}, drop={v['txd']}, errs={v['txe']}, coll=?"
    )
    return [rx, tx]


def _dump_ports_desc(daemon: Daemon, request: _Request) -> str:
    """``dump-ports-desc BRIDGE [PORT]``: the port descriptions ``show`` prints.

    As in ovs-ofctl, PORT chooses the port only from OpenFlow 1.5 on (earlier
    versions have no way to ask for one); naming it by name still costs the
    port list request.
    """
    dp, bridge = _bridge(daemon, request.words[0])
    ports = _ports_in_order(bridge)
    xid = 2
    if len(request.words) > 1:
        wanted, by_name = _port_number(request.words[1], bridge, request)
        xid += 2 if by_name else 0
        if request.version >= OF15:
            ports = [p for p in ports if wanted is None or p.ofport == wanted]
    lines = [f"OFPST_PORT_DESC reply{_version_text(request.version)} (xid={xid:#x}):"]
    for port in ports:
        lines += _port_desc(dp, port, request.version)
    return "".join(line + "\n" for line in lines)


# -- TLV maps ------------------------------------------------------------------------------


def _add_tlv_map(daemon: Daemon, request: _Request) -> str:
    """``add-tlv-map BRIDGE MAP``: map Geneve options to ``tun_metadataN`` fields."""
    dp, bridge = _bridge(daemon, request.words[0])
    return _tlv_mod(dp, bridge, tlv.ADD, _mappings(request.words[1]), request.version)


def _del_tlv_map(daemon: Daemon, request: _Request) -> str:
    """``del-tlv-map BRIDGE [MAP]``: forget the mappings of MAP's fields, or all of them."""
    dp, bridge = _bridge(daemon, request.words[0])
    if len(request.words) == 1:
        return _tlv_mod(dp, bridge, tlv.CLEAR, (), request.version)
    return _tlv_mod(dp, bridge, tlv.DELETE, _mappings(request.words[1]), request.version)


def _dump_tlv_map(daemon: Daemon, request: _Request) -> str:
    """``dump-tlv-map BRIDGE``: the bridge's mappings, as ovs-ofctl prints them."""
    dp, bridge = _bridge(daemon, request.words[0])
    return tlv.format_table_reply(dp.ofp.tlv_map(bridge.name), request.version)


def _mappings(text: str) -> tuple[tlv.TlvMapping, ...]:
    try:
        return tlv.parse_mappings(text)
    except FlowParseError as exc:
        raise UnixctlError(str(exc)) from None


def _tlv_mod(
    dp: Datapath,
    bridge: Bridge,
    command: str,
    mappings: Sequence[tlv.TlvMapping],
    version: int,
) -> str:
    """Change the bridge's TLV map as the switch would, or answer with its OpenFlow error."""
    if version == OF11:
        raise UnixctlError(_NO_TLV_FORMAT)
    in_use: set[int] = set()
    for rule in bridge.rules():
        in_use |= tlv.fields_used(rule.match, rule.actions)
    try:
        new = tlv.table_mod(dp.ofp.tlv_map(bridge.name), command, mappings, in_use)
    except tlv.TlvMapError as exc:
        raise _SwitchRefusedError(
            tlv.format_table_mod(exc.code, command, mappings, version, exc.warning)
        ) from None
    dp.ofp.tlv_maps[bridge.name] = new
    # Which option is which field has changed: every cached flow is translated again.
    dp.ofp.need_revalidate = True
    return ""


#: What an OpenFlow 1.0 table matches on, as Open vSwitch's tables describe it.
_OF10_MATCHING = (
    "exact match or wildcard: in_port eth_{src,dst,type} vlan_{vid,pcp} ip_{src,dst} "
    "nw_{proto,tos} tcp_{src,dst}"
)
_MAX_ENTRIES = 1000000


def _dump_tables(daemon: Daemon, request: _Request) -> str:
    """``dump-tables BRIDGE``: each table's rules, lookups and matches, as ovs-ofctl prints them.

    Table 254 is Open vSwitch's own and is not shown. A table whose counters
    are those of the table before it is a "ditto", and a run of them is
    shown as one line, as ovs-ofctl does. OpenFlow 1.1 and 1.2 replies
    describe each table's features at length and are not supported.
    """
    _, bridge = _bridge(daemon, request.words[0])
    version = request.version
    if version in (OF11, OF12):
        raise UnixctlError(
            f"dump-tables: OpenFlow1{version - OF10} is not supported (use another version)"
        )
    # Entries are separated by blank lines: a table, or a run of dittos.
    entries: list[list[str]] = []
    previous: tuple[int, int, int] | None = None
    ditto: list[int] = []
    for table in bridge.tables[:N_TABLES_SHOWN]:
        stats = (len(table.rules), table.lookups, table.matched)
        if stats == previous:
            ditto.append(table.table_id)
            continue
        entries += _ditto(ditto)
        ditto = []
        entries.append(_table_stats(table.table_id, stats, version, first=previous is None))
        previous = stats
    entries += _ditto(ditto)
    lines = [f"OFPST_TABLE reply{_version_text(version)} (xid=0x2):"]
    for i, entry in enumerate(entries):
        if i:
            lines.append("")
        lines += entry
    return "".join(line + "\n" for line in lines)


def _ditto(tables: list[int]) -> list[list[str]]:
    """The entry for a run of tables like the one before them (none for no run)."""
    if not tables:
        return []
    if len(tables) == 1:
        return [[f"  table {tables[0]}: ditto"]]
    return [[f"  tables {tables[0]}...{tables[-1]}: ditto"]]


def _table_stats(
    table_id: int, stats: tuple[int, int, int], version: int, *, first: bool
) -> list[str]:
    active, lookups, matched = stats
    lines = [f"  table {table_id}:", f"    active={active}, lookup={lookups}, matched={matched}"]
    if version == OF10:
        # OpenFlow 1.0 describes what every table can do; all of ours are alike.
        if first:
            lines += [
                f"    max_entries={_MAX_ENTRIES}",
                "    matching:",
                f"      {_OF10_MATCHING}",
            ]
        else:
            lines.append("    (same features)")
    return lines


_CAPABILITIES = {
    10: "FLOW_STATS TABLE_STATS PORT_STATS QUEUE_STATS ARP_MATCH_IP",
    11: "FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS ARP_MATCH_IP",
    12: "FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS",
    13: "FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS",
    14: "FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS BUNDLES",
    15: "FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS BUNDLES",
}
_OF10_ACTIONS = (
    "output enqueue set_vlan_vid set_vlan_pcp strip_vlan mod_dl_src mod_dl_dst mod_nw_src "
    "mod_nw_dst mod_nw_tos mod_tp_src mod_tp_dst"
)


def _show(daemon: Daemon, request: _Request) -> str:
    dp, bridge = _bridge(daemon, request.words[0])
    version = request.version
    of = _version_text(version)
    local = bridge.ports.get(OFPP_LOCAL)
    dpid = int.from_bytes(_mac(dp, local), "big") if local is not None else 0
    lines = [
        f"OFPT_FEATURES_REPLY{of} (xid=0x2): dpid:{dpid:016x}",
        f"n_tables:{N_TABLES_SHOWN}, n_buffers:0",
        f"capabilities: {_CAPABILITIES[version]}",
    ]
    if version == OF10:
        lines.append(f"actions: {_OF10_ACTIONS}")
    # From OpenFlow 1.3 the ports come in a reply of their own.
    if version >= OF13:
        lines.append(f"OFPST_PORT_DESC reply{of} (xid=0x3):")
    for port in _ports_in_order(bridge):
        lines += _port_desc(dp, port, version)
    lines.append(
        f"OFPT_GET_CONFIG_REPLY{of} (xid={5 if version >= OF13 else 4:#x}): "
        "frags=normal miss_send_len=0"
    )
    return "".join(line + "\n" for line in lines)


def _mac(dp: Datapath, port: OfPort) -> bytes:
    device = dp.devices.get(port.odp_port) if port.odp_port is not None else None
    if device is not None:
        return device.mac
    # A patch or tunnel port has no device: the address its Interface's
    # mac_in_use shows stands in (Open vSwitch picks a random one).
    return vport_mac(port.name)


def _port_desc(dp: Datapath, port: OfPort, version: int) -> list[str]:
    device = dp.devices.get(port.odp_port) if port.odp_port is not None else None
    number = "LOCAL" if port.ofport == OFPP_LOCAL else str(port.ofport)
    mac = ":".join(f"{b:02x}" for b in _mac(dp, port))
    admin_up = device is None or device.up
    link_up = device is None or device.carrier
    config = "0" if admin_up else "PORT_DOWN"
    state = ("0" if version == OF10 else "LIVE") if link_up else "LINK_DOWN"
    return [
        f" {number}({port.name}): addr:{mac}",
        f"     config:     {config}",
        f"     state:      {state}",
        "     speed: 0 Mbps now, 0 Mbps max",
    ]
