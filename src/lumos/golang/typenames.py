"""A runtime type descriptor's address -> (name, kind, size), for tools that only name
types (sql arguments, allocs --every): a thin view of golang/typedata.py, the one decoder
of the binary's type data (works when stripped).
"""

from __future__ import annotations

from lumos.errors import GoBinaryError, LumosError
from lumos.golang.typedata import RType, TypeData, open_typedata


class TypeNames:
    """Names of one Go binary's type descriptors (ELF virtual addresses)."""

    def __init__(self, gobin):
        self._td: TypeData | None = None
        md = gobin.moduledata
        if md is not None:
            try:
                self._td = open_typedata(gobin.elf, md.vaddr, gobin.minor)
            except GoBinaryError:
                self._td = None  # a moduledata layout lumos does not know: names unknown

    @property
    def known(self) -> bool:
        return self._td is not None

    @property
    def region(self) -> tuple[int, int] | None:
        """[moduledata.types, moduledata.etypes), or None when unknown."""
        return (self._td.start, self._td.end) if self._td else None

    def lookup(self, vaddr: int) -> RType | None:
        """The descriptor at vaddr, or None if vaddr is not one (outside the type region:
        a type built at run time by reflect, or a bad address)."""
        if self._td is None or not self._td.start <= vaddr < self._td.end:
            return None
        try:
            return self._td.type_at(vaddr)
        except (LumosError, ValueError, UnicodeDecodeError):
            return None


def allocation_type(names: TypeNames | None, typ_vaddr: int | None, size: int) -> str:
    """What mallocgc allocated, as a Go developer writes it: the type for one object
    ("main.node"), an array of it for more ("[65536]uint8": a slice's backing array),
    "-" for untyped memory (typ nil), "?" for a descriptor not in the binary."""
    if typ_vaddr is None or names is None:
        return "?"
    if typ_vaddr == 0:
        return "-"
    t = names.lookup(typ_vaddr)
    if t is None:
        return "?"
    if t.size and size > t.size and size % t.size == 0:
        return f"[{size // t.size}]{t.name}"
    return t.name
