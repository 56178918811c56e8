"""The Go function table (pclntab): every function's name, entry, end, file and lines.

Owns the layouts written by Go 1.18 through 1.27 (header magic 0xfffffff0 for 1.18-1.19,
0xfffffff1 for 1.20 on), as runtime/symtab.go and runtime/runtime2.go describe them:

    pcHeader: magic u32, pad u8 u8, minLC u8, ptrSize u8, then ptrSize words:
              nfunc, nfiles, textStart (0 from Go 1.26 on), funcnameOffset, cuOffset,
              filetabOffset, pctabOffset, pclnOffset      (offsets from the header)
    functab:  nfunc+1 pairs (entryOff u32, funcOff u32); the last entryOff is etext
    _func:    entryOff u32, nameOff i32, args i32, deferreturn u32, pcsp u32, pcfile u32,
              pcln u32, npcdata u32, cuOffset u32, [startLine i32 from 1.20],
              funcID u8, flag u8, pad u8, nfuncdata u8, pcdata[npcdata] u32,
              funcdata[nfuncdata] u32

Entry PCs are offsets from the module's text start (`runtime.text`), which is not always
the `.text` section address (cgo binaries start with C code); the caller passes it in
(see moduledata.py). The table survives `-ldflags=-s -w`, so it is the symbol source of
stripped binaries. Every read is bounds-checked: a damaged table raises GoFormatError
(a BinaryFormatError and a GoBinaryError).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from lumos.binary.reader import uvarint
from lumos.errors import GoBinaryError, GoFormatError

MAGIC_GO118 = 0xFFFFFFF0
MAGIC_GO120 = 0xFFFFFFF1
_OLD_MAGICS = {0xFFFFFFFB: "1.2-1.15", 0xFFFFFFFA: "1.16-1.17"}
MAGIC_BYTES = (struct.pack("<I", MAGIC_GO120) + b"\x00\x00\x01\x08",
               struct.pack("<I", MAGIC_GO118) + b"\x00\x00\x01\x08")

FUNCFLAG_TOPFRAME, FUNCFLAG_SPWRITE, FUNCFLAG_ASM = 1, 2, 4
FUNCDATA_INLTREE, FUNCDATA_ARGINFO = 3, 5
PCDATA_INLTREEINDEX = 2
_NOFUNCDATA = 0xFFFFFFFF


@dataclass(frozen=True, order=True)
class GoFunction:
    """One function of a Go binary: name, [entry, end) virtual addresses, table index."""

    entry: int
    name: str = field(compare=False)
    end: int = field(compare=False)
    index: int = field(compare=False, default=-1)

    @property
    def size(self) -> int:
        return self.end - self.entry

    @property
    def package(self) -> str:
        """Import path of the function's package: "net/http" for net/http.(*Server).Serve."""
        return package_of(self.name)


def package_of(name: str) -> str:
    """Package path of a Go symbol name (the part before the first '.' after the last '/')."""
    slash = name.rfind("/")
    # Generic instantiations carry brackets that may contain '/' and '.': cut them first.
    bracket = name.find("[")
    if bracket >= 0:
        slash = name.rfind("/", 0, bracket)
    dot = name.find(".", slash + 1)
    return name[:dot] if dot > 0 else name


@dataclass(frozen=True)
class FuncInfo:
    """The fixed fields of a function's _func record that lumos uses."""

    args: int          # bytes of arguments + results in the caller's frame (ABI0 view)
    deferreturn: int
    pcsp: int
    pcfile: int
    pcln: int
    cu_offset: int
    start_line: int    # 0 before Go 1.20
    func_id: int
    flag: int
    funcdata: tuple[int, ...]   # offsets from moduledata.gofunc, 0xffffffff when absent

    @property
    def is_asm(self) -> bool:
        return bool(self.flag & FUNCFLAG_ASM)


class PcLnTab:
    """A parsed pclntab. `data` is the table's bytes starting at the pcHeader."""

    def __init__(self, data: bytes, text_start: int | None = None):
        self.data = data
        if len(data) < 72:
            raise GoFormatError("pclntab is truncated (shorter than its header)")
        magic, pad, self.min_lc, self.ptr_size = struct.unpack_from("<IHBB", data, 0)
        if magic in _OLD_MAGICS:
            raise GoBinaryError(f"pclntab of Go {_OLD_MAGICS[magic]} is not supported "
                                "(lumos reads Go 1.18 and later)")
        if magic not in (MAGIC_GO118, MAGIC_GO120) or pad != 0 or self.ptr_size != 8 \
                or self.min_lc not in (1, 2, 4):
            raise GoFormatError("no valid pclntab (bad header magic)")
        self.go120 = magic == MAGIC_GO120
        words = struct.unpack_from("<8Q", data, 8)
        self.nfunc, self.nfiles, self.header_text_start = words[0], words[1], words[2]
        offs = words[3:]
        for o in offs:
            if o >= len(data):
                raise GoFormatError(f"pclntab header points outside the table ({o:#x})")
        self._funcname, self._cutab, self._filetab, self._pctab, self._pcln = offs
        if self.nfunc == 0 or self._pcln + 8 * (self.nfunc + 1) > len(data):
            raise GoFormatError("pclntab function table is truncated")
        self.text_start = text_start if text_start is not None else self.header_text_start
        self._functab = struct.unpack_from(f"<{2 * (self.nfunc + 1)}I", data, self._pcln)
        entries = self._functab[0::2]
        if any(b < a for a, b in zip(entries, entries[1:], strict=False)):
            raise GoFormatError("pclntab function table is not sorted (corrupt)")
        self._entries = entries  # offsets from text start; last one is etext
        self._functions: list[GoFunction] | None = None
        self._by_name: dict[str, GoFunction] | None = None

    @property
    def funcname_offset(self) -> int:
        """Offset of the function name table from the header (moduledata points there)."""
        return self._funcname

    # -- functions -----------------------------------------------------------------

    @property
    def functions(self) -> list[GoFunction]:
        """Every function, sorted by entry address."""
        if self._functions is None:
            self._functions = [self._make(i) for i in range(self.nfunc)]
        return self._functions

    def get_function(self, name: str) -> GoFunction | None:
        if self._by_name is None:
            self._by_name = {}
            for f in self.functions:
                self._by_name.setdefault(f.name, f)
        return self._by_name.get(name)

    def function_at(self, vaddr: int) -> GoFunction | None:
        """The function whose [entry, end) holds vaddr (e.g. a funcval's PC)."""
        off = vaddr - self.text_start
        i = bisect.bisect_right(self._entries, off, 0, self.nfunc) - 1
        if i < 0 or off >= self._entries[i + 1]:
            return None
        return self.functions[i]

    def _func_offset(self, i: int) -> int:
        off = self._pcln + self._functab[2 * i + 1]
        if off + 44 > len(self.data):
            raise GoFormatError(f"pclntab: function {i} record is outside the table")
        return off

    def _make(self, i: int) -> GoFunction:
        off = self._func_offset(i)
        name_off = struct.unpack_from("<i", self.data, off + 4)[0]
        return GoFunction(self.text_start + self._entries[i], self._cstring(
            self._funcname + name_off), self.text_start + self._entries[i + 1], i)

    def _cstring(self, off: int) -> str:
        if not 0 <= off < len(self.data):
            raise GoFormatError(f"pclntab: string offset {off:#x} outside the table")
        end = self.data.find(b"\0", off)
        if end < 0:
            raise GoFormatError("pclntab: unterminated string")
        return self.data[off:end].decode("utf-8", "replace")

    def info(self, fn: GoFunction) -> FuncInfo:
        off = self._func_offset(fn.index)
        d = self.data
        args, defret, pcsp, pcfile, pcln, npcdata, cu = struct.unpack_from("<iIIIIII", d, off + 8)
        if self.go120:
            start_line = struct.unpack_from("<i", d, off + 36)[0]
            fid, flag, _, nfd = struct.unpack_from("<BBBB", d, off + 40)
            tail = off + 44
        else:
            start_line = 0
            fid, flag, _, nfd = struct.unpack_from("<BBBB", d, off + 36)
            tail = off + 40
        fd_off = tail + 4 * npcdata
        if npcdata > 1024 or fd_off + 4 * nfd > len(d):
            raise GoFormatError(f"pclntab: {fn.name}: record is truncated")
        funcdata = struct.unpack_from(f"<{nfd}I", d, fd_off)
        return FuncInfo(args, defret, pcsp, pcfile, pcln, cu, start_line, fid, flag, funcdata)

    def first_inlined(self, fn: GoFunction, gofunc: int | None, read_vaddr,
                      minor: int | None) -> str | None:
        """Name of the first function inlined into fn (entry 0 of its FUNCDATA_InlTree),
        or None. runtime.inlinedCall is {parent i16, funcID u8, _ u8, file i32,
        line i32, nameOff i32, parentPc i32} up to Go 1.19, {funcID u8, _ [3]u8,
        nameOff i32, parentPc i32, startLine i32} from 1.20."""
        inf = self.info(fn)
        if gofunc is None or minor is None or len(inf.funcdata) <= FUNCDATA_INLTREE \
                or inf.funcdata[FUNCDATA_INLTREE] == _NOFUNCDATA:
            return None
        entry = read_vaddr(gofunc + inf.funcdata[FUNCDATA_INLTREE], 20)
        if len(entry) < 20:
            return None
        name_off = struct.unpack_from("<i", entry, 12 if minor <= 19 else 4)[0]
        try:
            return self._cstring(self._funcname + name_off)
        except GoFormatError:
            return None
    def pcdata_offset(self, fn: GoFunction, table: int) -> int:
        """Offset (in the pc-value table area) of the function's pcdata[table], 0 if none."""
        off = self._func_offset(fn.index)
        npcdata = struct.unpack_from("<I", self.data, off + 28)[0]
        if table >= npcdata:
            return 0
        p = off + (44 if self.go120 else 40) + 4 * table
        if p + 4 > len(self.data):
            raise GoBinaryError(f"pclntab: {fn.name}: record is truncated")
        return struct.unpack_from("<I", self.data, p)[0]

    def funcname(self, name_off: int) -> str:
        """A name from the function name table (inline tree entries point there)."""
        return self._cstring(self._funcname + name_off)

    def file_name(self, cu_offset: int, index: int) -> str:
        return self._file_name(cu_offset, index)

    # -- pc-value tables ------------------------------------------------------------

    def pcvalue_table(self, table_off: int, fn: GoFunction) -> list[tuple[int, int, int]]:
        """Decode a pc-value table into (start pc, end pc, value) runs for fn."""
        d, p = self.data, self._pctab + table_off
        if table_off == 0 or p >= len(d):
            return []
        out: list[tuple[int, int, int]] = []
        pc, val, first = fn.entry, -1, True
        limit = fn.end
        while pc < limit:
            uv, p = _uvarint(d, p)
            if uv == 0 and not first:
                break
            val += -((uv >> 1) + 1) if uv & 1 else uv >> 1
            delta, p = _uvarint(d, p)
            nxt = pc + delta * self.min_lc
            out.append((pc, nxt, val))
            pc, first = nxt, False
            if len(out) > limit - fn.entry + 16:  # more runs than bytes: corrupt
                raise GoFormatError(f"pclntab: {fn.name}: pc-value table does not end")
        return out

    def sp_delta_at(self, fn: GoFunction, pc: int) -> int | None:
        """Bytes the function has pushed on its stack at pc (0 at entry), from pcsp."""
        for lo, hi, val in self.pcvalue_table(self.info(fn).pcsp, fn):
            if lo <= pc < hi:
                return val
        return None

    def line_table(self, fn: GoFunction) -> list[tuple[int, int, str, int]]:
        """(start pc, end pc, file, line) runs covering the function."""
        inf = self.info(fn)
        files = self.pcvalue_table(inf.pcfile, fn)
        lines = self.pcvalue_table(inf.pcln, fn)
        out = []
        for lo, hi, line in lines:
            name = "?"
            for flo, fhi, fidx in files:
                if flo <= lo < fhi:
                    name = self._file_name(inf.cu_offset, fidx)
                    break
            out.append((lo, hi, name, line))
        return out

    def source_of(self, fn: GoFunction) -> tuple[str, int]:
        """(file, line) of the function's first instruction; ("?", 0) if unknown."""
        inf = self.info(fn)
        fidx = self._first_value(inf.pcfile)
        file = self._file_name(inf.cu_offset, fidx) if fidx is not None else "?"
        line = inf.start_line or self._first_value(inf.pcln) or 0
        return file, line

    def _first_value(self, table_off: int) -> int | None:
        """The value a pc-value table starts with (only its first entry is decoded)."""
        p = self._pctab + table_off
        if table_off == 0 or p >= len(self.data):
            return None
        uv, _ = _uvarint(self.data, p)
        return -1 + (-((uv >> 1) + 1) if uv & 1 else uv >> 1)

    def _file_name(self, cu_offset: int, index: int) -> str:
        if index < 0:
            return "?"
        p = self._cutab + 4 * (cu_offset + index)
        if p + 4 > len(self.data):
            return "?"
        off = struct.unpack_from("<I", self.data, p)[0]
        if off == 0xFFFFFFFF:
            return "?"
        try:
            return self._cstring(self._filetab + off)
        except GoFormatError:
            return "?"


def _uvarint(d: bytes, p: int) -> tuple[int, int]:
    return uvarint(d, p, "pclntab: pc-value table", GoFormatError)


def looks_like_pclntab(data: bytes, off: int) -> bool:
    """Cheap plausibility check of a pcHeader candidate found by searching for its magic."""
    if off + 72 > len(data):
        return False
    nfunc, nfiles, _, *offs = struct.unpack_from("<8Q", data, off + 8)
    return (0 < nfunc < 10_000_000 and 0 < nfiles < 10_000_000
            and all(0 < o < len(data) - off for o in offs) and offs == sorted(offs))
