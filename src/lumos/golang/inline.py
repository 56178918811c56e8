"""Source positions with inlined frames: pc -> [(function, file, line)], innermost first.

A return address into code where the compiler inlined a call (slog's Logger.Info
inlined into main.handler) has the *inlined* function's file and line in the pclntab's
line table; the call site in the outer function is found through the inline tree, as
the runtime's own unwinder does (runtime/syminl.go):

    idx = pcdata[PCDATA_InlTreeIndex = 2](pc)     # -1: not inside an inlined body
    while idx >= 0:
        call = inltree[idx]                       # funcdata[FUNCDATA_InlTree = 3]
        frame(call's function, file(pc), line(pc))
        pc = entry + call.parentPc; idx = pcdata[2](pc)
    frame(the function itself, file(pc), line(pc))

runtime.inlinedCall (funcdata offsets are from moduledata.gofunc):
    Go 1.20+: funcID u8, _ [3]byte, nameOff i32, parentPc i32, startLine i32   (16 bytes)
    Go 1.19:  parent i16, funcID u8, _ u8, file i32, line i32, func_ i32 (nameOff),
              parentPc i32                                                 (20 bytes)
nameOff indexes the function name table, like a _func's nameOff.
"""

from __future__ import annotations

import bisect
import struct

from lumos.errors import GoBinaryError
from lumos.golang.pclntab import GoFunction, PcLnTab

PCDATA_INLTREE_INDEX = 2
FUNCDATA_INLTREE = 3
_NOFUNCDATA = 0xFFFFFFFF


class Lines:
    """pc -> source frames for one binary. gofunc: moduledata.gofunc (None: no inline
    information is used, frames are the outer function only)."""

    def __init__(self, tab: PcLnTab, read_vaddr, gofunc: int | None):
        self.tab = tab
        self.read_vaddr = read_vaddr
        self.gofunc = gofunc
        self._tables: dict[int, tuple] = {}
        self._cache: dict[int, list[tuple[str, str, int]]] = {}

    def frames(self, pc: int) -> list[tuple[str, str, int]]:
        """[(function, file, line)] at pc (an ELF address inside a function), innermost
        first; [] if pc is in no function."""
        if pc in self._cache:
            return self._cache[pc]
        fn = self.tab.function_at(pc)
        out: list[tuple[str, str, int]] = []
        if fn is not None:
            t = self._tables_of(fn)
            at = pc
            for _ in range(64):  # inlining depth is bounded; a loop means corruption
                idx = _value_at(t[2], at, -1) if t[2] is not None else -1
                if idx < 0 or t[3] is None:
                    break
                name, parent = self._inlined_call(t[3], idx)
                out.append((name, self._file(fn, t[0], at), _value_at(t[1], at, 0)))
                at = fn.entry + parent
            out.append((fn.name, self._file(fn, t[0], at), _value_at(t[1], at, 0)))
        self._cache[pc] = out
        return out

    def _tables_of(self, fn: GoFunction):
        if fn.entry not in self._tables:
            tab = self.tab
            inf = tab.info(fn)
            files = _runs(tab.pcvalue_table(inf.pcfile, fn))
            lines = _runs(tab.pcvalue_table(inf.pcln, fn))
            inl = None
            tree = None
            pcdata = self._pcdata(fn)
            if len(pcdata) > PCDATA_INLTREE_INDEX and pcdata[PCDATA_INLTREE_INDEX]:
                inl = _runs(tab.pcvalue_table(pcdata[PCDATA_INLTREE_INDEX], fn))
            if (self.gofunc is not None and len(inf.funcdata) > FUNCDATA_INLTREE
                    and inf.funcdata[FUNCDATA_INLTREE] != _NOFUNCDATA):
                tree = self.gofunc + inf.funcdata[FUNCDATA_INLTREE]
            self._tables[fn.entry] = (files, lines, inl, tree, inf.cu_offset)
        return self._tables[fn.entry]

    def _pcdata(self, fn: GoFunction) -> tuple[int, ...]:
        tab = self.tab
        off = tab._func_offset(fn.index)
        npcdata = struct.unpack_from("<I", tab.data, off + 28)[0]
        tail = off + (44 if tab.go120 else 40)
        if npcdata > 1024 or tail + 4 * npcdata > len(tab.data):
            raise GoBinaryError(f"pclntab: {fn.name}: record is truncated")
        return struct.unpack_from(f"<{npcdata}I", tab.data, tail)

    def _inlined_call(self, tree: int, idx: int) -> tuple[str, int]:
        if self.tab.go120:
            _fid, name_off, parent_pc, _line = struct.unpack(
                "<B3xiii", self.read_vaddr(tree + 16 * idx, 16))
        else:
            _par, _fid, _file, _line, name_off, parent_pc = struct.unpack(
                "<hBxiiii", self.read_vaddr(tree + 20 * idx, 20))
        return self.tab._cstring(self.tab._funcname + name_off), parent_pc

    def _file(self, fn: GoFunction, files, pc: int) -> str:
        idx = _value_at(files, pc, -1)
        return self.tab._file_name(self.tab.info(fn).cu_offset, idx)


def _runs(table: list[tuple[int, int, int]]):
    return ([lo for lo, _hi, _v in table], [hi for _lo, hi, _v in table],
            [v for _lo, _hi, v in table]) if table else None


def _value_at(runs, pc: int, default: int) -> int:
    if runs is None:
        return default
    los, his, vals = runs
    i = bisect.bisect_right(los, pc) - 1
    if i >= 0 and pc < his[i]:
        return vals[i]
    return default


def open_lines(path: str) -> Lines:
    """Lines of a Go executable (reads its pclntab and moduledata)."""
    from lumos.binary.elf import open_elf
    from lumos.golang.buildinfo import parse_go_version, read_buildinfo
    from lumos.golang.moduledata import find_moduledata, find_pclntab
    elf = open_elf(path)
    found = find_pclntab(elf)
    if found is None:
        raise GoBinaryError(f"{path}: not a Go program (no pclntab)")
    bi = read_buildinfo(elf)
    version = parse_go_version(bi.go_version) if bi else None
    head = PcLnTab(found[1])
    md = find_moduledata(elf, found[0], head.funcname_offset, version[1] if version else None)
    text = md.text if md and md.text else head.header_text_start
    tab = PcLnTab(found[1], text)
    return Lines(tab, elf.read_vaddr, md.gofunc if md else None)
