"""x86-64 disassembly for probe placement, over capstone: instructions, RETs, branches.

Generic machine-code facts only (nothing about Go): where instructions start, which are
RETs, where direct branches go, which registers an instruction writes, and which
instructions the kernel's uprobe code emulates instead of single-stepping (an emulated
probe costs ~1 µs a hit here, a single-stepped one ~5 µs and can fire twice when a
signal lands during the step).
"""

from __future__ import annotations

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


def iter_insns(code: bytes, addr: int) -> Iterator[Insn]:
    """Instructions of `code` loaded at `addr`, in order."""
    for a, size, mnemonic, op_str in _cs(False).disasm_lite(code, addr):
        yield Insn(a, size, mnemonic, op_str)


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


def registers_written(code: bytes, addr: int) -> set[str]:
    """64-bit general registers (rax, r8, ...) and xmmN that `code` may write.

    A write to any part of a register counts as a write to all of it.
    """
    out: set[str] = set()
    md = _cs(True)
    for insn in md.disasm(code, addr):
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
    if 0x50 <= op <= 0x57 and len(raw) == 1:
        return True
    return op == 0x41 and len(raw) == 2 and 0x50 <= raw[1] <= 0x57

