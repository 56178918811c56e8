"""Event probes: one program, many sites; each hit becomes a record in a ring buffer.

Sites differ in what they capture (each function has its own arguments), so the
program holds one body per *variant* and dispatches on the variant id carried in the
site's cookie (binary search over ids: a handful of compares whatever the count).

Cookie bits: see sites.ProbeSite.cookie (bits 40-63 are the variant id). Stack slots:
FP-8 drop-path scratch, FP-16 goid, FP-24 frame, FP-32 g pointer scratch, FP-48 pair
key, FP-56 pair value, FP-256.. filter scratch, FP-440.. g span (emit_goroutine).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R8,
    Add,
    Asm,
    Helper,
    Jeq,
    Lsh,
    Mov,
    Or,
    Rsh,
    Sub,
    call,
    exit_,
    ja,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.capture import (
    R_SP,
    Capture,
    RecordLayout,
    emit_capture,
    load_sp,
)
from lumos.probes.channel import EventChannel
from lumos.probes.filter import emit_filter

BPF_F_USER_STACK = 1 << 8
MAX_STACK_DEPTH = 32
# After the stack: the return address at SP on entry, and BP - (SP on entry). The
# kernel walks frame pointers from BP; at a site before the function saved BP (a Go
# entry probe sits in the prologue, a C one on the first instruction) that walk starts
# at the caller's frame and skips the caller itself: the decoder puts it back.
STACK_TAIL = 16

SLOT_GOID, SLOT_FRAME, SLOT_G = -16, -24, -32
SLOT_PAIR, SLOT_PAIR_VALUE = -48, -56  # 16-byte key, 8-byte value of the pairs map
# g from stack.hi up to goid, read at once: FP-440 .. FP-272, below the filter scratch
SLOT_G_SPAN, G_SPAN_MAX = -440, 168


@dataclass(frozen=True)
class GoroutineSource:
    """How a program finds the current goroutine's g and reads its fields.

    reg: the register holding g (R14 under Go's ABIInternal), or "" to read g from
    thread-local storage at fs_base + tls_offset (ABI0/assembly code), fs_base coming
    from task_struct.thread.fsbase at fsbase_offset (vmlinux BTF).
    """

    goid_offset: int
    stack_hi_offset: int = 8   # runtime.g starts with stack{lo, hi}
    reg: str = "r14"
    tls_offset: int = -8
    fsbase_offset: int = 0


@dataclass(frozen=True)
class Variant:
    """What one kind of site records."""

    kind: str                                   # "entry" | "return" | any tool-defined name
    captures: tuple[Capture, ...] = ()
    filter: object | None = None                # a parsed --filter expression
    filter_captures: tuple[Capture, ...] = ()   # names the filter may use (entry args)
    goroutine: GoroutineSource | None = None
    user_stack: bool = False
    sp_delta: int = 0                           # SP at the site + sp_delta = SP at entry
    frame: bool = True                          # record the frame (g.stack.hi - SP): one
                                                # more user read, needed to pair calls
    # Pairing entries with returns in the kernel (EventProgram.pairs): "entry" marks a
    # call the filter accepted (and unmarks one it rejected), "exit" sends a return
    # only if its call was marked. Keyed by (goid, frame), or (tid, SP at entry).
    pairing: str = ""

    @property
    def layout(self) -> RecordLayout:
        return RecordLayout(self.captures)

    @property
    def stack_offset(self) -> int:
        return self.layout.size

    @property
    def record_size(self) -> int:
        return self.layout.size + (8 + 8 * MAX_STACK_DEPTH + STACK_TAIL if self.user_stack
                                   else 0)


@dataclass
class EventProgram:
    variants: list[Variant]
    channel: EventChannel
    tgid: int | None = None
    listing_name: str = "lumos_events"
    pairs: object | None = None                 # a 16-byte-key hash map, for Variant.pairing
    _labels: list[str] = field(default_factory=list)

    @property
    def record_size(self) -> int:
        """Every record of the program has this size (the largest variant's, 8-aligned),
        so the reader can find record boundaries without walking them one by one."""
        return max((v.record_size for v in self.variants), default=0) + 7 & ~7

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        codegen.save_ctx(a)
        codegen.tgid_filter(a, self.tgid, "out")
        codegen.load_cookie(a, "out")
        a.emit(Mov.reg(R0, R7), Rsh.imm(R0, 40), Mov.reg32(R7, R7))
        labels = [f"variant.{i}" for i in range(len(self.variants))]
        codegen.dispatch(a, R0, labels)
        for label, variant in zip(labels, self.variants, strict=True):
            a.label(label)
            self._emit_variant(a, variant)
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec(self.listing_name, BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type)

    def _emit_variant(self, a: Asm, v: Variant) -> None:
        load_sp(a)
        reject = "out"
        if v.pairing:
            # the call's identity first: the filter's reject path needs it too
            self._emit_goroutine(a, v)
            self._emit_pair_key(a, v)
            if v.pairing == "exit":
                a.emit(ld_map_fd(R1, self.pairs), Mov.reg(R2, FP), Add.imm(R2, SLOT_PAIR),
                       call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"),
                       ld_map_fd(R1, self.pairs), Mov.reg(R2, FP), Add.imm(R2, SLOT_PAIR),
                       call(Helper.map_delete_elem))
            else:
                reject = a.fresh("reject")
        if v.filter is not None:
            emit_filter(a, v.filter, {c.name: c for c in v.filter_captures}, reject)
        if not v.pairing:
            self._emit_goroutine(a, v)
        if v.pairing == "entry":
            a.emit(st(8, FP, SLOT_PAIR_VALUE, 1), ld_map_fd(R1, self.pairs), Mov.reg(R2, FP),
                   Add.imm(R2, SLOT_PAIR), Mov.reg(R3, FP), Add.imm(R3, SLOT_PAIR_VALUE),
                   Mov.imm(R4, 0), call(Helper.map_update_elem))
        self.channel.emit_reserve(a, self.record_size, R8, "out")
        emit_header(a)
        for cap, off in zip(v.captures, v.layout.offsets, strict=True):
            emit_capture(a, cap, off)
        if v.user_stack:
            off = v.stack_offset
            a.emit(Mov.reg(R1, R6), Mov.reg(R2, R8), Add.imm(R2, off + 8),
                   Mov.imm(R3, 8 * MAX_STACK_DEPTH), Mov.imm(R4, BPF_F_USER_STACK),
                   call(Helper.get_stack), stx(8, R8, off, R0))
            tail = off + 8 + 8 * MAX_STACK_DEPTH
            a.emit(Mov.reg(R1, R8), Add.imm(R1, tail), Mov.imm(R2, 8), Mov.reg(R3, R_SP),
                   Add.imm(R3, v.sp_delta), call(Helper.probe_read_user),
                   ldx(8, R1, R6, codegen.PT_REGS["bp"]), Sub.reg(R1, R_SP),
                   Add.imm(R1, -v.sp_delta), stx(8, R8, tail + 8, R1))
        self.channel.emit_submit(a, R8)
        a.emit(ja("out"))
        if reject != "out":  # a rejected call: forget an older one at the same frame
            a.label(reject)
            a.emit(ld_map_fd(R1, self.pairs), Mov.reg(R2, FP), Add.imm(R2, SLOT_PAIR),
                   call(Helper.map_delete_elem), ja("out"))

    @staticmethod
    def _emit_goroutine(a: Asm, v: Variant) -> None:
        if v.goroutine is not None:
            emit_goroutine(a, v.goroutine, v.sp_delta, v.frame or bool(v.pairing))
        else:
            a.emit(st(8, FP, SLOT_GOID, 0), st(8, FP, SLOT_FRAME, 0))

    @staticmethod
    def _emit_pair_key(a: Asm, v: Variant) -> None:
        """FP+SLOT_PAIR = (goid, pid << 32 | frame) for Go, (tid, SP at entry) otherwise."""
        if v.goroutine is not None:  # goids repeat across processes: add the pid
            a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), Lsh.imm(R0, 32),
                   ldx(8, R1, FP, SLOT_GOID), stx(8, FP, SLOT_PAIR, R1),
                   ldx(8, R1, FP, SLOT_FRAME), Mov.reg32(R1, R1), Or.reg(R1, R0),
                   stx(8, FP, SLOT_PAIR + 8, R1))
        else:
            a.emit(call(Helper.get_current_pid_tgid), Mov.reg32(R0, R0),
                   stx(8, FP, SLOT_PAIR, R0), Mov.reg(R1, R_SP), Add.imm(R1, v.sp_delta),
                   stx(8, FP, SLOT_PAIR + 8, R1))


def emit_goroutine(a: Asm, src: GoroutineSource, sp_delta: int, frame: bool = True) -> None:
    """FP-16 = g.goid, FP-24 = g.stack.hi - SP at entry: a frame id that survives stack moves.

    Go's copystack keeps every frame's distance from the stack top, and SP at a RET
    equals SP at entry, so (goid, frame) names one live call exactly.
    """
    if src.reg:
        a.emit(ldx(8, R3, R6, codegen.PT_REGS[src.reg]))
    else:
        a.emit(call(Helper.get_current_task), Mov.reg(R3, R0), Add.imm(R3, src.fsbase_offset),
               Mov.reg(R1, FP), Add.imm(R1, SLOT_G), Mov.imm(R2, 8),
               call(Helper.probe_read_kernel), ldx(8, R3, FP, SLOT_G),
               Add.imm(R3, src.tls_offset), Mov.reg(R1, FP), Add.imm(R1, SLOT_G),
               Mov.imm(R2, 8), call(Helper.probe_read_user), ldx(8, R3, FP, SLOT_G))
    span = src.goid_offset + 8 - src.stack_hi_offset
    if not frame:  # the goid alone: each user read costs ~100 ns here, whatever its size
        a.emit(Mov.reg(R1, FP), Add.imm(R1, SLOT_GOID), Mov.imm(R2, 8),
               Add.imm(R3, src.goid_offset), call(Helper.probe_read_user),
               st(8, FP, SLOT_FRAME, 0))
        return
    if 0 < span <= G_SPAN_MAX:
        # One user read of g from stack.hi to goid instead of two: a read's cost is
        # mostly fixed (~100 ns per call measured here), not per byte.
        a.emit(Add.imm(R3, src.stack_hi_offset), Mov.reg(R1, FP), Add.imm(R1, SLOT_G_SPAN),
               Mov.imm(R2, span), call(Helper.probe_read_user),
               ldx(8, R1, FP, SLOT_G_SPAN + span - 8), stx(8, FP, SLOT_GOID, R1),
               ldx(8, R1, FP, SLOT_G_SPAN), Sub.reg(R1, R_SP))
    else:
        a.emit(stx(8, FP, SLOT_G, R3),
               Mov.reg(R1, FP), Add.imm(R1, SLOT_GOID), Mov.imm(R2, 8),
               Add.imm(R3, src.goid_offset), call(Helper.probe_read_user),
               ldx(8, R3, FP, SLOT_G), Add.imm(R3, src.stack_hi_offset),
               Mov.reg(R1, FP), Add.imm(R1, SLOT_FRAME), Mov.imm(R2, 8),
               call(Helper.probe_read_user),
               ldx(8, R1, FP, SLOT_FRAME), Sub.reg(R1, R_SP))
    if sp_delta:  # SP at the site is sp_delta below SP at entry
        a.emit(Add.imm(R1, -sp_delta))
    a.emit(stx(8, FP, SLOT_FRAME, R1))


def emit_header(a: Asm) -> None:
    """ts, pid, tid, goid, site index (R7), frame into the record at R8."""
    a.emit(call(Helper.ktime_get_ns), stx(8, R8, 0, R0),
           call(Helper.get_current_pid_tgid), stx(4, R8, 12, R0),
           Rsh.imm(R0, 32), stx(4, R8, 8, R0), stx(4, R8, 24, R7),
           ldx(8, R1, FP, SLOT_GOID), stx(8, R8, 16, R1),
           ldx(8, R1, FP, SLOT_FRAME), stx(4, R8, 28, R1))

