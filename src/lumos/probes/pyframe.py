"""Python frames from uprobes in CPython's eval loop: one record per frame entry or exit,
with the frame, its code object, the code's first line and the raw bytes of its
co_filename and co_qualname (co_name on 3.10) string objects.

Reads per entry (each ~0.1 µs here, mostly fixed cost): the frame pointer if it was
spilled to the stack, frame->f_code, one read of the code object's span holding the
three fields, then the two string objects (header + data in one read each; when that
read crosses into unmapped memory, a shorter one). The strings are decoded in user
space (decode_unicode), which knows the PyUnicode layouts: compact ASCII data follows
PyASCIIObject, other compact strings follow PyCompactUnicodeObject at 1, 2 or 4 bytes
per character.

`layout` is a binary.cpython.Layout (offsets only; duck-typed, nothing imported).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R6,
    R7,
    R8,
    R9,
    Add,
    Asm,
    Helper,
    Jeq,
    Mov,
    Rsh,
    call,
    ja,
    ldx,
    st,
    stx,
)
from lumos.bpf.frame import Frame
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.channel import EventChannel
from lumos.probes.codegen import PT_REGS
from lumos.probes.record import Field, Record

FILE_DATA = 120   # characters (bytes of data) of co_filename copied at most
NAME_DATA = 88
KIND_ENTRY, KIND_EXIT = 0, 1


def record_for(layout) -> Record:
    return Record("pyframe_event", [
        Field("ts_ns", "u64"), Field("pid", "u32"), Field("tid", "u32"),
        Field("cpu", "u32"), Field("site", "u32"),
        Field("frame", "u64", doc="the frame's address (0: not known at this site)"),
        Field("code", "u64", doc="frame->f_code"),
        Field("lineno", "s32", doc="code->co_firstlineno"),
        Field("kind", "u32", doc="0 entry, 1 exit"),
        Field("file", "bytes", layout.compact_size + FILE_DATA,
              doc="co_filename's object: header, then data"),
        Field("name", "bytes", layout.compact_size + NAME_DATA,
              doc="co_qualname's (3.10: co_name's) object"),
    ])


@dataclass(frozen=True)
class FrameSite:
    """One variant: entry or exit, and where the frame pointer is (kind "reg": in
    regs->reg; "mem": at regs->reg + offset; "none": not known)."""

    kind: int
    where: str = "none"
    reg: str = ""
    offset: int = 0


class PyFrameEvents:
    def __init__(self, variants: list[FrameSite], channel: EventChannel, layout,
                 tgid: int | None = None):
        self.variants = variants
        self.channel = channel
        self.layout = layout
        self.tgid = tgid
        self.record = record_for(layout)
        self.frame = Frame()
        lo, hi = self._span()
        self.span_lo = lo
        self.frame.slot("code_span", hi - lo)

    @property
    def record_size(self) -> int:
        return self.record.size

    def _span(self) -> tuple[int, int]:
        L = self.layout
        offs = [L.co_filename, L.co_qualname or L.co_name, L.co_firstlineno]
        return min(offs) & ~7, max(offs) + 8  # 8-aligned: the pointers load from the slot

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        a.frame = self.frame  # slots declared in __init__, shared by every emitter
        codegen.variant_program(a, self.tgid, len(self.variants),
                                lambda a, i: self._emit(a, self.variants[i]), "pyframe",
                                check_flags=False)
        about = (f"stack:\n{self.frame.layout()}\nrecord ({self.record_size} bytes):\n"
                 f"{self.record.c_struct()}")
        return ProgramSpec("lumos_pyframe", BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type, about=about)

    def _emit(self, a: Asm, v: FrameSite) -> None:
        rec = self.record
        off = rec.offset
        self.channel.emit_reserve(a, self.record_size, R8, "out")
        a.comment(f"pyframe: header ({'entry' if v.kind == KIND_ENTRY else 'exit'})")
        a.emit(call(Helper.ktime_get_ns), stx(8, R8, off("ts_ns"), R0),
               call(Helper.get_current_pid_tgid), stx(4, R8, off("tid"), R0),
               Rsh.imm(R0, 32), stx(4, R8, off("pid"), R0), stx(4, R8, off("site"), R7),
               call(Helper.get_smp_processor_id), stx(4, R8, off("cpu"), R0),
               st(4, R8, off("kind"), v.kind), st(8, R8, off("frame"), 0),
               st(8, R8, off("code"), 0), st(4, R8, off("lineno"), 0),
               st(8, R8, off("file"), 0), st(8, R8, off("file") + 16, 0),
               st(8, R8, off("name"), 0), st(8, R8, off("name") + 16, 0))
        done = a.fresh("submit")
        if v.where == "reg":
            a.comment(f"pyframe: frame = regs->{v.reg} (DWARF location of 'frame' here)")
            a.emit(ldx(8, R1, R6, PT_REGS[v.reg]), stx(8, R8, off("frame"), R1))
        elif v.where == "mem":
            a.comment(f"pyframe: frame = *(regs->{v.reg} {v.offset:+#x}) (spilled; DWARF + CFI)")
            a.emit(Mov.reg(R1, R8), Add.imm(R1, off("frame")), Mov.imm(R2, 8),
                   ldx(8, R3, R6, PT_REGS[v.reg]), Add.imm(R3, v.offset),
                   call(Helper.probe_read_user))
        if v.where in ("reg", "mem"):
            self._emit_reads(a, done)
        a.label(done)
        self.channel.emit_submit(a, R8)
        a.emit(ja("out"))

    def emit_names(self, a: Asm, done: str, from_code: bool = False) -> None:
        """For programs that send a record of this layout themselves (probes/pycalls.py):
        with the record at R8 and its `frame` set (from_code: its `code`), fill code,
        lineno, file and name."""
        if from_code:
            rec = self.record
            a.emit(ldx(8, R3, R8, rec.offset("code")), Jeq.imm(R3, 0, done))
            self._emit_code_reads(a, done)
        else:
            self._emit_reads(a, done)

    def _emit_reads(self, a: Asm, done: str) -> None:
        """frame -> code -> lineno, file and name (each step skipped when the last gave 0)."""
        rec, L = self.record, self.layout
        off = rec.offset
        a.comment(f"pyframe: code = frame->f_code (+{L.frame_code:#x}, CPython layout)")
        a.emit(ldx(8, R3, R8, off("frame")), Jeq.imm(R3, 0, done), Add.imm(R3, L.frame_code),
               Mov.reg(R1, R8), Add.imm(R1, off("code")), Mov.imm(R2, 8),
               call(Helper.probe_read_user), ldx(8, R3, R8, off("code")), Jeq.imm(R3, 0, done))
        self._emit_code_reads(a, done)

    def _emit_code_reads(self, a: Asm, done: str) -> None:
        """With code in R3 (non-zero): lineno, file and name."""
        rec, L = self.record, self.layout
        off = rec.offset
        span = self.frame["code_span"]
        size = self._span()[1] - self.span_lo
        a.comment(f"pyframe: code+{self.span_lo:#x}..+{self.span_lo + size:#x} in one read "
                  f"(co_filename +{L.co_filename:#x}, name +{(L.co_qualname or L.co_name):#x}, "
                  f"co_firstlineno +{L.co_firstlineno:#x})")
        span_ok = a.fresh("span_ok")
        a.emit(Add.imm(R3, self.span_lo), Mov.reg(R1, FP), Add.imm(R1, span), Mov.imm(R2, size),
               call(Helper.probe_read_user), Jeq.imm(R0, 0, span_ok), ja(done))
        a.label(span_ok)
        a.emit(ldx(4, R1, FP, span + L.co_firstlineno - self.span_lo),
               stx(4, R8, off("lineno"), R1))
        for field, code_off, data in (("file", L.co_filename, FILE_DATA),
                                      ("name", L.co_qualname or L.co_name, NAME_DATA)):
            full = L.compact_size + data
            short = L.ascii_size + 16
            a.comment(f"pyframe: {field} = the string object at code+{code_off:#x}: "
                      f"{full} bytes, or {short} if that read faults")
            ok = a.fresh(field)
            a.emit(ldx(8, R9, FP, span + code_off - self.span_lo), Jeq.imm(R9, 0, ok),
                   Mov.reg(R1, R8), Add.imm(R1, off(field)), Mov.imm(R2, full), Mov.reg(R3, R9),
                   call(Helper.probe_read_user), Jeq.imm(R0, 0, ok),
                   Mov.reg(R1, R8), Add.imm(R1, off(field)), Mov.imm(R2, short), Mov.reg(R3, R9),
                   call(Helper.probe_read_user))
            a.label(ok)
            a.emit(Mov.imm(R0, 0))


def decode_unicode(raw: bytes, layout) -> tuple[str, bool]:
    """(text, complete) of a PyUnicode object's bytes as copied (header + data)."""
    if len(raw) < layout.ascii_size:
        return "?", False
    state = struct.unpack_from("<I", raw, layout.unicode_state)[0]
    length = struct.unpack_from("<q", raw, layout.unicode_length)[0]
    kind, compact, ascii_ = (state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1
    if not compact or length < 0 or (state == 0 and length == 0 and not any(raw[:16])):
        return "?", False
    if ascii_:
        data = raw[layout.ascii_size:layout.ascii_size + length]
        return data.decode("ascii", "replace"), len(data) == length
    width = {1: 1, 2: 2, 4: 4}.get(kind)
    if width is None:
        return "?", False
    data = raw[layout.compact_size:layout.compact_size + width * length]
    data = data[:len(data) - len(data) % width]
    codec = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[width]
    return data.decode(codec, "replace"), len(data) == width * length
