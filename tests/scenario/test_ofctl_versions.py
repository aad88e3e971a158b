"""pvs-ofctl and pvs-appctl on what the user trial found: versions, messages, datapath views.

A rule keeps its actions in the spelling the OpenFlow version it was added
with carries (``tests/interop/test_ovs_action_versions.py`` compares that
with Open vSwitch): here, that spelling survives a restart, a match that
lacks a prerequisite is refused with a message about the match, keywords
Open vSwitch has and pyvswitch does not are called unsupported, and
``dpctl/dump-flows`` selects and names as it is asked to. Packets are built
with scapy.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from tests.daemon import running_daemon
from tests.scenario.ofctl_helpers import PING, build_topology, inject, ok, tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: (OpenFlow version, flow) added before a restart.
FLOWS = [
    ("OpenFlow10", "priority=10,ip,actions=set_field:192.0.2.9->nw_dst,output:2"),
    ("OpenFlow13", "priority=20,tcp,actions=mod_tp_dst:80,mod_vlan_vid:7,output:2"),
    ("OpenFlow10", "priority=12,in_port=1,actions=set_field:5->reg0,goto_table:1"),
    ("OpenFlow15", "priority=13,ip,actions=load:0x9->NXM_OF_IP_DST[0..7],output:2"),
    ("OpenFlow13", "priority=14,udp,actions=set_tunnel:5,mod_nw_ttl:3,strip_vlan,output:2"),
    ("OpenFlow10", "priority=15,ipv6,actions=set_field:2001:db8::1->ipv6_src,output:2"),
]


def views(rundir: Path) -> list[str]:
    """Everything that shows a rule's actions: dumps over three versions, and a trace."""
    dumps = [
        ok("ofctl", rundir, "-O", version, "--no-stats", "dump-flows", "br0")
        for version in ("OpenFlow10", "OpenFlow13", "OpenFlow15")
    ]
    trace = ok("appctl", rundir, "ofproto/trace", "br0", "in_port=1,tcp")
    return [*dumps, trace]


def test_rules_keep_their_spelling_across_a_restart(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as rundir:
        build_topology(rundir)
        for version, flow in FLOWS:
            ok("ofctl", rundir, "-O", version, "add-flow", "br0", flow)
        before = views(rundir)
    # The OpenFlow 1.0 dump shows the legacy spellings a rule added over 1.0
    # holds; the trace shows what the rule holds.
    assert "mod_nw_dst:192.0.2.9" in before[0]
    assert "resubmit(,1)" in before[0]
    assert "actions=set_field:80->tcp_dst,push_vlan:0x8100,set_field:4103->vlan_vid" in before[1]
    held = "    set_field:80->tcp_dst\n    push_vlan:0x8100\n    set_field:4103->vlan_vid\n"
    assert f"priority 20\n{held}" in before[3]
    with running_daemon(tmp_path) as rundir:
        assert views(rundir) == before


@pytest.fixture
def rundir(tmp_path: Path) -> Iterator[Path]:
    with running_daemon(tmp_path) as rundir:
        build_topology(rundir)
        yield rundir


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        (
            "in_port=1,nw_dst=192.0.2.1,actions=drop",
            "nw_dst: prerequisites not met (the match needs ip, arp or rarp)",
        ),
        (
            "ipv6,tp_dst=80,actions=drop",
            "tp_dst: prerequisites not met (the match needs tcp, udp or sctp, not a later "
            "fragment)",
        ),
        ("conj_id=1,actions=drop", "conj_id: field not supported by pyvswitch"),
        ("ct_state=+trk,actions=drop", "ct_state: field not supported by pyvswitch"),
        ("tun_gbp_id=1,actions=drop", "tun_gbp_id: field not supported by pyvswitch"),
        (
            "xreg1=1,actions=drop",
            "xreg1: field not supported by pyvswitch (use reg2 and reg3)",
        ),
        ("mpls,actions=drop", "mpls: protocol not supported by pyvswitch"),
        ("importance=5,actions=drop", "importance: not supported by pyvswitch"),
        ("actions=mod_nw_src:192.0.2.1", "mod_nw_src lacks correct prerequisites (it needs ip)"),
    ],
)
def test_bad_flows_are_refused_naming_what_is_wrong(rundir: Path, flow: str, message: str) -> None:
    result = tool("ofctl", rundir, "add-flow", "br0", flow)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"pvs-ofctl: {message}\n"
    # Nothing was added.
    assert ok("ofctl", rundir, "--no-stats", "dump-flows", "br0") == " priority=0 actions=NORMAL\n"


def test_an_arp_flow_matches_nw_fields_as_arp_addresses(rundir: Path) -> None:
    ok("ofctl", rundir, "add-flow", "br0", "priority=5,arp,nw_dst=192.0.2.2,actions=output:2")
    request = Ether(src="50:54:00:00:00:05", dst="ff:ff:ff:ff:ff:ff") / ARP(
        hwsrc="50:54:00:00:00:05", psrc="192.0.2.1", pdst="192.0.2.2"
    )
    inject(rundir, "p1", bytes(request), 2)
    dump = ok("ofctl", rundir, "dump-flows", "br0", "arp")
    assert "n_packets=2," in dump
    assert "arp,arp_tpa=192.0.2.2" in dump


def test_dump_flows_filters_and_names(rundir: Path) -> None:
    ok("ofctl", rundir, "del-flows", "br0")
    ok("ofctl", rundir, "add-flow", "br0", "in_port=1,actions=output:2")
    ok("ofctl", rundir, "add-flow", "br1", "actions=drop")
    inject(rundir, "p1", PING)
    inject(rundir, "p3", bytes(Ether() / IP(dst="192.0.2.3") / ICMP()))
    lines = ok("appctl", rundir, "dpctl/dump-flows").splitlines()
    assert lines[0] == "flow-dump from the main thread:"
    assert len(lines) == 3
    only_p1 = ok("appctl", rundir, "dpctl/dump-flows", "filter=in_port=p1").splitlines()
    assert len(only_p1) == 2
    assert "in_port(1)" in only_p1[1]
    assert ok("appctl", rundir, "dpctl/dump-flows", "filter=arp") == ""
    verbose = ok("appctl", rundir, "dpctl/dump-flows", "-m", "filter=in_port=1").splitlines()
    assert re.match(
        r"ufid:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}, skb_priority\(0/0\)", verbose[1]
    )
    assert "in_port(p1)" in verbose[1]
    assert "actions:p2, dp-extra-info:miniflow_bits(" in verbose[1]
    # The ufid of a flow stays the same from one dump to the next.
    again = ok("appctl", rundir, "dpctl/dump-flows", "-m", "filter=in_port=1").splitlines()
    assert again[1].split(",")[0] == verbose[1].split(",")[0]
    # --more is -m; a datapath name may come first.
    assert (
        ok("appctl", rundir, "dpctl/dump-flows", "--more", "dummy@ovs-dummy").count("ufid:") == 2
    )
    result = tool("appctl", rundir, "dpctl/dump-flows", "-m", "ovs-dummy")
    assert result.returncode == 2
    assert result.stderr.startswith("pvs-vswitchd: datapath not found (Invalid argument)\n")


def test_exit_with_cleanup_stops_the_daemon(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as rundir:
        assert ok("appctl", rundir, "exit", "--cleanup") == ""
        ctl = rundir / "pvs-vswitchd.ctl"
        deadline = time.monotonic() + 20
        while ctl.exists():
            assert time.monotonic() < deadline, "the daemon did not exit"
            time.sleep(0.05)
