"""Building blocks every generated uprobe program shares.

Register use by convention: R6 = ctx (struct pt_regs *), R7 = site index (from the
cookie), R8/R9 free for the probe body. Each block takes the label to jump to when
the hit is to be ignored.
"""

from __future__ import annotations

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    Add,
    And,
    Asm,
    Helper,
    Jeq,
    Jge,
    Jne,
    Mov,
    Reg,
    Rsh,
    atomic_add,
    call,
    exit_,
    ja,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.sys import BPF_NOEXIST

# struct pt_regs on x86-64 (arch/x86/include/uapi/asm/ptrace.h; tests check vs BTF)
PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112,
    "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160,
}


def save_ctx(a: Asm) -> None:
    a.comment("save_ctx: R6 = ctx")
    a.emit(Mov.reg(R6, R1))


def tgid_filter(a: Asm, tgid: int | None, skip: str) -> None:
    """Ignore hits from other processes (a constant compiled into the program)."""
    if tgid is None:
        return
    a.comment(f"tgid_filter: only PID {tgid} (-p)")
    a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), Jne.imm(R0, tgid, skip))


def prologue(a: Asm, tgid: int | None, skip: str) -> None:
    """save_ctx, then bpf_get_current_pid_tgid() once into the stack slot "pid_tgid" (the
    header and call keys read it from there: one helper call per hit, not three), then
    the -p check against it."""
    save_ctx(a)
    slot = a.frame.slot("pid_tgid", 8)
    a.comment("prologue: pid_tgid = bpf_get_current_pid_tgid(), once per hit")
    a.emit(call(Helper.get_current_pid_tgid), stx(8, FP, slot, R0))
    if tgid is not None:
        a.comment(f"prologue: only PID {tgid} (-p)")
        a.emit(Rsh.imm(R0, 32), Jne.imm(R0, tgid, skip))


def load_pid_tgid(a: Asm, dst: Reg) -> None:
    """dst = pid_tgid: from the prologue's slot, or the helper (R0 clobbered)."""
    if a.frame.has("pid_tgid"):
        a.emit(ldx(8, dst, FP, a.frame["pid_tgid"]))
    else:
        a.emit(call(Helper.get_current_pid_tgid))
        if dst != R0:
            a.emit(Mov.reg(dst, R0))


def load_cookie(a: Asm, skip: str, check_flags: bool = True) -> None:
    """R7 = the site's whole cookie (sites.ProbeSite.cookie); ignore the hit when
    pt_regs->flags meets the cookie's flag mask (bits 32-39).

    check_flags is for uprobe programs only (other contexts are not pt_regs).
    """
    a.comment("load_cookie: R7 = the site's cookie (probesite.ProbeSite.cookie)")
    a.emit(Mov.reg(R1, R6), call(Helper.get_attach_cookie), Mov.reg(R7, R0))
    if not check_flags:
        return
    check = a.fresh("flags")
    a.comment("load_cookie: cookie bits 32-39: flags mask; skip the hit when "
              "pt_regs->flags & mask (the prologue's JBE about to call morestack)")
    a.emit(Rsh.imm(R0, 32), And.imm(R0, 0xFF), Jeq.imm(R0, 0, check),
           ldx(8, R1, R6, PT_REGS["flags"]), And.reg(R1, R0), Jne.imm(R1, 0, skip))
    a.label(check)


def site_from_cookie(a: Asm, skip: str, check_flags: bool = True) -> None:
    """R7 = site index (the cookie's low 32 bits), after load_cookie's flag check."""
    load_cookie(a, skip, check_flags)
    a.emit(Mov.reg32(R7, R7))


def variant_program(a: Asm, tgid: int | None, n: int, emit_variant, what: str,
                    check_flags: bool = True) -> None:
    """The skeleton of a program with one body per variant, chosen by the site's cookie
    (bits 40-63; bits 0-31, the site index, left in R7): prologue (-p), the cookie and
    its flag check, a binary-search dispatch, emit_variant(a, i) for each body, 'out'."""
    prologue(a, tgid, "out")
    load_cookie(a, "out", check_flags)
    a.comment(f"{what}: R0 = variant (cookie bits 40-63), R7 = site index (bits 0-31)")
    a.emit(Mov.reg(R0, R7), Rsh.imm(R0, 40), Mov.reg32(R7, R7))
    labels = [f"variant.{i}" for i in range(n)]
    dispatch(a, R0, labels)
    for i, label in enumerate(labels):
        a.label(label)
        emit_variant(a, i)
    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())


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


def emit_log2(a: Asm, src: Reg, dst: Reg) -> None:
    """dst = floor(log2(src)) (0 for 0 and 1), halving the search range: 6 steps, as
    libbpf-tools' bits.bpf.h log2l. Clobbers src and R2."""
    a.comment(f"emit_log2: r{int(dst)} = log2(r{int(src)}), the histogram slot")
    a.emit(Mov.imm(dst, 0))
    for shift in (32, 16, 8, 4, 2, 1):
        skip = a.fresh("log2")
        a.emit(Mov.reg(R2, src), Rsh.imm(R2, shift), Jeq.imm(R2, 0, skip),
               Mov.reg(src, R2), Add.imm(dst, shift))
        a.label(skip)


def emit_counter_add(a: Asm, counters, index: int, done: str) -> None:
    """counters[index] += 1 in a per-CPU u64 array (no atomics: a program runs with
    migration off), then jump to done."""
    key = a.frame.slot("counter_key", 8)
    a.comment(f"emit_counter_add: {counters.name}[{index}] += 1")
    a.emit(st(4, FP, key, index), ld_map_fd(R1, counters), Mov.reg(R2, FP), Add.imm(R2, key),
           call(Helper.map_lookup_elem), Jeq.imm(R0, 0, done),
           Mov.imm(R1, 1), atomic_add(8, R0, 0, R1), ja(done))


def emit_hist_add(a: Asm, hist, key: int, value: Reg, scratch: int, done: str,
                  full: str, base: Reg = FP) -> None:
    """hist[base+key] += (1, value) in a per-CPU hash of (count, sum); value must be a
    callee-saved register (R6-R9), base FP or a pointer to scratch memory in one. A new
    key is inserted; when that fails because the map is full, jump to `full` (the caller
    counts it: nothing vanishes silently); when another CPU inserted the key first, add
    to its element. scratch: 16 bytes at base+scratch."""
    add, insert = a.fresh("hist.add"), a.fresh("hist.insert")
    a.comment(f"emit_hist_add: {hist.name}[key] += (1, r{int(value)})")
    a.emit(ld_map_fd(R1, hist), Mov.reg(R2, base), Add.imm(R2, key),
           call(Helper.map_lookup_elem), Jeq.imm(R0, 0, insert))
    a.label(add)
    # atomic even on a per-CPU value: uprobe programs run with migration, not
    # preemption, disabled, so under preempt=full another hit can interleave
    a.emit(Mov.imm(R1, 1), atomic_add(8, R0, 0, R1), atomic_add(8, R0, 8, value), ja(done))
    a.label(insert)
    a.comment("emit_hist_add: a new key: insert (1, value); if that fails, look again "
              "(another CPU may have inserted it), else the map is full")
    a.emit(st(8, base, scratch, 1), stx(8, base, scratch + 8, value), ld_map_fd(R1, hist),
           Mov.reg(R2, base), Add.imm(R2, key), Mov.reg(R3, base), Add.imm(R3, scratch),
           Mov.imm(R4, BPF_NOEXIST), call(Helper.map_update_elem), Jeq.imm(R0, 0, done),
           ld_map_fd(R1, hist), Mov.reg(R2, base), Add.imm(R2, key),
           call(Helper.map_lookup_elem), Jne.imm(R0, 0, add), ja(full))
