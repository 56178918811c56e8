"""The runtime's own type information: an interface's type word -> kind, name, size, elem.

Every Go binary carries a descriptor for each type that is ever put in an interface
(the type word of an `any` points at it), whether or not it has DWARF or symbols: the
runtime needs them for type switches, reflection and printing. They live in the region
[moduledata.types, moduledata.etypes), and names are offsets into that region.

Layout of runtime._type (Go 1.19-1.20) / internal/abi.Type (1.21-1.27), amd64, checked
against each release's source and by tests against reflect in real builds:

    +0  Size_ uintptr     +8  PtrBytes uintptr   +16 Hash uint32
    +20 TFlag uint8       +21 Align_ uint8       +22 FieldAlign_ uint8   +23 Kind_ uint8
    +24 Equal func        +32 GCData *byte       +40 Str NameOff(int32)  +44 PtrToThis
    48: kind-specific part (PtrType/SliceType: Elem *Type; StructType: PkgPath Name,
        Fields []StructField{Name Name, Typ *Type, Offset uintptr})

Kind_ carried flag bits up to Go 1.25 (0x20 direct-iface, 0x40 GC program; the kind is
Kind_ & 0x1f); from Go 1.26 it is the plain kind and "direct" moved to TFlag bit 0x20. A
value is stored directly in the data word when its type is pointer-shaped, i.e.
Size == PtrBytes == 8, which holds in every version and is what `direct` uses.
TFlag 0x02 (ExtraStar): the name is stored with a leading '*' to drop.
Names (internal/abi.Name, since Go 1.17): a flags byte, a uvarint length, the bytes.

moduledata word indices of types/etypes: 35/36 (Go 1.19), 37/38 (1.20-1.26, covctrs
added), 37/39 (1.27, typedesclen in between).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lumos.errors import GoBinaryError, LumosError

TYPE_SIZE = 48
TFLAG_EXTRA_STAR = 0x02
KIND_MASK = 0x1F

KIND_NAMES = {
    1: "bool", 2: "int", 3: "int8", 4: "int16", 5: "int32", 6: "int64", 7: "uint",
    8: "uint8", 9: "uint16", 10: "uint32", 11: "uint64", 12: "uintptr", 13: "float32",
    14: "float64", 15: "complex64", 16: "complex128", 17: "array", 18: "chan", 19: "func",
    20: "interface", 21: "map", 22: "ptr", 23: "slice", 24: "string", 25: "struct",
    26: "unsafe.Pointer",
}


def types_indices(minor: int | None) -> tuple[int, int] | None:
    """moduledata word indices of (types, etypes) for Go 1.<minor>; None if unknown."""
    if minor is None or minor < 18:
        return None
    if minor <= 19:
        return 35, 36
    if minor <= 26:
        return 37, 38
    if minor == 27:
        return 37, 39
    return None


@dataclass(frozen=True)
class RType:
    """One type descriptor, as the decoder needs it."""

    addr: int          # ELF virtual address of the descriptor
    kind: str          # KIND_NAMES value ("ptr", "struct", "string", ...)
    size: int
    ptrdata: int
    name: str          # as reflect's Type.String() writes it: "*errors.errorString"
    elem: int = 0      # ptr/slice/array/chan: address of the element type (0: unknown)

    @property
    def direct(self) -> bool:
        """Stored in the interface's data word itself (pointer-shaped), not behind it."""
        return self.size == 8 and self.ptrdata == 8


@dataclass(frozen=True)
class StructField:
    name: str
    offset: int
    type: int          # address of the field's type


class TypeData:
    """The type region of one Go binary, read from the file (works when stripped)."""

    def __init__(self, elf, types: int, etypes: int, relocs: dict[int, int] | None = None):
        if not 0 < types < etypes or etypes - types > 1 << 30:
            raise GoBinaryError(f"type data: implausible region {types:#x}-{etypes:#x}")
        self.start, self.end = types, etypes
        self.data = elf.read_vaddr(types, etypes - types)
        self._elf = elf
        self._relocs = relocs or {}
        self._types: dict[int, RType | None] = {}
        self._names: dict[str, int | None] = {}

    # -- raw reads -------------------------------------------------------------------

    def _u64(self, vaddr: int) -> int:
        """A pointer word in the file; in a PIE its value may only be in a relocation."""
        off = vaddr - self.start
        if 0 <= off <= len(self.data) - 8:
            w = struct.unpack_from("<Q", self.data, off)[0]
        else:
            w = struct.unpack("<Q", self._elf.read_vaddr(vaddr, 8))[0]
        return w or self._relocs.get(vaddr, 0)

    def name_at(self, off: int) -> tuple[str, int]:
        """(name, flags) of the abi.Name at types + off."""
        return _read_name(self.data, off)

    def name_ptr(self, vaddr: int) -> str:
        """The abi.Name an absolute pointer points at (struct field names)."""
        if vaddr == 0:
            return ""
        return _read_name(self.data, vaddr - self.start)[0]

    # -- types -----------------------------------------------------------------------

    def type_at(self, vaddr: int) -> RType | None:
        """The descriptor at vaddr (an ELF address), or None if that is not one."""
        if vaddr in self._types:
            return self._types[vaddr]
        t = self._parse(vaddr)
        self._types[vaddr] = t
        return t

    def _parse(self, vaddr: int) -> RType | None:
        off = vaddr - self.start
        if off < 0 or off + TYPE_SIZE > len(self.data) or off % 8:
            return None
        size, ptrdata, _h, tflag, _a, _fa, kind_b, _eq, _gc, str_off, _pt = struct.unpack_from(
            "<QQIBBBBQQii", self.data, off)
        kind = KIND_NAMES.get(kind_b & KIND_MASK)
        if kind is None or ptrdata > size or not 0 <= str_off < len(self.data):
            return None
        try:
            name, _ = self.name_at(str_off)
        except GoBinaryError:
            return None
        if tflag & TFLAG_EXTRA_STAR and name.startswith("*"):
            name = name[1:]
        elem = self._u64(vaddr + TYPE_SIZE) if kind in ("ptr", "slice", "chan") else 0
        if kind == "array":
            elem = self._u64(vaddr + TYPE_SIZE)
        return RType(vaddr, kind, size, ptrdata, name, elem)

    def itab_type(self, itab: int) -> int:
        """The concrete type of a non-empty interface's first word (runtime.itab:
        {inter *interfacetype, _type *_type, ...}); 0 if it cannot be read. Itabs of
        conversions the compiler saw are static, so this reads the file."""
        try:
            return self._u64(itab + 8)
        except (LumosError, struct.error, OSError):  # not in the file: built at run time
            return 0

    def fields(self, t: RType) -> list[StructField]:
        """A struct type's fields (name, offset, type address)."""
        if t.kind != "struct":
            return []
        ptr = self._u64(t.addr + TYPE_SIZE + 8)
        n = struct.unpack("<Q", self._read(t.addr + TYPE_SIZE + 16, 8))[0]
        if n > 4096:
            raise GoBinaryError(f"type data: {t.name}: {n} fields (corrupt)")
        out = []
        for i in range(n):
            f = ptr + 24 * i
            out.append(StructField(self.name_ptr(self._u64(f)),
                                   struct.unpack("<Q", self._read(f + 16, 8))[0],
                                   self._u64(f + 8)))
        return out

    def _read(self, vaddr: int, n: int) -> bytes:
        off = vaddr - self.start
        if 0 <= off <= len(self.data) - n:
            return self.data[off:off + n]
        return self._elf.read_vaddr(vaddr, n)

    def find(self, name: str, kind: str | None = None) -> int | None:
        """Address of the type whose name is `name` ("*errors.errorString", "string"),
        or None if the binary has no such descriptor. Found by its name's bytes and then
        the descriptor whose Str points there (a named T and *T share one name, stored
        as "*T" with the ExtraStar flag on T)."""
        key = f"{name}/{kind}"
        if key in self._names:
            return self._names[key]
        found = self._find(name, kind)
        self._names[key] = found
        return found

    def _find(self, name: str, kind: str | None) -> int | None:
        import numpy as np
        stored = name if name.startswith("*") else "*" + name
        words = np.frombuffer(self.data[: len(self.data) // 8 * 8], "<i4")
        for text in dict.fromkeys((stored, name)):
            raw = text.encode()
            needle = _uvarint_bytes(len(raw)) + raw
            pos = self.data.find(needle)
            while pos > 0:
                name_off = pos - 1
                if self.data[name_off] & ~0x0F == 0:
                    # descriptors whose Str (+40, 8-aligned) is this name
                    for i in np.flatnonzero(words[10::2] == name_off):
                        t = self.type_at(self.start + 8 * int(i))
                        if t is not None and t.name == name and (kind is None
                                                                  or t.kind == kind):
                            return t.addr
                pos = self.data.find(needle, pos + 1)
        return None


def _uvarint_bytes(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_name(data: bytes, off: int) -> tuple[str, int]:
    if not 0 <= off < len(data):
        raise GoBinaryError(f"type data: name offset {off:#x} outside the region")
    flags = data[off]
    n = shift = 0
    p = off + 1
    while True:
        if p >= len(data) or shift > 28:
            raise GoBinaryError(f"type data: bad name length at {off:#x}")
        b = data[p]
        p += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if p + n > len(data):
        raise GoBinaryError(f"type data: name at {off:#x} runs past the region")
    return data[p:p + n].decode("utf-8", "replace"), flags


def relative_relocs(elf) -> dict[int, int]:
    """{vaddr: value} of R_X86_64_RELATIVE relocations (a PIE's pointer words)."""
    from elftools.elf.relocation import RelocationSection
    out: dict[int, int] = {}
    for sec in elf.elf.iter_sections():
        if isinstance(sec, RelocationSection) and sec.is_RELA():
            for r in sec.iter_relocations():
                if r["r_info_type"] == 8:  # R_X86_64_RELATIVE
                    out[r["r_offset"]] = r["r_addend"]
    return out


def open_typedata(elf, moduledata_vaddr: int, minor: int | None) -> TypeData:
    """TypeData of a binary from its moduledata (moduledata.find_moduledata)."""
    idx = types_indices(minor)
    if idx is None:
        raise GoBinaryError(f"type data: layout of moduledata unknown for go1.{minor}")
    words = struct.unpack("<2Q", elf.read_vaddr(moduledata_vaddr + 8 * idx[0], 8)
                          + elf.read_vaddr(moduledata_vaddr + 8 * idx[1], 8))
    relocs = relative_relocs(elf) if elf.elf.header["e_type"] == "ET_DYN" else None
    if relocs:
        words = tuple(w or relocs.get(moduledata_vaddr + 8 * i, 0)
                      for w, i in zip(words, idx, strict=True))
    return TypeData(elf, words[0], words[1], relocs)


def load_typedata(elf) -> TypeData:
    """TypeData of an opened ElfBinary (moduledata found as moduledata.py does)."""
    from lumos.golang.buildinfo import parse_go_version, read_buildinfo
    from lumos.golang.moduledata import find_moduledata, find_pclntab
    from lumos.golang.pclntab import PcLnTab
    found = find_pclntab(elf)
    if found is None:
        raise GoBinaryError(f"{elf.path}: not a Go program (no pclntab)")
    bi = read_buildinfo(elf)
    version = parse_go_version(bi.go_version) if bi else None
    minor = version[1] if version else None
    md = find_moduledata(elf, found[0], PcLnTab(found[1]).funcname_offset, minor)
    if md is None:
        raise GoBinaryError(f"{elf.path}: runtime.firstmoduledata not found")
    return open_typedata(elf, md.vaddr, minor)
