"""A small, bounds-checked DWARF 2-5 DIE reader over decompressed section bytes.

Why not pyelftools' DWARF parser: on real Go binaries it is ~10x slower (construct
parses field by field), it cannot read the DW_LLE_base_addressx entries of DWARF 5
location lists, and a damaged block length makes it crawl through millions of one-byte
reads. This reader parses exactly one DIE per request, every read is checked against
the section end (binary/reader.py: a damaged file raises DwarfFormatError with the
offset, where the byte is read), and it handles every attribute form of DWARF 2-5.

pyelftools still finds and decompresses the sections.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from lumos.binary.reader import sleb128, uint, uleb128
from lumos.errors import DwarfFormatError

# Tags and attributes lumos uses (DWARF 5, section 7.5).
TAG_compile_unit, TAG_subprogram, TAG_formal_parameter = 0x11, 0x2E, 0x05
TAG_member, TAG_structure_type, TAG_base_type = 0x0D, 0x13, 0x24
TAG_pointer_type, TAG_typedef, TAG_array_type = 0x0F, 0x16, 0x01
TAG_subrange_type, TAG_subroutine_type = 0x21, 0x15
AT_sibling, AT_location, AT_name, AT_byte_size = 0x01, 0x02, 0x03, 0x0B
AT_low_pc, AT_inline, AT_upper_bound, AT_count = 0x11, 0x20, 0x2F, 0x37
AT_abstract_origin, AT_data_member_location, AT_encoding = 0x31, 0x38, 0x3E
AT_type, AT_variable_parameter, AT_addr_base = 0x49, 0x4B, 0x73

_FIXED = {0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x11: 1, 0x12: 2, 0x13: 4, 0x14: 8,
          0x0C: 1, 0x19: 0, 0x1E: 16, 0x20: 8, 0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4,
          0x29: 1, 0x2A: 2, 0x2B: 3, 0x2C: 4, 0x1C: 4}
_ADDRX = {0x1B, 0x29, 0x2A, 0x2B, 0x2C}
_REFS_CU = {0x11, 0x12, 0x13, 0x14, 0x15}  # CU-relative references
_BLOCKS = {0x0A: 1, 0x03: 2, 0x04: 4}      # block with a length prefix of this size


def _uleb(d: bytes, p: int) -> tuple[int, int]:
    return uleb128(d, p, "DWARF: LEB128 value", DwarfFormatError)


def _sleb(d: bytes, p: int) -> tuple[int, int]:
    return sleb128(d, p, "DWARF: LEB128 value", DwarfFormatError)


@dataclass
class CU:
    offset: int          # of the unit header
    end: int             # offset past the unit
    version: int
    addr_size: int
    offset_size: int     # 4 (32-bit DWARF) or 8
    abbrevs: dict[int, tuple[int, bool, list[tuple[int, int, int]]]]
    first_die: int
    addr_base: int | None = None


@dataclass
class DIE:
    offset: int
    tag: int
    has_children: bool
    attrs: dict[int, tuple[int, object]]   # attribute -> (form, value)
    end: int                               # offset just past this DIE's attributes
    cu: CU

    def get(self, attr: int, default=None):
        a = self.attrs.get(attr)
        return a[1] if a is not None else default

    @property
    def name(self) -> str:
        v = self.get(AT_name)
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else ""

    def ref(self, attr: int) -> int | None:
        """.debug_info offset a reference attribute points at."""
        a = self.attrs.get(attr)
        if a is None or not isinstance(a[1], int):
            return None
        return a[1] + self.cu.offset if a[0] in _REFS_CU else a[1]


class DwarfInfo:
    """DIEs by offset, their children, and the compilation units around them."""

    def __init__(self, info: bytes, abbrev: bytes, addr: bytes = b"", strs: bytes = b"",
                 line_strs: bytes = b"", str_offsets: bytes = b""):
        self.info, self.abbrev, self.addr = info, abbrev, addr
        self.strs, self.line_strs, self.str_offsets = strs, line_strs, str_offsets
        self._cu_offsets: list[int] = []
        self._cus: dict[int, CU] = {}
        self._abbrev_cache: dict[int, dict] = {}
        self._scanned_to = 0

    # -- units ---------------------------------------------------------------------

    def iter_cus(self) -> Iterator[CU]:
        off = 0
        while off < len(self.info):
            cu = self._cu_at(off)
            yield cu
            off = cu.end

    def cu_containing(self, offset: int) -> CU:
        if not 0 <= offset < len(self.info):
            raise DwarfFormatError("DWARF: offset outside .debug_info", offset)
        while self._scanned_to <= offset and self._scanned_to < len(self.info):
            self._cu_at(self._scanned_to)
        i = bisect.bisect_right(self._cu_offsets, offset) - 1
        cu = self._cus[self._cu_offsets[i]]
        if not cu.offset <= offset < cu.end:
            raise DwarfFormatError("DWARF: offset is in no unit", offset)
        return cu

    def _cu_at(self, off: int) -> CU:
        if off in self._cus:
            return self._cus[off]
        d = self.info
        what, E = "DWARF: unit header", DwarfFormatError
        length = uint(d, off, 4, what, E)
        p, osize = off + 4, 4
        if length == 0xFFFFFFFF:
            length = uint(d, p, 8, what, E)
            p, osize = p + 8, 8
        end = p + length
        if end > len(d) or length < 7:
            raise DwarfFormatError("DWARF: unit runs past .debug_info", off)
        version = uint(d, p, 2, what, E)
        p += 2
        if version >= 5:
            unit_type, addr_size = uint(d, p, 1, what, E), uint(d, p + 1, 1, what, E)
            p += 2
            abbrev_off = uint(d, p, osize, what, E)
            p += osize
            if unit_type in (4, 5):          # skeleton, split compile: dwo_id
                p += 8
            elif unit_type in (2, 6):        # type units: signature, type offset
                p += 8 + osize
        else:
            abbrev_off = uint(d, p, osize, what, E)
            addr_size = uint(d, p + osize, 1, what, E)
            p += osize + 1
        if version < 2 or version > 5 or addr_size not in (4, 8):
            raise DwarfFormatError(f"DWARF: unit of version {version}, address size "
                                   f"{addr_size}", off)
        cu = CU(off, end, version, addr_size, osize, self._abbrevs(abbrev_off), p)
        top = self.die_at(p, cu)
        if top.get(AT_addr_base) is not None:
            cu.addr_base = top.get(AT_addr_base)
        self._cus[off] = cu
        if off >= self._scanned_to:
            self._cu_offsets.append(off)
            self._scanned_to = end
        return cu

    def _abbrevs(self, off: int) -> dict:
        if off in self._abbrev_cache:
            return self._abbrev_cache[off]
        d, p, table = self.abbrev, off, {}
        while True:
            code, p = _uleb(d, p)
            if code == 0:
                break
            tag, p = _uleb(d, p)
            children = uint(d, p, 1, "DWARF: abbreviation table", DwarfFormatError) == 1
            p += 1
            specs = []
            while True:
                at, p = _uleb(d, p)
                form, p = _uleb(d, p)
                implicit = 0
                if form == 0x21:
                    implicit, p = _sleb(d, p)
                if at == 0 and form == 0:
                    break
                specs.append((at, form, implicit))
            table[code] = (tag, children, specs)
            if len(table) > 100_000:
                raise DwarfFormatError("DWARF: abbreviation table does not end", off)
        self._abbrev_cache[off] = table
        return table

    # -- DIEs ----------------------------------------------------------------------

    def die_at(self, offset: int, cu: CU | None = None) -> DIE | None:
        """The DIE at offset, or None for a null entry (end of a sibling list)."""
        cu = cu or self.cu_containing(offset)
        if not cu.first_die <= offset < cu.end:
            raise DwarfFormatError("DWARF: DIE offset outside its unit", offset)
        d = self.info
        code, p = _uleb(d, offset)
        if code == 0:
            return None
        entry = cu.abbrevs.get(code)
        if entry is None:
            raise DwarfFormatError(f"DWARF: unknown abbreviation {code}", offset)
        tag, children, specs = entry
        attrs = {}
        for at, form, implicit in specs:
            value, p = self._form(form, p, cu, implicit)
            attrs[at] = (form, value)
        if p > cu.end:
            raise DwarfFormatError("DWARF: DIE runs past its unit", offset)
        return DIE(offset, tag, children, attrs, p, cu)

    def children(self, die: DIE) -> Iterator[DIE]:
        if not die.has_children:
            return
        p = die.end
        for _ in range(1_000_000):
            child = self.die_at(p, die.cu)
            if child is None:
                return
            yield child
            p = self._skip(child)
        raise DwarfFormatError("DWARF: sibling list does not end", die.offset)

    def _skip(self, die: DIE) -> int:
        """Offset of the DIE after `die` and all its descendants."""
        sib = die.ref(AT_sibling)
        if sib is not None and die.end <= sib <= die.cu.end:
            return sib
        if not die.has_children:
            return die.end
        p, depth = die.end, 1
        while depth:
            if p >= die.cu.end:
                raise DwarfFormatError("DWARF: children run past their unit", die.offset)
            code, q = _uleb(self.info, p)
            if code == 0:
                depth -= 1
                p = q
                continue
            child = self.die_at(p, die.cu)
            p = child.end
            if child.has_children:
                depth += 1
        return p

    def iter_dies(self, cu: CU) -> Iterator[DIE]:
        """Every DIE of a unit in order (null entries skipped)."""
        p = cu.first_die
        while p < cu.end:
            code, q = _uleb(self.info, p)
            if code == 0:
                p = q
                continue
            die = self.die_at(p, cu)
            yield die
            p = die.end

    def address(self, cu: CU, index: int) -> int:
        base = cu.addr_base if cu.addr_base is not None else 8
        p = base + index * cu.addr_size
        if p + cu.addr_size > len(self.addr):
            raise DwarfFormatError(f"DWARF: address index {index} outside .debug_addr", p)
        return int.from_bytes(self.addr[p:p + cu.addr_size], "little")

    # -- attribute forms -------------------------------------------------------------

    def _form(self, form: int, p: int, cu: CU, implicit: int) -> tuple[object, int]:
        d = self.info
        if form in _FIXED:
            n = _FIXED[form]
            v = uint(d, p, n, "DWARF: attribute", DwarfFormatError) if n else 0
            if form in _ADDRX:
                return self.address(cu, v), p + n
            if form in (0x25, 0x26, 0x27, 0x28):
                return self._strx(cu, v), p + n
            if form == 0x19:
                return True, p
            if form == 0x0C:
                return bool(v), p + n
            return v, p + n
        if form == 0x01:                        # addr
            n = cu.addr_size
            return uint(d, p, n, "DWARF: attribute", DwarfFormatError), p + n
        if form in (0x0E, 0x1F, 0x17, 0x10, 0x1D):   # strp, line_strp, sec_offset, ref_addr
            n = cu.offset_size if not (form == 0x10 and cu.version == 2) else cu.addr_size
            v = uint(d, p, n, "DWARF: attribute", DwarfFormatError)
            if form == 0x0E:
                return _cstr(self.strs, v), p + n
            if form == 0x1F:
                return _cstr(self.line_strs, v), p + n
            return v, p + n
        if form == 0x08:                        # inline string
            end = d.find(b"\0", p, len(d))
            if end < 0:
                raise DwarfFormatError("DWARF: unterminated string", p)
            return d[p:end], end + 1
        if form in (0x0F, 0x15, 0x22, 0x23):    # udata, ref_udata, loclistx, rnglistx
            return _uleb(d, p)
        if form == 0x0D:                        # sdata
            return _sleb(d, p)
        if form == 0x1A:                        # strx
            v, p = _uleb(d, p)
            return self._strx(cu, v), p
        if form == 0x1B:                        # addrx
            v, p = _uleb(d, p)
            return self.address(cu, v), p
        if form in (0x09, 0x18) or form in _BLOCKS:   # block, exprloc, blockN
            if form in _BLOCKS:
                n = _BLOCKS[form]
                size, p = uint(d, p, n, "DWARF: block length", DwarfFormatError), p + n
            else:
                size, p = _uleb(d, p)
            if p + size > len(d):
                raise DwarfFormatError("DWARF: block runs off the end", p)
            return d[p:p + size], p + size
        if form == 0x21:                        # implicit_const
            return implicit, p
        if form == 0x16:                        # indirect
            real, p = _uleb(d, p)
            if real == 0x16:
                raise DwarfFormatError("DWARF: indirect form loops", p)
            return self._form(real, p, cu, implicit)
        raise DwarfFormatError(f"DWARF: unknown attribute form {form:#x}", p)

    def _strx(self, cu: CU, index: int) -> bytes:
        # DW_AT_str_offsets_base is not tracked: Go does not use strx forms.
        p = 8 + index * cu.offset_size
        if p + cu.offset_size > len(self.str_offsets):
            return b""
        return _cstr(self.strs, int.from_bytes(self.str_offsets[p:p + cu.offset_size],
                                                "little"))


def _cstr(section: bytes, off: int) -> bytes:
    if not 0 <= off < len(section):
        raise DwarfFormatError("DWARF: string offset outside its section", off)
    end = section.find(b"\0", off)
    return section[off:end if end >= 0 else len(section)]
