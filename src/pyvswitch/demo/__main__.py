"""``./run demo``: the reference document's compute node, through pyvswitch's datapath.

The reference document (Fig. 1.1) has VMs on ``br-int``, each tenant on its
own local VLAN, and ``br-eth1``, the provider bridge, whose ``eth1`` leads to
the outside network. The two bridges are joined by the patch pair
``int-br-eth1``/``phy-br-eth1``, and the OpenStack agent's flows translate the
local VLAN to the provider VLAN and back. This demo builds exactly that on
in-memory (dummy) ports, pings from a VM to the outside and back, and shows
what Open vSwitch's tools would show: ``ofproto/trace`` crossing the patch,
one datapath flow per direction covering both bridges, hit and miss counts,
and exact counters on both patch ends. Then it rewires the bridges through a
pair of ports standing for a veth pair, runs the same traffic, and shows the
difference: two datapath flows per direction, and two lookups per packet.

As root, ``./run demo`` builds the same story on real network namespaces
(:mod:`pyvswitch.demo.netns`); this in-process version is what runs without
root, or with ``--dummy``, and needs neither root nor devices.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyvswitch.dpif.datapath import format_megaflow
from pyvswitch.flow.extract import extract_key
from pyvswitch.netdev import netdev_close, netdev_open
from pyvswitch.netdev.dummy import DummyNetdev
from pyvswitch.ofproto.flow_mod import parse_flow
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.packet import ICMP, VLAN, Ethernet, IPv4, build

VM1 = ("fa:16:3e:00:00:01", "192.0.2.11")
VM2 = ("fa:16:3e:00:00:02", "192.0.2.12")
GATEWAY = ("fa:16:3e:00:00:fe", "192.0.2.1")
PROVIDER_VLAN = {1: 101, 2: 102}  # local VLAN -> provider VLAN
IPV4_ETHERTYPE = b"\x08\x00"

# OpenFlow port numbers, as the agent would see them.
PORTS = {"tap-vm1": 5, "tap-vm2": 6, "int-br-eth1": 1, "eth1": 1, "phy-br-eth1": 2}


def agent_flows(int_port: int, phy_port: int) -> dict[str, list[str]]:
    """The OVS agent's VLAN translation flows, as it installs them."""
    flows: dict[str, list[str]] = {"br-int": [], "br-eth1": []}
    for local, provider in PROVIDER_VLAN.items():
        flows["br-int"].append(
            f"priority=3,in_port={int_port},dl_vlan={provider},actions=mod_vlan_vid:{local},NORMAL"
        )
        flows["br-eth1"].append(
            f"priority=4,in_port={phy_port},dl_vlan={local},actions=mod_vlan_vid:{provider},NORMAL"
        )
    flows["br-int"].append(f"priority=2,in_port={int_port},actions=drop")
    flows["br-eth1"].append(f"priority=2,in_port={phy_port},actions=drop")
    return flows


def icmp(
    src: tuple[str, str],
    dst: tuple[str, str],
    seq: int,
    vlan: int | None = None,
    request: bool = True,
) -> bytes:
    layers: list[Ethernet | VLAN] = [Ethernet(dst=dst[0], src=src[0])]
    if vlan is not None:
        layers.append(VLAN(vid=vlan))
    return build(
        *layers, IPv4(src=src[1], dst=dst[1]), ICMP.echo(0x4242, seq, request), b"pyvswitch demo.."
    )


class Switch:
    """The two bridges on one datapath, with dummy devices behind the ports."""

    def __init__(self, joined_by: str, workdir: Path) -> None:
        self.ofp = Ofproto(emc_insert_inv_prob=1)
        self.devices: dict[int, DummyNetdev] = {}
        self.names: dict[int, str] = {}
        ofp = self.ofp
        ofp.add_bridge("br-int")
        ofp.add_bridge("br-eth1")
        self._port("br-int", "tap-vm1", PORTS["tap-vm1"], tag=1)
        self._port("br-int", "tap-vm2", PORTS["tap-vm2"], tag=2)
        self._port("br-eth1", "eth1", PORTS["eth1"], pcap=workdir / f"eth1-{joined_by}.pcap")
        if joined_by == "patch":
            ofp.add_port(
                "br-int", "int-br-eth1", "patch", PORTS["int-br-eth1"], peer="phy-br-eth1"
            )
            ofp.add_port(
                "br-eth1", "phy-br-eth1", "patch", PORTS["phy-br-eth1"], peer="int-br-eth1"
            )
        else:
            # A veth pair: two real datapath ports; what leaves one end comes
            # back in at the other (see forward()).
            self._port("br-int", "int-br-eth1", PORTS["int-br-eth1"])
            self._port("br-eth1", "phy-br-eth1", PORTS["phy-br-eth1"])
        for bridge, flows in agent_flows(PORTS["int-br-eth1"], PORTS["phy-br-eth1"]).items():
            for text in flows:
                spec = parse_flow(text)
                ofp.add_flow(bridge, spec.match, spec.actions, priority=spec.priority)
        self.veth = (
            {
                self.odp("int-br-eth1"): self.odp("phy-br-eth1"),
                self.odp("phy-br-eth1"): self.odp("int-br-eth1"),
            }
            if joined_by == "veth"
            else {}
        )
        self.lookups = 0

    def _port(
        self, bridge: str, name: str, ofport: int, tag: int | None = None, pcap: Path | None = None
    ) -> None:
        port = self.ofp.add_port(bridge, name, "dummy", ofport, tag=tag)
        assert port.odp_port is not None
        dev = netdev_open(name, "dummy", {"tx_pcap": str(pcap)} if pcap else {})
        assert isinstance(dev, DummyNetdev)
        self.devices[port.odp_port] = dev
        self.names[port.odp_port] = name

    def odp(self, name: str) -> int:
        return next(n for n, v in self.names.items() if v == name)

    def forward(self, name: str, frames: list[bytes], now: float) -> None:
        """Frames arrive on port ``name``; run the datapath until they leave."""
        pending = [(self.odp(name), frames)]
        while pending:
            port, batch = pending.pop()
            self.lookups += len(batch)
            for out_port, out in self.ofp.receive(port, batch, now).items():
                if out_port in self.veth:
                    pending.append((self.veth[out_port], out))  # back in at the other end
                elif out_port in self.devices:
                    self.devices[out_port].send(out)

    def drain(self, name: str) -> list[bytes]:
        return self.devices[self.odp(name)].drain()

    def close(self) -> None:
        for dev in self.devices.values():
            netdev_close(dev)


def run(joined_by: str, workdir: Path, verbose: bool) -> dict[str, int]:
    sw = Switch(joined_by, workdir)
    try:
        print(
            f"== br-int and br-eth1 joined by a {joined_by} "
            f"{'pair (int-br-eth1/phy-br-eth1)' if joined_by == 'patch' else 'pair'}"
        )
        for seq in range(1, 11):
            sw.forward("tap-vm1", [icmp(VM1, GATEWAY, seq)], now=seq)
            sent = sw.drain("eth1")
            if seq == 1:
                print(
                    f"   VM1 -> outside: left eth1 tagged with provider VLAN "
                    f"{int.from_bytes(sent[0][14:16], 'big') & 0xFFF}"
                    if sent
                    else "   VM1 -> outside: nothing left eth1!"
                )
            reply = icmp(GATEWAY, VM1, seq, vlan=PROVIDER_VLAN[1], request=False)
            sw.forward("eth1", [reply], now=seq + 0.5)
            back = sw.drain("tap-vm1")
            if seq == 1:
                untagged = bool(back) and back[0][12:14] == IPV4_ETHERTYPE
                print(
                    "   outside -> VM1: " + ("arrived untagged on tap-vm1" if untagged else "lost")
                )
        leaked = sw.drain("tap-vm2")
        print(f"   VM2 (tenant 2, local VLAN 2) saw {len(leaked)} of tenant 1's frames")
        stats = sw.ofp.datapath.stats
        flows = sw.ofp.datapath.flows()
        print(
            f"   datapath: lookups hit:{stats.hit} missed:{stats.missed}, "
            f"{len(flows)} megaflows, {sw.lookups} lookups for 20 packets"
        )
        if verbose or joined_by == "patch":
            print("   the datapath flows, as dpctl/dump-flows prints them:")
            for flow in flows:
                text = format_megaflow(flow, 11.0)
                for name_port, name in sw.names.items():
                    text = text.replace(f"in_port({name_port})", f"in_port({name})")
                print(f"     {text}")
        if joined_by == "patch":
            key = extract_key(icmp(VM1, GATEWAY, 99), sw.odp("tap-vm1"))
            print("   ofproto/trace of VM1 -> outside, crossing the patch:")
            for line in sw.ofp.trace(key, 11.0).splitlines():
                print(f"     {line}")
            for bridge, name in (("br-int", "int-br-eth1"), ("br-eth1", "phy-br-eth1")):
                port = sw.ofp.bridges[bridge].port_by_name(name)
                assert port is not None
                c = port.counters
                print(
                    f"   {name}: rx {c.rx_packets} packets {c.rx_bytes} bytes, "
                    f"tx {c.tx_packets} packets {c.tx_bytes} bytes"
                )
        return {"flows": len(flows), "lookups": sw.lookups, "misses": stats.missed}
    finally:
        sw.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the pcap files in this directory")
    parser.add_argument("--verbose", action="store_true", help="also dump the veth run's flows")
    parser.add_argument(
        "--dummy", action="store_true", help="run on dummy ports even where namespaces work"
    )
    args = parser.parse_args(argv)
    if not args.dummy:
        from pyvswitch.demo import netns  # noqa: PLC0415 - only the real demo needs it

        why_not = netns.can_run()
        if why_not is None:
            return netns.main()
        print(f"Real namespaces are not available here ({why_not}): running the same")
        print("story on dummy ports instead.\n")
    print("pyvswitch demo: the compute node of the reference document (Fig. 1.1), on dummy")
    print("ports in one process (no root needed).\n")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="pvs-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        patch = run("patch", workdir, args.verbose)
        print()
        veth = run("veth", workdir, args.verbose)
        print()
        print("== patch vs veth, same 20 packets")
        print(f"   datapath flows:  patch {patch['flows']}, veth {veth['flows']}")
        print(f"   lookups:         patch {patch['lookups']}, veth {veth['lookups']}")
        print(f"   upcalls:         patch {patch['misses']}, veth {veth['misses']}")
        tcpdump = shutil.which("tcpdump")
        if tcpdump:
            print("\ntcpdump -nn -e -r eth1-patch.pcap (what left eth1, first 2 frames):")
            out = subprocess.run(
                [tcpdump, "-nn", "-e", "-c", "2", "-r", str(workdir / "eth1-patch.pcap")],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            ).stdout
            print("  " + out.strip().replace("\n", "\n  "))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
