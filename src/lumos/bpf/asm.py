"""BPF instructions as values, and an assembler that resolves labels at encode time.

    Mov.reg(R6, R1)                       # r6 = r1
    call(Helper.get_current_pid_tgid)
    Rsh.imm(R0, 32)
    Jne.imm(R0, tgid, "out")              # jump target named by label
    ld_map_fd(R1, counts)                 # a Map: its fd is read when encoding
    Mov.imm(R0, 0).labelled("out")
    exit_()

An Instruction is immutable. Jumps name their target; the target instruction carries
the label. The 64-bit immediate load takes two slots, which offsets account for.
Unknown or duplicate labels raise AsmError naming the instruction index.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum

from lumos.errors import AsmError


class Reg(IntEnum):
    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = tuple(Reg)
FP = R10


class Helper(IntEnum):
    """enum bpf_func_id (checked against vmlinux BTF by the tests)."""

    map_lookup_elem = 1
    map_update_elem = 2
    map_delete_elem = 3
    probe_read = 4
    ktime_get_ns = 5
    get_prandom_u32 = 7
    get_smp_processor_id = 8
    get_current_pid_tgid = 14
    get_current_uid_gid = 15
    get_current_comm = 16
    perf_event_output = 25
    get_stackid = 27
    get_current_task = 35
    probe_read_str = 45
    get_stack = 67
    probe_read_user = 112
    probe_read_kernel = 113
    probe_read_user_str = 114
    probe_read_kernel_str = 115
    ktime_get_boot_ns = 125
    ringbuf_output = 130
    ringbuf_reserve = 131
    ringbuf_submit = 132
    ringbuf_discard = 133
    ringbuf_query = 134
    get_current_task_btf = 158
    get_func_ip = 173
    get_attach_cookie = 174
    map_lookup_percpu_elem = 195


# instruction classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
# sizes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_CODE = {1: B, 2: H, 4: W, 8: DW}
SIZE_BYTES = {v: k for k, v in SIZE_CODE.items()}
# modes
IMM, MEM, ATOMIC = 0x00, 0x60, 0xC0
# sources
K, X = 0x00, 0x08
# jump codes
_JA, _CALL, _EXIT = 0x00, 0x80, 0x90
# pseudo sources for the 64-bit immediate load
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
# atomic ops
ATOMIC_ADD = 0x00
ATOMIC_FETCH = 0x01
ATOMIC_CMPXCHG = 0xF0 | ATOMIC_FETCH

LDDW = LD | IMM | DW


@dataclass(frozen=True)
class Instruction:
    """One BPF instruction (two slots for LDDW), with assembler metadata."""

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    labels: tuple[str, ...] = ()
    target: str | None = None  # jump target label, resolved at encode time
    map_ref: object | None = None  # Map whose fd (or value address) LDDW loads
    comment: str = ""

    def labelled(self, *names: str) -> Instruction:
        return replace(self, labels=self.labels + names)

    def commented(self, text: str) -> Instruction:
        return replace(self, comment=text)

    @property
    def slots(self) -> int:
        return 2 if self.opcode == LDDW else 1

    @property
    def is_jump(self) -> bool:
        cls = self.opcode & 0x07
        op = self.opcode & 0xF0
        return cls in (JMP, JMP32) and op not in (_CALL, _EXIT)


class _AluOp:
    """An ALU operation: Op.imm(dst, k), Op.reg(dst, src), and 32-bit forms."""

    def __init__(self, name: str, code: int):
        self.name, self.code = name, code

    def imm(self, dst: Reg, k: int) -> Instruction:
        return Instruction(ALU64 | self.code | K, dst, 0, 0, _s32(k))

    def reg(self, dst: Reg, src: Reg) -> Instruction:
        return Instruction(ALU64 | self.code | X, dst, src)

    def imm32(self, dst: Reg, k: int) -> Instruction:
        return Instruction(ALU | self.code | K, dst, 0, 0, _s32(k))

    def reg32(self, dst: Reg, src: Reg) -> Instruction:
        return Instruction(ALU | self.code | X, dst, src)


Add = _AluOp("add", 0x00)
Sub = _AluOp("sub", 0x10)
Mul = _AluOp("mul", 0x20)
Div = _AluOp("div", 0x30)
Or = _AluOp("or", 0x40)
And = _AluOp("and", 0x50)
Lsh = _AluOp("lsh", 0x60)
Rsh = _AluOp("rsh", 0x70)
Neg = _AluOp("neg", 0x80)
Mod = _AluOp("mod", 0x90)
Xor = _AluOp("xor", 0xA0)
Mov = _AluOp("mov", 0xB0)
Arsh = _AluOp("arsh", 0xC0)


class _JmpOp:
    """A conditional jump: Op.imm(dst, k, "label"), Op.reg(dst, src, "label")."""

    def __init__(self, name: str, code: int):
        self.name, self.code = name, code

    def imm(self, dst: Reg, k: int, target: str) -> Instruction:
        return Instruction(JMP | self.code | K, dst, 0, 0, _s32(k), target=target)

    def reg(self, dst: Reg, src: Reg, target: str) -> Instruction:
        return Instruction(JMP | self.code | X, dst, src, target=target)

    def imm32(self, dst: Reg, k: int, target: str) -> Instruction:
        return Instruction(JMP32 | self.code | K, dst, 0, 0, _s32(k), target=target)


Jeq = _JmpOp("jeq", 0x10)
Jgt = _JmpOp("jgt", 0x20)
Jge = _JmpOp("jge", 0x30)
Jset = _JmpOp("jset", 0x40)
Jne = _JmpOp("jne", 0x50)
Jsgt = _JmpOp("jsgt", 0x60)
Jsge = _JmpOp("jsge", 0x70)
Jlt = _JmpOp("jlt", 0xA0)
Jle = _JmpOp("jle", 0xB0)
Jslt = _JmpOp("jslt", 0xC0)
Jsle = _JmpOp("jsle", 0xD0)


def ja(target: str) -> Instruction:
    return Instruction(JMP | _JA, target=target)


def call(helper: Helper | int) -> Instruction:
    return Instruction(JMP | _CALL, imm=int(helper))


def exit_() -> Instruction:
    return Instruction(JMP | _EXIT)


def ldx(size: int, dst: Reg, src: Reg, off: int) -> Instruction:
    """dst = *(size *)(src + off)"""
    return Instruction(LDX | MEM | SIZE_CODE[size], dst, src, _s16(off))


def stx(size: int, dst: Reg, off: int, src: Reg) -> Instruction:
    """*(size *)(dst + off) = src"""
    return Instruction(STX | MEM | SIZE_CODE[size], dst, src, _s16(off))


def st(size: int, dst: Reg, off: int, imm: int) -> Instruction:
    """*(size *)(dst + off) = imm"""
    return Instruction(ST | MEM | SIZE_CODE[size], dst, 0, _s16(off), _s32(imm))


def atomic_add(size: int, dst: Reg, off: int, src: Reg) -> Instruction:
    """*(size *)(dst + off) += src, atomically (size 4 or 8)."""
    if size not in (4, 8):
        raise AsmError(f"atomic add needs size 4 or 8, not {size}")
    return Instruction(STX | ATOMIC | SIZE_CODE[size], dst, src, _s16(off), ATOMIC_ADD)


def atomic_cmpxchg(size: int, dst: Reg, off: int, src: Reg) -> Instruction:
    """R0 = cmpxchg(*(size *)(dst + off), R0, src): store src where the old value equals
    R0; R0 gets the old value either way (size 4 or 8)."""
    if size not in (4, 8):
        raise AsmError(f"atomic cmpxchg needs size 4 or 8, not {size}")
    return Instruction(STX | ATOMIC | SIZE_CODE[size], dst, src, _s16(off), ATOMIC_CMPXCHG)


def ld_imm64(dst: Reg, value: int) -> Instruction:
    return Instruction(LDDW, dst, 0, 0, value & 0xFFFFFFFFFFFFFFFF)


def ld_map_fd(dst: Reg, map_obj) -> Instruction:
    """dst = pointer to a map (any object with an .fd, read when encoding)."""
    return Instruction(LDDW, dst, PSEUDO_MAP_FD, 0, 0, map_ref=map_obj)


def ld_map_value(dst: Reg, map_obj, offset: int = 0) -> Instruction:
    """dst = address of a single-entry array map's value + offset (global data)."""
    return Instruction(LDDW, dst, PSEUDO_MAP_VALUE, 0, offset, map_ref=map_obj)


def _s32(v: int) -> int:
    if not -(1 << 31) <= v < (1 << 32):
        raise AsmError(f"immediate {v} does not fit in 32 bits (use ld_imm64)")
    return v - (1 << 32) if v >= (1 << 31) else v


def _s16(v: int) -> int:
    if not -(1 << 15) <= v < (1 << 15):
        raise AsmError(f"offset {v} does not fit in 16 bits")
    return v


class Asm:
    """Collects instructions; a label set with label() goes on the next instruction."""

    def __init__(self):
        from lumos.bpf.frame import Frame
        self.insns: list[Instruction] = []
        self._pending: list[str] = []
        self._comment = ""
        self._counter = 0
        self.frame = Frame()  # the program's stack slots, by name (bpf/frame.py)

    def comment(self, text: str) -> None:
        """Say what the next instructions do and where their constants come from; the
        text goes on the next emitted instruction (by convention 'emitter: what', so a
        listing leads from any instruction to the code that emitted it in one hop)."""
        self._comment = f"{self._comment}; {text}" if self._comment else text

    def label(self, name: str) -> None:
        self._pending.append(name)

    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}.{self._counter}"

    def emit(self, *insns: Instruction) -> None:
        for insn in insns:
            if self._pending:
                insn = insn.labelled(*self._pending)
                self._pending = []
            if self._comment:
                insn = insn.commented(f"{self._comment}; {insn.comment}" if insn.comment
                                      else self._comment)
                self._comment = ""
            self.insns.append(insn)

    def extend(self, insns) -> None:
        self.emit(*insns)

    def finish(self) -> list[Instruction]:
        if self._pending:
            raise AsmError(f"label(s) {', '.join(self._pending)} at the end of the program")
        return list(self.insns)


def _slot_of_labels(insns: list[Instruction]) -> dict[str, int]:
    slots: dict[str, int] = {}
    slot = 0
    for i, insn in enumerate(insns):
        for name in insn.labels:
            if name in slots:
                raise AsmError(f"instruction {i}: duplicate label {name!r}")
            slots[name] = slot
        slot += insn.slots
    return slots


def encode(insns: list[Instruction]) -> bytes:
    """The kernel's wire format, 8 bytes a slot, labels and map fds resolved."""
    labels = _slot_of_labels(insns)
    out = bytearray()
    slot = 0
    for i, insn in enumerate(insns):
        off, imm = insn.off, insn.imm
        if insn.target is not None:
            if insn.target not in labels:
                raise AsmError(f"instruction {i}: jump to unknown label {insn.target!r}")
            off = labels[insn.target] - (slot + 1)
            if not -(1 << 15) <= off < (1 << 15):
                raise AsmError(f"instruction {i}: jump to {insn.target!r} is too far")
        regs = (insn.src << 4) | (insn.dst & 0x0F)
        if insn.opcode == LDDW:
            if insn.map_ref is not None:
                fd = int(insn.map_ref.fd)  # raises if the map was closed
                lo, hi = fd, insn.imm if insn.src == PSEUDO_MAP_VALUE else 0
            else:
                lo, hi = imm & 0xFFFFFFFF, (imm >> 32) & 0xFFFFFFFF
            out += struct.pack("<BBhI", insn.opcode, regs, 0, lo)
            out += struct.pack("<BBhI", 0, 0, 0, hi)
        else:
            out += struct.pack("<BBhi", insn.opcode, regs, off, imm)
        slot += insn.slots
    return bytes(out)


# -- listing -------------------------------------------------------------------------

_ALU_NAMES = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=",
              0x60: "<<=", 0x70: ">>=", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>="}
_JMP_NAMES = {0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>",
              0x70: "s>=", 0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<="}
_SIZE_NAMES = {B: "u8", H: "u16", W: "u32", DW: "u64"}


def format_insn(insn: Instruction) -> str:
    code, cls = insn.opcode, insn.opcode & 0x07
    d, s = f"r{insn.dst}", f"r{insn.src}"
    if cls in (ALU, ALU64):
        op = code & 0xF0
        if cls == ALU:  # 32-bit: w registers
            d, s = f"w{insn.dst}", f"w{insn.src}"
        rhs = s if code & X else str(insn.imm)
        if op == 0x80:
            return f"{d} = -{d}"
        return f"{d} {_ALU_NAMES.get(op, '?')} {rhs}"
    if cls in (JMP, JMP32):
        op = code & 0xF0
        if op == _CALL:
            try:
                return f"call {Helper(insn.imm).name}"
            except ValueError:
                return f"call #{insn.imm}"
        if op == _EXIT:
            return "exit"
        tgt = insn.target or f"{insn.off:+d}"
        if op == _JA:
            return f"goto {tgt}"
        rhs = s if code & X else str(insn.imm)
        w = "w" if cls == JMP32 else ""
        return f"if {w}{d} {_JMP_NAMES.get(op, '?')} {rhs} goto {tgt}"
    if code == LDDW:
        if insn.map_ref is not None:
            name = getattr(insn.map_ref, "name", "?")
            if insn.src == PSEUDO_MAP_FD:
                return f"{d} = map {name}"
            return f"{d} = &{name}.value + {insn.imm}"
        return f"{d} = {insn.imm:#x} ll"
    size = _SIZE_NAMES.get(code & 0x18, "?")
    if cls == LDX:
        return f"{d} = *({size} *)({s} {insn.off:+d})"
    if cls == STX and code & 0xE0 == ATOMIC and insn.imm == ATOMIC_CMPXCHG:
        return f"r0 = cmpxchg(({size} *)({d} {insn.off:+d}), r0, {s})"
    if cls == STX and code & 0xE0 == ATOMIC:
        return f"lock *({size} *)({d} {insn.off:+d}) += {s}"
    if cls == STX:
        return f"*({size} *)({d} {insn.off:+d}) = {s}"
    if cls == ST:
        return f"*({size} *)({d} {insn.off:+d}) = {insn.imm}"
    return f"opcode {code:#x}"


def format_insns(insns: list[Instruction], mark: set[int] | None = None) -> str:
    """A readable listing, numbered by slot as the verifier numbers instructions."""
    lines = []
    slot = 0
    for insn in insns:
        for name in insn.labels:
            lines.append(f"{name}:")
        prefix = ">>" if mark and slot in mark else "  "
        if insn.comment:  # above the instruction: comments are long, code is short
            lines.append(f"{'':7}; {insn.comment}")
        lines.append(f"{prefix}{slot:5d}: {format_insn(insn)}")
        slot += insn.slots
    return "\n".join(lines)
