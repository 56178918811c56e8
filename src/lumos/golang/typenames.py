"""Names of Go runtime types, from the type data in the binary (works when stripped).

An `any` holds (type pointer, data pointer); an error or other non-empty interface holds
(itab pointer, data pointer) and itab._type sits at itab+8. A type pointer points at an
abi.Type: Str, a nameOff (int32 at +40), is the offset of the type's name from
moduledata.types; TFlag (u8 at +20) bit 1 (TFlagExtraStar) says the stored name has a
leading '*' to drop; Kind_ (u8 at +23, low 5 bits) is the reflect.Kind. The name is
abi.Name: one flags byte, a uvarint length, the bytes (Go 1.17+).

moduledata.types is word 35 for Go 1.18-1.19 and word 37 from 1.20 (covctrs and ecovctrs
came before it); etypes follows it, or from 1.27 follows typedesclen. Checked against the
runtime.types symbol of real builds by the tests.

This is the small decoder `lumos sql` needs for its arguments; the general one (values of
any type, for log calls) is the Go layer's to grow (issue 12), and can replace it.
"""

from __future__ import annotations

import struct

from lumos.golang.moduledata import gofunc_index

TYPE_KIND_OFFSET, TYPE_TFLAG_OFFSET, TYPE_STR_OFFSET = 23, 20, 40
TFLAG_EXTRA_STAR = 1 << 1
ITAB_TYPE_OFFSET = 8
KIND_MASK = 0x1F
# reflect.Kind values (internal/abi/type.go)
KINDS = ("invalid", "bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8",
         "uint16", "uint32", "uint64", "uintptr", "float32", "float64", "complex64",
         "complex128", "array", "chan", "func", "interface", "map", "pointer", "slice",
         "string", "struct", "unsafe.Pointer")


def types_index(minor: int | None) -> int | None:
    if gofunc_index(minor) is None:   # a moduledata layout lumos does not know
        return None
    return 35 if minor <= 19 else 37


class TypeNames:
    """type vaddr (link-time address) -> (name, kind), read from one GoBinary's file."""

    def __init__(self, gobin):
        self.elf = gobin.elf
        self.types: tuple[int, int] | None = None
        md = gobin.moduledata
        ti = types_index(gobin.minor)
        if md is not None and ti is not None:
            data = self.elf.read_vaddr(md.vaddr + 8 * ti, 24)
            if len(data) == 24:
                start, typedesclen, etypes = struct.unpack("<QQQ", data)
                end = etypes if gobin.minor >= 27 else typedesclen  # the word after types
                if 0 < start < end:
                    self.types = (start, end)
        self._cache: dict[int, tuple[str, str] | None] = {}

    def lookup(self, vaddr: int) -> tuple[str, str] | None:
        """(name, kind) of the type at vaddr, or None when vaddr is not a type."""
        if vaddr not in self._cache:
            self._cache[vaddr] = self._read(vaddr)
        return self._cache[vaddr]

    def _read(self, vaddr: int) -> tuple[str, str] | None:
        if self.types is None or not self.types[0] <= vaddr < self.types[1]:
            return None
        head = self.elf.read_vaddr(vaddr, 48)
        if len(head) < 48:
            return None
        tflag, kind = head[TYPE_TFLAG_OFFSET], head[TYPE_KIND_OFFSET] & KIND_MASK
        (off,) = struct.unpack_from("<i", head, TYPE_STR_OFFSET)
        raw = self.elf.read_vaddr(self.types[0] + off, 1 + 10 + 256)
        if len(raw) < 2:
            return None
        n, shift, p = 0, 0, 1
        while p < len(raw):
            b = raw[p]
            p += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        name = raw[p:p + n].decode("utf-8", "replace")
        if tflag & TFLAG_EXTRA_STAR and name.startswith("*"):
            name = name[1:]
        return name, KINDS[kind] if kind < len(KINDS) else "?"
