"""Reading fields behind pointers in the traced program: r.URL.Path is three hops.

A field path starts from a pointer the program already has in a stack slot (read there
from a register or stack word by capture.emit_read_word) and follows pointers, one hop
per emit_read_at into the next slot:

    req --(+16: URL)--> *url.URL --(+56: Path)--> string header {ptr, len} --> bytes

Every hop is one bounded bpf_probe_read_user; the caller checks each pointer for NULL
before the next hop (reqbodies._field), so no read ever goes to address 0 + offset, and
a failed read leaves zeros. Offsets come from golang.fields (DWARF, else a measured
per-version table); a field lumos cannot place is not read at all (the caller emits
nothing for it).

Conventions as in capture.py: R6 = ctx, R8 = the record, calls clobber R0-R5.
"""

from __future__ import annotations

from lumos.bpf.asm import (
    FP,
    R1,
    R2,
    R3,
    Add,
    Asm,
    Helper,
    Jeq,
    Jle,
    Mov,
    Reg,
    call,
    ldx,
)


def emit_read_at(a: Asm, ptr_slot: int, offset: int, size: int, dst: Reg, dst_off: int) -> None:
    """*(dst + dst_off) = `size` bytes at *(FP+ptr_slot) + offset (zeros if unreadable).

    The caller has checked the pointer is not NULL (reqbodies._field)."""
    a.emit(Mov.reg(R1, dst), Add.imm(R1, dst_off), Mov.imm(R2, size),
           ldx(8, R3, FP, ptr_slot), Add.imm(R3, offset), call(Helper.probe_read_user))


def emit_copy_string(a: Asm, hdr: Reg, hdr_off: int, max_bytes: int, dst: Reg,
                     dst_off: int) -> None:
    """Copy min(len, max_bytes) bytes of the Go string whose header {ptr, len} is at
    hdr + hdr_off into dst + dst_off. The unsigned compare clamps a negative length too;
    the verifier learns the bound [0, max_bytes] from the jump."""
    done = a.fresh("strcopy")
    a.emit(ldx(8, R2, hdr, hdr_off + 8), Jeq.imm(R2, 0, done), Jle.imm(R2, max_bytes,
                                                                       done + ".n"),
           Mov.imm(R2, max_bytes))
    a.label(done + ".n")
    a.emit(Mov.reg(R1, dst), Add.imm(R1, dst_off), ldx(8, R3, hdr, hdr_off),
           call(Helper.probe_read_user))
    a.label(done)
