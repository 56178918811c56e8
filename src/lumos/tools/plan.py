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
from dataclasses import dataclass, field

from lumos.binary.disasm import ret_addresses
from lumos.binary.elf import open_elf
from lumos.errors import UsageError
from lumos.golang.gobinary import NO_DWARF_NOTICE
from lumos.golang.model import FuncSpec, Loc
from lumos.golang.signature import parse_signature
from lumos.golang.types import GoType
from lumos.probes.capture import Capture, WordLoc
from lumos.probes.event import GoroutineSource
from lumos.probes.sites import ProbeSite
from lumos.tools.common import Target
from lumos.tools.functions import FunctionMatch, resolve_patterns
from lumos.tools.sites import UNPROBEABLE_FIRST_BYTES, open_go, site_flags_mask

INT_KINDS = {"int", "int8", "int16", "int32", "int64"}
UINT_KINDS = {"uint", "uint8", "uint16", "uint32", "uint64", "uintptr"}
POINTER_KINDS = {"pointer", "map", "chan", "func", "unsafe.Pointer"}


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

    @property
    def signature(self) -> str:
        return self.spec.signature() if self.spec else f"{self.name}()"


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
         want_results: bool = True) -> list[PlannedFunction]:
    globs, signatures = [], {}
    for p in patterns:
        glob, sig = split_signature(p)
        globs.append(glob)
        if sig is not None:
            try:
                signatures[glob] = parse_signature(sig)
            except Exception as e:  # parse errors become one clear line
                raise UsageError(f"signature {sig!r}: {e}") from None
    matches = resolve_patterns(target, globs)
    out: list[PlannedFunction] = []
    gobins: dict[str, object] = {}
    for i, m in enumerate(matches):
        if m.path not in gobins:
            gobins[m.path] = open_go(m.path)
        gobin = gobins[m.path]
        sig = signatures.get(m.name) or next(
            (s for g, s in signatures.items() if _glob_match(g, m.name)), None)
        pf = (_plan_go(gobin, m, i, strlen, sig) if gobin is not None
              else _plan_c(m, i))
        if pf is not None:
            out.append(pf)
    for gobin in gobins.values():
        if gobin is not None:
            gobin.save_cache()
            gobin.close()
    return out


def _glob_match(glob: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, glob)


def _plan_go(gobin, m: FunctionMatch, index: int, strlen: int, sig) -> PlannedFunction | None:
    gofn = next((f for f in gobin.get_functions(m.name) if f.entry == m.addr), None)
    if gofn is None:
        # ELF symbols name an assembly function 'pkg.f.abi0'; the pclntab says 'pkg.f'.
        gofn = gobin.function_at(m.addr)
        if gofn is None or gofn.entry != m.addr:
            return None
    spec = gobin.spec(gofn, sig)
    layout = gobin.runtime_layout()
    es = spec.entry_site
    entry = ProbeSite(m.path, es.offset, m.name, "entry", site_flags_mask(es), index)
    exits = [ProbeSite(m.path, s.offset, m.name, "return", 0, index) for s in spec.ret_sites]
    args = _captures(spec.params, es.locs, strlen)
    results = [_captures(spec.results, s.locs, strlen) for s in spec.ret_sites]
    # Go code under ABIInternal has g in R14; assembly (ABI0) reads it from TLS.
    goroutine = GoroutineSource(layout.goid_offset, reg=layout.g_register
                                if spec.abi == "ABIInternal" else "",
                                tls_offset=layout.g_tls_offset,
                                fsbase_offset=_fsbase_offset() if spec.abi != "ABIInternal"
                                else 0)
    sp_delta = es.sp_delta
    # The binary's caveats (no DWARF, a newer Go than lumos knows); "no DWARF" only
    # where it shows: a function decoded from raw words rather than a signature.
    notes = spec.notes + tuple(n for n in gobin.notices
                               if n != NO_DWARF_NOTICE or spec.source == "raw")
    return PlannedFunction(m.name, m.path, entry, exits, args, results, spec, goroutine,
                           notes, sp_delta)


_fsbase: int | None = None


def _fsbase_offset() -> int:
    global _fsbase
    if _fsbase is None:
        from lumos.bpf.btf import load_vmlinux_btf
        _fsbase = load_vmlinux_btf().member_offset("task_struct", "thread.fsbase")[0]
    return _fsbase


def _plan_c(m: FunctionMatch, index: int) -> PlannedFunction | None:
    with open_elf(m.path) as elf:
        off = elf.vaddr_to_offset(m.addr)
        first = elf.read_offset(off, 1)
        if not first or first[0] in UNPROBEABLE_FIRST_BYTES:
            return None
        code = elf.read_vaddr(m.addr, m.size) if m.size else b""
        rets = [elf.vaddr_to_offset(a) for a in ret_addresses(code, m.addr)]
    entry = ProbeSite(m.path, off, m.name, "entry", 0, index)
    exits = [ProbeSite(m.path, o, m.name, "return", 0, index) for o in rets]
    return PlannedFunction(m.name, m.path, entry, exits, results=[() for _ in exits])


# -- Go values -> captures -------------------------------------------------------------

def word_loc(loc: Loc) -> WordLoc:
    if loc.kind == "reg":
        return WordLoc.register(loc.reg, min(loc.size, 8) or 8)
    if loc.kind == "stack":
        return WordLoc.stack(loc.sp_offset, min(loc.size, 8) or 8)
    return WordLoc("none", size=min(loc.size, 8) or 8)


def _captures(params, locs_per_param, strlen: int) -> tuple[Capture, ...]:
    out: list[Capture] = []
    for i, p in enumerate(params):
        locs = list(locs_per_param[i]) if i < len(locs_per_param) else []
        name = p.name or (f"~r{i}" if p.is_result else f"arg{i}")
        out.extend(captures_for(name, p.type, locs, strlen))
    return tuple(out)


def captures_for(name: str, t: GoType, locs: list[Loc], strlen: int) -> list[Capture]:
    """The captures of one value. Structs expand into one capture per field, named
    'p.Field', which the printer groups back into p={Field: ...}."""
    k = t.kind
    parts = t.parts()
    if len(locs) == 1 and locs[0].kind == "stack" and (parts is None or len(parts) > 1):
        return _stack_captures(name, t, locs[0].sp_offset, strlen)
    words = [word_loc(x) for x in locs]
    tn = t.display
    if k in INT_KINDS and len(words) == 1:
        return [Capture(name, "int", tuple(words), t.size, type_name=tn)]
    if k in UINT_KINDS and len(words) == 1:
        return [Capture(name, "uint", tuple(words), t.size, type_name=tn)]
    if k == "bool" and len(words) == 1:
        return [Capture(name, "bool", tuple(words), 1, type_name=tn)]
    if k in ("float32", "float64") and len(words) == 1:
        return [Capture(name, "float", tuple(words), t.size, type_name=tn)]
    if k in POINTER_KINDS and len(words) == 1:
        return [Capture(name, "pointer", tuple(words), 8, type_name=tn)]
    if k == "string" and len(words) == 2:
        return [Capture(name, "string", tuple(words), 16, str_max=strlen, type_name=tn)]
    if k == "slice" and len(words) == 3:
        is_bytes = t.elem is not None and t.elem.kind == "uint8"
        return [Capture(name, "bytes" if is_bytes else "slice", tuple(words), 24,
                        str_max=strlen if is_bytes else 0, type_name=tn)]
    if k == "interface" and len(words) == 2:
        return [Capture(name, "iface", tuple(words), 16, type_name=tn)]
    if k == "struct" and t.fields:
        out: list[Capture] = []
        rest = list(locs)
        for f in t.fields:
            n = len(f.type.parts() or ()) if f.type.parts() is not None else None
            if n is None or n > len(rest):
                return [Capture(name, "words", tuple(words), t.size, type_name=tn)]
            out.extend(captures_for(f"{name}.{f.name}", f.type, rest[:n], strlen))
            rest = rest[n:]
        return out
    return [Capture(name, "words", tuple(words), t.size, type_name=tn)]


def _stack_captures(name: str, t: GoType, sp_offset: int, strlen: int) -> list[Capture]:
    """A stack-assigned value comes as one Loc covering all of it: read each field (or
    scalar part) at its own offset, so a string or struct on the stack decodes like one
    in registers. Arrays longer than 1 stay raw words."""
    if t.kind == "struct" and t.fields:
        out: list[Capture] = []
        for f in t.fields:
            out.extend(_stack_value(f"{name}.{f.name}", f.type, sp_offset + f.offset, strlen))
        return out
    parts = t.parts()
    if parts is not None:
        locs = [Loc("stack", p.size, p.path, sp_offset=sp_offset + p.offset) for p in parts]
        return captures_for(name, t, locs, strlen)
    words = tuple(WordLoc.stack(sp_offset + 8 * i) for i in range(t.words))
    return [Capture(name, "words", words, t.size, type_name=t.display)]


def _stack_value(name: str, t: GoType, sp_offset: int, strlen: int) -> list[Capture]:
    if t.size == 0:
        return captures_for(name, t, [], strlen)
    return captures_for(name, t, [Loc("stack", t.size, sp_offset=sp_offset)], strlen)
