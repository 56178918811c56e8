"""C function prototypes from DWARF: parameter names and types as C writes them.

For `lumos trace` on C code built with -g (or with a Debian -dbgsym/-dbg package: the
build-id debug file is found as gdb finds it, binary/cdwarf.debug_file_for). Types are
rendered down to what decides how a value is read: 'const char *' stays (a C string),
typedefs of integer types become their base type ('size_t' -> 'unsigned long'), enums
'int', structs passed by value 'struct' (not decoded).
"""

from __future__ import annotations

from dataclasses import dataclass

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.elffile import ELFFile

from lumos.binary.cdwarf import debug_file_for
from lumos.binary.elf import ElfBinary
from lumos.errors import DwarfFormatError

_ATE_SIGNED = {0x05, 0x06, 0x0D}   # DW_ATE_signed, signed_char, signed_fixed
_ATE_BOOL, _ATE_FLOAT = 0x02, 0x04


@dataclass(frozen=True)
class CPrototype:
    name: str
    params: tuple[tuple[str, str], ...]   # (name, C type text)
    result: str                           # "void" when none


def _type_text(die, depth: int = 0) -> str:
    if die is None or depth > 8:
        return "void"
    tag = die.tag
    inner = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes \
        else None
    if tag == "DW_TAG_pointer_type":
        return _type_text(inner, depth + 1) + " *"
    if tag in ("DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type"):
        t = _type_text(inner, depth + 1)
        return ("const " + t) if tag == "DW_TAG_const_type" and not t.endswith("*") else t
    if tag == "DW_TAG_typedef":
        return _type_text(inner, depth + 1)
    if tag == "DW_TAG_enumeration_type":
        return "int"
    if tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
        kind = "struct" if tag == "DW_TAG_structure_type" else "union"
        return f"{kind} {_name(die)}".strip()
    if tag == "DW_TAG_array_type":
        return "struct"
    if tag == "DW_TAG_base_type":
        size = die.attributes["DW_AT_byte_size"].value
        enc = die.attributes["DW_AT_encoding"].value
        if enc == _ATE_BOOL:
            return "bool"
        if enc == _ATE_FLOAT:
            return {4: "float", 8: "double"}.get(size, "long double")
        name = {1: "char", 2: "short", 4: "int", 8: "long"}.get(size, "long")
        return name if enc in _ATE_SIGNED else f"unsigned {name}"
    return "void"


def _name(die) -> str:
    a = die.attributes.get("DW_AT_name")
    return a.value.decode(errors="replace") if a else ""


def c_prototype(elf: ElfBinary, name: str, addr: int | None = None) -> CPrototype | None:
    """The prototype of the C function `name` (at `addr`, its entry) from the file's
    DWARF, or None. With the address, .debug_aranges leads to the one compile unit that
    defines it (libc's debug file has thousands: a walk of them all took ~45 s here, this
    well under a second); without it, or without aranges, every unit is searched."""
    path = debug_file_for(elf)
    if path is None:
        return None
    try:
        dw, aranges = _dwarf(path)
        if dw is None:
            return None
        cus = None
        if addr is not None and aranges is not None:
            off = aranges.cu_offset_at_addr(addr)
            if off is not None:
                cus = [dw.get_CU_at(off)]
        for cu in cus if cus is not None else dw.iter_CUs():
            found = _in_unit(cu, name)
            if found is not None:
                return found
    except (ELFError, DWARFError, KeyError, ValueError, IndexError, OSError) as e:
        raise DwarfFormatError(f"{path}: C DWARF: {e}") from e
    return None


_open: dict[str, tuple] = {}


def _dwarf(path: str):
    """(DWARFInfo, aranges) of a debug file, parsed once per run (the file stays open:
    pyelftools reads it lazily)."""
    if path not in _open:
        ef = ELFFile(open(path, "rb"))  # noqa: SIM115 - kept open for lazy reads
        if not ef.has_dwarf_info():
            _open[path] = (None, None)
        else:
            dw = ef.get_dwarf_info()
            _open[path] = (dw, dw.get_aranges())
    return _open[path]


def _in_unit(cu, name: str) -> CPrototype | None:
    for die in cu.iter_DIEs():
        if die.tag != "DW_TAG_subprogram" or _name(die) != name:
            continue
        if "DW_AT_declaration" in die.attributes:
            continue
        origin = die
        if "DW_AT_abstract_origin" in die.attributes:
            origin = die.get_DIE_from_attribute("DW_AT_abstract_origin")
        params = tuple(
            (_name(c) or f"arg{i}", _type_text(
                c.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in c.attributes
                else None))
            for i, c in enumerate(x for x in origin.iter_children()
                                  if x.tag == "DW_TAG_formal_parameter"))
        res = (_type_text(origin.get_DIE_from_attribute("DW_AT_type"))
               if "DW_AT_type" in origin.attributes else "void")
        return CPrototype(name, params, res)
    return None
