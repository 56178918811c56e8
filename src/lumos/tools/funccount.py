"""funccount: count calls of functions matching patterns, in the kernel (BCC's funccount)."""

from __future__ import annotations

import sys
import time

from lumos.bpf import features
from lumos.bpf.tracefs import list_tracepoints
from lumos.errors import TargetError, UsageError
from lumos.output.jsonl import write_json
from lumos.output.prometheus import add_prometheus_argument, call_count_metrics, serve_metrics
from lumos.output.table import print_table
from lumos.output.units import plural
from lumos.probes.count import CountProbe
from lumos.probes.probesite import TracepointSite
from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.session.session import Session
from lumos.targets.entry import entry_sites
from lumos.targets.patterns import classify_pattern, resolve_patterns
from lumos.targets.plan import split_signature
from lumos.targets.usdt import find_probes, is_usdt, parse_pattern, usdt_sites

HELP = "count calls of functions matching patterns (C and Go, in-kernel counting)"
EXAMPLES = """\
  lumos funccount ./goserver 'main.*'          # every main.* function of a binary
  lumos funccount -p 1234 'net/http.*'          # one process; Go package patterns
  lumos funccount -c './calls 1000' f g         # start a command, count until it exits
  lumos funccount -p 1234 'libc:str*'           # functions of a library the process maps
  lumos funccount ./goserver 'main.*' -i 1 -d 10   # print every second for 10 seconds
  lumos funccount -p 1234 't:syscalls:sys_enter_*' # kernel tracepoints hit by a process
  lumos funccount -p 1234 'usdt:python:*'       # USDT probes (semaphores set while counting)
  lumos funccount -p 1234 'main.*' --prometheus 9464  # serve as Prometheus metrics
"""


def add_arguments(p) -> None:
    add_target_arguments(p)
    add_timing_arguments(p)
    p.add_argument("--per-site", action="store_true",
                   help="attach one perf event per site instead of one uprobe_multi link")
    add_prometheus_argument(p)


def run(args) -> int:
    out = sys.stdout
    with Session(args, is_kernel_pattern=lambda p: classify_pattern(p)[0] != "user"
                 or (is_usdt(p) and parse_pattern(p).file is not None)) as s:
        target = s.target
        user, tracepoints = split_kinds(target.patterns)
        usdt = [p for p in user if is_usdt(p)]
        user = [p for p in user if not is_usdt(p)]
        functions = resolve_patterns(target, user) if user else []
        sites, unprobeable = entry_sites(functions)
        notes: list[str] = []
        if usdt:  # USDT probes count like functions; their semaphores via ref_ctr_offset
            probes = find_probes(target, usdt)
            more, _ = usdt_sites(probes, len(functions))
            sites += more
            notes = [f"{len(more)} USDT site(s); semaphores set by the kernel "
                     f"(ref_ctr_offset)"] if any(x.ref_ctr_offset for x in more) else []
        probe = CountProbe(sites, tracepoints, target.pid).attach(
            s.stack, mode="perf_event" if args.per_site else None)
        what = " ".join(repr(p) for p in target.patterns)
        attached = len(sites) - len(probe.skipped) + len(tracepoints)
        s.banner(f"{plural(attached, 'function')} for {what}", notes,
                 skipped=unprobeable + probe.skipped)
        s.enter(serve_metrics(args, lambda: call_count_metrics(
            per_function(sites + tracepoints, probe.read()))))
        s.report_intervals(probe.read, probe.reset if not args.prometheus else lambda: None,
                           lambda counts: report(functions, sites + tracepoints, counts,
                                                 args, out))
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
        if kind == "user":  # 'pkg.F(x string)' as trace takes it: counting needs no args
            user.append(split_signature(rest)[0])
            continue
        found = list_tracepoints(rest)
        if not found:
            raise TargetError(f"tracepoint pattern {rest!r} matches nothing "
                              f"(categories: /sys/kernel/tracing/events)")
        tps += [TracepointSite(*name.split(":", 1)) for name in found
                if TracepointSite(*name.split(":", 1)) not in tps]
    return user, tps


def per_function(sites, counts) -> dict[str, int]:
    per_func: dict[str, int] = {}
    for site, n in zip(sites, counts, strict=True):
        per_func[site.name] = per_func.get(site.name, 0) + n
    return per_func


def report(functions, sites, counts, args, out) -> None:
    per_func = per_function(sites, counts)
    rows = sorted(((name, n) for name, n in per_func.items() if n), key=lambda t: (t[1], t[0]))
    if args.json:
        now = round(time.time(), 6)
        for name, n in rows:
            write_json({"time": now, "func": name, "count": n}, out)
        if args.interval:  # one line per interval, calls or not: readers see time pass
            write_json({"time": now, "interval_s": args.interval,
                        "calls": sum(n for _, n in rows)}, out)
        return
    if args.interval:
        print(time.strftime("\n[%H:%M:%S]"), file=out)
    print_table(["FUNC", "COUNT"], rows, out, align="lr", min_width=(40, 8))
