"""USDT probe programs: each hit of a `provider:name` site becomes one record with its
arguments arg0..argN as 64-bit values (and chosen arguments copied as C strings).

An argument is where the note's spec says (binary/usdt.py parses it; targets/usdt.py
turns it into an ArgLoc): a pt_regs register (`-4@%edi`), memory at
base + index*scale + disp (`8@-16(%rbp)`, `4@8(%rax,%rdx,4)`; base `ip` for
`%rip`-relative globals: regs->ip is the probe's own address when it fires), or a
constant (`4@$5`). Each is read at its size and sign- or zero-extended to 64 bits,
as the program saw it.

One program serves every site: a site's cookie carries its index (bits 0-31) and its
variant (bits 40-63: which body reads which arguments), as in eventprog.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.bpf.asm import (
    R0,
    R1,
    R2,
    R3,
    R6,
    R7,
    R8,
    Add,
    Arsh,
    Asm,
    Helper,
    Lsh,
    Mov,
    Rsh,
    call,
    ja,
    ld_imm64,
    ldx,
    st,
    stx,
)
from lumos.bpf.frame import Frame
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.channel import EventChannel
from lumos.probes.codegen import PT_REGS
from lumos.probes.record import Field, Record

MAX_ARGS = 12  # sys/sdt.h goes up to STAP_PROBE12

HEADER = Record("usdt_header", [
    Field("ts_ns", "u64", doc="bpf_ktime_get_ns"),
    Field("pid", "u32"), Field("tid", "u32"),
    Field("site", "u32", doc="index of the probe site (cookie bits 0-31)"),
    Field("cpu", "u32"),
])


@dataclass(frozen=True)
class ArgLoc:
    """Where one argument is at the probe (the spec's meaning, no ELF left in it).

    kind: "reg" (regs->reg >> shift), "mem" (size bytes at regs->reg + regs->index *
    scale + disp; no reg: an absolute address), "const" (disp), "none" (unreadable).
    """

    kind: str
    size: int = 8
    signed: bool = False
    reg: str = ""
    shift: int = 0
    disp: int = 0
    index: str = ""
    scale: int = 1

    def __post_init__(self):
        for r in (self.reg, self.index):
            if r and r not in PT_REGS:
                raise ValueError(f"{r!r} is not a pt_regs register")
        if self.size not in (1, 2, 4, 8):
            raise ValueError(f"argument size {self.size}")


def _extend(a: Asm, reg, loc: ArgLoc) -> None:
    """Keep the low `size` bytes of reg, sign- or zero-extended to 64 bits."""
    if loc.size == 8:
        return
    bits = 64 - 8 * loc.size
    a.emit(Lsh.imm(reg, bits), (Arsh if loc.signed else Rsh).imm(reg, bits))


def emit_arg(a: Asm, loc: ArgLoc, dst, dst_off: int, name: str = "arg") -> None:
    """*(u64 *)(dst + dst_off) = the argument (0 when it cannot be read). R6 = ctx;
    clobbers R0-R5."""
    if loc.kind == "reg":
        a.comment(f"emit_arg: {name} = regs->{loc.reg} (pt_regs+{PT_REGS[loc.reg]})"
                  + (f" >> {loc.shift}" if loc.shift else "")
                  + f", {'s' if loc.signed else 'u'}{8 * loc.size}")
        a.emit(ldx(8, R1, R6, PT_REGS[loc.reg]))
        if loc.shift:
            a.emit(Rsh.imm(R1, loc.shift))
        _extend(a, R1, loc)
        a.emit(stx(8, dst, dst_off, R1))
    elif loc.kind == "const":
        a.comment(f"emit_arg: {name} = constant {loc.disp} (from the note)")
        a.emit(ld_imm64(R1, loc.disp & (1 << 64) - 1), stx(8, dst, dst_off, R1))
    elif loc.kind == "mem":
        where = " + ".join(x for x in (f"regs->{loc.reg}" if loc.reg else "",
                                       f"regs->{loc.index}*{loc.scale}" if loc.index else "",
                                       f"{loc.disp:#x}") if x)
        a.comment(f"emit_arg: {name} = {loc.size} bytes of user memory at {where}")
        a.emit(st(8, dst, dst_off, 0))
        a.emit(ld_imm64(R3, loc.disp & (1 << 64) - 1) if not -2**31 <= loc.disp < 2**31
               else Mov.imm(R3, loc.disp))
        if loc.reg:
            a.emit(ldx(8, R1, R6, PT_REGS[loc.reg]), Add.reg(R3, R1))
        if loc.index:
            a.emit(ldx(8, R1, R6, PT_REGS[loc.index]))
            if loc.scale > 1:
                a.emit(Lsh.imm(R1, loc.scale.bit_length() - 1))
            a.emit(Add.reg(R3, R1))
        a.emit(Mov.reg(R1, dst), Add.imm(R1, dst_off), Mov.imm(R2, loc.size),
               call(Helper.probe_read_user))
        if loc.signed and loc.size < 8:
            a.emit(ldx(8, R1, dst, dst_off))
            _extend(a, R1, loc)
            a.emit(stx(8, dst, dst_off, R1))
    else:
        a.comment(f"emit_arg: {name} is not readable here (an XMM register or a symbol "
                  f"not found): 0")
        a.emit(st(8, dst, dst_off, 0))


@dataclass(frozen=True)
class UsdtVariant:
    """What one kind of site reads: its arguments, in order."""

    args: tuple[ArgLoc, ...]


class UsdtEvents:
    """The streaming program: one record per hit. strings: argument indexes to copy as
    NUL-terminated C strings (str_max bytes at most, NUL included)."""

    def __init__(self, variants: list[UsdtVariant], channel: EventChannel,
                 tgid: int | None = None, strings: tuple[int, ...] = (), str_max: int = 64,
                 name: str = "lumos_usdt"):
        self.variants = variants
        self.channel = channel
        self.tgid = tgid
        self.strings = tuple(sorted(set(strings)))
        self.str_max = str_max
        self.name = name
        self.nargs = max((len(v.args) for v in variants), default=0)
        fields = [Field(f"arg{i}", "u64") for i in range(self.nargs)]
        fields += [Field(f"len{i}", "s32", doc=f"probe_read_user_str's result for arg{i}: "
                         f"bytes with the NUL, < 0 when arg{i} is no readable pointer")
                   for i in self.strings]
        fields += [Field(f"str{i}", "bytes", str_max, doc=f"arg{i} as a C string")
                   for i in self.strings]
        self.record = HEADER.extend("usdt_event", fields)
        self.frame = Frame()

    @property
    def record_size(self) -> int:
        return self.record.size

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        a.frame = self.frame  # slots declared in __init__, shared by every emitter
        codegen.variant_program(a, self.tgid, len(self.variants),
                                lambda a, i: self._emit_variant(a, self.variants[i]), "usdt",
                                check_flags=False)
        about = (f"stack:\n{self.frame.layout()}\nrecord ({self.record_size} bytes, "
                 f"one per hit):\n{self.record.c_struct()}")
        return ProgramSpec(self.name, BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type, about=about)

    def _emit_variant(self, a: Asm, v: UsdtVariant) -> None:
        rec = self.record
        self.channel.emit_reserve(a, self.record_size, R8, "out")
        a.comment("usdt: record header (ts, pid, tid, site, cpu)")
        a.emit(call(Helper.ktime_get_ns), stx(8, R8, rec.offset("ts_ns"), R0),
               call(Helper.get_current_pid_tgid), stx(4, R8, rec.offset("tid"), R0),
               Rsh.imm(R0, 32), stx(4, R8, rec.offset("pid"), R0),
               stx(4, R8, rec.offset("site"), R7),
               call(Helper.get_smp_processor_id), stx(4, R8, rec.offset("cpu"), R0))
        for i in range(self.nargs):
            if i < len(v.args):
                emit_arg(a, v.args[i], R8, rec.offset(f"arg{i}"), f"arg{i}")
            else:
                a.emit(st(8, R8, rec.offset(f"arg{i}"), 0))
        for i in self.strings:
            off = rec.offset(f"str{i}")
            a.comment(f"usdt: str{i} = the C string arg{i} points to ({self.str_max} bytes "
                      f"at most)")
            a.emit(st(8, R8, off, 0), ldx(8, R3, R8, rec.offset(f"arg{i}")) if i < len(v.args)
                   else Mov.imm(R3, 0), Mov.reg(R1, R8), Add.imm(R1, off),
                   Mov.imm(R2, self.str_max), call(Helper.probe_read_user_str),
                   stx(4, R8, rec.offset(f"len{i}"), R0))
        self.channel.emit_submit(a, R8)
        a.emit(ja("out"))

