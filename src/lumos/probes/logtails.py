"""The element tails of the `lumos logs` program (probes/logprog.py), shared by every
site: the attribute slices' elements into the record, each with its window and follows.

Registers on entry: R6 ctx, R8 the record; the slices' data pointers and lengths are in
the record (nelem0/1) and logprog's FRAME slots. R7 holds the follow-map value while an
element's follows are copied.
"""

from __future__ import annotations

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R7,
    R8,
    Add,
    Asm,
    Helper,
    Jeq,
    Jgt,
    Jle,
    Jsle,
    Lsh,
    Mov,
    Or,
    Sub,
    call,
    ja,
    ld_imm64,
    ld_map_fd,
    ldx,
    stx,
)
from lumos.probes.capture import READ_FAILED
from lumos.probes.loglayout import (
    ELEM_SIZE,
    FOLLOW_SIZES,
    LOG_RECORD,
    MAX_ELEMS,
    NO_FOLLOW,
    WINDOW,
    failed_bit,
    slot,
)


def emit_flag_failure(a: Asm, field: str, bits: int) -> None:
    """After a probe_read_user: record.field |= bits when it failed (R0 != 0), so the
    decoder shows '?' for what the helper left zeroed."""
    ok = a.fresh("read_ok")
    off = LOG_RECORD.offset(field)
    a.emit(Jeq.imm(R0, 0, ok), ldx(8, R1, R8, off), ld_imm64(R2, bits), Or.reg(R1, R2),
           stx(8, R8, off, R1))
    a.label(ok)


def emit_iface_tail(a: Asm, channel, follow_map) -> None:
    """(type, data) pairs of one or two []any, then each element's window/follows."""
    r = LOG_RECORD
    a.label("tail.iface")
    a.comment(
        f"emit_iface_tail: (type, data) pairs; two slices split {MAX_ELEMS // 2}/{MAX_ELEMS // 2}"
    )
    half = MAX_ELEMS // 2
    for k in (0, 1):
        cap = MAX_ELEMS if k == 0 else half
        skip = a.fresh("pairs_skip")
        one = a.fresh("pairs_one")
        a.emit(ldx(8, R2, R8, r.offset(f"nelem{k}")), Jsle.imm(R2, 0, skip))
        if k == 0:  # alone it may fill all slots; beside a second slice, half
            a.emit(
                ldx(8, R1, FP, slot(a, "num_slices")),
                Jeq.imm(R1, 1, one),
                Jle.imm(R2, half, one),
                Mov.imm(R2, half),
            )
            a.label(one)
        ok2 = a.fresh("pairs_ok")
        a.emit(Jle.imm(R2, cap, ok2), Mov.imm(R2, cap))
        a.label(ok2)
        a.emit(
            Lsh.imm(R2, 4),
            Mov.reg(R1, R8),
            Add.imm(R1, r.offset("pairs") + 16 * half * k),
            ldx(8, R3, FP, (slot(a, "slice0_ptr"), slot(a, "slice1_ptr"))[k]),
            call(Helper.probe_read_user),
        )
        emit_flag_failure(a, f"nelem{k}", READ_FAILED)  # pairs unread: '?', not nil
        a.label(skip)
    for i in range(MAX_ELEMS):
        nxt = f"iface.{i + 1}" if i + 1 < MAX_ELEMS else "iface.done"
        a.label(f"iface.{i}")
        pair = r.offset("pairs") + 16 * i
        win = r.offset("elems") + ELEM_SIZE * i
        a.emit(
            ldx(8, R3, R8, pair + 8),
            Jeq.imm(R3, 0, nxt),
            Mov.reg(R1, R8),
            Add.imm(R1, win),
            Mov.imm(R2, WINDOW),
            call(Helper.probe_read_user),
        )
        emit_flag_failure(a, "failed", failed_bit(i, 0))
        a.emit(
            ldx(8, R1, R8, pair),
            Jeq.imm(R1, 0, nxt),
            ldx(8, R2, R8, r.offset("bias")),
            Sub.reg(R1, R2),
            stx(8, FP, slot(a, "map_key"), R1),
        )
        emit_follows(a, follow_map, win, nxt, i)
    a.label("iface.done")
    channel.emit_submit(a, R8)
    a.emit(ja("out"))


def emit_inline_tail(a: Asm, channel, follow_map) -> None:
    """Elements stored in the slice itself (slog.Attr, 40 bytes): one read each."""
    r = LOG_RECORD
    a.label("tail.inline")
    a.comment("emit_inline_tail: []slog.Attr elements (40 bytes each) into the windows")
    for i in range(MAX_ELEMS):
        nxt = f"inline.{i + 1}" if i + 1 < MAX_ELEMS else "inline.done"
        a.label(f"inline.{i}")
        win = r.offset("elems") + ELEM_SIZE * i
        a.emit(
            ldx(8, R2, R8, r.offset("nelem0")),
            Jsle.imm(R2, i, "inline.done"),
            Mov.reg(R1, R8),
            Add.imm(R1, win),
            Mov.imm(R2, 40),
            ldx(8, R3, FP, slot(a, "slice0_ptr")),
            Add.imm(R3, 40 * i),
            call(Helper.probe_read_user),
        )
        emit_flag_failure(a, "failed", failed_bit(i, 0))
        emit_follows(a, follow_map, win, nxt, i)
    a.label("inline.done")
    channel.emit_submit(a, R8)
    a.emit(ja("out"))


def emit_follows(a: Asm, follow_map, win: int, nxt: str, elem: int) -> None:
    """Up to three bounded copies behind pointers in the window, as lumos_follow[key]
    says: (ptr offset, len offset or 0xff for the buffer's size) per follow."""
    a.emit(
        ld_map_fd(R1, follow_map),
        Mov.reg(R2, FP),
        Add.imm(R2, slot(a, "map_key")),
        call(Helper.map_lookup_elem),
        Jeq.imm(R0, 0, nxt),
        Mov.reg(R7, R0),
    )
    buf = win + WINDOW
    for k, size in enumerate(FOLLOW_SIZES):
        skip = a.fresh("follow_skip")
        const = a.fresh("follow_const")
        have = a.fresh("follow_len")
        a.emit(
            ldx(1, R3, R7, 2 * k),
            Jgt.imm(R3, WINDOW - 8, skip),
            Mov.reg(R1, R8),
            Add.imm(R1, win),
            Add.reg(R1, R3),
            ldx(8, R3, R1, 0),
            Jeq.imm(R3, 0, skip),
            stx(8, FP, slot(a, "ptr_scratch"), R3),
            ldx(1, R2, R7, 2 * k + 1),
            Jeq.imm(R2, NO_FOLLOW, const),
            Jgt.imm(R2, WINDOW - 8, skip),
            Mov.reg(R1, R8),
            Add.imm(R1, win),
            Add.reg(R1, R2),
            ldx(8, R2, R1, 0),
            Jeq.imm(R2, 0, skip),
            Jle.imm(R2, size, have),
        )
        a.label(const)
        a.emit(Mov.imm(R2, size))
        a.label(have)
        a.emit(
            Mov.reg(R1, R8),
            Add.imm(R1, buf),
            ldx(8, R3, FP, slot(a, "ptr_scratch")),
            call(Helper.probe_read_user),
        )
        emit_flag_failure(a, "failed", failed_bit(elem, 1 + k))
        a.label(skip)
        buf += size
    a.emit(ja(nxt))
