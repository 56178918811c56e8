"""Call frame information (.eh_frame): the CFA rule at a PC, e.g. "CFA = rsp + 56".

GCC's DWARF puts spilled variables at DW_OP_fbreg N with the frame base being the CFA;
turning that into "rsp + 56 + N" at one probe address needs the CFI row for that PC.
"""

from __future__ import annotations

from elftools.common.exceptions import DWARFError, ELFError

from lumos.binary.cdwarf import DWARF_REGS
from lumos.binary.elf import ElfBinary


def cfa_at(elf: ElfBinary, pc: int) -> tuple[str, int] | None:
    """(pt_regs register, offset) with CFA = register + offset at pc, or None."""
    try:
        if not elf.elf.has_dwarf_info():
            return None
        dwarf = elf.elf.get_dwarf_info()
        entries = dwarf.EH_CFI_entries() if dwarf.has_EH_CFI() else dwarf.CFI_entries()
        for entry in entries:
            hdr = getattr(entry, "header", None)
            if hdr is None or "initial_location" not in hdr:
                continue
            lo = hdr["initial_location"]
            if not lo <= pc < lo + hdr["address_range"]:
                continue
            row = None
            for r in entry.get_decoded().table:
                if r["pc"] <= pc:
                    row = r
            if row is None or row["cfa"].reg is None or row["cfa"].reg >= len(DWARF_REGS):
                return None
            return DWARF_REGS[row["cfa"].reg], row["cfa"].offset
    except (ELFError, DWARFError, ValueError, KeyError):
        return None
    return None
