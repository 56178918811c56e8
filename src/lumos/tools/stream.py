"""The event loop of every streaming tool: wait on the ring buffer (≤100 ms, so Ctrl-C,
-d and the command's exit are seen promptly), copy out whole batches, decode and hand
each event to the tool, flush output once per batch. After the stop, one last drain:
events already in the buffer are not lost.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from lumos.bpf.ringbuf import iter_records
from lumos.output.jsonl import write_json
from lumos.probes.events import EventChannel
from lumos.tools.common import Runner


def run_stream(channel: EventChannel, runner: Runner, handle: Callable[[memoryview], None],
               out=sys.stdout, on_tick: Callable[[], None] | None = None,
               interval: float | None = None) -> int:
    """Pump records until the runner stops; returns how many were handled."""
    reader = channel.reader
    n = 0
    next_tick = time.monotonic() + interval if interval else None
    while True:
        stopping = runner.stopping
        if not stopping:
            reader.wait(runner.wait_timeout())
        chunk, count = reader.read_chunk()
        if count:
            for rec in iter_records(chunk):
                handle(rec)
            n += count
            out.flush()
        if next_tick is not None and time.monotonic() >= next_tick and on_tick:
            on_tick()
            next_tick += interval
        if stopping and not count:
            return n


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
