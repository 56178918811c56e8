"""DWARF of Go binaries: a function's parameters, their Go types and location lists.

Lazy by design: a function's DW_TAG_subprogram is found by searching .debug_info for its
name (Go writes names inline, DW_FORM_string) and parsing only that DIE, its children
and the type DIEs they reference, so asking about main.f never parses net/http. If the
names are not inline (a post-processed binary), the package's compilation unit is
walked instead.

pyelftools parses DIEs; location lists and expressions are decoded here because Go 1.25+
writes DWARF 5 lists with DW_LLE_base_addressx, which pyelftools does not read, and only
a few operations matter: DW_OP_regN/regx (a register), DW_OP_call_frame_cfa and
DW_OP_fbreg (a stack slot; Go's frame base is the CFA), DW_OP_piece. Anything else makes
the piece "unknown", never a guess.
"""

from __future__ import annotations

import dataclasses
import io
import struct
from dataclasses import dataclass

from elftools.common.exceptions import DWARFError, ELFError

from lumos.binary.elf import ElfBinary
from lumos.errors import BinaryFormatError
from lumos.golang import types as gt
from lumos.golang.pclntab import package_of

DW_AT_go_kind, DW_AT_go_key, DW_AT_go_elem = 0x2900, 0x2901, 0x2902
_TYPE_TAGS = frozenset({"DW_TAG_base_type", "DW_TAG_structure_type", "DW_TAG_pointer_type",
                        "DW_TAG_typedef", "DW_TAG_array_type", "DW_TAG_subroutine_type"})
_MAX_TYPE_DEPTH = 4  # deeper types (linked lists...) keep name and kind only
_ERRORS = (DWARFError, ELFError, ValueError, KeyError, IndexError, AttributeError,
           TypeError, struct.error, EOFError, AssertionError, NotImplementedError)

# DWARF register numbers (x86-64 psABI) -> Linux struct pt_regs field names; xmm are "x0"..
DWARF_REGS = {0: "ax", 1: "dx", 2: "cx", 3: "bx", 4: "si", 5: "di", 6: "bp", 7: "sp",
              **{n: f"r{n}" for n in range(8, 16)}, **{17 + n: f"x{n}" for n in range(16)}}


@dataclass(frozen=True)
class Piece:
    """Where one piece of a value lives over a pc range.

    Exactly one of reg / cfa_offset is set, or neither (value unavailable there).
    size None means the whole value (no DW_OP_piece).
    """

    size: int | None
    reg: str | None = None          # pt_regs name ("ax") or "xN" for an X register
    cfa_offset: int | None = None   # value at CFA + cfa_offset; CFA = SP at entry + 8


@dataclass(frozen=True)
class LocRange:
    lo: int          # virtual addresses, [lo, hi)
    hi: int
    pieces: tuple[Piece, ...]


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

    def __init__(self, elf: ElfBinary):
        self._elf = elf
        self.has_dwarf = elf.has_section(".debug_info") or elf.has_section(".zdebug_info")
        self._dw = None
        self._info = b""
        self._types: dict[tuple[int, int], gt.GoType] = {}
        self._loc = self._loclists = None

    def _open(self):
        if self._dw is None:
            try:
                self._dw = self._elf.elf.get_dwarf_info(relocate_dwarf_sections=False)
                self._info = self._dw.debug_info_sec.stream.getvalue()
            except _ERRORS as e:
                raise BinaryFormatError(f"{self._elf.path}: corrupt DWARF: {e}") from e
        return self._dw

    # -- lookups ---------------------------------------------------------------------

    def function_params(self, name: str, entry: int) -> list[DwarfParam] | None:
        """Parameters (inputs then results, in DWARF order) of the function at entry,
        or None if DWARF does not describe it."""
        if not self.has_dwarf:
            return None
        try:
            die = self._find_die(name, "DW_TAG_subprogram", entry)
            if die is None:
                return None
            origin = self._origin(die)
            if origin is None:
                return [self._param(c, c) for c in die.iter_children()
                        if c.tag == "DW_TAG_formal_parameter" and "DW_AT_name" in c.attributes]
            # An out-of-line copy of an inlinable function: names and types are on the
            # abstract DIE's children, locations on the concrete ones.
            # Parameters the abstract DIE lacks (results) are named on the concrete one.
            concrete, own = {}, []
            for c in die.iter_children():
                if c.tag != "DW_TAG_formal_parameter":
                    continue
                o = c.attributes.get("DW_AT_abstract_origin")
                if o is not None:
                    concrete[_ref_offset(c, o)] = c
                elif "DW_AT_name" in c.attributes:
                    own.append(self._param(c, c))
            return [self._param(a, concrete.get(a.offset)) for a in origin.iter_children()
                    if a.tag == "DW_TAG_formal_parameter" and "DW_AT_name" in a.attributes
                    ] + own
        except _ERRORS as e:
            raise BinaryFormatError(f"{self._elf.path}: corrupt DWARF for {name}: {e}") from e

    def _origin(self, die):
        o = die.attributes.get("DW_AT_abstract_origin")
        return self._dw.get_DIE_from_refaddr(_ref_offset(die, o)) if o is not None else None

    def struct_field_offset(self, type_name: str, member: str) -> int | None:
        """Byte offset of a field in a named struct type ("runtime.g", "goid")."""
        if not self.has_dwarf:
            return None
        try:
            die = self._find_die(type_name, "DW_TAG_structure_type", None)
            if die is None:
                return None
            for c in die.iter_children():
                if c.tag == "DW_TAG_member" and _name(c) == member:
                    loc = c.attributes.get("DW_AT_data_member_location")
                    return loc.value if loc is not None and isinstance(loc.value, int) else None
        except _ERRORS as e:
            raise BinaryFormatError(f"{self._elf.path}: corrupt DWARF for {type_name}: {e}") \
                from e
        return None

    def _find_die(self, name: str, tag: str, entry: int | None):
        dw = self._open()
        needle = name.encode() + b"\0"
        pos = self._info.find(needle)
        found_any = False
        while pos > 0:
            found_any = True
            # The abbrev code (ULEB128, one byte for Go's small tables) precedes the name.
            try:
                die = dw.get_DIE_from_refaddr(pos - 1)
            except _ERRORS:
                die = None
            if die is not None and die.tag == tag and _name(die) == name:
                if entry is None or _low_pc(die) == entry:
                    return die
                if "DW_AT_inline" in die.attributes:
                    concrete = self._concrete_of(die, entry)
                    if concrete is not None:
                        return concrete
            pos = self._info.find(needle, pos + 1)
        if found_any:
            return None
        return self._walk_for(name, tag, entry)

    def _concrete_of(self, abstract, entry: int):
        """The out-of-line instance (DW_AT_abstract_origin -> abstract) at entry."""
        needle = struct.pack("<I", abstract.offset)
        pos = self._info.find(needle)
        while pos > 0:
            try:
                die = self._dw.get_DIE_from_refaddr(pos - 1)
            except _ERRORS:
                die = None
            if die is not None and die.tag == "DW_TAG_subprogram" and _low_pc(die) == entry:
                o = die.attributes.get("DW_AT_abstract_origin")
                if o is not None and _ref_offset(die, o) == abstract.offset:
                    return die
            pos = self._info.find(needle, pos + 1)
        return None

    def _walk_for(self, name: str, tag: str, entry: int | None):
        """Slow path when names are not inline strings: walk the package's CU."""
        pkg = package_of(name)
        for cu in self._open().iter_CUs():
            top = cu.get_top_DIE()
            if tag == "DW_TAG_subprogram" and _name(top) != pkg:
                continue
            for die in cu.iter_DIEs():
                if die.tag == tag and _name(die) == name and (
                        entry is None or _low_pc(die) == entry):
                    return die
        return None

    # -- parameters --------------------------------------------------------------------

    def _param(self, die, loc_die) -> DwarfParam:
        """A parameter from its declaring DIE and the DIE with its location (the same
        one, or the concrete copy of an inlinable function's abstract parameter)."""
        t = self._type_of(die, 0)
        vp = die.attributes.get("DW_AT_variable_parameter")
        loc = loc_die.attributes.get("DW_AT_location") if loc_die is not None else None
        ranges: tuple[LocRange, ...] = ()
        if loc is not None:
            if loc.form in ("DW_FORM_sec_offset", "DW_FORM_data4", "DW_FORM_data8"):
                ranges = self._loclist(loc.value, loc_die.cu)
            elif isinstance(loc.value, list) and loc.value:
                ranges = (LocRange(0, 1 << 64, _expr(bytes(loc.value))),)
        return DwarfParam(_name(die), t, bool(vp and vp.value), ranges)

    def _loclist(self, offset: int, cu) -> tuple[LocRange, ...]:
        version = cu["version"]
        if version >= 5:
            if self._loclists is None:
                self._loclists = self._section(".debug_loclists")
            return _loclists_v5(self._loclists, offset, lambda i: self._dw.get_addr(cu, i),
                                _low_pc(cu.get_top_DIE()) or 0)
        if self._loc is None:
            self._loc = self._section(".debug_loc")
        return _loclist_v4(self._loc, offset, _low_pc(cu.get_top_DIE()) or 0)

    def _section(self, name: str) -> bytes:
        sec = self._elf.elf.get_section_by_name(name)
        if sec is None:
            return b""
        try:
            return sec.data()
        except _ERRORS as e:
            raise BinaryFormatError(f"{self._elf.path}: {name}: {e}") from e

    # -- types -----------------------------------------------------------------------

    def _type_of(self, die, depth: int) -> gt.GoType:
        attr = die.attributes.get("DW_AT_type")
        if attr is None:
            return gt.word(8, "?")
        return self._type_at(_ref_offset(die, attr), depth)

    def _type_at(self, offset: int, depth: int) -> gt.GoType:
        key = (offset, min(depth, _MAX_TYPE_DEPTH))
        if key not in self._types:
            self._types[key] = self._build_type(self._dw.get_DIE_from_refaddr(offset), depth)
        return self._types[key]

    def _build_type(self, die, depth: int) -> gt.GoType:
        name = _name(die) or "?"
        size = _attr(die, "DW_AT_byte_size", 8)
        kind = gt.REFLECT_KINDS.get(_attr(die, DW_AT_go_kind, 0))
        deep = depth >= _MAX_TYPE_DEPTH
        if die.tag == "DW_TAG_typedef":
            if kind in ("map", "chan"):
                elem = self._ref(die, DW_AT_go_elem, depth)
                key = self._ref(die, DW_AT_go_key, depth) if kind == "map" else None
                return gt.GoType(kind, 8, name, elem=elem, key=key)
            # Named types, interfaces (-> runtime.iface/eface) and funcs: take the shape
            # of what the typedef stands for, keep the name.
            under = self._type_of(die, depth)
            if under.name.startswith(("runtime.iface", "runtime.eface")):
                return gt.GoType("interface", 16, name,
                                 empty_interface=under.name.startswith("runtime.eface"))
            return dataclasses.replace(under, name=name)
        if kind is None:
            if die.tag == "DW_TAG_pointer_type":
                kind = "unsafe.Pointer" if name == "unsafe.Pointer" else "pointer"
            elif die.tag == "DW_TAG_base_type":
                kind = _base_kind(name, size, _attr(die, "DW_AT_encoding", 0))
            elif die.tag == "DW_TAG_structure_type":
                kind = "struct"
            elif die.tag == "DW_TAG_array_type":
                kind = "array"
            else:
                return gt.word(size, name)
        if kind in gt.INT_KINDS or kind in gt.FLOAT_KINDS or kind in gt.COMPLEX_KINDS \
                or kind == "bool":
            return gt.GoType(kind, size, name, gt.alignment(kind, size, None, ()))
        if kind in ("pointer", "unsafe.Pointer", "func", "map", "chan"):
            elem = None
            if kind == "pointer" and not deep and "DW_AT_type" in die.attributes:
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
            for c in die.iter_children():
                if c.tag == "DW_TAG_subrange_type":
                    length = _attr(c, "DW_AT_count", 0) or _attr(c, "DW_AT_upper_bound", -1) + 1
            return gt.GoType("array", size, name, gt.alignment("array", size, elem, ()),
                             elem=elem, length=length)
        if kind == "struct":
            fields: list[gt.Field] = []
            if not deep:
                for c in die.iter_children():
                    if c.tag == "DW_TAG_member":
                        fields.append(gt.Field(_name(c), _attr(c, "DW_AT_data_member_location",
                                                                0), self._type_of(c, depth + 1)))
            return gt.GoType("struct", size, name, gt.alignment("struct", size, None,
                                                                tuple(fields)),
                             fields=tuple(fields))
        return gt.word(size, name)

    def _ref(self, die, attr_id: int, depth: int) -> gt.GoType | None:
        a = die.attributes.get(attr_id)
        if a is None or depth >= _MAX_TYPE_DEPTH:
            return None
        return self._type_at(_ref_offset(die, a), depth + 1)


def _ref_offset(die, attr) -> int:
    """.debug_info offset a reference attribute points at."""
    return attr.value if attr.form == "DW_FORM_ref_addr" else attr.value + die.cu.cu_offset


def _name(die) -> str:
    a = die.attributes.get("DW_AT_name")
    if a is None:
        return ""
    v = a.value
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _attr(die, name, default):
    a = die.attributes.get(name)
    return a.value if a is not None and isinstance(a.value, int) else default


def _low_pc(die) -> int | None:
    a = die.attributes.get("DW_AT_low_pc")
    return a.value if a is not None else None


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


# -- location lists and expressions ------------------------------------------------------

def _uleb(s: io.BytesIO) -> int:
    v = shift = 0
    while True:
        b = s.read(1)
        if not b:
            raise ValueError("LEB128 runs off the end")
        v |= (b[0] & 0x7F) << shift
        shift += 7
        if b[0] < 0x80:
            return v
        if shift > 70:
            raise ValueError("LEB128 too long")


def _sleb(s: io.BytesIO) -> int:
    v = shift = 0
    while True:
        b = s.read(1)
        if not b:
            raise ValueError("LEB128 runs off the end")
        v |= (b[0] & 0x7F) << shift
        shift += 7
        if b[0] < 0x80:
            return v - (1 << shift) if b[0] & 0x40 else v
        if shift > 70:
            raise ValueError("LEB128 too long")


def _read(s: io.BytesIO, n: int) -> bytes:
    b = s.read(n)
    if len(b) != n:
        raise ValueError("location list runs off the end")
    return b


def _loclist_v4(sec: bytes, offset: int, base: int) -> tuple[LocRange, ...]:
    s = io.BytesIO(sec)
    s.seek(offset)
    out = []
    for _ in range(100_000):
        lo, hi = struct.unpack("<QQ", _read(s, 16))
        if lo == 0 and hi == 0:
            return tuple(out)
        if lo == (1 << 64) - 1:
            base = hi
            continue
        n = struct.unpack("<H", _read(s, 2))[0]
        out.append(LocRange(base + lo, base + hi, _expr(_read(s, n))))
    raise ValueError("location list does not end")


def _loclists_v5(sec: bytes, offset: int, addr, base: int) -> tuple[LocRange, ...]:
    s = io.BytesIO(sec)
    s.seek(offset)
    out = []
    for _ in range(100_000):
        kind = _read(s, 1)[0]
        if kind == 0:        # DW_LLE_end_of_list
            return tuple(out)
        if kind == 1:        # base_addressx
            base = addr(_uleb(s))
            continue
        if kind == 6:        # base_address
            base = struct.unpack("<Q", _read(s, 8))[0]
            continue
        if kind == 2:        # startx_endx
            lo, hi = addr(_uleb(s)), addr(_uleb(s))
        elif kind == 3:      # startx_length
            lo = addr(_uleb(s))
            hi = lo + _uleb(s)
        elif kind == 4:      # offset_pair
            lo, hi = base + _uleb(s), base + _uleb(s)
        elif kind == 5:      # default_location
            lo, hi = 0, 1 << 64
        elif kind == 7:      # start_end
            lo, hi = struct.unpack("<QQ", _read(s, 16))
        elif kind == 8:      # start_length
            lo = struct.unpack("<Q", _read(s, 8))[0]
            hi = lo + _uleb(s)
        else:
            raise ValueError(f"unknown DW_LLE code {kind}")
        out.append(LocRange(lo, hi, _expr(_read(s, _uleb(s)))))
    raise ValueError("location list does not end")


def _expr(b: bytes) -> tuple[Piece, ...]:
    """Decode a location expression into pieces; unknown operations -> unavailable."""
    s = io.BytesIO(b)
    pieces: list[Piece] = []
    reg = cfa = None
    unknown = False
    while s.tell() < len(b):
        op = _read(s, 1)[0]
        if 0x50 <= op <= 0x6F:           # DW_OP_reg0..31
            reg = DWARF_REGS.get(op - 0x50)
            unknown = reg is None
        elif op == 0x90:                 # DW_OP_regx
            reg = DWARF_REGS.get(_uleb(s))
            unknown = reg is None
        elif op == 0x9C:                 # DW_OP_call_frame_cfa
            cfa = 0
        elif op == 0x91:                 # DW_OP_fbreg (Go: frame base = CFA)
            cfa = _sleb(s)
        elif op == 0x93:                 # DW_OP_piece
            size = _uleb(s)
            pieces.append(Piece(size, None, None) if unknown else Piece(size, reg, cfa))
            reg = cfa = None
            unknown = False
        else:                            # anything else: give up on this piece
            unknown = True
            reg = cfa = None
            # skip operands we cannot size: stop decoding the rest of the expression
            return (*pieces, Piece(None))
    if reg is not None or cfa is not None or unknown:
        pieces.append(Piece(None) if unknown else Piece(None, reg, cfa))
    return tuple(pieces)
