"""DWARF of C programs, as much as probing an interpreter needs: the labels inside one
function (`start_frame`, `TARGET_RETURN_VALUE` in CPython's eval loop), where a
variable lives at a given PC (its location list), and struct member offsets.

Debug info is read from the file itself or, as gdb does, from its separate debug file
/usr/lib/debug/.build-id/xx/yyyy.debug (Debian's -dbg / -dbgsym packages), matched by
GNU build id. Only one compile unit is walked (the one defining the function), which
keeps a 10 MB interpreter's DWARF to a second or two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.locationlists import (
    BaseAddressEntry,
    LocationEntry,
    LocationExpr,
    LocationParser,
)
from elftools.elf.elffile import ELFFile

from lumos.binary.elf import ElfBinary
from lumos.errors import BinaryFormatError

DEBUG_ROOT = "/usr/lib/debug/.build-id"
# DWARF register numbers (x86-64 psABI) -> pt_regs names
DWARF_REGS = ["ax", "dx", "cx", "bx", "si", "di", "bp", "sp", "r8", "r9", "r10", "r11",
              "r12", "r13", "r14", "r15"]


def debug_file_for(elf: ElfBinary) -> str | None:
    """The file holding elf's DWARF: itself, or its build-id debug file, or None."""
    if elf.has_section(".debug_info"):
        return elf.path
    bid = elf.build_id
    if bid:
        path = os.path.join(DEBUG_ROOT, bid[:2], bid[2:] + ".debug")
        if os.path.exists(path):
            return path
    return None


@dataclass(frozen=True)
class VarLoc:
    """Where a variable is at one PC: in a register, or at register + offset."""

    kind: str     # "reg" | "mem"
    reg: str
    offset: int = 0


class CFunction:
    """One function's DWARF: its labels and its parameters' and variables' locations.

    addr: the function's entry address (from the symbol table): the compile unit is
    found through .debug_aranges, and among LTO's concrete copies (DIEs whose name
    comes through DW_AT_abstract_origin) the one whose code holds addr is taken.
    """

    def __init__(self, path: str, name: str, addr: int):
        self.path = path
        self.name = name
        self.addr = addr
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
            self.elf = ELFFile(self._file)
            self.dwarf = self.elf.get_dwarf_info()
            self._find()
        except (ELFError, DWARFError, ValueError, KeyError, OSError, AttributeError) as e:
            self.close()
            raise BinaryFormatError(f"{path}: DWARF of {name}: {e}") from e

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _cus(self):
        aranges = self.dwarf.get_aranges()
        off = aranges.cu_offset_at_addr(self.addr) if aranges is not None else None
        if off is not None:
            yield self.dwarf.get_CU_at(off)
        yield from self.dwarf.iter_CUs()

    def _find(self) -> None:
        self.labels: dict[str, int] = {}
        self.vars: dict[str, object] = {}
        for cu in self._cus():
            for die in cu.get_top_DIE().iter_children():
                if die.tag != "DW_TAG_subprogram" or "DW_AT_declaration" in die.attributes:
                    continue
                if _name(die) != self.name or not self._covers(cu, die):
                    continue
                self.cu, self.die = cu, die
                self._walk(die, top=True)
                return
        raise BinaryFormatError(f"{self.path}: no DWARF for function {self.name}")

    def _covers(self, cu, die) -> bool:
        a = die.attributes
        if "DW_AT_low_pc" in a:
            lo = a["DW_AT_low_pc"].value
            hi = a.get("DW_AT_high_pc")
            if hi is None:
                return lo == self.addr
            end = hi.value if hi.form == "DW_FORM_addr" else lo + hi.value
            return lo <= self.addr < end
        if "DW_AT_ranges" in a:
            rl = self.dwarf.range_lists()
            if rl is None:
                return False
            ranges = rl.get_range_list_at_offset(a["DW_AT_ranges"].value, cu=cu)
            return any(getattr(r, "begin_offset", -1) <= self.addr < getattr(r, "end_offset", -1)
                       for r in ranges)
        return False

    def _walk(self, die, top: bool) -> None:
        for c in die.iter_children():
            name = _name(c)
            if c.tag == "DW_TAG_label" and "DW_AT_low_pc" in c.attributes:
                self.labels.setdefault(name, c.attributes["DW_AT_low_pc"].value)
            elif c.tag in ("DW_TAG_formal_parameter", "DW_TAG_variable") and top and name:
                self.vars[name] = c
            if c.tag == "DW_TAG_lexical_block":
                self._walk(c, False)

    def location(self, var: str, pc: int) -> VarLoc | None:
        """Where `var` is when the PC is at `pc` (None: optimised out or not simple)."""
        expr = self._expr(var, pc)
        return _simple(expr) if expr is not None else None

    def fbreg_offset(self, var: str, pc: int) -> int | None:
        """N when `var` is at DW_OP_fbreg N at pc (frame base = CFA in GCC's output)."""
        expr = self._expr(var, pc)
        if expr and expr[0] == 0x91:
            return _sleb(expr, 1)[0]
        return None

    def _expr(self, var: str, pc: int) -> list[int] | None:
        die = self.vars.get(var)
        if die is None or "DW_AT_location" not in die.attributes:
            return None
        parser = LocationParser(self.dwarf.location_lists())
        loc = parser.parse_from_attribute(die.attributes["DW_AT_location"],
                                          self.cu.header.version, die)
        if isinstance(loc, LocationExpr):
            return loc.loc_expr
        base = self.cu.get_top_DIE().attributes.get("DW_AT_low_pc")
        base = base.value if base is not None else 0
        for entry in loc:
            if isinstance(entry, BaseAddressEntry):
                base = entry.base_address
                continue
            if not isinstance(entry, LocationEntry):
                continue
            lo, hi = entry.begin_offset, entry.end_offset
            if not getattr(entry, "is_absolute", False):
                lo, hi = lo + base, hi + base
            if lo <= pc < hi:
                return entry.loc_expr
        return None


def _name(die) -> str:
    """A DIE's name, also through DW_AT_abstract_origin (inlined and LTO copies)."""
    n = die.attributes.get("DW_AT_name")
    if n is None and "DW_AT_abstract_origin" in die.attributes:
        n = die.get_DIE_from_attribute("DW_AT_abstract_origin").attributes.get("DW_AT_name")
    return n.value.decode(errors="replace") if n is not None else ""


def _simple(expr: list[int]) -> VarLoc | None:
    """DW_OP_reg0..15 (0x50..0x5f) or DW_OP_breg0..15 (0x70..0x7f) + SLEB128."""
    if len(expr) == 1 and 0x50 <= expr[0] <= 0x5F:
        return VarLoc("reg", DWARF_REGS[expr[0] - 0x50])
    if expr and 0x70 <= expr[0] <= 0x7F:
        value, i = _sleb(expr, 1)
        if i == len(expr):
            return VarLoc("mem", DWARF_REGS[expr[0] - 0x70], value)
    return None


def _sleb(data, i: int) -> tuple[int, int]:
    """(value, next index) of the SLEB128 at data[i]."""
    value = shift = 0
    while i < len(data):
        b = data[i]
        value |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if not b & 0x80:
            if b & 0x40:
                value -= 1 << shift
            break
    return value, i


def struct_layouts(cf: CFunction, names: set[str]) -> dict[str, dict[str, int]]:
    """{struct or typedef name: {member: offset, '__size__': size}} from the function's
    compile unit (the types it uses are there)."""
    out: dict[str, dict[str, int]] = {}

    def members(die) -> dict[str, int]:
        m = {"__size__": die.attributes["DW_AT_byte_size"].value}
        for c in die.iter_children():
            if c.tag == "DW_TAG_member" and "DW_AT_data_member_location" in c.attributes:
                loc = c.attributes["DW_AT_data_member_location"].value
                if isinstance(loc, int):
                    m[_name(c)] = loc
        return m

    for die in cf.cu.iter_DIEs():
        name = _name(die)
        if name not in names or name in out:
            continue
        target = die
        if die.tag == "DW_TAG_typedef" and "DW_AT_type" in die.attributes:
            target = die.get_DIE_from_attribute("DW_AT_type")
        if target.tag == "DW_TAG_structure_type" and "DW_AT_byte_size" in target.attributes:
            out[name] = members(target)
    return out
