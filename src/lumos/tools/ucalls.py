"""ucalls: calls per Python method, and with -L the time spent in them (BCC's ucalls).

The probes are uflow's (binary/cpython.py: uprobes in the eval loop, so builds without
USDT work too), but nothing is sent per call: the kernel counts calls and time per code
object (probes/pycalls.py) and sends each method's name once. With --mode usdt (BCC's
probes), every function__entry/function__return event comes up the ring as in uflow
and is counted here instead; on CPython 3.11 entries of Python-to-Python calls are
missing there (gh-98894), so calls are counted at their returns, and -L times only
the calls whose entry fired.

Output is BCC's: METHOD (file.qualified_name) and # CALLS, with -L TIME (us) (or ms
with -m), sorted by the last column, the top -T N only; lumos adds AVG and --json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

from lumos.binary.cpython import load_interpreter
from lumos.errors import TargetError, UsageError
from lumos.output.jsonl import write_json
from lumos.probes.channel import EventChannel
from lumos.probes.pycalls import KIND_NAME, PyCallStats
from lumos.probes.pyframe import decode_unicode
from lumos.session.session import Session
from lumos.targets.pyframes import frame_sites
from lumos.targets.target import resolve_target

HELP = "calls (and -L time) per Python method (BCC's ucalls), counted in the kernel"
EXAMPLES = """\
  lumos ucalls -l python 1234              # calls per method until Ctrl-C
  lumos ucalls -l python 1234 -L -m        # and total/average time, in milliseconds
  lumos ucalls -l python 1234 -T 10 -i 5   # the top 10 methods every 5 seconds
  lumos ucalls -l python -c 'python3 app.py' -L   # run a script, count its calls
  lumos ucalls -l python 1234 --mode usdt  # BCC's USDT probes (python --with-dtrace)
"""


def add_arguments(p) -> None:
    p.add_argument("-l", "--language", choices=("python",), default="python")
    p.add_argument("pid", nargs="?", type=int, help="the process to trace")
    p.add_argument("-c", "--command", metavar="CMD", help="start CMD and trace it")
    p.add_argument("-L", "--latency", action="store_true",
                   help="also the total and average time per method")
    p.add_argument("-m", "--milliseconds", action="store_true",
                   help="times in milliseconds (default microseconds)")
    p.add_argument("-T", "--top", type=int, metavar="N", help="only the top N methods")
    p.add_argument("--mode", choices=("auto", "uprobe", "usdt"), default="auto",
                   help="how calls are seen (default: uprobes unless only USDT works)")
    p.add_argument("-d", "--duration", type=float, metavar="SECONDS")
    p.add_argument("-i", "--interval", type=float, metavar="SECONDS",
                   help="print (and reset) every this many seconds")
    p.add_argument("--json", action="store_true", help="write JSON lines")


def run(args) -> int:
    if args.pid is None and not args.command:
        raise UsageError("give the PID of a Python process (or -c CMD)")
    if args.top is not None and args.top < 1:
        raise UsageError("-T must be at least 1")
    report = Report(args)
    if args.mode != "usdt":
        ns = argparse.Namespace(args=[], pid=args.pid, command=args.command,
                                duration=args.duration, interval=args.interval,
                                json=args.json)
        target = resolve_target(ns, need_patterns=False)
        try:
            interp = load_interpreter(target.exe, None if target.launched else target.pid)
        except TargetError:
            if target.launched:
                target.launched.close()
            if args.mode == "uprobe":
                raise
            interp = None  # only USDT can work: uflow's stream, counted here
        if interp is not None:
            with Session(ns, need_patterns=False, target=target) as s:
                _run_kernel(args, s, interp, report)
            return getattr(ns, "_command_status", 0)
    return _run_usdt(args, report)


def _run_kernel(args, s: Session, interp, report: Report) -> None:
    channel = EventChannel(1 << 20, "lumos_pynames").open(s.stack)
    variants, sites = frame_sites(interp)
    stats = PyCallStats(variants, channel, interp.layout, s.target.pid,
                        args.latency).attach(sites, s.stack)
    print(f"lumos ucalls: mode: uprobes on {interp.path}:_PyEval_EvalFrameDefault "
          f"(CPython {interp.version[0]}.{interp.version[1]}, "
          f"{sum(map(stats.wanted, sites))} sites, "
          f"offsets from {interp.source}); counted in the kernel", file=sys.stderr)
    s.banner("calls of Python methods", skipped=stats.attached.skipped)
    names: dict[tuple[int, int, int], str] = {}
    unpack = stats.record.struct.unpack_from
    layout = interp.layout

    def on_name(raw: bytes) -> None:
        (_ts, _pid, _tid, _cpu, _site, _frame, code, _line, kind, fraw, nraw, fptr,
         nptr) = unpack(raw)
        if kind == KIND_NAME and code:
            file = decode_unicode(fraw, layout)[0]
            name = decode_unicode(nraw, layout)[0]
            names[(code, fptr, nptr)] = f"{file}.{name}" if file else name

    def read():
        channel.reader.drain(on_name)
        data = stats.read()
        channel.reader.drain(on_name)   # names of code objects inserted meanwhile
        rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for key, (n, total, timed) in data.items():
            row = rows[names.get(key, f"? (code object {key[0]:#x})")]
            row[0] += n
            row[1] += total
            row[2] += timed
        return rows

    s.report_intervals(read, stats.clear, report.print)
    if stats.overflowed:
        print(f"lumos: {stats.overflowed} calls found no room in the method map "
              f"({stats.max_methods} methods)", file=sys.stderr)
    lost = channel.lost()
    if lost:
        print(f"lumos: {lost} method names lost (ring full); their calls show as '?'",
              file=sys.stderr)


def _run_usdt(args, report: Report) -> int:
    """USDT probes: every entry and return comes up the ring; counted here."""
    from lumos.tools.uflow import trace_python
    if args.interval:
        raise UsageError("-i: with --mode usdt ucalls reports once, at the end")
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    open_: dict[int, list[tuple[str, int]]] = defaultdict(list)   # tid -> (method, ts)

    def handle(c) -> None:
        method = f"{c.file}.{c.name}" if c.file else c.name
        stack = open_[c.tid]
        if c.entry:
            stack.append((method, c.ts_ns))
            return
        row = rows[method]
        row[0] += 1
        while stack:
            m, ts = stack.pop()
            if m == method:
                row[1] += c.ts_ns - ts
                row[2] += 1
                break

    trace_python(args, handle, "calls", on_end=lambda: report.print(rows), tool="ucalls")
    return 0


class Report:
    def __init__(self, args):
        self.args = args
        self.unit = "ms" if args.milliseconds else "us"
        self.div = 1e6 if args.milliseconds else 1e3

    def print(self, rows: dict[str, list[int]]) -> None:
        a, out = self.args, sys.stdout
        order = sorted(rows.items(), key=lambda kv: (kv[1][1] if a.latency else kv[1][0],
                                                     kv[0]))
        order = [kv for kv in order if kv[1][0]]
        if a.top:
            order = order[-a.top:]
        if a.json:
            now = round(time.time(), 6)
            for method, (n, total, timed) in order:
                obj = {"time": now, "method": method, "calls": n}
                if a.latency:
                    obj.update(total_ns=total, timed=timed,
                               avg_ns=round(total / timed) if timed else None)
                write_json(obj, out)
            out.flush()
            return
        out.write("\n")
        if a.latency:
            out.write(f"{'METHOD':<50} {'# CALLS':>8} {f'TIME ({self.unit})':>10} "
                      f"{f'AVG ({self.unit})':>10}\n")
        else:
            out.write(f"{'METHOD':<50} {'# CALLS':>8}\n")
        for method, (n, total, timed) in order:
            if a.latency:
                avg = total / timed / self.div if timed else 0.0
                out.write(f"{method:<50} {n:>8} {total / self.div:>10.2f} {avg:>10.2f}\n")
            else:
                out.write(f"{method:<50} {n:>8}\n")
        out.flush()
