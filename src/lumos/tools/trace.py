"""trace: one line per call with decoded Go arguments (and return values), like BCC's trace."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import replace

from lumos.bpf.maps import create_map, hash_spec
from lumos.errors import UsageError
from lumos.golang.inline import SourceFrame
from lumos.output.calllines import CallLines
from lumos.output.clock import Clock, time_offset
from lumos.output.govalues import format_values, json_value
from lumos.output.jsonl import write_json
from lumos.output.stackout import format_stack_frame
from lumos.output.units import plural
from lumos.output.writeall import write_all
from lumos.probes.capture import shape_of
from lumos.probes.decode import Boxed, Decoder
from lumos.probes.eventprog import Variant, attach_events
from lumos.probes.filter import check_filter, lookup, names_in, parse_filter
from lumos.probes.staging import StagedChannel
from lumos.probes.stream import Stream, run_stream
from lumos.session.args import (
    add_ring_argument,
    add_strlen_argument,
    add_target_arguments,
    add_timing_arguments,
    ring_bytes,
)
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.ifaces import IfaceResolver
from lumos.targets.plan import PlannedFunction, dropped_note, plan
from lumos.targets.symbolize import Symbolizer

HELP = "print each call of Go (or C) functions with decoded arguments and return values"
EXAMPLES = """\
  lumos trace ./goserver 'main.*'                       # every call, arguments decoded
  lumos trace -p 1234 main.prepareAnswer --ret          # with return values
  lumos trace -p 1234 main.prepareAnswer --filter 'year == 2021 && name != ""'
  lumos trace -p 1234 'main.handler' --stack            # with the user stack
  lumos trace -p 1234 'parser.ParseExpr(input string)'  # stripped binary: give the signature
  lumos trace -c './app' 'main.*' --json > calls.jsonl  # JSON lines for scripts
  lumos trace -p 1234 'usdt:python:function__entry' --str 0,1  # USDT probe arguments
"""


MAX_ELEMS_DEFAULT = 8   # a slice's elements read per call (each string within --strlen)
MAX_ELEMS = 64          # unrolled reads per []string in the program: keep it small
MAX_OPEN_CALLS = 65536  # with --filter --ret: accepted calls awaiting their RET (an LRU)


def add_arguments(p) -> None:
    add_target_arguments(p)
    add_timing_arguments(p, interval=False)
    p.add_argument("--ret", action="store_true", help="also print return values (at every RET)")
    p.add_argument("--filter", metavar="EXPR",
                   help="only calls whose arguments satisfy EXPR (evaluated in the kernel): "
                        "year == 2021, name != \"x\", a > 1 && (b == 2 || c)")
    add_strlen_argument(p, 64)
    p.add_argument("--max-elems", type=int, default=MAX_ELEMS_DEFAULT, metavar="N",
                   help=f"elements of each slice of numbers, bools or strings to show "
                        f"(default {MAX_ELEMS_DEFAULT}, at most {MAX_ELEMS}; 0: only len "
                        f"and cap; more are counted as ...(+N))")
    p.add_argument("--stack", action="store_true", help="print the user stack of each call")
    add_ring_argument(p)
    p.add_argument("--str", metavar="N,N", help="usdt: probes: print these arguments "
                   "(arg numbers) as the C strings they point to")
    p.add_argument("--semaphores", choices=("kernel", "mem"), default="kernel",
                   help="usdt: probes: set semaphores by the kernel's ref_ctr_offset "
                        "(default) or by writing /proc/PID/mem (needs -p)")


def run(args) -> int:
    if any(str(a).startswith("usdt:") for a in args.args or ()):  # USDT: its own program
        from lumos.tools.usdt_trace import run as run_usdt
        return run_usdt(args)
    ring = ring_bytes(args)  # checked before anything is attached
    if not 0 <= args.max_elems <= MAX_ELEMS:
        raise UsageError(f"--max-elems must be between 0 and {MAX_ELEMS}")
    expr = parse_filter(args.filter) if args.filter is not None else None
    with Session(args) as s:
        target = s.target
        unprobeable: list[str] = []
        functions = _apply_filter(plan(target, target.patterns, args.strlen,
                                       dropped=unprobeable, max_elems=args.max_elems), expr)
        sites, variants, meta = build_variants(functions, expr, args.ret, args.stack)
        channel = StagedChannel(ring).open(s.stack)
        pairs = None
        if expr is not None and args.ret:
            pairs = s.enter(create_map(hash_spec("lumos_pairs", 16, 8, MAX_OPEN_CALLS,
                                                 lru=True)))
        probes = s.enter(ExitStack())  # closed first at the end: no records race the drain
        record_size, attached = attach_events(variants, sites, channel, target.pid,
                                              "lumos_trace", probes, pairs)
        printer = Printer(functions, sites, variants, meta, args, target)
        s.banner(f"{plural(len(functions), 'function')} ({plural(len(sites), 'site')})",
                 [n for f in functions for n in f.notes]
                 + dropped_note(unprobeable, "no instruction a uprobe can sit on"),
                 [x for a in attached for x in a.skipped])
        if not args.json:
            printer.header()
        runner = s.start()
        # interface values are decoded by type per event: the one-at-a-time printer too
        boxed = printer.ifaces is not None and any(c.boxed for v in variants
                                                   for c in v.captures)
        if args.stack or boxed:  # symbolizing stacks is per event: the one-at-a-time printer
            if target.launched and args.stack:
                printer.symbolizer(target.pid).use_maps(target.launched.maps)
            if target.launched and boxed:  # a PIE's type words need its maps
                printer.ifaces.use_maps(target.pid, target.launched.maps)
            stream = run_stream(channel, runner, printer.handle, record_size, out=sys.stdout,
                                detach=probes.close)
        else:
            stream = _stream_lines(channel, runner, record_size, printer, probes.close)
        report_lost(stream, args.json)
    return 0


def _stream_lines(channel, runner, record_size: int, printer, detach) -> Stream:
    """Every record decoded and written a batch at a time (output/calllines.py)."""
    lines = CallLines([printer.functions[fi].name for fi, _ in printer.meta],
                      [k < 0 for _, k in printer.meta], [s.variant for s in printer.sites],
                      printer.variants, printer.site_captures, printer.args.json, printer.go,
                      printer.offset)
    stream = Stream(channel, record_size)
    stream.run(runner, lambda batch: write_all(sys.stdout, lines.lines(batch)),
               flush=sys.stdout.flush, detach=detach)
    return stream


def _apply_filter(functions: list[PlannedFunction], expr) -> list[PlannedFunction]:
    """Keep the functions that have every argument the filter names; check the rest."""
    if expr is None:
        return functions
    wanted = names_in(expr)
    caps = {f.name: {c.name: c for c in f.args} for f in functions}
    def has(f, n: str) -> bool:  # the argument, or a struct whose parts are captured
        return lookup(caps[f.name], n) is not None or any(
            k == n or k.startswith(n + ".") for k in caps[f.name])

    kept = [f for f in functions if all(has(f, n) for n in wanted)]
    if not kept:
        raise UsageError(f"--filter: no traced function has argument(s) "
                         f"{', '.join(sorted(wanted))}")
    dropped = [f.name for f in functions if f not in kept]
    if dropped:  # never silently: say which matches the filter left out
        more = f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""
        print(f"lumos: note: --filter names {', '.join(sorted(wanted))}: not tracing "
              f"{', '.join(dropped[:5])}{more} (no such argument)", file=sys.stderr)
    for f in kept:
        check_filter(expr, {c.name: c for c in f.args}, f.name)
    return kept


NAMED_UP_TO = 64  # functions whose variants keep argument names (see build_variants)


def build_variants(functions, expr, want_ret: bool, user_stack: bool):
    """Sites and the deduplicated variants they run; meta[site] = (function, 'entry'|exit#)."""
    variants: list[Variant] = []
    index: dict[Variant, int] = {}
    sites, meta = [], []

    def vid(v: Variant) -> int:
        if v not in index:
            index[v] = len(variants)
            variants.append(v)
        return index[v]

    for fi, f in enumerate(functions):
        # With a filter, returns are sent only for the calls it accepted (paired in the
        # kernel by goroutine and frame). Otherwise no frame is read: one user read less.
        paired = expr is not None and want_ret
        # the kernel side needs no names (only a filter does): at package scale one body
        # per shape; a few functions keep their names, for --dump-prog listings
        named = expr is not None or len(functions) <= NAMED_UP_TO
        args = f.args if named else shape_of(f.args)
        entry = Variant("entry", args, expr, f.args if expr else (), f.goroutine, user_stack,
                        f.entry_sp_delta, frame=False, pairing="entry" if paired else "")
        sites.append(_with_variant(f.entry, vid(entry)))
        meta.append((fi, -1))
        if want_ret:
            for k, site in enumerate(f.exits):
                results = f.results[k] if k < len(f.results) else ()
                v = Variant("return", results if named else shape_of(results), None, (),
                            f.goroutine, frame=False, pairing="exit" if paired else "",
                            sp_delta=-8 if site.retprobe else 0)  # uretprobe: RA popped
                sites.append(_with_variant(site, vid(v)))
                meta.append((fi, k))
    return sites, variants, meta


def _with_variant(site, variant: int):
    return replace(site, variant=variant)


class Printer:
    def __init__(self, functions, sites, variants, meta, args, target):
        self.functions = functions
        self.meta = meta
        self.variants = variants
        self.sites = sites
        self.decoder = Decoder(sites, variants)
        self.args = args
        self.out = sys.stdout
        self.offset = time_offset()
        self.clock = Clock(self.offset)
        self.exe = target.exe
        self.symbolizers: dict[int, Symbolizer] = {}  # per process: PIEs load anywhere
        self.go = any(f.goroutine is not None for f in functions)
        # what each site's values are called and typed (the variants carry only shapes)
        self.site_captures = [functions[fi].args if k < 0 else
                              (functions[fi].results[k] if k < len(functions[fi].results)
                               else ()) for fi, k in meta]
        self.ifaces = IfaceResolver(target.exe) if target.exe else None

    def symbolizer(self, pid: int) -> Symbolizer:
        if pid not in self.symbolizers:
            self.symbolizers[pid] = Symbolizer(pid, self.exe)
        return self.symbolizers[pid]

    def stack_frames(self, ev) -> list[tuple[SourceFrame, str]]:
        """(source frame, 'function+offset' of its address) per frame, leaf first: the
        inlined calls at an address (innermost first) before the function they sit in.
        Every address but the first is a return address: its line is the call's."""
        sym = self.symbolizer(ev.pid)
        return [(fr, sym.describe(addr)) for i, addr in enumerate(ev.stack)
                for fr in sym.frames(addr, return_address=i > 0)]

    def header(self) -> None:
        goid = f"{'GOID':>7} " if self.go else ""
        self.out.write(f"{'TIME':<15} {'PID':>7} {'TID':>7} {goid}CALL\n")

    def handle(self, rec) -> None:
        ev = self.decoder.decode(rec)
        if self.ifaces and any(isinstance(v, Boxed) for v in ev.values):  # by value
            ev.values = [self.ifaces.resolve(v, ev.pid) or v if isinstance(v, Boxed) else v
                         for v in ev.values]
        fi, k = self.meta[ev.site]
        f = self.functions[fi]
        caps = self.site_captures[ev.site]
        if self.args.json:
            self._json(ev, f, k, caps)
        else:
            self._text(ev, f, k, caps)

    def _text(self, ev, f, k, caps) -> None:
        stamp = self.clock.stamp(ev.ts_ns)
        goid = f"{ev.goid:>7} " if self.go else ""
        vals = format_values(caps, ev.values)
        if k < 0:
            call = f"{f.name}({', '.join(vals)})"
        else:
            shown = [v.split("=", 1)[1] if v.startswith("~r") else v for v in vals]
            call = f"{f.name} => " + (shown[0] if len(shown) == 1 else f"({', '.join(shown)})")
        self.out.write(f"{stamp:<15} {ev.pid:>7} {ev.tid:>7} {goid}{call}\n")
        if ev.stack is not None:
            for fr, at in self.stack_frames(ev):
                self.out.write(f"{'':>32}{format_stack_frame(fr, at)}\n")

    def _json(self, ev, f, k, caps) -> None:
        obj = {"time": float(f"{ev.ts_ns / 1e9 + self.offset:.6f}"), "pid": ev.pid, "tid": ev.tid,
               "goid": ev.goid, "func": f.name, "event": "call" if k < 0 else "return"}
        obj["args" if k < 0 else "results"] = {c.name: json_value(c, v)
                                               for c, v in zip(caps, ev.values, strict=True)}
        if ev.stack is not None:
            obj["stack"] = [{"function": fr.function, "file": fr.file, "line": fr.line,
                             "inlined": fr.inlined, "at": at}
                            for fr, at in self.stack_frames(ev)]
        write_json(obj, self.out, flush=False)
