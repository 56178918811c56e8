"""Probe sites in a CPython eval loop (binary/cpython.py's EvalSites), as ProbeSites and
the FrameSite variants (entry or exit, where the frame pointer is) that uflow's and
ucalls's programs dispatch on."""

from __future__ import annotations

from lumos.probes.probesite import ProbeSite
from lumos.probes.pyframe import KIND_ENTRY, KIND_EXIT, FrameSite


def frame_sites(interp) -> tuple[list[FrameSite], list[ProbeSite]]:
    """(variants, sites): one site per EvalSite, its variant in the cookie."""
    variants: list[FrameSite] = []
    sites: list[ProbeSite] = []
    for es in interp.sites:
        loc = es.frame
        fs = FrameSite(KIND_ENTRY if es.kind == "entry" else KIND_EXIT,
                       loc.kind if loc is not None else "none",
                       loc.reg if loc is not None else "", loc.offset if loc else 0)
        if fs not in variants:
            variants.append(fs)
        sites.append(ProbeSite(interp.path, es.offset, es.label, es.kind, 0, 0,
                               variants.index(fs)))
    return variants, sites
