"""lumos profile: a known hot loop on top in `go tool pprof`, inlined frames as pprof's
inlined lines, folded stacks summing to the samples, flat shares and the naming of
every sampled PC agreeing with Go's own profile of the same run."""

from __future__ import annotations

import math
import re

import pytest
from support.gobuild import build
from support.profiling import (
    agreement,
    flat_shares,
    leaf_names,
    num_samples,
    pprof,
    pprof_top,
    preempt_shift,
    run_tool,
)

from lumos.output.pprof import read_pprof


@pytest.mark.parametrize("version,variant", [("1.19", "default"), ("1.27.3", "pie")])
def test_hot_function_on_top(version, variant, tmp_path):
    exe = build("profiled", version, variant)
    prof, folded, own = tmp_path / "cpu.pb.gz", tmp_path / "cpu.txt", tmp_path / "go.cpu"
    r = run_tool("profile", "-F", "199", "-c", f"{exe} cpu 3 {own}", "--pprof", str(prof),
                 "--folded", str(folded), "--top", "3")
    total = int(re.search(r"lumos: (\d+) samples", r.stderr).group(1))
    assert total > 100  # fewer than 199 Hz x 3 s when other work shares the CPUs
    top = pprof(version, "-top", str(prof))
    first = [ln for ln in top.splitlines() if re.match(r"^\s+[\d.]+m?s\s", ln)][0]
    # main.hot or main.mix, inlined into it: which has more flat time varies run to run
    assert first.endswith((" main.hot", " main.mix (inline)")), top
    assert re.search(r"main\.mix \(inline\)$", top, re.M), top
    # cum of main.main covers hot and warm: frameless leaves keep their caller
    rows = pprof_top(str(prof), "cpu")
    assert rows["main.main"][1] >= 0.95 * (rows["main.hot"][1] + rows["main.warm"][1])
    lines = folded.read_text().splitlines()
    assert sum(int(ln.rsplit(" ", 1)[1]) for ln in lines) == total
    assert any(ln.startswith("runtime.goexit;runtime.main;main.main;main.hot;main.mix ")
               for ln in lines)
    # the program's own CPU profile of the same run (see test_flat_shares_agree_with_go)
    mine, theirs = pprof_top(str(prof), "cpu"), pprof_top(str(own), "cpu")
    na, nb = num_samples(str(prof)), num_samples(str(own))
    for fn in ("main.hot", "main.warm"):
        a = mine[fn][1] / sum(v[0] for v in mine.values())
        b = theirs[fn][1] / sum(v[0] for v in theirs.values())
        assert abs(a - b) <= margin(a, b, na, nb), (fn, a, b, na, nb)


@pytest.mark.parametrize("version,variant", [("1.19", "default"), ("1.27.3", "pie")])
def test_flat_shares_agree_with_go(version, variant, tmp_path):
    """Flat shares per function (inlined main.mix apart from main.hot) against Go's own
    profile of the same run, at Go's rate (-F 99 vs 100 Hz). Go's SIGPROF, when it comes
    right behind the preemption signal, sees runtime.asyncPreempt's first instruction,
    not the interrupted one: those samples count for the frame below (the interrupted
    function at the interrupted PC), as a perf-event sample sees it; lumos's kernel
    frames count for the user frame below them, where Go's signal lands (support/
    profiling.flat_shares). The margin is statistical: 4 standard errors of the
    difference of two sample proportions with these sample counts, plus 3 points."""
    exe = build("profiled", version, variant)
    prof, own = tmp_path / "cpu.pb.gz", tmp_path / "go.cpu"
    run_tool("profile", "-F", "99", "-c", f"{exe} cpu 5 {own}", "--pprof", str(prof))
    mine = flat_shares(str(prof), fold_kernel=True)
    fold = dict(fold_async_preempt=True, shift=preempt_shift(version))
    theirs = flat_shares(str(own), **fold)
    na, nb = num_samples(str(prof)), num_samples(str(own))
    assert na > 50 and nb > 50, (na, nb)  # the margin below widens as these shrink
    for fn in ("main.hot", "main.mix (inline)", "main.warm"):
        a, b = mine.get(fn, 0.0), theirs.get(fn, 0.0)
        assert abs(a - b) <= margin(a, b, na, nb), (fn, a, b, na, nb, mine, theirs)
    assert agreement(mine, theirs) >= 0.85, (mine, theirs)
    # exact: every PC both profiles sampled is named the same, inlined frames too (Go's
    # own leaves only: not the frames below asyncPreempt, whose naming is Go's artifact)
    names_mine, names_go = leaf_names(str(prof)), leaf_names(str(own))
    common = set(names_mine) & set(names_go)
    assert {("main.mix", "main.hot"), ("main.hot",), ("main.warm",)} <= \
        {names_go[a] for a in common}
    for addr in common:
        assert names_mine[addr] == names_go[addr], hex(addr)
    # frameless leaves keep their caller: hot and warm push no frame, yet every sample
    # in them (and in mix, inlined into hot) has main.main below, as in Go's profile
    for path in (prof, own):
        assert physical_callers(str(path), {"main.hot", "main.warm", "main.mix"}) == \
            {"main.main"}, path


def margin(a: float, b: float, na: int, nb: int) -> float:
    """4 standard errors of the difference of two sample proportions, plus 3 points."""
    p = (a + b) / 2
    return 4 * math.sqrt(p * (1 - p) * (1 / na + 1 / nb)) + 0.03


def physical_callers(path: str, leaves: set[str]) -> set[str]:
    """The functions physically below the leaf location of samples that end in leaves."""
    p = read_pprof(path)
    st = p.string_table
    names = {f.id: st[f.name] for f in p.function}
    locs = {loc.id: [names[ln.function_id] for ln in loc.line] for loc in p.location}
    out = set()
    for smp in p.sample:
        ids = list(smp.location_id)
        if ids and locs[ids[0]][0] in leaves:
            out.add(locs[ids[1]][-1] if len(ids) > 1 else "(none)")
    return out

def test_whole_machine_sees_the_process(tmp_path):
    exe = build("profiled", "1.19", "default")
    folded = tmp_path / "all.txt"
    import subprocess
    prog = subprocess.Popen([str(exe), "cpu", "10", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert prog.stdout.readline().strip() == "ready"
        prog.stdin.write("\n")
        prog.stdin.flush()
        run_tool("profile", "-d", "2", "--folded", str(folded))
    finally:
        prog.wait(timeout=30)
    lines = folded.read_text().splitlines()
    assert any(ln.startswith("profiled;runtime.goexit;runtime.main;main.main;main.hot")
               for ln in lines), lines[:10]
