"""Consuming a BPF ring buffer map (Linux 5.8) from Python: mmap + epoll.

Layout (kernel/bpf/ringbuf.c): page 0 holds consumer_pos (we write it); page 1 holds
producer_pos; the data area follows. The kernel offers it mapped twice in a row so that
a record that wraps is contiguous, but a mapping's pages all count in the reader's
resident memory at once (they are mapped when mmap returns): lumos maps it once and
copies a wrapping stretch in two parts, so a 16 MiB ring costs 16 MiB, not 32.
Each record has an 8-byte header: u32 length with BUSY (bit 31) and
DISCARD (bit 30) flags, u32 page offset; records are 8-byte aligned.

The kernel wakes the reader only when a record lands on an empty buffer (the default
"adaptive" wake-up), so a busy producer causes one wake-up per drain, not per record.
"""

from __future__ import annotations

import mmap
import re
import select
import struct
from collections.abc import Callable

from lumos.bpf.maps import Map
from lumos.bpf.sys import BPF_MAP_TYPE_RINGBUF
from lumos.errors import BPFError

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8

_u64 = struct.Struct("<Q")
_u32 = struct.Struct("<I")


class RingBuffer:
    """Reader of one ring buffer map. Close it (or use `with`)."""

    def __init__(self, rb_map: Map):
        if rb_map.spec.type != BPF_MAP_TYPE_RINGBUF:
            raise BPFError(f"map {rb_map.name} is not a ring buffer")
        self.map = rb_map
        self.size = rb_map.spec.max_entries
        self._mask = self.size - 1
        page = mmap.PAGESIZE
        try:
            self._cons = mmap.mmap(rb_map.fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._prod = mmap.mmap(rb_map.fd, page + self.size, mmap.MAP_SHARED,
                                   mmap.PROT_READ, offset=page)
        except OSError as e:
            raise BPFError(f"mmap ring buffer {rb_map.name}: {e.strerror}", e.errno) from None
        self._data = memoryview(self._prod)[page:]
        self._epoll = select.epoll()
        self._epoll.register(rb_map.fd, select.EPOLLIN)
        self.records = 0  # consumed so far

    def close(self) -> None:
        if self._epoll.closed:
            return
        self._epoll.close()
        self._data.release()
        self._prod.close()
        self._cons.close()

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        return self._epoll.fileno()

    def wait(self, timeout_s: float) -> bool:
        """Block until data may be there or the timeout passes; EINTR counts as a wake-up."""
        try:
            return bool(self._epoll.poll(timeout_s))
        except InterruptedError:
            return True

    def pending_bytes(self) -> int:
        return _u64.unpack_from(self._prod, 0)[0] - _u64.unpack_from(self._cons, 0)[0]

    def _copy(self, pos: int, nbytes: int) -> bytes:
        """nbytes of the data area from ring position pos, across the wrap if need be."""
        start = pos & self._mask
        end = start + nbytes
        if end <= self.size:
            return bytes(self._data[start:end])
        return bytes(self._data[start:]) + bytes(self._data[:end - self.size])

    def _header(self, pos: int) -> int:
        return _u32.unpack_from(self._data, pos & self._mask)[0]  # 8-aligned: never wraps

    def drain(self, callback: Callable[[bytes], None], limit: int = 0) -> int:
        """Hand every committed record to callback (as bytes); returns how many.

        Stops at a record still being written (BUSY). consumer_pos is published after
        every record so the producer regains space as soon as possible.
        """
        cons = _u64.unpack_from(self._cons, 0)[0]
        prod = _u64.unpack_from(self._prod, 0)[0]
        n = 0
        while cons < prod:
            hdr = self._header(cons)
            if hdr & BUSY_BIT:
                break
            length = hdr & ~(BUSY_BIT | DISCARD_BIT)
            if not hdr & DISCARD_BIT:
                callback(self._copy(cons + HDR_SIZE, length))
                n += 1
            cons += (length + HDR_SIZE + 7) & ~7
            _u64.pack_into(self._cons, 0, cons)
            if limit and n >= limit:
                break
        self.records += n
        return n

    def read_chunk(self) -> tuple[bytes, int]:
        """Copy out every committed record at once: (raw bytes with headers, count).

        The fast path for high event rates: one copy and one consumer_pos store per
        batch; split the chunk later with iter_records(), off the reading loop.
        """
        cons = _u64.unpack_from(self._cons, 0)[0]
        prod = _u64.unpack_from(self._prod, 0)[0]
        stop, n = cons, 0
        while stop < prod:
            hdr = self._header(stop)
            if hdr & BUSY_BIT:
                break
            stop += ((hdr & ~(BUSY_BIT | DISCARD_BIT)) + HDR_SIZE + 7) & ~7
            n += 1
        if stop == cons:
            return b"", 0
        chunk = self._copy(cons, stop - cons)
        _u64.pack_into(self._cons, 0, stop)
        self.records += n
        return chunk, n

    def read_chunk_fixed(self, record_size: int, limit: int = 0) -> tuple[bytes, int]:
        """read_chunk() for a ring whose records all have record_size bytes (at most
        `limit` records when limit > 0).

        Record boundaries are known, so the first uncommitted record is found with a
        strided slice of the header bytes and a regex search, at C speed: no Python
        work per record. (A discarded record keeps its size, so it is skipped later by
        iter_records.)
        """
        cons = _u64.unpack_from(self._cons, 0)[0]
        prod = _u64.unpack_from(self._prod, 0)[0]
        stride = (record_size + HDR_SIZE + 7) & ~7
        n = (prod - cons) // stride
        if limit:
            n = min(n, limit)
        if n <= 0:
            return b"", 0
        chunk = self._copy(cons, n * stride)
        # byte 3 of each header holds the BUSY bit (bit 31 of the little-endian length)
        busy = _BUSY_BYTE.search(chunk[3::stride])
        if busy is not None:
            n = busy.start()
            if n == 0:
                return b"", 0
            chunk = chunk[:n * stride]
        _u64.pack_into(self._cons, 0, cons + n * stride)
        self.records += n
        return chunk, n

    def block_parts(self, stride: int, limit: int) -> tuple[list[memoryview], int]:
        """The committed records of a ring whose records are all `stride` bytes (header
        included), stride a power of two so that none wraps: at most `limit` of them, up
        to the first still being written, as one or two views of the mapped ring (no
        copy: release them before closing the reader). Returns (views, bytes); nothing
        is consumed until consume(bytes)."""
        cons = _u64.unpack_from(self._cons, 0)[0]
        prod = _u64.unpack_from(self._prod, 0)[0]
        n = min((prod - cons) // stride, limit)
        # byte 3 of each header holds the BUSY bit: one byte per block (4,096 in a 16 MiB
        # ring of 4 KiB blocks)
        flags = bytes(self._data[((cons + j * stride) & self._mask) + 3] for j in range(n))
        busy = _BUSY_BYTE.search(flags)
        if busy is not None:
            n = busy.start()
        start, nbytes = cons & self._mask, n * stride
        first = min(nbytes, self.size - start)
        parts = [self._data[start:start + first]]
        if nbytes > first:
            parts.append(self._data[:nbytes - first])
        return [p for p in parts if len(p)], nbytes

    def consume(self, nbytes: int) -> None:
        """Release nbytes of records (after block_parts) to the producer."""
        cons = _u64.unpack_from(self._cons, 0)[0]
        _u64.pack_into(self._cons, 0, cons + nbytes)

    def discard_pending(self) -> int:
        """Release the records committed so far, unread; returns how many (the caller
        counts them as lost). Bounded by the producer position at the call: a producer
        still running cannot keep it busy."""
        cons = _u64.unpack_from(self._cons, 0)[0]
        prod = _u64.unpack_from(self._prod, 0)[0]
        n = 0
        while cons < prod:
            hdr = self._header(cons)
            if hdr & BUSY_BIT:
                break
            n += not hdr & DISCARD_BIT
            cons += ((hdr & ~(BUSY_BIT | DISCARD_BIT)) + HDR_SIZE + 7) & ~7
        _u64.pack_into(self._cons, 0, cons)
        return n

    def discard_pending_fixed(self, record_size: int) -> int:
        """discard_pending() for a ring of record_size records, without Python work per
        record: committed records are taken in chunks and their DISCARD bits counted.
        Bounded by the producer position at the call, as discard_pending is."""
        stride = (record_size + HDR_SIZE + 7) & ~7
        left = (_u64.unpack_from(self._prod, 0)[0] - _u64.unpack_from(self._cons, 0)[0]) \
            // stride
        n = 0
        while left > 0:
            chunk, got = self.read_chunk_fixed(record_size, min(left, DISCARD_CHUNK // stride))
            if not got:
                break
            # byte 3 of each header holds the DISCARD bit (bit 30 of the length word)
            n += got - chunk[3::stride].translate(_DISCARDED).count(1)
            left -= got
            self.records -= got  # released unread: not consumed
        return n


DISCARD_CHUNK = 4 << 20  # bytes copied at a time while discarding: not the whole ring at once
_BUSY_BYTE = re.compile(rb"[\x80-\xff]")
_DISCARDED = bytes((b >> 6) & 1 for b in range(256))  # header byte 3 -> its DISCARD bit


def iter_records(chunk: bytes):
    """Record payloads (memoryviews) of a chunk from read_chunk(), discarded ones skipped."""
    view = memoryview(chunk)
    pos, end = 0, len(chunk)
    while pos < end:
        hdr = _u32.unpack_from(chunk, pos)[0]
        length = hdr & ~(BUSY_BIT | DISCARD_BIT)
        if not hdr & DISCARD_BIT:
            yield view[pos + HDR_SIZE: pos + HDR_SIZE + length]
        pos += (length + HDR_SIZE + 7) & ~7
