"""Choosing probe sites for matched functions: the entry site for each function.

C functions are probed at their first instruction. Go functions get the site the Go
layer chooses: the prologue's JBE to morestack (emulated by the kernel: ~1 µs a hit,
exact) with the flag mask that drops the pass about to grow the stack and restart.
"""

from __future__ import annotations

from itertools import groupby

from lumos.binary.elf import open_elf
from lumos.errors import GoBinaryError
from lumos.probes.sites import ProbeSite
from lumos.tools.functions import FunctionMatch

# First bytes of instructions uprobes always refuse (INT3, INT n): seen at the entry of
# Go's runtime.abort. Filtering them here spares attach_sites a bisection.
UNPROBEABLE_FIRST_BYTES = (0xCC, 0xCD)


def open_go(path: str):
    """The GoBinary for path, or None when it is not a Go program."""
    from lumos.golang.gobinary import open_go_binary
    try:
        return open_go_binary(path)
    except GoBinaryError:
        return None


def site_flags_mask(site) -> int:
    """The flags mask for a Go entry site (0 when it is not the morestack jump)."""
    ms = site.morestack
    return ms.flags_mask if ms is not None and ms.taken_if_set else 0


def entry_sites(functions: list[FunctionMatch]) -> tuple[list[ProbeSite], list[ProbeSite]]:
    """(sites to attach, sites skipped because no uprobe can sit there)."""
    sites: list[ProbeSite] = []
    skipped: list[ProbeSite] = []
    for path, group in groupby(functions, key=lambda f: f.path):
        group = list(group)
        gobin = open_go(path)
        with open_elf(path) as elf:
            for i, fn in enumerate(group):
                site = None
                if gobin is not None:
                    gofn = next((g for g in gobin.get_functions(fn.name) if g.entry == fn.addr),
                                None)
                    if gofn is not None:
                        gs = gobin.entry_site(gofn)
                        site = ProbeSite(path, gs.offset, fn.name, flags_mask=site_flags_mask(gs),
                                         func_index=i)
                if site is None:
                    site = ProbeSite(path, elf.vaddr_to_offset(fn.addr), fn.name, func_index=i)
                first = elf.read_offset(site.offset, 1)
                (skipped if first and first[0] in UNPROBEABLE_FIRST_BYTES else sites).append(site)
        if gobin is not None:
            gobin.close()
    return sites, skipped
