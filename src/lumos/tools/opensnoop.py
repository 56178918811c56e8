"""opensnoop: every open(), openat(), openat2() with its result (BCC's opensnoop).

A failed open prints FD -1 and ERR the errno, as BCC does. The filters (-p, -u, -n,
-x) run in the kernel, so what they drop costs no copy to user space.
"""

from __future__ import annotations

import errno
import os
import sys

from lumos.output.clock import Clock, time_offset
from lumos.output.cmdline import CUT, printable
from lumos.output.jsonl import write_json
from lumos.probes.channel import EventChannel
from lumos.probes.opensnoop import OPEN_EVENT, OpenFilter, OpenProbe, decode_open
from lumos.probes.stream import Stream
from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.session.kernel import comm_needle, kernel_target, parse_uid
from lumos.session.report import report_lost
from lumos.session.session import Session

HELP = "trace open() calls: process, FD or errno, path (failures and all)"
EXAMPLES = """\
  lumos opensnoop                    # every open on the system
  lumos opensnoop -x                 # only failed opens (FD -1, ERR the errno)
  lumos opensnoop -p 1234            # only process 1234
  lumos opensnoop -c './app -v'      # start a command, trace its opens until it exits
  lumos opensnoop -n nginx           # only processes whose name contains "nginx"
  lumos opensnoop -u 1000 -U         # only UID 1000, with a UID column
  lumos opensnoop -T -e              # with time, flags and mode columns
  lumos opensnoop -d 10 --json       # JSON lines for 10 seconds
"""

O_CREAT, O_TMPFILE = os.O_CREAT, getattr(os, "O_TMPFILE", 0o20200000)


def add_arguments(p) -> None:
    add_target_arguments(p, patterns=False)
    p.add_argument("-x", "--failed", action="store_true", help="only failed opens")
    p.add_argument("-n", "--name", help="only processes whose name contains NAME")
    p.add_argument("-u", "--uid", type=parse_uid, metavar="USER", help="only this UID")
    p.add_argument("-U", "--print-uid", action="store_true", help="print a UID column")
    p.add_argument("-T", "--timestamp", action="store_true",
                   help="include a time column (HH:MM:SS)")
    p.add_argument("-e", "--extended-fields", action="store_true",
                   help="print the open flags (octal) and mode")
    add_timing_arguments(p, interval=False)


def run(args) -> int:
    needle = comm_needle(args.name)
    out = sys.stdout
    with Session(args, target=kernel_target(args)) as s:
        filt = OpenFilter(tgid=s.target.pid, uid=args.uid, comm=needle,
                          failed_only=args.failed)
        channel = EventChannel(16 << 20).open(s.stack)
        probe = OpenProbe(channel, filt).attach(s.stack)
        s.banner(" and ".join(", ".join(probe.syscalls).rsplit(", ", 1)) + " calls",
                 probe.notes)
        printer = Printer(args, out)
        if not args.json:
            printer.header()
        runner = s.start()
        stream = Stream(channel, OPEN_EVENT.size)
        stream.run(runner, printer.batch, flush=out.flush)
        report_lost(stream, args.json)
    return 0


class Printer:
    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.offset = time_offset()
        self.clock = Clock(self.offset)

    def header(self) -> None:
        a, cols = self.args, ""
        if a.timestamp:
            cols += f"{'TIME':<8} "
        if a.print_uid:
            cols += f"{'UID':<7} "
        cols += f"{'PID':<6} {'COMM':<16} {'FD':>3} {'ERR':>3} "
        if a.extended_fields:
            cols += f"{'FLAGS':<8} {'MODE':<5} "
        self.out.write(cols + "PATH\n")

    def batch(self, batch) -> None:
        for rec in batch.records():
            ev = decode_open(rec)
            if self.args.json:
                self.json(ev)
            else:
                self.text(ev)

    def text(self, ev) -> None:
        a, cols = self.args, ""
        fd, err = (ev.ret, 0) if ev.ret >= 0 else (-1, -ev.ret)
        if a.timestamp:
            cols += f"{self.clock.stamp(ev.ts_ns)[:8]:<8} "
        if a.print_uid:
            cols += f"{ev.uid:<7} "
        cols += f"{ev.pid:<6} {ev.comm:<16} {fd:>3} {err:>3} "
        if a.extended_fields:
            plain = ev.mode == 0 and not ev.flags & O_CREAT and ev.flags & O_TMPFILE != O_TMPFILE
            cols += f"{ev.flags:08o} {'n/a' if plain else f'{ev.mode:04o}':<5} "
        self.out.write(cols + _path(ev) + "\n")

    def json(self, ev) -> None:
        obj = {"time": round(ev.ts_ns / 1e9 + self.offset, 6), "pid": ev.pid, "tid": ev.tid,
               "uid": ev.uid, "comm": ev.comm, "syscall": ev.call,
               "fd": ev.ret if ev.ret >= 0 else -1, "err": -ev.ret if ev.ret < 0 else 0,
               "errno": errno.errorcode.get(-ev.ret) if ev.ret < 0 else None,
               "flags": ev.flags, "mode": ev.mode,
               "path": None if ev.path is None else ev.path.decode("utf-8", "backslashreplace"),
               "cut": ev.cut}
        write_json(obj, self.out, flush=False)


def _path(ev) -> str:
    if ev.path is None:
        return "[path unreadable]"
    return printable(ev.path) + (CUT if ev.cut else "")
