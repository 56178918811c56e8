"""Signatures users write: `main.f(a int, b string) (int, error)`, `parser.ParseExpr(x string)`.

Parsed into the same Param/GoType model DWARF gives, so a binary without DWARF can
still be decoded by the ABI rules once the user says what the function takes.
A method's receiver is written as its first parameter: `main.(*T).M(t *main.T, x int)`.

Types understood: the predeclared ones (byte, rune, error, any included),
unsafe.Pointer, *T, []T, [N]T, map[K]V, chan T, func(...) ..., interface{...},
struct{...}. A named type (`main.Point`) has no known layout without DWARF: the error
says to write its underlying type instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lumos.errors import UsageError
from lumos.golang import types as gt
from lumos.golang.model import Param

_ALIASES = {"byte": "uint8", "rune": "int32"}
_FIELD_NAMES = re.compile(r"^((?:\w+\s*,\s*)*\w+)\s+(\S.*)$")


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]
    results: tuple[Param, ...]


def parse_signature(text: str) -> Signature:
    """Parse `pkg.Func(params) results`; raises UsageError naming what is wrong."""
    s = text.strip()
    i = _name_end(s)
    if i < 0:
        raise UsageError(f"signature {text!r}: expected NAME(PARAMS) [RESULTS]")
    name = s[:i].strip()
    close = _matching(s, i)
    params = _param_list(s[i + 1:close], text, result=False)
    rest = s[close + 1:].strip()
    if not rest:
        results: list[Param] = []
    elif rest.startswith("("):
        end = _matching(rest, 0)
        if rest[end + 1:].strip():
            raise UsageError(f"signature {text!r}: unexpected text after the results")
        results = _param_list(rest[1:end], text, result=True)
    else:
        results = [Param("", parse_type(rest), True)]
    if not name:
        raise UsageError(f"signature {text!r}: the function name is missing")
    return Signature(name, tuple(params), tuple(results))


def _name_end(s: str) -> int:
    """Index of the '(' opening the parameter list (skipping a receiver's "pkg.(*T)")."""
    i = 0
    while i < len(s):
        c = s[i]
        if c == "(":
            if i > 0 and s[i - 1] == ".":
                i = _matching(s, i) + 1
                continue
            return i
        if c == "[":  # generic instantiation in the name
            i = _matching(s, i, "[", "]") + 1
            continue
        i += 1
    return -1


def _matching(s: str, i: int, open_: str = "(", close: str = ")") -> int:
    depth = 0
    for j in range(i, len(s)):
        if s[j] in "([{":
            depth += 1
        elif s[j] in ")]}":
            depth -= 1
            if depth == 0:
                if s[j] != close or s[i] != open_:
                    break
                return j
    raise UsageError(f"unbalanced brackets in {s!r}")


def _split_top(s: str, sep: str = ",") -> list[str]:
    out, depth, start = [], 0, 0
    for j, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            out.append(s[start:j])
            start = j + 1
    out.append(s[start:])
    return [x.strip() for x in out if x.strip()]


def _param_list(s: str, text: str, result: bool) -> list[Param]:
    entries = _split_top(s)
    split = []
    for e in entries:
        head, _, tail = e.partition(" ")
        if tail.strip() and head.isidentifier() and not head.startswith(("func", "chan",
                                                                        "map", "struct",
                                                                        "interface")):
            split.append((head, tail.strip()))
        else:
            split.append((None, e))
    if any(n is not None for n, _ in split):
        # Go grouping: "a, b int" -- a bare identifier is a name taking the next type.
        out: list[Param] = []
        pending: list[str] = []
        for n, t in split:
            if n is None:
                if not t.isidentifier():
                    raise UsageError(f"signature {text!r}: mixed named and unnamed parameters")
                pending.append(t)
                continue
            typ = parse_type(t)
            out.extend(Param(p, typ, result) for p in pending)
            out.append(Param(n, typ, result))
            pending = []
        if pending:
            raise UsageError(f"signature {text!r}: parameter {pending[-1]} has no type")
        return out
    return [Param("", parse_type(t), result) for _, t in split]


def parse_type(s: str) -> gt.GoType:
    """A Go type expression to GoType (sizes and alignment as on amd64)."""
    s = " ".join(s.split())
    name = s
    if s in _ALIASES:
        return gt.basic(_ALIASES[s], s)
    if s in gt.INT_KINDS or s in gt.FLOAT_KINDS or s in gt.COMPLEX_KINDS or s in (
            "bool", "string"):
        return gt.basic(s)
    if s == "unsafe.Pointer":
        return gt.basic("unsafe.Pointer")
    if s == "error":
        return gt.GoType("interface", 16, "error")
    if s in ("any", "interface{}", "interface {}"):
        return gt.GoType("interface", 16, s, empty_interface=True)
    if s.startswith("interface"):
        return gt.GoType("interface", 16, name, empty_interface=False)
    if s.startswith("*"):
        return gt.GoType("pointer", 8, name, elem=_maybe(s[1:]))
    if s.startswith("[]"):
        return gt.GoType("slice", 24, name, elem=_maybe(s[2:]))
    if s.startswith("..."):  # a variadic parameter arrives as a slice
        return gt.GoType("slice", 24, "[]" + s[3:].strip(), elem=_maybe(s[3:]))
    if s.startswith("["):
        close = _matching(s, 0, "[", "]")
        try:
            n = int(s[1:close], 0)
        except ValueError:
            raise UsageError(f"type {s!r}: array length must be a number") from None
        elem = parse_type(s[close + 1:])
        return gt.GoType("array", n * elem.size, name, elem.align, elem=elem, length=n)
    if s.startswith("map["):
        close = _matching(s, 3, "[", "]")
        return gt.GoType("map", 8, name, key=_maybe(s[4:close]), elem=_maybe(s[close + 1:]))
    if s.startswith(("chan ", "chan<-", "<-chan")):
        return gt.GoType("chan", 8, name)
    if s.startswith("func"):
        return gt.GoType("func", 8, name)
    if s.startswith("struct"):
        return _struct(s)
    raise UsageError(f"type {s!r}: lumos cannot know the layout of a named type from a "
                     "signature (write its underlying type, e.g. struct{X int; Y int})")


def _maybe(s: str) -> gt.GoType | None:
    try:
        return parse_type(s)
    except UsageError:
        return None


def _struct(s: str) -> gt.GoType:
    body = s[len("struct"):].strip()
    if not body.startswith("{") or not body.endswith("}"):
        raise UsageError(f"type {s!r}: expected struct{{...}}")
    fields: list[gt.Field] = []
    off = 0
    for decl in _split_top(body[1:-1], ";"):
        m = _FIELD_NAMES.match(decl)
        if m:
            names, typ = [n.strip() for n in m.group(1).split(",")], parse_type(m.group(2))
        else:  # embedded field
            names, typ = [decl.lstrip("*").rsplit(".", 1)[-1]], parse_type(decl)
        for n in names:
            a = max(typ.align, 1)
            off = (off + a - 1) // a * a
            fields.append(gt.Field(n, off, typ))
            off += typ.size
    align = gt.alignment("struct", off, None, tuple(fields))
    size = (off + align - 1) // align * align if fields else 0
    return gt.GoType("struct", size, " ".join(s.split()), align, fields=tuple(fields))
