"""pvs-vsctl against our server, side by side with ovs-vsctl against ovsdb-server.

The same command sequences run through Open vSwitch's own ovs-vsctl (with
``--no-wait``) against its own ovsdb-server, and through pvs-vsctl against
ours, each sequence on fresh databases. Exit codes, outputs, error messages
and warnings must be the same once the program name is swapped and UUIDs
(which the two servers draw differently) are replaced; ``show``, ``list`` and
``find`` print rows in UUID order, so their lines are compared as a multiset
(and the rows of a JSON table as a set). Each sequence ends by listing the
tables it touched, so the databases the two tools leave behind are compared
too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from tests.daemon import running_daemon, wait_for_socket
from tests.interop.ovs_sandbox import SCHEMA, require_ovs

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.interop.ovs_sandbox import OvsSandbox

pytestmark = pytest.mark.ovs

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SHORT_UUID = re.compile(r">[0-9a-f]{8}</a>")
# ovs-vsctl logs its warnings through vlog, with a timestamp and a module
# name; pvs-vsctl prints "pvs-vsctl: warning: ...". Both become "warning: ...".
# The IDL library also logs a failed transaction, which ovs-vsctl then
# reports as an error anyway: that log line is left out.
WARNING = re.compile(
    r"^(\d{4}-\d\d-\d\dT[\d:]+Z\|\d+\|(vsctl|db_ctl_base)\|WARN\||pvs-vsctl: warning: )",
    re.MULTILINE,
)
IDL_LOG = re.compile(r"^\d{4}-\d\d-\d\dT[\d:]+Z\|\d+\|ovsdb_idl\|.*\n", re.MULTILINE)

# Commands whose output lists rows in UUID order.
UNORDERED = {"show", "list", "find"}

SEQUENCE: list[list[str]] = [
    ["init"],
    ["list-br"],
    ["add-br", "br-int"],
    ["add-br", "br-eth1"],
    ["add-br", "br-int"],
    ["--may-exist", "add-br", "br-int"],
    ["br-exists", "br-int"],
    ["br-exists", "br9"],
    ["add-port", "br-int", "tap0", "--", "set", "Interface", "tap0", "type=internal"],
    # The reference document's example, as written.
    [
        "add-port",
        "br-int",
        "patch-tun",
        "--",
        "set",
        "interface",
        "patch-tun",
        "type=patch",
        "options:peer=patch-int",
    ],
    [
        "add-port",
        "br-eth1",
        "phy-br-eth1",
        "--",
        "set",
        "interface",
        "phy-br-eth1",
        "type=patch",
        "options:peer=int-br-eth1",
    ],
    ["add-port", "br9", "p1"],
    ["add-port", "br-int", "tap0"],
    ["add-port", "br-eth1", "br-int"],
    ["--may-exist", "add-port", "br-int", "tap0"],
    ["--may-exist", "add-port", "br-eth1", "tap0"],
    ["add-port", "br-int", "vm1", "tag=5", "other_config:x=y"],
    ["list-ports", "br-int"],
    ["list-ifaces", "br-int"],
    ["list-ports", "br9"],
    ["port-to-br", "tap0"],
    ["port-to-br", "br-int"],
    ["iface-to-br", "phy-br-eth1"],
    ["iface-to-br", "nosuch"],
    ["set", "Port", "tap0", "tag=1", "trunks=1,2,3"],
    ["set", "Bridge", "br-int", "fail_mode=secure", "other_config:datapath-id=0000000000000001"],
    ["set", "Bridge", "br-int", "nosuch=1"],
    ["set", "Bridge", "br-int", "name=x"],
    ["set", "Port", "tap0", "tag=5000"],
    ["set", "Port", "tap0", "vlan_mode=foo"],
    ["set", "Port", "tap0", "trunks=5-3"],
    ["set", "Port", "tap0", "tag=[1,2]"],
    ["set", "Port", "tap0", "trunks=[1,1]"],
    ["set", "Bridge", "br-int", "stp_enable=maybe"],
    ["set", "Interface", "tap0", "options=a"],
    ["set", "Interface", "tap0", "options={a=b,c}"],
    ["set", "Interface", "tap0", 'options:a="x'],
    ["set", "Interface", "tap0", "external_ids={a=}"],
    ["set", "Bridge", "br-int", "flood_vlans=[1,2"],
    ["set", "Bridge", "br-int", "flood_vlans=[1,2]x"],
    ["set", "Bridge", "br-int", "other_config:x="],
    ["set", "Bridge", "br-int", 'external_ids={"a b"="c\\"d"}'],
    ["set", "Bridge", "nosuch", "fail_mode=secure"],
    ["--if-exists", "set", "Bridge", "nosuch", "fail_mode=secure"],
    ["set", "Open_vSwitch", ".", "external_ids:system-id=host1"],
    ["get", "Port", "tap0", "tag", "trunks", "name"],
    ["get", "Bridge", "br-int", "external_ids", "other_config:datapath-id"],
    ["get", "Bridge", "br-int", "other_config:zz"],
    ["--if-exists", "get", "Bridge", "br-int", "other_config:zz"],
    ["get", "Port", "tap0", "name:x"],
    ["get", "Open_vSwitch", ".", "external_ids:system-id"],
    ["--bare", "get", "Port", "tap0", "trunks"],
    [
        "--",
        "--id=@p",
        "get",
        "Port",
        "tap0",
        "--",
        "--id=@m",
        "create",
        "Mirror",
        "name=m0",
        "select-src-port=@p",
        "--",
        "add",
        "Bridge",
        "br-int",
        "mirrors",
        "@m",
    ],
    ["add", "Port", "tap0", "trunks", "4", "7-9", "--", "get", "Port", "tap0", "trunks"],
    ["add", "Port", "tap0", "tag", "2", "--", "list-br"],
    ["add", "Port", "tap0", "tag", "2"],
    ["add", "Bridge", "br-int", "other_config", "datapath-id=2", "zz=1"],
    ["get", "Bridge", "br-int", "other_config"],
    ["remove", "Bridge", "br-int", "other_config", "zz", "datapath-id=9"],
    ["remove", "Port", "tap0", "trunks", "1", "2"],
    ["remove", "Interface", "tap0", "type", "internal"],
    ["remove", "Port", "tap0", "tag", "x"],
    ["get", "Port", "tap0", "trunks"],
    ["clear", "Port", "tap0", "tag", "--", "get", "Port", "tap0", "tag"],
    ["clear", "Bridge", "br-int", "name"],
    ["clear", "Interface", "tap0", "type"],
    ["--columns=name,tag", "list", "Port"],
    ["--format=table", "--columns=name,tag,trunks", "list", "Port"],
    ["--bare", "--columns=name", "list", "Bridge"],
    ["--columns=name", "list", "Bridge", "--", "--columns=name", "list", "Mirror"],
    ["list", "Bridge", "nosuch"],
    ["--if-exists", "list", "Bridge", "nosuch"],
    ["list", "Fl"],
    ["list", "Nosuch"],
    ["list", "Interface", "tap0"],
    ["find", "Port", "tag=5"],
    ["find", "Interface", "type=patch"],
    ["--columns=name", "find", "Interface", "options:peer=patch-int"],
    ["--columns=name", "find", "Port", "trunks{>=}7"],
    ["find", "Port", "tag"],
    ["find", "Port", "name~x"],
    ["destroy", "Bridge", "br-int"],
    ["destroy", "Mirror", "m0"],
    ["--id=@q", "create", "QoS", "type=linux-htb", "--", "set", "Port", "tap0", "qos=@q"],
    ["--all", "destroy", "QoS"],
    ["clear", "Port", "tap0", "qos", "--", "--all", "destroy", "QoS"],
    ["set", "Port", "tap0", "qos=@nowhere"],
    ["frob"],
    ["add-br"],
    ["list-br", "br0"],
    ["list-br", "--real"],
    ["--format=xml", "list-br"],
    ["--foo", "list-br"],
    ["--if-exists", "--if-exists", "list-br"],
    ["--may-exist", "del-br", "x"],
    ["del-port", "br-int"],
    ["del-port", "nosuch"],
    ["--if-exists", "del-port", "nosuch"],
    ["del-port", "br-eth1", "tap0"],
    ["--with-iface", "del-port", "vm1"],
    ["del-port", "br-int", "tap0"],
    ["del-br", "nosuch"],
    ["--if-exists", "del-br", "nosuch"],
    ["add-br", "br-tmp", "--", "add-port", "br-tmp", "t1", "--", "del-br", "br-tmp"],
    ["add-br", "br-tmp", "--", "add-port", "br-tmp", "t1"],
    ["del-br", "br-tmp", "--", "list-br"],
    # A refused chain changes nothing.
    ["add-br", "br-new", "--", "add-port", "br-new", "p1", "--", "set", "Port", "p1", "tag=x"],
    ["list-br", "--", "list", "Interface", "p1"],
    ["show"],
    ["--columns=name", "list", "Interface"],
]


# Every table a sequence may change, listed at its end to compare what is stored.
LIST_ALL = [
    ["list", table]
    for table in (
        "Open_vSwitch",
        "Bridge",
        "Port",
        "Interface",
        "Controller",
        "Manager",
        "SSL",
        "Mirror",
        "NetFlow",
        "sFlow",
        "IPFIX",
        "Flow_Sample_Collector_Set",
    )
]

# VLAN ("fake") bridges: a tagged internal port of their parent.
FAKE_BRIDGES: list[list[str]] = [
    ["add-br", "br0"],
    ["add-br", "br1"],
    ["add-br", "br0.10", "br0", "10"],
    ["add-br", "br0.10", "br0", "10"],
    ["--may-exist", "add-br", "br0.10", "br0", "10"],
    ["--may-exist", "add-br", "br0.10", "br0", "11"],
    ["--may-exist", "add-br", "br0.10", "br1", "10"],
    ["--may-exist", "add-br", "br0.10"],
    ["--may-exist", "add-br", "br0", "br1", "3"],
    ["add-br", "x", "br0", "10"],
    ["add-br", "y", "br0.10", "5"],
    ["add-br", "y", "nosuch", "5"],
    ["add-br", "y", "br0", "5000"],
    ["add-br", "y", "br0", "-1"],
    ["add-br", "y", "br0"],
    # ovs-vsctl reads the VLAN with atoi(): trailing junk is ignored, no digits is 0.
    ["add-br", "y", "br0", "4x"],
    ["add-br", "z", "br0", "abc"],
    ["add-br", "w", "br0", "4294967306"],
    ["list-br"],
    ["--real", "list-br"],
    ["--fake", "list-br"],
    ["--real", "--fake", "list-br"],
    ["br-exists", "br0.10"],
    ["br-to-vlan", "br0.10"],
    ["br-to-vlan", "br0"],
    ["br-to-vlan", "nosuch"],
    ["br-to-parent", "br0.10"],
    ["br-to-parent", "br0"],
    ["br-to-parent", "nosuch"],
    ["add-port", "br0.10", "p10"],
    ["add-port", "br0.10", "p11", "other_config:a=b"],
    ["add-port", "br0.10", "p12", "tag=20"],
    ["add-port", "br0", "p1"],
    ["--fake-iface", "add-port", "br0.10", "p13"],
    ["list-ports", "br0.10"],
    ["list-ports", "br0"],
    ["list-ifaces", "br0.10"],
    ["list-ifaces", "br0"],
    ["port-to-br", "p10"],
    ["port-to-br", "p12"],
    ["port-to-br", "br0.10"],
    ["iface-to-br", "p10"],
    ["iface-to-br", "br0.10"],
    ["get", "Port", "p10", "tag"],
    ["get", "Port", "br0.10", "tag", "fake_bridge"],
    ["--may-exist", "add-port", "br0", "p10"],
    ["--may-exist", "add-port", "br0.10", "p10"],
    ["set", "Port", "p1", "tag=10"],
    ["port-to-br", "p1"],
    ["del-port", "br0", "p1"],
    ["del-port", "br0.10", "p12"],
    ["del-port", "br0.10"],
    ["del-port", "br0.10", "p1"],
    ["br-set-external-id", "br0", "k", "v"],
    ["br-set-external-id", "br0", "q", "has space"],
    ["br-get-external-id", "br0"],
    ["br-get-external-id", "br0", "k"],
    ["br-get-external-id", "br0", "zz"],
    ["br-set-external-id", "br0.10", "k", "fv"],
    ["br-get-external-id", "br0.10"],
    ["br-get-external-id", "br0.10", "k"],
    ["get", "Port", "br0.10", "external_ids"],
    ["br-set-external-id", "br0", "k"],
    ["br-set-external-id", "br0.10", "k"],
    ["br-get-external-id", "br0"],
    ["br-get-external-id", "br0.10"],
    ["br-set-external-id", "nosuch", "k", "v"],
    ["br-get-external-id", "nosuch"],
    ["show"],
    *LIST_ALL,
    ["del-br", "br0.10"],
    ["list-br"],
    ["list-ports", "br0"],
    ["port-to-br", "p10"],
    ["add-br", "br0.20", "br0", "20", "--", "add-port", "br0.20", "p20"],
    ["del-br", "br0"],
    ["list-br"],
    *LIST_ALL,
]

# Bonds: one port, several interfaces.
BONDS: list[list[str]] = [
    ["add-br", "br0"],
    ["add-br", "br1"],
    ["add-bond", "br0", "bond0", "a"],
    ["add-bond", "br0", "bond0", "a", "tag=3"],
    ["add-bond", "br0", "bond0", "a", "b", "tag=3", "lacp=active", "other_config:x=y"],
    ["--fake-iface", "add-bond", "br0", "bond1", "c", "d"],
    ["add-bond", "br0", "bond2", "e", "a"],
    ["add-bond", "br0", "bond0", "e", "f"],
    ["add-bond", "br0", "bond2", "e", "bond0"],
    ["add-bond", "nosuch", "bond2", "e", "f"],
    ["add-port", "br0", "p1"],
    ["list-ports", "br0"],
    ["list-ifaces", "br0"],
    ["iface-to-br", "a"],
    ["port-to-br", "bond0"],
    ["port-to-br", "a"],
    ["iface-to-br", "bond0"],
    ["--may-exist", "add-bond", "br0", "bond0", "b", "a"],
    ["--may-exist", "add-bond", "br1", "bond0", "b", "a"],
    ["--may-exist", "add-bond", "br0", "bond0", "a", "x"],
    ["--may-exist", "add-port", "br0", "bond0"],
    ["--may-exist", "add-bond", "br0", "p1", "p1", "x"],
    ["add-bond-iface", "bond0", "g"],
    ["--may-exist", "add-bond-iface", "bond0", "g"],
    ["--may-exist", "add-bond-iface", "bond1", "g"],
    ["add-bond-iface", "bond0", "p1"],
    ["add-bond-iface", "nosuch", "h"],
    ["add-bond-iface", "bond0", "br0"],
    ["del-bond-iface", "bond0", "g"],
    ["del-bond-iface", "bond1", "a"],
    ["del-bond-iface", "p1"],
    ["--if-exists", "del-bond-iface", "zz"],
    ["del-bond-iface", "zz"],
    ["del-bond-iface", "nosuch", "c"],
    ["del-bond-iface", "bond1", "c"],
    ["del-bond-iface", "d"],
    ["get", "Port", "bond0", "bond_fake_iface", "lacp", "tag", "other_config"],
    ["get", "Port", "bond1", "bond_fake_iface"],
    ["get", "Port", "p1", "bond_fake_iface"],
    ["show"],
    *LIST_ALL,
    ["--with-iface", "del-port", "b"],
    ["list-ports", "br0"],
    ["list-ifaces", "br0"],
    ["del-port", "br0", "bond1"],
    *LIST_ALL,
]

# Controllers, fail mode, managers, SSL, and emer-reset over all of them.
CONTROLLERS: list[list[str]] = [
    ["add-br", "br0"],
    ["add-br", "br0.5", "br0", "5"],
    ["get-controller", "br0"],
    ["get-fail-mode", "br0"],
    ["get-manager"],
    ["get-ssl"],
    ["set-controller", "br0", "tcp:192.0.2.1:6653", "ptcp:6653", "punix:/x", "foo", "bar:1"],
    ["get-controller", "br0"],
    ["get-controller", "br0.5"],
    ["show"],
    ["set-controller", "br0.5", "tcp:192.0.2.1"],
    ["set-controller", "nosuch", "tcp:192.0.2.1"],
    ["--inactivity-probe=5000", "set-controller", "br0", "tcp:192.0.2.1", "tcp:192.0.2.1"],
    ["get-controller", "br0"],
    ["--columns=target,inactivity_probe", "list", "Controller"],
    ["--inactivity-probe", "7x", "set-controller", "br0", "ssl:192.0.2.2:6653"],
    ["--columns=target,inactivity_probe", "list", "Controller"],
    ["set-controller", "br0"],
    ["get-controller", "br0"],
    ["set-controller", "br0", "unix:/y"],
    ["del-controller", "br0.5"],
    ["del-controller", "nosuch"],
    ["del-controller", "br0"],
    ["get-controller", "br0"],
    ["list", "Controller"],
    ["set-fail-mode", "br0", "secure"],
    ["get-fail-mode", "br0"],
    ["get-fail-mode", "br0.5"],
    ["set-fail-mode", "br0", "open"],
    ["set-fail-mode", "br0.5", "secure"],
    ["set-fail-mode", "br0"],
    ["del-fail-mode", "br0.5"],
    ["del-fail-mode", "br0"],
    ["get-fail-mode", "br0"],
    ["set", "Bridge", "br0", "fail_mode=standalone"],
    ["get-fail-mode", "br0"],
    ["set-manager", "ptcp:6640", "tcp:192.0.2.3:6640", "wrong"],
    ["get-manager"],
    ["show"],
    ["--inactivity-probe=1", "set-manager", "pssl:6640"],
    ["--columns=target,inactivity_probe", "list", "Manager"],
    ["set-manager"],
    ["del-manager"],
    ["get-manager"],
    ["list", "Manager"],
    ["set-ssl", "/k", "/c", "/ca"],
    ["get-ssl"],
    ["--bootstrap", "set-ssl", "/k2", "/c 2", "/ca2"],
    ["get-ssl"],
    ["list", "SSL"],
    ["set-ssl", "/k", "/c"],
    ["del-ssl"],
    ["get-ssl"],
    ["del-ssl"],
    # emer-reset takes all of this away, and keeps the bridge's hwaddr.
    ["set-controller", "br0", "tcp:192.0.2.1"],
    ["set-manager", "ptcp:6640"],
    ["set-ssl", "a", "b", "c"],
    ["set-fail-mode", "br0", "secure"],
    [
        "set",
        "Bridge",
        "br0",
        "other_config:hwaddr=00:00:5e:00:53:01",
        "other_config:x=y",
        "flood_vlans=1,2",
    ],
    ["set", "Port", "br0", "other_config:p=q", "tag=3"],
    ["set", "Interface", "br0", "ingress_policing_rate=10", "ingress_policing_burst=5"],
    ["--id=@m", "create", "Mirror", "name=m0", "--", "add", "Bridge", "br0", "mirrors", "@m"],
    [
        "--id=@s",
        "create",
        "sFlow",
        'targets="192.0.2.9:6343"',
        "--",
        "set",
        "Bridge",
        "br0",
        "sflow=@s",
    ],
    [
        "--id=@n",
        "create",
        "NetFlow",
        'targets="192.0.2.9:5"',
        "--",
        "set",
        "Bridge",
        "br0",
        "netflow=@n",
    ],
    [
        "--",
        "--id=@b",
        "get",
        "Bridge",
        "br0",
        "--",
        "--id=@i",
        "create",
        "IPFIX",
        'targets="192.0.2.9:4739"',
        "--",
        "set",
        "Bridge",
        "br0",
        "ipfix=@i",
        "--",
        "create",
        "Flow_Sample_Collector_Set",
        "id=1",
        "bridge=@b",
        "ipfix=@i",
    ],
    *LIST_ALL,
    ["emer-reset"],
    ["show"],
    *LIST_ALL,
]

# Output formats: --format, --data, --pretty, --no-headings, --max-column-width.
FORMATS: list[list[str]] = [
    ["add-br", "br0"],
    ["add-port", "br0", "p1", "tag=7", 'external_ids:a="x,y"', 'external_ids:h="<b>&"'],
    ["add-port", "br0", "p2", "trunks=1,2,3", "other_config:r=0.5"],
    ["--format=csv", "--columns=name,tag,external_ids,trunks", "list", "Port"],
    ["--format=csv", "--no-headings", "--columns=name,tag", "list", "Port"],
    ["--format=json", "--columns=_uuid,name,tag,external_ids,trunks", "list", "Port"],
    ["--format=json", "--columns=name,tag", "find", "Port", "tag=7"],
    ["--format=json", "--pretty", "--columns=name,tag,trunks,external_ids", "list", "Port", "p1"],
    ["--format=json", "--pretty", "--columns=name", "find", "Port", "tag=99"],
    ["--format=csv", "-d", "json", "--columns=name,tag,external_ids", "list", "Port"],
    ["-d", "json", "--columns=name,tag,trunks", "list", "Port"],
    ["--format=table", "-d", "bare", "--columns=name,tag,external_ids", "list", "Port"],
    ["--format=table", "--max-column-width=5", "--columns=name,external_ids", "list", "Port"],
    ["--format=html", "--columns=_uuid,name,external_ids,interfaces", "list", "Port", "p1"],
    ["--format=html", "--no-headings", "--columns=name", "list", "Port", "p1"],
    ["--format=json", "-d", "bare", "--columns=name,tag", "list", "Port", "p1"],
    ["--format=json", "get", "Port", "p1", "tag"],
    ["--format=csv", "--columns=name", "list", "Bridge", "--", "--columns=name", "list", "Bridge"],
    [
        "--format=json",
        "--columns=name",
        "list",
        "Bridge",
        "--",
        "--columns=name",
        "list",
        "Bridge",
    ],
    [
        "--format=html",
        "--columns=name",
        "list",
        "Bridge",
        "--",
        "--columns=name",
        "list",
        "Bridge",
    ],
    [
        "--format=table",
        "--columns=name",
        "list",
        "Bridge",
        "--",
        "--columns=name",
        "list",
        "Bridge",
    ],
    ["--oneline", "--columns=name,tag", "list", "Port", "p1", "--", "list-ports", "br0"],
    ["--data=xml", "list-br"],
    ["--format", "csv", "--columns", "name", "list", "Bridge"],
    ["-f", "table", "-d", "bare", "--columns=name", "list", "Bridge"],
    ["--bare", "--format=table", "--columns=name,tag", "list", "Port"],
    ["--format=json", "--columns=name", "list", "Port", "p1", "--", "--format=csv", "list-br"],
    ["--pretty", "--columns=name", "list", "Bridge"],
    ["--columns", "list", "Bridge"],
    ["--if-exists=1", "list", "Bridge"],
]

# wait-until when the condition already holds, or cannot be checked.
WAIT_UNTIL: list[list[str]] = [
    ["add-br", "br0"],
    ["wait-until", "Bridge", "br0"],
    ["wait-until", "Bridge", "br0", "fail_mode!=secure", "--", "list-br"],
    ["wait-until", "Bridge", "br0", "flood_vlans{<=}1", "other_config={}"],
    ["wait-until", "Open_vSwitch", ".", "bridges{>=}[]"],
    ["wait-until", "Bridge", "br0", "nosuch=1"],
    ["wait-until", "Nosuch", "x"],
    ["wait-until", "Bridge", "br0", "fail_mode=bogus"],
    ["wait-until", "Bridge", "br0", "name"],
    ["wait-until", "Bridge"],
]

SEQUENCES = {
    "core": SEQUENCE,
    "fake_bridges": FAKE_BRIDGES,
    "bonds": BONDS,
    "controllers": CONTROLLERS,
    "formats": FORMATS,
    "wait_until": WAIT_UNTIL,
}


def _wait_for(path: Path) -> None:
    wait_for_socket(path, timeout=15)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def sockets(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(our server's socket, ovsdb-server's socket), both serving an empty database."""
    require_ovs()
    env = {
        **os.environ,
        "OVS_RUNDIR": str(tmp_path),
        "OVS_DBDIR": str(tmp_path),
        "OVS_LOGDIR": str(tmp_path),
    }
    subprocess.run(
        ["ovsdb-tool", "create", str(tmp_path / "ovs.db"), str(SCHEMA)],
        check=True,
        env=env,
        timeout=30,
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    "ovsdb-server",
                    f"--remote=punix:{tmp_path / 'ovs.sock'}",
                    "--no-chdir",
                    f"--unixctl={tmp_path / 'ovsdb.ctl'}",
                    str(tmp_path / "ovs.db"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pyvswitch.ovsdb.server",
                    "--db",
                    str(tmp_path / "our.db"),
                    "--remote",
                    f"punix:{tmp_path / 'our.sock'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_for(tmp_path / "ovs.sock")
        _wait_for(tmp_path / "our.sock")
        yield tmp_path / "our.sock", tmp_path / "ovs.sock"
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                _stop(proc)


def _ovs_argv(sock: Path, args: list[str]) -> list[str]:
    return ["ovs-vsctl", "--timeout=20", f"--db=unix:{sock}", "--no-wait", *args]


def _pvs_argv(sock: Path, args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pyvswitch.cli.vsctl",
        "--timeout=20",
        f"--db=unix:{sock}",
        "--no-wait",
        *args,
    ]


def _ovs(sock: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _ovs_argv(sock, args), capture_output=True, text=True, check=False, timeout=30
    )


def _pvs(sock: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _pvs_argv(sock, args), capture_output=True, text=True, check=False, timeout=30
    )


def _normalise(result: subprocess.CompletedProcess[str], args: list[str]) -> tuple[Any, ...]:
    # HTML output also shows the first 8 digits of UUIDs.
    stdout = SHORT_UUID.sub(">-</a>", UUID.sub("<uuid>", result.stdout))
    stderr = IDL_LOG.sub("", WARNING.sub("warning: ", UUID.sub("<uuid>", result.stderr)))
    stderr = stderr.replace("ovs-vsctl:", "pvs-vsctl:")
    out: Any = stdout
    if "--format=json" in args and "--pretty" not in args:
        # One table per line; its rows come in UUID order.
        out = [_sorted_json_table(line) for line in stdout.splitlines()]
    elif UNORDERED & set(args):
        out = sorted(stdout.split("\n"))
    return result.returncode, out, stderr


def _sorted_json_table(line: str) -> Any:
    try:
        table = json.loads(line)
    except ValueError:
        return line
    if isinstance(table, dict) and "data" in table:
        table["data"] = sorted(table["data"], key=json.dumps)
    return table


if TYPE_CHECKING:
    from typing import Any


@pytest.mark.parametrize("name", SEQUENCES)
def test_pvs_vsctl_matches_ovs_vsctl(sockets: tuple[Path, Path], name: str) -> None:
    ours, theirs = sockets
    mismatches = []
    for args in SEQUENCES[name]:
        a = _normalise(_pvs(ours, args), args)
        b = _normalise(_ovs(theirs, args), args)
        if a != b:
            mismatches.append((args, a, b))
    assert not mismatches, "\n\n".join(
        f"{args}\n  pvs-vsctl: {a}\n  ovs-vsctl: {b}" for args, a, b in mismatches
    )


def test_ovs_vsctl_reads_what_pvs_vsctl_wrote(sockets: tuple[Path, Path]) -> None:
    ours, _ = sockets
    for args in (
        ["add-br", "br-int"],
        [
            "add-port",
            "br-int",
            "patch-tun",
            "--",
            "set",
            "interface",
            "patch-tun",
            "type=patch",
            "options:peer=patch-int",
        ],
    ):
        assert _pvs(ours, args).returncode == 0
    assert _ovs(ours, ["list-ports", "br-int"]).stdout == "patch-tun\n"
    assert _ovs(ours, ["get", "Interface", "patch-tun", "options:peer"]).stdout == "patch-int\n"
    shown = _pvs(ours, ["show"]).stdout
    assert sorted(shown.splitlines()) == sorted(_ovs(ours, ["show"]).stdout.splitlines())


def test_wait_until_waits_for_the_database(sockets: tuple[Path, Path]) -> None:
    # Each tool waits on its own database for a bridge that does not exist yet,
    # then for a column value; both must still be waiting in between.
    ours, theirs = sockets
    chain = [
        "wait-until",
        "Bridge",
        "br9",
        "fail_mode=secure",
        "--",
        "get",
        "Bridge",
        "br9",
        "name",
    ]
    waiting = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv in (_pvs_argv(ours, chain), _ovs_argv(theirs, chain))
    ]
    try:
        for sock, run in ((ours, _pvs), (theirs, _ovs)):
            assert run(sock, ["add-br", "br9"]).returncode == 0
        time.sleep(1)
        assert [proc.poll() for proc in waiting] == [None, None]
        for sock, run in ((ours, _pvs), (theirs, _ovs)):
            assert run(sock, ["set", "Bridge", "br9", "fail_mode=secure"]).returncode == 0
        results = [proc.communicate(timeout=30) for proc in waiting]
        assert [proc.returncode for proc in waiting] == [0, 0]
        assert results[0] == results[1] == ("br9\n", "")
    finally:
        for proc in waiting:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)


# -- with the switches: interfaces the switch could not set up ---------------------------

# Chains whose new interfaces both switches refuse, with the same reason.
FAILING_CHAINS: list[list[str]] = [
    ["add-port", "BR", "pp", "--", "set", "interface", "pp", "type=patch"],
    # Two at once: one line each, in the order the chain added them.
    [
        "add-port",
        "BR",
        "vx",
        "--",
        "set",
        "interface",
        "vx",
        "type=vxlan",
        "--",
        "add-port",
        "BR",
        "pq",
        "--",
        "set",
        "interface",
        "pq",
        "type=patch",
    ],
    # Fixed: no error line at all.
    ["set", "interface", "pp", "options:peer=pq"],
]


def test_failed_interfaces_are_reported_as_ovs_vsctl_reports_them(
    ovs: OvsSandbox, tmp_path: Path
) -> None:
    # Each tool names its daemon's log directory ($OVS_LOGDIR, $PVS_LOGDIR).
    logdir = tmp_path / "logs"
    bridge = "vsctl-err"
    with running_daemon(tmp_path / "run") as rundir:
        env = {"PVS_RUNDIR": str(rundir), "PVS_LOGDIR": str(logdir), "PATH": "/usr/bin:/bin"}

        def ours(args: list[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "pyvswitch.cli.vsctl", "--timeout=20", *args],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
                env=env,
            )

        def theirs(args: list[str]) -> subprocess.CompletedProcess[str]:
            return ovs.run(
                "ovs-vsctl", "--timeout=20", f"--db=unix:{ovs.db_sock}", *args, check=False
            )

        def seen(result: subprocess.CompletedProcess[str], where: Path) -> tuple[int, str, str]:
            err = result.stderr.replace(f'"{where}"', '"LOGDIR"')
            err = err.replace("ovs-vsctl:", "pvs-vsctl:").replace("ovs-vswitchd", "pvs-vswitchd")
            return result.returncode, result.stdout, err

        add_br = ["add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=dummy"]
        try:
            assert ours(add_br).returncode == theirs(add_br).returncode == 0
            for chain in FAILING_CHAINS:
                args = [bridge if word == "BR" else word for word in chain]
                assert seen(ours(args), logdir) == seen(theirs(args), ovs.dir), args
            # What the first chain printed, in full.
            args = [bridge if word == "BR" else word for word in FAILING_CHAINS[0]]
            first = ours(["del-port", "pp", "--", *args])
            assert first.returncode == 0
            assert first.stderr == (
                "pvs-vsctl: Error detected while setting up 'pp': pp: patch type requires "
                "valid 'peer' argument.  See pvs-vswitchd log for details.\n"
                f'pvs-vsctl: The default log directory is "{logdir}".\n'
            )
        finally:
            theirs(["--if-exists", "del-br", bridge])
