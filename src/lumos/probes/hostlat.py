"""Host-name lookups and their latency (BCC's gethostlatency), paired in the kernel: one
record per completed lookup, with the host name read at the entry.

A lookup in progress is kept under (id, pid << 32 | resolver), id = the thread for C
code (its stack does not move), the goroutine for Go code (goroutines move between
threads); with it its frame: SP at entry for C, g.stack.hi - SP for Go (which survives
stack moves, as in probes/latency.py). A return pairs only with the start of its own
frame, so a resolver function called inside another (Go's goLookupHostOrder calls
goLookupIPCNAMEOrder; a C library may call its own entry points) is one lookup: an
entry deeper than the lookup in progress is ignored, one at the same depth or above
replaces a start whose return never came (a panic, a longjmp).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R7,
    R8,
    R9,
    Add,
    Asm,
    Helper,
    Jeq,
    Jgt,
    Jle,
    Jlt,
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
from lumos.bpf.maps import create_map, hash_spec
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.attach import Attached, attach_sites
from lumos.probes.capture import R_SP, WordLoc, emit_read_word, load_sp
from lumos.probes.channel import EventChannel
from lumos.probes.eventprog import GoroutineSource, emit_goroutine, frame_slot, goid_slot
from lumos.probes.probesite import ProbeSite
from lumos.probes.record import Field, Record

HOST_MAX = 128          # bytes of the host name kept (BCC: 80)
RESOLVER_C, RESOLVER_GO = 0, 1

RECORD = Record("hostlat_event", [
    Field("ts_ns", "u64", doc="bpf_ktime_get_ns() at the return"),
    Field("lat_ns", "u64", doc="return - entry"),
    Field("goid", "u64", doc="g.goid (Go), 0 for C"),
    Field("pid", "u32"), Field("tid", "u32", doc="the thread that returned"),
    Field("func", "u32", doc="index of the resolver function"),
    Field("resolver", "u32", doc="0 C library, 1 Go's own resolver"),
    Field("host_len", "s64", doc="C: bytes copied with the NUL or -errno; Go: len(name)"),
    Field("comm", "bytes", 16, doc="bpf_get_current_comm()"),
    Field("host", "bytes", HOST_MAX),
])

# the start of a lookup in progress (map value; built on the stack at entry)
START = Record("hostlat_start", [
    Field("ts_ns", "u64"), Field("frame", "u64", doc="C: SP at entry; Go: stack.hi - SP"),
    Field("func", "u32"), Field("resolver", "u32"), Field("host_len", "s64"),
    Field("host", "bytes", HOST_MAX),
])


@dataclass(frozen=True)
class HostVariant:
    kind: str                                # "entry" | "exit"
    goroutine: GoroutineSource | None = None  # None: C code
    host: tuple[WordLoc, ...] = ()           # entry: C (char *,), Go (ptr, len)
    sp_delta: int = 0                        # SP at the site + sp_delta = SP at entry


class HostLatency:
    def __init__(self, variants: list[HostVariant], channel: EventChannel,
                 tgid: int | None = None, max_inflight: int = 16384):
        self.variants = variants
        self.channel = channel
        self.tgid = tgid
        self.max_inflight = max_inflight

    @property
    def record_size(self) -> int:
        return RECORD.size

    def attach(self, sites: list[ProbeSite], stack: ExitStack) -> Attached:
        self.starts = stack.enter_context(create_map(hash_spec(
            "lumos_lookups", 16, START.size, 2 * self.max_inflight, lru=True)))
        return attach_sites(self.build, sites, self.tgid, stack)

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        codegen.save_ctx(a)
        codegen.tgid_filter(a, self.tgid, "out")
        codegen.load_cookie(a, "out")
        a.comment("HostLatency: R0 = variant (cookie bits 40-63), R7 = function (bits 0-31)")
        a.emit(Mov.reg(R0, R7), Rsh.imm(R0, 40), Mov.reg32(R7, R7))
        load_sp(a)
        labels = [f"variant.{i}" for i in range(len(self.variants))]
        codegen.dispatch(a, R0, labels)
        for label, v in zip(labels, self.variants, strict=True):
            a.label(label)
            self._emit_identity(a, v)
            if v.kind == "entry":
                self._emit_host(a, v)
                a.emit(ja("entry.tail"))
            else:
                a.emit(ja("exit.tail"))
        a.label("entry.tail")
        self._emit_entry_tail(a)
        a.label("exit.tail")
        self._emit_exit_tail(a)
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        about = "\n".join([
            "stack slots:", a.frame.layout(), "maps:",
            f"  lumos_lookups: LRU hash, {2 * self.max_inflight} entries: (thread or "
            f"goroutine, pid << 32 | resolver) -> start:", START.c_struct(),
            f"  {self.channel.name}: ring buffer, one record per lookup:", RECORD.c_struct()])
        return ProgramSpec("lumos_hostlat", BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type, about=about)

    def _emit_identity(self, a: Asm, v: HostVariant) -> None:
        """FP[key] = (tid or goid, pid << 32 | resolver); FP[frame] = this call's frame."""
        key = a.frame.slot("lookup_key", 16)
        goid, frame = goid_slot(a), frame_slot(a)
        if v.goroutine is not None:
            emit_goroutine(a, v.goroutine, v.sp_delta)
            a.comment("HostLatency: key = (goid, pid << 32 | 1)")
            a.emit(ldx(8, R1, FP, goid), stx(8, FP, key, R1),
                   call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), Lsh.imm(R0, 32),
                   Or.imm(R0, RESOLVER_GO), stx(8, FP, key + 8, R0))
            return
        popped = "; a uretprobe: the return address is popped" if v.sp_delta else ""
        a.comment(f"HostLatency: C: key = (tid, pid << 32), frame = SP{v.sp_delta:+d} "
                  f"(SP at entry{popped})")
        a.emit(st(8, FP, goid, 0), Mov.reg(R1, R_SP), Add.imm(R1, v.sp_delta),
               stx(8, FP, frame, R1), call(Helper.get_current_pid_tgid),
               Mov.reg(R1, R0), Mov.reg32(R1, R1), stx(8, FP, key, R1), Rsh.imm(R0, 32),
               Lsh.imm(R0, 32), stx(8, FP, key + 8, R0))

    def _emit_host(self, a: Asm, v: HostVariant) -> None:
        """The start on the stack: zeroed, then frame, function, resolver and the host."""
        val = a.frame.slot("lookup_start", START.size)
        off = START.offset
        a.comment("HostLatency: start = {0}, frame, function, resolver")
        a.emit(*(st(8, FP, val + i, 0) for i in range(0, START.size, 8)),
               ldx(8, R1, FP, frame_slot(a)), stx(8, FP, val + off("frame"), R1),
               stx(4, FP, val + off("func"), R7))
        host = val + off("host")
        if v.goroutine is None:
            a.comment(f"HostLatency: host = the C string at {v.host[0].describe()}, at most "
                      f"{HOST_MAX} bytes with its NUL")
            a.emit(st(4, FP, val + off("resolver"), RESOLVER_C))
            emit_read_word(a, v.host[0], FP, val + off("ts_ns"))   # the pointer, for now
            a.emit(Mov.reg(R1, FP), Add.imm(R1, host), Mov.imm(R2, HOST_MAX),
                   ldx(8, R3, FP, val + off("ts_ns")), call(Helper.probe_read_user_str),
                   stx(8, FP, val + off("host_len"), R0))
            return
        words = a.frame.slot("host_words", 16)
        a.comment(f"HostLatency: host = the Go string ({v.host[0].describe()}, "
                  f"{v.host[1].describe()}): min(len, {HOST_MAX}) bytes")
        a.emit(st(4, FP, val + off("resolver"), RESOLVER_GO))
        emit_read_word(a, v.host[0], FP, words)
        emit_read_word(a, v.host[1], FP, words + 8)
        clamped = a.fresh("clamped")
        a.emit(ldx(8, R2, FP, words + 8), stx(8, FP, val + off("host_len"), R2),
               Jle.imm(R2, HOST_MAX, clamped), Mov.imm(R2, HOST_MAX))
        a.label(clamped)
        a.emit(Mov.reg(R1, FP), Add.imm(R1, host), ldx(8, R3, FP, words),
               call(Helper.probe_read_user))

    def _emit_entry_tail(self, a: Asm) -> None:
        key, val = a.frame["lookup_key"], a.frame["lookup_start"]
        off = START.offset
        store, go = a.fresh("store"), a.fresh("go")
        a.comment("HostLatency: a lookup already in progress in a frame above this one "
                  "(Go: smaller stack.hi - SP; C: higher SP) is the outer one: ignore "
                  "this entry; otherwise this one starts (replacing a stale start)")
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, store),
               ldx(8, R1, R0, off("frame")), ldx(8, R2, FP, val + off("frame")),
               ldx(4, R3, FP, val + off("resolver")), Jne.imm(R3, RESOLVER_C, go),
               Jlt.reg(R2, R1, "out"), ja(store))
        a.label(go)
        a.emit(Jgt.reg(R2, R1, "out"))
        a.label(store)
        a.comment("HostLatency: starts[key] = start (ts now)")
        a.emit(call(Helper.ktime_get_ns), stx(8, FP, val + off("ts_ns"), R0),
               ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
               Mov.reg(R3, FP), Add.imm(R3, val), Mov.imm(R4, 0),
               call(Helper.map_update_elem), ja("out"))

    def _emit_exit_tail(self, a: Asm) -> None:
        key = a.frame["lookup_key"]
        so, ro = START.offset, RECORD.offset
        a.comment("HostLatency: the start of this frame's lookup (R9); none, or another "
                  "frame's (an inner call returning): nothing to report")
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"), Mov.reg(R9, R0),
               ldx(8, R1, R9, so("frame")), ldx(8, R2, FP, frame_slot(a)),
               Jne.reg(R1, R2, "out"))
        self.channel.emit_reserve(a, RECORD.size, R8, "exit.forget")
        a.comment("HostLatency: the record: times, ids, the start's host; then forget it")
        a.emit(call(Helper.ktime_get_ns), stx(8, R8, ro("ts_ns"), R0),
               ldx(8, R1, R9, so("ts_ns")), Sub.reg(R0, R1), stx(8, R8, ro("lat_ns"), R0),
               ldx(8, R1, FP, goid_slot(a)), stx(8, R8, ro("goid"), R1),
               call(Helper.get_current_pid_tgid), stx(4, R8, ro("tid"), R0),
               Rsh.imm(R0, 32), stx(4, R8, ro("pid"), R0),
               ldx(4, R1, R9, so("func")), stx(4, R8, ro("func"), R1),
               ldx(4, R1, R9, so("resolver")), stx(4, R8, ro("resolver"), R1),
               ldx(8, R1, R9, so("host_len")), stx(8, R8, ro("host_len"), R1))
        for i in range(0, HOST_MAX, 8):
            a.emit(ldx(8, R1, R9, so("host") + i), stx(8, R8, ro("host") + i, R1))
        a.emit(Mov.reg(R1, R8), Add.imm(R1, ro("comm")), Mov.imm(R2, 16),
               call(Helper.get_current_comm))
        self.channel.emit_submit(a, R8)
        a.label("exit.forget")
        a.emit(ld_map_fd(R1, self.starts), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_delete_elem), ja("out"))

