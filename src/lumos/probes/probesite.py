"""Probe sites: where a uprobe goes (file + offset) and what it stands for.

The cookie of each attached site packs: bits 0-31 its index in the session's site
list, bits 32-39 a pt_regs->flags mask (a hit whose flags intersect it is ignored),
bits 40-63 the variant (which body of a multi-variant program runs). The flags mask
is how an entry probe on a Go prologue's JBE drops the pass that is
about to branch to morestack (CF or ZF set): the function will run its entry again.
"""

from __future__ import annotations

from dataclasses import dataclass

X86_CF = 1 << 0
X86_ZF = 1 << 6
JBE_TAKEN = X86_CF | X86_ZF


@dataclass(frozen=True)
class ProbeSite:
    path: str            # the file the uprobe is attached to
    offset: int          # file offset of the instruction
    name: str            # what it stands for ("main.prepareAnswer")
    kind: str = "entry"  # entry | return | ...
    flags_mask: int = 0  # skip the hit when pt_regs->flags & flags_mask
    func_index: int = 0  # which function (several sites may share one)
    variant: int = 0     # which body of an event program handles this site
    ident: int | None = None  # cookie bits 0-31 if not the site's index (latency: function)
    retprobe: bool = False   # a uretprobe: fires when the function returns (C code only:
                             # a uretprobe rewrites the return address, which kills Go)
    ref_ctr_offset: int = 0  # USDT semaphore's file offset: the kernel increments it
                             # while the uprobe is in (perf config[63:32] / uprobe_multi
                             # ref_ctr_offsets, Linux 4.20 / 6.6); 0: none

    def cookie(self, index: int) -> int:
        low = index if self.ident is None else self.ident
        return low | (self.flags_mask & 0xFF) << 32 | self.variant << 40


@dataclass(frozen=True)
class TracepointSite:
    """A kernel tracepoint, e.g. syscalls:sys_enter_openat."""

    category: str
    event: str

    @property
    def name(self) -> str:
        return f"{self.category}:{self.event}"

    def cookie(self, index: int) -> int:
        return index
