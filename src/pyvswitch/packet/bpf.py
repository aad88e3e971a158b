"""Classic BPF: check a filter program once, then run it on frames fast.

A capture filter is a classic BPF program, the ``(code, jt, jf, k)``
instructions libpcap compiles tcpdump's language to (see
:mod:`pyvswitch.capture.compile`). :class:`BpfProgram` validates one and
turns it into a Python function from a frame's bytes to the program's return
value: 0 rejects the frame, anything else accepts it (and says how many bytes
to keep).

Semantics are the Linux kernel's for socket filters
(``Documentation/networking/filter.rst``, ``net/core/filter.c``):

- A and X start at 0; loads are big-endian; arithmetic is on 32-bit
  unsigned values and wraps.
- A load that reaches past the end of the frame ends the program with 0
  (the frame is rejected); so does a division or modulo by an X of 0.
- A shift by X uses X's low five bits, as the kernel's interpreter and JITs
  do. libpcap's own interpreter gives 0 for a shift by 32 or more instead;
  libpcap's compiler emits such a shift only for an expression that shifts by
  a packet field (``ip[0] << ip[1]``).
- ``LD LEN`` is the frame's length: frames are filtered whole, before any
  snapshot length cuts them.

The validator refuses, with the instruction and the reason, what the
kernel's ``bpf_check_classic`` refuses: an empty program or one longer than
4096 instructions, an unknown opcode, a jump that is not forward or lands
past the end, a last instruction that is not a return, a scratch memory slot
outside 0 to 15 or read before every path to it has written it, a division
or modulo by the constant 0, and a shift by a constant of 32 or more. It also
refuses absolute loads at "negative" offsets (``k`` of 2**31 or more), which
the kernel reserves for ancillary data (``SKF_AD_*``) that a frame's bytes
do not carry. libpcap emits those only for live Linux captures, never for a
program compiled with ``pcap_open_dead`` as ours are; and it emits backward
jumps only for ``protochain``, which the kernel refuses as well.

VLAN tags: the kernel strips a received frame's outer tag into metadata, and
libpcap filters for live Linux sockets read it with ancillary loads. Frames
reach pyvswitch's filter with their tags in place (the system netdev puts the
stripped tag back), and programs compiled for ``DLT_EN10MB`` by
``pcap_open_dead`` find ``vlan`` by plain offsets, which is right for such
frames.

Speed: the filter runs on every frame of a captured port, before anything is
copied, so the program is translated once into the source of a Python
function and compiled. Each basic block becomes straight-line Python;
branches become ``if`` statements; a block reached from several places is
guarded by a block-number test, which works without loops because classic
BPF only jumps forward. A load past the end of the frame and a division by
zero raise inside the function and become the 0 return, so the common path
has no bounds checks. The source is built only from validated integers and
fixed templates.
"""

from __future__ import annotations

import heapq
import struct
from typing import TYPE_CHECKING, Final, cast

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

Instruction = tuple[int, int, int, int]
"""One instruction as libpcap and the kernel store it: ``(code, jt, jf, k)``."""

MAX_INSTRUCTIONS: Final = 4096
MEMWORDS: Final = 16
_U32: Final = 0xFFFFFFFF

# Opcodes (linux/filter.h: class | size | mode, class | op | source) with the
# Python each one becomes. {k} is the constant, {k1} the constant plus one.
_JA: Final = 0x05
_STATEMENTS: Final[dict[int, str]] = {
    0x00: "A = {k}",  # ld #k
    0x01: "X = {k}",  # ldx #k
    0x20: "A = _word(p, {k})[0]",  # ld [k]
    0x28: "A = p[{k}] << 8 | p[{k1}]",  # ldh [k]
    0x30: "A = p[{k}]",  # ldb [k]
    0x40: "A = _word(p, X + {k})[0]",  # ld [x + k]
    0x48: "A = p[X + {k}] << 8 | p[X + {k1}]",  # ldh [x + k]
    0x50: "A = p[X + {k}]",  # ldb [x + k]
    0x60: "A = m{k}",  # ld M[k]
    0x61: "X = m{k}",  # ldx M[k]
    0x80: "A = len(p)",  # ld #len
    0x81: "X = len(p)",  # ldx #len
    0xB1: "X = (p[{k}] & 15) << 2",  # ldxb 4*([k]&0xf)
    0x02: "m{k} = A",  # st M[k]
    0x03: "m{k} = X",  # stx M[k]
    0x04: "A = (A + {k}) & 0xFFFFFFFF",  # add #k
    0x0C: "A = (A + X) & 0xFFFFFFFF",  # add x
    0x14: "A = (A - {k}) & 0xFFFFFFFF",  # sub #k
    0x1C: "A = (A - X) & 0xFFFFFFFF",  # sub x
    0x24: "A = (A * {k}) & 0xFFFFFFFF",  # mul #k
    0x2C: "A = (A * X) & 0xFFFFFFFF",  # mul x
    0x34: "A //= {k}",  # div #k
    0x3C: "A //= X",  # div x
    0x94: "A %= {k}",  # mod #k
    0x9C: "A %= X",  # mod x
    0x44: "A |= {k}",  # or #k
    0x4C: "A |= X",  # or x
    0x54: "A &= {k}",  # and #k
    0x5C: "A &= X",  # and x
    0xA4: "A ^= {k}",  # xor #k
    0xAC: "A ^= X",  # xor x
    0x64: "A = (A << {k}) & 0xFFFFFFFF",  # lsh #k
    0x6C: "A = (A << (X & 31)) & 0xFFFFFFFF",  # lsh x
    0x74: "A >>= {k}",  # rsh #k
    0x7C: "A >>= X & 31",  # rsh x
    0x84: "A = -A & 0xFFFFFFFF",  # neg
    0x07: "X = A",  # tax
    0x87: "A = X",  # txa
}
_CONDITIONS: Final[dict[int, str]] = {
    0x15: "A == {k}",  # jeq #k
    0x1D: "A == X",  # jeq x
    0x25: "A > {k}",  # jgt #k
    0x2D: "A > X",  # jgt x
    0x35: "A >= {k}",  # jge #k
    0x3D: "A >= X",  # jge x
    0x45: "A & {k}",  # jset #k
    0x4D: "A & X",  # jset x
}
_RETURNS: Final[dict[int, str]] = {
    0x06: "return {k}",  # ret #k
    0x16: "return A",  # ret a
}
_MEMORY_READS: Final = frozenset({0x60, 0x61})
_MEMORY_WRITES: Final = frozenset({0x02, 0x03})
_ABSOLUTE_LOADS: Final = frozenset({0x20, 0x28, 0x30, 0xB1})
_CONSTANT_DIVISORS: Final = frozenset({0x34, 0x94})
_CONSTANT_SHIFTS: Final = frozenset({0x64, 0x74})

# Python refuses more than 100 levels of indentation; an if/else nest deeper
# than this turns its inner blocks into guarded blocks instead.
_MAX_NESTING: Final = 40


class BpfError(ValueError):
    """The program is not a valid classic BPF program; the message says where and why."""


def _describe(pc: int, insn: Instruction) -> str:
    code, jt, jf, k = insn
    return f"instruction {pc} {{ 0x{code:02x}, {jt}, {jf}, 0x{k:08x} }}"


def _check_fields(pc: int, insn: object) -> Instruction:
    """The four fields, each an integer of its C type's width."""
    if not isinstance(insn, tuple | list) or len(insn) != 4:
        raise BpfError(f"instruction {pc}: {insn!r} is not a (code, jt, jf, k) tuple")
    for name, value, bits in zip(("code", "jt", "jf", "k"), insn, (16, 8, 8, 32), strict=True):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
            raise BpfError(
                f"instruction {pc}: {name} {value!r} is not an unsigned {bits}-bit value"
            )
    code, jt, jf, k = insn
    return (code, jt, jf, k)


def _check_instruction(pc: int, insn: Instruction, length: int) -> None:
    code, jt, jf, k = insn
    where = _describe(pc, insn)
    if code == _JA:
        if k >= 1 << 31:
            raise BpfError(f"{where}: jumps backwards; classic BPF jumps only forward")
        if pc + 1 + k >= length:
            raise BpfError(f"{where}: jumps to {pc + 1 + k}, past the last instruction")
    elif code in _CONDITIONS:
        for target in (pc + 1 + jt, pc + 1 + jf):
            if target >= length:
                raise BpfError(f"{where}: jumps to {target}, past the last instruction")
    elif code not in _STATEMENTS and code not in _RETURNS:
        raise BpfError(f"{where}: unknown opcode 0x{code:02x}")
    if (code in _MEMORY_READS or code in _MEMORY_WRITES) and k >= MEMWORDS:
        raise BpfError(f"{where}: scratch memory slot {k} does not exist (0 to {MEMWORDS - 1})")
    if code in _CONSTANT_DIVISORS and k == 0:
        raise BpfError(f"{where}: divides by the constant 0")
    if code in _CONSTANT_SHIFTS and k >= 32:
        raise BpfError(f"{where}: shifts by {k} bits; a 32-bit register shifts by 0 to 31")
    if code in _ABSOLUTE_LOADS and k >= 1 << 31:
        raise BpfError(
            f"{where}: loads at a negative offset, which Linux reserves for ancillary "
            "data (SKF_AD_*); frames are filtered with their bytes only"
        )


def _check_memory(program: tuple[Instruction, ...]) -> None:
    """Refuse a read of a scratch slot that some path reaches without writing it.

    The kernel's ``check_load_and_stores`` does the same, so that memory need
    not be cleared per packet; jumps only go forward, so one pass in order
    sees every path into an instruction before the instruction itself.
    """
    everything = (1 << MEMWORDS) - 1
    written = [everything] * len(program)
    written[0] = 0
    for pc, insn in enumerate(program):
        code, _, _, k = insn
        slots = written[pc]
        if code in _MEMORY_WRITES:
            slots |= 1 << k
        elif code in _MEMORY_READS and not slots >> k & 1:
            raise BpfError(
                f"{_describe(pc, insn)}: reads scratch memory slot {k}, "
                "which a path to it leaves unwritten"
            )
        for successor in _successors(pc, insn):
            written[successor] &= slots


def _successors(pc: int, insn: Instruction) -> tuple[int, ...]:
    code, jt, jf, k = insn
    if code in _RETURNS:
        return ()
    if code == _JA:
        return (pc + 1 + k,)
    if code in _CONDITIONS:
        return (pc + 1 + jt,) if jt == jf else (pc + 1 + jt, pc + 1 + jf)
    return (pc + 1,)


def validate(program: Sequence[Instruction]) -> tuple[Instruction, ...]:
    """Check a program as the kernel would; return it as a tuple or raise :class:`BpfError`."""
    if not program:
        raise BpfError("a BPF program needs at least one instruction")
    if len(program) > MAX_INSTRUCTIONS:
        raise BpfError(
            f"the program has {len(program)} instructions; the limit is {MAX_INSTRUCTIONS}"
        )
    checked = tuple(_check_fields(pc, insn) for pc, insn in enumerate(program))
    for pc, insn in enumerate(checked):
        _check_instruction(pc, insn, len(checked))
    last = len(checked) - 1
    if checked[last][0] not in _RETURNS:
        raise BpfError(f"{_describe(last, checked[last])}: the last instruction must be a return")
    _check_memory(checked)
    return checked


class _Translator:
    """Python source for a validated program (see the module docstring)."""

    def __init__(self, program: tuple[Instruction, ...]) -> None:
        self.program = program
        self.lines = ["def run(p):", "    A = X = 0", "    try:"]
        self.guarded: list[int] = []
        self.emitted: set[int] = set()
        self.leaders = {0}
        self.entries = dict.fromkeys(range(len(program)), 0)
        reachable = {0}
        for pc, insn in enumerate(program):
            if pc not in reachable:
                continue
            successors = _successors(pc, insn)
            reachable.update(successors)
            for successor in successors:
                self.entries[successor] += 1
                if successor != pc + 1 or insn[0] == _JA or insn[0] in _CONDITIONS:
                    self.leaders.add(successor)

    def source(self) -> str:
        self.block(0, 2, 0)
        while self.guarded:
            start = heapq.heappop(self.guarded)
            if start not in self.emitted:
                self.emit(2, f"if pc == {start}:")
                self.block(start, 3, 1)
        self.lines += ["    except _out_of_bounds:", "        return 0"]
        return "\n".join(self.lines) + "\n"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def block(self, start: int, indent: int, depth: int) -> None:
        """Emit the basic block at ``start`` and, through :meth:`goto`, what follows it."""
        self.emitted.add(start)
        pc = start
        while True:
            code, jt, jf, k = self.program[pc]
            if code in _STATEMENTS:
                self.emit(indent, _STATEMENTS[code].format(k=k, k1=k + 1))
                pc += 1
                if pc in self.leaders:
                    self.goto(pc, indent, depth)
                    return
            elif code in _RETURNS:
                self.emit(indent, _RETURNS[code].format(k=k))
                return
            elif code == _JA:
                self.goto(pc + 1 + k, indent, depth)
                return
            else:
                self.branch(_CONDITIONS[code].format(k=k), pc + 1 + jt, pc + 1 + jf, indent, depth)
                return

    def returns_at(self, target: int) -> str | None:
        """The return statement a jump to ``target`` amounts to, if it is one."""
        code, _, _, k = self.program[target]
        return _RETURNS[code].format(k=k) if code in _RETURNS else None

    def goto(self, target: int, indent: int, depth: int) -> None:
        """Continue at ``target``: a copied return, the block itself, or a guarded block."""
        returns = self.returns_at(target)
        if returns is not None:
            self.emit(indent, returns)
        elif self.entries[target] == 1 and depth < _MAX_NESTING:
            self.block(target, indent, depth)
        else:
            self.emit(indent, f"pc = {target}")
            heapq.heappush(self.guarded, target)

    def branch(self, condition: str, true: int, false: int, indent: int, depth: int) -> None:
        if true == false:
            self.goto(true, indent, depth)
        elif (returns := self.returns_at(true)) is not None:
            self.emit(indent, f"if {condition}:")
            self.emit(indent + 1, returns)
            self.goto(false, indent, depth)
        elif (returns := self.returns_at(false)) is not None:
            self.emit(indent, f"if not ({condition}):")
            self.emit(indent + 1, returns)
            self.goto(true, indent, depth)
        else:
            self.emit(indent, f"if {condition}:")
            self.goto(true, indent + 1, depth + 1)
            self.emit(indent, "else:")
            self.goto(false, indent + 1, depth + 1)


class BpfProgram:
    """A validated classic BPF program; ``run(frame)`` is what it returns for the frame."""

    __slots__ = ("instructions", "run")

    def __init__(self, program: Sequence[Instruction]) -> None:
        self.instructions = validate(program)
        source = _Translator(self.instructions).source()
        namespace: dict[str, object] = {
            "_word": struct.Struct(">I").unpack_from,
            "_out_of_bounds": (IndexError, struct.error, ZeroDivisionError),
        }
        # The source is made of fixed templates and validated integers only.
        exec(compile(source, "<bpf program>", "exec"), namespace)  # noqa: S102
        self.run = cast("Callable[[bytes], int]", namespace["run"])
