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
    """Clock.stamp for a whole column of timestamps: a columns.Piece of HH:MM:SS.micro.
    A batch usually falls within a second or two: HH:MM:SS is formatted per second
    seen, not per row, and only the microseconds are worked out on every row."""
    import numpy as np

    from lumos.output import columns as C
    gmtoff = time.localtime().tm_gmtoff  # a zone change mid-run is not followed
    us = (ts_ns.astype(np.int64) // 1000 + int((offset + gmtoff) * 1e6)) % 86_400_000_000
    secs = us // 1_000_000
    out = np.empty((len(ts_ns), 15), np.uint8)
    first, last = (int(secs.min()), int(secs.max())) if len(secs) else (0, 0)
    if last - first < 16:  # a table of the seconds in this batch
        table = np.frombuffer(b"".join(_hms(s) for s in range(first, last + 1)),
                              np.uint8).reshape(-1, 9)
        out[:, :9] = table[secs - first]
    else:
        s32 = secs.astype(np.uint32)
        out[:, 0:2] = C.fixed_digits(s32 // 3600, 2)
        out[:, 3:5] = C.fixed_digits(s32 // 60 % 60, 2)
        out[:, 6:8] = C.fixed_digits(s32 % 60, 2)
        out[:, 2] = out[:, 5] = ord(":")
        out[:, 8] = ord(".")
    out[:, 9:15] = C.fixed_digits((us - secs * 1_000_000).astype(np.uint32), 6)
    return C.Piece(out, True)


def _hms(second_of_day: int) -> bytes:
    h, rest = divmod(second_of_day, 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}.".encode()


def epoch_column(ts_ns, offset: float):
    """Wall-clock seconds with microseconds (1795599062.938717) for JSON lines."""
    import numpy as np

    from lumos.output import columns as C
    us = ts_ns.astype(np.int64) // 1000 + int(offset * 1e6)
    whole = us // 1_000_000
    secs = C.decimal(whole)
    out = np.empty((len(us), secs.width + 7), np.uint8)
    out[:, :secs.width] = secs.buf
    out[:, secs.width] = ord(".")
    out[:, secs.width + 1:] = C.fixed_digits((us - whole * 1_000_000).astype(np.uint32), 6)
    return C.Piece(out, secs.full)
