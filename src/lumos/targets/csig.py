"""C function signatures, from the user's pattern or from C DWARF, as lumos captures them.

Written either way a C or a Go programmer would:

    'libc:getaddrinfo(const char *node, const char *service, void *hints, void **res) int'
    'libc:getaddrinfo(node *char, service *char) int'
    'readline(prompt *char) *char'

A parameter is a name and a type in either order; a bare type is an unnamed parameter
(shown as arg0, arg1, ...). Types: char * (a C string, read up to its NUL within
--strlen), the integer types of C and <stdint.h> with their sizes and signedness, bool,
any other pointer (shown in hex), float/double (which arrive in XMM registers: unreadable
by a uprobe, shown as '?'). Arguments follow the System V AMD64 ABI: RDI, RSI, RDX, RCX,
R8, R9, then the stack (8(SP) at the first instruction); the result is RAX.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lumos.errors import UsageError

ARG_REGS = ("di", "si", "dx", "cx", "r8", "r9")

# C integer type names (qualifiers and 'int' suffixes folded) -> (size, signed)
INTS = {
    "char": (1, True), "signed char": (1, True), "unsigned char": (1, False),
    "short": (2, True), "unsigned short": (2, False),
    "int": (4, True), "signed": (4, True), "unsigned": (4, False),
    "long": (8, True), "unsigned long": (8, False),
    "long long": (8, True), "unsigned long long": (8, False),
    "size_t": (8, False), "ssize_t": (8, True), "off_t": (8, True), "pid_t": (4, True),
    "uid_t": (4, False), "gid_t": (4, False), "socklen_t": (4, False),
    "intptr_t": (8, True), "uintptr_t": (8, False), "ptrdiff_t": (8, True),
    "int8_t": (1, True), "int16_t": (2, True), "int32_t": (4, True), "int64_t": (8, True),
    "uint8_t": (1, False), "uint16_t": (2, False), "uint32_t": (4, False),
    "uint64_t": (8, False), "bool": (1, False), "_Bool": (1, False),
}
FLOATS = {"float": 4, "double": 8, "long double": 16}
_QUALIFIERS = {"const", "volatile", "restrict", "__restrict", "struct", "enum", "union"}


@dataclass(frozen=True)
class CType:
    kind: str          # "int" | "uint" | "bool" | "cstring" | "pointer" | "float" | "void"
    size: int
    name: str          # as C writes it: "const char *", "size_t"

    @property
    def words(self) -> int:
        return 0 if self.kind == "void" else 1


@dataclass(frozen=True)
class CParam:
    name: str
    type: CType


@dataclass(frozen=True)
class CSignature:
    name: str
    params: tuple[CParam, ...]
    result: CType | None      # None: not said (the raw RAX word is shown)
    source: str = "signature"

    def text(self) -> str:
        args = ", ".join(f"{p.type.name}{'' if p.type.name.endswith('*') else ' '}{p.name}"
                         for p in self.params)
        res = f" {self.result.name}" if self.result else ""
        return f"{self.name}({args}){res}"


def c_type(text: str) -> CType:
    """A C type as written ('const char *', '*char', 'unsigned long', 'size_t')."""
    raw = " ".join(text.replace("*", " * ").split())
    stars = raw.count("*")
    words = [w for w in raw.replace("*", " ").split() if w not in _QUALIFIERS]
    base = " ".join(w for w in words if w != "int" or len(words) == 1) or "int"
    if base in ("long unsigned", "unsigned long int"):
        base = "unsigned long"
    plain = " ".join(raw.replace("*", " ").split())
    shown = f"{plain} {'*' * stars}" if stars else plain
    if stars:
        if stars == 1 and base in ("char", "signed char", "unsigned char"):
            return CType("cstring", 8, shown)
        return CType("pointer", 8, shown)
    if base == "void":
        return CType("void", 0, "void")
    if base in FLOATS:
        return CType("float", FLOATS[base], shown)
    if base in ("bool", "_Bool"):
        return CType("bool", 1, shown)
    if base in INTS:
        size, signed = INTS[base]
        return CType("int" if signed else "uint", size, shown)
    raise UsageError(f"C type {text.strip()!r}: lumos knows char *, pointers, the integer "
                     f"types of C and <stdint.h>, bool, float and double")


_IDENT = re.compile(r"[A-Za-z_]\w*$")


def _param(text: str, i: int) -> CParam:
    t = text.strip()
    if t.startswith("*") or t.split()[0] in ("const", "unsigned", "signed", "struct", "volatile") \
            or _is_type_word(t.split()[0]) and not _looks_go(t):
        # C order: type then name ('const char *node', 'int n', 'char *')
        m = re.match(r"(.*?)([A-Za-z_]\w*)$", t)
        if m and m.group(1).strip() and not _is_type_word(m.group(2)):
            return CParam(m.group(2), c_type(m.group(1)))
        return CParam(f"arg{i}", c_type(t))
    # Go order: name then type ('node *char', 'n int')
    name, _, typ = t.partition(" ")
    if not typ.strip() or not _IDENT.match(name):
        return CParam(f"arg{i}", c_type(t))
    return CParam(name, c_type(typ))


def _is_type_word(word: str) -> bool:
    w = word.rstrip("*")
    return w in INTS or w in FLOATS or w in ("void", "long", "short", "char", "int")


def _looks_go(text: str) -> bool:
    """'n int' is Go order only when the second word is a type and the first is not."""
    parts = text.replace("*", " * ").split()
    return len(parts) >= 2 and not _is_type_word(parts[0]) and parts[0] != "*"


def parse_c_signature(text: str) -> CSignature:
    """'name(params) result' -> CSignature; UsageError with the reason otherwise."""
    m = re.fullmatch(r"\s*([\w.@]+)\s*\((.*)\)\s*(.*?)\s*", text, re.S)
    if m is None:
        raise UsageError(f"C signature {text!r}: expected name(type name, ...) [result]")
    name, params, result = m.groups()
    items = [p for p in params.split(",") if p.strip() and p.strip() != "void"]
    if any(p.strip() == "..." for p in items):
        items = [p for p in items if p.strip() != "..."]  # variadic: the named ones only
    out = tuple(_param(p, i) for i, p in enumerate(items))
    return CSignature(name, out, c_type(result) if result else None)


def signature_from_prototype(proto) -> CSignature:
    """A CSignature from binary.cfuncs.CPrototype (C DWARF); unknown types stay raw."""
    def typ(text: str) -> CType:
        try:
            return c_type(text)
        except UsageError:
            return CType("hex", 8, text)  # a struct by value: its first word, raw
    params = tuple(CParam(n, typ(t)) for n, t in proto.params)
    result = None if proto.result == "void" else typ(proto.result)
    return CSignature(proto.name, params, result, "DWARF")
