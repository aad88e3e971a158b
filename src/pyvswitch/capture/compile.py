"""Compile tcpdump filter expressions to classic BPF with libpcap's own compiler.

A capture filter means exactly what it means to tcpdump only if the same
compiler reads it, so pyvswitch does not parse the language itself: it asks
libpcap (``pcap_open_dead`` for Ethernet, ``pcap_compile`` with the optimizer
on and an unknown netmask, as tcpdump does for a file) and gets back the
instructions as ``(code, jt, jf, k)`` tuples, which
:class:`pyvswitch.packet.bpf.BpfProgram` then runs per packet. An expression
libpcap refuses raises :class:`FilterError` with libpcap's own message
(``pcap_geterr``), the text tcpdump would print.

Why ctypes and not a binding from PyPI: four functions are needed, and ctypes
reaches them in the system's libpcap, the same library (and so the same
compiler version) as the installed tcpdump, with no build step. The maintained
bindings either compile a C extension against libpcap's headers or, like
pcapy-ng's wheels, bundle an older libpcap of their own (1.9 where Debian has
1.10), whose compiler could disagree with the tcpdump beside it.

Names in an expression are resolved at compile time, as tcpdump does:
``host NAME`` asks the resolver, ``ether host NAME`` reads ``/etc/ethers``,
``port NAME`` reads ``/etc/services``.

:class:`LibpcapFilter` runs a program with libpcap's C interpreter
(``pcap_offline_filter``); it is the reference the tests and the benchmark
hold our interpreter against.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyvswitch.packet.bpf import Instruction

DLT_EN10MB = 1
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
# tcpdump's default snapshot length; a compiled filter's accepting return is this value.
DEFAULT_SNAPLEN = 262144
# Debian's package is libpcap0.8 (soname libpcap.so.0.8); most other systems
# ship libpcap.so.1. They are the same library under two names.
_SONAMES = ("libpcap.so.0.8", "libpcap.so.1")


class FilterError(ValueError):
    """libpcap refused a filter expression; the message is libpcap's own."""

    def __init__(self, expression: str, message: str) -> None:
        super().__init__(message)
        self.expression = expression


class LibpcapMissingError(RuntimeError):
    """libpcap, which compiles capture filters, is not installed."""


class _BpfInsn(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    )


class _BpfProgram(ctypes.Structure):
    _fields_ = (("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn)))


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _PcapPkthdr(ctypes.Structure):
    _fields_ = (("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32))


class _Libpcap:
    """The few libpcap functions capture needs, with their C signatures declared."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.open_dead = lib.pcap_open_dead
        self.open_dead.argtypes = (ctypes.c_int, ctypes.c_int)
        self.open_dead.restype = ctypes.c_void_p
        self.close = lib.pcap_close
        self.close.argtypes = (ctypes.c_void_p,)
        self.close.restype = None
        self.compile = lib.pcap_compile
        self.compile.argtypes = (
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        )
        self.compile.restype = ctypes.c_int
        self.geterr = lib.pcap_geterr
        self.geterr.argtypes = (ctypes.c_void_p,)
        self.geterr.restype = ctypes.c_char_p
        self.freecode = lib.pcap_freecode
        self.freecode.argtypes = (ctypes.POINTER(_BpfProgram),)
        self.freecode.restype = None
        self.offline_filter = lib.pcap_offline_filter
        self.offline_filter.argtypes = (
            ctypes.POINTER(_BpfProgram),
            ctypes.POINTER(_PcapPkthdr),
            ctypes.c_char_p,
        )
        # The C function returns bpf_filter()'s unsigned verdict through an int;
        # reading it unsigned gives back the value the program returned.
        self.offline_filter.restype = ctypes.c_uint


_lock = threading.Lock()
_libpcap: _Libpcap | None = None


def _load() -> _Libpcap:
    """Load libpcap once per process; a missing library is named in the error."""
    global _libpcap  # noqa: PLW0603 - one lazily loaded handle for the process
    with _lock:
        if _libpcap is None:
            found = ctypes.util.find_library("pcap")
            for name in (found, *_SONAMES) if found else _SONAMES:
                try:
                    _libpcap = _Libpcap(ctypes.CDLL(name))
                    break
                except OSError:
                    continue
            else:
                raise LibpcapMissingError(
                    "capture filters are compiled by libpcap, which is not installed: "
                    f"none of {', '.join(_SONAMES)} could be loaded "
                    "(on Debian: apt-get install libpcap0.8)"
                )
        return _libpcap


def compile_filter(expression: str, snaplen: int = DEFAULT_SNAPLEN) -> tuple[Instruction, ...]:
    """Compile a tcpdump expression for Ethernet frames: ``tcpdump -dd``'s instructions.

    An empty expression compiles to the program that accepts everything. A
    port has no netmask, so the netmask is unknown to libpcap, which then
    refuses ``ip broadcast`` (tcpdump reading a file assumes netmask 0 instead).
    Raises :class:`FilterError` with libpcap's message when it refuses the
    expression, and :class:`LibpcapMissingError` when libpcap is absent.
    """
    if not 0 < snaplen <= 0x7FFFFFFF:
        raise ValueError(f"snapshot length {snaplen} is out of range (1 to 2147483647)")
    # C reads the expression up to its first NUL byte: refuse one rather than
    # compile less than the user wrote.
    if "\0" in expression:
        raise FilterError(expression, "filter expression contains a NUL character")
    text = expression.encode("utf-8", "surrogateescape")
    lib = _load()
    # pcap_compile keeps state in the handle and, in libpcap releases before
    # 1.8, in globals too; one compilation at a time is safe with any release.
    with _lock:
        handle = lib.open_dead(DLT_EN10MB, snaplen)
        if not handle:
            raise MemoryError("pcap_open_dead failed")
        program = _BpfProgram()
        try:
            if lib.compile(handle, ctypes.byref(program), text, 1, PCAP_NETMASK_UNKNOWN) != 0:
                message = (lib.geterr(handle) or b"").decode("utf-8", "replace")
                raise FilterError(expression, message)
            insns = program.bf_insns
            return tuple(
                (insns[i].code, insns[i].jt, insns[i].jf, insns[i].k)
                for i in range(program.bf_len)
            )
        finally:
            # pcap_freecode accepts a program pcap_compile never filled in.
            lib.freecode(ctypes.byref(program))
            lib.close(handle)


class LibpcapFilter:
    """Run a BPF program with libpcap's C interpreter, ``pcap_offline_filter``."""

    def __init__(self, program: Sequence[Instruction]) -> None:
        self._lib = _load()
        self._insns = (_BpfInsn * len(program))(*(_BpfInsn(*insn) for insn in program))
        self._program = _BpfProgram(len(program), self._insns)
        self._header = _PcapPkthdr()

    def __call__(self, frame: bytes) -> int:
        """What the program returns for ``frame`` (0 rejects it), the whole frame captured."""
        self._header.caplen = self._header.len = len(frame)
        return int(
            self._lib.offline_filter(
                ctypes.byref(self._program), ctypes.byref(self._header), frame
            )
        )
