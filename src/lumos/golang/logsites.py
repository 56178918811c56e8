"""Where a Go logger decides whether a call is enabled: the probe site that sees both.

Every logger lumos knows tests the level with a call whose boolean (or pointer) result
is tested right away, before anything else of the call is done:

    slog  (*Logger).log / logAttrs:  CALL (*Logger).Enabled; TESTB AL, AL; JEQ return
    zap   (*SugaredLogger).log:      CALL reg (Core().Enabled); TESTB AL, AL; JEQ return
    zap   (*Logger).Info ...:        CALL (*Logger).check; TESTQ AX, AX; JEQ return

A probe on that conditional jump (which the kernel emulates: ~1 µs, exact) sees the
verdict in pt_regs->flags (ZF set: the jump to "disabled" is taken for JEQ) and every
argument, because the arguments are live across the call and so were spilled to their
ABI spill slots before it: the stores `MOV reg, off(SP)` between the entry and the call
say where each argument register went. That is checked here from the machine code, not
assumed; a function whose shape differs yields no site and the caller falls back to its
entry (no verdict).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lumos.binary.disasm import canonical_reg, iter_insns

_STORE = re.compile(r"^(byte|word|dword|qword) ptr \[rsp(?: \+ (0x[0-9a-f]+|\d+))?\], (\w+)$")
_SIZES = {"byte": 1, "word": 2, "dword": 4, "qword": 8}
_FLAG_ZF = 0x40


@dataclass(frozen=True)
class CheckSite:
    """The verdict jump: filtered iff bool(regs->flags & ZF) == filtered_if_zf."""

    vaddr: int
    insn: str
    filtered_if_zf: bool
    sp_delta: int                     # SP at the site + sp_delta = SP at entry
    spills: dict[str, int]            # pt_regs register -> its spill slot's SP offset here

    @property
    def flags_mask(self) -> int:
        return _FLAG_ZF


def find_check_site(code: bytes, entry: int, callee: int | None, sp_delta_at,
                    result: str = "al", max_insns: int = 400) -> CheckSite | None:
    """The conditional jump testing the result of the first call to `callee` (an entry
    address; None: the first indirect call), or None when the code has another shape.

    sp_delta_at(pc): bytes below the entry SP at pc (the pclntab's pcsp table).
    result: the register tested ("al" for a bool, "rax" for a pointer).
    """
    spills: dict[str, int] = {}
    insns = list(iter_insns(code, entry, max_insns))
    for i, ins in enumerate(insns):
        if ins.mnemonic == "mov":
            m = _STORE.match(ins.op_str)
            if m:
                reg = _pt_regs_name(canonical_reg(m.group(3)))
                if reg not in spills:
                    spills[reg] = int(m.group(2) or "0", 0)
                    continue
        if ins.mnemonic != "call":
            continue
        target = _direct_target(ins)
        if (callee is None) != (target is None) or (callee is not None and target != callee):
            continue
        rest = [x for x in insns[i + 1:i + 5] if x.mnemonic != "nop"]
        if len(rest) < 2 or rest[0].mnemonic != "test":
            return None
        ops = [o.strip() for o in rest[0].op_str.split(",")]
        if ops != [result, result] or rest[1].mnemonic not in ("je", "jne"):
            return None
        here, at_call = sp_delta_at(rest[1].address), sp_delta_at(ins.address)
        if here is None or here != at_call:
            return None
        # the stores were made at the call's SP (no SP change in between: same delta)
        return CheckSite(rest[1].address, f"{rest[1].mnemonic} {rest[1].op_str}",
                         rest[1].mnemonic == "je", here, spills)
    return None


def _pt_regs_name(reg: str) -> str:
    """'rax' -> 'ax', 'r8' -> 'r8': the names abi.INT_REGS and pt_regs use."""
    return reg[1:] if reg in ("rax", "rbx", "rcx", "rdx", "rdi", "rsi", "rbp", "rsp") else reg


def _direct_target(ins) -> int | None:
    try:
        return int(ins.op_str, 16)
    except ValueError:
        return None


def spill_offsets(site: CheckSite, regs: tuple[str, ...]) -> tuple[int, ...] | None:
    """The SP offsets (at the site) holding these argument registers, or None if one of
    them was not spilled before the call."""
    out = []
    for r in regs:
        off = site.spills.get(r)
        if off is None or off < site.sp_delta + 8:  # not in the caller's spill area
            return None
        out.append(off)
    return tuple(out)
