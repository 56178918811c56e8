"""runqlat: run-queue latency histograms, how long runnable tasks wait for a CPU (BCC's
runqlat): the programs the kernel does not give time to execute.

Built in the kernel from sched_wakeup, sched_wakeup_new and sched_switch (raw
tracepoints, task_struct read with vmlinux BTF offsets); nothing is sent per event.
"""

from __future__ import annotations

import sys
import time

from lumos.errors import UsageError
from lumos.output.hist import format_log2_hist, slot_range
from lumos.output.jsonl import write_json
from lumos.probes.runqlat import MAX_HISTS, RunqOptions, RunqProbe
from lumos.session.args import add_timing_arguments
from lumos.session.kernel import (
    add_kernel_intervals,
    kernel_target,
    report_loop,
    resolve_intervals,
)
from lumos.session.session import Session

HELP = "run-queue (scheduler) latency histograms: time spent waiting for a CPU"
EXAMPLES = """\
  lumos runqlat                 # one histogram of every task's waits, at Ctrl-C
  lumos runqlat 1 10            # print every second, 10 times
  lumos runqlat -mT 1           # every second, in milliseconds, with the time
  lumos runqlat -P              # one histogram per process
  lumos runqlat -L              # one histogram per thread
  lumos runqlat -p 185          # process 185 only
  lumos runqlat -P -d 5 --json  # JSON lines, 5 seconds
"""


def add_arguments(p) -> None:
    p.add_argument("-p", "--pid", type=int, help="only this process")
    p.add_argument("-T", "--timestamp", action="store_true", help="print the time of each report")
    p.add_argument("-m", "--milliseconds", action="store_true", help="histograms in msecs")
    p.add_argument("-P", "--pids", action="store_true", help="one histogram per process")
    p.add_argument("-L", "--tids", action="store_true", help="one histogram per thread")
    add_timing_arguments(p)
    add_kernel_intervals(p)


def run(args) -> int:
    resolve_intervals(args)
    if args.pids and args.tids:
        raise UsageError("-P and -L cannot be combined")
    unit = "msecs" if args.milliseconds else "usecs"
    opts = RunqOptions(tgid=args.pid, per="process" if args.pids else
                       "thread" if args.tids else "",
                       unit_ns=1_000_000 if args.milliseconds else 1000)
    with Session(args, target=kernel_target(args)) as s:
        probe = RunqProbe(opts).attach(s.stack)
        s.banner("run queue latency")
        report_loop(s, lambda: _take(probe, args.interval),
                    lambda hists, final: report(hists, unit, args))
        if probe.unrecorded:
            print(f"lumos: {probe.unrecorded} waits not counted: more than "
                  f"{MAX_HISTS} histograms (try -P instead of -L, or -p)", file=sys.stderr)
    return 0


def _take(probe: RunqProbe, interval: float | None):
    hists = probe.read()
    if interval:
        probe.clear()
    return hists


def report(hists, unit: str, args) -> None:
    out = sys.stdout
    label = "pid" if args.pids else "tid" if args.tids else ""
    if args.json:
        now = round(time.time(), 6)
        for key, h in sorted(hists.items()):
            last = max((i for i, c in enumerate(h.slots) if c), default=-1)
            obj = {"time": now, "unit": unit, "count": h.count, "sum": h.sum,
                   "buckets": [{"low": slot_range(i)[0], "high": slot_range(i)[1],
                                "count": h.slots[i]} for i in range(last + 1)]}
            if label:
                obj.update({label: key, "comm": h.comm})
            write_json(obj, out)
        return
    if args.interval:
        print(file=out)
    if args.timestamp:
        print(f"{time.strftime('%H:%M:%S'):<8}", file=out)
    if not hists:
        print("(no run-queue waits seen)", file=out)
    for key, h in sorted(hists.items()):
        if label:
            print(f"\n{label} = {key} {h.comm}", file=out)
        print(format_log2_hist(h.slots, unit), file=out)
        avg = h.sum / h.count if h.count else 0
        print(f"avg = {avg:.0f} {unit}, total: {h.sum} {unit}, count: {h.count}", file=out)
    out.flush()
