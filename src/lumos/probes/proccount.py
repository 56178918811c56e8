"""Per-process event counters in the kernel: page faults (lumos faults) and swap-ins
(lumos swapin), keyed like BCC's swapin by (pid, comm), summed per CPU.

Page faults come from the software perf events PERF_COUNT_SW_PAGE_FAULTS_MIN / _MAJ
(one per CPU, a BPF program run on every fault): the kernel raises them in
mm_account_fault() next to the task's own min_flt / maj_flt, so the counts are those
of getrusage(2) and /proc/PID/stat (except faults taken for get_user_pages, which have
no user registers: the kernel counts those in rusage only).

Swap-ins come from the tracepoint memcg:count_memcg_events, which the kernel fires
when it charges an event to a memory cgroup, in the faulting task: items PSWPIN (a
page read from a swap device), ZSWPIN (from zswap) and SWPIN_ZERO (a page known to be
zero, filled without I/O), whose values come from vmlinux BTF enum vm_event_item.
BCC's swapin.py counts calls of swap_read_folio() with a kprobe instead, which this
kernel cannot do; the items above are what that function counts, per page rather than
per folio. It needs the memory controller (it is how the kernel counts per cgroup),
and misses swap-ins satisfied from the swap cache (no read: a minor fault).
"""

from __future__ import annotations

import struct
from contextlib import ExitStack

from lumos.bpf import perf
from lumos.bpf import sys as bsys
from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    Add,
    Asm,
    Helper,
    Jeq,
    Jne,
    Mov,
    Rsh,
    call,
    exit_,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.btf import load_vmlinux_btf
from lumos.bpf.frame import Frame
from lumos.bpf.links import Link, LinkGroup, attach_perf_event, attach_tracepoint
from lumos.bpf.maps import Map, create_map, hash_spec
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.sys import BPF_NOEXIST, BPF_PROG_TYPE_PERF_EVENT, BPF_PROG_TYPE_TRACEPOINT
from lumos.bpf.tracefs import require_tracepoint
from lumos.errors import NotSupportedError
from lumos.probes.ktask import TASK_COMM_LEN, emit_tgid_filter
from lumos.probes.record import Field, Record

MAX_PROCS = 10240   # (pid, comm) rows; an LRU, so a long run keeps the active ones
KEY = Record("proc_key", [Field("pid", "u32"), Field("comm", "bytes", TASK_COMM_LEN)],
             align=4)
SWAPIN_ITEMS = ("PSWPIN", "ZSWPIN", "SWPIN_ZERO")
SWAPIN_TRACEPOINT = ("memcg", "count_memcg_events")


class ProcCounter:
    """A per-CPU (pid, comm) -> u64[n] map and the emitter that bumps one counter."""

    def __init__(self, name: str, counters: int):
        self.name = name
        self.counters = counters
        self.map: Map | None = None
        self._seen: dict[tuple[int, str], list[int]] = {}

    def open(self, stack: ExitStack) -> ProcCounter:
        self.map = stack.enter_context(create_map(hash_spec(
            self.name, KEY.size, 8 * self.counters, MAX_PROCS, lru=True, percpu=True)))
        return self

    def emit_bump(self, a: Asm, frame: Frame, amount: int | None, index: int, done: str) -> None:
        """counts[(pid, comm)][index] += amount (or R7 when amount is None)."""
        key = frame.slot("proc_key", KEY.size)
        zero = frame.slot("zero_counts", 8 * self.counters)
        a.comment(f"emit_bump: {self.name}[(tgid, comm)][{index}] += "
                  f"{'R7' if amount is None else amount} (per-CPU: no atomics)")
        a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32),
               stx(4, FP, key + KEY.offset("pid"), R0),
               Mov.reg(R1, FP), Add.imm(R1, key + KEY.offset("comm")),
               Mov.imm(R2, TASK_COMM_LEN), call(Helper.get_current_comm))
        look = a.fresh("bump.have")
        a.emit(ld_map_fd(R1, self.map), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jne.imm(R0, 0, look))
        for i in range(self.counters):
            a.emit(st(8, FP, zero + 8 * i, 0))
        a.emit(ld_map_fd(R1, self.map), Mov.reg(R2, FP), Add.imm(R2, key),
               Mov.reg(R3, FP), Add.imm(R3, zero), Mov.imm(R4, BPF_NOEXIST),
               call(Helper.map_update_elem),
               ld_map_fd(R1, self.map), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, done))
        a.label(look)
        a.emit(ldx(8, R1, R0, 8 * index))
        a.emit(Add.reg(R1, R7) if amount is None else Add.imm(R1, amount))
        a.emit(stx(8, R0, 8 * index, R1))

    def read(self) -> dict[tuple[int, str], list[int]]:
        """(pid, comm) -> counters, summed over CPUs: totals since attach."""
        out = {}
        fmt = struct.Struct(f"<{self.counters}Q")
        for key, values in self.map.items_percpu():
            pid, comm = KEY.struct.unpack(key)
            sums = [sum(col) for col in zip(*(fmt.unpack(v) for v in values), strict=True)]
            out[(pid, comm.split(b"\0", 1)[0].decode("utf-8", "replace"))] = sums
        return out


    def take_deltas(self) -> list[tuple[str, int, list[int]]]:
        """(comm, pid, counts since the previous call), smallest first, from the kernel's
        running totals: the map is never reset, so nothing counted between a read and a
        reset can be lost. A row the LRU evicted and created again starts from zero."""
        rows = []
        for key, now in self.read().items():
            before = self._seen.get(key, [0] * len(now))
            delta = [n - b if n >= b else n for n, b in zip(now, before, strict=True)]
            self._seen[key] = now
            if any(delta):
                rows.append((key[1], key[0], delta))
        return sorted(rows, key=lambda r: (sum(r[2]), r[1]))


class FaultsProbe:
    """Minor and major page faults per process (perf software events, every CPU)."""

    KINDS = ((0, perf.PERF_COUNT_SW_PAGE_FAULTS_MIN), (1, perf.PERF_COUNT_SW_PAGE_FAULTS_MAJ))

    def __init__(self, tgid: int | None = None):
        self.tgid = tgid
        self.counter = ProcCounter("lumos_faults", 2)

    def attach(self, stack: ExitStack) -> FaultsProbe:
        self.counter.open(stack)
        prog = stack.enter_context(load_program(self._program()))
        links: list[Link] = []
        try:
            for cpu in bsys.online_cpus():
                for cookie, config in self.KINDS:
                    fd = perf.open_counting_event(cpu, perf.PERF_TYPE_SOFTWARE, config)
                    links.append(attach_perf_event(prog, fd, cookie,
                                                   f"page-fault event {config} cpu {cpu}"))
        except BaseException:
            for link in reversed(links):
                link.close()
            raise
        stack.enter_context(LinkGroup(links, f"{len(links)} page-fault events"))
        return self

    def read(self) -> dict[tuple[int, str], list[int]]:
        return self.counter.read()

    def _program(self) -> ProgramSpec:
        a = Asm()
        frame = a.frame
        a.emit(Mov.reg(R6, R1))
        emit_tgid_filter(a, self.tgid, "out")
        a.comment("emit_faults: the attach cookie says which event fired: 0 minor, 1 major")
        a.emit(Mov.reg(R1, R6), call(Helper.get_attach_cookie), Jne.imm(R0, 0, "major"))
        self.counter.emit_bump(a, frame, 1, 0, "out")
        a.emit(Mov.imm(R0, 0), exit_())
        a.label("major")
        self.counter.emit_bump(a, frame, 1, 1, "out")
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec("lumos_faults", BPF_PROG_TYPE_PERF_EVENT, tuple(a.finish()),
                           about=f"stack:\n{frame.layout()}\nmaps: lumos_faults ((pid, comm) "
                                 f"-> u64 minor, major; per-CPU LRU)\n{KEY.c_struct()}")


def memcg_enabled() -> bool:
    """Whether the memory controller is on (/proc/cgroups: its `enabled` column)."""
    try:
        with open("/proc/cgroups") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == "memory":
                    return parts[-1] == "1"
    except OSError:
        pass
    return False


class SwapinProbe:
    """Pages swapped in per process (memcg:count_memcg_events, see the module doc)."""

    def __init__(self, tgid: int | None = None):
        self.tgid = tgid
        self.fields = require_tracepoint(*SWAPIN_TRACEPOINT, ("item", "val"))
        if not memcg_enabled():
            raise NotSupportedError("the memory cgroup controller", "",
                                    "it is disabled (/proc/cgroups; booted with "
                                    "cgroup_disable=memory?): swap-ins cannot be counted")
        values = load_vmlinux_btf().enum_values("vm_event_item")
        self.items = {name: values[name] for name in SWAPIN_ITEMS if name in values}
        if "PSWPIN" not in self.items:
            raise NotSupportedError("BTF enum vm_event_item value PSWPIN", "",
                                    "this kernel has no swap (CONFIG_SWAP)")
        self.counter = ProcCounter("lumos_swapins", 1)

    def attach(self, stack: ExitStack) -> SwapinProbe:
        self.counter.open(stack)
        prog = stack.enter_context(load_program(self._program()))
        stack.enter_context(attach_tracepoint(prog, *SWAPIN_TRACEPOINT))
        return self

    def read(self) -> dict[tuple[int, str], list[int]]:
        return self.counter.read()

    def _program(self) -> ProgramSpec:
        a = Asm()
        frame = a.frame
        item, val = self.fields["item"], self.fields["val"]
        a.emit(Mov.reg(R6, R1))
        a.comment(f"emit_swapin: item at +{item.offset} of {':'.join(SWAPIN_TRACEPOINT)} "
                  f"(tracefs format) is one of " + ", ".join(
                      f"{k} {v}" for k, v in self.items.items()) + " (vmlinux BTF enum "
                  "vm_event_item)")
        a.emit(ldx(4, R1, R6, item.offset))
        for value in self.items.values():
            a.emit(Jeq.imm(R1, value, "count"))
        a.emit(Mov.imm(R0, 0), exit_())
        a.label("count")
        emit_tgid_filter(a, self.tgid, "out")
        a.comment(f"emit_swapin: val (pages) at +{val.offset}")
        a.emit(ldx(8, R7, R6, val.offset))
        self.counter.emit_bump(a, frame, None, 0, "out")
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec("lumos_swapin", BPF_PROG_TYPE_TRACEPOINT, tuple(a.finish()),
                           about=f"stack:\n{frame.layout()}\nmaps: lumos_swapins ((pid, comm) "
                                 f"-> u64 pages; per-CPU LRU)\n{KEY.c_struct()}")
