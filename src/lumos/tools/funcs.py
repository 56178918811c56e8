"""lumos funcs: what lumos knows about a binary's functions, before tracing them.

For each Go function matching a PATTERN: its Go signature, the entry probe site and why
it was chosen, the RET sites (exits, never uretprobes), and where every argument lives
at the entry site (register, stack slot, or unreadable and why). For C (any ELF that is
not Go): the prototype from C DWARF when there is one, and the SysV registers. Lines
are written as each function is analysed, so `| head` answers at once.
"""

from __future__ import annotations

import json
import sys

from lumos.errors import GoBinaryError, TargetError, UsageError
from lumos.golang.gobinary import NO_DWARF_NOTICE, open_go_binary
from lumos.golang.model import FuncSpec, Loc

HELP = "list a binary's functions with signatures, probe sites and argument locations"
EXAMPLES = """\
  lumos funcs ./server                    # functions of package main
  lumos funcs ./server 'main.prepare*'    # a glob over full names
  lumos funcs -p 4242 'net/http.(*conn).*'
  lumos funcs ./server '*' --json         # everything, as JSON lines
  lumos funcs ./stripped --sig 'main.f(name string, n int) error'
  lumos funcs ./server --runtime          # goid offset, g access, newproc1/goexit1
  lumos funcs /usr/lib/x86_64-linux-gnu/libc.so.6 'getaddr*'   # C: symbols, DWARF
"""
DEFAULT_PATTERN = "main.*"


def add_arguments(p) -> None:
    p.add_argument("target", nargs="?", metavar="TARGET", help="path of an executable "
                   "or library (Go or C)")
    p.add_argument("patterns", nargs="*", metavar="PATTERN",
                   help=f"shell globs over full function names (default: {DEFAULT_PATTERN!r}"
                        f" for Go, '*' for C)")
    p.add_argument("-p", "--pid", type=int, help="use the executable of this running process")
    p.add_argument("--json", action="store_true", help="write one JSON object per function")
    p.add_argument("--sig", metavar="SIGNATURE",
                   help="decode arguments by this Go signature (for binaries without DWARF)")
    p.add_argument("--runtime", action="store_true",
                   help="show runtime facts: goid offset, g access, newproc1 and goexit1")


def run(args) -> int:
    path, patterns = _target(args)
    try:
        gb = open_go_binary(path)
    except GoBinaryError:  # not Go: C functions from the ELF symbols
        if args.runtime or args.sig:
            raise
        return _run_c(path, patterns or ["*"], args, sys.stdout)
    out = sys.stdout
    with gb:
        sig = None
        if args.sig:
            from lumos.golang.signature import parse_signature
            sig = parse_signature(args.sig)
        for n in gb.notices:  # no DWARF: beside the point when the signature is given
            if not (sig is not None and n == NO_DWARF_NOTICE):
                print(f"lumos funcs: note: {n}", file=sys.stderr)
        if args.runtime:
            _print_runtime(gb, out, args.json)
            return 0
        if sig is not None and not patterns:
            patterns = [sig.name]
        patterns = patterns or [DEFAULT_PATTERN]
        funcs = {f.entry: f for p in patterns for f in gb.match(p)}
        if not funcs:
            raise TargetError(_nothing_matched(gb, path, patterns))
        ordered = sorted(funcs.values(), key=lambda f: (f.name, f.entry))
        if not args.json:
            bi = gb.buildinfo
            mod = f", {bi.main_module or bi.path}" if bi and (bi.main_module or bi.path) \
                else ""
            what = " ".join(repr(p) for p in patterns)
            out.write(f"{path}: {gb.go_version or 'Go (version unknown)'}{mod}, "
                      f"{'DWARF' if gb.has_dwarf else 'no DWARF'}; {len(ordered)} of "
                      f"{gb.num_functions} {_plural(gb.num_functions, 'function')} match "
                      f"{what}\n")
            out.flush()
        for f in ordered:  # each as soon as it is known: the first lines come at once
            s = gb.spec(f, sig if sig and f.name == sig.name else None)
            if args.json:
                out.write(json.dumps({"signature": s.signature(short=False), **s.to_dict()})
                          + "\n")
            else:
                out.write("\n" + format_spec(s))
            out.flush()
    return 0


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _run_c(path: str, patterns: list[str], args, out) -> int:
    """C functions: name, address, size, the prototype from C DWARF if any, where the
    SysV arguments are, and how the return is seen (a uretprobe: fine in C)."""
    import fnmatch

    from lumos.binary.cfuncs import c_prototype
    from lumos.binary.elf import open_elf
    from lumos.targets.csig import signature_from_prototype
    from lumos.targets.patterns import functions_of
    syms = functions_of(path)
    if not syms:
        raise TargetError(f"{path}: not a Go program, and it has no function symbols "
                          f"(stripped): nothing to list")
    found = sorted({s.addr: s for s in syms for p in patterns
                    if fnmatch.fnmatchcase(s.name, p)}.values(), key=lambda s: s.name)
    if not found:
        from lumos.targets.patterns import near_misses
        raise TargetError(f"no function matches {' '.join(map(repr, patterns))} in {path}"
                          + near_misses(patterns[0], syms))
    with open_elf(path) as elf:
        if not args.json:
            dwarf = "C DWARF" if _has_c_dwarf(elf) else "no DWARF"
            out.write(f"{path}: C (not Go), {dwarf}; {len(found)} of {len(syms)} "
                      f"{_plural(len(syms), 'function')} match "
                      f"{' '.join(map(repr, patterns))}\n")
            out.flush()
        for sym in found:
            proto = c_prototype(elf, sym.name, sym.addr)
            sig = signature_from_prototype(proto) if proto else None
            if args.json:
                out.write(json.dumps({"name": sym.name, "addr": sym.addr, "size": sym.size,
                                      "signature": sig.text() if sig else None}) + "\n")
            else:
                out.write(f"\n{sig.text() if sig else sym.name + '(?)'}\n    "
                          f"{sym.addr:#x}-{sym.addr + sym.size:#x}, C (System V ABI)\n"
                          f"    entry  +0x0 first instruction; exit by uretprobe\n")
                if sig is not None and sig.params:
                    from lumos.targets.captures import c_captures
                    caps, _ = c_captures(sig, 64)
                    out.write("    args   " + "  ".join(
                        f"{c.name}={c.words[0].describe()}" for c in caps) + "\n")
                elif sig is None:
                    out.write("    args   DI SI DX CX R8 R9 as raw words (no DWARF: give "
                              "a signature to trace, e.g. 'f(const char *s, int n) int')\n")
            out.flush()
    return 0


def _has_c_dwarf(elf) -> bool:
    from lumos.binary.cdwarf import debug_file_for
    return debug_file_for(elf) is not None


def _target(args) -> tuple[str, list[str]]:
    target, patterns = args.target, list(args.patterns)
    if args.pid is not None:
        from lumos.binary.procmaps import exe_of
        if target is not None:
            patterns, target = [target, *patterns], None  # `funcs -p PID PATTERN...`
        return exe_of(args.pid), patterns
    if target is None:
        raise UsageError("give a TARGET binary or -p PID")
    return target, patterns


def _nothing_matched(gb, path: str, patterns: list[str]) -> str:
    import difflib
    names = sorted({f.name for f in gb.functions})
    what = " ".join(repr(p) for p in patterns)
    exact = [p for p in patterns if not any(c in p for c in "*?[")]
    for p in exact:  # a function the compiler inlined at every call has no address
        into = gb.inlined_into(p)
        if into:
            return (f"{p} is inlined everywhere in {path}: no address to probe (inlined "
                    f"into {', '.join(into)}; trace those, or rebuild with "
                    f"-gcflags=all=-l)")
    close = [c for p in exact for c in difflib.get_close_matches(p, names, n=3)]
    hint = f"did you mean {', '.join(close[:5])}?" if close else "try 'main.*' or '*'"
    return f"no function matches {what} in {path} ({len(names)} functions; {hint})"


def format_spec(s: FuncSpec) -> str:
    """One block per function: signature, where, entry site, exits, arguments, notes."""
    lines = [s.signature(full_name=True)]
    where = f"{_short_file(s.file)}:{s.line}, " if s.file and s.file != "?" else ""
    src = f", params from {s.source}" if s.source != "dwarf" else ""
    lines.append(f"    {where}{s.abi}, {s.entry:#x}-{s.end:#x}{src}")
    e = s.entry_site
    lines.append(f"    entry  +{e.vaddr - s.entry:#x} {e.why}")
    rets = s.ret_sites
    res = _locs_text(s.results, rets[0].locs) if rets and s.results else ""
    lines.append(f"    exits  {len(rets)} RET{'s' if len(rets) != 1 else ''}"
                 + (f"; result {res}" if res else ""))
    if s.params:
        lines.append(f"    args   {_locs_text(s.params, e.locs)}")
    lines.extend(f"    note   {n}" for n in s.notes)
    return "\n".join(lines) + "\n"


def _locs_text(params, locs) -> str:
    if len(params) == 1 and not params[0].name and locs:
        return _loc_list(locs[0])
    out = []
    for i, (p, v) in enumerate(zip(params, locs, strict=False)):
        unnamed = f"~r{i}" if p.is_result else f"arg{i}"  # as trace names them
        out.append(f"{p.name or unnamed}={_loc_list(v)}")
    return "  ".join(out)


def _loc_list(v: tuple[Loc, ...]) -> str:
    if not v:
        return "(zero-size)"
    return ",".join(loc.describe() if loc.kind != "unreadable" else
                    f"?({loc.why.split(':')[0]})" for loc in v)


def _short_file(f: str) -> str:
    return f.rsplit("/", 1)[-1]


def _print_runtime(gb, out, as_json: bool) -> None:
    rt = gb.runtime_layout()
    if as_json:
        out.write(json.dumps(rt.to_dict()) + "\n")
        return
    out.write(f"{gb.path}: {gb.go_version}\n")
    out.write(f"  g          R14 in Go (ABIInternal) code; TLS at fs_base{rt.g_tls_offset:+d}"
              " everywhere (ABI0 assembly, cgo)\n")
    out.write(f"  g.goid     offset {rt.goid_offset:#x} (from {rt.goid_source})\n")
    out.write(f"  g.stackguard0 offset {rt.stackguard0_offset:#x}\n")
    out.write(f"  funcval.fn offset {rt.funcval_fn_offset} (start PC of a new goroutine)\n")
    for spec in (rt.newproc1, rt.goexit1):
        if spec is not None:
            out.write("\n" + format_spec(spec))
