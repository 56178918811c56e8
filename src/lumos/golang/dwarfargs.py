"""DWARF of Go binaries: a function's parameters, their Go types and location lists.

Lazy by design: a function's DW_TAG_subprogram is found by searching .debug_info for its
name (Go writes names inline, DW_FORM_string) and parsing only that DIE, its children
and the type DIEs they reference, so asking about main.f never parses net/http. After
a few lookups, one pass indexes every subprogram by entry address instead.

DIEs are read by dwarfdie.py; location lists and expressions are decoded here. Only a
few operations matter: DW_OP_regN/regx (a register), DW_OP_call_frame_cfa and
DW_OP_fbreg (a stack slot; Go's frame base is the CFA), DW_OP_piece. Anything else makes
the piece "unknown", never a guess.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

from lumos.errors import DwarfFormatError
from lumos.golang import types as gt
from lumos.golang.dwarfdie import (
    DIE,
    AT_abstract_origin,
    AT_byte_size,
    AT_count,
    AT_data_member_location,
    AT_encoding,
    AT_inline,
    AT_location,
    AT_low_pc,
    AT_name,
    AT_type,
    AT_upper_bound,
    AT_variable_parameter,
    DwarfInfo,
    TAG_array_type,
    TAG_base_type,
    TAG_formal_parameter,
    TAG_member,
    TAG_pointer_type,
    TAG_structure_type,
    TAG_subprogram,
    TAG_subrange_type,
    TAG_subroutine_type,
    TAG_typedef,
)
from lumos.golang.dwarfloc import LocRange, Piece, decode_expr, loclist_v4, loclists_v5

TYPE_CHECKING = False  # typing costs 10 ms to import; annotations are strings anyway
if TYPE_CHECKING:
    from lumos.binary.elf import ElfBinary

DW_AT_go_kind, DW_AT_go_key, DW_AT_go_elem = 0x2900, 0x2901, 0x2902
_MAX_TYPE_DEPTH = 4  # deeper types (linked lists...) keep name and kind only
@dataclass(frozen=True)
class DwarfParam:
    name: str
    type: gt.GoType
    is_result: bool
    ranges: tuple[LocRange, ...]    # empty: DWARF gives no location

    def pieces_at(self, pc: int) -> tuple[Piece, ...] | None:
        for r in self.ranges:
            if r.lo <= pc < r.hi:
                return r.pieces
        return None


class GoDwarf:
    """Lazy DWARF reader for one ELF file; `has_dwarf` is False when it carries none."""

    _INDEX_AFTER = 16   # lookups by name before indexing every subprogram by address

    def __init__(self, elf: ElfBinary):
        self._elf = elf
        self.has_dwarf = elf.has_section(".debug_info")
        self._dw: DwarfInfo | None = None
        self._types: dict[tuple[int, int], gt.GoType] = {}
        self._loc = self._loclists = None
        self._lookups = 0
        self._by_pc: dict[int, int] | None = None

    def _open(self) -> DwarfInfo:
        if self._dw is None:
            sec = self._section
            self._dw = DwarfInfo(sec(".debug_info"), sec(".debug_abbrev"), sec(".debug_addr"),
                                 sec(".debug_str"), sec(".debug_line_str"),
                                 sec(".debug_str_offsets"))
        return self._dw

    def _section(self, name: str) -> bytes:
        return self._elf.get_section_data(name) or b""

    # -- lookups ---------------------------------------------------------------------

    def function_params(self, name: str, entry: int) -> list[DwarfParam] | None:
        """Parameters (inputs then results, in DWARF order) of the function at entry,
        or None if DWARF does not describe it."""
        if not self.has_dwarf:
            return None
        try:
            die = self._find_subprogram(name, entry)
            if die is None:
                return None
            dw = self._dw
            origin_off = die.ref(AT_abstract_origin)
            if origin_off is None:
                return _in_order(_dedupe([self._param(c, c) for c in dw.children(die)
                                if c.tag == TAG_formal_parameter and AT_name in c.attrs]))
            # An out-of-line copy of an inlinable function: names and types are on the
            # abstract DIE's children, locations on the concrete ones; parameters the
            # abstract DIE lacks (results) are named on the concrete one.
            concrete, own = {}, []
            for c in dw.children(die):
                if c.tag != TAG_formal_parameter:
                    continue
                o = c.ref(AT_abstract_origin)
                if o is not None:
                    concrete[o] = c
                elif AT_name in c.attrs:
                    own.append(self._param(c, c))
            origin = dw.die_at(origin_off)
            return _in_order(_dedupe([self._param(a, concrete.get(a.offset))
                                      for a in dw.children(origin)
                                      if a.tag == TAG_formal_parameter and AT_name in a.attrs]
                                     + own))
        except DwarfFormatError as e:
            raise DwarfFormatError(f"{self._elf.path}: corrupt DWARF for {name}: {e}") \
                from e

    def struct_field_offset(self, type_name: str, member: str) -> int | None:
        """Byte offset of a field in a named struct type ("runtime.g", "goid")."""
        if not self.has_dwarf:
            return None
        try:
            dw = self._open()
            for die in self._dies_named(type_name):
                if die.tag != TAG_structure_type:
                    continue
                for c in dw.children(die):
                    if c.tag == TAG_member and c.name == member:
                        v = c.get(AT_data_member_location)
                        return v if isinstance(v, int) else None
        except DwarfFormatError as e:
            raise DwarfFormatError(f"{self._elf.path}: corrupt DWARF for {type_name}: {e}") \
                from e
        return None

    def type_named(self, name: str) -> gt.GoType | None:
        """The type DWARF calls `name` ("*sync.noCopy", "context.emptyCtx"), or None."""
        if not self.has_dwarf:
            return None
        try:
            for die in self._dies_named(name):
                if die.tag in (TAG_typedef, TAG_pointer_type, TAG_structure_type,
                               TAG_base_type):
                    return self._type_at(die.offset, 0)
        except DwarfFormatError as e:
            raise DwarfFormatError(f"{self._elf.path}: corrupt DWARF for {name}: {e}") \
                from e
        return None

    def _find_subprogram(self, name: str, entry: int) -> DIE | None:
        dw = self._open()
        self._lookups += 1
        if self._by_pc is None and self._lookups > self._INDEX_AFTER:
            self._index()
        if self._by_pc is not None:
            off = self._by_pc.get(entry)
            return dw.die_at(off) if off is not None else None
        for die in self._dies_named(name):
            if die.tag != TAG_subprogram:
                continue
            if die.get(AT_low_pc) == entry:
                return die
            if AT_inline in die.attrs:
                concrete = self._concrete_of(die, entry)
                if concrete is not None:
                    return concrete
        return None

    def _dies_named(self, name: str) -> list[DIE]:
        """DIEs whose inline DW_AT_name is `name`: found by searching the section bytes
        (the abbreviation code, one byte in Go's tables, precedes the name)."""
        dw, out = self._open(), []
        needle = name.encode() + b"\0"
        pos = dw.info.find(needle)
        while pos > 0:
            try:
                die = dw.die_at(pos - 1)
            except DwarfFormatError:  # the bytes matched inside something else
                die = None
            if die is not None and die.get(AT_name) == needle[:-1]:
                out.append(die)
            pos = dw.info.find(needle, pos + 1)
        return out

    def _concrete_of(self, abstract: DIE, entry: int) -> DIE | None:
        """The out-of-line instance (DW_AT_abstract_origin -> abstract) at entry."""
        dw = self._dw
        needle = struct.pack("<I", abstract.offset)
        pos = dw.info.find(needle)
        while pos > 0:
            try:
                die = dw.die_at(pos - 1)
            except DwarfFormatError:
                die = None
            if die is not None and die.tag == TAG_subprogram and die.get(AT_low_pc) == entry \
                    and die.ref(AT_abstract_origin) == abstract.offset:
                return die
            pos = dw.info.find(needle, pos + 1)
        return None

    def _index(self) -> None:
        """Every out-of-line subprogram by entry address: one pass over all units,
        worth it once many functions are asked about."""
        dw, by_pc = self._dw, {}
        for cu in dw.iter_cus():
            for die in dw.iter_dies(cu):
                if die.tag == TAG_subprogram:
                    pc = die.get(AT_low_pc)
                    if isinstance(pc, int) and pc:
                        by_pc.setdefault(pc, die.offset)
        self._by_pc = by_pc

    # -- parameters --------------------------------------------------------------------

    def _param(self, die: DIE, loc_die: DIE | None) -> DwarfParam:
        """A parameter from its declaring DIE and the DIE with its location (the same
        one, or the concrete copy of an inlinable function's abstract parameter)."""
        t = self._type_of(die, 0)
        loc = loc_die.attrs.get(AT_location) if loc_die is not None else None
        ranges: tuple[LocRange, ...] = ()
        if loc is not None:
            form, value = loc
            if isinstance(value, int) and form in (0x17, 0x06, 0x07, 0x22):
                ranges = self._loclist(value, loc_die.cu)
            elif isinstance(value, bytes) and value:
                ranges = (LocRange(0, 1 << 64, decode_expr(value)),)
        return DwarfParam(die.name, t, bool(die.get(AT_variable_parameter)), ranges)

    def _loclist(self, offset: int, cu) -> tuple[LocRange, ...]:
        top = self._dw.die_at(cu.first_die, cu)
        base = top.get(AT_low_pc) or 0
        if cu.version >= 5:
            if self._loclists is None:
                self._loclists = self._section(".debug_loclists")
            return loclists_v5(self._loclists, offset, lambda i: self._dw.address(cu, i),
                                base)
        if self._loc is None:
            self._loc = self._section(".debug_loc")
        return loclist_v4(self._loc, offset, base)

    # -- types -----------------------------------------------------------------------

    def _type_of(self, die: DIE, depth: int) -> gt.GoType:
        off = die.ref(AT_type)
        return gt.word(8, "?") if off is None else self._type_at(off, depth)

    def _type_at(self, offset: int, depth: int) -> gt.GoType:
        key = (offset, min(depth, _MAX_TYPE_DEPTH))
        if key not in self._types:
            die = self._dw.die_at(offset)
            if die is None:
                raise DwarfFormatError("DWARF: type reference to a null entry", offset)
            self._types[key] = self._build_type(die, depth)
        return self._types[key]

    def _build_type(self, die: DIE, depth: int) -> gt.GoType:
        name = die.name or "?"
        size = _int(die, AT_byte_size, 8)
        kind = gt.REFLECT_KINDS.get(_int(die, DW_AT_go_kind, 0))
        deep = depth >= _MAX_TYPE_DEPTH
        if die.tag == TAG_typedef:
            if kind in ("map", "chan"):
                elem = self._ref(die, DW_AT_go_elem, depth)
                key = self._ref(die, DW_AT_go_key, depth) if kind == "map" else None
                return gt.GoType(kind, 8, name, elem=elem, key=key)
            # Named types, interfaces (-> runtime.iface/eface) and funcs: take the shape
            # of what the typedef stands for, keep the name. A name is no level of
            # nesting (a type cannot contain itself without a pointer, which counts):
            # the depth stays, so fields are known as deep as Go's traceback describes
            # them (arginfo.py), where the layouts are compared.
            under = self._type_of(die, depth)
            if under.name.startswith(("runtime.iface", "runtime.eface")):
                return gt.GoType("interface", 16, name,
                                 empty_interface=under.name.startswith("runtime.eface"))
            return dataclasses.replace(under, name=name)
        if kind is None:
            if die.tag == TAG_pointer_type:
                kind = "unsafe.Pointer" if name == "unsafe.Pointer" else "pointer"
            elif die.tag == TAG_base_type:
                kind = _base_kind(name, size, _int(die, AT_encoding, 0))
            elif die.tag == TAG_structure_type:
                kind = "struct"
            elif die.tag == TAG_array_type:
                kind = "array"
            elif die.tag == TAG_subroutine_type:
                kind = "func"
            else:
                return gt.word(size, name)
        if kind in gt.INT_KINDS or kind in gt.FLOAT_KINDS or kind in gt.COMPLEX_KINDS \
                or kind == "bool":
            return gt.GoType(kind, size, name, gt.alignment(kind, size, None, ()))
        if kind in ("pointer", "unsafe.Pointer", "func", "map", "chan"):
            elem = None
            if kind == "pointer" and not deep and AT_type in die.attrs:
                elem = self._type_of(die, depth + 1)
            return gt.GoType(kind, 8, name, elem=elem)
        if kind == "string":
            return gt.GoType("string", 16, name)
        if kind == "slice":
            return gt.GoType("slice", 24, name, elem=self._ref(die, DW_AT_go_elem, depth))
        if kind == "interface":
            return gt.GoType("interface", 16, name, empty_interface=name in (
                "interface {}", "any") or "eface" in name)
        if kind == "array":
            elem = self._type_of(die, depth + 1) if not deep else None
            length = 0
            for c in self._dw.children(die):
                if c.tag == TAG_subrange_type:
                    length = _int(c, AT_count, 0) or _int(c, AT_upper_bound, -1) + 1
            return gt.GoType("array", size, name, gt.alignment("array", size, elem, ()),
                             elem=elem, length=length)
        if kind == "struct":
            fields: list[gt.Field] = []
            if not deep:
                for c in self._dw.children(die):
                    if c.tag == TAG_member:
                        fields.append(gt.Field(c.name, _int(c, AT_data_member_location, 0),
                                               self._type_of(c, depth + 1)))
            return gt.GoType("struct", size, name, gt.alignment("struct", size, None,
                                                                tuple(fields)),
                             fields=tuple(fields))
        return gt.word(size, name)

    def _ref(self, die: DIE, attr: int, depth: int) -> gt.GoType | None:
        off = die.ref(attr)
        if off is None or depth >= _MAX_TYPE_DEPTH:
            return None
        return self._type_at(off, depth + 1)


def _dedupe(params: list[DwarfParam]) -> list[DwarfParam]:
    """Drop repeated parameters. In a function with a defer, Go 1.19-1.23 describe each
    result twice: an unnamed one as ~r0, ~r0, ~r1, ~r1 (the result and the copy that
    deferreturn reloads), a named one that a deferred closure assigns as r, r (the
    heap or stack copy). Kept, the copies would shift every result after them by a
    register: `f() (int, error)` read as (int, int, error, error). Go names parameters
    uniquely (blank ones ~p0, ~b0 where named at all), so a repeated name is a copy; the
    copy with a location wins."""
    out: list[DwarfParam] = []
    at: dict[tuple[str, bool], int] = {}
    for p in params:
        key = (p.name, p.is_result)
        if p.name == "_" or key not in at:
            at[key] = len(out)
            out.append(p)
        elif p.ranges and not out[at[key]].ranges:
            out[at[key]] = p
    return out


def _in_order(params: list[DwarfParam]) -> list[DwarfParam]:
    """Inputs in declaration order. Go 1.21+ name an unnamed or blank input ~pN, N its
    position, but write a zero-sized one (an empty struct receiver: io.discard.Write)
    after the others; put each ~pN back at N so the signature reads as declared."""
    inputs = [p for p in params if not p.is_result]
    blanks = [(int(p.name[2:]), p) for p in inputs
              if p.name.startswith("~p") and p.name[2:].isdigit()]
    if not blanks:
        return params
    rest = [p for p in inputs if not (p.name.startswith("~p") and p.name[2:].isdigit())]
    for n, p in sorted(blanks, key=lambda b: b[0]):
        rest.insert(min(n, len(rest)), p)
    return rest + [p for p in params if p.is_result]


def _int(die: DIE, attr: int, default: int) -> int:
    v = die.get(attr)
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _base_kind(name: str, size: int, encoding: int) -> str:
    if name in gt.INT_KINDS or name in gt.FLOAT_KINDS or name in gt.COMPLEX_KINDS \
            or name == "bool":
        return name
    if encoding == 2:
        return "bool"
    if encoding == 4:
        return {4: "float32", 8: "float64"}.get(size, "word")
    if encoding == 3:
        return {8: "complex64", 16: "complex128"}.get(size, "word")
    signed = encoding in (5, 6)
    return {1: "int8", 2: "int16", 4: "int32", 8: "int64"}[size] if signed and size in (
        1, 2, 4, 8) else {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"}.get(size, "word")
