"""execsnoop: every exec() with its whole command line and result (BCC's execsnoop).

Failed execs are shown too, with RET the negative errno (BCC shows them only with -x;
here -x shows only them, as opensnoop's -x does). An exec from a thread other than the
main one is followed through the kernel's change of thread id (libbpf-tools loses it).
"""

from __future__ import annotations

import errno
import re
import sys
import time

from lumos.errors import UsageError
from lumos.output.clock import Clock, time_offset
from lumos.output.cmdline import format_args
from lumos.output.jsonl import write_json
from lumos.probes.channel import EventChannel
from lumos.probes.execsnoop import EXEC_EVENT, MAX_ARGS, ExecFilter, ExecProbe, decode_exec
from lumos.probes.stream import Stream
from lumos.session.args import add_ring_argument, add_timing_arguments, ring_bytes
from lumos.session.kernel import comm_needle, kernel_target, parse_uid
from lumos.session.report import report_lost
from lumos.session.session import Session

HELP = "trace exec() calls: command lines (full argv), parent, result, failures too"
EXAMPLES = """\
  lumos execsnoop                    # every exec on the system, failed ones too
  lumos execsnoop -x                 # only failed execs (RET is -errno)
  lumos execsnoop -T                 # with a time column (HH:MM:SS)
  lumos execsnoop -t                 # with seconds since the start
  lumos execsnoop -n python          # only commands whose name contains "python"
  lumos execsnoop -l secret          # only command lines containing "secret"
  lumos execsnoop -u 1000 -U         # only UID 1000, with a UID column
  lumos execsnoop -P 1234            # only children of PID 1234
  lumos execsnoop -q --max-args 60   # quoted arguments (shlex-splittable), up to 60
  lumos execsnoop --json -d 10       # JSON lines for 10 seconds
"""


def add_arguments(p) -> None:
    p.add_argument("-T", "--time", action="store_true",
                   help="include a time column (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true",
                   help="include seconds since the start")
    p.add_argument("-x", "--fails", action="store_true",
                   help="only failed execs (BCC's -x adds them; lumos always shows them)")
    p.add_argument("-u", "--uid", type=parse_uid, metavar="USER", help="only this UID")
    p.add_argument("-U", "--print-uid", action="store_true", help="print a UID column")
    p.add_argument("-q", "--quote", action="store_true",
                   help='put arguments in double quotes, " and \\ escaped')
    p.add_argument("-n", "--name", help="only commands whose name contains NAME (in-kernel)")
    p.add_argument("-l", "--line", help="only command lines containing LINE")
    p.add_argument("-P", "--ppid", type=int, help="only children of this PID")
    p.add_argument("--max-args", type=int, default=20, metavar="N",
                   help=f"arguments read at most (1-{MAX_ARGS}, default 20; more: ' ...')")
    add_ring_argument(p)
    add_timing_arguments(p, interval=False)


def run(args) -> int:
    if not 1 <= args.max_args <= MAX_ARGS:
        raise UsageError(f"--max-args must be between 1 and {MAX_ARGS}")
    filt = ExecFilter(uid=args.uid, ppid=args.ppid, failed_only=args.fails,
                      comm=comm_needle(args.name), max_args=args.max_args)
    out = sys.stdout
    with Session(args, target=kernel_target(args)) as s:
        channel = EventChannel(ring_bytes(args)).open(s.stack)
        probe = ExecProbe(channel, filt).attach(s.stack)
        s.banner("exec() (" + ", ".join(probe.syscalls) + ")", probe.notes)
        printer = Printer(args, out)
        if not args.json:
            printer.header()
        runner = s.start()
        printer.start_ns = time.monotonic_ns()
        stream = Stream(channel, EXEC_EVENT.size)
        stream.run(runner, printer.batch, flush=out.flush)
        report_lost(stream, args.json)
    return 0


class Printer:
    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.offset = time_offset()
        self.clock = Clock(self.offset)
        self.start_ns = 0
        self.line = re.compile(re.escape(args.line.encode())) if args.line else None

    def header(self) -> None:
        a, cols = self.args, ""
        if a.time:
            cols += f"{'TIME':<8} "
        if a.timestamp:
            cols += f"{'TIME(s)':<8} "
        if a.print_uid:
            cols += f"{'UID':<6} "
        self.out.write(cols + f"{'PCOMM':<16} {'PID':<6} {'PPID':<6} {'RET':>3} ARGS\n")

    def batch(self, batch) -> None:
        for rec in batch.records():
            ev = decode_exec(rec, self.args.max_args)
            if self.line is not None and not any(self.line.search(x)
                                                 for x in (ev.filename, *ev.args)):
                continue
            if self.args.json:
                self.json(ev)
            else:
                self.text(ev)

    def text(self, ev) -> None:
        a, cols = self.args, ""
        if a.time:
            cols += f"{self.clock.stamp(ev.ts_ns)[:8]:<8} "
        if a.timestamp:
            cols += f"{(ev.ts_ns - self.start_ns) / 1e9:<8.3f} "
        if a.print_uid:
            cols += f"{ev.uid:<6} "
        # BCC's ARGS: the filename, then argv[1:] (argv[0] is often just a name)
        if ev.filename:
            shown, cut = [ev.filename, *ev.args[1:]], [False, *ev.cut[1:]]
        else:
            shown, cut = ev.args, ev.cut
        argv = format_args(shown, cut, ev.more, a.quote)
        if ev.fault:
            argv += " [rest of argv unreadable]"
        self.out.write(cols + f"{ev.comm:<16} {ev.pid:<6} {ev.ppid:<6} {ev.ret:>3} {argv}\n")

    def json(self, ev) -> None:
        obj = {"time": round(ev.ts_ns / 1e9 + self.offset, 6), "pid": ev.pid, "tid": ev.tid,
               "ppid": ev.ppid, "uid": ev.uid, "comm": ev.comm, "ret": ev.ret,
               "errno": errno.errorcode.get(-ev.ret) if ev.ret < 0 else None,
               "filename": ev.filename.decode("utf-8", "backslashreplace"),
               "args": [x.decode("utf-8", "backslashreplace") for x in ev.args],
               "cut": [i for i, c in enumerate(ev.cut) if c], "more": ev.more,
               "fault": ev.fault, "complete": ev.complete,
               "syscall": "execveat" if ev.execveat else "execve"}
        write_json(obj, self.out, flush=False)
