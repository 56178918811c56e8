"""What the kernel tools (execsnoop, opensnoop, runqlat, swapin, faults) share: a target
that may be nothing at all (the whole system), BCC's `[interval [count]]` positionals
next to lumos's -i/-d, and report loops that stop after `count` reports.
"""

from __future__ import annotations

import argparse
import pwd

from lumos.binary.procmaps import check_pid, exe_of
from lumos.bpf import features
from lumos.errors import TargetError, UsageError
from lumos.targets.target import Target, resolve_target


def kernel_target(args: argparse.Namespace) -> Target:
    """-p PID, -c CMD, or else the whole system (no binary, no process filter).

    A kernel tool needs only the PID: a process whose executable cannot be read (PID 1
    in a container, a kernel thread) is traced all the same, named by its comm."""
    pid, command = getattr(args, "pid", None), getattr(args, "command", None)
    if command:
        return resolve_target(args, need_patterns=False)
    features.require("privileges")
    if pid is None:
        return Target(None, None)
    check_pid(pid)
    try:
        exe = exe_of(pid)
    except TargetError:
        exe = f"[{_comm(pid)}]"
    return Target(exe, pid)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def resolve_intervals(args: argparse.Namespace) -> None:
    """Fold BCC's positionals into args.interval (-i) and args.count; reject bad ones."""
    if args.interval is not None and getattr(args, "interval_pos", None) is not None:
        raise UsageError("give the interval either as -i or as a positional, not both")
    pos = getattr(args, "interval_pos", None)
    if pos is not None:
        if pos <= 0:
            raise UsageError(f"interval must be a positive number of seconds, not {pos:g}")
        args.interval = pos
    count = getattr(args, "count", None)
    if count is not None:
        if count <= 0:
            raise UsageError(f"count must be a positive number of intervals, not {count}")
        if args.interval is None:
            raise UsageError("a count needs an interval (e.g. `1 10`: every second, 10 times)")


def add_kernel_intervals(p: argparse.ArgumentParser) -> None:
    """[interval [count]] positionals, stored apart from -i until resolve_intervals()."""
    p.add_argument("interval_pos", nargs="?", type=float, metavar="interval",
                   help="print (and reset) every this many seconds, as -i does")
    p.add_argument("count", nargs="?", type=int, metavar="count",
                   help="stop after this many intervals")


def report_loop(session, read, report) -> None:
    """Report at each interval (and at the end), stopping after args.count reports."""
    count = getattr(session.args, "count", None)
    for done, final in enumerate(session.intervals(), 1):
        report(read(), final)
        if count is not None and done >= count:
            return


def parse_uid(text: str) -> int:
    """-u: a number or a user name (as BCC's execsnoop takes it)."""
    try:
        uid = int(text)
    except ValueError:
        try:
            return pwd.getpwnam(text).pw_uid
        except KeyError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a UID or a user name") from None
    if not 0 <= uid < 2**32 - 1:
        raise argparse.ArgumentTypeError(f"UID {uid} is out of range")
    return uid


def comm_needle(name: str | None) -> bytes | None:
    """-n NAME as the kernel's comm filter wants it (1 to 15 bytes: comm is 16 with NUL)."""
    if name is None:
        return None
    raw = name.encode()
    if not raw or len(raw) > 15 or b"\0" in raw:
        raise UsageError(f"-n {name!r}: a process name is 1 to 15 bytes (the kernel's comm)")
    return raw

