"""Filter compilation through libpcap: the same programs and the same errors as tcpdump.

tcpdump prints the program it compiles for a file with ``-dd`` and, for a bad
expression, libpcap's message; both come from the installed tcpdump, not from
our code, so they are the expected results here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest
from scapy.utils import RawPcapWriter

from pyvswitch.capture import compile as capture_compile
from pyvswitch.capture.compile import (
    FilterError,
    LibpcapMissingError,
    compile_filter,
)

if TYPE_CHECKING:
    from pathlib import Path

try:
    compile_filter("")
except LibpcapMissingError:
    pytest.skip("libpcap (Debian's libpcap0.8) is not installed", allow_module_level=True)

_INSTRUCTION = re.compile(r"\{ (0x[0-9a-f]+), (\d+), (\d+), (0x[0-9a-f]+) \},")


def _tcpdump() -> str:
    path = shutil.which("tcpdump")
    if path is None:
        pytest.skip("tcpdump is not installed")
    return path


def _empty_capture(tmp_path: Path, snaplen: int) -> Path:
    """An Ethernet pcap file with no packets, written by scapy: tcpdump compiles for its link."""
    path = tmp_path / f"empty-{snaplen}.pcap"
    RawPcapWriter(str(path), linktype=1, snaplen=snaplen).close()
    return path


def _tcpdump_dd(
    tmp_path: Path, expression: str, snaplen: int = 262144
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tcpdump(), "-dd", "-r", str(_empty_capture(tmp_path, snaplen)), expression],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "icmp",
        "tcp port 80",
        "vlan 10 and tcp port 80",
        "host 192.0.2.1 or net 2001:db8::/32",
        "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
        "udp and src port 53",
        "ether host 02:00:00:00:00:0a and not arp",
        "greater 1000 or less 60",
        "ip[0] % 3 = 1 and ip[1] ^ 5 = 2",
        "ip[0] << ip[1] != 0",
        "portrange 1000-2000",
        "icmp6 and ip6[40] == 135",
        "ip6 protochain 6",
    ],
)
def test_programs_equal_what_tcpdump_compiles(tmp_path: Path, expression: str) -> None:
    result = _tcpdump_dd(tmp_path, expression)
    assert result.returncode == 0, result.stderr
    expected = tuple(
        (int(code, 16), int(jt), int(jf), int(k, 16))
        for code, jt, jf, k in _INSTRUCTION.findall(result.stdout)
    )
    assert expected
    assert compile_filter(expression) == expected


def test_the_snapshot_length_is_what_an_accepting_program_returns(tmp_path: Path) -> None:
    result = _tcpdump_dd(tmp_path, "tcp", snaplen=96)
    assert "0x00000060 }" in result.stdout
    program = compile_filter("tcp", snaplen=96)
    assert (0x06, 0, 0, 96) in program
    assert compile_filter("", snaplen=96) == ((0x06, 0, 0, 96),)


@pytest.mark.parametrize(
    "expression",
    [
        "tcp port",
        "foo bar",
        "vlan 5000",
        "tcp port 99999",
        "net 192.0.2.1/24",
        "ip6 net 2001:db8::/129",
        "ether host 02:00:00:00:00",
        "ether host nosuchhost",
        "port nosuchservice",
        "proto nosuchproto",
        "ip[1:3] = 1",
        "éclair",
    ],
)
def test_refused_expressions_carry_libpcaps_message(tmp_path: Path, expression: str) -> None:
    result = _tcpdump_dd(tmp_path, expression)
    assert result.returncode != 0
    tcpdump_says = result.stderr.strip().splitlines()[-1].removeprefix("tcpdump: ")
    with pytest.raises(FilterError) as refused:
        compile_filter(expression)
    assert str(refused.value) == tcpdump_says
    assert refused.value.expression == expression


def test_ip_broadcast_needs_a_netmask_which_a_port_does_not_have() -> None:
    # tcpdump reading a file assumes netmask 0; we compile with an unknown
    # netmask, so libpcap refuses rather than match a guessed broadcast address.
    with pytest.raises(FilterError, match="netmask not known, so 'ip broadcast' not supported"):
        compile_filter("ip broadcast")


def test_a_nul_in_the_expression_is_refused_not_truncated() -> None:
    with pytest.raises(FilterError, match="contains a NUL character"):
        compile_filter("tcp\0 or udp")


@pytest.mark.parametrize("snaplen", [0, -1, 2**31])
def test_impossible_snapshot_lengths_are_refused(snaplen: int) -> None:
    with pytest.raises(ValueError, match=f"snapshot length {snaplen} is out of range"):
        compile_filter("tcp", snaplen=snaplen)


def test_a_missing_libpcap_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str | None, *args: object, **kwargs: object) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(capture_compile, "_libpcap", None)
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    monkeypatch.setattr(ctypes, "CDLL", no_library)
    with pytest.raises(LibpcapMissingError, match=r"libpcap, which is not installed.*libpcap0\.8"):
        compile_filter("tcp")
