"""Per-CPU staging of records (probes/staging.py, probes/unstage.py), on the real kernel.

The traced program (tests/programs/gohot) calls main.hot(i) for i = 0..n-1 in each of
its goroutines: every goroutine's calls must arrive, exactly once, in that order,
whether records go through the per-CPU blocks or (their block busy) straight to the
ring, and the lost count must account for any that could not be delivered.
"""

from __future__ import annotations

import shlex
import struct
import subprocess
import time
from contextlib import ExitStack

import numpy as np
import pytest
from conftest import LUMOS
from support.gobuild import build

from lumos.bpf.sys import possible_cpus
from lumos.probes.capture import HEADER_RECORD
from lumos.probes.eventprog import attach_events
from lumos.probes.staging import (
    BLOCKS_PER_CPU,
    MAX_EVENT_SIZE,
    StagedChannel,
    block_geometry,
)
from lumos.probes.stream import Stream
from lumos.session.runner import Runner
from lumos.targets.launch import Launched
from lumos.targets.plan import plan
from lumos.targets.target import Target
from lumos.tools.trace import build_variants


@pytest.fixture(scope="module")
def gohot() -> str:
    return str(build("../gohot"))


def test_block_geometry():
    assert block_geometry(40) == (4096, 102)
    assert block_geometry(1000) == (16384, 16)
    assert block_geometry(MAX_EVENT_SIZE)[1] == 16
    assert block_geometry(MAX_EVENT_SIZE + 8) == (0, 0)  # e.g. records with a user stack


def _trace(gohot: str, n: int, g: int, busy: int = 0):
    """Stage main.hot's calls. busy: how many of each CPU's blocks to mark taken before
    the program starts (as by programs preempted inside them), so that records take the
    next block, or with all taken, the direct path. Returns (x per goid, lost, blocks
    the last flush found busy)."""
    got = []
    with ExitStack() as stack:
        launched = Launched(shlex.split(f"{gohot} -n {n} -g {g}"))
        stack.callback(launched.close)
        target = Target(launched.exe, launched.pid, launched, ["main.hot"])
        functions = plan(target, ["main.hot"])
        sites, variants, _ = build_variants(functions, None, False, False)
        channel = StagedChannel(16 << 20).open(stack)
        probes = stack.enter_context(ExitStack())
        size, _ = attach_events(variants, sites, channel, launched.pid, "lumos_trace",
                                probes)
        assert channel.staged and channel.event_size == size
        stride = (channel.value_size + 7) & ~7
        for k in range(busy):
            block = struct.pack("<II", 0, 1).ljust(stride, b"\0")
            channel.stage.update(struct.pack("<I", k), block * possible_cpus())
        dtype = np.dtype({"names": ["ts", "goid", "x"], "formats": ["<u8", "<u8", "<i8"],
                          "offsets": [HEADER_RECORD.offset("ts_ns"),
                                      HEADER_RECORD.offset("goid"), HEADER_RECORD.size]})
        launched.start()
        with Runner(None, launched) as runner:
            stream = Stream(channel, size)
            stream.run(runner, lambda b: got.append(b.records_as(dtype).copy()),
                       detach=probes.close)
        still_busy = channel.flush()
        lost = stream.lost
    rows = np.concatenate(got) if got else np.empty(0, dtype)
    assert (np.diff(rows["ts"].astype(np.int64)) >= 0).all(), "records out of time order"
    per_goid = {int(g): rows["x"][rows["goid"] == g].tolist() for g in np.unique(rows["goid"])}
    return per_goid, lost, still_busy


@pytest.mark.parametrize("goroutines", [1, 3])
def test_staged_records_arrive_complete_and_in_order(gohot, goroutines):
    n = 20_000
    per_goid, lost, busy = _trace(gohot, n, goroutines)
    assert lost == 0 and busy == 0
    assert len(per_goid) == goroutines
    for xs in per_goid.values():
        assert xs == list(range(n))


def test_a_busy_block_leaves_the_other_to_the_rest(gohot):
    """Each CPU's first block held busy (as by a program preempted inside it): records
    go to the second, nothing is lost or reordered, and the flusher reports the blocks
    it could not take."""
    n = 20_000
    per_goid, lost, busy = _trace(gohot, n, 2, busy=1)
    assert lost == 0 and busy == possible_cpus()
    assert sorted(map(len, per_goid.values())) == [n, n]
    for xs in per_goid.values():
        assert xs == list(range(n))


def test_all_blocks_busy_sends_records_straight_to_the_ring(gohot):
    """Both blocks busy: each record goes to the ring as a block of one (4 KiB of a
    16 MiB ring: 1,500 of them fit with room)."""
    n = 750
    per_goid, lost, busy = _trace(gohot, n, 2, busy=BLOCKS_PER_CPU)
    assert lost == 0 and busy == BLOCKS_PER_CPU * possible_cpus()
    assert sorted(map(len, per_goid.values())) == [n, n]
    for xs in per_goid.values():
        assert xs == list(range(n))


def test_a_lone_call_shows_while_the_program_runs():
    """A partial block reaches the reader at the next poll, not when the block fills or
    the tool exits: the first call of a program making two a second shows at once."""
    streamer = build("streamer")
    proc = subprocess.Popen([*LUMOS, "trace", "--json", "-c", f"{streamer} -rate 2 -d 30",
                             "main.emit"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        t0 = time.monotonic()
        line = proc.stdout.readline()
        while line and '"event":"call"' not in line:
            line = proc.stdout.readline()
        assert '"func":"main.emit"' in line, line
        assert time.monotonic() - t0 < 15 and proc.poll() is None  # long before its end
    finally:
        proc.kill()
        proc.wait()
