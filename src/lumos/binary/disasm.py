"""x86-64 disassembly for probe placement, over capstone: instructions, RETs, branches.

Generic machine-code facts only (nothing about Go): where instructions start, which are
RETs, where direct branches go, which registers an instruction writes, and which
instructions the kernel's uprobe code emulates instead of single-stepping (an emulated
probe costs ~1 µs a hit here, a single-stepped one ~5 µs and can fire twice when a
signal lands during the step).
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import capstone

_RETS = frozenset({"ret", "retq"})
_COND_JUMPS = frozenset({
    "jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja", "js", "jns", "jp", "jnp",
    "jl", "jge", "jle", "jg",
})

# EFLAGS bits that each conditional jump tests, and whether it is taken when any of
# them is set (True) or when all are clear (False). Only the single-test forms: the
# others (jl, jg...) compare two flags with each other and are not needed here.
CF, PF, ZF, SF, OF = 0x1, 0x4, 0x40, 0x80, 0x800
JUMP_FLAGS: dict[str, tuple[int, bool]] = {
    "jb": (CF, True), "jae": (CF, False),
    "je": (ZF, True), "jne": (ZF, False),
    "jbe": (CF | ZF, True), "ja": (CF | ZF, False),
    "js": (SF, True), "jns": (SF, False),
    "jo": (OF, True), "jno": (OF, False),
    "jp": (PF, True), "jnp": (PF, False),
}


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded instruction (Intel syntax, as capstone prints it)."""

    address: int
    size: int
    mnemonic: str
    op_str: str

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def is_ret(self) -> bool:
        return self.mnemonic in _RETS

    @property
    def is_call(self) -> bool:
        return self.mnemonic == "call"

    @property
    def is_jump(self) -> bool:
        return self.mnemonic == "jmp" or self.mnemonic in _COND_JUMPS

    @property
    def is_cond_jump(self) -> bool:
        return self.mnemonic in _COND_JUMPS

    @property
    def ends_block(self) -> bool:
        """Control may leave the straight line after this instruction."""
        return self.is_ret or self.is_call or self.is_jump or self.mnemonic in ("ud2", "int3")

    @property
    def target(self) -> int | None:
        """Destination of a direct jump or call, None for indirect ones."""
        if (self.is_jump or self.is_call) and self.op_str.startswith("0x"):
            try:
                return int(self.op_str, 16)
            except ValueError:
                return None
        return None

    def __str__(self) -> str:
        return f"{self.mnemonic} {self.op_str}".strip()


@cache
def _cs(detail: bool) -> capstone.Cs:
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = detail
    md.skipdata = True  # bytes that decode to nothing become ".byte", decoding goes on
    return md


def iter_insns(code: bytes, addr: int, count: int = 0) -> Iterator[Insn]:
    """Instructions of `code` loaded at `addr`, in order (the first `count` if not 0)."""
    for a, size, mnemonic, op_str in _cs(False).disasm_lite(code, addr, count):
        yield Insn(a, size, mnemonic, op_str)


@dataclass(frozen=True)
class Scan:
    """One pass over a function's code: its first instructions, where its RETs are, and
    where its direct jumps lead. Cheaper than materialising every instruction."""

    head: list[Insn]                      # the first `keep` instructions
    rets: list[tuple[int, int]]           # (address, size) of each RET
    jumps: list[tuple[int, str, int]]     # (address, mnemonic, target) of direct jumps


def scan(code: bytes, addr: int, keep: int = 64) -> Scan:
    """Decode `code` loaded at `addr` once (see Scan)."""
    try:
        return _scan_ids(code, addr, keep)
    except (AttributeError, TypeError, ValueError, struct.error):
        return _scan_lite(code, addr, keep)  # a capstone without the ctypes internals


def _scan_lite(code: bytes, addr: int, keep: int) -> Scan:
    head: list[Insn] = []
    rets: list[tuple[int, int]] = []
    jumps: list[tuple[int, str, int]] = []
    for a, size, m, op in _cs(False).disasm_lite(code, addr):
        if len(head) < keep:
            head.append(Insn(a, size, m, op))
        if m[0] == "j":
            if op[:2] == "0x":
                jumps.append((a, m, int(op, 16)))
        elif m in _RETS:
            rets.append((a, size))
    return Scan(head, rets, jumps)


@cache
def _insn_layout():
    from capstone import x86_const
    ins = capstone._cs_insn
    size = ctypes.sizeof(ins)
    if ins.id.offset % 4 or ins.address.offset % 8 or ins.size.offset % 2 or size % 8:
        raise ValueError("unexpected cs_insn layout")
    jumps = {getattr(x86_const, n): n[8:].lower() for n in dir(x86_const)
             if n.startswith("X86_INS_J")}
    return (size, ins.id.offset, ins.address.offset, ins.size.offset, ins.mnemonic.offset,
            ins.mnemonic.size, ins.op_str.offset, ins.op_str.size, jumps, x86_const.X86_INS_RET)


def _scan_ids(code: bytes, addr: int, keep: int) -> Scan:
    """Scan from capstone's C array of instructions: ids, addresses and sizes are read as
    strided columns and the strings only for the first `keep` instructions (building
    every mnemonic and operand string is most of disasm_lite's cost). Jump targets
    come from the rel8/rel32."""
    (size, id_off, addr_off, size_off, mn_off, mn_len, op_off, op_len, jump_ids,
     ret_id) = _insn_layout()
    md = _cs(False)
    ptr = ctypes.POINTER(capstone._cs_insn)()
    count = capstone._cs.cs_disasm(md.csh, code, len(code), addr, 0, ctypes.byref(ptr))
    if count <= 0:
        return Scan([], [], [])
    try:
        raw = memoryview((ctypes.c_char * (count * size)).from_address(
            ctypes.addressof(ptr.contents))).cast("B")
        ids = raw.cast("I")[id_off // 4::size // 4].tolist()
        addrs = raw.cast("Q")[addr_off // 8::size // 8].tolist()
        sizes = raw.cast("H")[size_off // 2::size // 2].tolist()
        head = []
        for i in range(min(keep, count)):
            b = i * size
            mn = bytes(raw[b + mn_off:b + mn_off + mn_len]).split(b"\0", 1)[0]
            op = bytes(raw[b + op_off:b + op_off + op_len]).split(b"\0", 1)[0]
            head.append(Insn(addrs[i], sizes[i], mn.decode(), op.decode()))
    finally:
        capstone._cs.cs_free(ptr, count)
    rets: list[tuple[int, int]] = []
    jumps: list[tuple[int, str, int]] = []
    for i, iid in enumerate(ids):
        if iid == ret_id:
            rets.append((addrs[i], sizes[i]))
        elif iid in jump_ids:
            a = addrs[i]
            t = _rel_target(code, a - addr, sizes[i], a)
            if t is not None:
                jumps.append((a, jump_ids[iid], t))
    return Scan(head, rets, jumps)


def _rel_target(code: bytes, off: int, n: int, a: int) -> int | None:
    """Target of a relative jump (EB/7x rel8, E9/0F 8x rel32); None if indirect."""
    op = code[off]
    if n == 2 and (op == 0xEB or 0x70 <= op <= 0x7F):
        return a + 2 + int.from_bytes(code[off + 1:off + 2], "little", signed=True)
    if n == 5 and op == 0xE9:
        return a + 5 + int.from_bytes(code[off + 1:off + 5], "little", signed=True)
    if n == 6 and op == 0x0F and 0x80 <= code[off + 1] <= 0x8F:
        return a + 6 + int.from_bytes(code[off + 2:off + 6], "little", signed=True)
    return None


def ret_addresses(code: bytes, addr: int) -> list[int]:
    """Addresses of every RET instruction in `code` loaded at `addr`."""
    return [a for a, _, m, _ in _cs(False).disasm_lite(code, addr) if m in _RETS]


# capstone register name (any width) -> the 64-bit register it is part of.
_GPR64 = {}
for _full, _parts in {
    "rax": "eax ax al ah", "rbx": "ebx bx bl bh", "rcx": "ecx cx cl ch",
    "rdx": "edx dx dl dh", "rsi": "esi si sil", "rdi": "edi di dil",
    "rbp": "ebp bp bpl", "rsp": "esp sp spl",
}.items():
    for _p in [_full, *_parts.split()]:
        _GPR64[_p] = _full
for _n in range(8, 16):
    for _suffix in ("", "d", "w", "b"):
        _GPR64[f"r{_n}{_suffix}"] = f"r{_n}"


def canonical_reg(name: str) -> str:
    """The 64-bit register a capstone register name belongs to ("eax" -> "rax")."""
    return _GPR64.get(name, name)


# Instructions whose only register output is their first operand (flags aside): the
# written register can be read off the operand string without a detail-mode decode.
_DEST_ONLY = frozenset({
    "mov", "movzx", "movsx", "movsxd", "lea", "add", "sub", "and", "or", "xor", "adc",
    "sbb", "inc", "dec", "neg", "not", "shl", "shr", "sar", "rol", "ror", "cmove", "cmovne",
    "cmovl", "cmovg", "cmovle", "cmovge", "cmovb", "cmova", "cmovbe", "cmovae", "sete",
    "setne", "movss", "movsd", "movaps", "movups", "movapd", "movupd", "movq", "movd",
    "xorps", "xorpd", "pxor", "cvtss2sd", "cvtsd2ss", "cvtsi2sd", "cvtsi2ss", "cvttsd2si",
    "cvttss2si", "addsd", "subsd", "mulsd", "divsd", "addss", "subss", "mulss", "divss",
})
_NO_REG_OUTPUT = frozenset({"cmp", "test", "nop", "ucomisd", "ucomiss", "comisd",
                            "comiss", "bt"})


def quick_writes(insn: Insn) -> set[str] | None:
    """Registers `insn` writes, when its mnemonic makes that plain (see _DEST_ONLY);
    None when a detail-mode decode is needed to know."""
    m = insn.mnemonic
    if m in _NO_REG_OUTPUT or insn.is_jump:
        return set()
    if m in ("push", "pop"):
        if m == "push":
            return {"rsp"}
        dest = insn.op_str
        return {"rsp", _GPR64.get(dest, dest)} if dest.isalnum() else None
    if m in _DEST_ONLY and insn.op_str:
        dest = insn.op_str.split(",", 1)[0].strip()
        if "ptr" in dest or "[" in dest:
            return set()                      # a store: no register written
        if dest.isalnum():
            return {_GPR64.get(dest, dest)}
    return None


def registers_written(code: bytes, addr: int) -> set[str]:
    """64-bit general registers (rax, r8, ...) and xmmN that `code` may write.

    A write to any part of a register counts as a write to all of it.
    """
    out: set[str] = set()
    for w in writes_per_insn(code, addr):
        out |= w
    return out


def writes_per_insn(code: bytes, addr: int, count: int = 0) -> list[set[str]]:
    """For each instruction of `code` (the first `count` if not 0), the registers it may
    write, as registers_written names them; "*" after a CALL (the callee may write
    anything). One detail-mode pass."""
    outs: list[set[str]] = []
    md = _cs(True)
    for insn in md.disasm(code, addr, count):
        out: set[str] = set()
        outs.append(out)
        if insn.id == 0:  # skipped data
            continue
        try:
            _, written = insn.regs_access()
        except capstone.CsError:
            continue
        for r in written:
            name = insn.reg_name(r)
            if name is None:
                continue
            out.add(_GPR64.get(name, name))
        if insn.mnemonic == "call":  # the callee may write anything
            out.add("*")
    return outs


@dataclass(frozen=True)
class Access:
    """What one instruction reads and writes: 64-bit register names (xmmN kept), the
    [base + disp] memory operands it reads (base as a 64-bit name, "" if none), and all
    its memory operands, read or written (an LEA's is no access and is left out)."""

    address: int
    mnemonic: str
    op_str: str
    reads: frozenset[str]
    writes: frozenset[str]
    mem_reads: tuple[tuple[str, int], ...]
    mem: tuple[tuple[str, int], ...] = ()


def accesses(code: bytes, addr: int, count: int = 0) -> list[Access]:
    """Register and memory accesses of each instruction (one detail-mode pass). A
    zeroing idiom (xor eax, eax; xorps x, x) reads nothing."""
    from capstone import x86
    out: list[Access] = []
    for insn in _cs(True).disasm(code, addr, count):
        if insn.id == 0:  # skipped data
            out.append(Access(insn.address, ".byte", "", frozenset(), frozenset(), ()))
            continue
        try:
            read, written = insn.regs_access()
        except capstone.CsError:
            read, written = [], []
        names = [insn.reg_name(r) for r in read]
        reads = {_GPR64.get(n, n) for n in names if n}
        writes = {_GPR64.get(n, n) for n in (insn.reg_name(r) for r in written) if n}
        ops = insn.op_str.split(", ")
        if insn.mnemonic in ("xor", "xorps", "xorpd", "pxor", "sub") and len(ops) == 2 \
                and ops[0] == ops[1]:
            reads = set()
        mem, every = [], []
        for i, op in enumerate(insn.operands):
            if op.type != x86.X86_OP_MEM or insn.mnemonic == "lea":
                continue
            base = insn.reg_name(op.mem.base) if op.mem.base else ""
            m = (_GPR64.get(base, base or ""), op.mem.disp)
            every.append(m)
            if i > 0 or insn.mnemonic in ("cmp", "test", "push"):
                mem.append(m)
        out.append(Access(insn.address, insn.mnemonic, insn.op_str, frozenset(reads),
                          frozenset(writes), tuple(mem), tuple(every)))
    return out


def uprobe_emulated(insn: Insn, raw: bytes) -> bool:
    """True if Linux's x86 uprobe code emulates this instruction (no single step).

    arch/x86/kernel/uprobes.c emulates relative jumps and calls (branch_setup_xol_ops,
    including the one-byte NOP) and, since Linux 6.10, PUSH of a register
    (push_setup_xol_ops). Everything else is single-stepped out of line. `raw` is the
    instruction's bytes.
    """
    if not raw:
        return False
    op = raw[0]
    if op in (0xE8, 0xE9, 0xEB, 0x90) or 0x70 <= op <= 0x7F:
        return len(raw) == {0xE8: 5, 0xE9: 5, 0xEB: 2, 0x90: 1}.get(op, 2)
    if op == 0x0F and len(raw) == 6 and 0x80 <= raw[1] <= 0x8F:
        return True
    if not _kernel_emulates_push():
        return False
    if 0x50 <= op <= 0x57 and len(raw) == 1:
        return True
    return op == 0x41 and len(raw) == 2 and 0x50 <= raw[1] <= 0x57


@cache
def _kernel_emulates_push() -> bool:
    """Linux 6.10 added push_setup_xol_ops; before, PUSH is single-stepped too."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (6, 10)

