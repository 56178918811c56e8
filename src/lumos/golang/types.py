"""Go types as the ABI and a tracer see them: kind, size, alignment, name, machine words.

A GoType comes from DWARF (dwarfargs.py) or from a signature the user wrote
(signature.py); both feed the same ABI assignment (abi.py). `parts()` breaks a value
into the scalar pieces the register ABI assigns one register each (a string is
ptr + len, a slice ptr + len + cap, an interface type/itab + data, a complex real +
imag, a struct its fields in order), with each piece's offset in the in-memory value
so the same list also describes a stack-assigned value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INT_KINDS = {"int": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
             "uint": 8, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "uintptr": 8}
FLOAT_KINDS = {"float32": 4, "float64": 8}
COMPLEX_KINDS = {"complex64": 8, "complex128": 16}
# Kinds that are one pointer-sized word passed in an integer register.
POINTER_KINDS = ("pointer", "map", "chan", "func", "unsafe.Pointer")
KINDS = (*INT_KINDS, "bool", *FLOAT_KINDS, *COMPLEX_KINDS, "string", "slice", *POINTER_KINDS,
         "interface", "struct", "array", "word")

# reflect.Kind numbers, as Go's DWARF writes them in DW_AT_go_kind.
REFLECT_KINDS = {
    1: "bool", 2: "int", 3: "int8", 4: "int16", 5: "int32", 6: "int64", 7: "uint",
    8: "uint8", 9: "uint16", 10: "uint32", 11: "uint64", 12: "uintptr", 13: "float32",
    14: "float64", 15: "complex64", 16: "complex128", 17: "array", 18: "chan", 19: "func",
    20: "interface", 21: "map", 22: "pointer", 23: "slice", 24: "string", 25: "struct",
    26: "unsafe.Pointer",
}

_PKG_PATH = re.compile(r"(?<![\w.])(?:[\w.\-~]+/)+(?=[\w\-~]+\.)")


@dataclass(frozen=True)
class Field:
    """A struct field: name, byte offset in the struct, type."""

    name: str
    offset: int
    type: GoType


@dataclass(frozen=True)
class Part:
    """One scalar piece of a value: path ("", ".ptr", ".X.len", "[0]"), offset, size, class.

    cls is "int" (integer register) or "float" (X register).
    """

    path: str
    offset: int
    size: int
    cls: str


@dataclass(frozen=True)
class GoType:
    """A Go type. `name` is as Go writes it with full package paths ("*net/http.Request");
    `display` shortens paths to package names ("*http.Request")."""

    kind: str
    size: int
    name: str
    align: int = 8
    elem: GoType | None = None      # pointer, slice, array, chan, map value
    key: GoType | None = None       # map key
    length: int = 0                 # array length
    fields: tuple[Field, ...] = ()  # struct fields
    empty_interface: bool = False   # interface{}: first word is a type, not an itab

    @property
    def display(self) -> str:
        return short_name(self.name)

    @property
    def words(self) -> int:
        return (self.size + 7) // 8

    def parts(self) -> tuple[Part, ...] | None:
        """Scalar pieces in ABI order, or None if the type holds an array of length > 1
        (such a value is never register-assigned)."""
        return _parts(self, "", 0)

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind, "size": self.size, "name": self.name, "align": self.align}
        if self.elem is not None:
            d["elem"] = self.elem.to_dict()
        if self.key is not None:
            d["key"] = self.key.to_dict()
        if self.length:
            d["length"] = self.length
        if self.fields:
            d["fields"] = [{"name": f.name, "offset": f.offset, "type": f.type.to_dict()}
                           for f in self.fields]
        if self.empty_interface:
            d["empty_interface"] = True
        return d

    @staticmethod
    def from_dict(d: dict) -> GoType:
        return GoType(
            d["kind"], d["size"], d["name"], d.get("align", 8),
            GoType.from_dict(d["elem"]) if "elem" in d else None,
            GoType.from_dict(d["key"]) if "key" in d else None,
            d.get("length", 0),
            tuple(Field(f["name"], f["offset"], GoType.from_dict(f["type"]))
                  for f in d.get("fields", ())),
            d.get("empty_interface", False))


def _parts(t: GoType, path: str, base: int) -> tuple[Part, ...] | None:
    k = t.kind
    if k in INT_KINDS or k == "bool" or k in POINTER_KINDS or k == "word":
        return (Part(path, base, t.size, "int"),)
    if k in FLOAT_KINDS:
        return (Part(path, base, t.size, "float"),)
    if k in COMPLEX_KINDS:
        h = t.size // 2
        return (Part(path + ".real", base, h, "float"), Part(path + ".imag", base + h, h, "float"))
    if k == "string":
        return (Part(path + ".ptr", base, 8, "int"), Part(path + ".len", base + 8, 8, "int"))
    if k == "slice":
        return tuple(Part(f"{path}.{n}", base + 8 * i, 8, "int")
                     for i, n in enumerate(("ptr", "len", "cap")))
    if k == "interface":
        first = ".type" if t.empty_interface else ".itab"
        return (Part(path + first, base, 8, "int"), Part(path + ".data", base + 8, 8, "int"))
    if k == "struct":
        out: list[Part] = []
        for f in t.fields:
            sub = _parts(f.type, f"{path}.{f.name}", base + f.offset)
            if sub is None:
                return None
            out.extend(sub)
        return tuple(out)
    if k == "array":
        if t.length == 0:
            return ()
        if t.length == 1 and t.elem is not None:
            return _parts(t.elem, path + "[0]", base)
        return None
    return None


def short_name(name: str) -> str:
    """Go type or function name with import paths cut to package names:
    "map[string]*net/http.Request" -> "map[string]*http.Request"."""
    return _PKG_PATH.sub("", name) if "/" in name else name


def basic(kind: str, name: str | None = None) -> GoType:
    """A predeclared scalar type (or a named type with that underlying kind)."""
    if kind in INT_KINDS:
        size = INT_KINDS[kind]
    elif kind in FLOAT_KINDS:
        size = FLOAT_KINDS[kind]
    elif kind in COMPLEX_KINDS:
        size = COMPLEX_KINDS[kind]
    elif kind == "bool":
        size = 1
    elif kind in POINTER_KINDS or kind == "word":
        size = 8
    elif kind == "string":
        size = 16
    else:
        raise ValueError(f"not a basic kind: {kind}")
    align = size if kind not in COMPLEX_KINDS else size // 2
    return GoType(kind, size, name or kind, min(align, 8))


def alignment(kind: str, size: int, elem: GoType | None, fields: tuple[Field, ...]) -> int:
    """Go's alignment on amd64 for a type of this shape."""
    if kind == "struct":
        return max((f.type.align for f in fields), default=1)
    if kind == "array":
        return elem.align if elem is not None else 1
    if kind in COMPLEX_KINDS:
        return size // 2
    if kind in INT_KINDS or kind in FLOAT_KINDS or kind == "bool":
        return max(1, min(size, 8))
    return 8


def word(size: int = 8, name: str = "word") -> GoType:
    """A machine word of unknown type (binaries without DWARF)."""
    return GoType("word", size, name, min(size, 8) or 1)
