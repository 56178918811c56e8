"""Function latency as log2 histograms, computed in the kernel (no event per call).

Entry sites store the start time under the call's frame key; exit sites (every RET
instruction: never a uretprobe on Go code) look it up, compute the duration and bump
a histogram bucket. Frame key: (goid, process id << 32 | g.stack.hi - SP) for Go (stable across
stack moves and goroutine migration), (tid, SP) for C, whose stacks do not move. Recursion
needs nothing more: each live frame has its own key. A call whose RET never runs (a
panic unwinding through it) leaves a stale start, overwritten by the next call at that
depth or evicted by the LRU map, and never paired with another function's RET: the
exit checks the function id.

Built once per shape: functions that differ only in their id share one entry block and
one exit block. The cookie carries the function id (bits 0-31) and the block (bits 40-63:
shape << 1 | is_exit), so the program's size depends on how many kinds of functions
there are (goroutine access, --by capture, SP adjustment), not on how many: 'runtime.*'
(1,100+ functions) loads in a few dozen instructions. With --by, the value of one
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
from lumos.bpf.sys import BPF_F_NO_COMMON_LRU, BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.attach import Attached, attach_sites
from lumos.probes.capture import Capture, emit_read_word, load_sp
from lumos.probes.codegen import emit_counter_add, emit_hist_add, emit_log2
from lumos.probes.eventprog import GoroutineSource, emit_call_key, emit_goroutine
from lumos.probes.probesite import ProbeSite

BY_STR_BYTES = 16
START_VALUE = struct.Struct(f"<QIIQ{BY_STR_BYTES}s")  # ts, func, pad, by word, by bytes
HIST_KEY = struct.Struct(f"<IIQ{BY_STR_BYTES}s")      # func, slot, by word, by bytes
HIST_KEY_SIZE = HIST_KEY.size + 8                     # padded: the verifier reads 8s
DEFAULT_MAX_KEYS = 16384                              # histogram buckets kept at once


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
                 max_inflight: int = 65536, max_keys: int = DEFAULT_MAX_KEYS):
        self.functions = functions
        self.unit_ns = unit_ns
        self.tgid = tgid
        self.max_inflight = max_inflight
        self.max_keys = max_keys
        # shapes: what an entry / exit block depends on besides the function id
        self.entry_shapes: list[tuple] = []
        self.exit_shapes: list[tuple[GoroutineSource | None, int]] = []
        self.sites = ([self._tag(s, self._entry_shape(functions[s.func_index]), 0)
                       for s in entries]
                      + [self._tag(s, self._exit_shape(functions[s.func_index], s), 1)
                         for s in exits])
        self.attached: Attached | None = None

    def _entry_shape(self, fn: LatencyFunction) -> int:
        shape = (fn.goroutine, fn.by, fn.entry_sp_delta)
        if shape not in self.entry_shapes:
            self.entry_shapes.append(shape)
        return self.entry_shapes.index(shape)

    def _exit_shape(self, fn: LatencyFunction, site: ProbeSite) -> int:
        # at a RET, SP is back to its value at entry; at a uretprobe (C code) the return
        # address has been popped: SP is 8 above
        shape = (fn.goroutine, -8 if site.retprobe else 0)
        if shape not in self.exit_shapes:
            self.exit_shapes.append(shape)
        return self.exit_shapes.index(shape)

    @staticmethod
    def _tag(site: ProbeSite, shape: int, is_exit: int) -> ProbeSite:
        return replace(site, variant=shape << 1 | is_exit, ident=site.func_index)

    def attach(self, stack: ExitStack, mode: str | None = None) -> LatencyProbe:
        self.starts = stack.enter_context(create_map(hash_spec(
            "lumos_starts", 16, START_VALUE.size, LRU_HEADROOM * self.max_inflight,
            lru=True, flags=BPF_F_NO_COMMON_LRU)))
        self.counters = stack.enter_context(create_map(array_spec(
            "lumos_latency_counters", 8, 2, percpu=True)))  # unmatched returns, overflow
        self.hist = stack.enter_context(create_map(hash_spec(
            "lumos_hist", HIST_KEY_SIZE, 16, self.max_keys, percpu=True)))  # count, sum
        self.attached = attach_sites(self._build, self.sites, self.tgid, stack, mode)
        return self

    def _build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        key = a.frame.slot("start_key", 16)
        codegen.prologue(a, self.tgid, "out")
        codegen.load_cookie(a, "out")
        a.comment("LatencyProbe: R0 = block (cookie bits 40-63: shape << 1 | is_exit), "
                  "R7 = function id (bits 0-31)")
        a.emit(Mov.reg(R0, R7), Rsh.imm(R0, 40), Mov.reg32(R7, R7))
        load_sp(a)
        a.emit(Mov.reg(R1, R0), And.imm(R1, 1), Rsh.imm(R0, 1), Jne.imm(R1, 0, "exit"))
        labels = [f"entry.{i}" for i in range(len(self.entry_shapes))]
        codegen.dispatch(a, R0, labels)
        for label, (goroutine, by, sp_delta) in zip(labels, self.entry_shapes, strict=True):
            a.label(label)
            self._emit_entry(a, key, goroutine, by, sp_delta)
        a.label("exit")
        labels = [f"exit.{i}" for i in range(len(self.exit_shapes))]
        codegen.dispatch(a, R0, labels)
        for label, (goroutine, sp_delta) in zip(labels, self.exit_shapes, strict=True):
            a.label(label)
            a.comment(f"LatencyProbe: exit block ({_shape_text(goroutine)}); "
                      + ("a uretprobe: SP is 8 above its value at entry" if sp_delta else
                         "at a RET, SP is back to its value at entry"))
            self._emit_key(a, key, goroutine, sp_delta)
            a.emit(ja("exit.tail"))
        a.label("exit.tail")
        self._emit_exit(a, key)
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec("lumos_latency", BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type, about=self._about(a))

    def _about(self, a: Asm) -> str:
        names = {0: "returns with no recorded entry", 1: "calls that found no room in "
                 "lumos_hist"}
        return "\n".join([
            "stack slots:", a.frame.layout(), "maps:",
            f"  lumos_starts: LRU hash, {LRU_HEADROOM * self.max_inflight} entries: call "
            f"key (16 bytes) -> start {START_VALUE.format} (ts, function, pad, --by word, "
            f"--by bytes)",
            f"  lumos_hist: per-CPU hash, {self.max_keys} entries: key {HIST_KEY.format} "
            f"(function, log2 slot, --by word, --by bytes) + 8 pad -> (count, sum)",
            "  lumos_latency_counters: per-CPU u64 array: "
            + "; ".join(f"[{k}] {v}" for k, v in names.items()),
            f"{len(self.entry_shapes)} entry shape(s), {len(self.exit_shapes)} exit shape(s) "
            f"for {len(self.functions)} function(s)"])

    def _emit_key(self, a: Asm, key: int, goroutine: GoroutineSource | None,
                  sp_delta: int) -> None:
        """FP+key = (goid, pid << 32 | frame) or (tid, SP at entry)."""
        if goroutine is not None:
            emit_goroutine(a, goroutine, sp_delta)
        emit_call_key(a, key, goroutine is not None, sp_delta)

    def _emit_entry(self, a: Asm, key: int, goroutine, by: Capture | None,
                    sp_delta: int) -> None:
        value = a.frame.slot("start_value", START_VALUE.size)
        a.comment(f"LatencyProbe: entry block ({_shape_text(goroutine)}"
                  f"{', --by ' + by.name if by else ''}{f', SP{sp_delta:+d}' if sp_delta else ''})")
        self._emit_key(a, key, goroutine, sp_delta)
        a.emit(*(st(8, FP, value + i, 0) for i in range(0, START_VALUE.size, 8)))
        if by is not None:
            _emit_by(a, by, value + 16)
        a.comment("LatencyProbe: starts[key] = (now, function id)")
        a.emit(stx(4, FP, value + 8, R7), call(Helper.ktime_get_ns), stx(8, FP, value, R0),
               ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
               Mov.reg(R3, FP), Add.imm(R3, value), Mov.imm(R4, 0),
               call(Helper.map_update_elem), ja("out"))

    def _emit_exit(self, a: Asm, key: int) -> None:
        """With the key at FP+key and the function in R7: pair with the entry, count."""
        hkey = a.frame.slot("hist_key", HIST_KEY_SIZE)
        value = a.frame.slot("start_value", START_VALUE.size)
        a.comment("LatencyProbe: the start of this call; another function's at this frame "
                  "is stale (a panic skipped its RET)")
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "unmatched"),
               ldx(4, R1, R0, 8), Jne.reg(R1, R7, "stale"))
        a.comment("LatencyProbe: hist key = (function, slot, --by value from the start)")
        a.emit(stx(4, FP, hkey, R1))
        for i in range(0, 24, 8):
            a.emit(ldx(8, R1, R0, 16 + i), stx(8, FP, hkey + 8 + i, R1))
        a.emit(st(8, FP, hkey + 32, 0), ldx(8, R3, R0, 0), stx(8, FP, value, R3),
               call(Helper.ktime_get_ns), ldx(8, R3, FP, value), Sub.reg(R0, R3))
        if self.unit_ns > 1:
            a.comment(f"LatencyProbe: duration in the unit ({self.unit_ns} ns)")
            a.emit(Div.imm(R0, self.unit_ns))
        a.emit(Mov.reg(R8, R0))  # the duration, kept across calls for the sum
        emit_log2(a, R0, R1)
        a.emit(stx(4, FP, hkey + 4, R1))
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_delete_elem))
        emit_hist_add(a, self.hist, hkey, R8, value, "out", "overflow")
        a.label("overflow")
        emit_counter_add(a, self.counters, 1, "out")
        a.label("unmatched")  # entered before tracing began, or its start was evicted
        emit_counter_add(a, self.counters, 0, "out")
        a.label("stale")
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
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

    def _counter(self, index: int) -> int:
        return sum(struct.unpack("<Q", v)[0]
                   for v in self.counters.lookup_percpu(struct.pack("<I", index)) or [])

    @property
    def returns_unmatched(self) -> int:
        """RETs with no recorded entry: calls begun before tracing, or starts evicted."""
        return self._counter(0)

    @property
    def overflowed(self) -> int:
        """Calls timed but not counted: every histogram key was taken (--max-keys)."""
        return self._counter(1)

    @property
    def inflight(self) -> int:
        return len(self.starts)


def _shape_text(goroutine: GoroutineSource | None) -> str:
    if goroutine is None:
        return "C: keyed by thread and SP"
    return f"Go, g in {goroutine.reg.upper()}" if goroutine.reg else "Go, g from TLS"


def _emit_by(a: Asm, cap: Capture, dst: int) -> None:
    """FP+dst = the --by value: an integer (sign-extended) or a string's len + prefix."""
    a.comment(f"LatencyProbe: --by {cap.name} ({cap.type_name or cap.kind})")
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
