"""lumos profile: a known hot loop on top in `go tool pprof`, inlined frames as pprof's
inlined lines, folded stacks summing to the samples, agreement with Go's own profile."""

from __future__ import annotations

import re

import pytest
from support.gobuild import build
from support.profiling import pprof, pprof_top, run_tool


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
    assert first.endswith(" main.hot"), top
    assert re.search(r"main\.mix \(inline\)$", top, re.M), top
    # cum of main.main covers hot and warm: frameless leaves keep their caller
    rows = pprof_top(str(prof), "cpu")
    assert rows["main.main"][1] >= 0.95 * (rows["main.hot"][1] + rows["main.warm"][1])
    lines = folded.read_text().splitlines()
    assert sum(int(ln.rsplit(" ", 1)[1]) for ln in lines) == total
    assert any(ln.startswith("runtime.goexit;runtime.main;main.main;main.hot;main.mix ")
               for ln in lines)
    # the program's own CPU profile of the same run: cumulative shares within 10 points
    # (on a loaded machine Go's SIGPROF often lands in runtime.asyncPreempt, called from
    # the interrupted function: flat shares move there, cumulative ones do not)
    mine, theirs = pprof_top(str(prof), "cpu"), pprof_top(str(own), "cpu")
    for fn in ("main.hot", "main.warm"):
        a = mine[fn][1] / sum(v[0] for v in mine.values())
        b = theirs[fn][1] / sum(v[0] for v in theirs.values())
        assert abs(a - b) < 0.10, (fn, a, b)


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
