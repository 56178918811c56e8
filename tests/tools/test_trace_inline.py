"""lumos trace --stack: inlined frames and file:line from the pclntab (Symbolizer.frames),
against the known chain main -> a -> b -> inl (inlined into b) -> c of the `profiled`
program, text and JSON, Go 1.19 and 1.27, default and PIE."""

from __future__ import annotations

import json

import pytest
from support.gobuild import build
from support.profiling import run_tool
from support.profiling import source_line as line_of

N = 3


@pytest.mark.parametrize("version,variant", [("1.19", "default"), ("1.27.3", "pie")])
def test_json_stack_has_inlined_frames_and_lines(version, variant):
    exe = build("profiled", version, variant)
    r = run_tool("trace", "--json", "--stack", "-c", f"{exe} stacks {N}", "main.c")
    assert f"calls {N}" in r.stdout
    events = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{"time"')]
    assert len(events) == N
    for e in events:
        st = e["stack"]
        got = [(f["function"], f["line"], f["inlined"]) for f in st[:5]]
        assert got == [("main.c", line_of("func c("), False),
                       ("main.inl", line_of("func inl"), True),      # inl's call of c
                       ("main.b", line_of("func b("), False),        # b's call of inl
                       ("main.a", line_of("func a("), False),
                       ("main.main", line_of("sink += a(i)"), False)], st
        assert all(f["file"].endswith("/profiled/main.go") for f in st[:5])
        # the inlined call and the function it sits in share one address
        assert st[1]["at"] == st[2]["at"] and st[2]["at"].startswith("main.b+0x")
        assert st[0]["at"].startswith("main.c+0x") and st[3]["at"].startswith("main.a+0x")
        assert [f["function"] for f in st[5:]] == ["runtime.main", "runtime.goexit"]
        assert all(isinstance(f["line"], int) for f in st)


def test_text_stack_names_inlined_frames_with_lines():
    exe = build("profiled", "1.27.3", "default")
    r = run_tool("trace", "--stack", "-c", f"{exe} stacks 1", "main.c")
    lines = r.stdout.splitlines()
    i = next(k for k, ln in enumerate(lines) if "main.c(" in ln)
    frames = [ln.strip() for ln in lines[i + 1:i + 6]]
    assert frames[0].startswith("main.c+0x") and frames[0].endswith(
        f"  main.go:{line_of('func c(')}"), frames
    assert frames[1] == f"main.inl (inlined)  main.go:{line_of('func inl')}", frames
    assert frames[2].startswith("main.b+0x") and frames[2].endswith(
        f"  main.go:{line_of('func b(')}"), frames
    assert frames[4].startswith("main.main+0x") and frames[4].endswith(
        f"  main.go:{line_of('sink += a(i)')}"), frames
