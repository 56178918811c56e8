"""PC -> source frames of a Go binary, with inlined calls expanded (pclntab's inline tree).

When the compiler inlines g into f, the instructions of g live in f's body: the function
table names only f, and the line table gives g's file:line. Which inlined body a PC
belongs to is in f's pcdata[PCDATA_InlTreeIndex] table (-1 outside any), and
funcdata[FUNCDATA_InlTree] (an offset from moduledata.gofunc) is the tree itself, one
entry per inlined call (runtime/symtab.go inlinedCall):

    Go 1.18-1.19 (20 bytes): parent i16, funcID u8, pad u8, file i32, line i32,
                             func_ i32 (name offset), parentPc i32
    Go 1.20-1.27 (16 bytes): funcID u8, pad [3]u8, nameOff i32, parentPc i32, startLine i32

Both carry the inlined function's name (an offset into the function name table) and
parentPc, the offset from f's entry of an instruction whose position is the call
site in the caller. The runtime's unwinder (runtime.CallersFrames, traceback) walks
the same way, which is what this module does:

    pc -> index = pcdata inline index at pc
    while index >= 0: frame(tree[index].name, file:line at pc); pc = entry + parentPc
    frame(f, file:line at pc)

The layout change at 1.20 coincides with the pclntab magic change (0xfffffff1), so the
table says which one applies. For a return address (every frame but the leaf) the
lookup is at pc-1, inside the CALL, as Go's own tracebacks do.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

from lumos.errors import BinaryFormatError
from lumos.golang.pclntab import (
    FUNCDATA_INLTREE,
    PCDATA_INLTREEINDEX,
    GoFunction,
    PcLnTab,
)

_NOFUNCDATA = 0xFFFFFFFF
FUNCID_WRAPPER = 21  # abi.FuncIDWrapper (1.21+: 21; runtime.funcID_wrapper earlier: 21 too)


@dataclass(frozen=True)
class SourceFrame:
    """One frame of a symbolized stack: a function at file:line; `inlined` when the
    compiler inlined it into the frame below it (the physical caller)."""

    function: str
    file: str
    line: int
    inlined: bool = False

    def __str__(self) -> str:
        where = f" {self.file}:{self.line}" if self.line else ""
        return f"{self.function}{' (inlined)' if self.inlined else ''}{where}"


@dataclass
class _Tables:
    fn: GoFunction
    starts: list[int]                      # line runs, by start pc
    lines: list[tuple[int, str, int]]      # (end pc, file, line)
    inl_starts: list[int]
    inl: list[tuple[int, int]]             # (end pc, inline tree index)
    tree_vaddr: int | None


class SourceLines:
    """Frames for PCs of one Go binary (virtual addresses), cached per function."""

    def __init__(self, tab: PcLnTab, elf, md):
        self.tab = tab
        self.elf = elf
        self.gofunc = md.gofunc if md is not None else None
        self.entry_size = 16 if tab.go120 else 20
        self._tables: dict[int, _Tables] = {}
        self._names: dict[int, str] = {}

    def frames(self, vaddr: int, return_address: bool = False) -> list[SourceFrame]:
        """Innermost first: inlined frames, then the physical function. Empty when vaddr
        is in no function of the table."""
        pc = vaddr - 1 if return_address else vaddr
        fn = self.tab.function_at(pc)
        if fn is None:
            return []
        t = self._tables_of(fn)
        out: list[SourceFrame] = []
        for _ in range(64):  # an inline tree deeper than this is corrupt
            file, line = _lookup(t.starts, t.lines, pc, ("?", 0))
            ix = _lookup(t.inl_starts, t.inl, pc, -1) if t.tree_vaddr is not None else -1
            if ix < 0:
                out.append(SourceFrame(fn.name, file, line, False))
                return out
            entry = self._entry(t, ix)
            if entry is None:
                out.append(SourceFrame(fn.name, file, line, False))
                return out
            name, parent_pc = entry
            out.append(SourceFrame(name, file, line, True))
            pc = fn.entry + parent_pc
        out.append(SourceFrame(fn.name, "?", 0, False))
        return out

    def inlined_names(self, fn: GoFunction) -> set[str]:
        """Names of the functions inlined into fn (its inline tree's entries)."""
        t = self._tables_of(fn)
        if t.tree_vaddr is None:
            return set()
        out = set()
        for ix in {ix for _, ix in t.inl if ix >= 0}:
            entry = self._entry(t, ix)
            if entry is not None:
                out.add(entry[0])
        return out

    def sp_delta(self, vaddr: int) -> int | None:
        """Bytes the function at vaddr has pushed there (pcsp), None if unknown."""
        fn = self.tab.function_at(vaddr)
        return None if fn is None else self.tab.sp_delta_at(fn, vaddr)

    def _tables_of(self, fn: GoFunction) -> _Tables:
        t = self._tables.get(fn.index)
        if t is None:
            runs = self.tab.line_table(fn)
            inl = self.tab.pcvalue_table(self.tab.pcdata_offset(fn, PCDATA_INLTREEINDEX), fn)
            info = self.tab.info(fn)
            tree = None
            if self.gofunc is not None and len(info.funcdata) > FUNCDATA_INLTREE \
                    and info.funcdata[FUNCDATA_INLTREE] != _NOFUNCDATA and inl:
                tree = self.gofunc + info.funcdata[FUNCDATA_INLTREE]
            t = _Tables(fn, [r[0] for r in runs], [(r[1], r[2], r[3]) for r in runs],
                        [r[0] for r in inl], [(r[1], r[2]) for r in inl], tree)
            self._tables[fn.index] = t
        return t

    def _entry(self, t: _Tables, ix: int) -> tuple[str, int] | None:
        """(inlined function's name, parentPc) of inline tree entry ix."""
        try:
            raw = self.elf.read_vaddr(t.tree_vaddr + ix * self.entry_size, self.entry_size)
        except (BinaryFormatError, OSError, ValueError):
            return None
        if len(raw) < self.entry_size:
            return None
        if self.tab.go120:
            _fid, name_off, parent_pc, _start = struct.unpack("<B3xiii", raw)
        else:
            _parent, _fid, _f, _l, name_off, parent_pc = struct.unpack("<hBxiiii", raw)
        if not 0 <= parent_pc < t.fn.size:
            return None
        name = self._names.get(name_off)
        if name is None:
            name = self._names[name_off] = self.tab.funcname(name_off)
        return name, parent_pc


def _lookup(starts: list[int], runs: list, pc: int, default):
    i = bisect.bisect_right(starts, pc) - 1
    if i < 0 or pc >= runs[i][0]:
        return default
    v = runs[i]
    return v[1:] if len(v) > 2 else v[1]
