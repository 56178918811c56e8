"""Finding a Go binary's tables: the pclntab and runtime.firstmoduledata.

The pclntab is the `.gopclntab` section, or `.data.rel.ro.gopclntab` in PIE builds of
Go <= 1.23, or, in externally linked PIE builds (cgo) that merge it into `.data.rel.ro`,
the one place its header magic occurs. `runtime.firstmoduledata` starts with a pointer
to the pclntab header followed by the slice {ptr, len, cap} of the function name table,
which is how it is found without symbols. It holds the text start (needed since Go 1.26
stopped storing it in the pclntab header) and `gofunc`, the base of funcdata offsets.

Word indices in runtime.moduledata (runtime/symtab.go), stable since Go 1.18:
0 pcHeader, 1-3 funcnametab, ..., 20 minpc, 21 maxpc, 22 text, 23 etext; gofunc moved
as fields were added: 38 up to Go 1.19, 40 for 1.20-1.26, 43 from 1.27 (typedesclen,
itaboffset, itabsize were added).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lumos.golang.pclntab import MAGIC_BYTES, looks_like_pclntab

TYPE_CHECKING = False  # typing costs 10 ms to import; annotations are strings anyway
if TYPE_CHECKING:
    from lumos.binary.elf import ElfBinary

_PCLNTAB_SECTIONS = (".gopclntab", ".data.rel.ro.gopclntab")
_MODULEDATA_SECTIONS = (".go.module", ".noptrdata", ".data", ".data.rel.ro")
_SEARCH_SECTIONS = (".data.rel.ro", ".rodata")


@dataclass(frozen=True)
class ModuleData:
    """The fields of runtime.firstmoduledata that lumos needs (virtual addresses)."""

    vaddr: int
    text: int
    etext: int
    minpc: int
    maxpc: int
    gofunc: int | None   # None when the layout for this Go version is unknown


def gofunc_index(minor: int | None) -> int | None:
    """Word index of moduledata.gofunc for Go 1.<minor> (None: unknown version)."""
    if minor is None or minor < 18:
        return None
    if minor <= 19:
        return 38
    if minor <= 26:
        return 40
    if minor == 27:
        return 43
    return None


def find_pclntab(elf: ElfBinary) -> tuple[int, bytes] | None:
    """(vaddr, bytes from the header to the end of its section), or None if absent."""
    for name in _PCLNTAB_SECTIONS:
        rng = elf.get_section_range(name)
        data = elf.get_section_data(name)
        if rng and data:
            return rng[0], data
    for name in _SEARCH_SECTIONS:
        rng = elf.get_section_range(name)
        data = elf.get_section_data(name)
        if not rng or not data:
            continue
        for magic in MAGIC_BYTES:
            pos = data.find(magic)
            while pos >= 0:
                if pos % 8 == 0 and looks_like_pclntab(data, pos):
                    return rng[0] + pos, data[pos:]
                pos = data.find(magic, pos + 1)
    return None


def find_moduledata(elf: ElfBinary, pclntab_vaddr: int, funcname_offset: int,
                    go_minor: int | None) -> ModuleData | None:
    """runtime.firstmoduledata, found by its first two words; None if not found."""
    needle = struct.pack("<QQ", pclntab_vaddr, pclntab_vaddr + funcname_offset)
    gi = gofunc_index(go_minor)
    for name in _MODULEDATA_SECTIONS:
        rng = elf.get_section_range(name)
        data = elf.get_section_data(name)
        if not rng or not data:
            continue
        pos = data.find(needle)
        while pos >= 0:
            nwords = max(24, (gi or 0) + 1)
            if pos % 8 == 0 and pos + 8 * nwords <= len(data):
                w = struct.unpack_from(f"<{nwords}Q", data, pos)
                text, etext, minpc, maxpc = w[22], w[23], w[20], w[21]
                if text <= minpc < maxpc <= etext + 0x1000:
                    gofunc = w[gi] if gi is not None else None
                    return ModuleData(rng[0] + pos, text, etext, minpc, maxpc, gofunc)
            pos = data.find(needle, pos + 1)
    return None
