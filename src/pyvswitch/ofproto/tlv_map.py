"""Geneve options as OpenFlow fields: a bridge's TLV map, as Open vSwitch 3.1 keeps it.

``ovs-ofctl add-tlv-map br0 "{class=0xffff,type=0x80,len=4}->tun_metadata0"``
tells a bridge that the Geneve option of class 0xffff and type 0x80, four
bytes of data, is the OpenFlow field ``tun_metadata0``. Each bridge has its
own map (Open vSwitch keeps one per ofproto: a map added to br0 is not
br1's), 64 fields and 256 bytes of option space in all, each option at most
124 bytes. :class:`TlvMap` is one bridge's map, immutable;
:func:`table_mod` is Open vSwitch's ``tun_metadata_table_mod()`` with its
errors (``NXTTMFC_ALREADY_MAPPED``, ``NXTTMFC_DUP_ENTRY``,
``NXTTMFC_TABLE_FULL``, ``NXTTMFC_BAD_OPT_LEN``, ``NXTTMFC_BAD_FIELD_IDX``,
and ``NXTTMFC_INVALID_TLV_DEL`` for a mapping a flow still uses).

**Where options live.** A popped Geneve packet's options stay in its
datapath key as the wire had them (``tun_gnv_opts``, as Open vSwitch's
"UDPIF" form), so the datapath needs no map, and the one datapath serves
bridges whose maps differ. Translation, which knows the bridge, turns them
into the ``tun_metadataN`` fields (:func:`metadata_from_key`): an option
the map does not know is skipped, unless it is critical, and then, as for an
option whose length is not the mapped one, the packet is dropped (counted
as ``drop_action_invalid_tunnel_metadata``). What translation looked at goes
back into the megaflow in the options' own terms (:func:`datapath_mask`):
the options' length and every option's class, type and length exactly, and
the data bits rules looked at. Open vSwitch 3.1 matches the option headers
only when a rule looked at an option, so there a packet with an unknown
critical option can hit a flow made for one with a known option of the same
length and be forwarded; here it cannot. On output to a Geneve port the
present fields become options again (:func:`options_for_push`), in field
order, with the header's critical bit set when one of them is critical.

**Flows.** ovs-ofctl reads ``tun_metadataN`` without the map (124 bytes, a
value as long as its significant bytes); the switch then checks a flow
against its map (:func:`check_flow`): a field the map does not name is
``NXFMFC_INVALID_TLV_FIELD``, a ``move`` past the option's length is
``OFPBAC_BAD_SET_LEN``. Where Open vSwitch silently keeps part of a value
longer than the option (``tun_metadata0=0x1122334455`` for a 4-byte option
becomes ``0x11223344``, ``load:1->tun_metadata0[40]`` writes bit 24), we
refuse the flow. A match or write that covers the whole option is stored as
exact, so it prints as Open vSwitch prints it (``tun_metadata0=0xa``).

Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvswitch.flow.layout import (
    FIELDS,
    TUN_METADATA_NUM,
    TUN_METADATA_SLOT,
    TUN_METADATA_TOT_SIZE,
)
from pyvswitch.flow.match import FlowParseError, Match
from pyvswitch.flow.odp_text import geneve_raw
from pyvswitch.flow.ofp_text import TUN_METADATA_EXACT
from pyvswitch.ofproto.actions import OutputReg, RegLoad, RegMove, SetField
from pyvswitch.ofproto.actions_text import is_tun_metadata
from pyvswitch.packet.tunnel import GeneveOption

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pyvswitch.flow.flow import Flow
    from pyvswitch.ofproto.actions import Action, FieldRef

__all__ = [
    "ADD",
    "CLEAR",
    "DELETE",
    "EMPTY",
    "TlvFieldError",
    "TlvMap",
    "TlvMapError",
    "TlvMapping",
    "check_flow",
    "datapath_mask",
    "fields_used",
    "format_table_mod",
    "format_table_reply",
    "metadata_from_key",
    "metadata_from_options",
    "options_for_push",
    "parse_mappings",
    "push_mask",
    "table_mod",
]

#: The commands of a TLV table mod (OVS's NXTTMC_*), as ovs-ofctl prints them.
ADD = "ADD"
DELETE = "DEL"
CLEAR = "CLEAR"
_COMMAND_CODES = {ADD: 0, DELETE: 1, CLEAR: 2}

#: The largest option (5 bits of 4-byte words).
MAX_OPTION_LEN = TUN_METADATA_SLOT
_GENEVE_CRITICAL = 0x80
_PRESENT = FIELDS["tun_md_present"]
_GNV_LEN = FIELDS["tun_gnv_len"]
_GNV_OPTS = FIELDS["tun_gnv_opts"]


@dataclass(frozen=True, slots=True)
class TlvMapping:
    """One mapping: the Geneve option ``{class,type,len}`` is field ``tun_metadata<index>``."""

    opt_class: int
    opt_type: int
    length: int
    index: int

    @property
    def field(self) -> str:
        return f"tun_metadata{self.index}"


class TlvMapError(Exception):
    """The switch refused a TLV table mod; ``code`` is Open vSwitch's error name.

    ``warning`` is the log line Open vSwitch prints when it cannot even
    decode the request (a bad length or field index), else empty.
    """

    def __init__(self, code: str, warning: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.warning = warning


class TlvFieldError(FlowParseError):
    """A flow the switch refuses because of its TLV map; ``code`` is the OpenFlow error.

    ``NXFMFC_INVALID_TLV_FIELD`` (a field the map does not name) or
    ``OFPBAC_BAD_SET_LEN`` (bits past an option's length).
    """

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class TlvMap:
    """One bridge's TLV map: the mappings by field index."""

    mappings: tuple[TlvMapping, ...] = ()

    def by_index(self, index: int) -> TlvMapping | None:
        """The mapping of ``tun_metadata<index>``, or None."""
        for mapping in self.mappings:
            if mapping.index == index:
                return mapping
        return None

    def lookup(self, opt_class: int, opt_type: int) -> TlvMapping | None:
        """The mapping of option ``opt_class``/``opt_type``, or None."""
        for mapping in self.mappings:
            if mapping.opt_class == opt_class and mapping.opt_type == opt_type:
                return mapping
        return None

    @property
    def allocated(self) -> int:
        """The option space the mappings use, in bytes."""
        return sum(mapping.length for mapping in self.mappings)


EMPTY = TlvMap()


# -- the table and its changes -------------------------------------------------------

# ovs-ofctl's "{class=%i,type=%i,len=%i}->tun_metadata%i", one after another.
_NUMBER = r"([+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+))"
_MAPPING = re.compile(
    rf"\{{class={_NUMBER},type={_NUMBER},len={_NUMBER}\}}->tun_metadata{_NUMBER}"
)


def _scan_int(text: str, bits: int, what: str, whole: str) -> int:
    """A number as C's ``%i`` reads it (hex, octal, decimal); refused if it does not fit."""
    negative = text.startswith("-")
    body = text.lstrip("+-")
    try:
        value = (
            int(body, 16) if body[:2].lower() == "0x" else int(body, 8 if body[0] == "0" else 10)
        )
    except ValueError:
        # "08": %i reads the octal 0 and stops at the 8, where a comma must be.
        raise FlowParseError("invalid tlv mapping") from None
    if negative or value >> bits:
        # ovs-ofctl keeps the low bits of a number that does not fit; a map
        # that names another option than the one written is worse than none.
        raise FlowParseError(f"{whole}: {what} {text} does not fit in {bits} bits")
    return value


def parse_mappings(text: str) -> tuple[TlvMapping, ...]:
    """Read ``{class=0xffff,type=0x80,len=4}->tun_metadata0[,...]`` as ovs-ofctl reads it.

    The empty string is no mappings. Raises :class:`FlowParseError` with
    ovs-ofctl's ``invalid tlv mapping`` for anything else that is not a
    list of mappings.
    """
    mappings: list[TlvMapping] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ",":
            pos += 1
        found = _MAPPING.match(text, pos)
        if found is None:
            raise FlowParseError("invalid tlv mapping")
        whole = found.group(0)
        opt_class, opt_type, length, index = found.groups()
        mappings.append(
            TlvMapping(
                _scan_int(opt_class, 16, "option class", whole),
                _scan_int(opt_type, 8, "option type", whole),
                _scan_int(length, 8, "option length", whole),
                _scan_int(index, 16, "field index", whole),
            )
        )
        pos = found.end()
    return tuple(mappings)


def _decode(mappings: Sequence[TlvMapping]) -> None:
    """The checks the switch makes as it decodes a request (``decode_tlv_table_mappings()``)."""
    for mapping in mappings:
        if mapping.length % 4 or mapping.length > MAX_OPTION_LEN:
            raise TlvMapError(
                "NXTTMFC_BAD_OPT_LEN",
                f"tlv table option length ({mapping.length}) is not a valid option size",
            )
        if mapping.index >= TUN_METADATA_NUM:
            raise TlvMapError(
                "NXTTMFC_BAD_FIELD_IDX",
                f"tlv table field index ({mapping.index}) is too large "
                f"(max {TUN_METADATA_NUM - 1})",
            )


def table_mod(
    tlv: TlvMap, command: str, mappings: Sequence[TlvMapping], in_use: Iterable[int] = ()
) -> TlvMap:
    """The map after a TLV table mod, as Open vSwitch makes it, or :class:`TlvMapError`.

    ``in_use`` are the field indices some flow of the bridge uses: deleting
    one of those (or clearing while any is used) is refused. A request is
    applied whole or not at all.
    """
    _decode(mappings)
    used = set(in_use)
    if command == CLEAR:
        if any(m.index in used for m in tlv.mappings):
            raise TlvMapError("NXTTMFC_INVALID_TLV_DEL")
        return EMPTY
    if command == DELETE:
        gone = {m.index for m in mappings}
        if gone & used & {m.index for m in tlv.mappings}:
            raise TlvMapError("NXTTMFC_INVALID_TLV_DEL")
        # An index that is not mapped is no error; class, type and length
        # are not compared.
        return TlvMap(tuple(m for m in tlv.mappings if m.index not in gone))
    if command != ADD:
        raise ValueError(f"{command}: not a TLV table command")
    result = list(tlv.mappings)
    for mapping in mappings:
        if any(m.index == mapping.index for m in result):
            raise TlvMapError("NXTTMFC_ALREADY_MAPPED")
        if any((m.opt_class, m.opt_type) == (mapping.opt_class, mapping.opt_type) for m in result):
            raise TlvMapError("NXTTMFC_DUP_ENTRY")
        # Space is handed out in 4-byte pieces that need not be contiguous,
        # so the table is full only when the free space is too small.
        if sum(m.length for m in result) + mapping.length > TUN_METADATA_TOT_SIZE:
            raise TlvMapError("NXTTMFC_TABLE_FULL")
        result.append(mapping)
    return TlvMap(tuple(sorted(result, key=lambda m: m.index)))


# -- the text ovs-ofctl prints -------------------------------------------------------------


def _version_text(version: int) -> str:
    """`` (OF1.3)`` after a message name, nothing for OpenFlow 1.0 (versions are 10..15)."""
    return "" if version == 10 else f" (OF1.{version - 10})"


def _c_hex(value: int) -> str:
    return f"{value:#x}" if value else "0"


def _mapping_lines(mappings: Iterable[TlvMapping]) -> list[str]:
    lines = ["  class  type  length  match field", " ------  ----  ------  --------------"]
    lines += [
        f" {_c_hex(m.opt_class):>6}  {_c_hex(m.opt_type):>4}  {m.length:>6}  tun_metadata{m.index}"
        for m in mappings
    ]
    return lines


def format_table_reply(tlv: TlvMap, version: int) -> str:
    """``dump-tlv-map``'s output: the ``NXT_TLV_TABLE_REPLY`` as ovs-ofctl prints it."""
    lines = [
        f"NXT_TLV_TABLE_REPLY{_version_text(version)} (xid=0x2):",
        f" max option space={TUN_METADATA_TOT_SIZE} max fields={TUN_METADATA_NUM}",
        f" allocated option space={tlv.allocated}",
        "",
        " mapping table:",
        *_mapping_lines(tlv.mappings),
    ]
    return "".join(line + "\n" for line in lines)


def _mod_xid(version: int) -> int:
    # ovs-ofctl sends two more requests first over OpenFlow 1.0.
    return 4 if version == 10 else 2


def format_table_mod(
    code: str, command: str, mappings: Sequence[TlvMapping], version: int, warning: str = ""
) -> str:
    """What ovs-ofctl prints when the switch refuses a TLV table mod with ``code``.

    The error, then the request as ovs-ofctl decodes it; a request it cannot
    decode (``warning`` says why) is shown as a hex dump, after the warning
    in Open vSwitch's log format (without its timestamp, which the program
    printing it adds).
    """
    xid = _mod_xid(version)
    of = _version_text(version)
    lines = [f"OFPT_ERROR{of} (xid={xid:#x}): {code}"]
    if warning:
        lines.insert(0, f"ofp_match|WARN|{warning}")
        lines.append(f"NXT_TLV_TABLE_MOD{of} (xid={xid:#x}): ***decode error: {code}***")
        lines += _hex_dump(_encode_table_mod(command, mappings, version, xid))
    else:
        lines.append(f"NXT_TLV_TABLE_MOD{of} (xid={xid:#x}):")
        if command == CLEAR:
            lines.append(" CLEAR")
        else:
            lines.append(f" {command} mapping table:")
            lines += _mapping_lines(mappings)
    return "\n".join(lines)


def _encode_table_mod(
    command: str, mappings: Sequence[TlvMapping], version: int, xid: int
) -> bytes:
    """The NXT_TLV_TABLE_MOD message ovs-ofctl sends (Nicira vendor message 24)."""
    body = _COMMAND_CODES[command].to_bytes(2, "big") + bytes(6)
    for m in mappings:
        body += (
            (m.opt_class & 0xFFFF).to_bytes(2, "big")
            + bytes((m.opt_type & 0xFF, m.length & 0xFF))
            + (m.index & 0xFFFF).to_bytes(2, "big")
            + bytes(2)
        )
    length = 16 + len(body)
    header = bytes((version - 9, 4)) + length.to_bytes(2, "big") + xid.to_bytes(4, "big")
    return header + (0x2320).to_bytes(4, "big") + (24).to_bytes(4, "big") + body


def _hex_dump(data: bytes) -> list[str]:
    """Open vSwitch's ``ds_put_hex_dump()`` with ASCII: 16 bytes a line."""
    lines = []
    for ofs in range(0, len(data), 16):
        chunk = data[ofs : ofs + 16]
        cells = "".join(
            f"{byte:02x}" + ("-" if i == 7 else " ") for i, byte in enumerate(chunk)
        ) + "   " * (16 - len(chunk))
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{ofs:08x}  {cells}|{text:<16}|")
    return lines


# -- flows against the map ------------------------------------------------------------------


def _index(name: str) -> int:
    return int(name.removeprefix("tun_metadata"))


def _action_refs(action: Action) -> list[FieldRef]:
    if isinstance(action, RegMove):
        return [action.src, action.dst]
    if isinstance(action, OutputReg):
        return [action.src]
    if isinstance(action, RegLoad):
        return [action.dst]
    return []


def fields_used(match: Match, actions: Iterable[Action]) -> set[int]:
    """The ``tun_metadataN`` indices a flow uses, in its match or its actions."""
    used: set[int] = set()
    present_mask = _PRESENT.get(match.mask)
    used.update(i for i in range(TUN_METADATA_NUM) if present_mask >> i & 1)
    for action in actions:
        names = [ref.field for ref in _action_refs(action)]
        if isinstance(action, SetField):
            names.append(action.field)
        used.update(_index(name) for name in names if is_tun_metadata(name))
    return used


def _option_bits(length: int) -> int:
    return (1 << (8 * length)) - 1


def check_flow(
    tlv: TlvMap, match: Match, actions: Sequence[Action]
) -> tuple[Match, tuple[Action, ...]]:
    """A flow as the switch takes it with map ``tlv``: its match and actions, or an error.

    Raises :class:`TlvFieldError` for Open vSwitch's errors, in its order
    (the match, then every action, before any length check), and
    :class:`FlowParseError` for a value longer than its option. A match or
    a ``set_field`` covering a whole option is made exact, one on a
    zero-length option a presence match.
    """
    present_value, present_mask = match.get("tun_md_present")
    indices = [i for i in range(TUN_METADATA_NUM) if present_mask >> i & 1]
    if any(tlv.by_index(i) is None for i in indices):
        raise TlvFieldError("NXFMFC_INVALID_TLV_FIELD")
    if any(tlv.by_index(i) is None for i in fields_used(Match(), actions)):
        raise TlvFieldError("NXFMFC_INVALID_TLV_FIELD")
    for action in actions:
        for ref in _action_refs(action):
            if is_tun_metadata(ref.field):
                mapping = tlv.by_index(_index(ref.field))
                assert mapping is not None  # checked above
                if ref.ofs + ref.n_bits > 8 * mapping.length:
                    raise TlvFieldError("OFPBAC_BAD_SET_LEN")
    for i in indices:
        if not present_value >> i & 1:
            continue
        mapping = tlv.by_index(i)
        assert mapping is not None
        name = mapping.field
        value, mask = match.get(name)
        if value >> (8 * mapping.length) or (
            mask != TUN_METADATA_EXACT and mask >> (8 * mapping.length)
        ):
            raise FlowParseError(
                f"{name}={_c_hex(value)}: longer than the {mapping.length}-byte option "
                f"{name} is mapped to (Open vSwitch would keep only part of it)"
            )
        if mask == _option_bits(mapping.length) and mapping.length:
            mask = TUN_METADATA_EXACT
        if not mapping.length:
            mask = 0
        match = match.without_field(name).with_field(name, value & mask, mask)
    return match, tuple(_check_write(tlv, action) for action in actions)


def _check_write(tlv: TlvMap, action: Action) -> Action:
    if not isinstance(action, SetField) or not is_tun_metadata(action.field):
        return action
    mapping = tlv.by_index(_index(action.field))
    assert mapping is not None  # check_flow looked
    bits = _option_bits(mapping.length)
    whole = action.mask == TUN_METADATA_EXACT
    if action.value & ~bits or (not whole and action.mask & ~bits):
        written = "bits" if not whole else "value"
        raise FlowParseError(
            f"set_field to {action.field}: {written} past the {mapping.length}-byte option "
            f"it is mapped to (Open vSwitch would write other bits than these)"
        )
    if action.mask & bits == bits:
        return dataclasses.replace(action, mask=TUN_METADATA_EXACT)
    return action


# -- options and fields ----------------------------------------------------------------------


def metadata_from_options(tlv: TlvMap, options: Iterable[GeneveOption]) -> int | None:
    """The key bits of the ``tun_metadataN`` fields for a packet's Geneve options.

    Open vSwitch's ``tun_metadata_from_geneve_udpif()``: an option the map
    names becomes its field (present, data right-aligned in the slot); one it
    does not name is skipped. None when the packet must be dropped: an
    unnamed critical option, or a named one whose length is not the mapped one.
    """
    bits = 0
    present = 0
    for option in options:
        mapping = tlv.lookup(option.opt_class, option.type)
        if mapping is None:
            if option.type & _GENEVE_CRITICAL:
                return None
            continue
        if len(option.data) != mapping.length:
            return None
        slot = FIELDS[mapping.field]
        bits = (bits & ~slot.mask) | slot.put(int.from_bytes(option.data, "big"))
        present |= 1 << mapping.index
    return bits | _PRESENT.put(present)


def _options(raw: bytes) -> list[tuple[int, GeneveOption]]:
    """The options of ``raw`` with the offset of each; a key holds only well-formed ones."""
    found = []
    pos = 0
    while pos + 4 <= len(raw):
        data_len = (raw[pos + 3] & 0x1F) * 4
        opt_class = int.from_bytes(raw[pos : pos + 2], "big")
        found.append(
            (pos, GeneveOption(opt_class, raw[pos + 2], raw[pos + 4 : pos + 4 + data_len]))
        )
        pos += 4 + data_len
    return found


def metadata_from_key(tlv: TlvMap, key: int) -> int | None:
    """:func:`metadata_from_options` for the raw Geneve options a datapath key carries."""
    return metadata_from_options(tlv, (option for _, option in _options(geneve_raw(key))))


def datapath_mask(tlv: TlvMap, key: int, mask: int) -> int:
    """What a megaflow must match of ``key``'s raw options for translation's ``mask``.

    The options' length, each option's class, type and length, and, for an
    option the map names, the data bits ``mask`` has in its field's slot.
    """
    raw = geneve_raw(key)
    raw_mask = bytearray()
    for _, option in _options(raw):
        data_mask = 0
        mapping = tlv.lookup(option.opt_class, option.type)
        if mapping is not None and len(option.data) == mapping.length:
            data_mask = FIELDS[mapping.field].get(mask) & _option_bits(mapping.length)
        raw_mask += b"\xff\xff\xff\x1f" + data_mask.to_bytes(len(option.data), "big")
    return _GNV_LEN.mask | _GNV_OPTS.put(int.from_bytes(raw_mask, "big"))


def options_for_push(tlv: TlvMap, flow: Flow) -> tuple[GeneveOption, ...]:
    """The Geneve options of ``flow``'s present fields (``tun_metadata_to_geneve_header()``).

    In field order; a field the map no longer names is left out.
    """
    options = []
    present = flow.tun_md_present
    for index in range(TUN_METADATA_NUM):
        if not present >> index & 1:
            continue
        mapping = tlv.by_index(index)
        if mapping is None:
            continue
        data = flow.tun_metadata(index) & _option_bits(mapping.length)
        options.append(
            GeneveOption(mapping.opt_class, mapping.opt_type, data.to_bytes(mapping.length, "big"))
        )
    return tuple(options)


def push_mask(tlv: TlvMap, flow: Flow) -> int:
    """What :func:`options_for_push` read of ``flow``, for the megaflow to match.

    Whether each mapped field is present, and the data of those that are:
    two packets that differ there need different outer headers. (Open
    vSwitch 3.1 leaves this out of its megaflow.)
    """
    present = flow.tun_md_present
    mask = 0
    mapped = 0
    for mapping in tlv.mappings:
        mapped |= 1 << mapping.index
        if present >> mapping.index & 1:
            mask |= FIELDS[mapping.field].put(_option_bits(mapping.length))
    return mask | _PRESENT.put(mapped)
