"""The daemon's control commands, as ovs-appctl knows them from ovs-vswitchd.

``dpif/show``, ``dpctl/del-flows`` (the other ``dpctl/`` commands,
``dpif/dump-flows`` and ``ofproto/list`` are :mod:`pyvswitch.vswitchd.dpctl`'s),
``ofproto/trace``, ``fdb/show``, ``fdb/flush``, ``netdev-dummy/receive``,
``time/stop``, ``time/warp``, the ``vlog/`` commands and ``exit``, with Open
vSwitch's output layouts and messages; and our own ``capture/show``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pyvswitch.flow.flow import Flow
from pyvswitch.flow.layout import DL_TYPE_NONE, FRAG_ANY, FRAG_LATER, VLAN_CFI
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.odp_text import OdpKeyError, compose_packet, parse_odp_flow
from pyvswitch.netdev.dummy import DummyNetdev
from pyvswitch.ofproto.tnl_config import format_dpif_show
from pyvswitch.ofproto.xlate_tunnel import TUNNEL_TYPES
from pyvswitch.packet.checksum import checksum, ones_complement_sum
from pyvswitch.vswitchd.dpctl import register_dpctl_commands
from pyvswitch.vswitchd.ofctl_commands import register_ofctl_commands
from pyvswitch.vswitchd.oftrace import USAGE as TRACE_USAGE
from pyvswitch.vswitchd.oftrace import trace
from pyvswitch.vswitchd.timeval import register_timeval_commands
from pyvswitch.vswitchd.tnl_commands import register_tnl_commands
from pyvswitch.vswitchd.unixctl import UNLIMITED, UnixctlError, UnixctlServer
from pyvswitch.vswitchd.vlog import installed, register_vlog_commands

if TYPE_CHECKING:
    from pyvswitch.vswitchd.daemon import Daemon, Datapath

OFPP_LOCAL = 0xFFFE
#: The usage Open vSwitch 3.1 registers (``list-commands`` shows it).
RECEIVE_USAGE = "name [--qid queue_id] packet|flow [--len packet_len]"


async def register_commands(daemon: Daemon) -> UnixctlServer:
    """Start the control socket with the daemon's commands on it."""
    server = UnixctlServer()
    server.register("dpif/show", "", 0, 0, lambda _args: dpif_show(daemon))
    register_dpctl_commands(daemon, server)
    server.register("dpctl/del-flows", "[dp]", 0, 1, lambda args: del_flows(daemon, args))
    server.register("ofproto/trace", TRACE_USAGE, 1, UNLIMITED, lambda args: trace(daemon, args))
    server.register("fdb/show", "bridge", 1, 1, lambda args: fdb_show(daemon, args[0]))
    server.register("fdb/flush", "[bridge]", 0, 1, lambda args: fdb_flush(daemon, args))
    server.register(
        "netdev-dummy/receive", RECEIVE_USAGE, 2, UNLIMITED, lambda args: receive(daemon, args)
    )
    server.register("exit", "[--cleanup]", 0, 1, lambda _args: _exit(daemon))
    server.register("capture/show", "", 0, 0, lambda _args: daemon.capture.show())
    register_timeval_commands(server, daemon.clock, daemon.run_once)
    vlog = installed()
    if vlog is not None:
        register_vlog_commands(server, vlog)
    register_ofctl_commands(daemon, server)
    server.register(
        "coverage/read-counter", "COUNTER", 1, 1, lambda args: _read_counter(daemon, args[0])
    )
    register_tnl_commands(daemon, server)
    await server.listen(daemon.rundir / "pvs-vswitchd.ctl")
    return server


def _exit(daemon: Daemon) -> str:
    # Open vSwitch's --cleanup also removes the datapath and the devices it
    # made; pvs-vswitchd always removes the devices it made when it exits
    # (the datapath lives in the process), so --cleanup changes nothing.
    # Another argument is ignored, as in Open vSwitch.
    daemon.stop.set()
    return ""


def _read_counter(daemon: Daemon, name: str) -> str:
    """``coverage/read-counter NAME``: a drop counter's total, as Open vSwitch prints it.

    The datapaths count drops under Open vSwitch's coverage names; a name
    nothing counted reads 0, as an unknown counter does in Open vSwitch.
    """
    total = sum(dp.ofp.datapath.tunnels.coverage[name] for dp in daemon.datapaths.values())
    return f"{total}\n"


def dpif_show(daemon: Daemon) -> str:
    """OVS's layout: a datapath line with lookup counters, then bridges and their ports."""
    out = []
    for kind in sorted(daemon.datapaths):
        dp = daemon.datapaths[kind]
        stats = dp.ofp.datapath.stats
        out.append(f"{dp.full_name}: hit:{stats.hit} missed:{stats.missed}")
        for name in sorted(dp.ofp.bridges):
            out.append(f"  {name}:")
            bridge = dp.ofp.bridges[name]
            for port in sorted(bridge.ports.values(), key=lambda p: p.name):
                odp = "none" if port.odp_port is None else str(port.odp_port)
                tunnel = dp.ofp.tunnels.port(port.name) if port.type in TUNNEL_TYPES else None
                if tunnel is not None:
                    kind_text = format_dpif_show(tunnel.config)
                elif port.type == "patch":
                    kind_text = f"patch: peer={port.peer}"
                elif port.ofport == OFPP_LOCAL:
                    kind_text = "dummy-internal" if dp.kind == "dummy" else "internal"
                else:
                    kind_text = port.type
                    device = dp.devices.get(port.odp_port) if port.odp_port is not None else None
                    ifindex = getattr(device, "ifindex", None)
                    if isinstance(ifindex, int) and ifindex >= 0:
                        # A dummy's configuration, as netdev-dummy reports it.
                        kind_text += f": ifindex={ifindex}"
                out.append(f"    {port.name} {port.ofport}/{odp}: ({kind_text})")
    # No datapath, no output (not an empty line), as in Open vSwitch.
    return "".join(f"{line}\n" for line in out)


def _one_datapath(daemon: Daemon, args: list[str]) -> Datapath:
    """The datapath named in ``args``, or the only one there is (dpctl's rule)."""
    if args:
        found = next((d for d in daemon.datapaths.values() if d.full_name == args[0]), None)
        if found is None:
            raise UnixctlError("pvs-vswitchd: datapath not found (Invalid argument)")
        return found
    if len(daemon.datapaths) == 1:
        return next(iter(daemon.datapaths.values()))
    reason = "no datapaths exist" if not daemon.datapaths else "multiple datapaths, specify one"
    raise UnixctlError(
        f"pvs-vswitchd: {reason}\npvs-vswitchd: datapath not found (Invalid argument)"
    )


def del_flows(daemon: Daemon, args: list[str]) -> str:
    """``dpctl/del-flows [DP]``: remove every megaflow; the next packets are upcalls again."""
    if args and not any(d.full_name == args[0] for d in daemon.datapaths.values()):
        # Open vSwitch reads a FILE of flows to delete here; we do not.
        raise UnixctlError(
            f'pvs-vswitchd: "{args[0]}" is not a datapath '
            "(deleting the flows listed in a file is not supported)"
        )
    _one_datapath(daemon, args).ofp.datapath.flush()
    return ""


def fdb_flush(daemon: Daemon, args: list[str]) -> str:
    """``fdb/flush [BRIDGE]``: forget the learned MACs of one bridge, or of all."""
    bridges = [
        (dp, bridge)
        for dp in daemon.datapaths.values()
        for name, bridge in dp.ofp.bridges.items()
        if not args or name == args[0]
    ]
    if args and not bridges:
        raise UnixctlError("no such bridge")
    for dp, bridge in bridges:
        bridge.macs.flush()
        # Cached forwarding decisions that used the forgotten MACs must go.
        dp.ofp.need_revalidate = True
        dp.ofp.revalidate(daemon.clock())
    return "table successfully flushed"


def fdb_show(daemon: Daemon, name: str) -> str:
    for dp in daemon.datapaths.values():
        bridge = dp.ofp.bridges.get(name)
        if bridge is not None:
            lines = [" port  VLAN  MAC                Age"]
            for port, vlan, mac, age in bridge.macs.entries(daemon.clock()):
                text = ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))
                shown = "LOCAL" if port == OFPP_LOCAL else str(port)
                lines.append(f"{shown:>5}  {vlan:4d}  {text}  {int(age):3d}")
            return "\n".join(lines) + "\n"
    raise UnixctlError("no such bridge")


def receive(daemon: Daemon, args: list[str]) -> str:
    """``netdev-dummy/receive NAME [--qid N] PACKET|FLOW [--len N]...``, as Open vSwitch 3.1.

    Each PACKET (hex bytes) or FLOW (a datapath key, made into a frame as
    OVS's ``flow_compose()`` makes it; ``--len N`` pads that frame to N
    bytes) arrives on dummy port NAME in turn, one per receive, as OVS's
    dummy receive queue hands them to the datapath one at a time. The first
    argument that is wrong ends the command with OVS's error, but what came
    before it has been received, as in OVS, which queues each frame as soon
    as it is read.
    """
    dp, odp, dev = _dummy_port(daemon, args[0])
    rest = args[1:]
    if len(rest) > 1 and rest[0] == "--qid":
        # A dummy port here has one receive queue, queue 0. OVS reads the
        # number with strtol(), so text that is not a number means 0.
        if _c_int(rest[1]) != 0:
            raise UnixctlError("bad rx queue id.")
        rest = rest[2:]
    i = 0
    while i < len(rest):
        text = rest[i]
        frame = _hex_frame(text)
        if frame is None:
            size = 0
            if i + 1 < len(rest) and rest[i + 1] == "--len":
                size = _packet_len(rest[i + 2] if i + 2 < len(rest) else None)
                i += 2
            frame = _flow_frame(text, size)
        dev.inject([frame])
        received = dev.recv(1)
        if received:
            daemon.forward(dp, odp, received)
        i += 1
    return ""


#: OVS's ETH_TOTAL_MIN: ``--len`` asks for at least a minimum Ethernet frame.
_MIN_FRAME = 60
#: The largest ``--len`` we build. OVS builds any size an int holds (even
#: 2 GB); past 65535 bytes no IP length field can describe the frame, and
#: a test asking for more is a mistake that should not cost the daemon the
#: memory.
_MAX_FRAME = 65535
#: dp_packet_put_hex()'s grammar: two-digit bytes, blanks only between them.
_HEX_FRAME = re.compile(r"(?:[ \t\r\n]*[0-9a-fA-F]{2})*[ \t\r\n]*")
#: What odp_flow_from_string() skips between attributes.
_DELIMITERS = ", \t\r\n"


def _dummy_port(daemon: Daemon, name: str) -> tuple[Datapath, int, DummyNetdev]:
    """The datapath, port number and device of dummy port ``name``.

    OVS answers "no such dummy netdev" alike for a name it does not know and
    for a port of another kind (a tunnel, a patch port).
    """
    for dp in daemon.datapaths.values():
        for odp, dev in dp.devices.items():
            if dev.name == name and isinstance(dev, DummyNetdev):
                return dp, odp, dev
    raise UnixctlError("no such dummy netdev")


def _c_int(text: str) -> int:
    """``text`` read as OVS reads a number here: C's strtol() base 10, stored in an int.

    Leading blanks and a sign are taken, reading stops at the first
    non-digit, no digits at all is 0, and the long is cut to 32 bits.
    """
    found = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", text)
    value = int(found[1]) if found else 0
    value = max(-(2**63), min(2**63 - 1, value))
    return (value + 2**31) % 2**32 - 2**31


def _packet_len(text: str | None) -> int:
    """The N of ``FLOW --len N``, refused as OVS refuses it."""
    if text is None:
        # OVS 3.1 reads past its arguments here and ovs-vswitchd crashes.
        raise UnixctlError("--len needs a packet length after it")
    size = _c_int(text)
    if size < _MIN_FRAME:
        raise UnixctlError("too small packet len")
    if size > _MAX_FRAME:
        raise UnixctlError(f"packet len {size} is too large (at most {_MAX_FRAME})")
    return size


def _hex_frame(text: str) -> bytes | None:
    """``text`` as a frame in hex, or None when it is not one (then it may be a flow).

    OVS takes two-digit bytes with blanks between them (not inside one) and
    at least an Ethernet header, 14 bytes.
    """
    if _HEX_FRAME.fullmatch(text) is None:
        return None
    frame = bytes.fromhex("".join(text.split()))
    return frame if len(frame) >= 14 else None


def _flow_frame(text: str, size: int) -> bytes:
    """The frame OVS makes of datapath flow ``text``, ``size`` bytes long when not 0.

    Without a size the frame carries OVS's 64 bytes of payload; with one it
    is built without payload and padded to ``size`` by :func:`_expand`, and
    a frame already longer than ``size`` is refused with an empty error, as
    OVS does. The port is the one named, whatever ``in_port()`` says.
    """
    try:
        key, _ = parse_odp_flow(text)
    except OdpKeyError as exc:
        raise UnixctlError(str(exc)) from None
    except FlowParseError:
        raise UnixctlError(f"syntax error at {_failing_attribute(text)}") from None
    if not size:
        return compose_packet(key)
    frame = compose_packet(key, l7_len=0)
    if len(frame) > size:
        raise UnixctlError("")
    return _expand(frame, key, size) if len(frame) < size else frame


def _failing_attribute(text: str) -> str:
    """``text`` from the start of its first attribute that does not parse.

    That is where odp_flow_from_string() says "syntax error at": it reads
    one attribute after another and reports the rest of the text from the
    one it could not read. The attributes are found by their parentheses,
    and the first prefix of them that our parser refuses names the culprit.
    """
    spans = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in _DELIMITERS:
            pos += 1
        if pos == n:
            break
        start, depth = pos, 0
        while pos < n:
            char = text[pos]
            pos += 1
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth <= 0:
                    break
            elif depth == 0 and char in _DELIMITERS:
                pos -= 1
                break
        spans.append((start, pos))
    for start, end in spans:
        try:
            parse_odp_flow(text[:end])
        except OdpKeyError:
            # The text reads; OVS refuses such a key only after reading it all.
            continue
        except FlowParseError:
            return text[start:]
    return text[spans[-1][0] :] if spans else text


def _expand(frame: bytes, key: int, size: int) -> bytes:
    """``frame`` (composed from ``key`` without payload) padded with zeros to ``size`` bytes.

    As OVS's packet_expand(): an 802.3 frame's length field, the IPv4 total
    length and header checksum and the IPv6 payload length are set for the
    new size, and so are the L4 checksums (TCP, UDP, ICMP, IGMP, ICMPv6) of
    all but later fragments. The UDP length is OVS's: it counts the padding
    twice (the new L4 length plus the padding), so a frame grown by 40 bytes
    has a UDP length 80 more than its bare header's 8.
    """
    flow = Flow.from_key(key)
    extra = size - len(frame)
    out = bytearray(frame) + bytes(extra)
    if flow.dl_type == DL_TYPE_NONE:
        # OVS writes the length where the EtherType is (the frame is 802.3).
        out[12:14] = (len(out) & 0xFFFF).to_bytes(2, "big")
        return bytes(out)
    if flow.dl_type not in (0x0800, 0x86DD):
        return bytes(out)
    l3 = 14
    for tci in (flow.vlan_tci, flow.vlan_tci1):
        if not tci & VLAN_CFI:
            break
        l3 += 4
    if flow.dl_type == 0x0800:
        l4 = l3 + (out[l3] & 0x0F) * 4
        total = len(out) - l3
        out[l3 + 2 : l3 + 4] = (total & 0xFFFF).to_bytes(2, "big")
        out[l3 + 10 : l3 + 12] = bytes(2)
        out[l3 + 10 : l3 + 12] = checksum(out[l3:l4]).to_bytes(2, "big")
        addresses = bytes(out[l3 + 12 : l3 + 20])
    else:
        # Our IPv6 fragments carry a fragment header (OVS's do not): the
        # payload length counts it, the L4 header follows it.
        l4 = l3 + 40 + (8 if flow.nw_frag & FRAG_ANY else 0)
        out[l3 + 4 : l3 + 6] = ((len(out) - l3 - 40) & 0xFFFF).to_bytes(2, "big")
        addresses = bytes(out[l3 + 8 : l3 + 40])
    l4_len = len(out) - l4
    proto = flow.nw_proto
    if flow.nw_frag & FRAG_LATER:
        return bytes(out)
    if proto == 17:
        out[l4 + 4 : l4 + 6] = ((l4_len + extra) & 0xFFFF).to_bytes(2, "big")
    # Where each protocol keeps its checksum, and whether a pseudo-header counts.
    at = {6: (16, True), 17: (6, True), 1: (2, False), 2: (2, False), 58: (2, True)}.get(proto)
    if at is not None:
        offset, pseudo = at
        initial = 0
        if pseudo:
            # The ones'-complement sum of the addresses, length and protocol
            # is the same for IPv4's pseudo-header layout as for IPv6's.
            header = addresses + l4_len.to_bytes(4, "big") + proto.to_bytes(4, "big")
            initial = ones_complement_sum(header)
        out[l4 + offset : l4 + offset + 2] = bytes(2)
        csum = checksum(out[l4:], initial)
        if proto == 17 and csum == 0:
            csum = 0xFFFF  # UDP's "no checksum" value is not a checksum
        out[l4 + offset : l4 + offset + 2] = csum.to_bytes(2, "big")
    return bytes(out)
