"""Counting calls per probe site in the kernel: nothing crosses to user space per hit.

The map is a per-CPU array indexed by site, so the increment needs no atomic op
(uprobe programs run with migration disabled); read() sums the CPUs.
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
    Mov,
    call,
    exit_,
    ld_map_fd,
    ldx,
    stx,
)
from lumos.bpf.maps import Map, array_spec, create_map
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.attach import attach_sites
from lumos.probes.sites import ProbeSite


def count_program(counts: Map, tgid: int | None, attach_type: int) -> ProgramSpec:
    a = Asm()
    codegen.save_ctx(a)
    codegen.tgid_filter(a, tgid, "out")
    codegen.site_from_cookie(a, "out")
    a.emit(stx(4, FP, -4, codegen.R7), ld_map_fd(R1, counts), Mov.reg(R2, FP), Add.imm(R2, -4),
           call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"),
           ldx(8, R1, R0, 0), Add.imm(R1, 1), stx(8, R0, 0, R1))
    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())
    return ProgramSpec("lumos_count", BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                       expected_attach_type=attach_type)


class CountProbe:
    """Counts hits per site. attach() puts everything on the caller's ExitStack."""

    def __init__(self, sites: list[ProbeSite], tgid: int | None = None):
        self.sites = sites
        self.tgid = tgid
        self._counts: Map | None = None

    def attach(self, stack: ExitStack, mode: str | None = None) -> CountProbe:
        self._counts = stack.enter_context(
            create_map(array_spec("lumos_counts", 8, max(len(self.sites), 1), percpu=True)))
        self.attached = attach_sites(
            lambda at: count_program(self._counts, self.tgid, at), self.sites, self.tgid,
            stack, mode)
        return self

    def read(self) -> list[int]:
        out = []
        for i in range(len(self.sites)):
            vals = self._counts.lookup_percpu(struct.pack("<I", i)) or []
            out.append(sum(struct.unpack("<Q", v)[0] for v in vals))
        return out

    def reset(self) -> None:
        zero = struct.pack("<Q", 0)
        for i in range(len(self.sites)):
            self._counts.update(struct.pack("<I", i), zero)
