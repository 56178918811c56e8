"""What to trace: a binary or library path, a running process (-p), or a command (-c)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
from dataclasses import dataclass, field

from lumos.binary.procmaps import check_pid, exe_of
from lumos.bpf import features
from lumos.errors import TargetError, UsageError
from lumos.targets.launch import Launched


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
    features.require("privileges")  # first: without root nothing below can work
    positionals = list(getattr(args, "args", []) or [])
    if args.command is not None and not args.command.strip():
        raise UsageError("-c needs a command, e.g. -c './server -port 8080'")
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
