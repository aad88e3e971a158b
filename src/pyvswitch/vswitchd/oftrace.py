"""``ofproto/trace``: its arguments read as ovs-vswitchd 3.1 reads them.

The forms are Open vSwitch's (``ofproto/ofproto-dpif-trace.c``)::

    ofproto/trace [OPTIONS] [DP] ODP_FLOW [-generate | PACKET]
    ofproto/trace [OPTIONS] BRIDGE BR_FLOW [-generate | PACKET]

Options may stand anywhere among the words. ``PACKET`` is an Ethernet frame
in hex: its fields are traced, and only the metadata (the input port, the
tunnel) comes from the flow. ``-generate`` traces the flow as written, as if
a packet made from it had arrived. Either way the trace has a real packet's
side effects (NORMAL learns the source MAC), as in Open vSwitch.

Open vSwitch composes the ``-generate`` packet (``--l7`` and ``--l7-len``
shape its payload) only for what it does with real packets beyond
translation: executing controller and sampling actions, which pyvswitch
does not have. So no packet is composed here, and those two options are
checked as Open vSwitch checks them and change nothing, there as here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pyvswitch.flow.layout import DL_TYPE_NONE, FIELDS
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.odp_text import OdpKeyError, parse_odp_flow
from pyvswitch.flow.ofp_text import parse_match
from pyvswitch.ofproto.ofproto import OfprotoError
from pyvswitch.vswitchd.unixctl import UnixctlError

if TYPE_CHECKING:
    from pyvswitch.vswitchd.daemon import Daemon, Datapath

#: What ``list-commands`` shows, word for word Open vSwitch's.
USAGE = "{[dp_name] odp_flow | bridge br_flow} [OPTIONS...] [-generate|packet]"

#: The datapath port number of "no port", which a key without in_port() has.
ODPP_NONE = 0xFFFFFFFF
#: The most L7 data ``--l7-len`` may ask for.
MAX_L7_LEN = 64000

# Pairs of hex digits, with blanks allowed between pairs but not inside one,
# as Open vSwitch's ofpbuf_put_hex() reads them.
_HEX = re.compile(r"(?:[ \t\r\n]*[0-9a-fA-F]{2})*[ \t\r\n]*")
# The number atoi() reads at the start of a string.
_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_ETH_HEADER_LEN = 14


def trace(daemon: Daemon, args: list[str]) -> str:
    """Run ``ofproto/trace`` with its arguments; errors are Open vSwitch's texts."""
    words, generate = _split_options(args)
    packet = None
    if not generate and len(words) > 1:
        # The last word is the packet if it reads as one; with three words it must.
        try:
            packet = _eth_from_hex(words[-1])
        except UnixctlError:
            if len(words) > 2:
                raise
        else:
            words.pop()
    if len(words) not in (1, 2):
        raise UnixctlError("Syntax error")
    try:
        key, mask = parse_odp_flow(words[-1])
    except OdpKeyError as exc:
        # A datapath flow, but not a usable key: OVS says so as it is.
        raise UnixctlError(str(exc)) from None
    except FlowParseError as exc:
        # Not a datapath flow: then it is an OpenFlow flow after a bridge name.
        if len(words) != 2:
            raise UnixctlError(f"{exc} (or the bridge name was omitted)") from None
        return _trace_bridge(daemon, words[0], words[1], packet, generate)
    dp = _datapath(daemon, words)
    if dp is None:
        raise UnixctlError("Cannot find the datapath")
    try:
        text = dp.ofp.trace(_full_key(key, mask), daemon.clock(), packet, generated=generate)
    except OfprotoError as exc:
        raise UnixctlError(str(exc)) from None
    return text + "\n"


def _split_options(args: list[str]) -> tuple[list[str], bool]:
    """The words that are not options, and whether ``-generate`` was given."""
    words: list[str] = []
    generate = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-generate", "--generate"):
            generate = True
        elif arg in ("--l7", "--l7-len", "--ct-next"):
            if i + 1 >= len(args):
                raise UnixctlError(f"Missing argument for option {arg}")
            i += 1
            _check_option(arg, args[i])
        elif arg.startswith("-"):
            raise UnixctlError(f"{arg}: unknown option")
        elif len(words) >= 3:
            raise UnixctlError("too many arguments")
        else:
            words.append(arg)
        i += 1
    return words, generate


def _check_option(option: str, value: str) -> None:
    """Refuse what Open vSwitch refuses in an option's value."""
    if option == "--ct-next":
        # The states it sets are read only after a ct() action recirculates.
        raise UnixctlError("--ct-next: not supported: pyvswitch has no connection tracking")
    if option == "--l7":
        _put_hex(value)
        return
    found = _ATOI.match(value)
    length = int(found.group(1)) if found else 0
    # Open vSwitch keeps the length unsigned, so a negative one is too much too.
    if not 0 <= length <= MAX_L7_LEN:
        raise UnixctlError(f"{value}: too much L7 data")


def _put_hex(text: str) -> bytes:
    """Bytes written in hex as Open vSwitch reads them, or its error."""
    if _HEX.fullmatch(text) is None:
        raise UnixctlError("Trailing garbage in packet data")
    return bytes.fromhex("".join(text.split()))


def _eth_from_hex(text: str) -> bytes:
    """An Ethernet frame written in hex, as ``eth_from_hex()`` accepts it."""
    frame = _put_hex(text)
    if len(frame) < _ETH_HEADER_LEN:
        raise UnixctlError("Packet data too short for Ethernet")
    return frame


def _datapath(daemon: Daemon, words: list[str]) -> Datapath | None:
    """The datapath named by the first of two words, or the only one when one word."""
    if len(words) == 2:
        return daemon.datapaths.get(words[0].removeprefix("ovs-"))
    if len(daemon.datapaths) == 1:
        return next(iter(daemon.datapaths.values()))
    return None


def _full_key(key: int, mask: int) -> int:
    """A datapath flow read as a whole packet's key, as ``odp_flow_key_to_flow()`` reads it.

    A key without ``in_port()`` comes from no port, and one without
    ``eth_type()`` is an 802.3 frame.
    """
    if not mask & FIELDS["in_port"].mask:
        key |= FIELDS["in_port"].put(ODPP_NONE)
    if not mask & FIELDS["dl_type"].mask:
        key |= FIELDS["dl_type"].put(DL_TYPE_NONE)
    return key


def _trace_bridge(
    daemon: Daemon, name: str, flow_text: str, packet: bytes | None, generate: bool
) -> str:
    """``BRIDGE BR_FLOW``: the flow in OpenFlow terms, its ports by number or name."""
    dp = next((d for d in daemon.datapaths.values() if name in d.ofp.bridges), None)
    if dp is None:
        raise UnixctlError(f"{name}: unknown bridge")
    names = {p.name: p.ofport for p in dp.ofp.bridges[name].ports.values()}
    try:
        match, _ = parse_match(flow_text, port_names=names)
    except FlowParseError as exc:
        raise UnixctlError(f"Bad openflow flow syntax: {flow_text}: {exc}") from None
    text = dp.ofp.trace_openflow(name, match.value, daemon.clock(), packet, generated=generate)
    return text + "\n"
