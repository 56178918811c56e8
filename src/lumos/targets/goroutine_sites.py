"""Where goroutines are born and die: probe sites and captures on the Go runtime.

runtime.newproc1(fn *funcval, callergp *g, callerpc uintptr, ...) *g runs on the
system stack for each `go` statement: at its entry fn.fn (the start PC), callergp.goid
(the parent) and callerpc (the creating function); at its RETs the new g's goid.
runtime.goexit1 runs on each goroutine that ends.
"""

from __future__ import annotations

from lumos.errors import GoBinaryError
from lumos.probes.capture import Capture, WordLoc
from lumos.probes.eventprog import GoroutineSource, Variant
from lumos.probes.probesite import ProbeSite
from lumos.targets.entry import open_go, site_flags_mask


def goroutine_sites(exe: str) -> tuple[list[ProbeSite], list[Variant]]:
    """Sites and variants for newproc1 (entry, RETs) and goexit1 (entry)."""
    gobin = open_go(exe)
    if gobin is None:
        raise GoBinaryError(f"{exe}: not a Go program (no .gopclntab)")
    with gobin:
        rt = gobin.runtime_layout()
    if rt.newproc1 is None or rt.goexit1 is None:
        raise GoBinaryError(f"{exe}: runtime.newproc1 or runtime.goexit1 not found")
    np, ge = rt.newproc1, rt.goexit1
    locs = np.entry_site.locs
    if len(locs) < 3 or any(len(x) != 1 or x[0].kind != "reg" for x in locs[:3]):
        raise GoBinaryError(f"{exe}: runtime.newproc1 arguments are not in registers "
                            f"({np.abi}); lumos needs Go 1.17 or newer")
    fn_reg, gp_reg, pc_reg = (x[0].reg for x in locs[:3])
    g = GoroutineSource(rt.goid_offset, reg=rt.g_register)
    variants: list[Variant] = []

    def vid(v: Variant) -> int:
        if v not in variants:
            variants.append(v)
        return variants.index(v)

    create = Variant("create", (
        Capture("startpc", "uint", (WordLoc.deref(fn_reg, rt.funcval_fn_offset),)),
        Capture("parent", "uint", (WordLoc.deref(gp_reg, rt.goid_offset),)),
        Capture("callerpc", "uint", (WordLoc.register(pc_reg),)),
    ), goroutine=g)
    sites = [ProbeSite(exe, np.entry_site.offset, np.name, "entry",
                       site_flags_mask(np.entry_site), variant=vid(create))]
    for ret in np.ret_sites:
        res = ret.locs[0][0] if ret.locs and ret.locs[0] else None
        if res is None or res.kind != "reg":
            raise GoBinaryError(f"{exe}: runtime.newproc1 result is not in a register")
        created = Variant("created", (Capture("goid", "uint", (
            WordLoc.deref(res.reg, rt.goid_offset),)),), goroutine=g)
        sites.append(ProbeSite(exe, ret.offset, np.name, "return", variant=vid(created)))
    sites.append(ProbeSite(exe, ge.entry_site.offset, ge.name, "entry",
                           site_flags_mask(ge.entry_site),
                           variant=vid(Variant("exit", (), goroutine=g))))
    return sites, variants
