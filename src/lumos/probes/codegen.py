"""Building blocks every generated uprobe program shares.

Register use by convention: R6 = ctx (struct pt_regs *), R7 = site index (from the
cookie), R8/R9 free for the probe body. Each block takes the label to jump to when
the hit is to be ignored.
"""

from __future__ import annotations

from lumos.bpf.asm import (
    R0,
    R1,
    R6,
    R7,
    And,
    Asm,
    Helper,
    Jeq,
    Jge,
    Jne,
    Mov,
    Reg,
    Rsh,
    call,
    ja,
    ldx,
)

# struct pt_regs on x86-64 (arch/x86/include/uapi/asm/ptrace.h; tests check vs BTF)
PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112,
    "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160,
}


def save_ctx(a: Asm) -> None:
    a.emit(Mov.reg(R6, R1))


def tgid_filter(a: Asm, tgid: int | None, skip: str) -> None:
    """Ignore hits from other processes (a constant compiled into the program)."""
    if tgid is None:
        return
    a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), Jne.imm(R0, tgid, skip))


def load_cookie(a: Asm, skip: str, check_flags: bool = True) -> None:
    """R7 = the site's whole cookie (sites.ProbeSite.cookie); ignore the hit when
    pt_regs->flags meets the cookie's flag mask (bits 32-39).

    check_flags is for uprobe programs only (other contexts are not pt_regs).
    """
    a.emit(Mov.reg(R1, R6), call(Helper.get_attach_cookie), Mov.reg(R7, R0))
    if not check_flags:
        return
    check = a.fresh("flags")
    a.emit(Rsh.imm(R0, 32), And.imm(R0, 0xFF), Jeq.imm(R0, 0, check),
           ldx(8, R1, R6, PT_REGS["flags"]), And.reg(R1, R0), Jne.imm(R1, 0, skip))
    a.label(check)


def site_from_cookie(a: Asm, skip: str, check_flags: bool = True) -> None:
    """R7 = site index (the cookie's low 32 bits), after load_cookie's flag check."""
    load_cookie(a, skip, check_flags)
    a.emit(Mov.reg32(R7, R7))


def dispatch(a: Asm, reg: Reg, labels: list[str], lo: int = 0, hi: int | None = None) -> None:
    """Jump to labels[reg] by binary search: log2(len(labels)) compares per hit."""
    hi = len(labels) if hi is None else hi
    if hi - lo == 1:
        a.emit(ja(labels[lo]))
        return
    mid = (lo + hi) // 2
    upper = a.fresh("upper")
    a.emit(Jge.imm(reg, mid, upper))
    dispatch(a, reg, labels, lo, mid)
    a.label(upper)
    dispatch(a, reg, labels, mid, hi)
