"""Turning user patterns into functions and probe sites, for every tool.

A pattern is a glob over function names, optionally prefixed by a library:
'main.*', 'net/http.*', 'libc:str*', '/usr/lib/libssl.so.3:SSL_*'. Go's own symbol
prefixes ('type:', 'go:') are names, not libraries. Function names come from the ELF
symbol tables, or from Go's pclntab when a Go binary has none (stripped builds).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass

from lumos.binary.elf import Symbol, open_elf
from lumos.binary.libs import resolve_library
from lumos.errors import GoBinaryError, TargetError, UsageError
from lumos.targets.target import Target

GO_SYMBOL_PREFIXES = ("type", "go")
TRACEPOINT_PREFIXES = ("t:", "tracepoint:")
KPROBE_PREFIXES = ("k:", "kprobe:", "kfunc:", "fentry:")
UPROBE_PREFIXES = ("u:", "uprobe:")


def classify_pattern(pattern: str) -> tuple[str, str]:
    """('tracepoint', 'syscalls:sys_enter_open*') | ('kernel', 'vfs_*') | ('user', 'libc:str*')."""
    for prefixes, kind in ((TRACEPOINT_PREFIXES, "tracepoint"), (KPROBE_PREFIXES, "kernel"),
                           (UPROBE_PREFIXES, "user")):
        for prefix in prefixes:
            if pattern.startswith(prefix):
                return kind, pattern[len(prefix):]
    return "user", pattern


@dataclass(frozen=True)
class FunctionMatch:
    path: str     # file the function lives in (executable or library)
    name: str
    addr: int     # virtual address of the entry
    size: int


def split_pattern(pattern: str) -> tuple[str | None, str]:
    """('libc', 'str*') for 'libc:str*'; (None, pattern) when there is no library."""
    lib, sep, rest = pattern.partition(":")
    if not sep or not lib or lib in GO_SYMBOL_PREFIXES or not rest:
        return None, pattern
    if re.fullmatch(r"[\w.+/-]+", lib) is None:
        return None, pattern
    return lib, rest


_functions_cache: dict[str, list[Symbol]] = {}


def functions_of(path: str) -> list[Symbol]:
    """Function symbols of a file: ELF tables, else Go's pclntab (stripped Go binaries)."""
    if path not in _functions_cache:
        with open_elf(path) as elf:
            syms = elf.functions
            # Without .symtab (stripped), .dynsym holds at most a few exported or cgo
            # symbols: a Go binary's real function list is its pclntab.
            if not elf.has_section(".symtab"):
                syms = go_functions(path) or syms
        _functions_cache[path] = syms
    return _functions_cache[path]


def go_functions(path: str) -> list[Symbol]:
    """Functions from .gopclntab (empty when the file is not a Go binary)."""
    from lumos.golang.gobinary import open_go_binary
    try:
        with open_go_binary(path) as gobin:
            return [Symbol(f.entry, f.name, f.size) for f in gobin.functions]
    except GoBinaryError:
        return []


def resolve_patterns(target: Target, patterns: list[str]) -> list[FunctionMatch]:
    """Every function matching any pattern, once per address; TargetError if none match."""
    matches: dict[tuple[str, int], FunctionMatch] = {}
    for pattern in patterns:
        lib, glob = split_pattern(pattern)
        path = target.exe if lib is None else resolve_library(lib, target.exe, target.pid
                                                              if not target.launched else None)
        if path is None:
            raise UsageError(f"{pattern}: a user function pattern needs a binary, -p or -c")
        syms = functions_of(path)
        found = [s for s in syms if fnmatch.fnmatchcase(s.name, glob)]
        if not found:
            inlined = _inlined_into(path, glob)
            if inlined:
                raise TargetError(f"{glob} is inlined everywhere in {path}: no address to "
                                  f"probe (inlined into {', '.join(inlined)}; trace those, "
                                  f"or rebuild with -gcflags=all=-l)")
            raise TargetError(f"pattern {pattern!r} matches no function in {path}"
                              + near_misses(glob, syms))
        for s in found:
            matches.setdefault((path, s.addr), FunctionMatch(path, s.name, s.addr, s.size))
    return sorted(matches.values(), key=lambda m: (m.path, m.name))


def _inlined_into(path: str, name: str) -> list[str]:
    """Where a Go function that has no code of its own was inlined (empty: not so)."""
    if any(c in name for c in "*?["):
        return []
    from lumos.golang.gobinary import open_go_binary
    try:
        with open_go_binary(path) as gobin:
            return gobin.inlined_into(name)
    except GoBinaryError:
        return []


def near_misses(glob: str, syms: list[Symbol], n: int = 5) -> str:
    names = sorted({s.name for s in syms})
    if not names:
        return " (it has no function symbols)"
    stem = glob.replace("*", "").replace("?", "").strip(".")
    close = difflib.get_close_matches(stem, names, n=n, cutoff=0.6)
    low = stem.lower()
    if low:
        close += [nm for nm in names if low in nm.lower() and nm not in close][: n - len(close)]
    if not close:
        return f" ({len(names)} functions; list them with: lumos funcs BINARY)"
    return "; did you mean: " + ", ".join(close[:n])
