"""Events to user space a block at a time: a per-CPU staging block in front of the ring.

A ring buffer reserve + submit costs the traced thread ~55 ns per event here (the ring's
spinlock, its header, a fresh cache line per record): more than everything else
`lumos trace` does per event together. A StagedChannel has each program append its
record to its CPU's block (a per-CPU array value, so no lock is shared between CPUs)
and hand the whole block to the ring with one bpf_ringbuf_output when it is full.

Block (the per-CPU value, and each ring record, BLOCK bytes with the ring's header):
    u32 count   records in the block
    u32 busy    1 while a program (or the flusher) is filling or emptying it
    records     per_block slots of event_size bytes, the first `count` valid

- busy is taken with a compare-and-swap: a program preempted inside its block (the
  kernel is PREEMPT_DYNAMIC) leaves it busy for a while, so each CPU has two blocks: the
  programs that run meanwhile on that CPU use the other one, and in the rarer case that
  both are busy, a program writes its record straight to the ring as a block of one.
  Nothing waits, nothing is torn.
- A block that is not full reaches the ring when the reader asks: before every poll it
  runs the flusher (a BPF_PROG_TYPE_SYSCALL program, run by BPF_PROG_TEST_RUN), which
  takes each CPU's block in turn (bpf_map_lookup_percpu_elem) and outputs what it holds.
  So a record waits at most one poll, as it did when each went to the ring at once.
- Blocks are a power of two long, so in a power-of-two ring they never wrap and the
  reader can find their boundaries without walking them (RingBuffer.committed_blocks).
- A block the ring has no room for counts all its records in lumos_drops.
- Records of different CPUs interleave in time across blocks: the reader sorts them by
  timestamp, up to the moment of the flush (probes/stream.py, StagedReader).

Records over MAX_EVENT_SIZE (e.g. with a user stack) gain nothing from it: the channel
then writes them to the ring one by one, as EventChannel does.
"""

from __future__ import annotations

import struct
import time

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    Add,
    Asm,
    Helper,
    Jeq,
    Jge,
    Jlt,
    Jne,
    Mov,
    Mul,
    Reg,
    atomic_add,
    atomic_cmpxchg,
    call,
    exit_,
    ja,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.maps import array_spec, create_map
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.sys import BPF_F_SLEEPABLE, BPF_PROG_TYPE_SYSCALL, possible_cpus
from lumos.errors import BPFError
from lumos.probes.channel import BPF_RB_NO_WAKEUP, EventChannel

BLOCK_HEADER = 8           # u32 count, u32 busy
RING_HEADER = 8            # the ring's own record header
MIN_BLOCK = 4096
MAX_BLOCK = 32768          # a per-CPU value can be at most 32 KiB (PCPU_MIN_UNIT_SIZE)
MIN_PER_BLOCK = 16         # fewer records per block than this: not worth staging
MAX_EVENT_SIZE = (MAX_BLOCK - RING_HEADER - BLOCK_HEADER) // MIN_PER_BLOCK
FLUSH_TRIES = 4            # flusher runs when some CPU's block stays busy ...
FLUSH_PAUSE_S = 0.0002     # ... with pauses of 0.2, 0.4, 0.6 ms between them
BLOCKS_PER_CPU = 2         # a program preempted holding one leaves the other to the rest


def block_geometry(event_size: int) -> tuple[int, int]:
    """(block bytes including the ring header, records per block) for records of
    event_size bytes, or (0, 0) when they are too big to stage."""
    if event_size <= 0 or event_size > MAX_EVENT_SIZE:
        return 0, 0
    block = MIN_BLOCK
    while (block - RING_HEADER - BLOCK_HEADER) // event_size < MIN_PER_BLOCK:
        block *= 2
    return block, (block - RING_HEADER - BLOCK_HEADER) // event_size


class StagedChannel(EventChannel):
    """An EventChannel whose programs stage records per CPU (see the module docstring).

    The record size is learnt from the first emit_reserve (every program on one channel
    writes records of one size); the staging map and the flusher are made then.
    """

    def __init__(self, ring_bytes: int, name: str = "lumos_events"):
        super().__init__(ring_bytes, name)
        self.event_size = 0
        self.block_bytes = 0   # ring stride of a block (header included); 0: not staged
        self.per_block = 0
        self.stage = None
        self.flusher = None
        self._stack = None

    def open(self, stack) -> StagedChannel:
        super().open(stack)
        self._stack = stack
        return self

    @property
    def staged(self) -> bool:
        return self.per_block > 0

    @property
    def value_size(self) -> int:
        return self.block_bytes - RING_HEADER

    def _plan(self, size: int) -> None:
        if self.event_size:
            if size != self.event_size:
                raise BPFError(f"lumos bug: records of {size} and {self.event_size} bytes "
                               f"on one staged channel")
            return
        self.event_size = size
        block, per = block_geometry(size)
        if not block or block > self.ring_bytes:
            return
        self.block_bytes, self.per_block = block, per
        try:
            self.stage = self._stack.enter_context(create_map(
                array_spec("lumos_stage", block - RING_HEADER, BLOCKS_PER_CPU, percpu=True)))
            self.flusher = self._stack.enter_context(load_program(self._flusher_spec()))
        except BPFError:  # a kernel before 5.19 (bpf_map_lookup_percpu_elem): one by one
            self.block_bytes = self.per_block = 0

    def describe_maps(self) -> str:
        text = super().describe_maps()
        if self.staged:
            text += (f"\n  lumos_stage: per-CPU array, {BLOCKS_PER_CPU} blocks of "
                     f"{self.per_block} records each ({self.value_size} bytes: u32 count, "
                     f"u32 busy, the records); emptied into {self.name} by whoever fills "
                     f"one, and by lumos_flush before each poll")
        return text

    # -- the traced side ------------------------------------------------------------

    def emit_reserve(self, a: Asm, size: int, dst: Reg, skip: str) -> None:
        """dst = the next free slot of this CPU's block (busy taken), or a block of one
        reserved in the ring when the block is busy; else count a drop and go to skip."""
        self._plan(size)
        if not self.staged:
            return super().emit_reserve(a, size, dst, skip)
        key, where = a.frame.slot("drop_key", 8), a.frame.slot("stage_block", 8)
        direct, done, took = a.fresh("direct"), a.fresh("staged"), a.fresh("took")
        for k in range(BLOCKS_PER_CPU):
            other = a.fresh("busy")
            a.comment(f"StagedChannel: R0 = this CPU's block {k} in lumos_stage "
                      f"({self.per_block} records of {size} bytes); taken if not busy "
                      f"(cmpxchg 0 -> 1)" + ("" if k else "; busy: the next block"))
            a.emit(st(4, FP, key, k), ld_map_fd(R1, self.stage), Mov.reg(R2, FP),
                   Add.imm(R2, key), call(Helper.map_lookup_elem), Jeq.imm(R0, 0, other),
                   stx(8, FP, where, R0), Mov.reg(R2, R0), Mov.imm(R0, 0), Mov.imm(R1, 1),
                   atomic_cmpxchg(4, R2, 4, R1), Jeq.imm(R0, 0, took))
            a.label(other)
        a.emit(ja(direct))
        a.label(took)
        a.comment("StagedChannel: dst = block + 8 + count * size (count < per_block: the "
                  "block is emptied when it fills)")
        a.emit(ldx(8, R0, FP, where), ldx(4, R1, R0, 0), Jge.imm(R1, self.per_block, done + ".odd"),
               Mov.imm(R2, size), Mul.reg(R1, R2), Add.reg(R0, R1), Add.imm(R0, BLOCK_HEADER),
               Mov.reg(dst, R0), ja(done))
        a.label(done + ".odd")  # never: a full block is emptied by whoever fills it
        a.emit(st(4, R0, 4, 0))
        a.label(direct)
        a.comment(f"StagedChannel: every block busy: a block of one, reserved in "
                  f"{self.name}; full: count it in lumos_drops")
        a.emit(st(8, FP, where, 0))
        super().emit_reserve(a, self.value_size, R0, skip)
        ring = a.frame.slot("ring_record", 8)
        a.emit(stx(8, FP, ring, R0), st(4, R0, 0, 1), st(4, R0, 4, 0),
               Add.imm(R0, BLOCK_HEADER), Mov.reg(dst, R0))
        a.label(done)

    def emit_submit(self, a: Asm, record: Reg) -> None:
        """count += 1 and let go of the block, outputting it first when full; a block of
        one is submitted."""
        if not self.staged:
            return super().emit_submit(a, record)
        where, ring = a.frame.slot("stage_block", 8), a.frame.slot("ring_record", 8)
        direct, release, done = a.fresh("submit"), a.fresh("release"), a.fresh("submitted")
        a.comment("StagedChannel: count += 1; a full block goes to the ring in one "
                  "bpf_ringbuf_output")
        a.emit(ldx(8, R1, FP, where), Jeq.imm(R1, 0, direct), ldx(4, R2, R1, 0),
               Add.imm(R2, 1), stx(4, R1, 0, R2), Jlt.imm(R2, self.per_block, release))
        self._emit_output(a, R1, self.per_block)
        a.emit(ldx(8, R1, FP, where), st(4, R1, 0, 0))
        a.label(release)
        a.comment("StagedChannel: busy = 0 (a plain store: x86 keeps stores in order)")
        a.emit(st(4, R1, 4, 0), ja(done))
        a.label(direct)
        a.emit(ldx(8, R1, FP, ring), Mov.imm(R2, BPF_RB_NO_WAKEUP),
               call(Helper.ringbuf_submit))
        a.label(done)

    def _emit_output(self, a: Asm, block: Reg, records) -> None:
        """bpf_ringbuf_output(ring, block, value_size); if the ring is full, `records`
        (an int, or a _Slot holding the count) are counted in lumos_drops."""
        ok = a.fresh("output")
        key = a.frame.slot("drop_key", 8)
        a.emit(Mov.reg(R2, block), ld_map_fd(R1, self.ring), Mov.imm(R3, self.value_size),
               Mov.imm(R4, BPF_RB_NO_WAKEUP), call(Helper.ringbuf_output),
               Jeq.imm(R0, 0, ok))
        a.comment("StagedChannel: the ring is full: the block's records are lost, counted")
        a.emit(st(4, FP, key, 0), ld_map_fd(R1, self.drops), Mov.reg(R2, FP),
               Add.imm(R2, key), call(Helper.map_lookup_elem), Jeq.imm(R0, 0, ok))
        if isinstance(records, int):
            a.emit(Mov.imm(R1, records))
        else:  # a stack slot: no register survives the helper calls
            a.emit(ldx(8, R1, FP, records.off))
        a.emit(atomic_add(8, R0, 0, R1))
        a.label(ok)

    # -- the reader's side ----------------------------------------------------------

    def _flusher_spec(self) -> ProgramSpec:
        """For each CPU: take its block (cmpxchg busy 0 -> 1), output it if it holds
        records, empty it, let go. R0 = how many blocks were busy (left for next time)."""
        a = Asm()
        key = a.frame.slot("key", 8)
        a.comment("flusher: R7 = blocks found busy")
        a.emit(Mov.imm(R7, 0))
        for cpu in range(possible_cpus()):
            for k in range(BLOCKS_PER_CPU):
                self._emit_flush_block(a, cpu, k, key)
        a.emit(Mov.reg(R0, R7), exit_())
        return ProgramSpec("lumos_flush", BPF_PROG_TYPE_SYSCALL, tuple(a.finish()),
                           prog_flags=BPF_F_SLEEPABLE,
                           about=f"maps: lumos_stage (per-CPU blocks of {self.per_block} "
                                 f"records of {self.event_size} bytes), {self.name}, "
                                 f"lumos_drops")

    def _emit_flush_block(self, a: Asm, cpu: int, k: int, key: int) -> None:
        nxt, busy = a.fresh(f"cpu{cpu}.{k}.done"), a.fresh(f"cpu{cpu}.{k}.busy")
        a.comment(f"flusher: CPU {cpu}'s block {k} (bpf_map_lookup_percpu_elem)")
        a.emit(st(4, FP, key, k), ld_map_fd(R1, self.stage), Mov.reg(R2, FP),
               Add.imm(R2, key), Mov.imm(R3, cpu), call(Helper.map_lookup_percpu_elem),
               Jeq.imm(R0, 0, nxt), Mov.reg(R6, R0), Mov.imm(R0, 0), Mov.imm(R1, 1),
               atomic_cmpxchg(4, R6, 4, R1), Jne.imm(R0, 0, busy),
               ldx(4, R1, R6, 0), Jeq.imm(R1, 0, nxt + ".free"))
        a.emit(stx(8, FP, a.frame.slot("count", 8), R1))
        self._emit_output(a, R6, _Slot(a.frame.slot("count", 8)))
        a.emit(st(4, R6, 0, 0))
        a.label(nxt + ".free")
        a.emit(st(4, R6, 4, 0), ja(nxt))
        a.label(busy)
        a.emit(Add.imm(R7, 1))
        a.label(nxt)
        a.emit(Mov.imm(R0, 0))

    def flush(self) -> int:
        """Move every CPU's partial block to the ring; returns how many stayed busy.

        A block is busy for ~100 ns, unless its program was preempted inside it, often
        by this very reader waking on that CPU: then trying again at once cannot help,
        so between tries the reader sleeps a moment and lets it finish."""
        if not self.staged:
            return 0
        busy = self.flusher.test_run(repeat=0)
        for attempt in range(1, FLUSH_TRIES):
            if not busy:
                break
            time.sleep(FLUSH_PAUSE_S * attempt)
            busy = self.flusher.test_run(repeat=0)
        return busy

    def oldest_staged_ns(self) -> int | None:
        """A time no record still staged or being staged is older than (after a flush
        that found blocks busy), read from user space; None if nothing is staged.

        A busy block's program may have stamped its record without counting it yet:
        that record's slot (the one `count` names) is read too. Its stamp may be stale,
        left by an earlier round: older, so it only holds records back a round longer."""
        stamps = []
        for k in range(BLOCKS_PER_CPU):
            for v in self.stage.lookup_percpu(struct.pack("<I", k)) or []:
                count, busy = struct.unpack_from("<II", v, 0)
                if busy and count < self.per_block:
                    stamps.append(struct.unpack_from(
                        "<Q", v, BLOCK_HEADER + count * self.event_size)[0])
                if count:
                    stamps.append(struct.unpack_from("<Q", v, BLOCK_HEADER)[0])
        return min(stamps) if stamps else None


class _Slot:
    """A count kept in a stack slot (the flusher's R1 does not survive the output)."""

    def __init__(self, off: int):
        self.off = off
