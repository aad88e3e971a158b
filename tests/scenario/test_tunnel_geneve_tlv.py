"""Geneve options as tun_metadata fields, replayed from Open vSwitch's tests against pvs-vswitchd.

From ``tests/tunnel-push-pop.at`` (``tunnel_push_pop - action``): "Check
Geneve tunnel push with options" (``add-tlv-map``, ``set_field:0xa->tun_metadata0``
and the ``tnl_push`` with a critical option it gives) and "Check decapsulation
of Geneve packet with options" (a real frame with two options, one mapped,
on ``netdev-dummy/receive``; the port's counters and the megaflow
``dpif/dump-flows`` shows). The test sends the packet to a controller too
(``actions=5,controller`` and ``ovs-ofctl monitor``); we have no controller
connection, so the rule only outputs, to the port the packet came by, which
drops it, as there.

From ``tests/tunnel.at``: ``tunnel - Geneve metadata`` and ``tunnel - Geneve
option present``. Open vSwitch runs them with native tunnelling off
(``set(tunnel(...))`` outputs); we run them with it on, as the other
tunnel.at replays in tests/scenario/test_tunnel_push_pop.py do: the option
matches are traces of packets that came out of a tunnel, the same either
way, and the option generation is a ``tnl_push`` through an underlay bridge
br1. Not replayed: the flow modification and learn parts (``multipath``,
``push``, ``clone`` and ``learn`` are actions pyvswitch lacks), and ``tunnel -
Delete Geneve option`` (``delete_field``, likewise).

Every expected text is Open vSwitch 3.1's; tests/interop/test_ovs_tlv_map.py
gives the same commands to both and compares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import tool
from tests.scenario.test_tunnel_push_pop import (
    FROM_INT_BR,
    INNER,
    NO_KERNEL,
    P0,
    START,
    TUNNELS,
    appctl,
    arp_reply,
    counter,
    datapath_actions,
    geneve_header,
    ofctl,
    udp_frame,
    underlay,
    vsctl,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: The Geneve frame of tunnel-push-pop.at: VNI 123 from 1.1.2.92, options
#: {class=0xffff,type=0x80,len=4,0xa} and {class=0xffff,type=0,len=4,0xb}, C bit set.
GENEVE_OPTIONS_FRAME = (
    "aa55aa550000001b213cab64080045000096794640004011ba5b0101025c01010258308817c100820000"
    "0400655800007b00ffff80010000000affff00010000000bfe71d883724fbeb6f4e1494a080045000054"
    "ba200000400184861e0000011e00000200004227e75400030af3195500000000f2650100000000001011"
    "12131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637"
)


def _rx(rundir: Path, port: str) -> list[str]:
    return [
        line
        for line in ofctl(rundir, "dump-ports", "int-br").splitlines()
        if line.startswith(f"  port {port}:")
    ]


# -- tunnel_push_pop - action -------------------------------------------------------------------


@pytest.fixture(scope="module")
def push_pop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """tunnel-push-pop.at's switch, its neighbour 1.1.2.92 learned, and its TLV map."""
    rundir = tmp_path_factory.mktemp("geneve-push-pop")
    with running_daemon(rundir, NO_KERNEL):
        vsctl(rundir, *START, *P0)
        vsctl(rundir, "add-br", "int-br", "--", "set", "bridge", "int-br", "datapath_type=dummy")
        vsctl(rundir, *TUNNELS)
        assert appctl(rundir, "netdev-dummy/ip4addr", "br0", "1.1.2.88/24") == "OK\n"
        assert appctl(rundir, "ovs/route/add", "1.1.2.92/24", "br0") == "OK\n"
        ofctl(rundir, "add-flow", "br0", "action=normal")
        appctl(rundir, "netdev-dummy/receive", "p0", arp_reply("1.1.2.92", "f8:bc:12:44:34:b6"))
        ofctl(rundir, "add-tlv-map", "int-br", "{class=0xffff,type=0x80,len=4}->tun_metadata0")
        yield rundir


def test_the_map_is_the_bridges_own(push_pop: Path) -> None:
    assert ofctl(push_pop, "dump-tlv-map", "int-br") == (
        "NXT_TLV_TABLE_REPLY (xid=0x2):\n"
        " max option space=256 max fields=64\n"
        " allocated option space=4\n"
        "\n"
        " mapping table:\n"
        "  class  type  length  match field\n"
        " ------  ----  ------  --------------\n"
        " 0xffff  0x80       4  tun_metadata0\n"
    )
    assert "allocated option space=0\n" in ofctl(push_pop, "dump-tlv-map", "br0")
    # The field is not br0's: a flow there may not use it.
    result = tool("ofctl", push_pop, "add-flow", "br0", "tun_metadata0=1,actions=drop")
    assert (result.returncode, result.stderr) == (
        1,
        "OFPT_ERROR (xid=0x8): NXFMFC_INVALID_TLV_FIELD\n"
        "NXT_FLOW_MOD (xid=0x8): ADD tun_metadata0=0x1 actions=drop\n",
    )


def test_geneve_push_with_options(push_pop: Path) -> None:
    """Check Geneve tunnel push with options: the option is critical, so is the header."""
    ofctl(
        push_pop,
        "add-flow",
        "int-br",
        "actions=set_field:1.1.2.92->tun_dst,set_field:0xa->tun_metadata0,5",
    )
    assert datapath_actions(push_pop, FROM_INT_BR) == (
        "Datapath actions: tnl_push(tnl_port(6081),header(size=58,type=5,"
        "eth(dst=f8:bc:12:44:34:b6,src=aa:55:aa:55:00:00,dl_type=0x0800),"
        "ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),"
        "udp(src=0,dst=6081,csum=0x0),"
        "geneve(crit,vni=0x7b,options({class=0xffff,type=0x80,len=4,0xa}))),out_port(100)),1"
    )
    ofctl(push_pop, "del-flows", "int-br")


def test_geneve_decapsulation_with_options(push_pop: Path) -> None:
    """Check decapsulation of Geneve packet with options (without the controller)."""
    ofctl(push_pop, "del-flows", "int-br")
    ofctl(push_pop, "add-flow", "int-br", "tun_metadata0=0xa/0xf,actions=5")
    appctl(push_pop, "netdev-dummy/receive", "p0", GENEVE_OPTIONS_FRAME)
    appctl(push_pop, "time/warp", "1000")
    assert _rx(push_pop, " 5") == [
        "  port  5: rx pkts=1, bytes=98, drop=?, errs=?, frame=?, over=?, crc=?"
    ]
    flows = [
        line
        for line in appctl(push_pop, "dpif/dump-flows", "int-br").splitlines()
        if "in_port(6081)" in line
    ]
    assert flows == [
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,"
        "geneve({class=0xffff,type=0x80,len=4,0xa/0xf}{class=0xffff,type=0,len=4}),"
        "flags(-df-csum+key)),recirc_id(0),in_port(6081),packet_type(ns=0,id=0),"
        "eth_type(0x0800),ipv4(frag=no), packets:0, bytes:0, used:never, actions:drop"
    ]


def test_options_the_map_refuses_drop_the_packet_on_every_hit(push_pop: Path) -> None:
    """An unknown critical option, or a mapped one of another length: dropped and counted.

    Every such packet, not only the one that made the datapath flow: Open
    vSwitch 3.1 forwards later ones when a flow made for options of the same
    length is cached.
    """
    ofctl(push_pop, "del-flows", "int-br")
    ofctl(push_pop, "add-flow", "int-br", "actions=LOCAL")
    good = udp_frame(6081, geneve_header(options=_option(0x80, 4), critical=True) + INNER)
    unknown = udp_frame(6081, geneve_header(options=_option(0x81, 4), critical=True) + INNER)
    longer = udp_frame(6081, geneve_header(options=_option(0x80, 8), critical=True) + INNER)
    name = "drop_action_invalid_tunnel_metadata"
    before = counter(push_pop, name)
    rx_before = _rx(push_pop, " 5")
    for frame in (good, unknown, unknown, good, longer, longer, unknown):
        appctl(push_pop, "netdev-dummy/receive", "p0", frame.hex())
    appctl(push_pop, "time/warp", "500")
    assert counter(push_pop, name) - before == 5
    assert _rx(push_pop, " 5") != rx_before


def _option(opt_type: int, length: int) -> bytes:
    return bytes((0xFF, 0xFF, opt_type, length // 4)) + bytes(length - 1) + b"\x0a"


# -- tunnel.at: Geneve metadata ------------------------------------------------------------------

#: A packet out of a Geneve tunnel (datapath port 6081) with these options.
GENEVE_IN = (
    "recirc_id(0),tunnel(tun_id=0x0,src=1.1.1.1,dst=1.1.1.2,ttl=64,geneve({}),flags(df|key)),"
    "in_port(6081),skb_mark(0),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),"
    "eth_type(0x0800),ipv4(frag=no)"
)
FROM_P2 = (
    "in_port(2),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
    "ipv4(src=192.168.0.1,dst=192.168.0.2,proto=1,tos=0,ttl=128,frag=no),icmp(type=8,code=0)"
)


@pytest.fixture
def geneve_switch(tmp_path: Path) -> Iterator[Path]:
    """OVS_VSWITCHD_START with a geneve port p1 to 1.1.1.1 and a dummy port p2."""
    with running_daemon(tmp_path, NO_KERNEL) as rundir:
        vsctl(
            rundir,
            *START,
            *("--", "add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=geneve"),
            *("options:remote_ip=1.1.1.1", "ofport_request=1"),
            *("--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy"),
            "ofport_request=2",
        )
        yield rundir


def _tail(rundir: Path, flow: str) -> list[str]:
    """A trace's ``Megaflow:`` and ``Datapath actions:`` lines."""
    return appctl(rundir, "ofproto/trace", "ovs-dummy", flow).splitlines()[-2:]


def test_geneve_metadata(geneve_switch: Path, tmp_path: Path) -> None:
    rundir = geneve_switch
    ofctl(
        rundir,
        "add-tlv-map",
        "br0",
        "{class=0xffff,type=0,len=4}->tun_metadata0,{class=0xffff,type=1,len=8}->tun_metadata1",
    )
    flows = tmp_path / "flows.txt"
    flows.write_text(
        "in_port=2,actions=set_field:0xa->tun_metadata0,"
        "set_field:0x1234567890abcdef->tun_metadata1,1\n"
        "tun_metadata0=0xb/0xf,actions=2\n"
    )
    ofctl(rundir, "add-flows", "br0", str(flows))

    # Option generation: no route to 1.1.1.1 yet, then one through br1.
    assert _tail(rundir, FROM_P2)[-1] == "Datapath actions: drop"
    underlay(rundir, "1.1.1.2", "1.1.1.1", "aa:bb:cc:00:00:01")
    assert _tail(rundir, FROM_P2)[-1] == (
        "Datapath actions: tnl_push(tnl_port(6081),header(size=70,type=5,"
        "eth(dst=aa:bb:cc:00:00:01,src=aa:55:aa:55:00:01,dl_type=0x0800),"
        "ipv4(src=1.1.1.2,dst=1.1.1.1,proto=17,tos=0,ttl=64,frag=0x4000),"
        "udp(src=0,dst=6081,csum=0x0),geneve(vni=0x0,options("
        "{class=0xffff,type=0,len=4,0xa}{class=0xffff,type=0x1,len=8,0x1234567890abcdef}))),"
        "out_port(101)),7"
    )

    # Option match, and an unknown option skipped.
    megaflow = (
        "Megaflow: recirc_id=0,eth,ip,tun_id=0,tun_src=1.1.1.1,tun_dst=1.1.1.2,tun_tos=0,"
        "tun_flags=+df-csum+key,tun_metadata0=0xb/0xf,in_port=1,nw_frag=no"
    )
    for options in (
        "{class=0xffff,type=0,len=4,0xb}",
        "{class=0xffff,type=0,len=4,0xb}{class=0xffff,type=2,len=4,0xc}",
    ):
        assert _tail(rundir, GENEVE_IN.format(options)) == [megaflow, "Datapath actions: 2"]

    # Mapping table constraints.
    ofctl(rundir, "del-flows", "br0")
    result = tool(
        "ofctl",
        rundir,
        "add-tlv-map",
        "br0",
        "{class=0xffff,type=2,len=124}->tun_metadata2,{class=0xffff,type=3,len=124}->tun_metadata3",
    )
    assert (result.returncode, result.stderr) == (
        1,
        "OFPT_ERROR (xid=0x4): NXTTMFC_TABLE_FULL\n"
        "NXT_TLV_TABLE_MOD (xid=0x4):\n"
        " ADD mapping table:\n"
        "  class  type  length  match field\n"
        " ------  ----  ------  --------------\n"
        " 0xffff   0x2     124  tun_metadata2\n"
        " 0xffff   0x3     124  tun_metadata3\n",
    )
    result = tool("ofctl", rundir, "add-flow", "br0", "tun_metadata0,tun_metadata0,actions=drop")
    assert result.stderr == "pvs-ofctl: field tun_metadata0 set multiple times\n"
    value = "0x" + "1234567890abcdef" * 8
    too_much = ",".join(f"tun_metadata{i}={value}" for i in range(5))
    result = tool("ofctl", rundir, "add-flow", "br0", f"{too_much},actions=drop")
    assert result.stderr == (
        "pvs-ofctl: field tun_metadata4 exceeds maximum size for tunnel metadata "
        "(used 320, max 256)\n"
    )

    # Allocation and match with fragmented address space.
    for command, mapping in (
        ("add-tlv-map", "{class=0xffff,type=2,len=124}->tun_metadata2"),
        ("add-tlv-map", "{class=0xffff,type=3,len=4}->tun_metadata3"),
        ("add-tlv-map", "{class=0xffff,type=4,len=112}->tun_metadata4"),
        ("del-tlv-map", "{class=0xffff,type=3,len=4}->tun_metadata3"),
        ("add-tlv-map", "{class=0xffff,type=3,len=8}->tun_metadata3"),
    ):
        ofctl(rundir, command, "br0", mapping)
    ofctl(rundir, "add-flow", "br0", "tun_metadata3=0x1234567890abcdef,actions=2")
    assert _tail(rundir, GENEVE_IN.format("{class=0xffff,type=3,len=8,0x1234567890abcdef}")) == [
        "Megaflow: recirc_id=0,eth,ip,tun_id=0,tun_src=1.1.1.1,tun_dst=1.1.1.2,tun_tos=0,"
        "tun_flags=+df-csum+key,tun_metadata3=0x1234567890abcdef,in_port=1,nw_frag=no",
        "Datapath actions: 2",
    ]
    assert ofctl(rundir, "--no-stats", "dump-flows", "br0") == (
        " tun_metadata3=0x1234567890abcdef actions=output:2\n"
    )

    # A TLV mapping is not removed while a flow uses it.
    result = tool("ofctl", rundir, "del-tlv-map", "br0")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "OFPT_ERROR (xid=0x4): NXTTMFC_INVALID_TLV_DEL\nNXT_TLV_TABLE_MOD (xid=0x4):\n CLEAR\n",
    )
    ofctl(rundir, "del-flows", "br0")
    ofctl(rundir, "del-tlv-map", "br0")
    assert "allocated option space=0\n" in ofctl(rundir, "dump-tlv-map", "br0")


def test_geneve_option_present(geneve_switch: Path, tmp_path: Path) -> None:
    rundir = geneve_switch
    ofctl(
        rundir,
        "add-tlv-map",
        "br0",
        "{class=0xffff,type=0,len=4}->tun_metadata0,{class=0xffff,type=1,len=0}->tun_metadata1,"
        "{class=0xffff,type=2,len=4}->tun_metadata2",
    )
    flows = tmp_path / "flows.txt"
    flows.write_text(
        "priority=1,tun_metadata0,actions=2\n"
        "priority=2,tun_metadata1=0,actions=IN_PORT\n"
        "priority=3,tun_metadata2=0,actions=drop\n"
    )
    ofctl(rundir, "add-flows", "br0", str(flows))
    assert sorted(ofctl(rundir, "--no-stats", "dump-flows", "br0").splitlines()) == [
        " priority=1,tun_metadata0 actions=output:2",
        " priority=2,tun_metadata1 actions=IN_PORT",
        " priority=3,tun_metadata2=0 actions=drop",
    ]
    assert _tail(rundir, GENEVE_IN.format("{class=0xffff,type=0,len=4,0x12345678}")) == [
        "Megaflow: recirc_id=0,eth,ip,tun_id=0,tun_src=1.1.1.1,tun_dst=1.1.1.2,tun_tos=0,"
        "tun_flags=+df-csum+key,tun_metadata0,tun_metadata1=NP,tun_metadata2=NP,in_port=1,"
        "nw_frag=no",
        "Datapath actions: 2",
    ]
    # Back out of the port it came by, through an underlay bridge br1. The
    # options it leaves with are its present fields: the megaflow matches
    # which are there (Open vSwitch 3.1 leaves tun_metadata0=NP out, so a
    # packet that has that option too would leave without it).
    underlay(rundir, "1.1.1.2", "1.1.1.1", "aa:bb:cc:00:00:01")
    assert _tail(rundir, GENEVE_IN.format("{class=0xffff,type=1,len=0}")) == [
        "Megaflow: recirc_id=0,eth,ip,tun_id=0,tun_src=1.1.1.1,tun_dst=1.1.1.2,tun_tos=0,"
        "tun_flags=+df-csum+key,tun_metadata0=NP,tun_metadata1,tun_metadata2=NP,in_port=1,"
        "nw_ecn=0,nw_frag=no",
        "Datapath actions: tnl_push(tnl_port(6081),header(size=54,type=5,"
        "eth(dst=aa:bb:cc:00:00:01,src=aa:55:aa:55:00:01,dl_type=0x0800),"
        "ipv4(src=1.1.1.2,dst=1.1.1.1,proto=17,tos=0,ttl=64,frag=0x4000),"
        "udp(src=0,dst=6081,csum=0x0),geneve(vni=0x0,options({class=0xffff,type=0x1,len=0}))),"
        "out_port(101)),7",
    ]


def test_a_trace_refuses_options_the_map_refuses(geneve_switch: Path) -> None:
    ofctl(geneve_switch, "add-tlv-map", "br0", "{class=0xffff,type=0x80,len=4}->tun_metadata0")
    for options in ("{class=0xffff,type=0x81,len=4,0xa}", "{class=0xffff,type=0x80,len=8,0xa}"):
        flow = GENEVE_IN.format(options)
        result = tool("appctl", geneve_switch, "ofproto/trace", "ovs-dummy", flow)
        assert result.returncode == 2
        assert result.stderr.splitlines()[0] == "Failed to parse Geneve options"


def test_values_longer_than_their_option_are_refused(geneve_switch: Path, tmp_path: Path) -> None:
    """Open vSwitch keeps a part of such a value (0x11223344 here), and says nothing."""
    ofctl(geneve_switch, "add-tlv-map", "br0", "{class=0xffff,type=0x80,len=4}->tun_metadata0")
    result = tool(
        "ofctl", geneve_switch, "add-flow", "br0", "tun_metadata0=0x1122334455,actions=2"
    )
    assert result.returncode == 1
    assert result.stderr == (
        "pvs-ofctl: tun_metadata0=0x1122334455: longer than the 4-byte option tun_metadata0 "
        "is mapped to (Open vSwitch would keep only part of it)\n"
    )
    flows = tmp_path / "flows.txt"
    flows.write_text("actions=drop\n# a comment\nactions=load:1->tun_metadata0[40]\n")
    result = tool("ofctl", geneve_switch, "add-flows", "br0", str(flows))
    assert result.stderr.startswith(f"pvs-ofctl: {flows}:3: set_field to tun_metadata0: bits past")
    assert ofctl(geneve_switch, "--no-stats", "dump-flows", "br0") == ""
