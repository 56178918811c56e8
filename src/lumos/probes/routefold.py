"""Folding ids out of a request path in the kernel: /user/123/orders -> /user/{id}/orders.

Summaries are keyed by route, in a bounded kernel map: a service that serves a million
user ids must not make a million keys. A path segment becomes `{id}` when it is all
decimal digits, or when it is at least 8 characters of hex digits and '-' with at least
one decimal digit (hashes, UUIDs; not words like "deadbeef"). output/red.fold_path applies
the same rule to what it is given, so both agree.

The loop is unrolled over the first `max_bytes` bytes and keeps its state (output index,
segment start, flags, length) in the scratch map value rather than in registers: every
load is then an unknown scalar to the verifier, whose states at each step's end are
equal and pruned, instead of multiplying with every possible output index. The output
index is masked before each store; a route that does not fit is cut at 64 bytes and its
length marked with ROUTE_CUT.
"""

from __future__ import annotations

from lumos.bpf.asm import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    Add,
    And,
    Asm,
    Jeq,
    Jge,
    Jgt,
    Jle,
    Jlt,
    Jne,
    Mov,
    Or,
    Reg,
    Sub,
    ja,
    ldx,
    st,
    stx,
)

DIGITS, HEX, HAS_DIGIT = 1, 2, 4
ID = b"{id}"
MIN_HEX_ID = 8
STATE_BYTES = 32   # j, seg, flags, n
ROUTE_CUT = 1 << 16   # in the route's length: the route goes on past what was kept


def emit_fold(a: Asm, base: Reg, src: int, src_len: int, max_bytes: int, dst: int,
              dst_len: int, dst_bytes: int, state: int) -> None:
    """Route of the path at base+src (its length, u32, at base+src_len) into base+dst
    (dst_bytes >= 64 + len(ID): room for a last {id}), its length (u32, at most
    64, | ROUTE_CUT when the route goes on) at base+dst_len. All offsets are from
    `base`, a map value pointer."""
    assert dst_bytes >= 64 + len(ID) and max_bytes <= 64
    j, seg, fl, n = state, state + 8, state + 16, state + 24
    a.comment(f"routefold: path -> route, segments of digits (or >= {MIN_HEX_ID} hex with a "
              "digit) become {id}")
    a.emit(ldx(4, R1, base, src_len), Mov.reg(R2, R1), st(8, base, j, 0), st(8, base, seg, 0),
           st(8, base, fl, DIGITS | HEX))
    short = a.fresh("fold.n")
    a.emit(Jle.imm(R2, max_bytes, short), Mov.imm(R2, max_bytes))
    a.label(short)
    a.emit(stx(8, base, n, R2))
    fin = a.fresh("fold.fin")
    for i in range(max_bytes):
        char, nxt = a.fresh("fold.char"), a.fresh("fold.next")
        a.emit(ldx(8, R1, base, n), Jle.imm(R1, i, fin),
               ldx(1, R2, base, src + i), Jne.imm(R2, ord("/"), char))
        _end_segment(a, base, dst, j, seg, fl)
        _put(a, base, dst, j, ord("/"))
        a.emit(ldx(8, R1, base, j), stx(8, base, seg, R1), st(8, base, fl, DIGITS | HEX),
               ja(nxt))
        a.label(char)
        _classify(a, base, fl)
        a.emit(ldx(1, R2, base, src + i))
        _put(a, base, dst, j, None)
        a.label(nxt)
        a.emit(Mov.imm(R0, 0))
    a.label(fin)
    _end_segment(a, base, dst, j, seg, fl)
    fits, cut = a.fresh("fold.fits"), a.fresh("fold.cut")
    a.emit(ldx(8, R1, base, j), Jle.imm(R1, 64, fits), Mov.imm(R1, 64 | ROUTE_CUT), ja(cut))
    a.label(fits)
    a.emit(ldx(4, R2, base, src_len), Jle.imm(R2, max_bytes, cut),
           Or.imm(R1, ROUTE_CUT))            # the path was cut: so is the route
    a.label(cut)
    a.emit(stx(4, base, dst_len, R1))


def _put(a: Asm, base: Reg, dst: int, j: int, byte: int | None) -> None:
    """dst[j++] = byte (or R2); past 64 bytes nothing is stored but j still counts."""
    skip = a.fresh("fold.full")
    a.emit(ldx(8, R1, base, j), Jge.imm(R1, 64, skip + ".count"), Mov.reg(R3, base),
           And.imm(R1, 63), Add.reg(R3, R1))
    if byte is None:
        a.emit(stx(1, R3, dst, R2))
    else:
        a.emit(st(1, R3, dst, byte))
    a.label(skip + ".count")
    a.emit(ldx(8, R1, base, j), Add.imm(R1, 1), stx(8, base, j, R1))


def _classify(a: Asm, base: Reg, fl: int) -> None:
    """Update the segment's flags for the character in R2."""
    done, notdigit = a.fresh("fold.cls"), a.fresh("fold.nd")
    a.emit(Mov.reg(R3, R2), Sub.imm(R3, ord("0")), Jgt.imm(R3, 9, notdigit),
           ldx(8, R4, base, fl), Or.imm(R4, HAS_DIGIT), stx(8, base, fl, R4), ja(done))
    a.label(notdigit)
    a.emit(ldx(8, R4, base, fl), And.imm(R4, ~DIGITS), stx(8, base, fl, R4),
           Jeq.imm(R2, ord("-"), done), Mov.reg(R3, R2), Or.imm(R3, 0x20),
           Sub.imm(R3, ord("a")), Jle.imm(R3, 5, done),
           ldx(8, R4, base, fl), And.imm(R4, ~HEX), stx(8, base, fl, R4))
    a.label(done)
    a.emit(Mov.imm(R0, 0))


def _end_segment(a: Asm, base: Reg, dst: int, j: int, seg: int, fl: int) -> None:
    """If the segment [seg, j) is an id, replace it with {id}."""
    done, fold = a.fresh("fold.seg"), a.fresh("fold.id")
    a.emit(ldx(8, R1, base, j), ldx(8, R3, base, seg), Jeq.reg(R1, R3, done),
           ldx(8, R4, base, fl), Mov.reg(R5, R4), And.imm(R5, DIGITS), Jne.imm(R5, 0, fold),
           Mov.reg(R5, R4), And.imm(R5, HEX), Jeq.imm(R5, 0, done),
           Mov.reg(R5, R4), And.imm(R5, HAS_DIGIT), Jeq.imm(R5, 0, done),
           Mov.reg(R5, R1), Sub.reg(R5, R3), Jlt.imm(R5, MIN_HEX_ID, done))
    a.label(fold)
    a.emit(Jge.imm(R3, 64 - len(ID), done), Mov.reg(R5, base), And.imm(R3, 63),
           Add.reg(R5, R3))
    for k, ch in enumerate(ID):
        a.emit(st(1, R5, dst + k, ch))
    a.emit(ldx(8, R3, base, seg), Add.imm(R3, len(ID)), stx(8, base, j, R3))
    a.label(done)
    a.emit(Mov.imm(R0, 0))
