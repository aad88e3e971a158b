"""pvs-vsctl driven in-process against our database server (run as a subprocess)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from pyvswitch.cli.vsctl import main
from tests.daemon import wait_for_socket

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[Path]:
    """Our server on an empty database in tmp_path; its socket."""
    path = tmp_path / "db.sock"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyvswitch.ovsdb.server",
            "--db",
            str(tmp_path / "conf.db"),
            "--remote",
            f"punix:{path}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_socket(path, server, timeout=15)
        yield path
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


@pytest.fixture
def vsctl(sock: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run main() with --db pointing at the server: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([f"--db=unix:{sock}", "--no-wait", *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def ok(vsctl: Callable[..., tuple[int, str, str]], *args: str) -> str:
    rc, out, err = vsctl(*args)
    assert (rc, err) == (0, ""), args
    return out


def test_bridges_and_ports(vsctl: Callable[..., tuple[int, str, str]]) -> None:
    assert ok(vsctl, "init") == ""
    assert ok(vsctl, "list-br") == ""
    ok(vsctl, "add-br", "br-int")
    ok(vsctl, "add-br", "br-eth1")
    ok(vsctl, "--may-exist", "add-br", "br-int")
    assert ok(vsctl, "list-br") == "br-eth1\nbr-int\n"
    assert vsctl("br-exists", "br-int") == (0, "", "")
    assert vsctl("br-exists", "br9") == (2, "", "")
    # The reference document's example, as written.
    ok(
        vsctl,
        "add-port",
        "br-int",
        "patch-tun",
        "--",
        "set",
        "interface",
        "patch-tun",
        "type=patch",
        "options:peer=patch-int",
    )
    ok(vsctl, "add-port", "br-int", "tap0", "tag=5")
    assert ok(vsctl, "list-ports", "br-int") == "patch-tun\ntap0\n"
    assert ok(vsctl, "list-ifaces", "br-int") == "patch-tun\ntap0\n"
    assert ok(vsctl, "port-to-br", "tap0") == "br-int\n"
    assert ok(vsctl, "iface-to-br", "patch-tun") == "br-int\n"
    assert (
        ok(vsctl, "get", "Interface", "patch-tun", "type", "options:peer") == "patch\npatch-int\n"
    )
    assert ok(vsctl, "get", "Port", "tap0", "tag") == "5\n"
    # Rows follow their UUIDs' order: look for lines, not positions.
    show = ok(vsctl, "show").splitlines()
    assert "    Bridge br-int" in show
    assert "                options: {peer=patch-int}" in show
    assert "            tag: 5" in show
    ok(vsctl, "del-port", "br-int", "tap0")
    assert ok(vsctl, "list-ports", "br-int") == "patch-tun\n"
    ok(vsctl, "del-br", "br-int")
    assert ok(vsctl, "list-br") == "br-eth1\n"
    # del-br took the bridge's ports and interfaces with it.
    assert "patch-tun" not in ok(vsctl, "--columns=name", "list", "Interface")


def test_generic_commands(vsctl: Callable[..., tuple[int, str, str]]) -> None:
    ok(vsctl, "add-br", "br0")
    ok(
        vsctl,
        "set",
        "Bridge",
        "br0",
        "fail_mode=secure",
        "other_config:datapath-id=0000000000000001",
    )
    assert ok(vsctl, "get", "Bridge", "br0", "fail_mode", "other_config") == (
        'secure\n{datapath-id="0000000000000001"}\n'
    )
    ok(vsctl, "add", "Bridge", "br0", "flood_vlans", "1", "3-4")
    assert ok(vsctl, "get", "Bridge", "br0", "flood_vlans") == "[1, 3, 4]\n"
    ok(vsctl, "remove", "Bridge", "br0", "flood_vlans", "3")
    assert ok(vsctl, "get", "Bridge", "br0", "flood_vlans") == "[1, 4]\n"
    ok(vsctl, "clear", "Bridge", "br0", "flood_vlans")
    assert ok(vsctl, "--bare", "get", "Bridge", "br0", "flood_vlans") == "[]\n"
    assert ok(vsctl, "--columns=name,fail_mode", "list", "Bridge") == (
        "name                : br0\nfail_mode           : secure\n"
    )
    assert ok(vsctl, "--format=table", "--columns=name,fail_mode", "list", "Bridge") == (
        "name fail_mode\n---- ---------\nbr0  secure\n"
    )
    assert ok(vsctl, "--bare", "--columns=name", "find", "Bridge", "fail_mode=secure") == "br0\n"
    assert ok(vsctl, "--bare", "--columns=name", "find", "Bridge", "fail_mode!=secure") == ""
    uuid = ok(vsctl, "create", "QoS", "type=linux-htb").strip()
    assert ok(vsctl, "get", "QoS", uuid, "type") == "linux-htb\n"
    ok(vsctl, "destroy", "QoS", uuid)
    assert ok(vsctl, "list", "QoS") == ""
    # --id names a row created earlier in the same transaction.
    out = ok(
        vsctl,
        "--",
        "--id=@p",
        "get",
        "Port",
        "br0",
        "--",
        "--id=@m",
        "create",
        "Mirror",
        "name=m0",
        "select-src-port=@p",
        "--",
        "add",
        "Bridge",
        "br0",
        "mirrors",
        "@m",
    )
    mirror = out.strip()
    assert ok(vsctl, "get", "Bridge", "br0", "mirrors") == f"[{mirror}]\n"
    assert ok(vsctl, "get", "Mirror", "m0", "name") == "m0\n"
    ok(vsctl, "set", "Open_vSwitch", ".", "external_ids:system-id=host1")
    assert ok(vsctl, "get", "Open_vSwitch", ".", "external_ids:system-id") == "host1\n"
    assert ok(vsctl, "--oneline", "list-br", "--", "list-br") == "br0\nbr0\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["add-br", "br0"],
            "cannot create a bridge named br0 because a bridge named br0 already exists",
        ),
        (["del-br", "br9"], "no bridge named br9"),
        (["add-port", "br9", "p1"], "no bridge named br9"),
        (
            ["set", "Bridge", "br0", "nosuch=1"],
            'Bridge does not contain a column whose name matches "nosuch"',
        ),
        (
            ["set", "Bridge", "br0", "name=x"],
            "cannot modify read-only column name in table Bridge",
        ),
        (
            ["set", "Port", "br0", "tag=5000"],
            "constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)",
        ),
        (
            ["add-port", "br0", "p1", "--", "set", "Interface", "p1", "ofport_request=x"],
            '"x" is not a valid integer or range',
        ),
        (["list", "Bridge", "nosuch"], 'no row "nosuch" in table Bridge'),
        (["frob"], "unknown command 'frob'; use --help for help"),
        (["add-br"], "'add-br' command requires at least 1 arguments"),
        (
            ["set", "Port", "br0", "qos=@q"],
            'row id "@q" is referenced but never created (e.g. with "-- --id=@q create ...")',
        ),
        (["add-br", "v", "br0", "5000"], "add-br: vlan must be between 0 and 4095"),
        (["add-br", "v", "br9", "5"], "parent bridge br9 does not exist"),
        (
            ["add-bond", "br0", "bond0", "a", "tag=1"],
            "add-bond requires at least 2 interfaces, but only 1 were specified",
        ),
        (
            ["add-port", "br0", "p1", "--", "del-bond-iface", "p1"],
            "cannot delete last interface from port p1",
        ),
        (["set-fail-mode", "br0", "open"], 'fail-mode must be "standalone" or "secure"'),
        (["set-ssl", "k", "c"], "'set-ssl' command requires at least 3 arguments"),
        (
            ["wait-until", "Bridge", "br0", "fail_mode=bogus"],
            "constraint violation: bogus is not one of the allowed values ([secure, standalone])",
        ),
        (
            ["set", "Port", "br0", "tag=1", "--", "add", "Port", "br0", "tag", "2"],
            'transaction error: {"details":"Attempted to store 2 elements in set of up to 1 '
            'integers.","error":"constraint violation"}',
        ),
    ],
)
def test_errors_change_nothing(
    vsctl: Callable[..., tuple[int, str, str]], args: list[str], message: str
) -> None:
    ok(vsctl, "add-br", "br0")
    before = ok(
        vsctl,
        "list",
        "Open_vSwitch",
        "--",
        "list",
        "Bridge",
        "--",
        "list",
        "Port",
        "--",
        "list",
        "Interface",
    )
    # Prefixed with a change that would succeed alone: the chain is one transaction.
    assert vsctl("add-br", "br-first", "--", *args) == (1, "", f"pvs-vsctl: {message}\n")
    after = ok(
        vsctl,
        "list",
        "Open_vSwitch",
        "--",
        "list",
        "Bridge",
        "--",
        "list",
        "Port",
        "--",
        "list",
        "Interface",
    )
    assert after == before


def test_exit_codes_of_the_program(sock: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyvswitch.cli.vsctl", f"--db=unix:{sock}", "--no-wait", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    assert run("add-br", "br0").returncode == 0
    assert run("br-exists", "br0").returncode == 0
    assert run("br-exists", "br9").returncode == 2
    failed = run("del-br", "br9")
    assert (failed.returncode, failed.stderr) == (1, "pvs-vsctl: no bridge named br9\n")
    assert run("list-br").stdout == "br0\n"


def test_no_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"--db=unix:{tmp_path}/none.sock", "list-br"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"pvs-vsctl: unix:{tmp_path}/none.sock: database connection failed "
        "(No such file or directory)\n"
    )


def test_startup_imports_stay_small() -> None:
    # The tool is run in loops by scripts: no scapy, no flow or ofproto layers.
    code = "import sys, pyvswitch.cli.vsctl; print(sorted(sys.modules))"
    modules = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    for heavy in ("scapy", "pyvswitch.ofproto", "pyvswitch.flow", "pyvswitch.ovsdb", "asyncio"):
        assert f"'{heavy}" not in modules, heavy


def test_vlan_bridges_and_bonds(vsctl: Callable[..., tuple[int, str, str]]) -> None:
    ok(vsctl, "add-br", "br0")
    ok(vsctl, "add-br", "br0.10", "br0", "10")
    ok(vsctl, "add-port", "br0.10", "p10")
    ok(vsctl, "add-bond", "br0", "bond0", "a", "b", "lacp=active")
    assert ok(vsctl, "list-br") == "br0\nbr0.10\n"
    assert ok(vsctl, "--fake", "list-br") == "br0.10\n"
    assert ok(vsctl, "br-to-vlan", "br0.10") + ok(vsctl, "br-to-parent", "br0.10") == "10\nbr0\n"
    # A port of a VLAN bridge is a port of its parent with the VLAN's tag.
    assert ok(vsctl, "port-to-br", "p10") == "br0.10\n"
    assert ok(vsctl, "get", "Port", "p10", "tag") == "10\n"
    assert ok(vsctl, "list-ports", "br0") == "bond0\n"
    assert ok(vsctl, "list-ifaces", "br0") == "a\nb\n"
    assert ok(vsctl, "iface-to-br", "b") == "br0\n"
    ok(vsctl, "add-bond-iface", "bond0", "c")
    ok(vsctl, "del-bond-iface", "a")
    assert ok(vsctl, "list-ifaces", "br0") == "b\nc\n"
    # A VLAN bridge's external IDs live on its port, under "fake-bridge-".
    ok(vsctl, "br-set-external-id", "br0.10", "owner", "me")
    assert ok(vsctl, "br-get-external-id", "br0.10") == "owner=me\n"
    assert ok(vsctl, "get", "Port", "br0.10", "external_ids") == "{fake-bridge-owner=me}\n"
    ok(vsctl, "del-br", "br0.10")
    assert ok(vsctl, "list-br") == "br0\n"
    assert vsctl("port-to-br", "p10") == (1, "", "pvs-vsctl: no port named p10\n")


def test_controllers_managers_ssl_and_emer_reset(
    vsctl: Callable[..., tuple[int, str, str]],
) -> None:
    ok(vsctl, "add-br", "br0")
    assert vsctl("set-controller", "br0", "tcp:192.0.2.1:6653", "nowhere") == (
        0,
        "",
        'pvs-vsctl: warning: target type "nowhere" is possibly erroneous\n',
    )
    assert ok(vsctl, "get-controller", "br0") == "nowhere\ntcp:192.0.2.1:6653\n"
    ok(vsctl, "set-fail-mode", "br0", "secure")
    ok(vsctl, "set-manager", "ptcp:6640")
    ok(vsctl, "--bootstrap", "set-ssl", "/key", "/cert", "/ca")
    assert ok(vsctl, "get-fail-mode", "br0") + ok(vsctl, "get-manager") == "secure\nptcp:6640\n"
    assert ok(vsctl, "get-ssl") == (
        "Private key: /key\nCertificate: /cert\nCA Certificate: /ca\nBootstrap: true\n"
    )
    ok(vsctl, "emer-reset")
    assert ok(vsctl, "get-controller", "br0") + ok(vsctl, "get-fail-mode", "br0") == ""
    assert ok(vsctl, "get-manager") + ok(vsctl, "get-ssl") == ""
    for table in ("Controller", "Manager", "SSL"):
        assert ok(vsctl, "list", table) == ""


def test_output_formats(vsctl: Callable[..., tuple[int, str, str]]) -> None:
    # Expected texts as Open vSwitch 3.1's ovs-vsctl prints them.
    ok(vsctl, "add-br", "br0")
    ok(vsctl, "add-port", "br0", "p1", "tag=7", 'external_ids:a="x,y"')
    columns = "--columns=name,tag,external_ids"
    assert ok(vsctl, "--format=csv", columns, "list", "Port", "p1") == (
        'name,tag,external_ids\np1,7,"{a=""x,y""}"\n'
    )
    assert ok(vsctl, "--format=json", columns, "list", "Port", "p1") == (
        '{"data":[["p1",7,["map",[["a","x,y"]]]]],"headings":["name","tag","external_ids"]}\n'
    )
    assert ok(vsctl, "--format=json", "--pretty", "--columns=name,tag", "list", "Port", "p1") == (
        '{\n  "data": [\n    [\n      "p1",\n      7]],\n  "headings": [\n    "name",\n'
        '    "tag"]}\n'
    )
    assert ok(vsctl, "-d", "json", "--columns=name,trunks", "list", "Port", "p1") == (
        'name                : "p1"\ntrunks              : ["set",[]]\n'
    )
    assert vsctl("--format=xml", "list-br") == (1, "", 'pvs-vsctl: unknown output format "xml"\n')
    assert vsctl("-d", "xml", "list-br") == (1, "", 'pvs-vsctl: unknown data format "xml"\n')
    # --oneline leaves tables alone.
    assert ok(vsctl, "--oneline", "--columns=name", "list", "Port", "p1") == (
        "name                : p1\n"
    )


def test_wait_until(sock: Path, vsctl: Callable[..., tuple[int, str, str]]) -> None:
    def start(*args: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "pyvswitch.cli.vsctl", f"--db=unix:{sock}", *args]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    waiter = start("--timeout=20", "wait-until", "Bridge", "br0", "other_config:ready=yes")
    try:
        ok(vsctl, "add-br", "br0")
        time.sleep(0.5)
        assert waiter.poll() is None
        ok(vsctl, "set", "Bridge", "br0", "other_config:ready=yes")
        assert waiter.communicate(timeout=30) == ("", "")
        assert waiter.returncode == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate(timeout=10)
    # --timeout bounds the wait.
    timed_out = start("--timeout=1", "wait-until", "Bridge", "br9")
    assert timed_out.communicate(timeout=30) == ("", "pvs-vsctl: timed out\n")
    assert timed_out.returncode == 1
