"""Arguments of functions that DWARF does not describe, as raw machine words.

A stripped Go binary still says how many arguments a function takes and how they split
into words: FUNCDATA_ArgInfo, the table Go tracebacks print `main.f(0x1, {0xc000, 0x5})`
from, lists (offset, size) of each scalar component of the first 10 arguments, with
braces around aggregates (runtime/traceback.go printArgs; the format is in
internal/abi: 0xff end, 0xfe start aggregate, 0xfd end aggregate, 0xfc "...", 0xfb "_").
Offsets are in the argument frame, where stack-assigned arguments come first and the
spill slots of register-assigned ones after the results, so an argument at a lower
offset than an earlier one was passed on the stack. Whether a word was an integer or a
float is lost: callers assign every word to integer registers and say so.

Assembly (ABI0) functions have no ArgInfo; their argument+result size in the pclntab
gives the stack words.
"""

from __future__ import annotations

from lumos.golang import arginfo
from lumos.golang.model import ABI0, Param
from lumos.golang.pclntab import FuncInfo
from lumos.golang.types import Field, GoType, word

TRACE_ARGS_LIMIT = 10   # abi.TraceArgsLimit


def raw_params(elf, md, info: FuncInfo, abi: str) -> tuple[list[Param], list[str]]:
    """(parameters as raw words, notes). `md` is the ModuleData (for gofunc)."""
    if abi == ABI0:
        n = max(info.args, 0) // 8
        notes = [f"assembly (ABI0) without a known signature: {n} stack words of arguments "
                 "and results"] if n else []
        return [Param(f"w{i}", word()) for i in range(n)], notes
    if info.is_asm:  # an <ABIInternal> assembly body (runtime.memmove): no ArgInfo either
        n = min(max(info.args, 0) // 8, 9)
        notes = [f"assembly (ABIInternal) without a known signature: {n} words of arguments "
                 "and results, as if in integer registers"] if n else []
        return [Param(f"w{i}", word()) for i in range(n)], notes
    decoded = _arg_info(elf, md, info)
    if decoded is None:
        return [], ["argument layout unknown (no DWARF, no traceback argument info)"]
    groups, truncated = decoded
    notes = [f"more arguments than Go's traceback information describes "
             f"({TRACE_ARGS_LIMIT})"] if truncated else []
    params = []
    highest = -1
    for i, (agg, comps) in enumerate(groups):
        first = comps[0][0] if comps else None
        on_stack = first is not None and first < highest
        highest = max(highest, first if first is not None else -1)
        rel = [(o - (first or 0), sz) for o, sz in comps]
        if not agg and not on_stack:
            params.append(Param(f"arg{i}", word(rel[0][1])))
            continue
        size = max((o + sz for o, sz in rel), default=0)
        name = "{" + ", ".join(f"w{k}" for k in range(len(rel))) + "}"
        if on_stack:  # typed as an array: never register-assigned, like the original
            params.append(Param(f"arg{i}", GoType("array", (size + 7) // 8 * 8, name, 8,
                                                  elem=word(), length=2)))
        else:
            fields = tuple(Field(f"w{k}", off, word(sz)) for k, (off, sz) in enumerate(rel))
            params.append(Param(f"arg{i}", GoType("struct", size, name, 8, fields=fields)))
    return params, notes


def _arg_info(elf, md, info: FuncInfo):
    """([(is aggregate, [(frame offset, size)...]) per argument], truncated), or None
    (components whose offset Go could not write are left out)."""
    stream = arginfo.read(elf, md, info)
    if stream is None:
        return None
    groups, truncated = arginfo.groups(stream)
    return [(agg, [c for c in comps if c[0] >= 0]) for agg, comps in groups], truncated
