"""``./run demo``: the packets of the reference document's compute node.

The reference document (Fig. 1.1) has a VM on ``br-int`` whose traffic is
tagged with a local VLAN, crosses the patch pair ``int-br-eth1`` /
``phy-br-eth1`` into ``br-eth1``, where the OpenStack agent's flow rewrites the
local VLAN to the provider VLAN, and leaves by ``eth1``. pyvswitch's bridges
and datapath are still being built (see the issues), so for now this demo
walks one ping through that path with the packet and flow layers: it builds
the frame at each hop, shows what Open vSwitch's ``ofproto/trace`` would print
as its ``Flow:`` line and the datapath key ``dpctl/dump-flows`` would show, checks
that the flow rule the agent installs matches there, and writes every hop to
a pcap file that tcpdump reads. It needs neither root nor any network device.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyvswitch.flow import extract_key, flow_extract
from pyvswitch.flow.odp_text import format_odp_flow
from pyvswitch.flow.ofp_text import format_flow, format_match, parse_match
from pyvswitch.packet import ICMP, VLAN, Ethernet, IPv4, build
from pyvswitch.packet.pcap import PcapWriter

VM_MAC = "fa:16:3e:00:00:01"
GW_MAC = "fa:16:3e:00:00:fe"
LOCAL_VLAN = 1
PROVIDER_VLAN = 101

# (where the frame is, its OpenFlow port there, VLAN tag or None, a note)
HOPS = (
    ("tap-vm1 -> br-int", 5, None, "the VM sends an untagged ICMP echo request"),
    (
        "br-int -> int-br-eth1",
        1,
        LOCAL_VLAN,
        "br-int's access port (tag=1) added the local VLAN; NORMAL sends it to the patch port",
    ),
    (
        "phy-br-eth1 -> br-eth1",
        2,
        LOCAL_VLAN,
        "the patch pair hands the frame to br-eth1 unchanged (no device, no copy)",
    ),
    (
        "br-eth1 -> eth1",
        1,
        PROVIDER_VLAN,
        "the agent's flow rewrote local VLAN 1 to provider VLAN 101; it leaves by eth1",
    ),
)
AGENT_FLOW = f"priority=4,in_port=2,dl_vlan={LOCAL_VLAN}"


def frame_at(vlan: int | None) -> bytes:
    layers: list[Ethernet | VLAN] = [Ethernet(dst=GW_MAC, src=VM_MAC)]
    if vlan is not None:
        layers.append(VLAN(vid=vlan))
    return build(
        *layers,
        IPv4(src="192.0.2.10", dst="203.0.113.1"),
        ICMP.echo(0x1234, 1),
        b"pyvswitch demo..",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run demo", description=__doc__.splitlines()[0])
    parser.add_argument("--pcap", type=Path, help="where to write the hops (default: a temp file)")
    args = parser.parse_args(argv)

    print("pyvswitch demo: one ping through the reference document's compute node (Fig. 1.1)")
    print("  VM -> br-int (local VLAN 1) -> patch int-br-eth1/phy-br-eth1 -> br-eth1")
    print("  (VLAN 1 -> 101) -> eth1.  Bridges and datapath are not built yet: this walks the")
    print("  packet and flow layers through the path, with no root and no devices needed.\n")

    agent_match, _ = parse_match(AGENT_FLOW, extra=("priority",))
    workdir: Path | None = None
    if args.pcap is None:
        workdir = Path(tempfile.mkdtemp(prefix="pvs-demo-"))
        pcap_path = workdir / "hops.pcap"
    else:
        pcap_path = args.pcap
    with pcap_path.open("wb") as stream:
        writer = PcapWriter(stream)
        for second, (where, ofport, vlan, note) in enumerate(HOPS):
            frame = frame_at(vlan)
            writer.write(frame, ts_sec=second)
            flow = flow_extract(frame, ofport)
            print(f"[{where}] {note}")
            print(f"  Flow: {format_flow(flow)}")
            print(f"  datapath key: {format_odp_flow(extract_key(frame, ofport))}")
            if where.startswith("phy-br-eth1"):
                hit = agent_match.matches(flow.to_key())
                print(
                    f"  agent flow '{format_match(agent_match, priority=4)},"
                    f"actions=mod_vlan_vid:{PROVIDER_VLAN},NORMAL' matches: {hit}"
                )
            print()
    print(f"wrote {len(HOPS)} frames, one per hop, to {pcap_path}")
    tcpdump = shutil.which("tcpdump")
    if tcpdump:
        print("tcpdump -nn -e -r reads them back:")
        result = subprocess.run(  # noqa: S603 - tcpdump found on PATH, fixed arguments
            [tcpdump, "-nn", "-e", "-r", str(pcap_path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        print("  " + result.stdout.strip().replace("\n", "\n  "))
    else:
        print("(install tcpdump to read them back: ./run setup does it as root)")
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
        print("(the temporary pcap was removed; pass --pcap FILE to keep one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
