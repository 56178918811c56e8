"""The event loop of every streaming tool, built so that tracing costs the traced
program as little as possible:

- the BPF side submits without waking us (see EventChannel.emit_submit); we poll every
  ≤50 ms and copy out all committed records in one go (read_chunk_fixed: no Python
  work per record);
- decoding and printing happen off the hot path: while records pour in (more than
  HOT_RECORDS since the last poll), chunks are only copied and queued; the backlog is
  decoded when the stream calms down, when it grows past MAX_BACKLOG_BYTES, and at the
  end, in slices of DECODE_SLICE_S so copying never stalls long enough to overflow.

Ctrl-C, -d and the command's exit are seen within one poll; after the stop, the ring
is drained and the backlog decoded: nothing already captured is dropped.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable

from lumos.bpf.ringbuf import iter_records
from lumos.output.jsonl import write_json
from lumos.probes.events import EventChannel
from lumos.tools.common import Runner

POLL_S = 0.05
HOT_RECORDS = 5000
MAX_BACKLOG_BYTES = 256 << 20
DECODE_SLICE_S = 0.02
SLICE_RECORDS = 1024


def run_stream(channel: EventChannel, runner: Runner, handle: Callable[[memoryview], None],
               record_size: int = 0, out=sys.stdout,
               on_tick: Callable[[], None] | None = None, interval: float | None = None) -> int:
    """Pump records until the runner stops; returns how many were handled.

    record_size: the fixed size of every record (EventProgram.record_size), or 0 when
    sizes vary (then records are walked one by one).
    """
    reader = channel.reader
    backlog: deque[memoryview] = deque()  # records copied, not yet handled
    backlog_bytes = 0
    handled = 0
    next_tick = time.monotonic() + interval if interval else None

    def copy() -> int:
        nonlocal backlog_bytes
        chunk, n = (reader.read_chunk_fixed(record_size) if record_size
                    else reader.read_chunk())
        if n:
            view = memoryview(chunk)
            # slices of SLICE_RECORDS records, so a decode budget is checked often
            step = SLICE_RECORDS * ((record_size + 15) & ~7) if record_size else len(view)
            for i in range(0, len(view), step):
                backlog.append(view[i:i + step])
            backlog_bytes += len(chunk)
        return n

    def decode(budget_s: float | None) -> None:
        nonlocal backlog_bytes, handled
        deadline = None if budget_s is None else time.monotonic() + budget_s
        while backlog:
            chunk = backlog.popleft()
            backlog_bytes -= len(chunk)
            for rec in iter_records(chunk):
                handle(rec)
                handled += 1
            if deadline is not None and time.monotonic() > deadline:
                break
        out.flush()

    while True:
        stopping = runner.stopping
        if not stopping:
            reader.wait(min(POLL_S, runner.wait_timeout()))
        n = copy()
        if stopping:
            while copy():
                pass
            decode(None)
            return handled
        if n < HOT_RECORDS or backlog_bytes > MAX_BACKLOG_BYTES:
            decode(DECODE_SLICE_S)
        if next_tick is not None and time.monotonic() >= next_tick and on_tick:
            decode(None)
            on_tick()
            next_tick += interval


def time_offset() -> float:
    """Add to a bpf_ktime_get_ns() value (CLOCK_MONOTONIC) / 1e9 to get wall-clock time."""
    return time.time() - time.monotonic()


def report_lost(channel: EventChannel, json_out: bool, out=sys.stdout) -> int:
    """Print the events the kernel could not deliver (ring buffer full); never silent."""
    lost = channel.lost()
    if json_out:
        write_json({"lost": lost}, out)
    if lost:
        print(f"lumos: {lost} events lost (ring buffer full; try a larger --ring-mb or a "
              f"--filter)", file=sys.stderr)
    return lost


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
