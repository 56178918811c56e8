"""ELF files as uprobes need them: function symbols, sections, build id, file offsets.

A thin layer over pyelftools. Every pyelftools call goes through this class and a parse
problem it reports (ELFError, incl. ELFParseError for a truncated file) becomes one
BinaryFormatError, so a damaged file never ends in a traceback; an IndexError or
struct.error is left alone: that would be a lumos bug.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from functools import cached_property

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from lumos import filestamp
from lumos.errors import BinaryFormatError, TargetError

ELF_MAGIC = b"\x7fELF"
ELF64_SYM = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size
STT_FUNC, STT_GNU_IFUNC = 2, 10
# What pyelftools raises on a damaged file: ELFError (ELFParseError), and ValueError where
# a header's offset is absurd (stream.seek: "cannot fit 'int' into an offset-sized
# integer"). Caught around pyelftools calls only, never around lumos's own code.
_PYELFTOOLS_ERRORS = (ELFError, ValueError, OSError)


@dataclass(frozen=True, order=True)
class Symbol:
    """A function symbol: name, virtual address, size in bytes (0 when unknown)."""

    addr: int
    name: str
    size: int = 0

    @property
    def end(self) -> int:
        return self.addr + self.size


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment: where file bytes land in memory."""

    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int

    @property
    def executable(self) -> bool:
        return bool(self.flags & 0x1)


class ElfBinary:
    """An ELF file opened for reading. Use as a context manager or call close()."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - owned, closed in close()
        except FileNotFoundError:
            raise TargetError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise TargetError(f"{path}: is a directory, not a program") from None
        except PermissionError:
            raise TargetError(f"{path}: permission denied") from None
        filestamp.remember(path, os.fstat(self._file.fileno()))
        try:
            if self._file.read(4) != ELF_MAGIC:
                raise BinaryFormatError(f"{path}: not an ELF file (wrong magic)", 0)
            self._file.seek(0)
            self.elf = ELFFile(self._file)
            if self.elf.elfclass != 64 or self.elf["e_machine"] != "EM_X86_64":
                raise BinaryFormatError(f"{path}: not an x86-64 ELF file")
            self.segments = self._load_segments()
        except _PYELFTOOLS_ERRORS as e:
            self.close()
            raise BinaryFormatError(f"{path}: corrupt ELF: {e}") from e
        except BinaryFormatError:
            self.close()
            raise

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> ElfBinary:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- headers -------------------------------------------------------------------

    @property
    def is_pie(self) -> bool:
        """True for ET_DYN (PIE executables and shared libraries)."""
        return self.elf["e_type"] == "ET_DYN"

    @property
    def size(self) -> int:
        return os.fstat(self._file.fileno()).st_size

    def _load_segments(self) -> list[Segment]:
        segs = []
        for seg in self.elf.iter_segments():
            if seg["p_type"] == "PT_LOAD":
                segs.append(Segment(seg["p_vaddr"], seg["p_offset"], seg["p_filesz"],
                                    seg["p_memsz"], seg["p_flags"]))
        return segs

    # -- sections ------------------------------------------------------------------

    def section(self, name: str):
        """pyelftools' Section by name, or None. Reading the section table of a truncated
        file fails here (pyelftools parses every header to find one)."""
        try:
            return self.elf.get_section_by_name(name)
        except _PYELFTOOLS_ERRORS as e:
            raise BinaryFormatError(f"{self.path}: corrupt or truncated section table: {e}",
                                    self.elf["e_shoff"]) from e

    def has_section(self, name: str) -> bool:
        return self.section(name) is not None

    def get_section_range(self, name: str) -> tuple[int, int, int] | None:
        """(vaddr, file offset, size) of a section, or None when absent."""
        sec = self.section(name)
        if sec is None:
            return None
        return sec["sh_addr"], sec["sh_offset"], sec["sh_size"]

    def get_section_data(self, name: str) -> bytes | None:
        sec = self.section(name)
        if sec is None or sec["sh_type"] == "SHT_NOBITS":
            return None
        if sec["sh_offset"] + sec["sh_size"] > self.size:
            raise BinaryFormatError(f"{self.path}: section {name} extends past the end of "
                                    "the file (truncated?)", sec["sh_offset"])
        try:
            return sec.data()
        except (ELFError, OSError, MemoryError, zlib.error) as e:  # absurd compressed size
            raise BinaryFormatError(f"{self.path}: section {name}: {e}",
                                    sec["sh_offset"]) from e

    @cached_property
    def build_id(self) -> str | None:
        """The GNU build id as hex, or None."""
        for name in (".note.gnu.build-id",):
            sec = self.section(name)
            if sec is None:
                continue
            try:
                for note in sec.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return note["n_desc"]
            except ELFError as e:
                raise BinaryFormatError(f"{self.path}: {name}: {e}") from e
        return None

    # -- symbols -------------------------------------------------------------------

    @cached_property
    def functions(self) -> list[Symbol]:
        """Defined function symbols from .symtab and .dynsym, sorted by address.

        Parsed straight from the section bytes (Elf64_Sym is 24 bytes): pyelftools'
        per-symbol objects cost ~1 s for a large Go binary. Aliases (same name and
        address in both tables) are kept once; versioned names lose their @VERSION.
        """
        seen: set[tuple[str, int]] = set()
        out: list[Symbol] = []
        for table in (".symtab", ".dynsym"):
            sec = self.section(table)
            if sec is None or sec["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
                continue
            link = sec["sh_link"]
            try:
                strtab = self.elf.get_section(link).data()
                data = sec.data()
            except _PYELFTOOLS_ERRORS as e:
                raise BinaryFormatError(f"{self.path}: {table}: {e}", sec["sh_offset"]) from e
            usable = len(data) - len(data) % ELF64_SYM.size
            for name_off, info, _other, shndx, value, size in ELF64_SYM.iter_unpack(
                    data[:usable]):
                if info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or shndx == 0 or value == 0:
                    continue
                end = strtab.find(b"\0", name_off)
                if name_off >= len(strtab) or end < 0:
                    raise BinaryFormatError(f"{self.path}: {table}: symbol name outside "
                                            f"the string table", sec["sh_offset"])
                name = strtab[name_off:end].decode("utf-8", "replace").split("@", 1)[0]
                if (name, value) in seen:
                    continue
                seen.add((name, value))
                out.append(Symbol(value, name, size))
        out.sort()
        return out

    # -- addresses -----------------------------------------------------------------

    def vaddr_to_offset(self, vaddr: int) -> int:
        """File offset of a virtual address: what a uprobe is attached at."""
        for seg in self.segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        raise BinaryFormatError(f"{self.path}: address {vaddr:#x} is in no loaded segment")

    def offset_to_vaddr(self, offset: int) -> int | None:
        for seg in self.segments:
            if seg.offset <= offset < seg.offset + seg.filesz:
                return offset - seg.offset + seg.vaddr
        return None

    def read_vaddr(self, vaddr: int, size: int) -> bytes:
        """Bytes of the file image at a virtual address (short at end of segment)."""
        off = self.vaddr_to_offset(vaddr)
        self._file.seek(off)
        return self._file.read(size)

    def read_offset(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    @cached_property
    def needed(self) -> list[str]:
        """DT_NEEDED library names (empty for static binaries)."""
        dyn = self.section(".dynamic")
        if dyn is None:
            return []
        try:
            return [t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        except ELFError as e:
            raise BinaryFormatError(f"{self.path}: .dynamic: {e}") from e


def open_elf(path: str) -> ElfBinary:
    return ElfBinary(path)
