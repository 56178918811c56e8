"""Runtime addresses -> 'function+offset', for stack traces and goroutine start PCs.

address -> (file, file offset) through /proc/PID/maps (re-read when an address falls
outside what is known: the process may have mapped more) -> ELF virtual address ->
the function: Go's pclntab when the file is a Go binary, else ELF symbols.

frames() gives source frames instead: for Go code every inlined call expanded from the
pclntab's inline tree, each with file:line (lumos.golang.inline), for C code the ELF
symbol. Stacks (trace --stack, stacks, profile, allocs) and pprof output use it.
"""

from __future__ import annotations

import bisect
import time

from lumos.binary.elf import open_elf
from lumos.binary.procmaps import Mapping, find_mapping, read_maps
from lumos.errors import LumosError
from lumos.golang.inline import SourceFrame
from lumos.targets.patterns import functions_of


class Symbolizer:
    def __init__(self, pid: int | None, exe: str | None = None):
        self.pid = pid
        self.exe = exe
        self._maps: list[Mapping] = []
        self._files: dict[str, tuple[object, list[int], list]] = {}
        self._cache: dict[int, str] = {}
        self._lines: dict[str, object] = {}   # path -> SourceLines, or None (not Go)
        self._frames: dict[tuple[int, bool], list[SourceFrame]] = {}

    def use_maps(self, maps: list[Mapping]) -> None:
        """Start from mappings read earlier (a -c command's, at its first instruction:
        targets.launch.Launched.maps), so a command that is gone can be symbolized."""
        if maps:
            self._maps = list(maps)

    def load_maps(self, timeout_s: float = 1.0) -> None:
        """Read the process's mappings now, once its executable is mapped: a command
        started with -c may have exited, its maps gone, by the time its events are
        decoded (then a PIE's addresses could not be placed)."""
        if self.pid is None:
            return
        end = time.monotonic() + timeout_s
        while True:
            try:
                self._maps = read_maps(self.pid)
            except LumosError:
                return
            if self.exe is None or any(m.path == self.exe for m in self._maps):
                return
            if time.monotonic() >= end:
                return
            time.sleep(0.001)  # exec has not mapped the program yet

    def _mapping(self, addr: int) -> Mapping | None:
        m = find_mapping(self._maps, addr)
        if m is None and self.pid is not None:
            try:
                self._maps = read_maps(self.pid)
            except LumosError:
                return None
            m = find_mapping(self._maps, addr)
        return m

    def _file(self, path: str):
        if path not in self._files:
            try:
                syms = functions_of(path)
                with open_elf(path) as elf:
                    segs = elf.segments
            except LumosError:
                syms, segs = [], []
            self._files[path] = (segs, [s.addr for s in syms], syms)
        return self._files[path]

    def vaddr_in_file(self, addr: int) -> tuple[str, int] | None:
        """(path, ELF virtual address) of a runtime address."""
        m = self._mapping(addr)
        if m is None or not m.path.startswith("/"):
            if self.pid is None and self.exe:  # no process to ask: assume no load bias
                return self.exe, addr
            return None
        off = addr - m.start + m.offset
        segs, _, _ = self._file(m.path)
        for seg in segs:
            if seg.offset <= off < seg.offset + seg.filesz:
                return m.path, off - seg.offset + seg.vaddr
        return None

    def name(self, addr: int) -> str | None:
        """The function containing addr, or None."""
        where = self.vaddr_in_file(addr)
        if where is None:
            return None
        path, vaddr = where
        _, addrs, syms = self._file(path)
        i = bisect.bisect_right(addrs, vaddr) - 1
        if i < 0:
            return None
        sym = syms[i]
        if sym.size and vaddr >= sym.addr + sym.size:
            return None
        return sym.name

    def describe(self, addr: int) -> str:
        if addr not in self._cache:
            where = self.vaddr_in_file(addr)
            name = self.name(addr)
            if name is None or where is None:
                self._cache[addr] = f"{addr:#x}"
            else:
                _, addrs, syms = self._file(where[0])
                i = bisect.bisect_right(addrs, where[1]) - 1
                self._cache[addr] = f"{name}+{where[1] - syms[i].addr:#x}"
        return self._cache[addr]

    def frames(self, addr: int, return_address: bool = False) -> list[SourceFrame]:
        """Source frames at a runtime address, innermost first (inlined calls expanded
        for Go code). return_address: addr is where a call returns to (every stack
        frame but the leaf), so its call site is looked up. An address in no known
        function gives one frame named by the address."""
        key = (addr, return_address)
        got = self._frames.get(key)
        if got is None:
            got = self._frames[key] = self._source_frames(addr, return_address)
        return got

    def _source_frames(self, addr: int, return_address: bool) -> list[SourceFrame]:
        where = self.vaddr_in_file(addr)
        if where is not None:
            lines = self._source_lines(where[0])
            if lines is not None:
                got = lines.frames(where[1], return_address)
                if got:
                    return got
            name = self.name(addr)
            if name is not None:
                return [SourceFrame(name, "", 0)]
        return [SourceFrame(f"{addr:#x}", "", 0)]

    def sp_delta(self, addr: int) -> int | None:
        """Bytes the Go function at addr has pushed on its stack there (pclntab pcsp):
        0 means the frame-pointer walk from this address skipped its caller."""
        where = self.vaddr_in_file(addr)
        lines = self._source_lines(where[0]) if where else None
        return lines.sp_delta(where[1]) if lines is not None else None

    def _source_lines(self, path: str):
        if path not in self._lines:
            from lumos.golang.gobinary import open_go_binary
            try:  # kept open: the inline tree is read from the file as frames are asked for
                self._lines[path] = open_go_binary(path).source_lines()
            except LumosError:
                self._lines[path] = None
        return self._lines[path]
