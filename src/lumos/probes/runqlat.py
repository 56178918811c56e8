"""Run-queue latency: how long runnable tasks wait for a CPU, as log2 histograms built in
the kernel (BCC's runqlat.py, libbpf-tools' runqlat.bpf.c).

A task becomes runnable at sched_wakeup / sched_wakeup_new, or at sched_switch when it
is switched out still runnable (preempted); its thread id and the time go into
lumos_runq_start. When sched_switch switches it in, the wait is added to its histogram
and the start is deleted. Nothing crosses to user space per event.

Raw tracepoints, because their arguments are the task_structs themselves: the tgid
that -p and -P need is not in the tracefs records of sched_wakeup. The argument order
is checked against the kernel's btf_trace_* prototypes, task_struct offsets come from
vmlinux BTF. "Still runnable" is preempt || prev->__state == TASK_RUNNING: BCC reads the
state only, which misses a task preempted right after it set itself sleeping (it stays
on the run queue) and counts its wait from its later wake-up instead.
"""

from __future__ import annotations

import struct
from contextlib import ExitStack
from dataclasses import dataclass

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
    Div,
    Helper,
    Jeq,
    Jle,
    Jne,
    Jslt,
    Lsh,
    Mov,
    Sub,
    atomic_add,
    call,
    exit_,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.btf import load_vmlinux_btf, raw_tracepoint_args
from lumos.bpf.frame import Frame
from lumos.bpf.links import attach_raw_tracepoint
from lumos.bpf.maps import array_spec, create_map, hash_spec
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.sys import BPF_ANY, BPF_NOEXIST, BPF_PROG_TYPE_RAW_TRACEPOINT
from lumos.errors import NotSupportedError
from lumos.probes.codegen import emit_counter_add, emit_log2
from lumos.probes.ktask import TASK_COMM_LEN, TaskLayout, emit_read_kernel
from lumos.probes.record import Field, Record

MAX_SLOTS = 32            # log2 buckets (libbpf-tools: 26); slot 31 holds all above 2^31
MAX_TASKS = 16384         # runnable threads tracked at once (an LRU)
MAX_HISTS = 10240         # histograms (-P / -L: one per process or thread)
ALL = 0xFFFFFFFF          # the key of the one histogram without -P / -L

HIST = Record("runq_hist", [
    Field("sum", "u64", doc="total wait in the unit"),
    Field("comm", "bytes", TASK_COMM_LEN, doc="next->comm at the latest wait counted"),
    Field("slots", "bytes", 4 * MAX_SLOTS, doc="__u32 slots[32]: log2 buckets"),
])
OFF = HIST.offsets

# What the programs expect of ctx->args[] (the kernel's TP_PROTO, from BTF).
PROTOS = {
    "sched_wakeup": ["struct task_struct *"],
    "sched_wakeup_new": ["struct task_struct *"],
    "sched_switch": ["_Bool", "struct task_struct *", "struct task_struct *"],
}


def check_prototypes() -> None:
    btf = load_vmlinux_btf()
    for name, want in PROTOS.items():
        have = raw_tracepoint_args(btf, name)
        if have[:len(want)] != want:
            raise NotSupportedError(f"raw tracepoint {name}", "",
                                    f"its arguments are ({', '.join(have)}) here, lumos "
                                    f"expects ({', '.join(want)}, ...)")


@dataclass(frozen=True)
class RunqOptions:
    tgid: int | None = None
    per: str = ""            # "" | "process" | "thread"
    unit_ns: int = 1000      # usecs (1000) or msecs (1_000_000)


@dataclass
class RunqHist:
    comm: str
    slots: list[int]
    sum: int

    @property
    def count(self) -> int:
        return sum(self.slots)


class RunqProbe:
    def __init__(self, opts: RunqOptions):
        check_prototypes()
        self.opts = opts
        self.task = TaskLayout.load()

    def attach(self, stack: ExitStack) -> RunqProbe:
        self.start = stack.enter_context(create_map(
            hash_spec("lumos_runq_start", 4, 8, MAX_TASKS, lru=True)))
        self.hists = stack.enter_context(create_map(
            hash_spec("lumos_runq_hists", 4, HIST.size, MAX_HISTS)))
        self.full = stack.enter_context(create_map(array_spec("lumos_runq_full", 8, 1,
                                                              percpu=True)))
        wakeup = stack.enter_context(load_program(self._wakeup()))
        for name in ("sched_wakeup", "sched_wakeup_new"):
            stack.enter_context(attach_raw_tracepoint(wakeup, name))
        switch = stack.enter_context(load_program(self._switch()))
        stack.enter_context(attach_raw_tracepoint(switch, "sched_switch"))
        return self

    def read(self) -> dict[int, RunqHist]:
        out = {}
        for key, value in self.hists.items():
            (hkey,) = struct.unpack("<I", key)
            total, comm, slots = HIST.struct.unpack(value)
            out[hkey] = RunqHist(comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
                                 list(struct.unpack(f"<{MAX_SLOTS}I", slots)), total)
        return out

    def clear(self) -> None:
        self.hists.clear()

    @property
    def unrecorded(self) -> int:
        """Waits not counted because the histogram map was full (-L on a busy machine)."""
        return sum(struct.unpack("<Q", v)[0]
                   for v in self.full.lookup_percpu(struct.pack("<I", 0)) or [])

    # -- programs ------------------------------------------------------------------

    def _about(self, frame: Frame) -> str:
        return (f"stack:\n{frame.layout()}\nmaps: lumos_runq_start (tid -> ns, LRU "
                f"{MAX_TASKS}), lumos_runq_hists (key -> runq_hist), lumos_runq_full "
                f"(per-CPU count of waits the full map could not take)\n{HIST.c_struct()}")

    def _emit_enqueue(self, a: Asm, frame: Frame, task_reg, skip: str) -> None:
        """lumos_runq_start[task->pid] = now, for the traced processes (task in task_reg)."""
        t = self.task
        tid, tgid, ts = frame.slot("tid", 4), frame.slot("tgid", 4), frame.slot("ts", 8)
        a.comment(f"emit_enqueue: task->pid at +{t.pid:#x}, ->tgid at +{t.tgid:#x} "
                  f"(vmlinux BTF task_struct)")
        emit_read_kernel(a, FP, tid, 4, task_reg, t.pid)
        if self.opts.tgid is not None:
            emit_read_kernel(a, FP, tgid, 4, task_reg, t.tgid)
            a.comment(f"emit_enqueue: only process {self.opts.tgid} (-p)")
            a.emit(ldx(4, R1, FP, tgid), Jne.imm(R1, self.opts.tgid, skip))
        a.emit(ldx(4, R1, FP, tid), Jeq.imm(R1, 0, skip),
               call(Helper.ktime_get_ns), stx(8, FP, ts, R0),
               ld_map_fd(R1, self.start), Mov.reg(R2, FP), Add.imm(R2, tid),
               Mov.reg(R3, FP), Add.imm(R3, ts), Mov.imm(R4, BPF_ANY),
               call(Helper.map_update_elem))

    def _wakeup(self) -> ProgramSpec:
        a = Asm()
        frame = a.frame
        a.comment("emit_wakeup: ctx->args[0] is the task woken (btf_trace_sched_wakeup)")
        a.emit(ldx(8, R7, R1, 0))
        self._emit_enqueue(a, frame, R7, "out")
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec("lumos_runq_wake", BPF_PROG_TYPE_RAW_TRACEPOINT, tuple(a.finish()),
                           about=self._about(frame))

    def _switch(self) -> ProgramSpec:
        t, o = self.task, self.opts
        a = Asm()
        frame = a.frame
        state = frame.slot("prev_state", 4)
        a.emit(Mov.reg(R6, R1))
        a.comment(f"emit_switch: args (preempt, prev, next) (btf_trace_sched_switch); prev "
                  f"is still runnable if preempt or prev->{t.state_name} (+{t.state:#x}) is "
                  f"TASK_RUNNING")
        a.emit(ldx(8, R7, R6, 8), ldx(8, R1, R6, 0), Jne.imm(R1, 0, "enqueue"))
        emit_read_kernel(a, FP, state, 4, R7, t.state)
        a.emit(ldx(4, R1, FP, state), Jne.imm(R1, 0, "next"))
        a.label("enqueue")
        self._emit_enqueue(a, frame, R7, "next")
        a.label("next")
        ntid, hkey = frame.slot("next_tid", 4), frame.slot("hist_key", 4)
        zero = frame.slot("zero_hist", HIST.size)
        a.comment("emit_switch: next's wait = now - lumos_runq_start[next->pid]")
        a.emit(ldx(8, R7, R6, 16))
        emit_read_kernel(a, FP, ntid, 4, R7, t.pid)
        a.emit(ld_map_fd(R1, self.start), Mov.reg(R2, FP), Add.imm(R2, ntid),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"), ldx(8, R8, R0, 0),
               call(Helper.ktime_get_ns), Sub.reg(R0, R8), Mov.reg(R8, R0),
               Jslt.imm(R8, 0, "cleanup"))
        if o.per == "process":
            a.comment(f"emit_switch: one histogram per process: next->tgid (+{t.tgid:#x})")
            emit_read_kernel(a, FP, hkey, 4, R7, t.tgid)
        elif o.per == "thread":
            a.emit(ldx(4, R1, FP, ntid), stx(4, FP, hkey, R1))
        else:
            a.emit(st(4, FP, hkey, -1))
        a.comment("emit_switch: the histogram, created zeroed if new")
        a.emit(ld_map_fd(R1, self.hists), Mov.reg(R2, FP), Add.imm(R2, hkey),
               call(Helper.map_lookup_elem), Jne.imm(R0, 0, "have"))
        for off in range(0, HIST.size, 8):
            a.emit(st(8, FP, zero + off, 0))
        a.emit(ld_map_fd(R1, self.hists), Mov.reg(R2, FP), Add.imm(R2, hkey),
               Mov.reg(R3, FP), Add.imm(R3, zero), Mov.imm(R4, BPF_NOEXIST),
               call(Helper.map_update_elem),
               ld_map_fd(R1, self.hists), Mov.reg(R2, FP), Add.imm(R2, hkey),
               call(Helper.map_lookup_elem), Jne.imm(R0, 0, "have"))
        a.comment(f"emit_switch: lumos_runq_hists is full ({MAX_HISTS}): count the wait "
                  f"as not recorded")
        emit_counter_add(a, self.full, 0, "cleanup")
        a.label("have")
        a.comment(f"emit_switch: next->comm (+{t.comm:#x}), the latest one (exec renames)")
        a.emit(Mov.reg(R9, R0))
        emit_read_kernel(a, R9, OFF["comm"], TASK_COMM_LEN, R7, t.comm)
        a.comment(f"emit_switch: wait / {o.unit_ns} ns into the sum and its log2 slot "
                  f"(at most {MAX_SLOTS - 1})")
        a.emit(Div.imm(R8, o.unit_ns), atomic_add(8, R9, OFF["sum"], R8), Mov.reg(R0, R8))
        emit_log2(a, R0, R1)
        a.emit(Jle.imm(R1, MAX_SLOTS - 1, "slot"), Mov.imm(R1, MAX_SLOTS - 1))
        a.label("slot")
        a.emit(Lsh.imm(R1, 2), Mov.reg(R2, R9), Add.imm(R2, OFF["slots"]), Add.reg(R2, R1),
               Mov.imm(R3, 1), atomic_add(4, R2, 0, R3))
        a.label("cleanup")
        a.emit(ld_map_fd(R1, self.start), Mov.reg(R2, FP), Add.imm(R2, ntid),
               call(Helper.map_delete_elem))
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec("lumos_runq_switch", BPF_PROG_TYPE_RAW_TRACEPOINT,
                           tuple(a.finish()), about=self._about(frame))
