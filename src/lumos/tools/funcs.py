"""lumos funcs: what lumos knows about a Go binary's functions, before tracing them.

For each function matching PATTERN: its Go signature, the entry probe site and why it
was chosen, the RET sites (exits, never uretprobes), and where every argument lives at
the entry site (register, stack slot, or unreadable and why).
"""

from __future__ import annotations

import json
import sys

from lumos.errors import TargetError, UsageError
from lumos.golang.gobinary import open_go_binary
from lumos.golang.model import FuncSpec, Loc

HELP = "list a Go binary's functions with signatures, probe sites and argument locations"
EXAMPLES = """\
  lumos funcs ./server                    # functions of package main
  lumos funcs ./server 'main.prepare*'    # a glob over full names
  lumos funcs -p 4242 'net/http.(*conn).*'
  lumos funcs ./server '*' --json         # everything, as JSON lines
  lumos funcs ./stripped --sig 'main.f(name string, n int) error'
  lumos funcs ./server --runtime          # goid offset, g access, newproc1/goexit1
"""
DEFAULT_PATTERN = "main.*"


def add_arguments(p) -> None:
    p.add_argument("target", nargs="?", metavar="TARGET", help="path of a Go executable")
    p.add_argument("pattern", nargs="?", metavar="PATTERN",
                   help=f"shell glob over full function names (default: {DEFAULT_PATTERN!r})")
    p.add_argument("-p", "--pid", type=int, help="use the executable of this running process")
    p.add_argument("--json", action="store_true", help="write one JSON object per function")
    p.add_argument("--sig", metavar="SIGNATURE",
                   help="decode arguments by this Go signature (for binaries without DWARF)")
    p.add_argument("--runtime", action="store_true",
                   help="show runtime facts: goid offset, g access, newproc1 and goexit1")


def run(args) -> int:
    path, pattern = _target(args)
    out = sys.stdout
    with open_go_binary(path) as gb:
        for n in gb.notices:
            print(f"lumos funcs: note: {n}", file=sys.stderr)
        if args.runtime:
            _print_runtime(gb, out, args.json)
            return 0
        sig = None
        if args.sig:
            from lumos.golang.signature import parse_signature
            sig = parse_signature(args.sig)
        if sig is not None and pattern == DEFAULT_PATTERN and not args.pattern:
            pattern = sig.name
        funcs = gb.match(pattern)
        if not funcs:
            raise TargetError(_nothing_matched(gb, path, pattern))
        specs = [gb.spec(f, sig if sig and f.name == sig.name else None)
                 for f in sorted(funcs, key=lambda f: (f.name, f.entry))]
        if args.json:
            for s in specs:
                out.write(json.dumps({"signature": s.signature(short=False), **s.to_dict()})
                          + "\n")
            return 0
        bi = gb.buildinfo
        mod = f", {bi.main_module or bi.path}" if bi and (bi.main_module or bi.path) else ""
        out.write(f"{path}: {gb.go_version or 'Go (version unknown)'}{mod}, "
                  f"{'DWARF' if gb.has_dwarf else 'no DWARF'}; {len(specs)} of "
                  f"{gb.num_functions} functions match {pattern!r}\n")
        for s in specs:
            out.write("\n" + format_spec(s))
    return 0


def _target(args) -> tuple[str, str]:
    target, pattern = args.target, args.pattern
    if args.pid is not None:
        from lumos.binary.procmaps import exe_of
        if target is not None and pattern is None:
            target, pattern = None, target  # `funcs -p PID PATTERN`
        if target is not None:
            raise UsageError("give either TARGET or -p PID, not both")
        return exe_of(args.pid), pattern or DEFAULT_PATTERN
    if target is None:
        raise UsageError("give a TARGET binary or -p PID")
    return target, pattern or DEFAULT_PATTERN


def _nothing_matched(gb, path: str, pattern: str) -> str:
    import difflib
    names = sorted({f.name for f in gb.functions})
    close = difflib.get_close_matches(pattern, names, n=3) if "*" not in pattern else []
    hint = f"did you mean {', '.join(close)}?" if close else "try 'main.*' or '*'"
    return f"no function matches {pattern!r} in {path} ({len(names)} functions; {hint})"


def format_spec(s: FuncSpec) -> str:
    """One block per function: signature, where, entry site, exits, arguments, notes."""
    lines = [s.signature()]
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
        out.append(f"{p.name or f'~r{i}'}={_loc_list(v)}")
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
