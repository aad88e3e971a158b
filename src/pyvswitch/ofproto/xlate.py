"""Translation (xlate): from a packet's flow to datapath actions and a megaflow mask.

This is Open vSwitch's ofproto-dpif-xlate.c in outline:

* The packet is looked up in its bridge's table 0; the matching rule's
  actions are interpreted against a working :class:`Flow` (``ctx.flow``).
* Header changes are *committed* lazily: before each output, the differences
  between what the datapath packet looks like (``ctx.base``) and what the
  OpenFlow view says (``ctx.flow``) become set/push/pop datapath actions.
* Every field a decision read is added to the wildcard mask ``ctx.wc`` -- but
  only bits whose value still comes from the packet: once an action has
  overwritten a field (``ctx.overwritten``), later lookups on it depend on the
  action, not on the packet, and do not narrow the megaflow. Commits are the
  other way round: whether a set action is needed depends on the packet's own
  value of an overwritten field, so a commit un-wildcards it.
* Output to a patch port does not leave the datapath: translation continues
  in the peer bridge's table 0 with ``in_port`` set to the peer, registers and
  metadata cleared; afterwards the original bridge's view is restored (the
  peer's changes are rolled back for it, and the next commit undoes them in
  the packet if they must not leak). So any number of bridges cost one
  datapath lookup, and the megaflow's actions reach all their ports.

Loops: translation stops at depth 64 or 4,096 resubmits ("Translation failed
(Recursion too deep)", as OVS). Where OVS would walk round a loop of patch
ports and emit a packet 64 times, we never enter the same bridge by the same
patch port twice in one translation, and never send the same packet out of
the same datapath port twice; the trace says where the loop was cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvswitch.dpif.actions import (
    OdpClone,
    OdpOutput,
    OdpPopVlan,
    OdpPushVlan,
    OdpSetField,
    OdpSetMasked,
    OdpTnlPush,
    OdpTrunc,
)
from pyvswitch.dpif.datapath import UpcallResult
from pyvswitch.flow.flow import Flow
from pyvswitch.flow.layout import FIELDS, TUNNEL_FIELDS, VLAN_CFI
from pyvswitch.flow.match import Match
from pyvswitch.flow.ofp_text import META_FIELDS, format_flow, format_match
from pyvswitch.ofproto import actions as ofp
from pyvswitch.ofproto import mirror
from pyvswitch.ofproto.actions_text import format_actions_as_written, format_port
from pyvswitch.ofproto.bridge import PatchRx, PatchTx
from pyvswitch.ofproto.table import TableCounts
from pyvswitch.ofproto.xlate_tunnel import (
    TUNNEL_TYPES,
    terminate,
    tunnel_output,
    unwrap_trailing_clone,
)
from pyvswitch.packet.addr import mac_to_str

if TYPE_CHECKING:
    from pyvswitch.dpif.actions import OdpAction
    from pyvswitch.dpif.datapath import StatsSink
    from pyvswitch.ofproto.bridge import Bridge, OfPort
    from pyvswitch.ofproto.ofproto import Ofproto
    from pyvswitch.ofproto.table import Table

MAX_DEPTH = 64
MAX_RESUBMITS = 4096

_VLAN_FIELDS = ("vlan_tpid", "vlan_tci", "vlan_tpid1", "vlan_tci1")
_VLAN_MASK = sum(FIELDS[f].mask for f in _VLAN_FIELDS)
# Header fields a commit turns into set actions, in the order OVS commits them.
_SET_FIELDS = (
    "dl_src",
    "dl_dst",
    "nw_src",
    "nw_dst",
    "ipv6_src",
    "ipv6_dst",
    "ipv6_label",
    "nw_tos",
    "nw_ttl",
    "tp_src",
    "tp_dst",
)
# Fields that exist only inside translation; they never narrow a megaflow.
_METADATA_MASK = FIELDS["metadata"].mask | sum(FIELDS[f"reg{i}"].mask for i in range(16))
_TUNNEL_MASK = sum(FIELDS[name].mask for name in TUNNEL_FIELDS)
# What every megaflow matches, as in OVS: the input port and the ethertype.
# The datapath sees a tagged frame's TPID as its outer ethertype, so matching
# the ethertype exactly also fixes which VLAN tags are present: the TPID
# fields stand for that here (and are not printed, as OVS prints nothing).
_PRESENCE = FIELDS["vlan_tpid"].mask | FIELDS["vlan_tpid1"].mask
_ALWAYS = FIELDS["in_port"].mask | FIELDS["dl_type"].mask | _PRESENCE


class XlateError(Exception):
    """Translation failed; the message is OVS's (``Recursion too deep``...)."""


@dataclass(slots=True)
class XlateResult:
    """A translation's outcome, plus the trace lines when tracing."""

    actions: tuple[OdpAction, ...]
    mask: int
    sinks: tuple[StatsSink, ...]
    flow: Flow
    error: str | None = None
    trace: list[str] = field(default_factory=list)
    tags: frozenset[object] = frozenset()
    #: The result must not be cached (a tunnel's next hop is unresolved).
    uncacheable: bool = False

    def upcall_result(self) -> UpcallResult:
        """What the datapath installs."""
        return UpcallResult(self.actions, self.mask, self.sinks, self.tags, self.uncacheable)


class _Ctx:
    """The state of one translation."""

    def __init__(
        self,
        ofproto: Ofproto,
        bridge: Bridge,
        flow: Flow,
        now: float,
        may_learn: bool,
        tracing: bool,
    ) -> None:
        self.ofproto = ofproto
        self.bridge = bridge
        self.flow = flow
        self.base = flow.copy()
        self.packet = flow.copy()  # the packet as it arrived, never changed
        # Fields an earlier commit changed in the packet: they may differ from
        # the flow again (another port's view) even if no action touched them.
        self.committed = 0
        self.now = now
        self.may_learn = may_learn
        self.wc = _ALWAYS
        self.overwritten = 0
        self.odp: list[OdpAction] = []
        self.sinks: list[StatsSink] = []
        self.depth = 0
        self.resubmits = 0
        self.table_id = 0
        self.trace: list[str] | None = [] if tracing else None
        # Columns of the current table's lines and of its actions, laid out as
        # Open vSwitch's trace lays them out (see _resubmit, _patch_output).
        self.line_col = 0
        self.act_col = 4
        self.entered: set[tuple[str, int]] = set()
        self.sent: set[tuple[int, int]] = set()
        self.tags: set[object] = set()
        self.stopped = False
        #: The mirror destinations that got a copy in the current bridge (mirror.py).
        self.mirrors: set[mirror.Destination] = set()
        #: Set when the result must not become a datapath flow.
        self.uncacheable = False
        #: The tables looked up, and whether a rule matched (TableCounts).
        self.lookups: list[tuple[Table, bool]] = []
        #: While a mirror with a snaplen sends its copy: how much of the
        #: packet each of the copy's outputs keeps (mirror.py); 0 is all.
        self.snaplen = 0

    # -- wildcards ------------------------------------------------------------

    def consult(self, mask: int) -> None:
        """The decision depends on these bits of the packet (those not overwritten)."""
        self.wc |= mask & ~self.overwritten

    def consult_field(self, name: str) -> None:
        self.consult(FIELDS[name].mask)

    def overwrite(self, mask: int) -> None:
        self.overwritten |= mask

    # -- tracing -----------------------------------------------------------------

    def _put(self, col: int, text: str) -> None:
        if self.trace is not None:
            self.trace.append(" " * col + text)

    def rule_line(self, text: str) -> None:
        """A table line (``" 0. match, priority N"``) or a bridge header."""
        self._put(self.line_col, text)

    def action_line(self, text: str) -> None:
        """An action of the current rule."""
        self._put(self.act_col, text)

    def detail(self, text: str) -> None:
        """What an action did (``-> ...``)."""
        self._put(self.act_col + 1, text)

    def warning(self, text: str) -> None:
        """Something odd about the packet, as OVS marks it (``>>>> ... <<<<``)."""
        self._put(self.act_col + 1, f">>>> {text} <<<<")

    def error(self, text: str) -> None:
        """A warning of the translation, as OVS marks it (``>> ...``).

        Why the packet goes no further, or an action that does nothing.
        """
        self._put(self.act_col + 1, f">> {text}")


def _key(flow: Flow) -> int:
    return flow.to_key()


# -- the entry points ---------------------------------------------------------------


def translate(
    ofproto: Ofproto,
    bridge: Bridge,
    key: int,
    now: float,
    *,
    may_learn: bool = True,
    tracing: bool = False,
    ecn_ce: bool = False,
) -> XlateResult:
    """Translate the packet with flow key ``key`` arriving at ``bridge``.

    ``ecn_ce``: the packet came out of a tunnel whose outer header was
    marked CE, which the inner header gets (RFC 6040).
    """
    flow = Flow.from_key(key)
    ctx = _Ctx(ofproto, bridge, flow, now, may_learn, tracing)
    if flow.dl_type in (0x0800, 0x86DD):
        ctx.consult_field("nw_frag")
    ctx.entered.add((bridge.name, flow.in_port))
    error = None
    if ctx.trace is not None:
        ctx.trace += [
            f"Flow: {format_flow(flow)}",
            "",
            f'bridge("{bridge.name}")',
            "-" * len(f'bridge("{bridge.name}")'),
        ]
    if ecn_ce:
        # After "Flow:": the trace shows the packet as it came (OVS marks it
        # in tnl_process_ecn(), after printing), the final flow the mark.
        flow.nw_tos |= 0x03
        ctx.overwrite(FIELDS["nw_tos"].put(0x03))
    try:
        _lookup_and_run(ctx, 0, flow.in_port, ingress=True)
    except XlateError as exc:
        error = str(exc)
        ctx.odp.clear()
    unwrap_trailing_clone(ctx.odp)
    mask = ctx.wc & ~_METADATA_MASK
    if not (FIELDS["tun_dst"].get(key) or FIELDS["tun_ipv6_dst"].get(key)):
        # A packet that came out of no tunnel has no tunnel in its datapath
        # key: what set_field or a lookup read of tunnel fields is not
        # matched (OVS clears these wildcards for a non-tunnel packet).
        mask &= ~_TUNNEL_MASK
    if ctx.lookups:
        ctx.sinks.append(TableCounts(ctx.lookups))
    return XlateResult(
        tuple(ctx.odp),
        mask,
        tuple(ctx.sinks),
        ctx.flow,
        error,
        ctx.trace if ctx.trace is not None else [],
        frozenset(ctx.tags),
        ctx.uncacheable,
    )


def _lookup_and_run(
    ctx: _Ctx, table_id: int, in_port: int, is_last: bool = True, *, ingress: bool = False
) -> None:
    """Look ``ctx.flow`` up in ``table_id`` (as if from ``in_port``) and run the rule.

    ``ingress``: the first lookup of a packet entering the switch, after which
    mirrors copy it (or drop it, if it arrived on a mirror's output port).
    """
    ctx.depth += 1
    if ctx.depth > MAX_DEPTH:
        ctx.rule_line("Translation failed (Recursion too deep)")
        raise XlateError("Recursion too deep")
    try:
        saved_port = ctx.flow.in_port
        ctx.flow.in_port = in_port
        table = ctx.bridge.tables[table_id]
        rule, consulted = table.lookup(_key(ctx.flow))
        ctx.flow.in_port = saved_port
        ctx.consult(consulted)
        ctx.lookups.append((table, rule is not None))
        if rule is None:
            ctx.rule_line(f"{table_id:2d}. No match.")
            if ingress:
                mirror.ingress(ctx, _mirror_copy)
            _run_actions(ctx, (), is_last)
            return
        prio = f"priority {rule.priority}"
        match = format_match(rule.match)
        cookie = f", cookie {rule.cookie:#x}" if rule.cookie else ""
        ctx.rule_line(f"{table_id:2d}. {match + ', ' if match else ''}{prio}{cookie}")
        ctx.sinks.append(rule)
        if ingress:
            mirror.ingress(ctx, _mirror_copy)
        rule_table = ctx.table_id
        ctx.table_id = table_id
        _run_actions(ctx, rule.actions, is_last)
        ctx.table_id = rule_table
    finally:
        ctx.depth -= 1


def _format_action(action: ofp.Action) -> str:
    return format_actions_as_written((action,))


def _run_actions(ctx: _Ctx, actions: tuple[ofp.Action, ...], is_last: bool) -> None:
    if not actions:
        if not ctx.stopped:
            ctx.action_line("drop")
        return
    for i, action in enumerate(actions):
        if ctx.stopped:
            return
        last = is_last and i == len(actions) - 1
        ctx.action_line(_format_action(action))
        _do_action(ctx, action, last)


def _do_action(ctx: _Ctx, action: ofp.Action, last: bool) -> None:
    flow = ctx.flow
    if isinstance(action, ofp.Output):
        _output(ctx, action.port, last)
    elif isinstance(action, ofp.OutputTrunc):
        _output_trunc(ctx, action, last)
    elif isinstance(action, ofp.OutputReg):
        _output(ctx, _read_ref(ctx, action.src), last)
    elif isinstance(action, ofp.Resubmit):
        _resubmit(ctx, action, last)
    elif isinstance(action, ofp.GotoTable):
        _resubmit(ctx, ofp.Resubmit(None, action.table), last)
    elif isinstance(action, ofp.SetVlanVid | ofp.SetVlanPcp):
        _set_vlan(ctx, action)
    elif isinstance(action, ofp.StripVlan):
        if flow.vlan_tci & VLAN_CFI:
            flow.vlan_tpid, flow.vlan_tci = flow.vlan_tpid1, flow.vlan_tci1
            flow.vlan_tpid1 = flow.vlan_tci1 = 0
            ctx.overwrite(_VLAN_MASK)
    elif isinstance(action, ofp.PushVlan):
        flow.vlan_tpid1, flow.vlan_tci1 = flow.vlan_tpid, flow.vlan_tci
        flow.vlan_tpid, flow.vlan_tci = action.ethertype, VLAN_CFI
        ctx.overwrite(_VLAN_MASK)
    elif isinstance(action, ofp.SetField):
        _set_meta(ctx, action.field, action.value, action.mask)
    elif isinstance(action, ofp.RegLoad):
        _write_ref(ctx, action.dst, action.value)
    elif isinstance(action, ofp.RegMove):
        _write_ref(ctx, action.dst, _read_ref(ctx, action.src))
    elif isinstance(action, ofp.DecTtl):
        _dec_ttl(ctx)
    elif isinstance(action, ofp.SetTunnel):
        flow.tun_id = action.tun_id
        ctx.overwrite(FIELDS["tun_id"].mask)
    elif isinstance(action, ofp.Controller):
        ctx.detail("-> pyvswitch has no controller connection yet: not sent")
    # Note does nothing.


# -- fields --------------------------------------------------------------------------


def _meta_bits(name: str) -> tuple[str, int, int]:
    meta = META_FIELDS[name]
    return meta.storage, meta.shift, meta.bits


def _set_meta(ctx: _Ctx, name: str, value: int, mask: int) -> None:
    meta = META_FIELDS[name]
    if meta.kind == "vid":
        _set_vlan(ctx, ofp.SetVlanVid(value & 0xFFF, push_if_missing=False))
        return
    if meta.kind == "pcp":
        _set_vlan(ctx, ofp.SetVlanPcp(value & 7, push_if_missing=False))
        return
    storage, shift, bits = meta.storage, meta.shift, meta.bits
    fld = FIELDS[storage]
    full = (1 << bits) - 1
    if name == "nw_tos":
        # nw_tos is the DSCP part of the ToS byte: writing it keeps the ECN bits.
        full = 0xFC
    mask &= full
    old = getattr(ctx.flow, storage)
    bit_mask = mask << shift
    setattr(ctx.flow, storage, (old & ~bit_mask) | ((value & mask) << shift))
    _consult_written(ctx, storage, bit_mask << fld.shift)
    ctx.overwrite(bit_mask << fld.shift)


#: Fields whose rewrite Open vSwitch commits as an IP or L4 set action, which
#: depends on the packet's L4 protocol.
_IP_SET_FIELDS = frozenset(
    ("nw_src", "nw_dst", "nw_tos", "nw_ttl", "ipv6_src", "ipv6_dst", "ipv6_label", "tp_src",
     "tp_dst")
)  # fmt: skip


def _consult_written(ctx: _Ctx, storage: str, bits: int) -> None:
    """What a set action makes the megaflow match, as Open vSwitch's translation does.

    The bits being written are matched (OVS un-wildcards a field it sets,
    whether or not the packet leaves afterwards), and for an IP or L4 field
    the L4 protocol too (what the commit of the set action reads), so that
    ``ip,actions=mod_nw_dst:...`` gives ``icmp,...,nw_dst=...`` in both
    switches even when nothing is output.
    """
    ctx.consult(bits)
    if storage in _IP_SET_FIELDS and ctx.flow.dl_type in (0x0800, 0x86DD):
        ctx.consult_field("nw_proto")


def _ref_bits(ref: ofp.FieldRef) -> tuple[str, int, int]:
    """Storage field, the shift of the reference's bits in it, and their mask there.

    The mask is cut to the field's width: OpenFlow names some fields wider
    than the key stores them (arp_op is 16 bits in NXM, 8 in the key), and a
    write must not spill into the next field.
    """
    storage, shift, width = _meta_bits(ref.field)
    bits = (((1 << ref.n_bits) - 1) << ref.ofs) & ((1 << width) - 1)
    return storage, shift + ref.ofs, bits << shift


def _read_ref(ctx: _Ctx, ref: ofp.FieldRef) -> int:
    storage, at, bits = _ref_bits(ref)
    fld = FIELDS[storage]
    ctx.consult(bits << fld.shift)
    value: int = getattr(ctx.flow, storage)
    return (value & bits) >> at


def _write_ref(ctx: _Ctx, ref: ofp.FieldRef, value: int) -> None:
    storage, at, bits = _ref_bits(ref)
    fld = FIELDS[storage]
    old = getattr(ctx.flow, storage)
    setattr(ctx.flow, storage, (old & ~bits) | ((value << at) & bits))
    _consult_written(ctx, storage, bits << fld.shift)
    ctx.overwrite(bits << fld.shift)


def _set_vlan(ctx: _Ctx, action: ofp.SetVlanVid | ofp.SetVlanPcp) -> None:
    flow = ctx.flow
    if not flow.vlan_tci & VLAN_CFI:
        if not action.push_if_missing:
            return
        flow.vlan_tpid1, flow.vlan_tci1 = flow.vlan_tpid, flow.vlan_tci
        flow.vlan_tpid, flow.vlan_tci = 0x8100, VLAN_CFI
    if isinstance(action, ofp.SetVlanVid):
        flow.vlan_tci = (flow.vlan_tci & ~0x0FFF) | (action.vid & 0x0FFF)
    else:
        flow.vlan_tci = (flow.vlan_tci & 0x1FFF) | ((action.pcp & 7) << 13)
    ctx.overwrite(_VLAN_MASK)


def _dec_ttl(ctx: _Ctx) -> None:
    flow = ctx.flow
    ctx.consult_field("dl_type")
    if flow.dl_type not in (0x0800, 0x86DD):
        return
    ctx.consult_field("nw_ttl")
    if flow.nw_ttl <= 1:
        ctx.error(f"{'IPv4' if flow.dl_type == 0x0800 else 'IPv6'} decrement TTL exception")
        ctx.stopped = True
        return
    flow.nw_ttl -= 1
    ctx.overwrite(FIELDS["nw_ttl"].mask)


# -- resubmit -------------------------------------------------------------------------


def _resubmit(ctx: _Ctx, action: ofp.Resubmit, last: bool) -> None:
    ctx.resubmits += 1
    if ctx.resubmits > MAX_RESUBMITS:
        ctx.rule_line("Translation failed (Too many resubmits)")
        raise XlateError("Too many resubmits")
    table = ctx.table_id if action.table is None else action.table
    in_port = ctx.flow.in_port if action.in_port in (None, ofp.OFPP_IN_PORT) else action.in_port
    saved = ctx.line_col, ctx.act_col
    if not last:
        # A nested lookup: its table line under the resubmit, its actions
        # eight columns further in. A resubmit that is the last action is a
        # tail call: the next table prints where this one did.
        ctx.line_col, ctx.act_col = ctx.act_col, ctx.act_col + 8
    try:
        _lookup_and_run(ctx, table, in_port, last)
    finally:
        ctx.line_col, ctx.act_col = saved


# -- output ---------------------------------------------------------------------------


def _output(ctx: _Ctx, port: int, last: bool) -> None:
    bridge = ctx.bridge
    in_port = ctx.flow.in_port
    if port == ofp.OFPP_NORMAL:
        _normal(ctx, last)
    elif port in (ofp.OFPP_FLOOD, ofp.OFPP_ALL):
        for p in list(bridge.ports):
            if p != in_port:
                _output_port(ctx, bridge.ports[p], last=False)
    elif port == ofp.OFPP_IN_PORT:
        if in_port in bridge.ports:
            _output_port(ctx, bridge.ports[in_port], last)
    elif port == ofp.OFPP_CONTROLLER:
        ctx.detail("-> pyvswitch has no controller connection yet: not sent")
    elif port in (ofp.OFPP_TABLE, ofp.OFPP_NONE):
        ctx.detail(f"-> output to {port:#x} is not supported here")
    elif port == in_port:
        ctx.error("skipping output to input port")
    elif port not in bridge.ports:
        ctx.detail(f"-> output to nonexistent port {port}")
    else:
        _output_port(ctx, bridge.ports[port], last)


def _output_trunc(ctx: _Ctx, action: ofp.OutputTrunc, last: bool) -> None:
    """``output(port=P,max_len=N)``, as OVS's xlate_output_trunc_action() translates it."""
    if action.port == ctx.flow.in_port:
        ctx.error("skipping output to input port")
        return
    port = ctx.bridge.ports.get(action.port)
    if port is None or port.odp_port is None:
        # The cut applies where the packet next leaves the datapath, which
        # across a patch port would be wherever the peer bridge sends it:
        # OVS refuses rather than guess, and so do we.
        ctx.warning(f"output_trunc does not support patch port {format_port(action.port)}")
        return
    _output_port(ctx, port, last, cut=action.max_len)


def _output_port(ctx: _Ctx, port: OfPort, last: bool, *, cut: int = 0) -> None:
    """Output to ``port``; ``cut``: keep only that many bytes (``output(...,max_len=)``)."""
    if port.odp_port is None:
        _patch_output(ctx, port, last)
        return
    mark = len(ctx.odp)
    if cut:
        # Before the commit's actions, where OVS puts it.
        ctx.odp.append(OdpTrunc(cut))
    if port.type in TUNNEL_TYPES:
        tunnel_output(ctx, port, last, _commit, _cross_into, trunc_at=mark if cut else None)
        if cut:
            _drop_unused_cut(ctx, mark)
        mirror.egress(ctx, port, _mirror_copy)
        return
    _commit(ctx)
    sent = (port.odp_port, _key(ctx.base))
    if sent in ctx.sent:
        ctx.detail(f"-> not sending the same packet out of {port.name} twice")
        if cut:
            _drop_unused_cut(ctx, mark)
        return
    ctx.sent.add(sent)
    if not terminate(ctx, port):
        if ctx.snaplen:
            # A mirror's cut comes after the commit, as in OVS.
            ctx.odp.append(OdpTrunc(ctx.snaplen))
        ctx.odp.append(OdpOutput(port.odp_port))
    elif cut:
        _drop_unused_cut(ctx, mark)
    mirror.egress(ctx, port, _mirror_copy)


def _drop_unused_cut(ctx: _Ctx, mark: int) -> None:
    """Remove the ``trunc`` emitted at or after ``mark`` when nothing after it sends the packet.

    Left in place, it would cut whatever the next output sends instead.
    """
    for i in range(len(ctx.odp) - 1, mark - 1, -1):
        action = ctx.odp[i]
        if isinstance(action, OdpOutput | OdpClone | OdpTnlPush):
            return
        if isinstance(action, OdpTrunc):
            del ctx.odp[i]
            return


def _patch_output(ctx: _Ctx, port: OfPort, last: bool) -> None:
    ofproto = ctx.ofproto
    found = ofproto.patch_peer(port)
    if found is None:
        ctx.detail(f"-> patch port {port.name} has no peer: dropping")
        return
    peer_bridge, peer = found
    entry = (peer_bridge.name, peer.ofport)
    if entry in ctx.entered:
        ctx.detail(
            f"-> patch loop: {peer_bridge.name} was already entered by {peer.name}, "
            "not crossing again"
        )
        return
    ctx.entered.add(entry)
    ctx.sinks += [PatchTx(port.counters), PatchRx(peer.counters)]
    captured = ctx.ofproto.capture_points.crossing(port.name, peer.name)
    if captured:
        # A capture on either end gets the packet as it crosses: what this
        # bridge made of it so far, committed (see capture_points.py). A
        # mirror's copy crossing is cut to the mirror's snaplen, like
        # every output the copy makes beyond the crossing.
        _commit(ctx)
        for action in captured:
            if ctx.snaplen:
                ctx.odp.append(OdpTrunc(ctx.snaplen))
            ctx.odp.append(action)
    saved_mirrors = mirror.leave_by_patch(ctx, port, _mirror_copy)
    try:
        _cross_into(ctx, peer_bridge, peer, last, patch=True)
    finally:
        ctx.mirrors = saved_mirrors


def _cross_into(ctx: _Ctx, peer_bridge: Bridge, peer: OfPort, last: bool, *, patch: bool) -> None:
    """Go on translating in ``peer_bridge`` as if the packet came in by ``peer``.

    A patch crossing, and the underlay half of a tunnel output (the outer
    packet enters the bridge that owns the tunnel's address by that port).
    Registers, metadata and the tunnel are cleared, as OVS's
    patch_port_output() clears them; afterwards the bridge that output sees
    its own flow again.
    """
    flow = ctx.flow
    saved_flow, saved_overwritten = flow.copy(), ctx.overwritten
    saved_bridge, saved_table = ctx.bridge, ctx.table_id
    saved_cols = ctx.line_col, ctx.act_col
    flow.in_port = peer.ofport
    flow.metadata = 0
    for i in range(16):
        setattr(flow, f"reg{i}", 0)
    for name in TUNNEL_FIELDS:
        setattr(flow, name, 0)
    ctx.overwrite(_METADATA_MASK | FIELDS["in_port"].mask | _TUNNEL_MASK)
    ctx.bridge = peer_bridge
    ctx.table_id = 0
    header = f'bridge("{peer_bridge.name}")'
    if last:
        # The last action: the peer's section prints as a continuation.
        header_col = ctx.line_col
    else:
        header_col = ctx.act_col
        ctx.line_col, ctx.act_col = ctx.act_col + 4, ctx.act_col + 8
    if ctx.trace is not None:
        ctx.trace += ["", " " * header_col + header, " " * header_col + "-" * len(header)]
    try:
        if patch:
            mirror.enter_by_patch(ctx, saved_bridge, peer, _mirror_copy)
        _lookup_and_run(ctx, 0, peer.ofport, last)
    finally:
        # The peer's view ends here: the original bridge sees its own flow
        # again. The packet itself keeps what the peer committed; the next
        # commit in this bridge undoes what must not leak. The flow is
        # restored in place, because callers up the stack (NORMAL's output,
        # which puts back the VLAN it set for this port) hold this object.
        flow.assign(saved_flow)
        ctx.flow = flow
        ctx.overwritten = saved_overwritten
        ctx.bridge, ctx.table_id = saved_bridge, saved_table
        ctx.line_col, ctx.act_col = saved_cols
        ctx.stopped = False


def _commit(ctx: _Ctx) -> None:
    """Emit the datapath actions that make the packet look like ``ctx.flow``."""
    flow, base = ctx.flow, ctx.base
    if (ctx.overwritten | ctx.committed) & _VLAN_MASK:
        # Which tags to pop depends on the packet's own tags (their presence
        # is always matched; their contents are matched here).
        for tpid, tci in (("vlan_tpid", "vlan_tci"), ("vlan_tpid1", "vlan_tci1")):
            if getattr(ctx.packet, tpid):
                ctx.wc |= FIELDS[tci].mask
        if _commit_vlan(ctx):
            ctx.committed |= _VLAN_MASK
    for name in _SET_FIELDS:
        fld = FIELDS[name]
        over = ctx.overwritten & fld.mask
        if not (over or ctx.committed & fld.mask):
            continue
        # The bits an action wrote are matched (OVS un-wildcards what a
        # set_field writes); a masked write of part of the ToS byte, like
        # RFC 6040's CE mark or mod_nw_ecn, matches only those bits.
        ctx.wc |= over if name == "nw_tos" and over else fld.mask
        value = getattr(flow, name)
        old = getattr(base, name)
        if old == value:
            continue
        if name not in ("dl_src", "dl_dst", "nw_tos"):
            # A set action on an IP or L4 header depends on which header it is.
            ctx.consult_field("nw_proto")
        header = _header(flow, name)
        if header in ("ipv4", "ipv6") and not flow.nw_proto:
            # Open vSwitch commits no IP set action for a packet whose L4
            # protocol is 0 (commit_set_nw_action() returns first): the
            # rewrite is in the flow, not in the packet.
            continue
        if name == "nw_tos":
            # DSCP and ECN are set separately (mod_nw_tos, mod_nw_ecn): only
            # the bits an action wrote are set, as OVS's masked set does.
            bits = (over >> fld.shift) or 0xFF
            ctx.odp.append(OdpSetMasked(name, value & bits, bits, header))
            setattr(base, name, (old & ~bits) | (value & bits))
        else:
            ctx.odp.append(OdpSetField(name, value, header))
            setattr(base, name, value)
        ctx.committed |= fld.mask


def _header(flow: Flow, field_name: str) -> str:
    """The datapath header a set action on ``field_name`` writes, by packet type."""
    if field_name in ("dl_src", "dl_dst"):
        return "eth"
    if field_name in ("tp_src", "tp_dst"):
        return {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "icmpv6"}.get(flow.nw_proto, "")
    return "ipv6" if flow.dl_type == 0x86DD else "ipv4"


def _tags(flow: Flow) -> list[tuple[int, int]]:
    tags = []
    for tpid, tci in ((flow.vlan_tpid, flow.vlan_tci), (flow.vlan_tpid1, flow.vlan_tci1)):
        if not tci & VLAN_CFI:
            break
        tags.append((tpid, tci))
    return tags


def _commit_vlan(ctx: _Ctx) -> bool:
    """Push and pop tags until the packet's match the flow's; True if any action was needed."""
    have, want = _tags(ctx.base), _tags(ctx.flow)
    if have == want:
        return False
    # Keep the innermost tags both agree on; pop the rest, push what is wanted.
    keep = 0
    while (
        keep < len(have)
        and keep < len(want)
        and have[len(have) - 1 - keep] == want[len(want) - 1 - keep]
    ):
        keep += 1
    for _ in range(len(have) - keep):
        ctx.odp.append(OdpPopVlan())
    for tpid, tci in reversed(want[: len(want) - keep]):
        ctx.odp.append(OdpPushVlan(tci & 0x0FFF, tci >> 13, tpid or 0x8100))
    base = ctx.base
    for name in _VLAN_FIELDS:
        setattr(base, name, getattr(ctx.flow, name))
    return True


# -- NORMAL ---------------------------------------------------------------------------


ARP_BROADCAST = (1 << 48) - 1


def _check_gratuitous_arp(ctx: _Ctx) -> bool:
    """Whether the packet is a gratuitous ARP, consulting what Open vSwitch consults.

    NORMAL asks this of every packet before learning (OVS's
    is_gratuitous_arp()): for a broadcast ARP it reads the opcode and, for a
    request, both addresses, so those fields are in the megaflow. The answer
    matters to OVS only for MACs learned on bonds, which pyvswitch does not
    run; the fields it reads are what keeps our megaflows equal to OVS's.
    """
    flow = ctx.flow
    if flow.dl_type != 0x0806:
        return False
    ctx.consult_field("dl_dst")
    if flow.dl_dst != ARP_BROADCAST:
        return False
    ctx.consult_field("nw_proto")
    if flow.nw_proto == 2:  # a reply to everyone
        return True
    if flow.nw_proto == 1:
        ctx.consult_field("nw_src")
        ctx.consult_field("nw_dst")
        return flow.nw_src == flow.nw_dst
    return False


def _normal(ctx: _Ctx, last: bool) -> None:
    bridge, flow = ctx.bridge, ctx.flow
    # The MACs are looked at first, before the input port and the VLAN
    # checks, as in Open vSwitch.
    ctx.consult_field("dl_src")
    ctx.consult_field("dl_dst")
    in_port = bridge.ports.get(flow.in_port)
    if in_port is None:
        if flow.in_port in (ofp.OFPP_NONE, ofp.OFPP_CONTROLLER):
            _normal_from_nowhere(ctx, last)
        else:
            ctx.warning(f"received packet on unknown port {flow.in_port}")
            ctx.error("no input bundle, dropping")
        return
    if mirror.normal_drops_input(ctx, in_port):
        return
    vlan = mirror.input_vlan(
        ctx, in_port, decides=True, refusal="disallowed VLAN VID for this input port, dropping"
    )
    if vlan is None:
        return
    src = flow.dl_src
    _check_gratuitous_arp(ctx)
    if (
        ctx.may_learn
        and not src >> 40 & 1
        and bridge.macs.learn(src, vlan, in_port.ofport, ctx.now)
    ):
        # Flows that looked this MAC up (flooding because it was unknown, or
        # sending it to where it was) are now stale.
        ctx.ofproto.dirty_tags.add(mac_tag(bridge, vlan, src))
        # A trace of a real packet learns too, and says so only when the
        # entry is new or moved, as Open vSwitch's trace does.
        if ctx.trace is not None:
            mac = mac_to_str(src.to_bytes(6, "big"))
            ctx.detail(f"-> learned that {mac} is on port {in_port.name} in VLAN {vlan}")
    if not src >> 40 & 1:
        ctx.sinks.append(_MacRefresh(bridge, src, vlan, in_port.ofport, ctx.ofproto.dirty_tags))
    _normal_forward(ctx, vlan, in_port.ofport, last)


def _normal_forward(ctx: _Ctx, vlan: int, in_ofport: int | None, last: bool) -> None:
    """NORMAL's last step: to where the destination was learned, else flood in ``vlan``.

    ``in_ofport`` is the input port, left out of the flood (None: the packet
    came from no port).
    """
    bridge, dst = ctx.bridge, ctx.flow.dl_dst
    out = None
    if not dst >> 40 & 1:
        ctx.tags.add(mac_tag(bridge, vlan, dst))
        out = bridge.macs.lookup(dst, vlan, ctx.now)
    if out is None:
        ctx.detail("-> no learned MAC for destination, flooding")
        for p in list(bridge.ports):
            port = bridge.ports[p]
            if p != in_ofport and port.carries(vlan) and not mirror.is_reserved(bridge, port):
                _normal_output(ctx, port, vlan)
        return
    if out == in_ofport:
        ctx.detail("-> learned port is input port, dropping")
        return
    learned = bridge.ports.get(out)
    if learned is None:
        return
    ctx.detail("-> forwarding to learned port")
    _normal_output(ctx, learned, vlan, last)


def _normal_from_nowhere(ctx: _Ctx, last: bool) -> None:
    """NORMAL for a packet from no port (a trace without ``in_port``, a controller's packet).

    As Open vSwitch's ofpp_none_bundle: a trunk that carries every VLAN and
    learns nothing; the packet goes where its destination was learned, else
    to every port that carries its VLAN.
    """
    flow = ctx.flow
    vlan = 0
    if flow.vlan_tci & VLAN_CFI:
        ctx.consult_field("vlan_tci")
        vlan = flow.vlan_tci & 0x0FFF
    _normal_forward(ctx, vlan, None, last)


def _normal_output(
    ctx: _Ctx, port: OfPort, vlan: int, last: bool = False, *, nested: bool = False
) -> None:
    """Output in ``vlan`` to ``port``, tagged or not as the port's mode says.

    ``nested``: a patch crossing this output makes prints nested under the
    current action in the trace, not as a continuation of the table.
    """
    flow = ctx.flow
    saved = tuple(getattr(flow, n) for n in _VLAN_FIELDS)
    saved_over = ctx.overwritten
    mode = port.mode()
    tagged = vlan != 0 and not (
        mode == "access" or (mode == "native-untagged" and vlan == (port.tag or 0))
    )
    if mode == "native-tagged" and vlan == (port.tag or 0):
        tagged = True
    pcp = flow.vlan_tci & 0xE000 if flow.vlan_tci & VLAN_CFI else 0
    if tagged:
        if not flow.vlan_tci & VLAN_CFI:
            flow.vlan_tpid1, flow.vlan_tci1 = 0, 0
            flow.vlan_tpid = 0x8100
        flow.vlan_tci = VLAN_CFI | pcp | vlan
    elif flow.vlan_tci & VLAN_CFI:
        flow.vlan_tpid, flow.vlan_tci = flow.vlan_tpid1, flow.vlan_tci1
        flow.vlan_tpid1 = flow.vlan_tci1 = 0
    if tuple(getattr(flow, n) for n in _VLAN_FIELDS) != saved:
        ctx.overwrite(_VLAN_MASK)
    # A crossing that NORMAL makes prints as a continuation of this table, as
    # Open vSwitch's trace shows it, whether or not more ports follow.
    del last
    _output_port(ctx, port, last=not nested)
    for name, value in zip(_VLAN_FIELDS, saved, strict=True):
        setattr(flow, name, value)
    ctx.overwritten = saved_over


def _mirror_copy(ctx: _Ctx, port: OfPort, vlan: int) -> None:
    """How a mirror sends its copy (mirror.py): as NORMAL would, nested in the trace as in OVS."""
    _normal_output(ctx, port, vlan, nested=True)


def mac_tag(bridge: Bridge, vlan: int, mac: int) -> tuple[str, str, int, int]:
    """The revalidation tag of a MAC table entry."""
    return ("mac", bridge.name, vlan, mac)


class _MacRefresh:
    """Keeps a learned MAC alive while a megaflow forwards its traffic from the cache.

    It also learns, as OVS's xlate cache does: a MAC that moved elsewhere and
    came back is seen only through a cached flow, and that news must reach
    the flows that depend on it.
    """

    __slots__ = ("bridge", "dirty", "mac", "port", "vlan")

    def __init__(self, bridge: Bridge, mac: int, vlan: int, port: int, dirty: set[object]) -> None:
        self.bridge, self.mac, self.vlan, self.port = bridge, mac, vlan, port
        self.dirty = dirty

    def account(self, packets: int, nbytes: int, now: float) -> None:  # noqa: ARG002
        if self.bridge.macs.learn(self.mac, self.vlan, self.port, now):
            self.dirty.add(mac_tag(self.bridge, self.vlan, self.mac))


def megaflow_text(mask: int, key: int) -> str:
    """The ``Megaflow:`` line's match, for the packet's original ``key``."""
    return format_match(Match.exact(key, mask & ~_PRESENCE), megaflow=True)
