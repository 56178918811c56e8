"""Choosing probe sites for matched functions: the entry site for each function.

C functions are probed at their first instruction. Go functions get the site the Go
layer chooses (the prologue's emulated JBE, with the flag mask that drops the pass
to morestack) when it is available for that binary.
"""

from __future__ import annotations

from itertools import groupby

from lumos.binary.elf import open_elf
from lumos.probes.sites import ProbeSite
from lumos.tools.functions import FunctionMatch

# First bytes of instructions uprobes always refuse (INT3, INT n): seen at the entry of
# Go's runtime.abort. Filtering them here spares attach_sites a bisection.
UNPROBEABLE_FIRST_BYTES = (0xCC, 0xCD)


def entry_sites(functions: list[FunctionMatch]) -> tuple[list[ProbeSite], list[ProbeSite]]:
    """(sites to attach, sites skipped because no uprobe can sit there)."""
    sites: list[ProbeSite] = []
    skipped: list[ProbeSite] = []
    for path, group in groupby(functions, key=lambda f: f.path):
        with open_elf(path) as elf:
            for i, fn in enumerate(group):
                site = ProbeSite(path, elf.vaddr_to_offset(fn.addr), fn.name, func_index=i)
                first = elf.read_offset(site.offset, 1)
                (skipped if first and first[0] in UNPROBEABLE_FIRST_BYTES else sites).append(site)
    return sites, skipped
