"""What every tool shares: targets (binary, -p PID, -c CMD), timing (-d, -i), the run loop.

A tool's life: resolve the target -> build and attach probes -> (for -c) let the
command exec -> loop until Ctrl-C, SIGTERM, -d expiry or the command's exit -> summary.
The loop polls every 100 ms at most, so every stop condition is seen promptly.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from lumos.binary.procmaps import check_pid, exe_of
from lumos.bpf import features
from lumos.errors import TargetError, UsageError

POLL_S = 0.1


def add_target_arguments(p: argparse.ArgumentParser, patterns: bool = True) -> None:
    if patterns:
        p.add_argument("args", nargs="*", metavar="TARGET/PATTERN",
                       help="a binary or library path, then patterns; with -p or -c only "
                            "patterns")
    p.add_argument("-p", "--pid", type=int, help="trace this process only")
    p.add_argument("-c", "--command", metavar="CMD",
                   help="start CMD, trace it from its first instruction, stop when it exits")


def add_timing_arguments(p: argparse.ArgumentParser, interval: bool = True) -> None:
    p.add_argument("-d", "--duration", type=float, metavar="SECONDS",
                   help="stop after this many seconds")
    if interval:
        p.add_argument("-i", "--interval", type=float, metavar="SECONDS",
                       help="print (and reset) every this many seconds")
    p.add_argument("--json", action="store_true", help="write JSON lines")


class Launched:
    """A command forked and held before exec until start(): probes go in first.

    exec keeps the PID, so probes filtered by this PID see the command from its first
    instruction. Its stdin/stdout/stderr are ours: its output passes through.
    """

    def __init__(self, argv: list[str]):
        path = shutil.which(argv[0])
        if path is None:
            raise TargetError(f"command not found: {argv[0]}")
        self.argv = argv
        self.exe = os.path.realpath(path)
        go_r, self._go_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child: wait for the go-ahead, then exec
            try:
                os.close(self._go_w)
                os.close(err_r)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                if os.read(go_r, 1) != b"x":
                    os._exit(126)
                os.execv(self.exe, argv)
            except OSError as e:
                os.write(err_w, (e.strerror or "exec failed").encode())
            finally:
                os._exit(127)
        os.close(go_r)
        os.close(err_w)
        self._err_r = err_r
        self.pid = pid
        self.returncode: int | None = None

    def start(self) -> None:
        os.write(self._go_w, b"x")
        os.close(self._go_w)
        self._go_w = -1
        msg = os.read(self._err_r, 4096)  # EOF when exec succeeded (CLOEXEC)
        os.close(self._err_r)
        if msg:
            self.wait()
            raise TargetError(f"cannot run {self.argv[0]}: {msg.decode()}")

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close(self) -> None:
        """Kill the command if it has not run or is still running (error paths)."""
        if self._go_w >= 0:
            os.close(self._go_w)  # child reads EOF and exits 126
            self._go_w = -1
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()


@dataclass
class Target:
    """What to trace: an executable (or library) path, optionally one process."""

    exe: str | None
    pid: int | None = None
    launched: Launched | None = None
    patterns: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.launched is not None:
            return f"command {shlex.join(self.launched.argv)} (PID {self.pid})"
        if self.pid is not None:
            return f"PID {self.pid} ({self.exe})"
        return self.exe or "?"


def resolve_target(args: argparse.Namespace, need_patterns: bool = True,
                   is_kernel_pattern=lambda p: False) -> Target:
    """TARGET PATTERN..., or -p PID PATTERN..., or -c CMD PATTERN... -> Target.

    Without -p/-c, a first positional that is_kernel_pattern() (a tracepoint, say)
    means there is no binary: every positional is a pattern.

    With -c the command is forked but held before exec; call target.launched.start()
    once probes are attached, and close() it on error paths.
    """
    validate_timing(args)
    features.require("privileges")  # first: without root nothing below can work
    positionals = list(getattr(args, "args", []) or [])
    if args.pid is not None and args.command:
        raise UsageError("-p and -c cannot be combined")
    if args.pid is not None:
        check_pid(args.pid)
        target = Target(exe_of(args.pid), args.pid, patterns=positionals)
    elif args.command:
        try:
            argv = shlex.split(args.command)
        except ValueError as e:
            raise UsageError(f"-c: {e}") from None
        if not argv:
            raise UsageError("-c needs a command")
        launched = Launched(argv)
        target = Target(launched.exe, launched.pid, launched, positionals)
    elif positionals and is_kernel_pattern(positionals[0]):
        target = Target(None, None, patterns=positionals)
    else:
        if not positionals:
            raise UsageError("give a binary to trace (or -p PID, or -c CMD)")
        exe = positionals[0]
        if not os.path.exists(exe):
            found = shutil.which(exe) if "/" not in exe else None
            if found is None:
                raise TargetError(f"{exe}: no such file")
            exe = found
        target = Target(os.path.realpath(exe), None, patterns=positionals[1:])
    if need_patterns and not target.patterns:
        if target.launched:
            target.launched.close()
        raise UsageError("give at least one function pattern, e.g. 'main.*'")
    return target


def validate_timing(args: argparse.Namespace) -> None:
    """-d and -i are checked before anything is attached or started."""
    for flag, name in (("-d", "duration"), ("-i", "interval")):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive number of seconds")


class Runner:
    """Decides when a tool stops: Ctrl-C, SIGTERM, -d expiry, or the traced command's exit."""

    def __init__(self, duration: float | None = None, launched: Launched | None = None):
        if duration is not None and duration <= 0:
            raise UsageError("-d must be a positive number of seconds")
        self.deadline = time.monotonic() + duration if duration else None
        self.launched = launched
        self.stop_reason: str | None = None
        self._old: dict[int, object] = {}

    def __enter__(self) -> Runner:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        self.stop_reason = "interrupted" if signum == signal.SIGINT else "terminated"

    @property
    def stopping(self) -> bool:
        if self.stop_reason is None:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.stop_reason = "duration"
            elif self.launched is not None and self.launched.poll() is not None:
                self.stop_reason = "command exited"
        return self.stop_reason is not None

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds` in short steps; False as soon as the tool should stop."""
        end = time.monotonic() + seconds
        while not self.stopping:
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(POLL_S, left))
        return False

    def ticks(self, interval: float | None) -> Iterator[bool]:
        """Yield False at each interval's end and True once at the very end."""
        if interval is not None and interval <= 0:
            raise UsageError("-i must be a positive number of seconds")
        while True:
            if interval is None:
                while self.sleep(3600):
                    pass
                yield True
                return
            if self.sleep(interval):
                yield False
            else:
                yield True
                return

    def wait_timeout(self) -> float:
        """How long an event loop may block now (≤ 100 ms, less near the deadline)."""
        if self.deadline is None:
            return POLL_S
        return max(0.0, min(POLL_S, self.deadline - time.monotonic()))


def report_skipped(skipped) -> None:
    """Say which sites the kernel refused to probe (never drop them silently)."""
    if skipped:
        names = ", ".join(sorted({s.name for s in skipped})[:8])
        more = f" and {len(skipped) - 8} more" if len(skipped) > 8 else ""
        print(f"lumos: skipped {len(skipped)} site(s) the kernel cannot probe: {names}{more}",
              file=sys.stderr)
