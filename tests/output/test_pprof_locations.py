"""pprof output, read back by `go tool pprof`: a sample with no stack at all is kept
under a location named "[unknown]" (perf's and pprof's name for what they cannot
resolve), not as a sample with no location; kernel frames sit in a mapping of their own,
"[kernel.kallsyms]", as perf's converters name it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from support.profiling import pprof

from lumos.output.flame import folded_lines
from lumos.output.pprof import read_pprof, write_pprof
from lumos.probes.stackcount import StackCount
from lumos.targets.stacks import StackSymbolizer, merge_samples


def test_stackless_samples_are_unknown_and_kernel_frames_have_their_mapping(tmp_path):
    sym = StackSymbolizer(None)
    me = os.getpid()
    # as read_counts returns them: a user stack id of -EFAULT (14) and no kernel stack;
    # a kernel-only stack (a kernel thread); a user stack of this very process
    here = int(Path(f"/proc/{me}/maps").read_text().split("-", 1)[0], 16)
    kaddr = next(iter(_some_kernel_addresses()))
    counts = [StackCount(0, "kworker", (), (), 0, 7, 0, 0, user_error=-14),
              StackCount(0, "kworker", (), (kaddr,), 0, 5, 0, 0, user_error=-14),
              StackCount(me, "python", (here,), (), 0, 3, 0, 0)]
    samples = merge_samples(sym.samples(counts, lambda c: [c.count, c.count * 10]))
    path = str(tmp_path / "p.pb.gz")
    write_pprof(path, samples, [("samples", "count"), ("cpu", "nanoseconds")])

    top = pprof("1.27.3", "-top", "-sample_index=samples", path)
    assert re.search(r"^\s+7\s+46\.67%\s+46\.67%\s+7\s+46\.67%\s+\[unknown\]$", top, re.M), top
    assert "of 15 total" in top, top      # nothing dropped

    prof = read_pprof(path)
    st = prof.string_table
    maps = {m.id: st[m.filename] for m in prof.mapping}
    by_name = {st[f.name]: f.id for f in prof.function}
    for loc in prof.location:
        fid = loc.line[0].function_id
        if fid == by_name["[unknown]"]:
            assert maps[loc.mapping_id] == "lumos" and loc.address == 0
        elif loc.address == kaddr:
            assert maps[loc.mapping_id] == "[kernel.kallsyms]"
        else:
            assert maps[loc.mapping_id] == "lumos"
    assert sum(len(s.location_id) == 0 for s in prof.sample) == 0
    assert "[unknown] 7" in folded_lines(samples)


def _some_kernel_addresses():
    """A few text addresses from /proc/kallsyms (root sees real ones)."""
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, kind, _name = line.split()[:3]
            if kind in "tT" and int(addr, 16):
                yield int(addr, 16) + 1
