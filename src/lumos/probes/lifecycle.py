"""Noticing that a traced process exec'd: a tiny program on the sched_process_exec raw
tracepoint counts execs of one process (its PID stays the same across exec, so nothing
in /proc says it happened; uprobes placed in the old image are gone with it).

Raw tracepoints need no tracefs (Linux 4.17). The count lives in a one-slot array that
the tool's run loop reads each poll.
"""

from __future__ import annotations

import struct
from contextlib import ExitStack

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    Add,
    Asm,
    Helper,
    Jeq,
    Jne,
    Mov,
    Rsh,
    atomic_add,
    call,
    exit_,
    ld_map_fd,
    st,
)
from lumos.bpf.links import attach_raw_tracepoint
from lumos.bpf.maps import Map, array_spec, create_map
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.sys import BPF_PROG_TYPE_RAW_TRACEPOINT


def exec_program(counts: Map, tgid: int) -> ProgramSpec:
    a = Asm()
    key = a.frame.slot("key", 4, align=4)
    a.comment(f"exec_program: only PID {tgid}")
    a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), Jne.imm(R0, tgid, "out"))
    a.comment("exec_program: execs[0] += 1")
    a.emit(st(4, FP, key, 0), ld_map_fd(R1, counts), Mov.reg(R2, FP), Add.imm(R2, key),
           call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"),
           Mov.imm(R1, 1), atomic_add(8, R0, 0, R1))  # two CPUs may exec at once
    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())
    return ProgramSpec("lumos_execwatch", BPF_PROG_TYPE_RAW_TRACEPOINT, tuple(a.finish()),
                       about="maps:\n  lumos_execs: u64 array [1]: execs of the traced PID")


class ExecWatch:
    """execs() is how many times PID has exec'd since attach() (or since mark())."""

    def __init__(self, tgid: int):
        self.tgid = tgid
        self._counts: Map | None = None
        self._base = 0

    def attach(self, stack: ExitStack) -> ExecWatch:
        self._counts = stack.enter_context(create_map(array_spec("lumos_execs", 8, 1)))
        prog = stack.enter_context(load_program(exec_program(self._counts, self.tgid)))
        stack.enter_context(attach_raw_tracepoint(prog, "sched_process_exec"))
        return self

    def mark(self) -> None:
        """Count from now: a -c command's own first exec is not news."""
        self._base = self._count()

    def execs(self) -> int:
        return self._count() - self._base

    def _count(self) -> int:
        raw = self._counts.lookup(struct.pack("<I", 0))
        return struct.unpack("<Q", raw)[0] if raw else 0
