"""Rules as text: ``ovs-ofctl dump-flows`` lines, and flows that read back as they were.

:func:`format_flow_stats` prints one rule the way ``ovs-ofctl dump-flows``
prints it (``ofputil_flow_stats_format()``): cookie, duration, table,
counters, timeouts, flags, ages, then the match with its priority and the
actions. What is shown depends on the OpenFlow version the dump was made
with and on how ovs-ofctl asked (see :class:`DumpStyle`). Durations and ages
are measured from ``now``, the caller's clock.

:func:`flow_text` prints a rule as a flow that ``add-flow`` reads back to the
same rule (ports as numbers, so that it does not depend on port names);
the daemon stores rules in this form.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvswitch.flow.ofp_text import META_FIELDS, c_hex, format_match
from pyvswitch.ofproto.actions_text import format_actions_as_written
from pyvswitch.ofproto.actions_wire import OF10, OF11, OF13, OF15, VERSIONS, format_actions
from pyvswitch.ofproto.flow_cmd import FLOW_FLAGS
from pyvswitch.ofproto.table import OFP_DEFAULT_PRIORITY

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from pyvswitch.ofproto.table import Rule

__all__ = [
    "OF10",
    "OF11",
    "OF13",
    "OF15",
    "VERSIONS",
    "DumpStyle",
    "flow_reply_header",
    "flow_text",
    "format_duration",
    "format_flow_stats",
    "sort_rules",
]


@dataclass(frozen=True, slots=True)
class DumpStyle:
    """How ovs-ofctl shows flows.

    ``version`` is the OpenFlow version (10 for 1.0 ... 15 for 1.5): the
    actions are printed as they come back over it
    (:func:`pyvswitch.ofproto.actions_wire.format_actions`), and 1.3 and
    later show flags. ``stats`` is false for
    ``--no-stats``. ``nicira`` says the dump used Open vSwitch's own flow
    statistics message, which carries idle and hard ages: ovs-ofctl uses it
    for an OpenFlow 1.0 dump printed straight from the reply (no sorting,
    no port names); OpenFlow 1.5 carries the idle age itself.
    """

    version: int = OF10
    stats: bool = True
    nicira: bool = True
    port_names: Mapping[int, str] | None = None


def flow_reply_header(version: int, xid: int) -> str:
    """The line ovs-ofctl prints before the flows of an unsorted, numbered dump."""
    if version == OF10:
        return f"NXST_FLOW reply (xid={xid:#x}):"
    return f"OFPST_FLOW reply (OF1.{version - OF10}) (xid={xid:#x}):"


#: Guards whole numbers of milliseconds and seconds against binary fractions
#: (100.005 - 100.0 is 0.00499999...).
_EPSILON = 1e-6


def format_duration(seconds: float) -> str:
    """A duration as OpenFlow carries it (whole milliseconds) and ovs-ofctl prints it."""
    msec = max(int(seconds * 1000 + _EPSILON), 0)
    # Whole seconds print without decimals, as Open vSwitch prints them.
    fraction = f".{msec % 1000:03d}" if msec % 1000 else ""
    return f"{msec // 1000}{fraction}s"


def _whole_seconds(seconds: float) -> int:
    return max(int(seconds + _EPSILON), 0)


def format_flow_stats(rule: Rule, now: float, style: DumpStyle) -> str:
    """One line of ``ovs-ofctl dump-flows``, with its leading space."""
    out = []
    if style.stats or rule.cookie:
        out.append(f"cookie={rule.cookie:#x}, ")
    if style.stats:
        out.append(f"duration={format_duration(now - rule.created)}, ")
    if style.stats or rule.table_id:
        out.append(f"table={rule.table_id}, ")
    if style.stats:
        out.append(f"n_packets={rule.n_packets}, n_bytes={rule.n_bytes}, ")
    if rule.idle_timeout:
        out.append(f"idle_timeout={rule.idle_timeout}, ")
    if rule.hard_timeout:
        out.append(f"hard_timeout={rule.hard_timeout}, ")
    if style.version >= OF13:
        out += [f"{name} " for name, bit in FLOW_FLAGS.items() if rule.flags & bit]
    if style.stats:
        out += _ages(rule, now, style)
    match = format_match(rule.match, rule.priority, style.port_names)
    if match:
        out.append(match + " ")
    out.append("actions=" + _actions(rule, style))
    return " " + "".join(out)


def _ages(rule: Rule, now: float, style: DumpStyle) -> list[str]:
    ages = []
    if (style.nicira and style.version == OF10) or style.version >= OF15:
        ages.append(f"idle_age={_whole_seconds(now - rule.used)}, ")
    # The hard age (since the last modification) is shown only when it
    # differs from the duration, that is after a modify command.
    if style.nicira and style.version == OF10:
        modified = rule.created if rule.modified is None else rule.modified
        hard_age = _whole_seconds(now - modified)
        if hard_age != _whole_seconds(now - rule.created):
            ages.append(f"hard_age={hard_age}, ")
    return ages


def _actions(rule: Rule, style: DumpStyle) -> str:
    if style.version == OF11:
        raise ValueError("OpenFlow 1.1's flow statistics are not supported")
    return format_actions(rule.actions, style.port_names, version=style.version, match=rule.match)


def flow_text(rule: Rule) -> str:
    """The rule as a flow ``add-flow`` reads back to an equal rule (counters aside)."""
    parts = []
    if rule.table_id:
        parts.append(f"table={rule.table_id}")
    if rule.cookie:
        parts.append(f"cookie={c_hex(rule.cookie)}")
    if rule.priority != OFP_DEFAULT_PRIORITY:
        parts.append(f"priority={rule.priority}")
    if rule.idle_timeout:
        parts.append(f"idle_timeout={rule.idle_timeout}")
    if rule.hard_timeout:
        parts.append(f"hard_timeout={rule.hard_timeout}")
    parts += [name for name, bit in FLOW_FLAGS.items() if rule.flags & bit]
    match = format_match(rule.match)
    if match:
        parts.append(match)
    parts.append("actions=" + format_actions_as_written(rule.actions))
    return ",".join(parts)


# -- sorting ---------------------------------------------------------------------------


def sort_rules(rules: Iterable[Rule], criteria: Sequence[tuple[str | None, bool]]) -> list[Rule]:
    """Order rules as ``--sort``/``--rsort`` do: by each (field, descending) in turn.

    A field of None means the priority. A rule that does not match on a
    field sorts after those that do, in either direction, as in ovs-ofctl.
    Rules that compare equal keep their order.
    """

    def compare(a: Rule, b: Rule) -> int:
        for name, descending in criteria:
            if name is None:
                diff = (a.priority > b.priority) - (a.priority < b.priority)
            else:
                in_a, in_b = _field_value(a, name), _field_value(b, name)
                if (in_a is None) != (in_b is None):
                    return -1 if in_a is not None else 1
                if in_a is None or in_b is None:
                    continue
                diff = (in_a > in_b) - (in_a < in_b)
            if diff:
                return -diff if descending else diff
        return 0

    return sorted(rules, key=functools.cmp_to_key(compare))


def _field_value(rule: Rule, name: str) -> int | None:
    field = META_FIELDS[name]
    value, mask = rule.match.get(field.storage)
    width = (1 << field.bits) - 1
    if not (mask >> field.shift) & width:
        return None
    return (value >> field.shift) & width
