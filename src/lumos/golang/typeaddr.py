"""A runtime type descriptor's address -> its name, from the binary (works when stripped).

allocs --every reads the `typ *_type` argument of runtime.mallocgc (BX, Go 1.19-1.27;
nil for untyped memory such as string and []byte conversion buffers): the address of
the type's descriptor, which the compiler put in the binary's type region
[moduledata.types, moduledata.etypes). Its name is an offset into that region:

    runtime._type (1.19-1.20) / internal/abi.Type (1.21-1.27), amd64:
    +0 Size_ uintptr  +8 PtrBytes  +16 Hash u32  +20 TFlag u8  +21 Align_  +22 FieldAlign_
    +23 Kind_  +24 Equal  +32 GCData  +40 Str NameOff(int32)  +44 PtrToThis   (48 bytes)
    TFlag 0x02 (ExtraStar): the name is stored with a leading '*' to drop.
    Name (since Go 1.17): a flags byte, a uvarint length, the bytes.

moduledata word indices of (types, etypes): 35/36 (Go 1.19), 37/38 (1.20-1.26, covctrs
added), 37/39 (1.27, typedesclen in between), as runtime/symtab.go of each release has
them. This is the minimal lookup allocs needs; the logs branch's golang/typedata.py
decodes whole descriptors (kinds, elements, struct fields) for `any` values, and when it
is on main this can become a call into it.
"""

from __future__ import annotations

import struct

from lumos.errors import LumosError

TYPE_SIZE = 48
TFLAG_EXTRA_STAR = 0x02


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


class TypeNames:
    """Names of the type descriptors of one Go binary (ELF virtual addresses)."""

    def __init__(self, elf, moduledata_vaddr: int, minor: int | None):
        self.elf = elf
        self.start = self.end = 0
        idx = types_indices(minor)
        if idx is not None:
            words = [struct.unpack("<Q", elf.read_vaddr(moduledata_vaddr + 8 * i, 8))[0]
                     for i in idx]
            if 0 < words[0] < words[1] and words[1] - words[0] < 1 << 30:
                self.start, self.end = words
        self._cache: dict[int, tuple[str, int] | None] = {}

    @property
    def known(self) -> bool:
        """False when this Go version's moduledata layout is not known."""
        return self.end > 0

    def lookup(self, vaddr: int) -> tuple[str, int] | None:
        """(name, size) of the descriptor at vaddr, or None if vaddr is not one (outside
        the region: a type built at run time by reflect, or a bad address)."""
        if vaddr not in self._cache:
            try:
                self._cache[vaddr] = self._read(vaddr)
            except (LumosError, struct.error, OSError, ValueError, UnicodeDecodeError):
                self._cache[vaddr] = None
        return self._cache[vaddr]

    def _read(self, vaddr: int) -> tuple[str, int] | None:
        if not self.start <= vaddr <= self.end - TYPE_SIZE or vaddr % 8:
            return None
        raw = self.elf.read_vaddr(vaddr, TYPE_SIZE)
        size, ptrdata, tflag, str_off = (struct.unpack_from("<QQ", raw)
                                         + (raw[20],) + struct.unpack_from("<i", raw, 40))
        if ptrdata > size or not 0 <= str_off < self.end - self.start:
            return None
        name = self._name(self.start + str_off)
        if tflag & TFLAG_EXTRA_STAR and name.startswith("*"):
            name = name[1:]
        return name, size

    def _name(self, vaddr: int) -> str:
        head = self.elf.read_vaddr(vaddr, min(11, self.end - vaddr))
        n = shift = 0
        for p in range(1, len(head)):
            b = head[p]
            n |= (b & 0x7F) << shift
            if b < 0x80:
                if vaddr + p + 1 + n > self.end:
                    raise ValueError("type name runs past the type region")
                return self.elf.read_vaddr(vaddr + p + 1, n).decode()
            shift += 7
        raise ValueError("bad type name length")


def allocation_type(names: TypeNames, typ_vaddr: int | None, size: int) -> str:
    """What mallocgc allocated, as a Go developer writes it: the type for one object
    ("main.node"), an array of it for more ("[65536]uint8": a slice's backing array),
    "-" for untyped memory (typ nil), "?" for a descriptor not in the binary."""
    if typ_vaddr is None:
        return "?"
    if typ_vaddr == 0:
        return "-"
    got = names.lookup(typ_vaddr)
    if got is None:
        return "?"
    name, tsize = got
    if tsize and size > tsize and size % tsize == 0:
        return f"[{size // tsize}]{name}"
    return name
