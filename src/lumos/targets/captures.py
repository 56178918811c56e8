"""Go values -> captures: which machine words (registers, stack slots) make up a value
of a Go type at a probe site, and how the decoder is to read them back.

Structs expand into one capture per field, named 'p.Field'; strings are (ptr, len)
with a bounded copy of the bytes; a value split between readable and unreadable
pieces stays unreadable ('?'), never half-read.
"""

from __future__ import annotations

from dataclasses import replace

from lumos.golang.model import Loc
from lumos.golang.types import GoType
from lumos.probes.capture import Capture, WordLoc

INT_KINDS = {"int", "int8", "int16", "int32", "int64"}
UINT_KINDS = {"uint", "uint8", "uint16", "uint32", "uint64", "uintptr"}
POINTER_KINDS = {"pointer", "map", "chan", "func", "unsafe.Pointer"}
IFACE_WINDOW = 48  # bytes behind an interface's data word: time.Time, *fs.PathError, ...


def _elem_kind(t: GoType | None) -> tuple[str, int]:
    """(capture.ELEM_KINDS kind, size) of a slice element lumos reads, or ("", 0)."""
    if t is None:
        return "", 0
    if t.kind in INT_KINDS:
        return "int", t.size
    if t.kind in UINT_KINDS:
        return "uint", t.size
    if t.kind == "bool":
        return "bool", 1
    if t.kind in ("float32", "float64"):
        return "float", t.size
    if t.kind == "string":
        return "string", 16
    if t.kind == "pointer":  # %#v: (*main.T)(0xc000010000), (*main.T)(nil)
        return "pointer", 8
    return "", 0


def word_loc(loc: Loc) -> WordLoc:
    if loc.kind == "reg":
        return WordLoc.register(loc.reg, min(loc.size, 8) or 8)
    if loc.kind == "stack":
        return WordLoc.stack(loc.sp_offset, min(loc.size, 8) or 8)
    return WordLoc("none", size=min(loc.size, 8) or 8)


# FuncSpec.source -> where the locations of its values come from (for listings)
LOCATION_SOURCES = {"dwarf": "DWARF", "signature": "ABI rules on the given signature",
                    "raw": "traceback ArgInfo words"}


def param_captures(params, locs_per_param, strlen: int, source: str = "",
                   max_elems: int = 0) -> tuple[Capture, ...]:
    out: list[Capture] = []
    why = LOCATION_SOURCES.get(source, source)
    for i, p in enumerate(params):
        locs = list(locs_per_param[i]) if i < len(locs_per_param) else []
        name = p.name or (f"~r{i}" if p.is_result else f"arg{i}")
        out.extend(replace(c, source=why) for c in captures_for(name, p.type, locs, strlen,
                                                                 max_elems))
    return tuple(_elements_within_budget(out, max_elems, strlen))


# Slice elements per record (a function's arguments, or its results at one RET): every
# record of a program is as large as its largest variant, so one function with seven
# []string fields (crypto/x509/pkix.Name) would make every record of `trace '*'` 5.6 KiB.
# One full []string always fits; past the budget, later slices read fewer elements
# (their ...(+N) says how many more there are) or none (shown by len and cap).
SLICE_BUDGET = 1024


def _elements_within_budget(caps: list[Capture], max_elems: int, strlen: int) -> list[Capture]:
    budget = max(SLICE_BUDGET, max_elems * (16 + ((strlen + 7) & ~7)))
    out = []
    for c in caps:
        if c.reads_elems:
            per = c.elem_size + (((c.str_max + 7) & ~7) if c.elem == "string" else 0)
            n = min(c.max_elems, budget // per)
            c = replace(c, max_elems=n) if n else replace(
                c, elem="", elem_size=0, max_elems=0, str_max=0)
            budget -= c.record_size - 24
        out.append(c)
    return out


def captures_for(name: str, t: GoType, locs: list[Loc], strlen: int,
                 max_elems: int = 0) -> list[Capture]:
    """The captures of one value. Structs expand into one capture per field, named
    'p.Field', which the printer groups back into p={Field: ...}. max_elems: how many
    elements of a slice of numbers, bools or strings to read (0: only ptr, len, cap)."""
    k = t.kind
    parts = t.parts()
    if len(locs) == 1 and locs[0].kind == "stack" and (parts is None or len(parts) > 1):
        return _stack_captures(name, t, locs[0].sp_offset, strlen, max_elems)
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
        if is_bytes:
            return [Capture(name, "bytes", tuple(words), 24, str_max=strlen, type_name=tn)]
        elem, size = _elem_kind(t.elem)
        if elem and max_elems:
            return [Capture(name, "slice", tuple(words), 24, type_name=tn, elem=elem,
                            elem_size=size, max_elems=max_elems,
                            str_max=strlen if elem == "string" else 0,
                            elem_type=t.elem.display)]
        return [Capture(name, "slice", tuple(words), 24, type_name=tn)]
    if k == "interface" and len(words) == 2:  # decoded by value (golang.anyvalue)
        return [Capture(name, "iface", tuple(words), 16, str_max=strlen, type_name=tn,
                        deref=IFACE_WINDOW, itab=not t.empty_interface,
                        error_follows=t.name == "error")]
    if k == "struct" and t.fields:
        out: list[Capture] = []
        rest = list(locs)
        for f in t.fields:
            n = len(f.type.parts() or ()) if f.type.parts() is not None else None
            if n is None or n > len(rest):
                return [Capture(name, "words", tuple(words), t.size, type_name=tn)]
            out.extend(captures_for(f"{name}.{f.name}", f.type, rest[:n], strlen, max_elems))
            rest = rest[n:]
        return out
    return [Capture(name, "words", tuple(words), t.size, type_name=tn)]


def _stack_captures(name: str, t: GoType, sp_offset: int, strlen: int,
                    max_elems: int = 0) -> list[Capture]:
    """A stack-assigned value comes as one Loc covering all of it: read each field (or
    scalar part) at its own offset, so a string or struct on the stack decodes like one
    in registers. Arrays longer than 1 stay raw words."""
    if t.kind == "struct" and t.fields:
        out: list[Capture] = []
        for f in t.fields:
            out.extend(_stack_value(f"{name}.{f.name}", f.type, sp_offset + f.offset, strlen,
                                    max_elems))
        return out
    parts = t.parts()
    if parts is not None:
        locs = [Loc("stack", p.size, p.path, sp_offset=sp_offset + p.offset) for p in parts]
        return captures_for(name, t, locs, strlen, max_elems)
    words = tuple(WordLoc.stack(sp_offset + 8 * i) for i in range(t.words))
    return [Capture(name, "words", words, t.size, type_name=t.display)]


def _stack_value(name: str, t: GoType, sp_offset: int, strlen: int,
                 max_elems: int = 0) -> list[Capture]:
    if t.size == 0:
        return captures_for(name, t, [], strlen, max_elems)
    return captures_for(name, t, [Loc("stack", t.size, sp_offset=sp_offset)], strlen,
                        max_elems)


# C values (targets/csig.py) -> captures, by the System V AMD64 calling convention
_C_KINDS = {"int": "int", "uint": "uint", "bool": "bool", "cstring": "cstring",
            "pointer": "pointer", "hex": "hex"}


def _c_capture(name: str, t, loc: WordLoc, strlen: int, source: str) -> Capture:
    if t.kind == "float":  # in an XMM register: no uprobe can read it
        return Capture(name, "float", (WordLoc("none", size=t.size),), t.size,
                       type_name=t.name, source="XMM register")
    kind = _C_KINDS[t.kind]
    return Capture(name, kind, (loc,), t.size if kind in ("int", "uint") else 8,
                   str_max=strlen if kind == "cstring" else 0, type_name=t.name,
                   source=source)


def c_captures(sig, strlen: int) -> tuple[tuple[Capture, ...], tuple[Capture, ...]]:
    """(argument captures at the first instruction, result captures at the return)."""
    from lumos.targets.csig import ARG_REGS, CType
    if sig is None:  # the six argument registers and RAX, as bpftrace's arg0..arg5, retval
        args = tuple(Capture(f"arg{i}", "hex", (WordLoc.register(r),), 8, type_name="long",
                             source="SysV argument register") for i, r in enumerate(ARG_REGS))
        return args, (Capture("~r0", "hex", (WordLoc.register("ax"),), 8,
                              type_name="long", source="RAX"),)
    out, ints, stack = [], 0, 0
    src = f"SysV ABI, {sig.source}"
    for p in sig.params:
        if p.type.kind == "float":
            out.append(_c_capture(p.name, p.type, WordLoc("none"), strlen, src))
            continue
        if ints < len(ARG_REGS):
            loc = WordLoc.register(ARG_REGS[ints], min(p.type.size, 8) or 8)
            ints += 1
        else:  # 7th integer argument on: above the return address at entry
            stack += 1
            loc = WordLoc.stack(8 * stack, min(p.type.size, 8) or 8)
        out.append(_c_capture(p.name, p.type, loc, strlen, src))
    res: tuple[Capture, ...] = ()
    result = sig.result
    if result is not None and result.kind != "void":
        res = (_c_capture("~r0", result if result.kind != "float" else CType(
            "float", result.size, result.name), WordLoc.register("ax",
                                                              min(result.size, 8) or 8),
            strlen, "RAX"),)
    return tuple(out), res
