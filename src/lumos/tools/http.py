"""http: every HTTP request a Go server handles (HTTP/1.x and HTTP/2), and with --client
the requests it sends, each tied to the server request it was made for.

Probes net/http.serverHandler.ServeHTTP (entry and every RET) and, with --client,
(*Transport).roundTrip and runtime.newproc1: a goroutine the handler starts (the
article's checkSite) carries its request along, so its client call shows which server
request it served. Duration is ServeHTTP's (the handler, the headers and body it wrote);
status and bytes are the response's. Summaries per route (method, path with ids folded)
from log2 histograms kept in the kernel: on Ctrl-C, at -d, or every -i seconds.
"""

from __future__ import annotations

import io
import math
import sys
import time

from lumos.errors import UsageError
from lumos.golang.typenames import TypeNames
from lumos.output.jsonl import write_json
from lumos.output.prometheus import add_prometheus_argument, serve_metrics
from lumos.output.red import Stats, fold_path, format_summary, summary_json
from lumos.output.redmetrics import red_metrics
from lumos.output.reqcolumns import ColumnWriter, write_all
from lumos.probes import reqrecord as rr
from lumos.probes.attach import attach_sites
from lumos.probes.channel import EventChannel
from lumos.probes.filter import check_filter, parse_filter
from lumos.probes.reqdecode import ReqDecoder, read_histograms, show_text
from lumos.probes.reqprog import HIST_KEYS, ReqProgram, open_request_maps, summary_left_out
from lumos.probes.stream import Stream
from lumos.session.args import MAX_SECONDS, add_target_arguments, add_timing_arguments
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.entry import open_go
from lumos.targets.reqsites import plan_requests
from lumos.targets.symbolize import Symbolizer

HELP = "HTTP requests a Go server handles (and sends, --client), with status and latency"
EXAMPLES = """\
  lumos http -p 1234                   # each request served: method, path, status, bytes, ms
  lumos http -p 1234 --client          # and each request it sends, with the one it served
  lumos http -p 1234 --slow 100        # only requests of 100 ms or more
  lumos http -p 1234 --slow 100 --stack   # with the Go stack of each slow call
  lumos http -p 1234 --filter 'status >= 500'   # only server errors
  lumos http -p 1234 -i 10 --quiet     # every 10 s: per-route count, errors, p50/p90/p99
  lumos http -c './server' --json      # JSON lines, summary at the end
  lumos http -p 1234 --quiet --prometheus 9464   # RED histograms at :9464/metrics
"""


def add_arguments(p) -> None:
    add_target_arguments(p, patterns=False)
    p.add_argument("target", nargs="?", metavar="BINARY", help="a Go binary (or -p/-c)")
    add_timing_arguments(p)
    add_request_arguments(p)
    p.add_argument("--client", action="store_true",
                   help="also print outgoing requests (http.Client, Transport)")


def add_request_arguments(p) -> None:
    p.add_argument("--slow", type=float, metavar="MS", default=0,
                   help="print only calls that took at least MS milliseconds (the "
                        "summary still counts all)")
    p.add_argument("--stack", action="store_true",
                   help="print the Go stack at each printed call's return (its callers)")
    p.add_argument("--filter", metavar="EXPR",
                   help="only print events matching EXPR over status, ms, method, path "
                        "(text, op, rows for sql): status >= 500 && method == \"POST\"")
    p.add_argument("--quiet", action="store_true", help="no per-event lines, summaries only")
    p.add_argument("--ring-mb", type=int, default=16, help="ring buffer MiB (default 16)")
    add_prometheus_argument(p)


def run(args) -> int:
    return run_requests(args, sql=False)


QUIET_NS = (1 << 63) - 1
# --filter fields: (kind, tools that have them)
FILTER_NAMES = {"status": ("int", "http"), "ms": ("int", "http sql"),
                "bytes": ("int", "http"), "method": ("string", "http sql"),
                "path": ("string", "http sql"), "text": ("string", "sql"),
                "op": ("string", "sql"), "rows": ("int", "sql")}


def run_requests(args, sql: bool) -> int:
    if not (math.isfinite(args.slow) and 0 <= args.slow <= MAX_SECONDS * 1000):
        raise UsageError(f"--slow must be a number of milliseconds >= 0 (at most "
                         f"{MAX_SECONDS * 1000}), not {args.slow:g}")
    if args.ring_mb < 1 or args.ring_mb & (args.ring_mb - 1):
        raise UsageError("--ring-mb must be a power of two")
    expr = _user_filter(args.filter, "sql" if sql else "http")
    args.args = [args.target] if args.target else []
    with Session(args, need_patterns=False) as s:
        target = s.target
        if target.exe is None:
            raise UsageError("give a Go binary, -p PID or -c CMD")
        client = getattr(args, "client", False)
        rplan = plan_requests(target, server=True, client=client, sql=sql)
        record = rr.SQL if sql else rr.HTTP
        maps = open_request_maps(s.stack)
        channel = EventChannel(args.ring_mb << 20, "lumos_requests").open(s.stack)
        # the SQL tool tracks server requests only to tie queries to them
        # --quiet: summaries only, so the kernel sends no record at all
        slow_ns = QUIET_NS if args.quiet else int(args.slow * 1e6)
        program = ReqProgram(rplan.variants, rplan.offsets, maps, channel, record,
                             target.pid, slow_ns, args.stack,
                             "lumos_sql" if sql else "lumos_http", emit_server=not sql)
        attached = attach_sites(program.build, rplan.sites, target.pid, s.stack)
        names = _TypeNamer(target)
        decoder = ReqDecoder(record, names, rplan.error_offsets,
                             rplan.offsets.err_strings, rplan.rows_word, args.stack)
        from lumos.output.reqlines import Printer
        printer = Printer(args, sql, names.symbolizer, expr)
        what = "SQL queries" if sql else "HTTP requests" + (" and client calls" if client
                                                            else "")
        # listening before the banner says we are tracing
        s.enter(serve_metrics(args, lambda: red_metrics(lambda: read_histograms(
            maps["hist"]))))
        s.banner(f"{what} ({len(rplan.sites)} sites)", rplan.notes, attached.skipped)
        printer.header()
        runner = s.start()
        if target.launched:
            names.symbolizer(target.pid).load_maps()
        summary = Summary(maps, sql, args.json, keep=bool(args.prometheus))
        stream = Stream(channel, record.size)

        # the numpy fast path for served requests (not with --stack or --filter)
        columns = (ColumnWriter(record, printer, decoder, sys.stdout)
                   if not sql and not args.stack and expr is None else None)

        lines = io.StringIO()   # a poll's lines, written at once (reqcolumns.write_all)
        printer.out = lines

        def on_batch(batch) -> None:
            if args.quiet:
                return
            if columns is not None:
                columns.add(batch)
                return
            for rec in batch.records():
                printer.event(decoder.decode(rec))

        def flush() -> None:
            if columns is not None:
                columns.flush()
            text = lines.getvalue()
            if text:
                lines.seek(0)
                lines.truncate()
                write_all(sys.stdout, text)
            sys.stdout.flush()

        def on_tick() -> None:
            flush()
            summary.report()

        stream.run(runner, on_batch, on_tick if args.interval else None, args.interval,
                   flush=flush)
        summary.report(final=True)
        report_lost(stream, args.json)
    return 0


def _user_filter(text, tool: str):
    """--filter over the fields of each event (evaluated on what the kernel sent)."""
    if text is None:
        return None
    expr = parse_filter(text)
    from lumos.probes.capture import Capture
    from lumos.probes.filter import names_in
    caps = {n: Capture(n, k, ()) for n, (k, tools) in FILTER_NAMES.items()
            if tool in tools.split()}
    unknown = sorted(names_in(expr) - set(caps))
    if unknown:
        raise UsageError(f"--filter: lumos {tool} events have no field "
                         f"{', '.join(unknown)} (fields: {', '.join(caps)})")
    check_filter(expr, caps, f"lumos {tool}")
    return expr


class _TypeNamer:
    """Runtime type pointer -> (name, kind): the process's load bias, then the binary's
    type data (golang.typenames)."""

    def __init__(self, target):
        self.exe = target.exe
        self._syms: dict[int, Symbolizer] = {}
        self._names = None
        self.pid = target.pid
        self._seen: dict[tuple[int | None, int], tuple[str, str] | None] = {}

    def symbolizer(self, pid: int | None) -> Symbolizer:
        pid = pid or self.pid
        if pid not in self._syms:
            self._syms[pid] = Symbolizer(pid, self.exe)
        return self._syms[pid]

    def __call__(self, ptr: int, pid: int | None = None):
        """Cached per (pid, pointer): a busy service sends the same few argument,
        error and result types in every record, and a lookup walks the maps and type data."""
        key = (pid or self.pid, ptr)
        found = self._seen.get(key, self)
        if found is self:
            found = self._seen[key] = self._lookup(ptr, pid)
            if len(self._seen) > 65536:   # type pointers of one binary are few: a bound
                self._seen.clear()
        return found

    def _lookup(self, ptr: int, pid: int | None):
        if self._names is None:
            gobin = open_go(self.exe)
            self._names = TypeNames(gobin)
        where = self.symbolizer(pid).vaddr_in_file(ptr)
        vaddr = where[1] if where else ptr
        t = self._names.lookup(vaddr)
        return (t.name, "pointer" if t.kind == "ptr" else t.kind) if t else None


class Summary:
    """Per-route (or per-query) RED tables from the kernel's histograms."""

    def __init__(self, maps, sql: bool, json_out: bool, keep: bool = False):
        self.maps, self.hist, self.sql, self.json = maps, maps["hist"], sql, json_out
        self.keep = keep   # --prometheus: never clear (its counters only grow)
        self.started = time.monotonic()

    def report(self, final: bool = False) -> None:
        now = time.monotonic()
        seconds = now - self.started
        buckets = read_histograms(self.hist)
        if not final and not self.keep:
            self.hist.clear()
            self.started = now
        groups: dict[str, dict[str, Stats]] = {}
        for b in buckets:
            if self.sql and b.kind not in (rr.QUERY, rr.EXEC):
                continue
            if not self.sql and b.kind not in (rr.SERVER, rr.CLIENT):
                continue
            title, name, err = _group(b)
            groups.setdefault(title, {}).setdefault(name, Stats()).add(
                b.slot, b.count, b.sum_ns, err)
        out = sys.stdout
        left_out = summary_left_out(self.maps)
        if left_out:
            print(f"lumos: {left_out} calls left out of the summary (more than {HIST_KEYS} "
                  "distinct routes or queries and latency buckets)", file=sys.stderr)
        if self.json:
            for title, g in groups.items():
                for obj in summary_json(g, title, seconds):
                    write_json(obj, out)
            out.flush()
            return
        if not groups:
            groups = {"queries" if self.sql else "requests served": {}}
        for title, g in sorted(groups.items(), key=lambda kv: kv[0] != "requests served"):
            column = {"requests served": "ROUTE", "client requests": "ROUTE"}.get(title,
                                                                              "QUERY")
            print("\n" + format_summary(title, column, g, seconds), file=out)
        out.flush()


def _group(b) -> tuple[str, str, bool]:
    if b.kind == rr.SERVER:
        return "requests served", f"{b.method} {fold_path(b.text)}", b.status >= 500
    if b.kind == rr.CLIENT:
        return ("client requests", f"{b.method} {fold_path(b.text)}",
                b.status == 0 or b.status >= 500)
    op = "query" if b.kind == rr.QUERY else "exec"
    return "queries", f"{op:<5} {b.text}", b.status != 0


__all__ = ["run", "run_requests", "show_text"]
