"""Reading a running program's variables: an ELF data symbol -> its address in the
process (through /proc/PID/maps, PIE load bias included) -> /proc/PID/mem.

Needs a symbol table: a stripped binary has none, and the caller gets None.
"""

from __future__ import annotations

import struct

from lumos.binary.elf import open_elf
from lumos.binary.procmaps import read_maps
from lumos.errors import LumosError


def _symbol(path: str, name: str) -> int | None:
    with open_elf(path) as elf:
        symtab = elf.section(".symtab")
        if symtab is None:
            return None
        syms = symtab.get_symbol_by_name(name)
        return syms[0]["st_value"] if syms else None


def runtime_address(pid: int, path: str, vaddr: int) -> int | None:
    """Where the file's virtual address vaddr is in the process, or None: the load bias
    is where the file's first page is mapped less the vaddr it was linked for (0 for a
    non-PIE), which also places .bss, mapped anonymously after the file."""
    with open_elf(path) as elf:
        first = min(elf.segments, key=lambda s: s.offset, default=None)
    if first is None:
        return None
    base = first.vaddr - first.offset
    for m in read_maps(pid):
        if m.path == path and m.offset == 0:
            return vaddr - base + m.start - (base & 0xFFF if base & 0xFFF else 0)
    return None


def read_go_int(target, name: str) -> int | None:
    """The int variable `name` (e.g. runtime.MemProfileRate) of the target process."""
    if not target.pid or not target.exe:
        return None
    try:
        vaddr = _symbol(target.exe, name)
        addr = runtime_address(target.pid, target.exe, vaddr) if vaddr is not None else None
        if addr is None:
            return None
        with open(f"/proc/{target.pid}/mem", "rb") as f:
            f.seek(addr)
            return struct.unpack("<q", f.read(8))[0]
    except (LumosError, OSError, struct.error):
        return None
