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


def stamp_column(ts_ns, offset: float):
    """Clock.stamp for a whole column of timestamps: a columns.Piece of HH:MM:SS.micro."""
    import numpy as np

    from lumos.output import columns as C
    gmtoff = time.localtime().tm_gmtoff  # a zone change mid-run is not followed
    us = (ts_ns.astype(np.int64) // 1000 + int((offset + gmtoff) * 1e6)) % 86_400_000_000
    out = np.empty((len(ts_ns), 15), np.uint8)
    out[:, 0:2] = C.fixed_digits(us // 3_600_000_000, 2)
    out[:, 3:5] = C.fixed_digits(us // 60_000_000 % 60, 2)
    out[:, 6:8] = C.fixed_digits(us // 1_000_000 % 60, 2)
    out[:, 9:15] = C.fixed_digits(us % 1_000_000, 6)
    out[:, 2] = out[:, 5] = ord(":")
    out[:, 8] = ord(".")
    return C.Piece(out, None)


def epoch_column(ts_ns, offset: float):
    """Wall-clock seconds with microseconds (1795599062.938717) for JSON lines."""
    import numpy as np

    from lumos.output import columns as C
    us = ts_ns.astype(np.int64) // 1000 + int(offset * 1e6)
    secs = C.decimal(us // 1_000_000)
    out = np.empty((len(us), secs.width + 7), np.uint8)
    out[:, :secs.width] = secs.buf
    out[:, secs.width] = ord(".")
    out[:, secs.width + 1:] = C.fixed_digits(us % 1_000_000, 6)
    keep = None if secs.keep is None else np.hstack([secs.keep, np.ones((len(us), 7), bool)])
    return C.Piece(out, keep)
