"""funccount: count calls of functions matching patterns, in the kernel (BCC's funccount)."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack

from lumos.bpf import features
from lumos.bpf.tracefs import list_tracepoints
from lumos.errors import TargetError, UsageError
from lumos.output.jsonl import write_json
from lumos.output.table import print_table
from lumos.probes.count import CountProbe
from lumos.probes.sites import TracepointSite
from lumos.tools import common
from lumos.tools.functions import classify_pattern, resolve_patterns
from lumos.tools.sites import entry_sites

HELP = "count calls of functions matching patterns (C and Go, in-kernel counting)"
EXAMPLES = """\
  lumos funccount ./goserver 'main.*'          # every main.* function of a binary
  lumos funccount -p 1234 'net/http.*'          # one process; Go package patterns
  lumos funccount -c './calls 1000' f g         # start a command, count until it exits
  lumos funccount -p 1234 'libc:str*'           # functions of a library the process maps
  lumos funccount ./goserver 'main.*' -i 1 -d 10   # print every second for 10 seconds
  lumos funccount -p 1234 't:syscalls:sys_enter_*' # kernel tracepoints hit by a process
"""


def add_arguments(p) -> None:
    common.add_target_arguments(p)
    common.add_timing_arguments(p)
    p.add_argument("--per-site", action="store_true",
                   help="attach one perf event per site instead of one uprobe_multi link")


def run(args) -> int:
    target = common.resolve_target(
        args, is_kernel_pattern=lambda p: classify_pattern(p)[0] != "user")
    out = sys.stdout
    with ExitStack() as stack:
        if target.launched:
            stack.callback(target.launched.close)
        user, tracepoints = split_kinds(target.patterns)
        functions = resolve_patterns(target, user) if user else []
        sites, unprobeable = entry_sites(functions)
        probe = CountProbe(sites, tracepoints, target.pid).attach(
            stack, mode="perf_event" if args.per_site else None)
        common.report_skipped(unprobeable + probe.skipped)
        what = " ".join(repr(p) for p in target.patterns)
        where = f" in {target.label}" if target.exe or target.pid else ""
        print(f"Tracing {len(functions) + len(tracepoints)} functions for {what}{where}... "
              f"Hit Ctrl-C to end.", file=sys.stderr, flush=True)
        if target.launched:
            target.launched.start()
        with common.Runner(args.duration, target.launched) as runner:
            for final in runner.ticks(args.interval):
                counts = probe.read()
                if args.interval and not final:
                    probe.reset()
                report(functions, sites + tracepoints, counts, args, out)
    return 0


def split_kinds(patterns: list[str]) -> tuple[list[str], list[TracepointSite]]:
    """User function patterns, and the tracepoints the t: patterns match."""
    user: list[str] = []
    tps: list[TracepointSite] = []
    for pattern in patterns:
        kind, rest = classify_pattern(pattern)
        if kind == "kernel":
            features.require("kprobes")
            raise UsageError(f"{pattern}: kernel functions are not supported yet")
        if kind == "user":
            user.append(rest)
            continue
        found = list_tracepoints(rest)
        if not found:
            raise TargetError(f"tracepoint pattern {rest!r} matches nothing "
                              f"(categories: /sys/kernel/tracing/events)")
        tps += [TracepointSite(*name.split(":", 1)) for name in found
                if TracepointSite(*name.split(":", 1)) not in tps]
    return user, tps


def report(functions, sites, counts, args, out) -> None:
    per_func: dict[str, int] = {}
    for site, n in zip(sites, counts, strict=True):
        per_func[site.name] = per_func.get(site.name, 0) + n
    rows = sorted(((name, n) for name, n in per_func.items() if n), key=lambda t: (t[1], t[0]))
    if args.json:
        now = time.time()
        for name, n in rows:
            write_json({"time": round(now, 6), "func": name, "count": n}, out)
        return
    if args.interval:
        print(time.strftime("\n[%H:%M:%S]"), file=out)
    print_table(["FUNC", "COUNT"], rows, out, align="lr", min_width=(40, 8))
