"""--filter expressions, parsed here and compiled to BPF jumps that run before an event
is reserved, so filtered-out calls cost no ring buffer space.

    expr    := or
    or      := and (('||' | 'or') and)*
    and     := not (('&&' | 'and') not)*
    not     := ('!' | 'not') not | '(' expr ')' | compare
    compare := NAME OP (INT | STRING | true | false)      OP: == != < <= > >=
             | NAME                                       (NAME != 0: a bool, a non-nil pointer)

Integers compare with the capture's signedness; strings support == and != against a
literal of at most MAX_STR_LITERAL bytes (the length is compared first, then 8 bytes
at a time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R6,
    Add,
    Arsh,
    Asm,
    Helper,
    Jeq,
    Jge,
    Jgt,
    Jle,
    Jlt,
    Jne,
    Jsge,
    Jsgt,
    Jsle,
    Jslt,
    Lsh,
    Mov,
    Reg,
    Rsh,
    call,
    ja,
    ld_imm64,
    ldx,
    st,
)
from lumos.errors import UsageError
from lumos.probes.capture import R_SP, Capture, WordLoc
from lumos.probes.codegen import PT_REGS

MAX_STR_LITERAL = 64
SCRATCH_BYTES = MAX_STR_LITERAL + 8  # stack slot "filter_scratch": words and literals read


def _scratch(a: Asm) -> int:
    return a.frame.slot("filter_scratch", SCRATCH_BYTES)


@dataclass(frozen=True)
class Compare:
    name: str
    op: str
    value: int | str


@dataclass(frozen=True)
class Not:
    inner: object


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    left: object
    right: object


_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?(?:0x[0-9a-fA-F]+|\d+))
    |(?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\))|(?P<name>[A-Za-z_][\w.]*))""", re.X)


def tokenize(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise UsageError(f"--filter: cannot read {text[pos:]!r}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "name" and value in ("and", "or", "not"):
            kind, value = "op", {"and": "&&", "or": "||", "not": "!"}[value]
        out.append((kind, value))
        pos = m.end()
    return out


MAX_COMPARES = 64  # each is a few instructions and a branch in every probe's program
MAX_DEPTH = 32     # parentheses and `!`: the parser and the emitters recurse per level


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0
        self.compares = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise UsageError(f"--filter {self.text!r}: unexpected end")
        self.i += 1
        return tok

    def parse(self):
        expr = self.or_()
        if self.peek() is not None:
            raise UsageError(f"--filter {self.text!r}: unexpected {self.peek()[1]!r}")
        return expr

    def or_(self):
        left = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            left = BoolOp("or", left, self.and_())
        return left

    def and_(self):
        left = self.not_()
        while self.peek() == ("op", "&&"):
            self.take()
            left = BoolOp("and", left, self.not_())
        return left

    def not_(self):
        tok = self.peek()
        if tok in (("op", "!"), ("op", "(")):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise UsageError(f"--filter: nested more than {MAX_DEPTH} deep")
            try:
                return self._not_or_group(tok)
            finally:
                self.depth -= 1
        return self.compare()

    def _not_or_group(self, tok):
        if tok == ("op", "!"):
            self.take()
            return Not(self.not_())
        if tok == ("op", "("):
            self.take()
            inner = self.or_()
            if self.peek() is None or self.take() != ("op", ")"):
                raise UsageError(f"--filter {self.text!r}: missing ')'")
            return inner

    def compare(self):
        self.compares += 1
        if self.compares > MAX_COMPARES:
            raise UsageError(f"--filter: at most {MAX_COMPARES} comparisons")
        kind, name = self.take()
        if kind != "name":
            raise UsageError(f"--filter {self.text!r}: expected an argument name, got {name!r}")
        if self.peek() is None or self.peek()[1] in ("&&", "||", ")"):
            return Compare(name, "!=", 0)  # a bare name: true when not zero (bools, nil)
        kind, op = self.take()
        if kind != "op" or op not in ("==", "!=", "<", "<=", ">", ">="):
            raise UsageError(f"--filter {self.text!r}: expected a comparison after {name!r}")
        kind, lit = self.take()
        if kind == "num":
            value: int | str = int(lit, 0)
            if not -(1 << 63) <= value < (1 << 64):
                raise UsageError(f"--filter: {lit} does not fit in 64 bits")
        elif kind == "str":
            value = bytes(lit[1:-1], "utf-8").decode("unicode_escape").encode("latin-1") \
                .decode("utf-8")
        elif kind == "name" and lit in ("true", "false"):
            value = int(lit == "true")
        else:
            raise UsageError(f"--filter {self.text!r}: expected a number or a string after "
                             f"{name} {op}")
        return Compare(name, op, value)


def parse_filter(text: str):
    if not text.strip():
        raise UsageError("--filter is empty (leave it out to see every event)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 on the command line
        raise UsageError(f"--filter {text!r}: not valid UTF-8") from None
    return _Parser(text).parse()


def format_expr(expr) -> str:
    """The expression back as text, fully parenthesised (for listings and errors)."""
    if isinstance(expr, Compare):
        v = f'"{expr.value}"' if isinstance(expr.value, str) else str(expr.value)
        return f"{expr.name} {expr.op} {v}"
    if isinstance(expr, Not):
        return f"!({format_expr(expr.inner)})"
    op = "&&" if expr.op == "and" else "||"
    return f"({format_expr(expr.left)} {op} {format_expr(expr.right)})"


def names_in(expr) -> set[str]:
    if isinstance(expr, Compare):
        return {expr.name}
    if isinstance(expr, Not):
        return names_in(expr.inner)
    return names_in(expr.left) | names_in(expr.right)


def lookup(captures: dict[str, Capture], name: str) -> Capture | None:
    """The capture a filter name stands for. Raw machine words (arguments of a binary
    without DWARF, shown as arg0={w0: .., w1: ..}) are compared as unsigned integers:
    'arg0' is the first word of a one-word argument, 'arg0.w1' any word of one."""
    cap = captures.get(name)
    if cap is not None and (cap.kind != "words" or len(cap.words) != 1):
        return cap if cap.kind != "words" else None
    base, dot, word = name.rpartition(".w")
    if cap is None and dot and word.isdigit():
        cap, index = captures.get(base), int(word)
    else:
        index = 0
    if cap is None or cap.kind != "words" or index >= len(cap.words):
        return None
    return Capture(name, "uint", (cap.words[index],), 8, type_name="word")


def check_filter(expr, captures: dict[str, Capture], where: str) -> None:
    """UsageError unless every name is a readable capture of a comparable kind."""
    for cmp in _compares(expr):
        cap = lookup(captures, cmp.name)
        if cap is None and cmp.name in captures:  # several words: say how to name one
            n = len(captures[cmp.name].words)
            raise UsageError(f"--filter: {cmp.name} of {where} is {n} raw words; compare "
                             f"one of them: {', '.join(f'{cmp.name}.w{i}' for i in range(n))}")
        parts = [k for k in captures if k.startswith(cmp.name + ".")]
        if cap is None and parts:  # a struct, or raw words shown as {w0: .., w1: ..}
            raise UsageError(f"--filter: {cmp.name} of {where} has parts; compare one of "
                             f"them: {', '.join(parts[:6])}")
        if cap is None:
            known = ", ".join(captures) or "none"
            raise UsageError(f"--filter: {where} has no argument {cmp.name!r} "
                             f"(arguments: {known})")
        if not all(w.readable for w in cap.words[:2]):
            raise UsageError(f"--filter: argument {cmp.name!r} of {where} cannot be read "
                             f"at the probe site")
        if isinstance(cmp.value, str):
            if cap.kind not in ("string", "bytes"):
                raise UsageError(f"--filter: {cmp.name} is {cap.type_name or cap.kind}, "
                                 f"not a string")
            if cmp.op not in ("==", "!="):
                raise UsageError("--filter: strings support only == and !=")
            if len(cmp.value.encode()) > MAX_STR_LITERAL:
                raise UsageError(f"--filter: string literals are limited to "
                                 f"{MAX_STR_LITERAL} bytes")
        elif cap.kind not in ("int", "uint", "bool", "pointer"):
            raise UsageError(f"--filter: {cmp.name} is {cap.type_name or cap.kind}; "
                             f"compare it with a string")


def _compares(expr):
    if isinstance(expr, Compare):
        yield expr
    elif isinstance(expr, Not):
        yield from _compares(expr.inner)
    else:
        yield from _compares(expr.left)
        yield from _compares(expr.right)


# -- code generation ------------------------------------------------------------------

_SIGNED = {"==": Jeq, "!=": Jne, "<": Jslt, "<=": Jsle, ">": Jsgt, ">=": Jsge}
_UNSIGNED = {"==": Jeq, "!=": Jne, "<": Jlt, "<=": Jle, ">": Jgt, ">=": Jge}


def emit_filter(a: Asm, expr, captures: dict[str, Capture], reject: str) -> None:
    """Jump to `reject` unless expr holds. Needs R6 = ctx and R_SP loaded (see capture)."""
    accept = a.fresh("accept")
    a.comment(f"emit_filter: --filter {format_expr(expr)}")
    _emit(a, expr, captures, accept, reject)
    a.label(accept)


def _emit(a: Asm, expr, caps, yes: str, no: str) -> None:
    if isinstance(expr, BoolOp):
        mid = a.fresh("mid")
        if expr.op == "and":
            _emit(a, expr.left, caps, mid, no)
        else:
            _emit(a, expr.left, caps, yes, mid)
        a.label(mid)
        _emit(a, expr.right, caps, yes, no)
    elif isinstance(expr, Not):
        _emit(a, expr.inner, caps, no, yes)
    elif isinstance(expr.value, str):
        _emit_string(a, expr, lookup(caps, expr.name), yes, no)
    else:
        _emit_int(a, expr, lookup(caps, expr.name), yes, no)


def _load_word(a: Asm, loc: WordLoc, dst: Reg) -> None:
    """dst = the word (R1-R3 clobbered for memory reads)."""
    if loc.kind == "reg":
        a.emit(ldx(8, dst, R6, PT_REGS[loc.reg]))
        return
    scratch = _scratch(a)
    base = [Mov.reg(R3, R_SP)] if loc.kind == "stack" else [ldx(8, R3, R6, PT_REGS[loc.reg])]
    a.emit(Mov.reg(R1, FP), Add.imm(R1, scratch), Mov.imm(R2, 8), *base,
           Add.imm(R3, loc.sp_offset), call(Helper.probe_read_user),
           ldx(8, dst, FP, scratch))


def _emit_int(a: Asm, cmp: Compare, cap: Capture, yes: str, no: str) -> None:
    a.comment(f"emit_filter: {cmp.name} {cmp.op} {cmp.value} ({cap.type_name or cap.kind} "
              f"at {cap.words[0].describe()})")
    _load_word(a, cap.words[0], R0)
    size = cap.words[0].size if cap.kind != "bool" else 1
    signed = cap.kind == "int"
    if size < 8:  # keep the bytes that belong to the value, extended by its sign
        shift = 64 - 8 * size
        a.emit(Lsh.imm(R0, shift), (Arsh if signed else Rsh).imm(R0, shift))
    jumps = _SIGNED if signed else _UNSIGNED
    value = cmp.value
    if -(1 << 31) <= value < (1 << 31):
        a.emit(jumps[cmp.op].imm(R0, value, yes))
    else:
        a.emit(ld_imm64(R1, value), jumps[cmp.op].reg(R0, R1, yes))
    a.emit(ja(no))


def _emit_string(a: Asm, cmp: Compare, cap: Capture, yes: str, no: str) -> None:
    lit = cmp.value.encode()
    equal, differ = (yes, no) if cmp.op == "==" else (no, yes)
    scratch = _scratch(a)
    a.comment(f"emit_filter: {cmp.name} {cmp.op} {cmp.value!r}: length ({len(lit)}) at "
              f"{cap.words[1].describe()} first, then the bytes behind "
              f"{cap.words[0].describe()}, 8 at a time")
    _load_word(a, cap.words[1], R0)  # length first: cheap, and decides most calls
    a.emit(Jne.imm(R0, len(lit), differ))
    if not lit:
        a.emit(ja(equal))
        return
    _load_word(a, cap.words[0], R0)
    padded = lit + bytes(-len(lit) % 8)
    a.emit(*(st(8, FP, scratch + i, 0) for i in range(0, len(padded), 8)))
    a.emit(Mov.reg(R1, FP), Add.imm(R1, scratch), Mov.imm(R2, len(lit)), Mov.reg(R3, R0),
           call(Helper.probe_read_user), Jne.imm(R0, 0, differ))
    for i in range(0, len(padded), 8):
        chunk = int.from_bytes(padded[i:i + 8], "little")
        take = min(8, len(lit) - i)
        a.emit(ldx(8, R0, FP, scratch + i))
        if take < 8:  # bytes past the literal were not read: mask them off
            a.emit(Lsh.imm(R0, 64 - 8 * take), Rsh.imm(R0, 64 - 8 * take))
        a.emit(ld_imm64(R1, chunk), Jne.reg(R0, R1, differ))
    a.emit(ja(equal))
