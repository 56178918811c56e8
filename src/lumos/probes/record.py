"""One declaration of a record both sides agree on: the emitter's store offsets and the
decoder's struct (and numpy dtype) come from the same list of fields.

    HEADER = Record("header", [Field("ts_ns", "u64"), Field("pid", "u32"), ...])
    HEADER.offset("pid")     # 8: where the BPF program stores it
    HEADER.struct            # struct.Struct('<QI...'): how user space reads it
    HEADER.dtype             # numpy structured dtype: how a batch of records is read

Fields are laid out in order with natural alignment (as a C compiler would), so a
record can also be written down as the C struct libbpf-tools would share in a .h file
(Record.c_struct()).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# kind -> (struct code, size, numpy code, C type)
KINDS = {
    "u8": ("B", 1, "u1", "__u8"), "u16": ("H", 2, "<u2", "__u16"),
    "u32": ("I", 4, "<u4", "__u32"), "u64": ("Q", 8, "<u8", "__u64"),
    "s8": ("b", 1, "i1", "__s8"), "s16": ("h", 2, "<i2", "__s16"),
    "s32": ("i", 4, "<i4", "__s32"), "s64": ("q", 8, "<i8", "__s64"),
}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str          # a KINDS key, or "bytes"
    size: int = 0      # bytes: the buffer size
    doc: str = ""

    @property
    def nbytes(self) -> int:
        return self.size if self.kind == "bytes" else KINDS[self.kind][1]

    @property
    def align(self) -> int:
        return 1 if self.kind == "bytes" else KINDS[self.kind][1]


class Record:
    """Fields in order, naturally aligned; the size is padded to `align` (ring buffer
    records are 8-aligned)."""

    def __init__(self, name: str, fields, align: int = 8):
        self.name = name
        self.fields: tuple[Field, ...] = tuple(fields)
        self.align = align
        self.offsets: dict[str, int] = {}
        off = 0
        for f in self.fields:
            if f.name in self.offsets:
                raise ValueError(f"record {name}: field {f.name!r} declared twice")
            off = -(-off // f.align) * f.align
            self.offsets[f.name] = off
            off += f.nbytes
        self._end = off

    def __repr__(self) -> str:
        return f"Record({self.name!r}, {len(self.fields)} fields, {self.size} bytes)"

    def offset(self, name: str) -> int:
        return self.offsets[name]

    @property
    def size(self) -> int:
        return -(-self._end // self.align) * self.align

    @property
    def struct(self) -> struct.Struct:
        fmt, off = "<", 0
        for f in self.fields:
            pad = self.offsets[f.name] - off
            fmt += f"{pad}x" if pad else ""
            fmt += f"{f.size}s" if f.kind == "bytes" else KINDS[f.kind][0]
            off = self.offsets[f.name] + f.nbytes
        return struct.Struct(fmt)

    @property
    def dtype(self):
        import numpy as np
        return np.dtype({"names": [f.name for f in self.fields],
                         "formats": [("u1", (f.size,)) if f.kind == "bytes"
                                     else KINDS[f.kind][2] for f in self.fields],
                         "offsets": [self.offsets[f.name] for f in self.fields],
                         "itemsize": self.size})

    def extend(self, name: str, fields) -> Record:
        """This record's fields followed by more (a header, then a tool's own part)."""
        return Record(name, self.fields + tuple(fields), self.align)

    def c_struct(self) -> str:
        lines = [f"struct {self.name} {{"]
        for f in self.fields:
            ident = f.name.replace(".", "_").replace("#", "_").replace("~", "_")
            decl = (f"__u8 {ident}[{f.size}]" if f.kind == "bytes"
                    else f"{KINDS[f.kind][3]} {ident}")
            note = f"  /* +{self.offsets[f.name]}{': ' + f.doc if f.doc else ''} */"
            lines.append(f"    {decl};{note}")
        lines.append(f"}};  /* {self.size} bytes */")
        return "\n".join(lines)
