"""The event loop of every streaming tool: ring buffer -> batches -> the tool, bounded.

Built so that tracing costs the traced program little and lumos stays within bounds at
any event rate:

- the BPF side submits without waking us (EventChannel.emit_submit); we poll every
  ≤50 ms and take committed records in batches of at most BATCH_RECORDS with one copy
  (RingBuffer.read_chunk_fixed: no Python work per record);
- each batch is handed to the tool at once and written before the next is read: nothing
  queues in Python. When the tool cannot keep up, records wait in the ring, the ring
  fills, and the kernel drops new ones and counts them (EventChannel.lost). Memory is the
  ring plus one batch, whatever the rate and however long the run;
- on a stop (Ctrl-C, SIGTERM, -d) the probes are closed first, then what is in the ring
  is handed on for at most DRAIN_S; records still left are released unread and counted
  as lost (`Stream.abandoned`), so exit is prompt and nothing goes missing silently.
  When a -c command ends by itself the budget is DRAIN_COMMAND_S: its last burst is
  what the user asked to see, and nothing more can come.

A Batch gives the tool both views of its records: `.array`, a numpy structured array
(one row per record, fields from the program's Record declaration) for tools that
decode and format in bulk, and `.records()`, one memoryview per record, for tools whose
rate is low enough to decode one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from lumos.bpf.ringbuf import DISCARD_BIT, HDR_SIZE
from lumos.probes.channel import EventChannel

POLL_S = 0.05
BATCH_RECORDS = 16384     # records handed on at once ...
BATCH_BYTES = 4 << 20     # ... and at most this many bytes of them: big records (logs'
                          # 3.8 KiB, execsnoop's 4.6 KiB) would make a 16,384-record batch
                          # tens of MiB, and the Python objects decoded from it more
DRAIN_S = 0.2             # after a stop: time to pass on what is still in the ring
DRAIN_COMMAND_S = 2.0     # after a -c command's own end: its last burst is what was asked
PER_RECORD_BATCH = 1024   # for tools that decode a record at a time in Python


class Batch:
    """Records copied out of the ring in one go (each behind its 8-byte ring header)."""

    def __init__(self, chunk: bytes, count: int, record_size: int, dtype=None):
        self.chunk = chunk
        self.count = count
        self.record_size = record_size
        self.stride = (record_size + HDR_SIZE + 7) & ~7
        self._dtype = dtype
        self._rows = None

    def __len__(self) -> int:
        return self.count

    @property
    def rows(self):
        """(records, stride) uint8: one row per record, ring header first; discarded
        records left out."""
        if self._rows is None:
            import numpy as np
            rows = np.frombuffer(self.chunk, np.uint8).reshape(self.count, self.stride)
            discarded = (rows[:, 3] & (DISCARD_BIT >> 24)) != 0
            self._rows = rows[~discarded] if discarded.any() else rows
        return self._rows

    def records_as(self, dtype, which=None):
        """The records (or the rows `which` selects) as a numpy structured array of
        `dtype` (a Record's dtype: the layout the BPF program wrote)."""
        import numpy as np
        rows = self.rows if which is None else self.rows[which]
        framed = np.dtype({"names": ["rec"], "formats": [dtype], "offsets": [HDR_SIZE],
                           "itemsize": self.stride})
        return np.ascontiguousarray(rows).view(framed).reshape(-1)["rec"]

    @property
    def array(self):
        """The records as a numpy structured array of the Stream's dtype."""
        return self.records_as(self._dtype)

    def records(self) -> Iterator[memoryview]:
        """Each record's bytes, discarded ones skipped."""
        view = memoryview(self.chunk)
        stride, size = self.stride, self.record_size
        for pos in range(0, self.count * stride, stride):
            if not view[pos + 3] & (DISCARD_BIT >> 24):
                yield view[pos + HDR_SIZE: pos + HDR_SIZE + size]


class Stream:
    """Pumps one channel's records to a tool until the runner says stop.

    record_size: the fixed size of the program's records (EventProgram.record_size);
    dtype: their numpy dtype (Record.dtype), needed only by tools that use Batch.array.
    """

    def __init__(self, channel: EventChannel, record_size: int, dtype=None,
                 batch_records: int = BATCH_RECORDS):
        self.channel = channel
        self.record_size = record_size
        self.dtype = dtype
        self.batch_records = max(1, min(batch_records, BATCH_BYTES // record_size))
        self.handled = 0       # records handed to the tool
        self.abandoned = 0     # records left in the ring at exit, counted as lost
        self.staged = None     # a StagedReader when the channel stages records per CPU
        if channel.staged:
            from lumos.probes.unstage import StagedReader
            self.staged = StagedReader(channel, self.batch_records, dtype)

    def _batches(self, runner) -> Iterator[Batch]:
        """What one poll hands on: all there is, unless a stop comes first."""
        if self.staged is not None:  # rounds until the ring is drained: the ring does
            yield from self.staged.round()  # not wake a poll (BPF_RB_NO_WAKEUP)
            while self.staged.more and not runner.stopping:
                yield from self.staged.round()
            return
        while not runner.stopping and (batch := self._read()) is not None:
            yield batch

    def _read(self) -> Batch | None:
        chunk, n = self.channel.reader.read_chunk_fixed(self.record_size, self.batch_records)
        return Batch(chunk, n, self.record_size, self.dtype) if n else None

    def run(self, runner, on_batch: Callable[[Batch], None],
            on_tick: Callable[[], None] | None = None, interval: float | None = None,
            flush: Callable[[], None] | None = None,
            detach: Callable[[], None] | None = None, poll_s: float = POLL_S) -> int:
        """Hand batches to on_batch until the runner stops; returns records handled.

        on_tick runs every `interval` seconds (goroutines --leaks -i); flush (the
        tool's output) runs after each poll's batches, so lines appear promptly;
        detach (closing the probes) runs as soon as the stop is seen, so no new records
        race the drain and the lost count is final.
        """
        reader = self.channel.reader
        next_tick = time.monotonic() + interval if interval else None
        while not runner.stopping:
            reader.wait(min(poll_s, runner.wait_timeout()))
            for batch in self._batches(runner):
                on_batch(batch)
                self.handled += len(batch)
            if flush:
                flush()
            if next_tick is not None and on_tick and time.monotonic() >= next_tick:
                on_tick()
                next_tick += interval
        if detach:
            detach()
        self._drain(on_batch, DRAIN_COMMAND_S if runner.stop_reason == "command exited"
                    else DRAIN_S)
        if flush:
            flush()
        return self.handled

    def _drain(self, on_batch, budget_s: float) -> None:
        end = time.monotonic() + budget_s
        if self.staged is not None:  # a round at a time (each at most ROUND_BYTES)
            while time.monotonic() < end:
                for batch in self.staged.round(final=True):
                    on_batch(batch)
                    self.handled += len(batch)
                if not self.staged.pending:
                    return
            self.abandoned = self.staged.abandon()
            return
        while time.monotonic() < end:
            batch = self._read()
            if batch is None:
                return
            on_batch(batch)
            self.handled += len(batch)
        self.abandoned = self.channel.reader.discard_pending_fixed(self.record_size)

    @property
    def lost(self) -> int:
        """Records the kernel dropped (ring full) plus those left unread at exit."""
        return self.channel.lost() + self.abandoned


def run_stream(channel: EventChannel, runner, handle: Callable[[memoryview], None],
               record_size: int, on_tick: Callable[[], None] | None = None,
               interval: float | None = None, out=None, detach=None) -> Stream:
    """A Stream for tools that decode one record at a time; returns it (for .lost).
    Batches are small (PER_RECORD_BATCH): at a few µs a record in Python, a stop is
    still seen within a few ms and the drain at exit keeps to its DRAIN_S."""
    stream = Stream(channel, record_size, batch_records=PER_RECORD_BATCH)

    def each(batch: Batch) -> None:
        for rec in batch.records():
            handle(rec)

    stream.run(runner, each, on_tick, interval, flush=out.flush if out else None,
               detach=detach)
    return stream
