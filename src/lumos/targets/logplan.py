"""Planning `lumos logs`: which logger functions a binary has, where to probe each, and
where its level, message and attribute slices are at that site.

The site is the verdict jump after the level check (golang.logsites) when the code has
that shape: one probe then sees the arguments (from their spill slots) and whether the
logger filtered the call. Otherwise it is the function's entry (logrus, whose level test
is inlined: the verdict then comes from the logger's Level field). Locations are worked
out from the ABI assignment of a layout-equivalent signature, so stripped binaries work.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lumos.golang.abi import assign_internal
from lumos.golang.gobinary import GoBinary
from lumos.golang.loggers import LoggerFunc, functions_for, log_closure
from lumos.golang.logsites import CheckSite, find_check_site
from lumos.golang.signature import parse_signature
from lumos.probes.capture import WordLoc
from lumos.probes.probesite import ProbeSite


@dataclass(frozen=True)
class LogSite:
    func: LoggerFunc
    probe: ProbeSite
    vaddr: int                               # ELF address of the probed instruction
    sp_delta: int                            # SP there + sp_delta = SP at entry
    verdict: str                             # "flags" | "level_field" | "none"
    filtered_if_zf: bool = True
    level: WordLoc | None = None             # None: func.level_const
    msg: tuple[WordLoc, WordLoc] | None = None
    slices: tuple[tuple[WordLoc, WordLoc], ...] = ()
    receiver: WordLoc | None = None          # level_field: the chain starts here
    notes: tuple[str, ...] = field(default=())
    closure: WordLoc | None = None           # std log: the appendOutput func value
    closures: tuple[tuple[int, str], ...] = ()  # (entry, LOG_CLOSURES kind) in the binary


def open_logged(path: str | None) -> GoBinary:
    """The Go binary whose log calls are wanted; a target that is not Go is a user error."""
    from lumos.errors import UsageError
    from lumos.targets.entry import open_go
    gb = open_go(path) if path else None
    if gb is None:
        raise UsageError(f"{path or 'the target'}: not a Go program")
    return gb


def plan_logs(gb: GoBinary, path: str, logger: str = "auto") -> list[LogSite]:
    """Every known logger function in the binary, as a LogSite."""
    out = []
    for lf in functions_for(logger):
        fns = gb.get_functions(lf.name)
        if not fns:
            continue
        site = _plan_one(gb, path, lf, fns[0], len(out))
        if site is not None and lf.closure:
            site = replace(site, closures=tuple(
                (f.entry, kind) for f in gb.functions if (kind := log_closure(f.name))))
        if site is not None:
            out.append(site)
    return out


def _plan_one(gb: GoBinary, path: str, lf: LoggerFunc, fn, index: int) -> LogSite | None:
    sig = parse_signature(lf.signature)
    slots = {p.name: s for p, s in zip(sig.params, assign_internal(
        [p.type for p in sig.params], []).args, strict=True)}
    check = _check_site(gb, lf, fn)
    if check is not None:
        locs = _locations(slots, check.spills.get, check.sp_delta, _needed(lf, sig))
        if locs is not None:
            probe = ProbeSite(path, gb.elf.vaddr_to_offset(check.vaddr), lf.name, "check",
                              0, index)
            return _site(lf, probe, check.vaddr, check.sp_delta, "flags", locs,
                         check.filtered_if_zf)
    spec = gb.spec(fn, sig)
    es = spec.entry_site
    locs = _locations(slots, None, es.sp_delta, _needed(lf, sig), registers=True)
    if locs is None:
        return None
    probe = ProbeSite(path, es.offset, lf.name, "entry", _flags_mask(es), index)
    verdict = "level_field" if lf.level_chain else "none"
    return _site(lf, probe, es.vaddr, es.sp_delta, verdict, locs, True)


def _needed(lf: LoggerFunc, sig) -> set[str]:
    need = {n for n in (lf.level, lf.msg, lf.closure, *lf.elems) if n}
    if lf.level_chain:
        need.add(sig.params[0].name)
    return need


def _flags_mask(es) -> int:
    return es.morestack.flags_mask if es.morestack and es.morestack.taken_if_set else 0


def _check_site(gb: GoBinary, lf: LoggerFunc, fn) -> CheckSite | None:
    if lf.check_callee is None and not lf.check_indirect:
        return None
    callee = None
    if lf.check_callee:
        targets = gb.get_functions(lf.check_callee)
        if not targets:
            return None
        callee = targets[0].entry
    ctx = gb._site_context(fn)
    code = gb.elf.read_vaddr(fn.entry, fn.size)
    return find_check_site(code, fn.entry, callee, ctx.sp_delta, lf.check_result)


def _locations(slots, spill_of, sp_delta: int, needed, registers: bool = False):
    """{param: [WordLoc per word]}: registers as they are (at the entry) or their spill
    slots (at a check site); stack-assigned params at SP + sp_delta + 8 + offset."""
    out = {}
    for name, slot in slots.items():
        words = []
        if slot.in_registers:
            for reg, part in zip(slot.regs, slot.parts, strict=True):
                if registers:
                    words.append(WordLoc.register(reg, part.size))
                    continue
                off = spill_of(reg)
                if off is None or off < sp_delta + 8:
                    if name in needed:
                        return None
                    break
                words.append(WordLoc.stack(off, part.size))
        elif slot.stack_offset is not None:
            base = sp_delta + 8 + slot.stack_offset
            words = [WordLoc.stack(base + p.offset, p.size) for p in slot.parts]
        out[name] = tuple(words)
    return out


def _site(lf: LoggerFunc, probe: ProbeSite, vaddr: int, sp_delta: int, verdict: str,
          locs, filtered_if_zf: bool) -> LogSite:
    level = locs[lf.level][0] if lf.level else None
    msg = tuple(locs[lf.msg][:2]) if lf.msg else None
    slices = tuple((locs[s][0], locs[s][1]) for s in lf.elems)
    receiver = next(iter(locs.values()))[0] if lf.level_chain else None
    closure = locs[lf.closure][0] if lf.closure else None
    return LogSite(lf, probe, vaddr, sp_delta, verdict, filtered_if_zf, level, msg, slices,
                   receiver, closure=closure)
