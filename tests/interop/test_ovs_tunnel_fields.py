"""Differential tests: tunnel metadata in every text form, pyvswitch against Open vSwitch 3.1.

A private Open vSwitch (dummy datapath; bridge ``br0`` with ports p1..p3 and
a VXLAN port with ``remote_ip=flow``, ``key=flow``) is asked the questions
of ``tests/unit/test_tunnel_fields.py`` again, and random ones: datapath
flows with a tunnel through ``dpctl/add-flow`` and ``dpctl/dump-flows``
(with ``-m`` and its ``miniflow_bits``), the ``Flow:`` line of
``ofproto/trace`` for a tunnelled packet, matches through ``ovs-ofctl
parse-flow``, actions added and dumped over OpenFlow 1.0, 1.3 and 1.5, and
the ``Final flow:`` and ``Megaflow:`` lines when actions set tunnel fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvswitch.dpif.datapath import miniflow_bits
from pyvswitch.flow.flow import Flow
from pyvswitch.flow.match import FlowParseError
from pyvswitch.flow.odp_text import OdpKeyError, format_odp_flow, parse_odp_flow
from pyvswitch.flow.ofp_text import format_flow, format_match, parse_match
from pyvswitch.ofproto.actions_text import parse_actions
from pyvswitch.ofproto.actions_wire import carry, format_actions
from tests.interop.ovs_sandbox import OvsSandbox, started_sandbox
from tests.unit.test_tunnel_fields import (
    ACTION_ERRORS,
    BY_VERSION,
    DATAPATH_TUNNELS,
    FLOWS,
    MATCH_ERRORS,
    MATCHES,
    PACKET,
    trace_lines,
    tunnel_bridge,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.ovs

VXLAN_OFPORT = 10
VERSIONS = {10: "OpenFlow10", 13: "OpenFlow13", 15: "OpenFlow15"}
# dpctl/add-flow counts recirc_id and packet_type in the mask only when given.
METADATA = "recirc_id(0),packet_type(ns=0,id=0),"
OVS_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def sb() -> Iterator[OvsSandbox]:
    """A private OVS: br0 (dummy datapath, ports p1..p3) with VXLAN port t1 (ofport 10)."""
    with started_sandbox() as sandbox:
        sandbox.add_dummy_bridge("br0", 3)
        # Flows added with dpctl/add-flow live until the revalidator looks.
        sandbox.vsctl("set", "Open_vSwitch", ".", "other_config:max-revalidator=100000")
        sandbox.vsctl(
            "add-port", "br0", "t1", "--", "set", "Interface", "t1", "type=vxlan",
            "options:remote_ip=flow", "options:key=flow", f"ofport_request={VXLAN_OFPORT}",
        )  # fmt: skip
        yield sandbox


# -- datapath flows ---------------------------------------------------------------


def _dumped(sb: OvsSandbox, *options: str) -> list[str]:
    out = sb.appctl("dpctl/dump-flows", *options).stdout
    return [line for line in out.splitlines() if "actions:" in line]


def ovs_dump(sb: OvsSandbox, flow: str) -> tuple[str, str, str]:
    """What OVS's dpctl/dump-flows prints for ``flow`` once added: the flow, the ``-m``
    metadata before ``recirc_id``, and ``miniflow_bits(...)``. The flow is deleted again.

    OVS's revalidator deletes a flow that translation would not have made;
    when it was quicker than the dump, the flow is added again.
    """
    for _ in range(5):
        sb.appctl("dpctl/del-flows")
        sb.appctl("dpctl/add-flow", flow, "2")
        lines, long_lines = _dumped(sb), _dumped(sb, "-m")
        if len(lines) == len(long_lines) == 1:
            break
    else:
        pytest.fail(f"Open vSwitch did not keep {flow}")
    sb.appctl("dpctl/del-flows")
    line, long = lines[0], long_lines[0]
    metadata = long.split(", ", 1)[1].split(",recirc_id(", 1)[0]
    return line.split(", packets:", 1)[0], metadata, long.rsplit("dp-extra-info:", 1)[1]


def ours(flow: str) -> tuple[str, str, str]:
    key, mask = parse_odp_flow(flow)
    long = format_odp_flow(key, mask, megaflow=True, verbose=True)
    low, high = miniflow_bits(mask)
    return (
        format_odp_flow(key, mask, megaflow=True),
        long.split(",recirc_id(", 1)[0],
        f"miniflow_bits({low},{high})",
    )


@pytest.mark.parametrize("tunnel", [given for given, _, _ in DATAPATH_TUNNELS])
def test_datapath_tunnels_dump_as_in_ovs(sb: OvsSandbox, tunnel: str) -> None:
    flow = f"{tunnel},{METADATA}{PACKET}"
    assert ours(flow) == ovs_dump(sb, flow)


def _ip4(draw: st.DrawFn) -> str:
    return ".".join(str(draw(st.integers(1, 254))) for _ in range(4))


@st.composite
def random_tunnels(draw: st.DrawFn) -> str:
    """tunnel(...) with a destination, a TTL, and random other items, masks and flags."""

    def masked(value: str, masks: st.SearchStrategy[str]) -> str:
        return value + (f"/{draw(masks)}" if draw(st.booleans()) else "")

    hex_mask = st.sampled_from(["0", "0xff", "0xf0", "0x1"])
    ip_mask = st.sampled_from(["255.255.255.0", "255.255.0.0", "255.0.255.0"])
    items = []
    if draw(st.booleans()):
        items.append("tun_id=" + masked(hex(draw(st.integers(0, 2**64 - 1))), hex_mask))
    if draw(st.booleans()):
        items.append("src=" + masked(_ip4(draw), ip_mask))
    items.append("dst=" + masked(_ip4(draw), ip_mask))
    if draw(st.booleans()):
        items.append("tos=" + masked(hex(draw(st.integers(0, 255))), hex_mask))
    items.append("ttl=" + masked(str(draw(st.integers(0, 255))), hex_mask))
    items += [
        f"{name}=" + masked(str(draw(st.integers(0, 65535))), hex_mask)
        for name in ("tp_src", "tp_dst")
        if draw(st.booleans())
    ]
    flags = draw(
        st.sampled_from(["", "0", "key", "oam|df", "df|csum", "+df-csum", "-oam+csum", "0/0"])
    )
    if flags:
        items.append(f"flags({flags})")
    order = draw(st.permutations(items))
    return f"tunnel({','.join(order)})"


@OVS_SETTINGS
@given(random_tunnels())
def test_random_datapath_tunnels_dump_as_in_ovs(sb: OvsSandbox, tunnel: str) -> None:
    flow = f"{tunnel},{METADATA}{PACKET}"
    assert ours(flow) == ovs_dump(sb, flow)


@pytest.mark.parametrize("tunnel", ["tunnel(tun_id=0x7b)", "tunnel(src=1.1.2.92,dst=1.1.2.88)"])
def test_a_tunnel_without_ttl_is_refused_with_ovs_words(sb: OvsSandbox, tunnel: str) -> None:
    flow = f"{tunnel},{PACKET}"
    result = sb.appctl("ofproto/trace", "ovs-dummy", flow, check=False)
    with pytest.raises(OdpKeyError) as info:
        parse_odp_flow(flow)
    assert result.stderr.splitlines()[0] == str(info.value)


# -- the trace's Flow: line -----------------------------------------------------------

TUNNELLED = [
    "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64,flags(-df-csum+key))",
    "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,tos=0x1a,ttl=64,tp_src=1234,tp_dst=4789,"
    "flags(oam|df|csum|key))",
    "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64,flags(-key))",
    "tunnel(tun_id=0x7b,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,ttl=64,flags(key))",
    "tunnel(src=1.1.2.92,dst=1.1.2.88,ttl=3,flags(df))",
]


@pytest.mark.parametrize("tunnel", TUNNELLED)
def test_trace_flow_line_of_a_tunnelled_packet_as_ovs(sb: OvsSandbox, tunnel: str) -> None:
    packet = PACKET.replace("in_port(1)", "in_port(4789)")
    out = sb.appctl("ofproto/trace", "ovs-dummy", f"{tunnel},{packet}").stdout
    ovs_line = next(x for x in out.splitlines() if x.startswith("Flow: "))
    key, _ = parse_odp_flow(f"{tunnel},{packet}")
    flow = Flow.from_key(key)
    flow.in_port = VXLAN_OFPORT
    assert f"Flow: {format_flow(flow)}" == ovs_line


# -- OpenFlow matches and actions ---------------------------------------------------------


def ovs_parse_flow(sb: OvsSandbox, text: str) -> str:
    """ovs-ofctl's normalised match of ``text``, or its error (without ``ovs-ofctl: ``)."""
    result = sb.ofctl("-F", "nxm", "parse-flow", f"{text},actions=drop", check=False)
    if result.returncode:
        return result.stderr.strip().removeprefix("ovs-ofctl: ")
    line = next(x for x in result.stdout.splitlines() if " ADD " in x)
    return line.split(" ADD ", 1)[1].rsplit("actions=", 1)[0].strip()


@pytest.mark.parametrize("text", [t for t, _ in MATCHES] + [t for t, _ in MATCH_ERRORS])
def test_tunnel_matches_as_ovs_ofctl(sb: OvsSandbox, text: str) -> None:
    try:
        ours_text = format_match(parse_match(text)[0])
    except FlowParseError as exc:
        ours_text = str(exc)
    assert ours_text == ovs_parse_flow(sb, text)


def ovs_dumps(sb: OvsSandbox, actions: str, added: int) -> list[str] | str:
    """A flow with ``actions`` added over OpenFlow ``added``, dumped over 1.0, 1.3 and 1.5."""
    sb.ofctl("del-flows", "br0")
    result = sb.ofctl("-O", VERSIONS[added], "add-flow", "br0", f"actions={actions}", check=False)
    if result.returncode:
        return result.stderr.strip().removeprefix("ovs-ofctl: ")
    dumps = []
    for version in VERSIONS.values():
        out = sb.ofctl("-O", version, "--no-stats", "dump-flows", "br0").stdout
        dumps.append(next(x for x in out.splitlines() if "actions=" in x).split("actions=", 1)[1])
    return dumps


@pytest.mark.parametrize(
    ("actions", "added"),
    [(text, added) for text, added, *_ in BY_VERSION] + [(text, 13) for text, _ in ACTION_ERRORS],
)
def test_tunnel_actions_as_ovs_ofctl(sb: OvsSandbox, actions: str, added: int) -> None:
    try:
        held = carry(parse_actions(actions), added)
        mine: list[str] | str = [format_actions(held, version=v) for v in VERSIONS]
    except FlowParseError as exc:
        mine = str(exc)
    assert mine == ovs_dumps(sb, actions, added)


# -- translation ---------------------------------------------------------------------------


@pytest.mark.parametrize("in_port", [1, 2])
def test_actions_on_tunnel_fields_trace_as_in_ovs(sb: OvsSandbox, in_port: int) -> None:
    sb.ofctl("del-flows", "br0")
    flows = sb.dir / "tunnel-flows.txt"
    flows.write_text("".join(f"{text}\n" for text in FLOWS))
    sb.ofctl("add-flows", "br0", str(flows))
    # OVS numbers p1..p3 1..3 in the datapath too.
    packet = PACKET.replace("in_port(1)", f"in_port({in_port})")
    out = sb.appctl("ofproto/trace", "ovs-dummy", packet).stdout
    theirs = dict(x.split(": ", 1) for x in out.splitlines() if x.startswith(("Final", "Mega")))
    ofp, odp = tunnel_bridge()
    assert trace_lines(ofp, odp[in_port]) == theirs
