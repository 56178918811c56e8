"""Function latency as log2 histograms, computed in the kernel (no event per call).

Entry sites store the start time under the call's frame key; exit sites (every RET
instruction: never a uretprobe on Go code) look it up, compute the duration and bump
a histogram bucket. Frame key: (goid, process id << 32 | g.stack.hi - SP) for Go (stable across
stack moves and goroutine migration), (tid, SP) for C, whose stacks do not move. Recursion
needs nothing more: each live frame has its own key. A call whose RET never runs (a
panic unwinding through it) leaves a stale start, overwritten by the next call at that
depth or evicted by the LRU map, and never paired with another function's RET: the
exit checks the function id.

Cookie variant bits: (function index << 1) | is_exit. With --by, the value of one
argument is captured at entry and becomes part of the histogram key.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R7,
    R8,
    Add,
    And,
    Arsh,
    Asm,
    Div,
    Helper,
    Jeq,
    Jle,
    Jne,
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
from lumos.bpf.maps import array_spec, create_map, hash_spec
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_NOEXIST, BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.attach import Attached, attach_sites
from lumos.probes.capture import R_SP, Capture, emit_read_word, load_sp
from lumos.probes.eventprog import SLOT_FRAME, SLOT_GOID, GoroutineSource, emit_goroutine
from lumos.probes.probesite import ProbeSite

BY_STR_BYTES = 16
# stack layout (below the goroutine slots of event.py)
KEY = -48        # start key: id u64, frame u64                        (FP-48 .. FP-32)
VALUE = -88      # start value: ts u64, func u32, pad u32, by 24 bytes  (FP-88 .. FP-48)
HKEY = -128      # hist key: func u32, slot u32, by 24 bytes, pad u64   (FP-128 .. FP-88)
START_VALUE = struct.Struct(f"<QIIQ{BY_STR_BYTES}s")  # ts, func, pad, by word, by bytes
HIST_KEY = struct.Struct(f"<IIQ{BY_STR_BYTES}s")      # func, slot, by word, by bytes
assert VALUE + START_VALUE.size == KEY and HKEY + HIST_KEY.size + 8 == VALUE


# The kernel's LRU hash is approximate: under concurrency it may evict before it is full
# (per-CPU free lists). Twice the capacity asked for keeps evictions to true overflow.
LRU_HEADROOM = 2


@dataclass
class Histogram:
    slots: list[int] = field(default_factory=lambda: [0] * 64)
    sum: int = 0

    @property
    def count(self) -> int:
        return sum(self.slots)


@dataclass(frozen=True)
class LatencyFunction:
    name: str
    goroutine: GoroutineSource | None  # None: key by thread (C functions)
    by: Capture | None = None          # the --by argument at the entry site
    entry_sp_delta: int = 0


class LatencyProbe:
    """Histograms per function (and per --by value). attach() puts all on an ExitStack."""

    def __init__(self, functions: list[LatencyFunction], entries: list[ProbeSite],
                 exits: list[ProbeSite], unit_ns: int, tgid: int | None = None,
                 max_inflight: int = 65536):
        self.functions = functions
        self.sites = ([_tag(s, s.func_index << 1) for s in entries]
                      + [_tag(s, s.func_index << 1 | 1) for s in exits])
        self.unit_ns = unit_ns
        self.tgid = tgid
        self.max_inflight = max_inflight
        self.attached: Attached | None = None

    def attach(self, stack: ExitStack, mode: str | None = None) -> LatencyProbe:
        self.starts = stack.enter_context(create_map(hash_spec(
            "lumos_starts", 16, START_VALUE.size, LRU_HEADROOM * self.max_inflight,
            lru=True)))
        self.unmatched = stack.enter_context(create_map(array_spec("lumos_unmatched", 8, 1,
                                                                   percpu=True)))
        self.hist = stack.enter_context(create_map(hash_spec(
            "lumos_hist", HIST_KEY.size + 8, 16, 16384, percpu=True)))  # count, sum
        self.attached = attach_sites(self._build, self.sites, self.tgid, stack, mode)
        return self

    def _build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        codegen.save_ctx(a)
        codegen.tgid_filter(a, self.tgid, "out")
        codegen.load_cookie(a, "out")
        a.emit(Rsh.imm(R7, 40))  # R7 = variant: func << 1 | is_exit
        load_sp(a)
        a.emit(Mov.reg(R0, R7), And.imm(R0, 1), Jne.imm(R0, 0, "exit"), Rsh.imm(R7, 1))
        labels = [f"entry.{i}" for i in range(len(self.functions))]
        codegen.dispatch(a, R7, labels)
        for i, (label, fn) in enumerate(zip(labels, self.functions, strict=True)):
            a.label(label)
            self._emit_entry(a, i, fn)
        a.label("exit")
        a.emit(Rsh.imm(R7, 1))
        labels = [f"exit.{i}" for i in range(len(self.functions))]
        codegen.dispatch(a, R7, labels)
        for label, fn in zip(labels, self.functions, strict=True):
            a.label(label)
            self._emit_key(a, fn, 0)  # at a RET, SP is back to its value at entry
            a.emit(ja("exit.tail"))
        a.label("exit.tail")
        self._emit_exit(a)
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec("lumos_latency", BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type)

    def _emit_key(self, a: Asm, fn: LatencyFunction | None, sp_delta: int) -> None:
        """FP+KEY = (goid, frame) or (tid, SP at entry)."""
        if fn is not None and fn.goroutine is not None:
            emit_goroutine(a, fn.goroutine, sp_delta)
            # goids repeat across processes (a binary target traces them all): the
            # frame word carries the process id in its upper half
            a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), Lsh.imm(R0, 32),
                   ldx(8, R1, FP, SLOT_GOID), stx(8, FP, KEY, R1),
                   ldx(8, R1, FP, SLOT_FRAME), Mov.reg32(R1, R1), Or.reg(R1, R0),
                   stx(8, FP, KEY + 8, R1))
        else:
            a.emit(call(Helper.get_current_pid_tgid), Mov.reg32(R0, R0), stx(8, FP, KEY, R0),
                   Mov.reg(R1, R_SP), Add.imm(R1, sp_delta), stx(8, FP, KEY + 8, R1))

    def _emit_entry(self, a: Asm, index: int, fn: LatencyFunction) -> None:
        self._emit_key(a, fn, fn.entry_sp_delta)
        a.emit(*(st(8, FP, VALUE + i, 0) for i in range(0, START_VALUE.size, 8)))
        if fn.by is not None:
            _emit_by(a, fn.by, VALUE + 16)
        a.emit(st(4, FP, VALUE + 8, index), call(Helper.ktime_get_ns), stx(8, FP, VALUE, R0),
               ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, KEY),
               Mov.reg(R3, FP), Add.imm(R3, VALUE), Mov.imm(R4, 0),
               call(Helper.map_update_elem), ja("out"))

    def _emit_exit(self, a: Asm) -> None:
        """With the key at FP+KEY and the function in R7: pair with the entry, count."""
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, KEY),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "unmatched"),
               ldx(4, R1, R0, 8), Jne.reg(R1, R7, "stale"))  # another function's frame
        # hist key: func, slot, by (copied from the start value)
        a.emit(stx(4, FP, HKEY, R1))
        for i in range(0, 24, 8):
            a.emit(ldx(8, R1, R0, 16 + i), stx(8, FP, HKEY + 8 + i, R1))
        a.emit(st(8, FP, HKEY + 32, 0), ldx(8, R3, R0, 0), stx(8, FP, VALUE, R3),
               call(Helper.ktime_get_ns), ldx(8, R3, FP, VALUE), Sub.reg(R0, R3))
        if self.unit_ns > 1:
            a.emit(Div.imm(R0, self.unit_ns))
        a.emit(Mov.reg(R8, R0))  # the duration, kept across calls for the sum
        _emit_log2(a)
        a.emit(stx(4, FP, HKEY + 4, R1))
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, KEY),
               call(Helper.map_delete_elem))
        # hist[func, slot, by] += (1 call, duration): one lookup (per-CPU: no atomics)
        a.emit(ld_map_fd(R1, self.hist), Mov.reg(R2, FP), Add.imm(R2, HKEY),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "bucket.new"),
               ldx(8, R1, R0, 0), Add.imm(R1, 1), stx(8, R0, 0, R1),
               ldx(8, R1, R0, 8), Add.reg(R1, R8), stx(8, R0, 8, R1), ja("out"))
        a.label("bucket.new")
        a.emit(st(8, FP, VALUE, 1), stx(8, FP, VALUE + 8, R8), ld_map_fd(R1, self.hist),
               Mov.reg(R2, FP), Add.imm(R2, HKEY), Mov.reg(R3, FP), Add.imm(R3, VALUE),
               Mov.imm(R4, BPF_NOEXIST), call(Helper.map_update_elem), ja("out"))
        a.label("unmatched")  # entered before tracing began, or its start was evicted
        a.emit(st(4, FP, KEY, 0), ld_map_fd(R1, self.unmatched), Mov.reg(R2, FP),
               Add.imm(R2, KEY), call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"),
               ldx(8, R1, R0, 0), Add.imm(R1, 1), stx(8, R0, 0, R1), ja("out"))
        a.label("stale")
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, KEY),
               call(Helper.map_delete_elem), ja("out"))

    def read(self) -> dict[tuple[int, object], Histogram]:
        """{(function index, by value): histogram} (durations in the probe's unit)."""
        out: dict[tuple[int, object], Histogram] = defaultdict(Histogram)
        for key, values in self.hist.items_percpu():
            func, slot, by_word, by_bytes = HIST_KEY.unpack_from(key)
            fn = self.functions[func]
            by = _by_value(fn.by, by_word, by_bytes) if fn.by is not None else None
            for v in values:
                count, total = struct.unpack("<QQ", v)
                out[(func, by)].slots[slot] += count
                out[(func, by)].sum += total
        return dict(out)

    def clear(self) -> None:
        self.hist.clear()

    @property
    def returns_unmatched(self) -> int:
        """RETs with no recorded entry: calls begun before tracing, or starts evicted."""
        return sum(struct.unpack("<Q", v)[0]
                   for v in self.unmatched.lookup_percpu(struct.pack("<I", 0)) or [])

    @property
    def inflight(self) -> int:
        return len(self.starts)


def _tag(site: ProbeSite, variant: int) -> ProbeSite:
    return replace(site, variant=variant)


def _emit_by(a: Asm, cap: Capture, dst: int) -> None:
    """FP+dst = the --by value: an integer (sign-extended) or a string's len + prefix."""
    if cap.kind in ("string", "bytes"):
        emit_read_word(a, cap.words[1], FP, dst)        # length
        emit_read_word(a, cap.words[0], FP, dst + 8)    # pointer, replaced by the bytes
        done = a.fresh("by_done")
        a.emit(ldx(8, R2, FP, dst), Jle.imm(R2, BY_STR_BYTES, done + ".n"),
               Mov.imm(R2, BY_STR_BYTES))
        a.label(done + ".n")
        a.emit(ldx(8, R3, FP, dst + 8), st(8, FP, dst + 8, 0), st(8, FP, dst + 16, 0),
               Mov.reg(R1, FP), Add.imm(R1, dst + 8), call(Helper.probe_read_user))
        return
    emit_read_word(a, cap.words[0], FP, dst)
    size = cap.size if cap.kind != "bool" else 1
    if size < 8:
        shift = 64 - 8 * size
        a.emit(ldx(8, R1, FP, dst), Lsh.imm(R1, shift),
               (Arsh if cap.kind == "int" else Rsh).imm(R1, shift), stx(8, FP, dst, R1))


def _emit_log2(a: Asm) -> None:
    """R1 = floor(log2(R0)) (0 for 0 and 1), halving the search range: 6 steps."""
    a.emit(Mov.imm(R1, 0))
    for shift in (32, 16, 8, 4, 2, 1):
        skip = a.fresh("log2")
        a.emit(Mov.reg(R2, R0), Rsh.imm(R2, shift), Jeq.imm(R2, 0, skip),
               Mov.reg(R0, R2), Add.imm(R1, shift))
        a.label(skip)


def _by_value(cap: Capture, word: int, data: bytes):
    if cap.kind in ("string", "bytes"):
        n = max(0, min(word, BY_STR_BYTES))
        text = data[:n].decode("utf-8", "backslashreplace")
        return text + ("..." if word > BY_STR_BYTES else "")
    if cap.kind == "int":
        return word - (1 << 64) if word >> 63 else word
    if cap.kind == "bool":
        return bool(word)
    return word
