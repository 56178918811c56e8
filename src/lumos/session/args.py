"""The options every tool shares: targets (binary, -p PID, -c CMD), timing (-d, -i), --json."""

from __future__ import annotations

import argparse

from lumos.errors import UsageError


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


def validate_timing(args: argparse.Namespace) -> None:
    """-d and -i are checked before anything is attached or started."""
    for flag, name in (("-d", "duration"), ("-i", "interval")):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive number of seconds")
