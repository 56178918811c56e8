"""The options every tool shares: targets (binary, -p PID, -c CMD), timing (-d, -i), --json."""

from __future__ import annotations

import argparse
import math

from lumos.errors import UsageError

MAX_STRLEN = 4096  # a bounded read per string: the record (and the verifier) need a bound


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


def validate_shared(args: argparse.Namespace) -> None:
    """-d, -i and --strlen are checked before anything is attached or started."""
    for flag, name in (("-d", "duration"), ("-i", "interval")):
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} must be a positive number of seconds")
    strlen = getattr(args, "strlen", None)
    if strlen is not None and not 1 <= strlen <= MAX_STRLEN:
        raise UsageError(f"--strlen must be between 1 and {MAX_STRLEN}")


def add_strlen_argument(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--strlen", type=int, default=default, metavar="N",
                   help=f"bytes of each string to copy (default {default}, at most "
                        f"{MAX_STRLEN}; longer ones are cut and marked)")


RING_MB_DEFAULT = 16   # a ring's pages are all resident: 16 MiB holds ~0.1 s at 1M events/s


def add_ring_argument(p: argparse.ArgumentParser, default: int = RING_MB_DEFAULT) -> None:
    p.add_argument("--ring-mb", type=int, default=default, metavar="MB",
                   help=f"ring buffer size in MiB, a power of two (default {default}; "
                        f"events that find it full are counted as lost)")


def ring_bytes(args: argparse.Namespace) -> int:
    mb = args.ring_mb
    if not 1 <= mb <= 1024 or mb & (mb - 1):
        raise UsageError("--ring-mb must be a power of two between 1 and 1024")
    return mb << 20
