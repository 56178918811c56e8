"""allocs: Go heap allocations with stacks, from outside the program, aggregated in the kernel.

Default: the runtime's own sampling point (runtime.mProf_Malloc: about one allocation
per 512 KiB, so the cost stays near zero at any allocation rate; setprofilebucket and
mProf_Free give the in-use side), scaled as runtime/pprof scales its heap profile.
--every: runtime.mallocgc, every allocation counted exactly, at a uprobe's cost each,
with the type allocated (mallocgc's typ argument, named from the binary's type data:
lumos.golang.typenames).
Output: the top allocation sites, a pprof heap profile (alloc_objects, alloc_space,
inuse_objects, inuse_space, as Go's own), a PNG of bytes allocated per interval.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from lumos.errors import LumosError, UsageError
from lumos.golang.gobinary import open_go_binary
from lumos.golang.heapsample import DEFAULT_RATE, heap_probes, hide_runtime, scale
from lumos.golang.typenames import allocation_type
from lumos.output.plot import plot_series
from lumos.output.stackout import add_output_arguments, write_outputs
from lumos.output.table import print_table
from lumos.output.units import format_bytes
from lumos.probes.allocs import AllocMaps, alloc_program
from lumos.probes.attach import attach_sites
from lumos.probes.stackcount import read_counts
from lumos.session.args import add_target_arguments, add_timing_arguments, check_at_least
from lumos.session.session import Session
from lumos.targets.entry import open_go
from lumos.targets.plan import plan
from lumos.targets.procmem import read_go_int
from lumos.targets.stacks import Sample, StackSymbolizer, merge_samples

HELP = "Go heap allocations with stacks (pprof heap profile, plot over time)"
EXAMPLES = """\
  lumos allocs -p 1234 -d 30 --pprof heap.pb.gz   # sampled like Go's heap profile
  lumos allocs -p 1234 --plot mem.png -i 1 -d 60   # bytes/s per top function, as a PNG
  lumos allocs -c './server' --every -d 5          # every allocation and its type, exact
  lumos allocs ./server --svg allocs.svg           # every process running ./server
"""

SAMPLED = ["runtime.mProf_Malloc", "runtime.setprofilebucket", "runtime.mProf_Free"]
EVERY = ["runtime.mallocgc"]


def add_arguments(p) -> None:
    add_target_arguments(p)
    add_timing_arguments(p)
    add_output_arguments(p)
    p.add_argument("--every", action="store_true", help="probe runtime.mallocgc: every "
                   "allocation, exact counts, a uprobe hit each (measure first)")
    p.add_argument("--plot", metavar="FILE.png", help="draw bytes allocated per interval "
                   "(-i, default 1 s) per top allocating function")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="functions in the table and the plot (default 10)")
    p.add_argument("--rate", type=int, metavar="BYTES", help="the program's MemProfileRate "
                   "(default: read from the process, else 524288)")


def run(args) -> int:
    check_at_least("--rate", args.rate, 1)
    with Session(args, need_patterns=False) as s:
        target = s.target
        if target.patterns:
            raise UsageError(f"allocs takes no patterns ({target.patterns[0]!r})")
        gobin = open_go(target.exe) if target.exe else None
        if gobin is None:
            raise UsageError(f"{target.exe}: not a Go program (allocs reads Go's allocator)")
        hp = heap_probes(gobin.minor)
        names = EVERY if args.every else SAMPLED
        planned = {f.name: f for f in plan(target, names, strlen=0, want_results=False)}
        missing = [n for n in names if n not in planned]
        if missing:
            raise UsageError(f"{target.exe}: no {', '.join(missing)} to probe")
        sites = [dataclasses.replace(planned[n].entry, variant=i) for i, n in enumerate(names)]
        maps = AllocMaps(s.stack, track_frees=not args.every)
        size_reg = hp.mallocgc_size_reg if args.every else hp.malloc_size_reg
        type_reg = hp.mallocgc_type_reg if args.every else None
        attached = attach_sites(lambda at: alloc_program(
            maps, size_reg, hp.bucket_reg_setbucket, hp.bucket_reg_free, target.pid, at,
            type_reg), sites, target.pid, s.stack)
        notes = []
        rate = 1 if args.every else args.rate
        runner = s.start()
        sym = StackSymbolizer(target.exe)
        sym.watch(target.pid)
        if rate is None:
            rate = read_go_int(target, "runtime.MemProfileRate")
            if rate is None:
                rate = DEFAULT_RATE
                notes.append(f"MemProfileRate not readable (stripped binary?): assuming "
                             f"{DEFAULT_RATE} (--rate sets it)")
        what = "every allocation (runtime.mallocgc)" if args.every else \
            f"sampled allocations (runtime.mProf_Malloc, 1 per {format_bytes(rate)})"
        s.banner(what, notes, attached.skipped)
        types = TypeResolver(sym) if args.every else None
        series = Series()
        step = args.interval or (1.0 if args.plot else None)
        started = time.time_ns()
        for final in runner.ticks(step):
            samples = heap_samples(read_counts(maps.stacks), sym, rate, not args.every, types)
            series.add(samples)
            if args.interval and not final:
                report_interval(series, args)
        report(samples, args)
        write_outputs(args, samples, sample_types(args.every), value_index=1,
                      title="lumos allocs: bytes allocated", count_name="bytes",
                      colors="mem", period_type=("space", "bytes"), period=rate,
                      duration_ns=time.time_ns() - started, time_ns=started,
                      default_sample_type="alloc_space")
        if args.plot:
            top = series.top(args.top)
            plot_series(args.plot, series.times, {n: series.per_interval(n) for n in top},
                        f"lumos allocs: bytes allocated per {step:g} s interval")
            print(f"lumos: wrote {args.plot}", file=sys.stderr)
    return 0


def sample_types(every: bool) -> list[tuple[str, str]]:
    types = [("alloc_objects", "count"), ("alloc_space", "bytes")]
    return types if every else types + [("inuse_objects", "count"), ("inuse_space", "bytes")]


def heap_samples(counts, sym: StackSymbolizer, rate: int, inuse: bool,
                 types: TypeResolver | None = None) -> list[Sample]:
    """Samples with Go's heap profile values: [alloc_objects, alloc_space(, inuse_*)],
    each (stack, size) scaled like runtime/pprof; allocator frames hidden like it does.
    Labels: bytes (the size asked for) and, with types, type (what was allocated)."""
    out = []
    for c in counts:
        objs, space = scale(c.count, c.sum, rate)
        values = [round(objs), round(space)]
        if inuse:
            live = max(c.count - c.frees, 0)
            iobjs, ispace = scale(live, live * c.aux, rate)
            values += [round(iobjs), round(ispace)]
        locs = hide_runtime(sym.locations(c.pid, c.user))
        labels = {"bytes": str(c.aux)}
        if types is not None:
            labels["type"] = types.name(c.pid, c.aux2, c.aux)
        out.append(Sample(locs, values, c.pid, c.comm, labels))
    return merge_samples(out)


class TypeResolver:
    """mallocgc's typ (a runtime address) -> a type name, through the process's mappings
    (a PIE loads anywhere) and the mapped binary's type data."""

    def __init__(self, sym: StackSymbolizer):
        self.sym = sym
        self._names: dict[str, object] = {}

    def name(self, pid: int, typ: int, size: int) -> str:
        if typ == 0:
            return allocation_type(None, 0, size)
        where = self.sym.symbolizer(pid).vaddr_in_file(typ)
        if where is None:
            return "?"
        path, vaddr = where
        if path not in self._names:
            try:
                self._names[path] = open_go_binary(path).type_names()
            except LumosError:
                self._names[path] = None
        names = self._names[path]
        return allocation_type(names, vaddr if names is not None else None, size)


def top_function(smp: Sample) -> str:
    """The allocating function: the innermost frame once the allocator is hidden."""
    return smp.locations[0].frames[0].function if smp.locations else "?"


class Series:
    """Cumulative alloc_space per top function at each tick; per-interval differences."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.times: list[float] = []
        self.totals: list[dict[str, int]] = []

    def add(self, samples: list[Sample]) -> None:
        per: dict[str, int] = {}
        for smp in samples:
            per[top_function(smp)] = per.get(top_function(smp), 0) + smp.values[1]
        self.times.append(round(time.monotonic() - self.t0, 3))
        self.totals.append(per)

    def top(self, n: int) -> list[str]:
        last = self.totals[-1] if self.totals else {}
        return sorted(last, key=lambda k: -last[k])[:n]

    def per_interval(self, name: str) -> list[float]:
        prev, out = 0, []
        for per in self.totals:
            cur = per.get(name, 0)
            out.append(float(cur - prev))
            prev = cur
        return out


def report_interval(series: Series, args) -> None:
    names = series.top(args.top)
    rows = [(n, format_bytes(series.per_interval(n)[-1])) for n in names]
    print(time.strftime("\n[%H:%M:%S]"))
    print_table(["FUNC", "ALLOCATED"], rows, sys.stdout, align="lr", min_width=(40, 10))


def report(samples: list[Sample], args) -> None:
    """The top allocating functions (with --every: per function and type)."""
    per: dict[tuple[str, str], list[int]] = {}
    for smp in samples:
        key = (top_function(smp), smp.labels.get("type", ""))
        acc = per.setdefault(key, [0] * len(smp.values))
        for i, v in enumerate(smp.values):
            acc[i] += v
    names = sorted(per, key=lambda k: -per[k][1])[:args.top]
    if args.json:
        for n in names:
            obj = {"func": n[0], "alloc_objects": per[n][0], "alloc_space": per[n][1]}
            if args.every:
                obj["type"] = n[1]
            if len(per[n]) > 2:
                obj.update(inuse_objects=per[n][2], inuse_space=per[n][3])
            sys.stdout.write(json.dumps(obj) + "\n")
        return
    head = ["FUNC"] + (["TYPE"] if args.every else []) + ["ALLOC_OBJECTS", "ALLOC_SPACE"]
    rows = []
    for n in names:
        v = per[n]
        row = [n[0]] + ([n[1]] if args.every else []) + [str(v[0]), format_bytes(v[1])]
        if len(v) > 2:
            row += [str(v[2]), format_bytes(v[3])]
        rows.append(tuple(row))
    if not args.every:
        head += ["INUSE_OBJECTS", "INUSE_SPACE"]
    nleft = 2 if args.every else 1
    print_table(head, rows, sys.stdout, align="l" * nleft + "r" * (len(head) - nleft),
                min_width=(40,) + (16,) * (nleft - 1) + (12,) * (len(head) - nleft))
