"""Differential: truncated output (``output(port=P,max_len=N)``, a Mirror's ``snaplen``).

Open vSwitch 3.1 and pvs-vswitchd, both on dummy datapaths, get the same
commands (tests/interop/both.py): br0 as the underlay with an address, a
route and a neighbour (tunnel_push_pop's set-up), int-br with dummy ports
p6-p8, the VXLAN/GRE/Geneve ports of ``tunnel_push_pop - action`` and a
patch port pi to a bridge brp. Compared: what ovs-ofctl and pvs-ofctl say
to each ``output(...,max_len=...)`` (the refusals word for word), how
``dump-flows`` prints the ones taken, and the ``Datapath actions:`` and
warning lines of ``ofproto/trace``: the ``trunc(N)`` goes right before the
output it cuts, before a tunnel's push (the inner packet is cut) or, for a
mirror's copy, inside the push's clone (the outer packet is cut).

A mirror with a snaplen whose output is a patch port is where we differ on
purpose (docs/cli.md): Open vSwitch skips the copy, we send it across, cut.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.interop.both import Both, Reply, both_started, first_error_line
from tests.scenario.test_tunnel_push_pop import P0, TUNNELS

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator

pytestmark = pytest.mark.ovs

FLOW = (
    "in_port=6,dl_src=50:54:00:00:00:0a,dl_dst=50:54:00:00:00:05,"
    "icmp,nw_src=192.168.0.2,nw_dst=192.168.0.1"
)


def without_program(done: subprocess.CompletedProcess[str]) -> Reply:
    """The reply, its error without the program's name (``ovs-ofctl:``/``pvs-ofctl:``)."""
    code, out, err = first_error_line(done)
    return code, out, re.sub(r"^(ovs|pvs)-(ofctl|appctl|vsctl): ", "", err)


def result_lines(text: str) -> list[str]:
    """A trace's warnings and its ``Datapath actions:`` line.

    One difference is left out: after a truncated push (``trunc(N)`` before a
    tunnel's ``tnl_push``), Open vSwitch 3.1 ends the clone with
    ``recirc(0)``, and the datapath looks the outer packet up again as
    received on the push's ``out_port``; we translate that lookup at once,
    inside the clone, as we do for every push (here: br0 floods it to p0,
    datapath port 1). The packets sent are the same.
    """
    return [
        line.strip().replace("out_port(100)),recirc(0)", "out_port(100)),1")
        for line in text.splitlines()
        if line.startswith("Datapath actions:") or line.strip().startswith(">>")
    ]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    with both_started(tmp_path_factory.mktemp("pvs"), without_program) as both:
        both.do("vsctl", "add-port", *P0[2:])
        both.do(
            "vsctl", "add-br", "int-br", "--", "set", "bridge", "int-br", "datapath_type=dummy"
        )
        both.do("vsctl", *TUNNELS)
        for name, number in (("p6", 6), ("p7", 7), ("p8", 8)):
            both.do(
                "vsctl",
                *("add-port", "int-br", name, "--", "set", "Interface", name, "type=dummy"),
                f"ofport_request={number}",
            )
        both.do(
            "vsctl",
            *("add-br", "brp", "--", "set", "bridge", "brp", "datapath_type=dummy"),
            *("--", "add-port", "int-br", "pi", "--", "set", "Interface", "pi", "type=patch"),
            *("options:peer=pb", "ofport_request=9"),
            *("--", "add-port", "brp", "pb", "--", "set", "Interface", "pb", "type=patch"),
            "options:peer=pi",
            *("--", "add-port", "brp", "q1", "--", "set", "Interface", "q1", "type=dummy"),
        )
        both.do("appctl", "netdev-dummy/ip4addr", "br0", "1.1.2.88/24")
        both.do("appctl", "ovs/route/add", "1.1.2.92/24", "br0")
        both.do("appctl", "tnl/neigh/set", "br0", "1.1.2.92", "f8:bc:12:44:34:b6")
        both.do("ofctl", "add-flow", "br0", "action=normal")
        both.do("ofctl", "add-flow", "brp", "action=normal")
        yield both


TAKEN = [
    "output(port=7,max_len=100)",
    "output(port=7,max_len=100),output:8",
    "output(port=7,max_len=100),mod_nw_dst:1.2.3.4,output:8",
    "mod_nw_dst:1.2.3.4,output(port=7,max_len=100)",
    "output(port=p7,max_len=14),output(port=p8,max_len=4294967295)",
    # To a tunnel: the inner packet is cut before the push.
    "output(port=2,max_len=100)",
    "output(port=2,max_len=100),output:7",
    "output(port=7,max_len=100),output(port=2,max_len=200),output:8",
    # Refused when translated: a patch port, a port that does not exist,
    # IN_PORT by name (it is not a port of the bridge); the input port is
    # skipped.
    "output(port=9,max_len=100),output:7",
    "output(port=99,max_len=100)",
    "output(port=in_port,max_len=100)",
    "output(port=6,max_len=100),output:7",
    "output(port=LOCAL,max_len=64)",
]


@pytest.mark.parametrize("actions", TAKEN)
def test_truncated_outputs_translate_as_in_ovs(both: Both, actions: str) -> None:
    both.do("ofctl", "del-flows", "int-br")
    both.same("ofctl", "add-flow", "int-br", f"in_port=6,ip,actions={actions}")
    both.same("ofctl", "dump-flows", "int-br", "--no-stats")
    both.same("ofctl", "-O", "OpenFlow13", "dump-flows", "int-br", "--no-stats")
    both.same("ofctl", "--names", "dump-flows", "int-br", "--no-stats")
    both.same("appctl", "ofproto/trace", "int-br", FLOW, view=result_lines)


REFUSED = [
    "output(port=7,max_len=13)",
    "output(port=7,max_len=4294967296)",
    "output(port=7,max_len=)",
    "output(port=7,max_len=x)",
    "output(port=nosuch,max_len=100)",
    "output(port=NORMAL,max_len=100)",
    "output(port=controller,max_len=100)",
    "output(port=7,max_len=100,foo=1)",
]


@pytest.mark.parametrize("actions", REFUSED)
def test_bad_truncated_outputs_are_refused_as_in_ovs(both: Both, actions: str) -> None:
    reply = both.same("ofctl", "add-flow", "int-br", f"in_port=6,ip,actions={actions}")
    assert reply[0] != 0


def _mirror(both: Both, output: str, snaplen: int) -> None:
    both.do("vsctl", "clear", "Bridge", "int-br", "mirrors")
    both.do(
        "vsctl",
        *("--", "--id=@p", "get", "Port", "p6", "--", "--id=@o", "get", "Port", output),
        *("--", "--id=@m", "create", "Mirror", "name=m0", "select-src-port=@p"),
        *("output-port=@o", f"snaplen={snaplen}", "--", "add", "Bridge", "int-br", "mirrors"),
        "@m",
    )


@pytest.mark.parametrize("output", ["p7", "t2"])
def test_a_mirror_snaplen_cuts_the_copy_as_in_ovs(both: Both, output: str) -> None:
    """To a tunnel port, the trunc sits inside the clone: the outer packet is cut."""
    both.do("ofctl", "del-flows", "int-br")
    both.do("ofctl", "add-flow", "int-br", "in_port=6,actions=output:8")
    _mirror(both, output, 100)
    reply = both.same("appctl", "ofproto/trace", "int-br", FLOW, view=result_lines)
    assert "trunc(100)" in reply[1]
    both.do("vsctl", "clear", "Bridge", "int-br", "mirrors")


def test_a_mirror_snaplen_to_a_patch_port_crosses_where_ovs_skips(both: Both) -> None:
    both.do("ofctl", "del-flows", "int-br")
    both.do("ofctl", "add-flow", "int-br", "in_port=6,actions=output:8")
    _mirror(both, "pi", 100)
    theirs = result_lines(both.ovs("appctl", "ofproto/trace", "int-br", FLOW)[1])
    ours = result_lines(both.pvs("appctl", "ofproto/trace", "int-br", FLOW)[1])
    assert theirs == [">> Mirror truncate to ODPP_NONE, skipping output", "Datapath actions: 8"]
    # brp floods the copy, cut, to its own port and to q1 (before p8's
    # output: a mirror of what p6 receives copies first, as in OVS).
    shown = both.pvs("appctl", "dpif/show")[1]
    brp, q1 = (re.search(rf"{name} \d+/(\d+)", shown)[1] for name in ("brp", "q1"))  # type: ignore[index]
    assert ours == [f"Datapath actions: trunc(100),{brp},trunc(100),{q1},8"]
    both.do("vsctl", "clear", "Bridge", "int-br", "mirrors")
