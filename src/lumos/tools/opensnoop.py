"""opensnoop: every open(), openat(), openat2() with its result (BCC's opensnoop).

A failed open prints FD -1 and ERR the errno, as BCC does. The filters (-p, -u, -n,
-x) run in the kernel, so what they drop costs no copy to user space.
"""

from __future__ import annotations

import errno
import os
import sys

import numpy as np
import orjson

from lumos.output.clock import Clock, time_offset
from lumos.output.cmdline import CUT, printable
from lumos.probes.channel import EventChannel
from lumos.probes.opensnoop import OPEN_EVENT, SYSCALLS, OpenFilter, OpenProbe
from lumos.probes.stream import Stream
from lumos.session.args import (
    add_ring_argument,
    add_target_arguments,
    add_timing_arguments,
    ring_bytes,
)
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
    add_ring_argument(p, default=32)  # opens come fast: 32 MiB is ~0.5 s of them at 200k/s
    add_timing_arguments(p, interval=False)


def run(args) -> int:
    needle = comm_needle(args.name)
    out = sys.stdout
    with Session(args, target=kernel_target(args)) as s:
        filt = OpenFilter(tgid=s.target.pid, uid=args.uid, comm=needle,
                          failed_only=args.failed)
        channel = EventChannel(ring_bytes(args)).open(s.stack)
        probe = OpenProbe(channel, filt).attach(s.stack)
        s.banner(" and ".join(", ".join(probe.syscalls).rsplit(", ", 1)) + " calls",
                 probe.notes)
        printer = Printer(args, out)
        if not args.json:
            printer.header()
        runner = s.start()
        stream = Stream(channel, OPEN_EVENT.size, OPEN_EVENT.dtype)
        stream.run(runner, printer.batch, flush=out.flush)
        report_lost(stream, args.json)
    return 0


class Printer:
    """Formats a whole batch at once: columns come out of the records as numpy arrays
    (Batch.array), so the Python work per open is one f-string and one path decode
    (measured here, CPU time: ~12 us a record decoding one at a time, ~2.5 us this way)."""

    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.offset = time_offset()
        self.clock = Clock(self.offset)
        self._comms: dict[bytes, str] = {}

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

    def _comm(self, raw: bytes) -> str:
        text = self._comms.get(raw)
        if text is None:
            text = self._comms[raw] = raw.decode("utf-8", "replace")
        return text

    def batch(self, batch) -> None:
        arr = batch.array
        if not len(arr):
            return
        ret = arr["ret"]
        fds = np.where(ret >= 0, ret, -1).tolist()
        errs = np.where(ret < 0, -ret, 0).tolist()
        comms = [self._comm(c) for c in _strings(arr["comm"]).tolist()]
        paths = _paths(arr)
        if self.args.json:
            self._json(arr, fds, errs, comms, paths)
            return
        a = self.args
        fmt, cols = "", []
        if a.timestamp:
            fmt += "%-8s "
            cols.append([self.clock.stamp(t)[:8] for t in arr["ts_ns"].tolist()])
        if a.print_uid:
            fmt += "%-7d "
            cols.append(arr["uid"].tolist())
        fmt += "%-6d %-16s %3d %3d "
        cols += [arr["pid"].tolist(), comms, fds, errs]
        if a.extended_fields:
            fmt += "%s "
            cols.append([_flags_mode(f, m) for f, m in zip(arr["flags"].tolist(),
                                                            arr["mode"].tolist(), strict=True)])
        fmt += "%s\n"
        cols.append([_show(p) + CUT if c else _show(p)
                     for p, c in zip(paths, arr["cut"].tolist(), strict=True)])
        self.out.write("".join([fmt % row for row in zip(*cols, strict=True)]))

    def _json(self, arr, fds, errs, comms, paths) -> None:
        """JSON lines by %-formatting: only the strings go through orjson (~3x faster
        than a dict and an encoder call per open, measured here)."""
        names = {c: orjson.dumps(c).decode() for c in set(comms)}
        fmt = ('{"time":%.6f,"pid":%d,"tid":%d,"uid":%d,"comm":%s,"syscall":"%s","fd":%d,'
               '"err":%d,"errno":%s,"flags":%d,"mode":%d,"path":%s,"cut":%s}\n')
        times = (arr["ts_ns"] / 1e9 + self.offset).tolist()
        calls = [SYSCALLS[c] if c < len(SYSCALLS) else "?" for c in arr["call"].tolist()]
        self.out.write("".join([fmt % (
            t, pid, tid, uid, names[comm], call, fd, err,
            f'"{errno.errorcode.get(err, err)}"' if err else "null", flags, mode,
            "null" if path is None else orjson.dumps(path.decode("utf-8", "backslashreplace"))
            .decode(), "true" if cut else "false") for t, pid, tid, uid, comm, call, fd, err,
            flags, mode, path, cut in zip(times, arr["pid"].tolist(), arr["tid"].tolist(),
                                          arr["uid"].tolist(), comms, calls, fds, errs,
                                          arr["flags"].tolist(), arr["mode"].tolist(), paths,
                                          arr["cut"].tolist(), strict=True)]))


def _paths(arr) -> list[bytes | None]:
    """Each record's path: path_len bytes with the NUL (None when unreadable)."""
    return [p[:n - 1] if n > 0 else None for p, n in
            zip(_strings(arr["path"]).tolist(), arr["path_len"].tolist(), strict=True)]


def _strings(column):
    """A bytes field of the records as numpy bytes strings (trailing NULs dropped)."""
    flat = np.ascontiguousarray(column)
    width = flat.dtype.itemsize * (flat.shape[1] if flat.ndim > 1 else 1)
    return flat.view(f"S{width}").reshape(-1)


def _show(path: bytes | None) -> str:
    if path is None:
        return "[path unreadable]"
    text = path.decode("utf-8", "backslashreplace")
    return text if text.isprintable() else printable(path)


def _flags_mode(flags: int, mode: int) -> str:
    plain = mode == 0 and not flags & O_CREAT and flags & O_TMPFILE != O_TMPFILE
    return f"{flags:08o} {'n/a' if plain else f'{mode:04o}':<5}"
