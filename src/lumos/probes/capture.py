"""What a probe captures, as pure data, and the BPF code that reads it.

A Capture is one value (an argument, a result) made of machine words, each at a
WordLoc: a pt_regs register, a stack slot relative to SP at the probe site, or
nowhere readable (an X register). Strings are (pointer, length) pairs: the length is
recorded as is, and at most `str_max` bytes are copied with a bounded user read.

Record layout (fixed per probe, little-endian): the common header, then per capture
its words (8 bytes each) and, for strings, a byte buffer of str_max. Fixed sizes keep
decoding a single struct.unpack per record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lumos.bpf.asm import (
    R0,
    R1,
    R2,
    R3,
    R6,
    R8,
    Add,
    Asm,
    Helper,
    Jeq,
    Jle,
    Mov,
    Mul,
    Or,
    Reg,
    call,
    ja,
    ld_imm64,
    ldx,
    stx,
)
from lumos.probes.codegen import PT_REGS
from lumos.probes.record import Field, Record

# The header of every event record (written by eventprog.emit_header).
HEADER_RECORD = Record("event_header", [
    Field("ts_ns", "u64", doc="bpf_ktime_get_ns()"),
    Field("pid", "u32", doc="tgid"),
    Field("tid", "u32"),
    Field("goid", "u64", doc="g.goid, 0 outside Go code"),
    Field("site", "u32", doc="the site's index (cookie bits 0-31)"),
    Field("frame", "s32", doc="g.stack.hi - SP at entry: the call's frame id"),
])
HEADER = HEADER_RECORD.struct
# Set in a string's length word when its bytes could not be read (Go lengths stay far
# below 2^48, so the bit never belongs to a real length).
READ_FAILED = 1 << 62
HEADER_SIZE = HEADER_RECORD.size  # 32


@dataclass(frozen=True)
class WordLoc:
    kind: str           # "reg" | "stack" | "deref" | "none"
    reg: str = ""       # pt_regs field for "reg" (and the pointer for "deref")
    sp_offset: int = 0  # "stack": address = SP + sp_offset; "deref": regs->reg + sp_offset
    size: int = 8       # bytes that matter (1, 2, 4, 8); the rest is masked off

    @staticmethod
    def register(name: str, size: int = 8) -> WordLoc:
        if name not in PT_REGS:
            raise ValueError(f"{name!r} is not a pt_regs register")
        return WordLoc("reg", reg=name, size=size)

    @staticmethod
    def stack(offset: int, size: int = 8) -> WordLoc:
        return WordLoc("stack", sp_offset=offset, size=size)

    @staticmethod
    def deref(reg: str, offset: int, size: int = 8) -> WordLoc:
        """The word at (regs->reg + offset) in user memory: a field behind a pointer."""
        if reg not in PT_REGS:
            raise ValueError(f"{reg!r} is not a pt_regs register")
        return WordLoc("deref", reg=reg, sp_offset=offset, size=size)

    @property
    def readable(self) -> bool:
        return self.kind != "none"

    def describe(self) -> str:
        """Where the word is read, for listings: 'CX', 'SP+0x20', '*(DI+0x98)'."""
        if self.kind == "reg":
            return self.reg.upper()
        if self.kind == "stack":
            return f"SP{self.sp_offset:+#x}"
        if self.kind == "deref":
            return f"*({self.reg.upper()}{self.sp_offset:+#x})"
        return "unreadable"


# How a capture's words are turned into a value in user space.
# cstring: a C string behind a pointer, copied up to its NUL (its record slots: the
# pointer, the copied length from bpf_probe_read_user_str, the bytes); hex: a raw word.
KINDS = ("int", "uint", "bool", "float", "pointer", "string", "bytes", "slice", "iface",
         "words", "cstring", "hex")
# Slice elements read in the kernel: plain values in the array itself, and strings.
ELEM_KINDS = ("int", "uint", "bool", "float", "string", "pointer")


@dataclass(frozen=True)
class Capture:
    name: str
    kind: str                       # one of KINDS
    words: tuple[WordLoc, ...]      # string/bytes: (ptr, len[, cap])
    size: int = 8                   # int/uint/float: value size in bytes
    str_max: int = 0                # string/bytes: bytes copied at most
    type_name: str = ""             # as the user wrote it ("string", "[]byte", "*main.T")
    source: str = field(default="", compare=False)  # where the locations come from
    # iface: bytes copied from behind the data word (0: the two words only), then up to
    # str_max bytes behind a string header at the start of those bytes; decoded in user
    # space by the runtime's type data (golang.anyvalue). itab: a non-empty interface
    # (its first word is an itab, not a type).
    deref: int = 0
    itab: bool = False
    error_follows: bool = False     # iface: an `error`, see emit_boxed
    # slice: its first elements are read too when their kind is one of ELEM_KINDS (else
    # only ptr, len, cap): at most max_elems of elem_size bytes each; strings (16-byte
    # headers) then copy up to str_max bytes each
    elem: str = ""
    elem_size: int = 0
    max_elems: int = 0
    elem_type: str = ""             # slice: the element's type as printed ("*main.T")

    @property
    def copies_bytes(self) -> bool:
        return self.kind in ("string", "bytes", "cstring") and self.str_max > 0

    @property
    def boxed(self) -> bool:
        return self.kind == "iface" and self.deref > 0

    @property
    def reads_elems(self) -> bool:
        return self.kind == "slice" and self.max_elems > 0 and self.elem in ELEM_KINDS

    @property
    def elems_bytes(self) -> int:
        """Record bytes for the elements themselves (string headers for []string)."""
        return _align8(self.max_elems * self.elem_size) if self.reads_elems else 0

    @property
    def strs_bytes(self) -> int:
        """Record bytes for the strings of a []string: one str_max buffer per element."""
        return self.max_elems * _align8(self.str_max) if self.reads_elems and \
            self.elem == "string" else 0

    @property
    def record_size(self) -> int:
        if self.reads_elems:
            return 8 * len(self.words) + self.elems_bytes + self.strs_bytes
        if self.boxed:  # words, window, follow(s), an error's two words, the failed mask
            return 8 * len(self.words) + _align8(self.deref) + _align8(self.str_max) * (
                2 if self.error_follows else 1) + 16 * self.error_follows + 8
        extra = 8 if self.kind == "cstring" else 0  # the copied length
        return 8 * len(self.words) + extra + (_align8(self.str_max) if self.copies_bytes else 0)


def shape_of(captures) -> tuple[Capture, ...]:
    """The captures as the kernel side sees them: what to read and how much, without the
    names and types that only printing needs. Functions whose arguments have one shape
    share one body of an event program (see eventprog.attach_events)."""
    from dataclasses import replace
    return tuple(replace(c, name=f"a{i}", type_name="", source="", elem_type="")
                 for i, c in enumerate(captures))


@dataclass
class RecordLayout:
    """Where each capture lands in a record, and how to unpack it: the header, then per
    capture its words (u64 each) and, for strings, the copied bytes (8-aligned)."""

    captures: tuple[Capture, ...]
    offsets: list[int] = field(default_factory=list)
    size: int = HEADER_SIZE
    record: Record | None = None

    def __post_init__(self):
        fields: list[Field] = []
        self.keys = []   # each capture's field prefix: its name, made unique ('_', '_#1')
        seen: dict[str, int] = {}
        for c in self.captures:
            k = seen.get(c.name, 0)
            seen[c.name] = k + 1
            key = c.name if k == 0 else f"{c.name}#{k}"
            self.keys.append(key)
            fields += [Field(f"{key}.w{i}", "u64", doc=f"{c.type_name} word {i}")
                       for i in range(len(c.words))]
            if c.kind == "cstring":
                fields.append(Field(f"{key}.n", "s64", doc="bytes copied with the NUL, "
                                    "or -errno (bpf_probe_read_user_str)"))
            if c.copies_bytes:
                fields.append(Field(f"{key}.bytes", "bytes", _align8(c.str_max),
                                    doc=f"up to {c.str_max} bytes behind w0"))
            if c.reads_elems:  # emit_slice: the first elements, then a []string's bytes
                fields.append(Field(f"{key}.elems", "bytes", c.elems_bytes,
                                    doc=f"up to {c.max_elems} elements of {c.elem_size} "
                                        "bytes behind w0"))
                if c.strs_bytes:
                    fields.append(Field(f"{key}.strs", "bytes", c.strs_bytes,
                                        doc=f"up to {c.str_max} bytes of each string"))
            if c.boxed:  # emit_boxed: the value behind the data word, then a string's bytes
                fields.append(Field(f"{c.name}.value", "bytes", _align8(c.deref),
                                    doc=f"{c.deref} bytes behind w1 (the data word)"))
                if c.str_max:
                    fields.append(Field(f"{c.name}.bytes", "bytes", _align8(c.str_max),
                                        doc=f"up to {c.str_max} bytes behind a string "
                                            "header at the start of .value"))
                if c.error_follows:
                    fields += [Field(f"{c.name}.bytes1", "bytes", _align8(c.str_max),
                                     doc="the same behind a string header at .value+16"),
                               Field(f"{c.name}.word2", "u64",
                                     doc="the word behind the pointer at .value+40"),
                               Field(f"{c.name}.word3", "u64",
                                     doc="the word behind the pointer at .value+24")]
                fields.append(Field(f"{c.name}.failed", "u64",
                                    doc="copies the kernel could not make: 1 .value, 2 "
                                        ".bytes, 4 .bytes1, 8 .word2, 16 .word3"))
        self.record = HEADER_RECORD.extend("event", fields)
        self.offsets = [self.record.offset(f"{k}.w0") if c.words
                        else self.record.offset(f"{k}.bytes") if c.copies_bytes
                        else HEADER_SIZE for c, k in zip(self.captures, self.keys, strict=True)]
        self.size = self.record.size


def _align8(n: int) -> int:
    return (n + 7) & ~7


# -- code generation ------------------------------------------------------------------
# Conventions (see codegen.py): R6 = ctx (pt_regs), R7 = site index, R8 = record pointer,
# R9 = SP at the probe site (loaded once by load_sp). Calls clobber R0-R5.

R_SP = Reg.R9


def load_sp(a: Asm) -> None:
    a.emit(ldx(8, R_SP, R6, PT_REGS["sp"]))


def emit_read_word(a: Asm, loc: WordLoc, dst_base: Reg, dst_off: int) -> None:
    """*(u64 *)(dst_base + dst_off) = the word (zero if it cannot be read)."""
    if loc.kind == "reg":
        a.emit(ldx(8, R1, R6, PT_REGS[loc.reg]), stx(8, dst_base, dst_off, R1))
    elif loc.kind in ("stack", "deref"):
        base = [Mov.reg(R3, R_SP)] if loc.kind == "stack" else [
            ldx(8, R3, R6, PT_REGS[loc.reg])]
        a.emit(Mov.reg(R1, dst_base), Add.imm(R1, dst_off), Mov.imm(R2, 8), *base,
               Add.imm(R3, loc.sp_offset), call(Helper.probe_read_user))
    else:
        a.emit(Mov.imm(R1, 0), stx(8, dst_base, dst_off, R1))


def emit_capture(a: Asm, cap: Capture, rec_off: int) -> None:
    """Fill a capture's slots in the record at R8 + rec_off."""
    for i, loc in enumerate(cap.words):
        part = f" word {i}" if len(cap.words) > 1 else ""
        a.comment(f"emit_capture: {cap.name}{part} ({cap.type_name or cap.kind}) from "
                  f"{loc.describe()}{' (' + cap.source + ')' if cap.source else ''} "
                  f"-> record+{rec_off + 8 * i}")
        emit_read_word(a, loc, R8, rec_off + 8 * i)
    if cap.boxed:
        emit_boxed(a, cap, rec_off)
        return
    if cap.reads_elems:
        emit_slice(a, cap, rec_off)
        return
    if not cap.copies_bytes:
        return
    if cap.kind == "cstring":
        a.comment(f"emit_capture: {cap.name}: the C string up to its NUL, at most "
                  f"{cap.str_max} bytes -> record+{rec_off + 16}; copied length (or -errno) "
                  f"-> record+{rec_off + 8}")
        a.emit(Mov.reg(R1, R8), Add.imm(R1, rec_off + 16), Mov.imm(R2, cap.str_max),
               ldx(8, R3, R8, rec_off), call(Helper.probe_read_user_str),
               stx(8, R8, rec_off + 8, R0))
        return
    # Copy min(len, str_max) bytes from ptr. The unsigned compare also clamps a
    # negative length; the verifier learns the bound [0, str_max] from the jump.
    clamped = a.fresh("clamped")
    a.comment(f"emit_capture: {cap.name}: copy min(len, --strlen {cap.str_max}) bytes "
              f"-> record+{rec_off + 8 * len(cap.words)}")
    a.emit(ldx(8, R2, R8, rec_off + 8), Jle.imm(R2, cap.str_max, clamped),
           Mov.imm(R2, cap.str_max))
    a.label(clamped)
    read = a.fresh("read")
    a.emit(Mov.reg(R1, R8), Add.imm(R1, rec_off + 8 * len(cap.words)),
           ldx(8, R3, R8, rec_off), call(Helper.probe_read_user))
    a.comment(f"emit_capture: {cap.name}: the bytes could not be read (a page not yet "
              f"mapped in): flag the length word with bit 62, so they are never shown")
    a.emit(Jeq.imm(R0, 0, read), ldx(8, R1, R8, rec_off + 8), ld_imm64(R2, READ_FAILED),
           Or.reg(R1, R2), stx(8, R8, rec_off + 8, R1))
    a.label(read)



def emit_slice(a: Asm, cap: Capture, rec_off: int) -> None:
    """A slice's first elements: one read of min(len, max_elems) elements behind its
    pointer; for []string then one bounded read per string. A read that fails sets
    READ_FAILED in the length word it belongs to (the slice's, or the string header's
    copy in the record), so the decoder shows '?' for what it could not read."""
    elems = rec_off + 8 * len(cap.words)
    done, clamped, read = a.fresh("slice_done"), a.fresh("slice_clamped"), a.fresh("slice_read")
    a.comment(f"emit_slice: {cap.name}: min(len, --max-elems {cap.max_elems}) elements of "
              f"{cap.elem_size} bytes -> record+{elems}")
    a.emit(ldx(8, R2, R8, rec_off + 8), Jle.imm(R2, cap.max_elems, clamped),
           Mov.imm(R2, cap.max_elems))
    a.label(clamped)
    a.emit(Mul.imm(R2, cap.elem_size), Jeq.imm(R2, 0, done), Mov.reg(R1, R8),
           Add.imm(R1, elems), ldx(8, R3, R8, rec_off), call(Helper.probe_read_user),
           Jeq.imm(R0, 0, read), ldx(8, R1, R8, rec_off + 8), ld_imm64(R2, READ_FAILED),
           Or.reg(R1, R2), stx(8, R8, rec_off + 8, R1), ja(done))
    a.label(read)
    if cap.elem == "string":
        strs = elems + cap.elems_bytes
        a.comment(f"emit_slice: {cap.name}: each string's first {cap.str_max} bytes (--strlen) "
                  f"-> record+{strs}, {_align8(cap.str_max)} bytes apart")
        for i in range(cap.max_elems):
            hdr, buf = elems + 16 * i, strs + i * _align8(cap.str_max)
            ok, cut = a.fresh("slice_str"), a.fresh("slice_cut")
            a.emit(ldx(8, R1, R8, rec_off + 8), Jle.imm(R1, i, done),  # len <= i: no more
                   ldx(8, R2, R8, hdr + 8), Jle.imm(R2, cap.str_max, cut),
                   Mov.imm(R2, cap.str_max))
            a.label(cut)
            a.emit(Mov.reg(R1, R8), Add.imm(R1, buf), ldx(8, R3, R8, hdr),
                   call(Helper.probe_read_user), Jeq.imm(R0, 0, ok),
                   ldx(8, R1, R8, hdr + 8), ld_imm64(R2, READ_FAILED), Or.reg(R1, R2),
                   stx(8, R8, hdr + 8, R1))
            a.label(ok)
    a.label(done)


# emit_boxed's failed-mask bits (the record's .failed word of an interface capture)
BOXED_WINDOW, BOXED_FOLLOW0, BOXED_FOLLOW1, BOXED_WORD2, BOXED_WORD3 = 1, 2, 4, 8, 16


def emit_boxed(a: Asm, cap: Capture, rec_off: int) -> None:
    """An interface's value: `deref` bytes behind its data word, then the bytes behind a
    string header at their start (a string, []byte or an error's message), bounded.
    An `error` (Capture.error_follows) also gets a second string (at +16) and the words
    behind the pointers at +40 and +24: *fs.PathError{Op, Path, Err} and
    *os.SyscallError{Syscall, Err} print whole. A copy that fails sets its bit in the
    failed mask, so the decoder shows '?' rather than the zeros the helper left."""
    win = rec_off + 16
    follow = win + _align8(cap.deref)
    failed = follow + _align8(cap.str_max) * (2 if cap.error_follows else 1) + \
        16 * cap.error_follows
    done = a.fresh("boxed_done")
    a.comment(f"emit_boxed: {cap.name}: {cap.deref} bytes behind the data word, then up to "
              f"{cap.str_max} behind the string header there (type decoded in user space); "
              f"failed copies -> mask at record+{failed}")
    a.emit(Mov.imm(R1, 0), stx(8, R8, failed, R1),
           ldx(8, R3, R8, rec_off + 8), Jeq.imm(R3, 0, done), Mov.reg(R1, R8),
           Add.imm(R1, win), Mov.imm(R2, cap.deref), call(Helper.probe_read_user))
    _emit_flag_failure(a, failed, BOXED_WINDOW)
    if cap.str_max:
        _emit_follow_string(a, cap, win, follow, failed, BOXED_FOLLOW0)
    if cap.error_follows:
        a.comment(f"emit_boxed: {cap.name}: an error: the string at +16 and the words behind "
                  f"the pointers at +40 and +24 too (*fs.PathError's Path and Err, "
                  f"*os.SyscallError's Err)")
        _emit_follow_string(a, cap, win + 16, follow + _align8(cap.str_max), failed,
                            BOXED_FOLLOW1)
        for ptr, dst, bit in ((40, 0, BOXED_WORD2), (24, 8, BOXED_WORD3)):
            skip = a.fresh("boxed_word")
            a.emit(ldx(8, R3, R8, win + ptr), Jeq.imm(R3, 0, skip), Mov.reg(R1, R8),
                   Add.imm(R1, follow + 2 * _align8(cap.str_max) + dst), Mov.imm(R2, 8),
                   call(Helper.probe_read_user))
            _emit_flag_failure(a, failed, bit)
            a.label(skip)
    a.label(done)


def _emit_flag_failure(a: Asm, mask: int, bit: int) -> None:
    """After a probe_read_user: record+mask |= bit when it failed (R0 != 0)."""
    ok = a.fresh("read_ok")
    a.emit(Jeq.imm(R0, 0, ok), ldx(8, R1, R8, mask), Or.imm(R1, bit), stx(8, R8, mask, R1))
    a.label(ok)


def _emit_follow_string(a: Asm, cap: Capture, header: int, dst: int, mask: int,
                        bit: int) -> None:
    """record+dst = up to str_max bytes behind the (ptr, len) at record+header."""
    skip, clamped = a.fresh("boxed_skip"), a.fresh("boxed_clamped")
    a.emit(ldx(8, R3, R8, header), Jeq.imm(R3, 0, skip), ldx(8, R2, R8, header + 8),
           Jeq.imm(R2, 0, skip), Jle.imm(R2, cap.str_max, clamped), Mov.imm(R2, cap.str_max))
    a.label(clamped)
    a.emit(Mov.reg(R1, R8), Add.imm(R1, dst), call(Helper.probe_read_user))
    _emit_flag_failure(a, mask, bit)
    a.label(skip)
