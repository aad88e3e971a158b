"""Differential tests: actions across OpenFlow versions, pvs-ofctl against ovs-ofctl.

The flows of ``tests/unit/test_actions_wire.py`` are added to both switches
over OpenFlow 1.0, 1.3 and 1.5 (as one ``add-flows`` file each time) and
dumped over every version pvs-ofctl dumps with; each rule's line in
``ofproto/trace`` is compared too, and ``replace-flows``, which compares the
flows of a file with the rules as the switch sends them back. Matches that
OpenFlow 1.0 reads with ARP meanings (``arp,nw_dst=...``) are compared here
as well.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import rdpcap

from tests.interop.switch_pair import appctl, switch_pair
from tests.scenario.ofctl_helpers import PING, ok
from tests.unit.test_actions_wire import BY_VERSION

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.interop.test_ovs_ofctl import Switches

pytestmark = pytest.mark.ovs

VERSIONS = ("OpenFlow10", "OpenFlow13", "OpenFlow15")
DUMP_VERSIONS = ("OpenFlow10", "OpenFlow12", "OpenFlow13", "OpenFlow14", "OpenFlow15")


@pytest.fixture(scope="module")
def switches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switches]:
    with switch_pair(tmp_path_factory) as pair:
        yield pair


def cases(version: str) -> list[tuple[int, str, str]]:
    """(number, match, actions) of the recorded cases added over ``version``.

    Each flow gets a register match of its own, so that one trace reaches it.
    """
    number = {"OpenFlow10": 10, "OpenFlow13": 13, "OpenFlow15": 15}[version]
    return [
        (i, f"{match},reg5={i}", text)
        for i, (match, text, added, *_) in enumerate(BY_VERSION)
        if added == number
    ]


def rule_actions(trace: str) -> list[str]:
    """The actions under the rule a trace found (`` 0. MATCH, priority N``).

    What translation then says about them (``     -> ...``) is left out: this
    compares spellings.
    """
    lines = trace.splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(r" 0\. ", line))
    return [line for line in lines[at + 1 : lines.index("", at)] if line[4] != " "]


@pytest.mark.parametrize("version", VERSIONS)
def test_flows_added_over_a_version_dump_over_every_version_as_ovs_does(
    switches: Switches, version: str
) -> None:
    flows = switches.files / f"{version}.txt"
    flows.write_text("".join(f"{m},actions={a}\n" for _, m, a in cases(version)))
    for ofctl in (switches.ovs_ofctl, switches.pvs_ofctl):
        assert ofctl("del-flows", "br0").returncode == 0
    assert switches.compare("-O", version, "add-flows", "br0", str(flows)) == (0, "", "")
    for dump in DUMP_VERSIONS:
        switches.compare("-O", dump, "--no-stats", "dump-flows", "br0")
    # ofproto/trace shows what each rule holds: the spelling it came in with.
    for _, match, _ in cases(version):
        flow = match if "in_port=" in match else f"in_port=1,{match}"
        traces = [appctl(switches, who, "ofproto/trace", "br0", flow) for who in ("ovs", "pvs")]
        assert [t.returncode for t in traces] == [0, 0], traces
        assert rule_actions(traces[0].stdout) == rule_actions(traces[1].stdout), flow


def test_actions_a_version_cannot_carry_are_refused_as_ovs_refuses_them(
    switches: Switches,
) -> None:
    # OpenFlow 1.0 has no push_vlan: ovs-ofctl will not send it.
    status, _, errors = switches.compare(
        "add-flow", "br0", "in_port=1,actions=push_vlan:0x8100,output:2"
    )
    assert status == 1
    assert "allowed flow formats (OpenFlow10,NXM)" in errors


def test_replace_flows_compares_with_the_rules_as_sent_back(switches: Switches) -> None:
    # ovs-ofctl compares the file's actions as written with the rules' as
    # the switch sends them back: a set_field to nw_dst added over OpenFlow
    # 1.0 comes back as mod_nw_dst, differs, and is added again (counters
    # reset); a load or a mod_nw_dst comes back as it was and is kept.
    lines = (
        "priority=5,ip,actions=set_field:192.0.2.9->nw_dst,output:2\n"
        "priority=5,udp,actions=load:5->NXM_NX_REG0[],output:2\n"
        "priority=6,icmp,actions=mod_nw_dst:192.0.2.9,output:2\n"
        "priority=5,tcp,actions=set_field:5->reg0,output:2\n"
    )
    flows = switches.files / "replace.txt"
    flows.write_text(lines)
    for version in ("OpenFlow10", "OpenFlow13"):
        switches.compare("-O", version, "replace-flows", "br0", str(flows))
        switches.inject("p1", PING, 2)
        switches.compare("-O", version, "dump-flows", "br0")
        switches.compare("-O", version, "replace-flows", "br0", str(flows))
        switches.compare("-O", version, "dump-flows", "br0")
        switches.compare("dump-flows", "br0")


@pytest.mark.parametrize(
    "flow",
    [
        "arp,nw_src=192.0.2.1,nw_dst=192.0.2.2,actions=drop",
        "rarp,nw_dst=192.0.2.0/24,actions=drop",
        "arp,nw_proto=2,actions=drop",
        "arp,ip_proto=1,ip_src=192.0.2.1,actions=drop",
    ],
)
def test_nw_fields_match_arp_as_in_openflow10(switches: Switches, flow: str) -> None:
    # OpenFlow 1.0's nw_src, nw_dst and nw_proto are the ARP addresses and
    # opcode in an ARP flow: both switches print arp_spa, arp_tpa, arp_op.
    for ofctl in (switches.ovs_ofctl, switches.pvs_ofctl):
        assert ofctl("del-flows", "br0").returncode == 0
    assert switches.compare("add-flow", "br0", flow) == (0, "", "")
    switches.compare("--no-stats", "dump-flows", "br0")


def test_mod_vlan_vid_over_openflow13_pushes_a_tag_as_in_ovs(switches: Switches) -> None:
    # OpenFlow 1.3 cannot say "push a tag if there is none": a mod_vlan_vid
    # added over it becomes push_vlan plus set_field, so a tagged frame
    # leaves with a second tag. Over OpenFlow 1.0 the tag is rewritten.
    tagged = bytes(
        Ether(src="50:54:00:00:00:05", dst="50:54:00:00:00:07")
        / Dot1Q(vlan=5)
        / IP(src="192.0.2.1", dst="192.0.2.2")
        / UDP(sport=5, dport=6)
    )
    pcaps = {who: switches.files / f"{who}-p2.pcap" for who in ("ovs", "pvs")}
    switches.ovs.vsctl("set", "Interface", "p2", f"options:tx_pcap={pcaps['ovs']}")
    ok("vsctl", switches.rundir, "set", "Interface", "p2", f"options:tx_pcap={pcaps['pvs']}")
    try:
        for version in ("OpenFlow13", "OpenFlow10"):
            for ofctl in (switches.ovs_ofctl, switches.pvs_ofctl):
                assert ofctl("del-flows", "br0").returncode == 0
            flow = "in_port=1,actions=mod_vlan_vid:10,output:2"
            assert switches.compare("-O", version, "add-flow", "br0", flow) == (0, "", "")
            switches.inject("p1", tagged)
        sent = {who: [bytes(p) for p in rdpcap(str(pcap))] for who, pcap in pcaps.items()}
    finally:
        switches.ovs.vsctl("remove", "Interface", "p2", "options", "tx_pcap")
        ok("vsctl", switches.rundir, "remove", "Interface", "p2", "options", "tx_pcap")
    assert sent["pvs"] == sent["ovs"]
    pushed, rewritten = (Ether(frame) for frame in sent["pvs"])
    assert [pushed[Dot1Q].vlan, pushed[Dot1Q].payload.vlan] == [10, 5]
    assert rewritten[Dot1Q].vlan == 10
    assert isinstance(rewritten[Dot1Q].payload, IP)
