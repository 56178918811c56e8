"""Kernel timestamps (CLOCK_MONOTONIC ns) as wall-clock time, for event lines."""

from __future__ import annotations

import time


def time_offset() -> float:
    """Add to a bpf_ktime_get_ns() value (CLOCK_MONOTONIC) / 1e9 to get wall-clock time."""
    return time.time() - time.monotonic()


class Clock:
    """HH:MM:SS.micro stamps for kernel timestamps; strftime once per second, not per event."""

    def __init__(self, offset: float):
        self.offset = offset
        self._sec = -1
        self._text = ""

    def stamp(self, ts_ns: int) -> str:
        ts = ts_ns / 1e9 + self.offset
        sec = int(ts)
        if sec != self._sec:
            self._sec, self._text = sec, time.strftime("%H:%M:%S", time.localtime(sec))
        return f"{self._text}.{int((ts - sec) * 1e6):06d}"
