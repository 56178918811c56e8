"""Planning a trace: patterns -> functions -> entry and RET sites with what to capture.

This is where the Go layer (FuncSpec: params, types, locations per site) meets the
probes layer (ProbeSite, Capture). C functions get an entry site and RET sites from
disassembly, with no arguments (C has no DWARF-free way to know them).

A pattern may carry a Go signature for stripped binaries:
    'github.com/x/y/parser.ParseExpr(input string)'
lumos then decodes by the ABI rules as if DWARF had said so.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from itertools import groupby

from lumos import filestamp
from lumos.binary.cfuncs import c_prototype
from lumos.binary.elf import open_elf
from lumos.errors import UsageError
from lumos.golang.gobinary import NO_DWARF_NOTICE
from lumos.golang.model import FuncSpec
from lumos.golang.signature import parse_signature
from lumos.probes.capture import Capture
from lumos.probes.eventprog import GoroutineSource
from lumos.probes.probesite import ProbeSite
from lumos.targets.captures import c_captures, param_captures
from lumos.targets.csig import CSignature, parse_c_signature, signature_from_prototype
from lumos.targets.entry import entry_site, go_function, open_go
from lumos.targets.patterns import (
    FunctionMatch,
    classify_pattern,
    resolve_patterns,
    split_pattern,
)
from lumos.targets.target import Target


@dataclass
class PlannedFunction:
    """One function to trace: where to probe it and what to read there."""

    name: str
    path: str
    entry: ProbeSite
    exits: list[ProbeSite]
    args: tuple[Capture, ...] = ()            # at the entry site
    results: list[tuple[Capture, ...]] = field(default_factory=list)  # per exit site
    spec: FuncSpec | None = None
    goroutine: GoroutineSource | None = None   # None: not Go code
    notes: tuple[str, ...] = ()
    entry_sp_delta: int = 0                    # bytes pushed since entry at the entry site
    c_signature: CSignature | None = None      # C code: its signature (user's or DWARF)

    @property
    def signature(self) -> str:
        if self.spec:
            return self.spec.signature()
        return self.c_signature.text() if self.c_signature else f"{self.name}()"


def split_signature(pattern: str) -> tuple[str, str | None]:
    """('pkg.F', 'pkg.F(a int) string') for a pattern with a signature, else (pattern, None).

    Go names hold parentheses too (main.(*T).m): a signature's '(' follows a name
    character, a receiver's follows a dot.
    """
    for i, ch in enumerate(pattern):
        if ch == "(" and i > 0 and pattern[i - 1] != ".":
            return pattern[:i], pattern
    return pattern, None


def plan(target: Target, patterns: list[str], strlen: int = 64,
         want_results: bool = True, dropped: list | None = None,
         max_elems: int = 0) -> list[PlannedFunction]:
    """The functions the patterns match, planned. dropped (if given) receives the name of
    each match that cannot be probed (see dropped_note). max_elems: elements of slices
    of numbers, bools and strings to read (0: a slice is ptr, len, cap)."""
    if target.exe:  # analysed on one content, planned on another: refuse (filestamp)
        filestamp.check_unchanged(target.exe)
    globs, signatures = [], {}
    for p in patterns:
        kind, _ = classify_pattern(p)
        if kind != "user":
            raise UsageError(f"{p}: this tool probes user functions (a kernel {kind} "
                             f"pattern is for funccount: lumos funccount {p!r})")
        glob, sig = split_signature(p)
        globs.append(glob)
        if sig is not None:  # keyed by the name glob, without a 'libc:' prefix
            signatures[split_pattern(glob)[1]] = sig[len(glob) - len(split_pattern(glob)[1]):]
    matches = resolve_patterns(target, globs)
    out: list[PlannedFunction] = []
    for path, group in groupby(enumerate(matches), key=lambda t: t[1].path):
        gobin = open_go(path)
        with open_elf(path) as elf:
            for i, m in group:
                text = signatures.get(m.name) or next(
                    (s for g, s in signatures.items() if fnmatch.fnmatchcase(m.name, g)), None)
                if gobin is not None:
                    pf = _plan_go(gobin, elf, m, i, strlen, _go_signature(text), max_elems)
                else:
                    pf = _plan_c(elf, m, i, strlen, parse_c_signature(text) if text else None)
                if pf is not None:
                    out.append(pf)
                elif dropped is not None:
                    dropped.append(m.name)
        if gobin is not None:
            gobin.close()  # saves what was learnt to the cache
    return out


def dropped_note(names: list[str], why: str) -> list[str]:
    """A banner note for matched functions a tool leaves out (never silently)."""
    if not names:
        return []
    shown = ", ".join(sorted(names)[:5]) + (f" and {len(names) - 5} more"
                                            if len(names) > 5 else "")
    return [f"{len(names)} matched function{'s' if len(names) != 1 else ''} not traced "
            f"({why}): {shown}"]


def _go_signature(text: str | None):
    if text is None:
        return None
    try:
        return parse_signature(text)
    except UsageError:
        raise
    except Exception as e:  # parse errors become one clear line
        raise UsageError(f"signature {text!r}: {e}") from None


def _plan_go(gobin, elf, m: FunctionMatch, index: int, strlen: int,
             sig, max_elems: int = 0) -> PlannedFunction | None:
    gofn = go_function(gobin, m)
    if gofn is None:
        return None
    spec = gobin.spec(gofn, sig)
    layout = gobin.runtime_layout()
    es = spec.entry_site
    entry = entry_site(elf, gobin, m, index, es)
    if entry is None:
        return None
    exits = [ProbeSite(m.path, s.offset, m.name, "return", 0, index) for s in spec.ret_sites]
    args = param_captures(spec.params, es.locs, strlen, spec.source, max_elems)
    results = [param_captures(spec.results, s.locs, strlen, spec.source, max_elems)
               for s in spec.ret_sites]
    # Go code under ABIInternal has g in R14; assembly (ABI0) reads it from TLS.
    goroutine = GoroutineSource(layout.goid_offset, reg=layout.g_register
                                if spec.abi == "ABIInternal" else "",
                                tls_offset=layout.g_tls_offset,
                                fsbase_offset=_fsbase_offset() if spec.abi != "ABIInternal"
                                else 0,
                                goid_source="DWARF runtime.g" if layout.goid_source == "dwarf"
                                else f"per-version table, {gobin.go_version}")
    # The binary's caveats (no DWARF, a newer Go than lumos knows); "no DWARF" only
    # where it shows: a function decoded from raw words rather than a signature.
    notes = spec.notes + tuple(n for n in gobin.notices
                               if n != NO_DWARF_NOTICE or spec.source == "raw")
    return PlannedFunction(m.name, m.path, entry, exits, args, results, spec, goroutine,
                           notes, es.sp_delta)


_fsbase: int | None = None


def _fsbase_offset() -> int:
    global _fsbase
    if _fsbase is None:
        from lumos.bpf.btf import load_vmlinux_btf
        _fsbase = load_vmlinux_btf().member_offset("task_struct", "thread.fsbase")[0]
    return _fsbase


def _plan_c(elf, m: FunctionMatch, index: int, strlen: int,
            sig: CSignature | None) -> PlannedFunction | None:
    """A C function: entry at its first instruction, the return by a uretprobe (fine in
    C code, and it sees tail calls that RET sites miss), SysV arguments typed by the
    user's signature, else by C DWARF, else the six argument registers as raw words."""
    entry = entry_site(elf, None, m, index)
    if entry is None:
        return None
    notes: tuple[str, ...] = ()
    if sig is None:
        proto = c_prototype(elf, m.name, m.addr)
        if proto is not None:
            sig = signature_from_prototype(proto)
    if sig is None:
        notes = (f"no C signature for {m.name} (no DWARF): arguments are the six argument "
                 f"registers; give one to decode them, e.g. "
                 f"'{m.name}(const char *name, int n) int'",)
    args, results = c_captures(sig, strlen)
    exit_site = replace(entry, kind="return", retprobe=True, flags_mask=0)
    return PlannedFunction(m.name, m.path, entry, [exit_site], args, [results],
                           notes=notes, c_signature=sig)
