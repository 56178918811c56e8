"""What stacks, profile and allocs share: the --pprof/--folded/--svg options, writing
them, and the text listing of stacks (BCC stackcount's layout: frames leaf first,
indented two spaces, then the count indented four)."""

from __future__ import annotations

import os
import sys
import time

from lumos.output.flame import folded_lines, write_folded, write_svg
from lumos.output.pprof import write_pprof


def add_output_arguments(p) -> None:
    p.add_argument("--pprof", metavar="FILE", help="write a gzipped pprof profile "
                   "(go tool pprof FILE)")
    p.add_argument("--folded", metavar="FILE", help="write folded stacks (flamegraph.pl, "
                   "inferno, speedscope read them)")
    p.add_argument("--svg", metavar="FILE", help="write an interactive flame graph SVG "
                   "(open it in a browser: click to zoom, Ctrl-F to search)")


def write_outputs(args, samples, sample_types, value_index: int = 0, title: str = "",
                  count_name: str = "samples", comm_root: bool = False, colors: str = "hot",
                  **pprof_kw) -> dict[str, float]:
    """Write every file asked for; returns seconds spent per output (benchmarks)."""
    spent = {}
    if getattr(args, "pprof", None):
        t = time.perf_counter()
        write_pprof(args.pprof, samples, sample_types, pid_labels=comm_root, **pprof_kw)
        spent["pprof"] = time.perf_counter() - t
        _said(args.pprof, "go tool pprof -top " + args.pprof)
    if getattr(args, "folded", None):
        write_folded(args.folded, samples, value_index, comm_root)
        _said(args.folded)
    if getattr(args, "svg", None):
        t = time.perf_counter()
        write_svg(args.svg, folded_lines(samples, value_index, comm_root), title or "lumos",
                  count_name, colors)
        spent["svg"] = time.perf_counter() - t
        _said(args.svg)
    return spent


def _said(path: str, hint: str = "") -> None:
    size = os.path.getsize(path)
    print(f"lumos: wrote {path} ({size:,} bytes){'; ' + hint if hint else ''}",
          file=sys.stderr)


def format_frame(f, kernel: bool = False) -> str:
    name = f.function + (" (inlined)" if f.inlined else "") + (" [k]" if kernel else "")
    if f.line:
        return f"{name}  {os.path.basename(f.file)}:{f.line}"
    return name


def format_stack_frame(f, at: str) -> str:
    """One frame of trace --stack: the address as 'function+offset' for the function the
    code sits in, the name and '(inlined)' for a call inlined there; then file:line.
    'main.b+0x1d  main.go:33', 'main.inl (inlined)  main.go:30'."""
    name = f"{f.function} (inlined)" if f.inlined else at
    return f"{name}  {os.path.basename(f.file)}:{f.line}" if f.line else name


def print_stacks(samples, value_index: int = 0, out=sys.stdout, limit: int | None = None,
                 show_pid: bool = False, unit: str = "") -> None:
    """BCC stackcount's listing, least frequent first so the hottest ends on screen."""
    ordered = sorted(samples, key=lambda s: s.values[value_index])
    if limit:
        ordered = ordered[-limit:]
    for smp in ordered:
        for loc in smp.locations:
            for f in loc.frames:
                print(f"  {format_frame(f, loc.kernel)}", file=out)
        if show_pid:
            print(f"    {smp.comm} [{smp.pid}]", file=out)
        print(f"    {smp.values[value_index]}{unit}\n", file=out)
    out.flush()
