"""Probe sites of a Go function: one entry site that fires once per call, every RET.

Never uretprobes (they crash Go programs): exits are uprobes on each RET instruction.

The entry site is chosen among the instructions every call executes exactly once (the
"once region": from the entry through straight-line code, stopping at a branch target,
an unconditional jump, a RET or a conditional jump other than the prologue's), by:
  1. every argument readable there (the fewest unreadable pieces): float arguments
     arrive in X registers, which uprobes cannot read, and become readable once the
     compiler spills them (DWARF location lists say where and from which pc);
  2. emulated by the kernel (conditional jump, PUSH, CALL: ~1 µs, exact) over
     single-stepped (~5 µs, and a signal during the step makes the probe fire twice);
  3. the earliest.
Instructions before the prologue's conditional jump run again when the function
restarts after runtime.morestack grew the stack, so they are never chosen when a
prologue exists; the jump itself runs again too, and its Site carries a MorestackCheck
that lets the BPF program drop the pass about to branch to morestack.

Where an argument piece is at a site, in order of trust:
  - still in its ABI register, if no instruction before the site wrote that register;
  - in the stack slot an earlier instruction stored the untouched register to (spill
    tracking: Go spills X registers before its first call, often earlier than DWARF's
    location list admits), unless a later store or a callee may have overwritten it;
  - where the DWARF location list says at that pc;
  - else unreadable, with the reason. Never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lumos.binary.disasm import (
    JUMP_FLAGS,
    Insn,
    canonical_reg,
    iter_insns,
    quick_writes,
    scan,
    uprobe_emulated,
    writes_per_insn,
)
from lumos.errors import BinaryFormatError
from lumos.golang.abi import Slot
from lumos.golang.dwarfargs import DwarfParam, Piece
from lumos.golang.model import Loc, MorestackCheck, Site, reg_loc, stack_loc, unreadable

_CMP_GUARD = re.compile(r"^cmp (\w+), qword ptr \[(\w+) \+ (0x[0-9a-f]+)\]$")
# an instruction whose first operand is a stack slot [rsp + d]: a store, unless it only
# reads it (_READS_ONLY); a spill when it moves a register there (_SPILL_MOVES)
_MEM_DEST = re.compile(r"^(\S+) (byte|word|dword|qword|xmmword|ymmword|zmmword) ptr "
                       r"\[rsp(?: \+ (0x[0-9a-f]+|\d+))?\](?:, (\w+))?")
_OTHER_MEM_DEST = re.compile(r"^\S+ \w+ ptr (?:\w+:)?\[")
_MEM_SIZES = {"byte": 1, "word": 2, "dword": 4, "qword": 8, "xmmword": 16, "ymmword": 32,
              "zmmword": 64}
_READS_ONLY = frozenset({"cmp", "test", "bt", "ucomisd", "ucomiss", "comisd", "comiss",
                         "prefetcht0", "prefetchnta", "nop"})
_SPILL_MOVES = frozenset({"mov", "movsd", "movss", "movq", "movd"})
# pt_regs / ABI register names -> capstone's 64-bit names
_CS_NAMES = {"ax": "rax", "bx": "rbx", "cx": "rcx", "dx": "rdx", "si": "rsi", "di": "rdi",
             "bp": "rbp", "sp": "rsp", **{f"x{i}": f"xmm{i}" for i in range(16)}}
_MAX_REGION = 64
_FIRST_HEAD = 16   # most once-regions end sooner; decode more only when needed
_X_WHY = "in {reg}: uprobes cannot read X registers"


@dataclass(frozen=True)
class SiteContext:
    """What site selection needs to know beyond the code bytes."""

    file_offset: Callable[[int], int]          # vaddr -> file offset
    sp_delta: Callable[[int], int | None]      # pc -> bytes pushed since entry (pcsp)
    name_at: Callable[[int], str | None]       # vaddr -> function name (pclntab)


@dataclass(frozen=True)
class Prologue:
    jump_index: int          # index of the last conditional jump to morestack
    check: MorestackCheck    # for that jump
    jumps: frozenset[int]    # indices of every conditional jump to morestack


def choose_sites(entry: int, code: bytes, args: tuple[Slot, ...],
                 dwarf_args: list[DwarfParam | None] | None, results: tuple[Slot, ...],
                 ctx: SiteContext) -> tuple[Site, tuple[Site, ...], tuple[str, ...]]:
    """(entry site, RET sites, notes) for a function whose machine code is `code`."""
    sc = scan(code, entry, _FIRST_HEAD)
    if not sc.head:  # its bytes are not in the file, or decode to nothing
        raise BinaryFormatError("function has no instructions", ctx.file_offset(entry)
                                if code else None)
    end = entry + len(code)
    insns = sc.head
    notes: list[str] = []
    prologue = _find_prologue(insns, code, entry, ctx)
    targets = {t for _, _, t in sc.jumps if entry < t < end}
    region = _once_region(insns, targets, prologue)
    if len(region) == len(insns) == _FIRST_HEAD:  # a long straight start: look further
        insns = list(iter_insns(code, entry, _MAX_REGION))
        region = _once_region(insns, targets, prologue)
    raw = [code[i.address - entry:i.end - entry] for i in insns[:max(len(region), 1)]]
    entry_site = _pick_entry(insns, raw, region, prologue, args, dwarf_args, ctx)
    rets = tuple(_ret_site(a, code[a - entry:a - entry + n], results, ctx) for a, n in sc.rets)
    for a, m, t in sc.jumps:
        if m == "jmp" and not entry <= t < end:
            notes.append(f"tail call at {a:#x} to {ctx.name_at(t) or hex(t)}: "
                         "returns from there are not seen")
    if not rets:
        notes.append("no RET instruction: the function never returns normally")
    return entry_site, rets, tuple(notes)


def _find_prologue(insns: list[Insn], code: bytes, entry: int,
                   ctx: SiteContext) -> Prologue | None:
    """The stack-growth check, [LEAQ -N(SP), R12;] CMPQ SP|R12, 16(g); JLS morestack,
    or for frames bigger than a stack guard, MOVQ SP, R12; SUBQ $N, R12; JB morestack;
    CMPQ R12, 16(g); JLS morestack. The probe goes on the last of these jumps: passing
    it means no jump of the prologue branched to morestack."""
    jumps: list[int] = []
    for k, insn in enumerate(insns[:10]):
        if insn.is_cond_jump:
            t = insn.target
            if t is None or not _calls_morestack(code, entry, t, ctx):
                break
            jumps.append(k)
        elif insn.ends_block:
            break
    if not jumps:
        return None
    k = jumps[-1]
    insn = insns[k]
    guard, greg, off = "sp", "r14", 0x10
    m = _CMP_GUARD.match(str(insns[k - 1])) if k > 0 else None
    if m:
        guard = "sp" if m.group(1) == "rsp" else m.group(1)
        greg, off = m.group(2), int(m.group(3), 16)
    mask, taken_if_set = JUMP_FLAGS.get(insn.mnemonic, (0, True))
    if not mask:
        return None
    return Prologue(k, MorestackCheck(insn.mnemonic, mask, taken_if_set, guard, off, greg),
                    frozenset(jumps))


def _calls_morestack(code: bytes, entry: int, target: int, ctx: SiteContext) -> bool:
    """Does the block at target (inside the function) call runtime.morestack*?"""
    if not entry <= target < entry + len(code):
        return False
    for i in iter_insns(code[target - entry:], target, 24):
        if i.is_call and i.target is not None:
            return (ctx.name_at(i.target) or "").startswith("runtime.morestack")
        if i.is_ret or i.mnemonic == "jmp":
            return False
    return False


def _once_region(insns: list[Insn], targets: set[int], prologue: Prologue | None) -> list[int]:
    """Indices of the instructions each call executes exactly once (see module doc)."""
    out: list[int] = []
    for n, insn in enumerate(insns):
        if n and insn.address in targets:
            break
        if insn.is_ret or insn.mnemonic in ("ud2", "int3", ".byte"):
            break
        out.append(n)
        if insn.mnemonic == "jmp" or (insn.is_cond_jump and not (
                prologue and n in prologue.jumps)):
            break
    return out


def _pick_entry(insns, raw, region, prologue, args, dwarf_args, ctx) -> Site:
    first = prologue.jump_index if prologue else 0
    candidates = [n for n in region if n >= first] or [0]
    written: set[str] = set()
    spills: dict[str, tuple[int, int]] = {}
    best = None
    writes: list[set[str]] = []
    for n in range(max(candidates) + 1):
        insn = insns[n]
        if n in candidates:
            locs = _arg_locs(insn.address, args, dwarf_args, written, spills, ctx)
            bad = sum(1 for v in locs for loc in v if loc.kind == "unreadable")
            emulated = uprobe_emulated(insn, raw[n])
            key = (bad, not emulated, n)
            if best is None or key < best[0]:
                best = (key, n, locs, emulated)
            if not bad and emulated:
                break  # nothing later can be better
        _note_spill(insn, written, spills, ctx)
        w = quick_writes(insn)
        if w is None:
            if not writes:  # detail-mode decode only for instructions that need it
                writes = writes_per_insn(b"".join(raw), insns[0].address, len(raw))
            w = writes[n] if n < len(writes) else {"*"}
        written |= w
    (bad, _, _), n, locs, emulated = best
    insn = insns[n]
    morestack = prologue.check if prologue and n == prologue.jump_index else None
    why = _why(n, insn, prologue, emulated, bad, locs)
    # nothing is pushed before the prologue's jump: no need to decode pcsp there
    delta = 0 if n == 0 or morestack else ctx.sp_delta(insn.address) or 0
    return Site("entry", insn.address, ctx.file_offset(insn.address), str(insn), emulated,
                why, locs, morestack, delta)


def _note_spill(insn: Insn, written: set[str], spills: dict[str, tuple[int, int]],
                ctx: SiteContext) -> None:
    """Track stores of still-unmodified registers to the stack: after
    `movsd qword ptr [rsp + 0x20], xmm0` the value X0 had at entry is in that slot, until
    something writes over it. spills maps a register (capstone name) to (offset from SP
    at entry, size)."""
    if insn.is_call:
        # a callee may write its stack arguments, which live in our frame: keep only
        # slots in the caller's frame (at or above the return address + 8)
        for r, (o, _) in list(spills.items()):
            if o < 8:
                del spills[r]
        return
    text = str(insn)
    if insn.mnemonic in _READS_ONLY:
        return
    m = _MEM_DEST.match(text)
    if not m:
        if _OTHER_MEM_DEST.match(text):
            # a store through another register may hit our frame: forget its slots
            for r, (o, _) in list(spills.items()):
                if o < 8:
                    del spills[r]
        return
    delta = ctx.sp_delta(insn.address)
    if delta is None:
        spills.clear()
        return
    rel = int(m.group(3) or "0", 0) - delta
    size = _MEM_SIZES[m.group(2)]
    for r, (o, n) in list(spills.items()):
        if o < rel + size and rel < o + n:
            del spills[r]  # written over, in whole or in part
    src = canonical_reg(m.group(4) or "")
    if insn.mnemonic in _SPILL_MOVES and m.group(4) and src not in written \
            and "*" not in written and src not in spills:
        spills[src] = (rel, size)


def _why(n, insn, prologue, emulated, bad, locs) -> str:
    cost = "emulated" if emulated else \
        "single-stepped: ~5 µs, fires twice if a signal lands mid-step"
    if prologue and n == prologue.jump_index:
        m = prologue.check
        what = (f"stack-check {insn.mnemonic.upper()} ({cost}); exact once the pass with "
                f"flags & {m.flags_mask:#x} {'set' if m.taken_if_set else 'clear'} is dropped "
                "(it is about to grow the stack and restart)")
    elif n == 0:
        what = f"first instruction, no stack-check prologue ({cost})"
    else:
        what = f"{insn.mnemonic.upper()} at +{n} instructions ({cost})"
        if not bad:
            what += ": first such point where every argument is readable"
    if bad:
        what += f"; {bad} argument piece(s) unreadable anywhere before the first branch"
    return what


def _arg_locs(pc: int, args: tuple[Slot, ...], dwarf_args, written: set[str],
              spills: dict[str, tuple[int, int]], ctx: SiteContext):
    """Locations of every argument piece at pc: still in its ABI register, spilled by an
    earlier instruction of the once region, or wherever DWARF says."""
    delta = ctx.sp_delta(pc) or 0
    out = []
    for k, slot in enumerate(args):
        dw = dwarf_args[k] if dwarf_args else None
        if not slot.in_registers:
            if slot.stack_offset is None or slot.type.size == 0:
                out.append(())
            else:
                out.append((stack_loc(8 + slot.stack_offset + delta, slot.type.size),))
            continue
        pieces = _pieces_for(dw, pc, slot.parts) if dw else None
        locs = []
        for i, (part, reg) in enumerate(zip(slot.parts, slot.regs, strict=True)):
            cs = _CS_NAMES.get(reg, reg)
            if not reg.startswith("x") and cs not in written and "*" not in written:
                locs.append(reg_loc(reg, part.size, part.path))
            elif cs in spills and spills[cs][1] >= part.size:
                locs.append(stack_loc(spills[cs][0] + delta, part.size, part.path))
            else:
                piece = pieces[i] if pieces else None
                locs.append(_piece_loc(piece, part.size, part.path, delta, reg))
        out.append(tuple(locs))
    return tuple(out)


def _pieces_for(dw: DwarfParam, pc: int, parts) -> list[Piece | None] | None:
    """DWARF's pieces of an argument at pc, one per ABI part (None: no usable match;
    Go 1.19-1.21 sometimes describe a slice with four pieces, which is not trusted)."""
    pieces = dw.pieces_at(pc)
    if not pieces:
        return None
    if len(pieces) == len(parts) and all(
            pc.size in (None, pt.size) for pc, pt in zip(pieces, parts, strict=True)):
        return list(pieces)
    whole = pieces[0]
    if len(pieces) == 1 and whole.size is None and whole.cfa_offset is not None:
        # the whole value sits in memory: each part at its offset inside it
        return [Piece(p.size, None, whole.cfa_offset + p.offset) for p in parts]
    return None


def _piece_loc(piece: Piece | None, size: int, path: str, delta: int, abi_reg: str) -> Loc:
    if piece is None or (piece.reg is None and piece.cfa_offset is None):
        if abi_reg.startswith("x"):
            return unreadable(_X_WHY.format(reg=abi_reg.upper()), size, path)
        return unreadable(f"{abi_reg.upper()} overwritten, no DWARF location here", size, path)
    if piece.reg is not None:
        if piece.reg.startswith("x"):
            return unreadable(_X_WHY.format(reg=piece.reg.upper()), size, path)
        return reg_loc(piece.reg, size, path)
    return stack_loc(piece.cfa_offset + 8 + delta, size, path)


def _ret_site(addr: int, raw: bytes, results: tuple[Slot, ...], ctx: SiteContext) -> Site:
    delta = ctx.sp_delta(addr) or 0 if any(not s.in_registers for s in results) else 0
    locs = []
    for slot in results:
        if slot.in_registers:
            locs.append(tuple(
                unreadable(_X_WHY.format(reg=r.upper()), p.size, p.path) if r.startswith("x")
                else reg_loc(r, p.size, p.path) for p, r in zip(slot.parts, slot.regs,
                                                                strict=True)))
        elif slot.stack_offset is not None and slot.type.size:
            locs.append((stack_loc(8 + slot.stack_offset + delta, slot.type.size),))
        else:
            locs.append(())
    return Site("ret", addr, ctx.file_offset(addr), "ret", False, "RET (exit site)",
                tuple(locs))


def entry_site_only(entry: int, code: bytes, ctx: SiteContext) -> Site:
    """The entry site of a function whose arguments do not matter (runtime.goexit1)."""
    site, _, _ = choose_sites(entry, code, (), None, (), ctx)
    return site
