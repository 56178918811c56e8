"""USDT probes (SystemTap SDT, `sys/sdt.h`): the `.note.stapsdt` notes of an ELF file.

Each probe site is one note (owner "stapsdt", type 3) whose descriptor holds three
addresses, then three NUL-terminated strings:

    pc, base, semaphore (u64 each) | provider\\0 name\\0 args\\0

- pc: the probe's NOP, a link-time virtual address. When the file has a
  `.stapsdt.base` section, pc (and the semaphore) moved with it if the file was
  prelinked or its sections relocated after the note was written: add
  (actual .stapsdt.base address - base) to both (SystemTap's and libbpf's rule).
- semaphore: 0, or the address of a u16 counter in `.probes` that the program reads
  to skip preparing the arguments while nobody traces it. A tracer increments it
  while attached (the kernel does so itself given the uprobe's ref_ctr_offset).
- args: space-separated `[-]SIZE@OPERAND` in the compiler's AT&T syntax: `-4@%edi`,
  `8@(%rax)`, `8@-16(%rbp)`, `4@8(%rax,%rdx,4)`, `4@$5`, `8@foo(%rip)`; a negative
  size means signed. parse_arg turns one into a UsdtArg (where to read it).

Uprobes take file offsets, so `UsdtProbe.offset` is what to attach; a PIE or shared
library's load bias never enters. Semaphores of a running process are virtual
addresses there: `semaphore_offset` is the file offset to find them through
/proc/PID/maps (or to give the kernel as ref_ctr_offset).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError

from lumos.binary.elf import ElfBinary
from lumos.errors import BinaryFormatError

NT_STAPSDT = 3
NOTE_ADDRS = struct.Struct("<QQQ")

# AT&T register name -> (pt_regs field, bytes, bit shift): %ah is bits 8-15 of rax.
_GPR = {"ax": "ax", "bx": "bx", "cx": "cx", "dx": "dx", "si": "si", "di": "di",
        "bp": "bp", "sp": "sp"}
REGISTERS: dict[str, tuple[str, int, int]] = {"rip": ("ip", 8, 0)}
for _r, _f in _GPR.items():
    REGISTERS["r" + _r] = (_f, 8, 0)
    REGISTERS["e" + _r] = (_f, 4, 0)
    REGISTERS[_r] = (_f, 2, 0)
for _r in ("a", "b", "c", "d"):
    REGISTERS[_r + "l"] = (_r + "x", 1, 0)
    REGISTERS[_r + "h"] = (_r + "x", 1, 8)
for _r in ("si", "di", "bp", "sp"):
    REGISTERS[_r + "l"] = (_r, 1, 0)
for _n in range(8, 16):
    for _suffix, _size in (("", 8), ("d", 4), ("w", 2), ("b", 1)):
        REGISTERS[f"r{_n}{_suffix}"] = (f"r{_n}", _size, 0)

_SIZE = re.compile(r"^(-?)(\d+)@(.+)$")
_MEM = re.compile(r"^(?P<disp>[^(]*)\((?P<base>%\w+)?(?:,(?P<index>%\w+)(?:,(?P<scale>\d+))?)?\)$")
_TERM = re.compile(r"([+-]?)\s*(0x[0-9a-fA-F]+|\d+|[A-Za-z_.$][\w.$@]*)")


@dataclass(frozen=True)
class UsdtArg:
    """Where one probe argument is, and how wide it is.

    kind: "reg" (reg[>>shift]), "mem" (the SIZE bytes at base + index*scale + disp,
    base "ip" for %rip-relative), "const" (the value disp), "unreadable" (an XMM
    register: not in pt_regs). symbol: a symbol the displacement is relative to; it
    is folded into disp by UsdtProbe (with the probe's pc for %rip-relative operands).
    """

    spec: str
    size: int
    signed: bool
    kind: str
    reg: str = ""
    shift: int = 0
    disp: int = 0
    index: str = ""
    scale: int = 1
    symbol: str = ""

    @property
    def type_name(self) -> str:
        return f"{'s' if self.signed else 'u'}{8 * self.size}"

    def describe(self) -> str:
        """The operand in words, as `lumos usdt -v` lists it."""
        operand = self.spec.split("@", 1)[-1]
        if self.kind == "reg":
            return f"register {operand}"
        if self.kind == "const":
            return f"constant {self.disp}"
        if self.kind == "unreadable":
            return f"{operand} (not readable at a uprobe)"
        return f"memory at {operand}" + (" (%rip-relative)" if self.reg == "ip" else "")


def _register(name: str, spec: str) -> tuple[str, int, int]:
    reg = REGISTERS.get(name.lstrip("%"))
    if reg is None:
        raise BinaryFormatError(f"USDT argument {spec!r}: unknown register {name}")
    return reg


def parse_arg(spec: str) -> UsdtArg:
    """One `[-]SIZE@OPERAND` argument spec -> UsdtArg; BinaryFormatError if malformed.

    A spec without SIZE@ (very old sdt.h) takes its size from the register.
    """
    m = _SIZE.match(spec)
    if m:
        signed, size, operand = m.group(1) == "-", int(m.group(2)), m.group(3)
        if size not in (1, 2, 4, 8):
            raise BinaryFormatError(f"USDT argument {spec!r}: size {size} is not 1, 2, 4 or 8")
    elif spec.startswith("%"):
        signed, size, operand = False, 0, spec
    else:
        raise BinaryFormatError(f"USDT argument {spec!r}: expected SIZE@OPERAND")
    if operand.startswith("%"):
        name = operand[1:]
        if re.fullmatch(r"[xy]mm\d+", name):
            return UsdtArg(spec, size or 8, signed, "unreadable")
        reg, width, shift = _register(operand, spec)
        return UsdtArg(spec, size or width, signed, "reg", reg, shift)
    if operand.startswith("$"):
        try:
            value = int(operand[1:], 0)
        except ValueError:
            raise BinaryFormatError(f"USDT argument {spec!r}: bad constant") from None
        return UsdtArg(spec, size, signed, "const", disp=value)
    mm = _MEM.match(operand)
    disp_text = mm.group("disp") if mm else operand
    if mm is None and not disp_text:
        raise BinaryFormatError(f"USDT argument {spec!r}: cannot parse operand {operand!r}")
    disp, symbol = _displacement(disp_text, spec)
    base = index = ""
    scale = 1
    if mm is not None:
        if mm.group("base"):
            base = _register(mm.group("base"), spec)[0]
        if mm.group("index"):
            index = _register(mm.group("index"), spec)[0]
            scale = int(mm.group("scale") or 1)
            if scale not in (1, 2, 4, 8):
                raise BinaryFormatError(f"USDT argument {spec!r}: scale {scale}")
        if not base and not index:
            raise BinaryFormatError(f"USDT argument {spec!r}: memory operand without a "
                                    f"register")
        if index == "ip" or base == "ip" and index:
            raise BinaryFormatError(f"USDT argument {spec!r}: %rip with an index")
    return UsdtArg(spec, size, signed, "mem", base, 0, disp, index, scale, symbol)


def _displacement(text: str, spec: str) -> tuple[int, str]:
    """'-16' -> (-16, ''); 'foo+8', '12+table' -> (8, 'foo'), (12, 'table')."""
    disp, symbol, pos = 0, "", 0
    text = text.strip()
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or (pos and not m.group(1)):
            raise BinaryFormatError(f"USDT argument {spec!r}: cannot parse displacement "
                                    f"{text!r}")
        sign, term = m.group(1), m.group(2)
        if term[0].isdigit():
            disp += -int(term, 0) if sign == "-" else int(term, 0)
        elif symbol or sign == "-":
            raise BinaryFormatError(f"USDT argument {spec!r}: displacement {text!r} is not "
                                    f"symbol + constant")
        else:
            symbol = term
        pos = m.end()
    return disp, symbol


def parse_args(text: str) -> tuple[UsdtArg, ...]:
    return tuple(parse_arg(s) for s in text.split())


@dataclass(frozen=True)
class UsdtProbe:
    """One probe site in one file (a probe used in several places has several)."""

    path: str
    provider: str
    name: str
    pc: int                 # virtual address of the NOP, .stapsdt.base-adjusted
    offset: int             # file offset of the NOP: where the uprobe goes
    semaphore: int          # virtual address of the u16 semaphore, 0 if none
    semaphore_offset: int   # its file offset (the kernel's ref_ctr_offset), 0 if none
    args: tuple[UsdtArg, ...] = field(default=())
    arg_text: str = ""
    notes: tuple[str, ...] = ()   # why an argument is unreadable

    @property
    def full_name(self) -> str:
        return f"{self.provider}:{self.name}"


def _strings(desc: bytes, at: int, n: int, where: int) -> list[str]:
    out = []
    for _ in range(n):
        end = desc.find(b"\0", at)
        if end < 0:
            raise BinaryFormatError("USDT note: string not NUL-terminated", where)
        out.append(desc[at:end].decode("utf-8", "replace"))
        at = end + 1
    return out


def read_probes(elf: ElfBinary) -> list[UsdtProbe]:
    """Every USDT probe site of an ELF file (empty when it has no .note.stapsdt)."""
    sec = elf.section(".note.stapsdt")
    if sec is None:
        return []
    base_sec = elf.get_section_range(".stapsdt.base")
    out: list[UsdtProbe] = []
    symbols: dict[str, int] | None = None
    try:
        notes = list(sec.iter_notes())
    except (ELFError, ConstructError, ValueError, struct.error) as e:
        raise BinaryFormatError(f"{elf.path}: .note.stapsdt: {e}", sec["sh_offset"]) from e
    for note in notes:
        if note["n_name"] != "stapsdt" or note["n_type"] not in (NT_STAPSDT, "NT_STAPSDT",
                                                                 "NT_GNU_BUILD_ID"):
            continue
        desc = note["n_descdata"]
        where = note["n_offset"]
        if not isinstance(desc, bytes) or len(desc) < NOTE_ADDRS.size + 3:
            raise BinaryFormatError(f"{elf.path}: USDT note too short", where)
        pc, base, sem = NOTE_ADDRS.unpack_from(desc)
        provider, name, arg_text = _strings(desc, NOTE_ADDRS.size, 3, where)
        if base_sec is not None and base:
            pc += base_sec[0] - base
            if sem:
                sem += base_sec[0] - base
        try:
            args = parse_args(arg_text)
        except BinaryFormatError as e:
            raise BinaryFormatError(f"{elf.path}: probe {provider}:{name}: {e}", where) from None
        notes_out: list[str] = []
        if any(a.symbol for a in args):
            if symbols is None:
                symbols = data_symbols(elf)
            args, notes_out = _resolve_symbols(args, pc, symbols)
        out.append(UsdtProbe(elf.path, provider, name, pc, elf.vaddr_to_offset(pc), sem,
                             elf.vaddr_to_offset(sem) if sem else 0, args, arg_text,
                             tuple(notes_out)))
    return out


def _resolve_symbols(args, pc: int, symbols: dict[str, int]):
    """Fold symbol addresses into displacements: `foo+8(%rip)` becomes ip + (foo+8 - pc),
    since regs->ip is the probe's own address when its uprobe fires."""
    out, notes = [], []
    for a in args:
        if not a.symbol:
            out.append(a)
            continue
        addr = symbols.get(a.symbol)
        if addr is None:
            notes.append(f"argument {a.spec}: symbol {a.symbol} is not in the symbol "
                         f"table (stripped?)")
            out.append(UsdtArg(a.spec, a.size, a.signed, "unreadable", symbol=a.symbol))
        elif a.reg == "ip":
            out.append(UsdtArg(a.spec, a.size, a.signed, "mem", "ip", 0, addr + a.disp - pc,
                               symbol=a.symbol))
        else:  # absolute (non-PIE): the address itself, plus any register
            out.append(UsdtArg(a.spec, a.size, a.signed, "mem", a.reg, 0, addr + a.disp,
                               a.index, a.scale, a.symbol))
    return tuple(out), notes


def data_symbols(elf: ElfBinary) -> dict[str, int]:
    """Name -> address of every defined symbol (objects too), .symtab before .dynsym."""
    out: dict[str, int] = {}
    for table in (".dynsym", ".symtab"):
        sec = elf.section(table)
        if sec is None:
            continue
        try:
            for sym in sec.iter_symbols():
                if sym["st_shndx"] != "SHN_UNDEF" and sym.name:
                    out[sym.name] = sym["st_value"]
        except (ELFError, ValueError, struct.error) as e:
            raise BinaryFormatError(f"{elf.path}: {table}: {e}", sec["sh_offset"]) from e
    return out
