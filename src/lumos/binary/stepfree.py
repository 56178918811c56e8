"""Moving a probe from an instruction the kernel must single-step to one it emulates,
a few instructions on, where what the probe reads is still there.

A uprobe on an ordinary instruction is single-stepped out of line: measured here
(bench/toolbox.py) ~18 µs a hit on a shared 2-CPU VM at CPython's eval-loop labels,
against ~1.3 µs for an emulated one (a USDT NOP). Relative jumps and calls are
emulated (disasm.uprobe_emulated), and a handler's first conditional jump is usually
a few instructions after its label. The probe may move from `addr` to a later
instruction only along a straight line every pass through `addr` takes, and only if
nothing on the way changes what it reads:

- no instruction on the way is a branch, a RET or a call (it would leave the line);
- no address after `addr` on the way is a jump target or a label (something else would
  reach the new point without passing `addr`);
- the value's register is not written, and for a value in memory at [reg + offset],
  neither is reg nor that slot touched.

Otherwise the probe stays at `addr`.
"""

from __future__ import annotations

from lumos.binary.disasm import Insn, accesses, canonical_reg, uprobe_emulated

MAX_MOVE = 16   # instructions looked at past addr
_PT = {"ax": "rax", "bx": "rbx", "cx": "rcx", "dx": "rdx", "si": "rsi", "di": "rdi",
       "bp": "rbp", "sp": "rsp"}


def emulated_point(code: bytes, base: int, addr: int, where: str, reg: str, offset: int,
                   barriers: set[int]) -> int:
    """The address to probe instead of `addr` (itself when no better one is safe).

    code: the function's bytes, loaded at base. where/reg/offset: the value the probe
    reads: "reg" in pt_regs register reg, "mem" at [reg + offset], "none". barriers:
    addresses other code can jump to (direct jump targets, labels).
    """
    start = addr - base
    if not 0 <= start < len(code):
        return addr
    accs = accesses(code[start:start + 15 * MAX_MOVE], addr, MAX_MOVE)
    r64 = canonical_reg(_PT.get(reg, reg)) if reg else ""
    for i, acc in enumerate(accs):
        if i + 1 >= len(accs):
            break
        size = accs[i + 1].address - acc.address
        raw = code[acc.address - base:acc.address - base + size]
        insn = Insn(acc.address, size, acc.mnemonic, acc.op_str)
        if i and acc.address in barriers:
            return addr
        if uprobe_emulated(insn, raw):
            return acc.address
        if insn.ends_block or acc.mnemonic == ".byte":
            return addr
        if r64 and r64 in acc.writes:
            return addr
        if where == "mem" and any(b == r64 and abs(d - offset) < 8 for b, d in acc.mem):
            return addr
    return addr
