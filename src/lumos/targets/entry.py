"""The one place that picks a function's entry probe site, for Go and C.

C functions are probed at their first instruction. Go functions get the site the Go
layer chooses (golang/sites.py): the prologue's JBE to morestack (emulated by the
kernel: ~1 µs a hit, exact) with the flag mask that drops the pass about to grow the
stack and restart. An instruction no uprobe can sit on (INT3, INT n: Go's
runtime.abort starts with one) makes the function unprobeable here, not at attach.
"""

from __future__ import annotations

from itertools import groupby

from lumos.binary.elf import open_elf
from lumos.errors import GoBinaryError
from lumos.probes.probesite import ProbeSite
from lumos.targets.patterns import FunctionMatch

# First bytes of instructions uprobes always refuse (INT3, INT n). Filtering them here
# spares attach_sites a bisection.
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


def go_function(gobin, m: FunctionMatch):
    """The pclntab function a match stands for, or None. ELF symbols name an assembly
    function's ABI0 wrapper 'pkg.f.abi0' where the pclntab says 'pkg.f'."""
    gofn = next((f for f in gobin.get_functions(m.name) if f.entry == m.addr), None)
    if gofn is None:
        gofn = gobin.function_at(m.addr)
        if gofn is None or gofn.entry != m.addr:
            return None
    return gofn


def entry_site(elf, gobin, m: FunctionMatch, index: int, go_site=None) -> ProbeSite | None:
    """The entry ProbeSite of a matched function, or None when no uprobe can sit there.

    go_site: the golang Site already chosen (a FuncSpec's entry_site); without it, a Go
    function's site comes from the cheap chooser (no DWARF, no ABI), enough to count.
    """
    if go_site is None and gobin is not None:
        gofn = go_function(gobin, m)
        if gofn is not None:
            go_site = gobin.entry_site(gofn)
    if go_site is not None:
        site = ProbeSite(m.path, go_site.offset, m.name, "entry", site_flags_mask(go_site),
                         index)
    else:
        site = ProbeSite(m.path, elf.vaddr_to_offset(m.addr), m.name, "entry", 0, index)
    first = elf.read_offset(site.offset, 1)
    if not first or first[0] in UNPROBEABLE_FIRST_BYTES:
        return None
    return site


def entry_sites(functions: list[FunctionMatch]) -> tuple[list[ProbeSite], list[ProbeSite]]:
    """(sites to attach, sites skipped because no uprobe can sit there)."""
    sites: list[ProbeSite] = []
    skipped: list[ProbeSite] = []
    for path, group in groupby(functions, key=lambda f: f.path):
        gobin = open_go(path)
        with open_elf(path) as elf:
            for i, fn in enumerate(group):
                site = entry_site(elf, gobin, fn, i)
                if site is None:
                    skipped.append(ProbeSite(path, 0, fn.name, func_index=i))
                else:
                    sites.append(site)
        if gobin is not None:
            gobin.close()
    return sites, skipped
