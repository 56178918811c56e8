"""lumos allocs: Go heap allocations with stacks, equal to the program's own heap profile
written in the same run; the --plot PNG carries the same totals as the pprof."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from support.gobuild import build
from support.profiling import pprof_top, run_tool

from lumos.output.pprof import read_pprof


@pytest.mark.parametrize("version,variant", [("1.19", "default"), ("1.21.13", "default"),
                                             ("1.23.9", "pie"), ("1.27.3", "default"),
                                             ("1.27.3", "stripped")])
def test_alloc_space_matches_the_programs_own_heap_profile(version, variant, tmp_path):
    exe = build("profiled", version, variant)
    prof, own, png = tmp_path / "heap.pb.gz", tmp_path / "go.heap", tmp_path / "mem.png"
    args = ["allocs", "-c", f"{exe} alloc 2 200 {own}", "--pprof", str(prof),
            "--plot", str(png), "-i", "0.5"]
    if variant == "stripped":
        args += ["--rate", "524288"]
    run_tool(*args)
    mine = pprof_top(str(prof), "alloc_space")
    theirs = pprof_top(str(own), "alloc_space")
    for fn in ("main.allocBig", "main.newNode (inline)"):
        assert theirs[fn][0] > 50 << 20
        assert abs(mine[fn][0] - theirs[fn][0]) <= 0.10 * theirs[fn][0], (fn, mine, theirs)
    assert mine["main.allocSmall"][1] == pytest.approx(mine["main.newNode (inline)"][0])
    # the PNG opens, and the numbers it plots add up to the pprof's per function
    img = Image.open(png)
    assert img.format == "PNG" and img.size == (1000, 500)
    data = json.loads(img.text["lumos-series"])
    assert len(data["series"]) >= 2 and len(data["times"]) >= 3
    for fn, key in (("main.allocBig", "main.allocBig"), ("main.newNode", "main.newNode (inline)")):
        assert sum(data["series"][fn]) == pytest.approx(mine[key][0], rel=0.001)


def test_every_counts_each_allocation(tmp_path):
    exe = build("profiled", "1.19", "default")
    prof = tmp_path / "every.pb.gz"
    r = run_tool("allocs", "--every", "-c", f"{exe} alloc 1 50 -", "--pprof", str(prof),
                 "--json")
    words = r.stdout.split("allocated ")[1].split()
    nbig, nsmall = int(words[2]), int(words[4])
    # every allocation, exact: per (function, size asked for), the program's own counts
    # (a node is 248 bytes, rounded up to 256 by the allocator)
    counts: dict[tuple[str, str], list[int]] = {}
    prof_ = read_pprof(str(prof))
    st = prof_.string_table
    funcs = {f.id: st[f.name] for f in prof_.function}
    locs = {loc.id: funcs[loc.line[0].function_id] for loc in prof_.location}
    for smp in prof_.sample:
        if not smp.location_id:  # no user stack (the kernel could not walk it)
            continue
        size = next(st[lb.str] for lb in smp.label if st[lb.key] == "bytes")
        acc = counts.setdefault((locs[smp.location_id[0]], size), [0, 0])
        acc[0] += smp.value[0]
        acc[1] += smp.value[1]
    assert counts[("main.allocBig", str(64 << 10))] == [nbig, nbig * (64 << 10)]
    assert counts[("main.newNode", "248")] == [nsmall, nsmall * 248]
