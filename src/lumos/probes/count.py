"""Counting hits per site in the kernel: nothing crosses to user space per hit.

Sites are uprobes (functions) and tracepoints; each gets an index (its cookie) into a
per-CPU array, so the increment needs no atomic op (the programs run with migration
disabled). read() sums the CPUs.
"""

from __future__ import annotations

import struct
from contextlib import ExitStack

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R7,
    Add,
    Asm,
    Helper,
    Jeq,
    Mov,
    atomic_add,
    call,
    exit_,
    ld_map_fd,
    stx,
)
from lumos.bpf.maps import Map, array_spec, create_map
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.attach import Attached, attach_sites, attach_tracepoint_sites
from lumos.probes.probesite import ProbeSite, TracepointSite


def count_program(counts: Map, tgid: int | None, prog_type: int,
                  attach_type: int = 0) -> ProgramSpec:
    a = Asm()
    codegen.save_ctx(a)
    codegen.tgid_filter(a, tgid, "out")
    codegen.site_from_cookie(a, "out", check_flags=prog_type == BPF_PROG_TYPE_KPROBE)
    key = a.frame.slot("site_key", 4, align=4)
    a.comment("count_program: counts[site]++ (per-CPU: no atomics needed)")
    a.emit(stx(4, FP, key, R7), ld_map_fd(R1, counts), Mov.reg(R2, FP), Add.imm(R2, key),
           call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"),
           Mov.imm(R1, 1), atomic_add(8, R0, 0, R1))  # atomic: preempt=full safe
    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())
    return ProgramSpec("lumos_count", prog_type, tuple(a.finish()),
                       expected_attach_type=attach_type,
                       about=f"stack slots:\n{a.frame.layout()}\nmaps:\n  {counts.name}: "
                             f"per-CPU array of u64, one per site")


class CountProbe:
    """Counts hits per site. attach() puts everything on the caller's ExitStack."""

    def __init__(self, sites: list[ProbeSite], tracepoints: list[TracepointSite] = (),
                 tgid: int | None = None):
        self.sites = sites
        self.tracepoints = list(tracepoints)
        self.tgid = tgid
        self.num = len(sites) + len(self.tracepoints)
        self.skipped: list[ProbeSite] = []
        self._counts: Map | None = None

    def attach(self, stack: ExitStack, mode: str | None = None) -> CountProbe:
        self._counts = stack.enter_context(
            create_map(array_spec("lumos_counts", 8, max(self.num, 1), percpu=True)))
        parts: list[Attached] = []
        if self.sites:
            parts.append(attach_sites(
                lambda at: count_program(self._counts, self.tgid, BPF_PROG_TYPE_KPROBE, at),
                self.sites, self.tgid, stack, mode))
        if self.tracepoints:
            parts.append(attach_tracepoint_sites(
                lambda pt: count_program(self._counts, self.tgid, pt), self.tracepoints,
                len(self.sites), stack))
        self.skipped = [s for p in parts for s in p.skipped]
        return self

    def read(self) -> list[int]:
        """Hits per site: uprobe sites first, then tracepoints."""
        out = []
        for i in range(self.num):
            vals = self._counts.lookup_percpu(struct.pack("<I", i)) or []
            out.append(sum(struct.unpack("<Q", v)[0] for v in vals))
        return out

    def reset(self) -> None:
        zero = struct.pack("<Q", 0)
        for i in range(self.num):
            self._counts.update(struct.pack("<I", i), zero)
