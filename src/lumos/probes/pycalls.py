"""Python calls per method, counted in the kernel (BCC's ucalls): no event per call.

Sites are uflow's (binary/cpython.py: the eval loop's entry, the labels where a frame
starts and ends), as FrameSite variants that say where the frame pointer is. Method
identity is the code object (frame->f_code) with the addresses of its co_filename and
co_qualname objects, which the kernel can key a map by (the code address alone is not
enough: a freed code object's memory is reused by the next one, measured here: Debian
3.11's sitecustomize <module> and a method defined later had the same address):

- every exit adds (1, duration, timed) to stats[key], a per-CPU hash: one call ends
  at each exit, whether or not its entry was seen;
- with latency, every entry stores now under (tid, frame) in an LRU hash and the exit
  takes it back: duration = now - start (a frame's address is unique while it lives;
  an entry seen twice for one frame, as where the C entry falls through start_frame,
  overwrites its start a few instructions later). Without latency no entry site is
  attached at all: half the probes;
- CPython 3.10 runs each Python call as one C call of the eval loop, and its exits are
  the loop's RET instructions, where DWARF does not say where the frame is: there the
  start is keyed by (tid, SP), equal at the entry and at a RET, and holds the code
  object read at the entry (entry sites are then attached without -L too);
- the first time a key enters stats, the exit sends one record to the ring:
  the code's co_filename and co_qualname (probes/pyframe.py's reads). Names cross to
  user space once per method, not once per call.

Measured here (bench/toolbox.py, f() called flat out on python3.11): this program kept
every call at 660k calls/s; uflow's stream of every entry and exit, decoded in Python
per record, lost records from 100k calls/s.
"""

from __future__ import annotations

import struct
from contextlib import ExitStack

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
    R9,
    Add,
    Asm,
    Helper,
    Jeq,
    Jne,
    Mov,
    Rsh,
    Sub,
    atomic_add,
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
from lumos.probes.channel import EventChannel
from lumos.probes.codegen import PT_REGS, emit_counter_add
from lumos.probes.probesite import ProbeSite
from lumos.probes.pyframe import KIND_ENTRY, FrameSite, PyFrameEvents
from lumos.probes.record import Field

KIND_NAME = 2                       # pyframe_event.kind of a name record
STATS_KEY = struct.Struct("<QQQ")    # code, its co_filename, its co_qualname
STATS_VALUE = struct.Struct("<QQQ")  # calls, total ns, calls timed (entry seen)
LRU_HEADROOM = 2                    # as probes/latency.py: the LRU evicts early


class PyCallStats:
    """Calls (and with latency, time) per code object. attach() puts all on a stack."""

    def __init__(self, variants: list[FrameSite], channel: EventChannel, layout,
                 tgid: int | None, latency: bool, max_methods: int = 16384,
                 max_inflight: int = 65536):
        self.variants = variants
        self.channel = channel
        self.tgid = tgid
        self.latency = latency
        self.max_methods = max_methods
        self.max_inflight = max_inflight
        self.names = PyFrameEvents(variants, channel, layout, tgid)  # name record + reads
        self.names.record = self.names.record.extend("pycalls_name", [
            Field("file_ptr", "u64", doc="code->co_filename (part of the stats key)"),
            Field("name_ptr", "u64", doc="code->co_qualname (3.10: co_name)")])
        self.record = self.names.record
        self.attached: Attached | None = None
        # exits that do not know their frame (3.10's RETs): pair by SP instead
        self.by_sp = any(v.kind != KIND_ENTRY and v.where == "none" for v in variants)

    @property
    def record_size(self) -> int:
        return self.record.size

    def wanted(self, site: ProbeSite) -> bool:
        """Entry sites only matter for latency, or to learn the code where exits cannot."""
        return self.latency or self.by_sp or self.variants[site.variant].kind != KIND_ENTRY

    def attach(self, sites: list[ProbeSite], stack: ExitStack) -> PyCallStats:
        self.stats = stack.enter_context(create_map(hash_spec(
            "lumos_pycalls", STATS_KEY.size, STATS_VALUE.size, self.max_methods,
            percpu=True)))
        self.starts = stack.enter_context(create_map(hash_spec(
            "lumos_pystarts", 16, 16, LRU_HEADROOM * self.max_inflight, lru=True)))
        self.counters = stack.enter_context(create_map(array_spec(
            "lumos_pycalls_counters", 8, 2, percpu=True)))  # no room; no entry (by SP)
        self.attached = attach_sites(self.build, [s for s in sites if self.wanted(s)],
                                     self.tgid, stack)
        return self

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        a.frame = self.names.frame  # the name reads' slots (code_span) live here too
        codegen.save_ctx(a)
        codegen.tgid_filter(a, self.tgid, "out")
        a.comment("PyCallStats: R7 = cookie (site index | variant << 40)")
        codegen.load_cookie(a, "out", check_flags=False)
        a.emit(Mov.reg(R0, R7), Rsh.imm(R0, 40), Mov.reg32(R7, R7))
        labels = [f"variant.{i}" for i in range(len(self.variants))]
        codegen.dispatch(a, R0, labels)
        for label, v in zip(labels, self.variants, strict=True):
            a.label(label)
            self._emit_frame(a, v)
        if self.latency or self.by_sp:
            a.label("entry")
            self._emit_entry(a)
        a.label("exit")
        self._emit_exit(a)
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec("lumos_pycalls", BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type, about=self._about(a))

    def _about(self, a: Asm) -> str:
        return "\n".join([
            "stack slots:", a.frame.layout(), "maps:",
            f"  lumos_pycalls: per-CPU hash, {self.max_methods} entries: (code, "
            f"co_filename, co_qualname) -> {STATS_VALUE.format} (calls, total ns, timed)",
            f"  lumos_pystarts: LRU hash, {LRU_HEADROOM * self.max_inflight} entries: "
            f"(tid, {'SP' if self.by_sp else 'frame'}) -> (entry ns, code object)"
            + ("" if self.latency or self.by_sp else " (unused: no -L)"),
            "  lumos_pycalls_counters: per-CPU u64 array: [0] calls with no room in "
            "lumos_pycalls, [1] returns whose entry was not seen (keyed by SP)",
            f"name record ({self.record_size} bytes, once per code object, kind "
            f"{KIND_NAME}):", self.record.c_struct()])

    def _emit_frame(self, a: Asm, v: FrameSite) -> None:
        """FP[pyframe] = the frame pointer at this site, then on to entry or exit."""
        slot = a.frame.slot("pyframe", 8)
        if v.kind != KIND_ENTRY and self.by_sp:
            a.comment("PyCallStats: exit paired by SP (the frame is not known here)")
            a.emit(st(8, FP, slot, 0), ja("exit"))
            return
        if v.where == "reg":
            a.comment(f"PyCallStats: frame = regs->{v.reg} (DWARF location of 'frame')")
            a.emit(ldx(8, R1, R6, PT_REGS[v.reg]), stx(8, FP, slot, R1))
        elif v.where == "mem":
            a.comment(f"PyCallStats: frame = *(regs->{v.reg} {v.offset:+#x}) (spilled; "
                      f"DWARF + CFI)")
            a.emit(st(8, FP, slot, 0), Mov.reg(R1, FP), Add.imm(R1, slot), Mov.imm(R2, 8),
                   ldx(8, R3, R6, PT_REGS[v.reg]), Add.imm(R3, v.offset),
                   call(Helper.probe_read_user))
        else:
            a.comment("PyCallStats: the frame is not known at this entry: nothing to do")
            a.emit(ja("out"))
            return
        a.emit(ldx(8, R1, FP, slot), Jeq.imm(R1, 0, "out"))
        if v.kind == KIND_ENTRY:
            a.emit(ja("entry" if self.latency or self.by_sp else "out"))
        else:
            a.emit(ja("exit"))

    def _emit_code(self, a: Asm, code: int) -> None:
        """FP[code] = frame->f_code; to out when 0."""
        L = self.names.layout
        a.comment(f"PyCallStats: code = frame->f_code (+{L.frame_code:#x}, CPython layout)")
        a.emit(st(8, FP, code, 0), Mov.reg(R1, FP), Add.imm(R1, code), Mov.imm(R2, 8),
               ldx(8, R3, FP, a.frame["pyframe"]), Add.imm(R3, L.frame_code),
               call(Helper.probe_read_user), ldx(8, R1, FP, code), Jeq.imm(R1, 0, "out"))

    def _start_key(self, a: Asm) -> int:
        key = a.frame.slot("start_key", 16)
        if self.by_sp:
            a.comment("PyCallStats: start key = (tid, SP): the same at entry and at a RET")
            a.emit(call(Helper.get_current_pid_tgid), Mov.reg32(R0, R0), stx(8, FP, key, R0),
                   ldx(8, R1, R6, PT_REGS["sp"]), stx(8, FP, key + 8, R1))
            return key
        a.comment("PyCallStats: start key = (tid, frame)")
        a.emit(call(Helper.get_current_pid_tgid), Mov.reg32(R0, R0), stx(8, FP, key, R0),
               ldx(8, R1, FP, a.frame["pyframe"]), stx(8, FP, key + 8, R1))
        return key

    def _emit_entry(self, a: Asm) -> None:
        code = a.frame.slot("code", 8)
        start = a.frame.slot("start_value", 16)
        if self.by_sp:
            self._emit_code(a, code)
        key = self._start_key(a)
        a.comment("PyCallStats: entry: starts[key] = (now, code)")
        a.emit(ldx(8, R1, FP, code) if self.by_sp else Mov.imm(R1, 0),
               stx(8, FP, start + 8, R1), call(Helper.ktime_get_ns), stx(8, FP, start, R0),
               ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
               Mov.reg(R3, FP), Add.imm(R3, start), Mov.imm(R4, 0),
               call(Helper.map_update_elem), ja("out"))

    def _emit_exit(self, a: Asm) -> None:
        code = a.frame.slot("code", 8)
        a.emit(Mov.imm(R9, 0), Mov.imm(R8, 0))
        if not self.by_sp:
            self._emit_code(a, code)
        if self.latency or self.by_sp:
            key = self._start_key(a)
            untimed = a.fresh("untimed")
            a.comment("PyCallStats: R9 = now - starts[key], R8 = 1 (timed); the start is "
                      "taken back" + ("; the code object comes from it" if self.by_sp else ""))
            a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
                   call(Helper.map_lookup_elem), Jeq.imm(R0, 0, untimed))
            if self.by_sp:
                a.emit(ldx(8, R1, R0, 8), stx(8, FP, code, R1))
            a.emit(ldx(8, R9, R0, 0), call(Helper.ktime_get_ns), Sub.reg(R0, R9),
                   Mov.reg(R9, R0), Mov.imm(R8, 1), ld_map_fd(R1, self.starts),
                   Mov.reg(R2, FP), Add.imm(R2, key), call(Helper.map_delete_elem))
            if self.by_sp:
                timed = a.fresh("timed")
                a.emit(ja(timed))
                a.label(untimed)
                emit_counter_add(a, self.counters, 1, "out")
                a.label(timed)
            else:
                a.label(untimed)
        self._emit_stats_add(a, code)

    def _emit_stats_key(self, a: Asm, code: int) -> int:
        """FP[stats_key] = (code, co_filename, co_qualname): one read of the code's span."""
        L, names = self.names.layout, self.names
        key = a.frame.slot("stats_key", STATS_KEY.size)
        span = a.frame["code_span"]
        size = names._span()[1] - names.span_lo
        file_at = span + L.co_filename - names.span_lo
        name_at = span + (L.co_qualname or L.co_name) - names.span_lo
        a.comment(f"PyCallStats: stats key = (code, code->co_filename +{L.co_filename:#x}, "
                  f"code->co_qualname +{(L.co_qualname or L.co_name):#x}) from one read of "
                  f"code+{names.span_lo:#x}..+{names.span_lo + size:#x}")
        a.emit(Mov.reg(R1, FP), Add.imm(R1, span), Mov.imm(R2, size),
               ldx(8, R3, FP, code), Add.imm(R3, names.span_lo),
               call(Helper.probe_read_user), Jne.imm(R0, 0, "out"),
               ldx(8, R1, FP, code), stx(8, FP, key, R1),
               ldx(8, R1, FP, file_at), stx(8, FP, key + 8, R1),
               ldx(8, R1, FP, name_at), stx(8, FP, key + 16, R1))
        return key

    def _emit_stats_add(self, a: Asm, code: int) -> None:
        """stats[key] += (1, R9, R8); a new key also sends its names."""
        key = self._emit_stats_key(a, code)
        value = a.frame.slot("stats_value", STATS_VALUE.size)
        add, insert = a.fresh("stats.add"), a.fresh("stats.insert")
        a.comment("PyCallStats: stats[key] += (1, duration, timed)")
        a.emit(ld_map_fd(R1, self.stats), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, insert))
        a.label(add)
        # atomic: a uprobe program can be preempted (migration, not preemption, is off)
        a.emit(Mov.imm(R1, 1), atomic_add(8, R0, 0, R1), atomic_add(8, R0, 8, R9),
               atomic_add(8, R0, 16, R8), ja("out"))
        a.label(insert)
        a.comment("PyCallStats: a key not seen yet: insert (1, duration, timed); the CPU "
                  "whose insert wins sends the names; else add to the winner's")
        a.emit(st(8, FP, value, 1), stx(8, FP, value + 8, R9), stx(8, FP, value + 16, R8),
               ld_map_fd(R1, self.stats), Mov.reg(R2, FP), Add.imm(R2, key),
               Mov.reg(R3, FP), Add.imm(R3, value), Mov.imm(R4, BPF_NOEXIST),
               call(Helper.map_update_elem), Jeq.imm(R0, 0, "names"),
               ld_map_fd(R1, self.stats), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jne.imm(R0, 0, add))
        emit_counter_add(a, self.counters, 0, "out")
        a.label("names")
        self._emit_names(a)

    def _emit_names(self, a: Asm) -> None:
        rec = self.record
        off = rec.offset
        self.channel.emit_reserve(a, self.record_size, R8, "out")
        a.comment("PyCallStats: name record: header, kind 2, then the code's names")
        a.emit(call(Helper.ktime_get_ns), stx(8, R8, off("ts_ns"), R0),
               call(Helper.get_current_pid_tgid), stx(4, R8, off("tid"), R0),
               Rsh.imm(R0, 32), stx(4, R8, off("pid"), R0), stx(4, R8, off("site"), R7),
               call(Helper.get_smp_processor_id), stx(4, R8, off("cpu"), R0),
               st(4, R8, off("kind"), KIND_NAME), ldx(8, R1, FP, a.frame["pyframe"]),
               stx(8, R8, off("frame"), R1), ldx(8, R1, FP, a.frame["code"]),
               stx(8, R8, off("code"), R1), ldx(8, R1, FP, a.frame["stats_key"] + 8),
               stx(8, R8, off("file_ptr"), R1), ldx(8, R1, FP, a.frame["stats_key"] + 16),
               stx(8, R8, off("name_ptr"), R1),
               st(4, R8, off("lineno"), 0), st(8, R8, off("file"), 0),
               st(8, R8, off("file") + 16, 0), st(8, R8, off("name"), 0),
               st(8, R8, off("name") + 16, 0))
        done = a.fresh("names.done")
        self.names.emit_names(a, done, from_code=True)
        a.label(done)
        self.channel.emit_submit(a, R8)
        a.emit(ja("out"))

    def read(self) -> dict[tuple[int, int, int], tuple[int, int, int]]:
        """{(code, co_filename, co_qualname addresses): (calls, total ns, calls timed)},
        summed over CPUs."""
        out: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        for key, values in self.stats.items_percpu():
            n = t = timed = 0
            for v in values:
                a, b, c = STATS_VALUE.unpack(v)
                n, t, timed = n + a, t + b, timed + c
            out[STATS_KEY.unpack(key)] = (n, t, timed)
        return out

    def clear(self) -> None:
        """Forget the counts for the next interval (a code object seen again sends its
        names again)."""
        self.stats.clear()

    @property
    def overflowed(self) -> int:
        return sum(struct.unpack("<Q", v)[0]
                   for v in self.counters.lookup_percpu(struct.pack("<I", 0)) or [])
