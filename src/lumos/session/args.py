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


PID_MAX_LIMIT = 4 * 1024 * 1024  # the kernel's ceiling for pid_max
MAX_SECONDS = 366 * 86400  # -d and -i: a year at most (beyond is a typo, or overflows)


def check_seconds(flag: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise UsageError(f"{flag} must be a positive number of seconds (at most "
                         f"{MAX_SECONDS}, a year), not {value:g}")


def check_at_least(flag: str, value: int | float | None, low: int) -> None:
    if value is not None and not (math.isfinite(value) and value >= low):
        raise UsageError(f"{flag} must be at least {low}, not {value:g}")


def validate_shared(args: argparse.Namespace) -> None:
    """The options several tools share, checked (by cli.py, for every tool) before
    anything is resolved, attached or started."""
    check_seconds("-d", getattr(args, "duration", None))
    check_seconds("-i", getattr(args, "interval", None))
    check_seconds("interval", getattr(args, "interval_pos", None))
    check_at_least("count", getattr(args, "count", None), 1)
    check_at_least("--top", getattr(args, "top", None), 1)
    ppid = getattr(args, "ppid", None)
    if ppid is not None and not 0 <= ppid <= PID_MAX_LIMIT:
        raise UsageError(f"--ppid must be a PID (0 to {PID_MAX_LIMIT}), not {ppid}")
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
