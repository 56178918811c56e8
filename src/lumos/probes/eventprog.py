"""Event probes: one program, many sites; each hit becomes a record in a ring buffer.

Sites differ in what they capture (each function has its own arguments), so the
program holds one body per *variant* and dispatches on the variant id carried in the
site's cookie (binary search over ids: a handful of compares whatever the count).

Cookie bits: see probesite.ProbeSite.cookie (bits 40-63 are the variant id). Stack
slots are named in the program's Frame (a.frame): goid, frame, g, pair_key, pair_value,
g_span, drop_key, filter_scratch; `--dump-prog` prints where each landed.
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
    HEADER_RECORD,
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

# g from stack.hi up to goid, read at once into the slot "g_span" when it is this short
G_SPAN_MAX = 168


def goid_slot(a: Asm) -> int:
    """The stack slot emit_goroutine leaves g.goid in (0 outside Go code)."""
    return a.frame.slot("goid", 8)


def frame_slot(a: Asm) -> int:
    """The stack slot emit_goroutine leaves the frame id (g.stack.hi - SP at entry) in."""
    return a.frame.slot("frame", 8)


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
    goid_source: str = field(default="runtime layout", compare=False)  # for listings


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

    def describe(self) -> str:
        what = ", ".join(c.name for c in self.captures) or "no values"
        extras = [x for x, on in (("user stack", self.user_stack),
                                  (f"pairing={self.pairing}", self.pairing),
                                  ("filter", self.filter is not None)) if on]
        return f"{self.kind}: {what}" + (f" ({', '.join(extras)})" if extras else "")

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
    size: int = 0                               # record size if set (programs sharing a ring)
    _labels: list[str] = field(default_factory=list)

    @property
    def record_size(self) -> int:
        """Every record of the program has this size (the largest variant's, 8-aligned),
        so the reader can find record boundaries without walking them one by one."""
        return self.size or max((v.record_size for v in self.variants), default=0) + 7 & ~7

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()

        def body(a: Asm, i: int) -> None:
            a.comment(f"EventProgram: variant {i}: {self.variants[i].describe()}")
            self._emit_variant(a, self.variants[i])

        codegen.variant_program(a, self.tgid, len(self.variants), body, "EventProgram")
        insns = tuple(a.finish())
        return ProgramSpec(self.listing_name, BPF_PROG_TYPE_KPROBE, insns,
                           expected_attach_type=attach_type, about=self.about(a))

    def about(self, a: Asm) -> str:
        """Stack slots, maps and every variant's record, for --dump-prog."""
        lines = ["stack slots:", a.frame.layout(), "maps:", self.channel.describe_maps()]
        if self.pairs is not None:
            lines.append("  lumos_pairs: LRU hash (goid, pid << 32 | frame) -> 1: calls "
                         "the filter accepted, awaiting their RET")
        for i, v in enumerate(self.variants):
            lines.append(f"record of variant {i} ({v.kind}; every record is padded to "
                         f"{self.record_size} bytes):")
            lines.append(v.layout.record.c_struct())
        return "\n".join(lines)

    def _emit_variant(self, a: Asm, v: Variant) -> None:
        load_sp(a)
        reject = "out"
        pair_key = a.frame.slot("pair_key", 16) if v.pairing else 0
        if v.pairing:
            # the call's identity first: the filter's reject path needs it too
            self._emit_goroutine(a, v)
            self._emit_pair_key(a, v)
            if v.pairing == "exit":
                a.comment("EventProgram: a return is sent only if the filter accepted its "
                          "call (lumos_pairs), and forgets it")
                a.emit(ld_map_fd(R1, self.pairs), Mov.reg(R2, FP), Add.imm(R2, pair_key),
                       call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"),
                       ld_map_fd(R1, self.pairs), Mov.reg(R2, FP), Add.imm(R2, pair_key),
                       call(Helper.map_delete_elem))
            else:
                reject = a.fresh("reject")
        if v.filter is not None:
            emit_filter(a, v.filter, {c.name: c for c in v.filter_captures}, reject)
        if not v.pairing:
            self._emit_goroutine(a, v)
        if v.pairing == "entry":
            value = a.frame.slot("pair_value", 8)
            a.comment("EventProgram: remember the accepted call for its RET (lumos_pairs)")
            a.emit(st(8, FP, value, 1), ld_map_fd(R1, self.pairs), Mov.reg(R2, FP),
                   Add.imm(R2, pair_key), Mov.reg(R3, FP), Add.imm(R3, value),
                   Mov.imm(R4, 0), call(Helper.map_update_elem))
        self.channel.emit_reserve(a, self.record_size, R8, "out")
        emit_header(a)
        for cap, off in zip(v.captures, v.layout.offsets, strict=True):
            emit_capture(a, cap, off)
        if v.user_stack:
            off = v.stack_offset
            a.comment(f"EventProgram: user stack (bpf_get_stack, {MAX_STACK_DEPTH} frames) "
                      f"-> record+{off}, then the return address at SP and BP - SP")
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
            a.comment("EventProgram: the filter rejected this call: forget an older one at "
                      "the same frame")
            a.emit(ld_map_fd(R1, self.pairs), Mov.reg(R2, FP), Add.imm(R2, pair_key),
                   call(Helper.map_delete_elem), ja("out"))

    @staticmethod
    def _emit_goroutine(a: Asm, v: Variant) -> None:
        if v.goroutine is not None:
            emit_goroutine(a, v.goroutine, v.sp_delta, v.frame or bool(v.pairing))
        else:
            a.comment("EventProgram: not Go code: goid and frame 0")
            a.emit(st(8, FP, goid_slot(a), 0), st(8, FP, frame_slot(a), 0))

    @staticmethod
    def _emit_pair_key(a: Asm, v: Variant) -> None:
        """pair_key = (goid, pid << 32 | frame) for Go, (tid, SP at entry) otherwise."""
        emit_call_key(a, a.frame.slot("pair_key", 16), v.goroutine is not None, v.sp_delta)


def emit_call_key(a: Asm, key: int, go: bool, sp_delta: int) -> None:
    """FP+key (16 bytes) = one live call's identity: (goid, pid << 32 | frame) for Go code
    after emit_goroutine (goids repeat across processes, so the pid goes in), (tid, SP at
    entry) for C, whose stacks do not move."""
    if go:
        a.comment("emit_call_key: (goid, pid << 32 | frame)")
        codegen.load_pid_tgid(a, R0)
        a.emit(Rsh.imm(R0, 32), Lsh.imm(R0, 32),
               ldx(8, R1, FP, goid_slot(a)), stx(8, FP, key, R1),
               ldx(8, R1, FP, frame_slot(a)), Mov.reg32(R1, R1), Or.reg(R1, R0),
               stx(8, FP, key + 8, R1))
    else:
        a.comment(f"emit_call_key: (tid, SP{sp_delta:+d} = SP at entry)")
        codegen.load_pid_tgid(a, R0)
        a.emit(Mov.reg32(R0, R0),
               stx(8, FP, key, R0), Mov.reg(R1, R_SP), Add.imm(R1, sp_delta),
               stx(8, FP, key + 8, R1))


def emit_goroutine(a: Asm, src: GoroutineSource, sp_delta: int, frame: bool = True) -> None:
    """goid slot = g.goid, frame slot = g.stack.hi - SP at entry: a frame id that survives
    stack moves.

    Go's copystack keeps every frame's distance from the stack top, and SP at a RET
    equals SP at entry, so (goid, frame) names one live call exactly.
    """
    goid, frame_off = goid_slot(a), frame_slot(a)
    if src.reg:
        a.comment(f"emit_goroutine: R3 = g, in {src.reg.upper()} under Go's ABIInternal")
        a.emit(ldx(8, R3, R6, codegen.PT_REGS[src.reg]))
    else:
        g = a.frame.slot("g", 8)
        a.comment(f"emit_goroutine: R3 = g from TLS: *(task->thread.fsbase "
                  f"{src.tls_offset:+d}) (fsbase at task_struct+{src.fsbase_offset:#x}, "
                  f"vmlinux BTF; runtime/go_tls.h)")
        a.emit(call(Helper.get_current_task), Mov.reg(R3, R0), Add.imm(R3, src.fsbase_offset),
               Mov.reg(R1, FP), Add.imm(R1, g), Mov.imm(R2, 8),
               call(Helper.probe_read_kernel), ldx(8, R3, FP, g),
               Add.imm(R3, src.tls_offset), Mov.reg(R1, FP), Add.imm(R1, g),
               Mov.imm(R2, 8), call(Helper.probe_read_user), ldx(8, R3, FP, g))
    span = src.goid_offset + 8 - src.stack_hi_offset
    if not frame:  # the goid alone: each user read costs ~100 ns here, whatever its size
        a.comment(f"emit_goroutine: goid = g.goid at g+{src.goid_offset:#x} "
                  f"({src.goid_source}); no frame needed")
        a.emit(Mov.reg(R1, FP), Add.imm(R1, goid), Mov.imm(R2, 8),
               Add.imm(R3, src.goid_offset), call(Helper.probe_read_user),
               st(8, FP, frame_off, 0))
        return
    if 0 < span <= G_SPAN_MAX:
        g_span = a.frame.slot("g_span", G_SPAN_MAX)
        # One user read of g from stack.hi to goid instead of two: a read's cost is
        # mostly fixed (~100 ns per call measured here), not per byte.
        a.comment(f"emit_goroutine: one read of g+{src.stack_hi_offset:#x} (stack.hi) .. "
                  f"g+{src.goid_offset + 8:#x}: goid at g+{src.goid_offset:#x} "
                  f"({src.goid_source}); frame = stack.hi - SP")
        a.emit(Add.imm(R3, src.stack_hi_offset), Mov.reg(R1, FP), Add.imm(R1, g_span),
               Mov.imm(R2, span), call(Helper.probe_read_user),
               ldx(8, R1, FP, g_span + span - 8), stx(8, FP, goid, R1),
               ldx(8, R1, FP, g_span), Sub.reg(R1, R_SP))
    else:
        g = a.frame.slot("g", 8)
        a.comment(f"emit_goroutine: goid = g.goid at g+{src.goid_offset:#x} "
                  f"({src.goid_source}); frame = g.stack.hi (g+{src.stack_hi_offset:#x}) - SP")
        a.emit(stx(8, FP, g, R3),
               Mov.reg(R1, FP), Add.imm(R1, goid), Mov.imm(R2, 8),
               Add.imm(R3, src.goid_offset), call(Helper.probe_read_user),
               ldx(8, R3, FP, g), Add.imm(R3, src.stack_hi_offset),
               Mov.reg(R1, FP), Add.imm(R1, frame_off), Mov.imm(R2, 8),
               call(Helper.probe_read_user),
               ldx(8, R1, FP, frame_off), Sub.reg(R1, R_SP))
    if sp_delta:  # SP at the site is sp_delta below SP at entry
        a.comment(f"emit_goroutine: the site is {sp_delta} bytes below SP at entry")
        a.emit(Add.imm(R1, -sp_delta))
    a.emit(stx(8, FP, frame_off, R1))


def emit_header(a: Asm) -> None:
    """The event_header (capture.HEADER_RECORD) of the record at R8: ts, pid, tid, goid,
    site index (R7), frame."""
    h = HEADER_RECORD.offset
    a.comment("emit_header: ts_ns, pid/tid, goid, site, frame (capture.HEADER_RECORD)")
    a.emit(call(Helper.ktime_get_ns), stx(8, R8, h("ts_ns"), R0))
    codegen.load_pid_tgid(a, R0)
    a.emit(stx(4, R8, h("tid"), R0),
           Rsh.imm(R0, 32), stx(4, R8, h("pid"), R0), stx(4, R8, h("site"), R7),
           ldx(8, R1, FP, goid_slot(a)), stx(8, R8, h("goid"), R1),
           ldx(8, R1, FP, frame_slot(a)), stx(4, R8, h("frame"), R1))


# A program's jumps reach 32,767 instructions; a few hundred variants of a few dozen
# instructions each stay well inside (and load in tens of ms).
MAX_VARIANTS_PER_PROGRAM = 256


def attach_events(variants: list[Variant], sites, channel: EventChannel, tgid, name: str,
                  stack, pairs=None, mode=None):
    """Load and attach EventPrograms for `sites` (each naming its variant in `variants`),
    as many programs as it takes to keep each within MAX_VARIANTS_PER_PROGRAM. All write
    records of one size into one channel; cookies carry the site's index in `sites` and
    its variant's index inside its own program. Returns (record size, [Attached])."""
    from dataclasses import replace as _replace

    from lumos.probes.attach import attach_sites
    size = max((v.record_size for v in variants), default=0) + 7 & ~7
    out = []
    for lo in range(0, max(len(variants), 1), MAX_VARIANTS_PER_PROGRAM):
        chunk = variants[lo:lo + MAX_VARIANTS_PER_PROGRAM]
        picked = [(i, s) for i, s in enumerate(sites) if lo <= s.variant < lo + len(chunk)]
        if not picked:
            continue
        program = EventProgram(chunk, channel, tgid, name, pairs, size)
        local = [_replace(s, variant=s.variant - lo) for _, s in picked]
        out.append(attach_sites(program.build, local, tgid, stack, mode,
                                indexes=[i for i, _ in picked]))
    return size, out
