"""Which ABI a function's code uses when the pclntab cannot say: assembly bodies and the
wrappers the toolchain puts between the two ABIs.

The pclntab marks assembly (FUNCFLAG_ASM) but not its ABI. Most Go assembly is ABI0
(arguments on the stack), but the runtime declares some bodies `<ABIInternal>`
(runtime.memmove: arguments in AX, BX, CX). Where Go code calls ABI0 assembly, or
assembly calls Go code, the compiler writes a wrapper (funcID wrapper, same name, not
assembly): an ABIInternal one that stores the registers to the stack and calls the ABI0
body, or an ABI0 one that loads the stack into registers and calls the ABIInternal body.

Rules, in order of trust:
  1. .symtab, when there is one: the linker names the ABI0 symbol of a pair `pkg.f.abi0`.
  2. A wrapper is ABI0 when, before its first CALL, it sets up what ABIInternal code
     requires and ABI0 code does not keep: g in R14 (`MOVQ (TLS), R14`) or X15 = 0
     (abi-internal.md, "fixed registers"). An ABIInternal wrapper does that only after
     its call, when the ABI0 body returns.
  3. An assembly body with a wrapper twin has the other ABI than the wrapper.
  4. Another assembly body with no arguments (argument size 0 in the pclntab) is ABI0:
     there is nothing to read, and g is then taken from thread-local storage, right in
     either ABI (the runtime's register-convention helpers, cmpbody<> or gogo, are
     ABI0 with no argument frame).
  5. Another is ABIInternal when its start, followed through conditional jumps and one
     tail jump (memhash jumps to aeshashbody<>), reads a general register other than
     SP, BP and R14 (the argument registers, DX of the panic helpers), or X15 before
     writing it (nanotime1 is ABI0 and reads g from R14 all the same: only Go calls
     it). Else ABI0 when it reads or writes its argument frame (8(SP) up to the
     argument size, SP tracked through the pcsp table; an LEA is no access), and
     ABIInternal when it never does (time.now, getfp: results left in registers).
tests/test_go_asmabi.py checks these against the `<ABIInternal>` declarations in each
toolchain's own .s files, stripped and not.
"""

from __future__ import annotations

from collections.abc import Callable

from lumos.binary.disasm import accesses
from lumos.golang.model import ABI0, ABI_INTERNAL

# R14 is not here: the runtime's ABI0 assembly that only Go code calls reads g from R14
# too (nanotime1: MOVQ g_m(R14), BX).
_INPUTS = frozenset({"rax", "rbx", "rcx", "rdx", "rdi", "rsi", "r8", "r9", "r10", "r11",
                     "r12", "r13", "r15", "xmm15"})
ARGS_SIZE_UNKNOWN = -0x80000000   # abi.ArgsSizeUnknown: no Go declaration
_SCAN = 32   # instructions looked at in a wrapper or a helper
_BODY = 256  # in an assembly body


def wrapper_abi(code: bytes, entry: int) -> str:
    """ABI of a compiler-written ABI wrapper (rule 2)."""
    for a in accesses(code, entry, _SCAN):
        if a.mnemonic in ("call", "jmp", "ret"):
            break
        if "r14" in a.writes and a.mem_reads == (("", -8),):        # MOVQ (TLS), R14
            return ABI0
        if a.mnemonic in ("xorps", "xorpd", "pxor") and a.op_str == "xmm15, xmm15":
            return ABI0
    return ABI_INTERNAL


def asm_body_abi(code: bytes, entry: int, args: int,
                 sp_delta: Callable[[int], int | None],
                 code_at: Callable[[int], bytes | None]) -> str:
    """ABI of an assembly body without a wrapper twin (rules 4 and 5). code_at(vaddr)
    gives the code of the function a tail jump lands in (None if none)."""
    if args == 0 or args == ARGS_SIZE_UNKNOWN:
        return ABI0
    insns = accesses(code, entry, _BODY)
    end = entry + len(code)

    def frame(a) -> bool:   # touches its own argument frame, 8(SP) .. 8+args(SP)
        return any(base == "rsp" and 8 <= disp - (sp_delta(a.address) or 0) < 8 + args
                   for base, disp in a.mem)

    written: set[str] = set()
    tail = None
    for a in insns:                       # the straight-line start
        if frame(a):
            return ABI0
        if (a.reads & _INPUTS) - written:
            return ABI_INTERNAL
        if a.mnemonic == "jmp":
            tail = _target(a.op_str)
            break
        if a.mnemonic in ("call", "ret", "ud2", "int3"):
            break
        written |= a.writes
    if tail is not None and not entry <= tail < end:   # a tail jump into a helper
        for a in accesses(code_at(tail) or b"", tail, _SCAN):
            if (a.reads & _INPUTS) - written:
                return ABI_INTERNAL
            if a.mnemonic in ("call", "jmp", "ret"):
                break
            written |= a.writes
    # an ABI0 body reads its arguments from, or stores its results to, its frame
    return ABI0 if any(frame(a) for a in insns) else ABI_INTERNAL


def _target(op: str) -> int | None:
    try:
        return int(op, 16)
    except ValueError:
        return None
