"""latency: log2 histograms of function latency, computed in the kernel (funclatency for Go).

Entry probe after the prologue, a uprobe on every RET (never a uretprobe on Go code),
calls paired by goroutine and frame so goroutine migration, stack growth and
recursion do not confuse it. --by ARG splits the histogram by an argument's value.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from lumos.errors import UsageError
from lumos.output.hist import format_log2_hist, slot_range
from lumos.output.jsonl import write_json
from lumos.output.prometheus import add_prometheus_argument, latency_metrics, serve_metrics
from lumos.output.units import plural
from lumos.probes.latency import DEFAULT_MAX_KEYS, LatencyFunction, LatencyProbe
from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.session.session import Session
from lumos.targets.plan import dropped_note, plan

HELP = "latency histograms of Go (or C) functions, computed in the kernel"
EXAMPLES = """\
  lumos latency ./goserver main.prepareAnswer            # one histogram per function
  lumos latency -p 1234 main.prepareAnswer --by year     # one per value of an argument
  lumos latency -p 1234 'net/http.(*conn).serve' -m      # in milliseconds
  lumos latency -p 1234 'main.*' -i 5 -d 60              # print every 5 s for a minute
  lumos latency -p 1234 'parser.ParseExpr(input string)' --by input   # stripped binary
  lumos latency -p 1234 main.handler --prometheus 9464  # serve as Prometheus metrics
"""

UNITS = {"ns": (1, "nsecs"), "us": (1000, "usecs"), "ms": (1000_000, "msecs")}


def add_arguments(p) -> None:
    add_target_arguments(p)
    add_timing_arguments(p)
    p.add_argument("--by", metavar="ARG", help="one histogram per value of this argument")
    p.add_argument("--unit", choices=UNITS, default="us", help="histogram unit (default us)")
    p.add_argument("-m", dest="unit", action="store_const", const="ms", help="--unit ms")
    p.add_argument("--max-inflight", type=int, default=65536,
                   help="calls in progress tracked at once, at least (an LRU map of twice "
                        "this size, so that panics cannot grow it; default 65536)")
    p.add_argument("--max-keys", type=int, default=DEFAULT_MAX_KEYS,
                   help="histogram buckets kept at once (function x --by value x slot; "
                        f"default {DEFAULT_MAX_KEYS}); calls past it are counted, not lost")
    add_prometheus_argument(p)


MAX_MAP_ENTRIES = 1 << 22  # what the maps may hold; past it map creation needs GBs


def run(args) -> int:
    unit_ns, unit_name = UNITS[args.unit]
    for flag, value in (("--max-inflight", args.max_inflight), ("--max-keys", args.max_keys)):
        if not 1 <= value <= MAX_MAP_ENTRIES:
            raise UsageError(f"{flag} must be between 1 and {MAX_MAP_ENTRIES}")
    with Session(args) as s:
        target = s.target
        unprobeable: list[str] = []
        planned = plan(target, target.patterns, strlen=16, dropped=unprobeable)
        no_ret = [f.name for f in planned if not f.exits]
        planned = [f for f in planned if f.exits]
        notes = (dropped_note(unprobeable, "no instruction a uprobe can sit on at entry")
                 + dropped_note(no_ret, "no RET instruction: they never return"))
        if not planned:
            raise UsageError("no matching function has a RET instruction to time")
        functions = [LatencyFunction(f.name, f.goroutine, _by_capture(f, args.by),
                                     f.entry_sp_delta) for f in planned]
        if args.by and all(f.by is None for f in functions):
            raise UsageError(f"--by {args.by}: no matching function has that argument "
                             f"(see: lumos funcs)")
        # function ids are positions in `functions` (plan's own numbering skips the
        # functions it could not probe)
        entries = [replace(f.entry, func_index=k) for k, f in enumerate(planned)]
        exits = [replace(x, func_index=k) for k, f in enumerate(planned) for x in f.exits]
        probe = LatencyProbe(functions, entries, exits, unit_ns, target.pid,
                             args.max_inflight, args.max_keys).attach(s.stack)
        sites = f"{plural(len(entries), 'entry', 'entries')}, {plural(len(exits), 'RET site')}"
        s.banner(f"{plural(len(functions), 'function')} ({sites})", notes,
                 skipped=probe.attached.skipped)
        s.enter(serve_metrics(args, lambda: latency_metrics(functions, probe.read(), unit_ns)))
        s.report_intervals(probe.read, probe.clear if not args.prometheus else lambda: None,
                           lambda hists: report(functions, hists, unit_name, args))
        if probe.returns_unmatched:
            print(f"lumos: {probe.returns_unmatched} returns had no recorded entry (calls "
                  f"begun before tracing started, or more than --max-inflight calls in "
                  f"progress)", file=sys.stderr)
        if probe.overflowed:
            print(f"lumos: {probe.overflowed} calls were timed but found no room in the "
                  f"histogram map (more than --max-keys {args.max_keys} distinct function, "
                  f"--by value and bucket keys; raise --max-keys)", file=sys.stderr)
    return 0


def _by_capture(f, name: str | None):
    if not name:
        return None
    cap = next((c for c in f.args if c.name == name), None)
    if cap is None:
        return None
    if cap.kind not in ("int", "uint", "bool", "pointer", "string", "bytes"):
        raise UsageError(f"--by {name}: {cap.type_name} values cannot key a histogram")
    if not all(w.readable for w in cap.words):
        raise UsageError(f"--by {name}: not readable at the entry of {f.name}")
    return cap


def report(functions, hists, unit: str, args) -> None:
    out = sys.stdout
    keys = sorted(hists, key=lambda k: (functions[k[0]].name, str(k[1])))
    if args.json:
        now = round(time.time(), 6)
        for fi, by in keys:
            h = hists[(fi, by)]
            last = max((i for i, c in enumerate(h.slots) if c), default=-1)
            obj = {"time": now, "func": functions[fi].name, "unit": unit,
                   "count": h.count, "sum": h.sum,
                   "buckets": [{"low": slot_range(i)[0], "high": slot_range(i)[1],
                                "count": h.slots[i]} for i in range(last + 1)]}
            if functions[fi].by is not None:
                obj["by"] = {functions[fi].by.name: by}
            write_json(obj, out)
        return
    if args.interval:
        print(time.strftime("\n[%H:%M:%S]"), file=out)
    if not keys:
        print("(no calls completed)", file=out)
    for fi, by in keys:
        h = hists[(fi, by)]
        fn = functions[fi]
        title = fn.name if fn.by is None else f"{fn.name}, {fn.by.name} = {_show(by)}"
        print(f"\n{title}", file=out)
        print(format_log2_hist(h.slots, unit), file=out)
        avg = h.sum / h.count if h.count else 0
        print(f"avg = {avg:.0f} {unit}, total: {h.sum} {unit}, count: {h.count}", file=out)
    out.flush()


def _show(v) -> str:
    return f'"{v}"' if isinstance(v, str) else str(v)
