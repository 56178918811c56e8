"""Reading a StagedChannel: blocks of records out of the ring, back in time order.

Each CPU's blocks hold its records in order, but the blocks of different CPUs interleave
in time, and the partial blocks the flusher moves to the ring land after full ones with
newer records. So each round (one poll):

1. note the time F and run the flusher: from then on every record stamped before F is
   in the ring (a block the flusher found busy holds records from its oldest stamp on:
   F is lowered to that stamp);
2. take the committed blocks (at most ROUND_BYTES of them) as views of the mapped ring,
   gather their valid records with the ones kept back from the last round, and sort
   them by timestamp (a stable sort: a CPU's own order is kept);
3. hand on, in batches, the records stamped up to F; keep back the few stamped after it
   (written while the flusher ran) for the next round, where they meet their elders.

A round takes at most ROUND_BYTES of a longer backlog; the blocks it leaves bound what
it may hand on (a block's records are no older than its first), so order holds across
rounds too. What the ring cannot hold is dropped in the kernel and counted as lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from lumos.bpf.ringbuf import DISCARD_BIT, HDR_SIZE
from lumos.probes.staging import BLOCK_HEADER, RING_HEADER, StagedChannel

ROUND_BYTES = 2 << 20   # blocks taken from the ring per round, at most (memory: about
                        # twice this in copies while a round is sorted and handed on)
NEVER = np.iinfo(np.uint64).max


class StagedReader:
    """Rounds of time-ordered records from a StagedChannel, as stream Batches."""

    def __init__(self, channel: StagedChannel, batch_records: int, dtype=None):
        self.channel = channel
        self.batch_records = batch_records
        self.dtype = dtype
        self.size = channel.event_size
        self.per_block = channel.per_block
        self.stride = channel.block_bytes
        self.kept = np.empty((0, self.size), np.uint8)  # stamped after the last flush
        self.more = False  # the last round stopped at ROUND_BYTES: more is waiting

    @property
    def pending(self) -> bool:
        """Records wait: in blocks a round left, or kept back (stamped too late)."""
        return self.more or len(self.kept) > 0

    def round(self, final: bool = False) -> Iterator:
        """The Batches of one round; final (probes detached): everything, no keeping back."""
        from lumos.probes.stream import Batch
        watermark = NEVER if final else time.monotonic_ns()
        if self.channel.flush() and not final:
            oldest = self.channel.oldest_staged_ns()
            if oldest is not None:
                watermark = min(watermark, max(oldest - 1, 0))
        rows, nbytes, left = self._take()
        self.more = left is not None
        if left is not None:  # older records may wait in the blocks left for next time
            watermark = min(watermark, max(left - 1, 0))
        if nbytes:
            self.channel.reader.consume(nbytes)
        if not len(rows):
            return
        stamps = rows[:, :8].copy().view("<u8").ravel()
        order = np.argsort(stamps, kind="stable")
        ready = int(np.searchsorted(stamps[order], watermark, side="right"))
        if (len(order) - ready) * self.size > ROUND_BYTES:  # a block busy for long (its
            ready = len(order)  # program preempted): memory first, order after that
        self.kept = rows[order[ready:]]
        order = order[:ready]
        framed = (self.size + HDR_SIZE + 7) & ~7
        for lo in range(0, len(order), self.batch_records):
            part = order[lo:lo + self.batch_records]
            out = np.empty((len(part), framed), np.uint8)
            out[:, :HDR_SIZE] = 0  # a ring-style header: not busy, not discarded
            out[:, HDR_SIZE:HDR_SIZE + self.size] = rows[part]
            out[:, HDR_SIZE + self.size:] = 0
            yield Batch(out.reshape(-1), len(part), self.size, self.dtype)

    def _take(self) -> tuple[np.ndarray, int, int | None]:
        """The valid records of the committed blocks, at most ROUND_BYTES of them (copied
        out), plus those kept back; the bytes of ring they came from; and the oldest
        stamp of the committed blocks left for the next round (None if none): no
        record of theirs is older, so it bounds what this round may hand on."""
        reader = self.channel.reader
        views, nbytes = reader.block_parts(self.stride, self.channel.ring_bytes // self.stride)
        taken = min(nbytes, ROUND_BYTES // self.stride * self.stride)
        got = [self.kept] if len(self.kept) else []
        left, pos = None, 0
        try:
            for view in views:
                blocks = np.frombuffer(view, np.uint8).reshape(-1, self.stride)
                k = max(0, min(len(blocks), (taken - pos) // self.stride))
                if k:
                    got.append(self._records(blocks[:k]))
                if k < len(blocks):
                    oldest = self._oldest(blocks[k:])
                    if oldest is not None:
                        left = oldest if left is None else min(left, oldest)
                pos += len(blocks) * self.stride
                del blocks
        finally:
            for view in views:
                view.release()
        if not got:
            return self.kept, taken, left
        return (got[0] if len(got) == 1 else np.concatenate(got)), taken, left

    def _counts(self, blocks: np.ndarray) -> np.ndarray:
        """Records held by each block (a discarded one holds none)."""
        counts = blocks[:, RING_HEADER:RING_HEADER + 4].copy().view("<u4").ravel()
        counts[(blocks[:, 3] & (DISCARD_BIT >> 24)) != 0] = 0
        return np.minimum(counts, self.per_block)

    def _oldest(self, blocks: np.ndarray) -> int | None:
        live = self._counts(blocks) > 0
        if not live.any():
            return None
        first = RING_HEADER + BLOCK_HEADER
        return int(blocks[live, first:first + 8].copy().view("<u8").min())

    def _records(self, blocks: np.ndarray) -> np.ndarray:
        first = RING_HEADER + BLOCK_HEADER
        slots = blocks[:, first:first + self.per_block * self.size] \
            .reshape(len(blocks), self.per_block, self.size)
        valid = np.arange(self.per_block)[None, :] < self._counts(blocks)[:, None]
        return slots[valid]

    def abandon(self) -> int:
        """Release every committed block unread (at exit, past the drain's budget);
        returns how many records they held, plus those kept back."""
        n, self.kept = len(self.kept), self.kept[:0]
        while True:
            views, nbytes = self.channel.reader.block_parts(self.stride,
                                                            ROUND_BYTES // self.stride)
            if not nbytes:
                return n
            try:
                for view in views:
                    blocks = np.frombuffer(view, np.uint8).reshape(-1, self.stride)
                    n += int(self._counts(blocks).sum())
                    del blocks
            finally:
                for view in views:
                    view.release()
            self.channel.reader.consume(nbytes)
