"""DWARF location lists and expressions, as Go writes them, decoded into pieces.

DWARF 4 .debug_loc (base-address selection entries, then base-relative pairs) and
DWARF 5 .debug_loclists (Go 1.25+ uses DW_LLE_base_addressx + offset pairs). Only the
operations Go emits for parameters are understood: DW_OP_regN/regx, DW_OP_call_frame_cfa,
DW_OP_fbreg (Go's frame base is the CFA) and DW_OP_piece; anything else makes the piece
unknown, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.binary.reader import Reader
from lumos.errors import DwarfFormatError

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



def _reader(sec: bytes, offset: int, what: str) -> Reader:
    return Reader(sec, offset, f"DWARF: {what}", DwarfFormatError)


def loclist_v4(sec: bytes, offset: int, base: int) -> tuple[LocRange, ...]:
    r = _reader(sec, offset, "location list")
    out = []
    for _ in range(100_000):
        lo, hi = r.u64(), r.u64()
        if lo == 0 and hi == 0:
            return tuple(out)
        if lo == (1 << 64) - 1:
            base = hi
            continue
        n = r.u16()
        out.append(LocRange(base + lo, base + hi, decode_expr(r.bytes(n))))
    raise DwarfFormatError("DWARF: location list does not end", offset)


def loclists_v5(sec: bytes, offset: int, addr, base: int) -> tuple[LocRange, ...]:
    r = _reader(sec, offset, "location list")
    out = []
    for _ in range(100_000):
        kind = r.u8()
        if kind == 0:        # DW_LLE_end_of_list
            return tuple(out)
        if kind == 1:        # base_addressx
            base = addr(r.uleb())
            continue
        if kind == 6:        # base_address
            base = r.u64()
            continue
        if kind == 2:        # startx_endx
            lo, hi = addr(r.uleb()), addr(r.uleb())
        elif kind == 3:      # startx_length
            lo = addr(r.uleb())
            hi = lo + r.uleb()
        elif kind == 4:      # offset_pair
            lo, hi = base + r.uleb(), base + r.uleb()
        elif kind == 5:      # default_location
            lo, hi = 0, 1 << 64
        elif kind == 7:      # start_end
            lo, hi = r.u64(), r.u64()
        elif kind == 8:      # start_length
            lo = r.u64()
            hi = lo + r.uleb()
        else:
            raise DwarfFormatError(f"DWARF: unknown DW_LLE code {kind}", r.pos - 1)
        out.append(LocRange(lo, hi, decode_expr(r.bytes(r.uleb()))))
    raise DwarfFormatError("DWARF: location list does not end", offset)


def decode_expr(b: bytes) -> tuple[Piece, ...]:
    """Decode a location expression into pieces; unknown operations -> unavailable."""
    s = _reader(b, 0, "location expression")
    pieces: list[Piece] = []
    reg = cfa = None
    unknown = False
    while not s.at_end:
        op = s.u8()
        if 0x50 <= op <= 0x6F:           # DW_OP_reg0..31
            reg = DWARF_REGS.get(op - 0x50)
            unknown = reg is None
        elif op == 0x90:                 # DW_OP_regx
            reg = DWARF_REGS.get(s.uleb())
            unknown = reg is None
        elif op == 0x9C:                 # DW_OP_call_frame_cfa
            cfa = 0
        elif op == 0x91:                 # DW_OP_fbreg (Go: frame base = CFA)
            cfa = s.sleb()
        elif op == 0x93:                 # DW_OP_piece
            size = s.uleb()
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
