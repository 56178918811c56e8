"""Inlined frames from the pclntab inline tree, checked against Go's own tools.

`go tool addr2line` names the physical function and the innermost file:line of a PC;
`go tool objdump -s` prints file:line per instruction. lumos's frames must agree with
both at every PC of the test program's functions, and expand the known inlined calls
(inl into b, newNode into allocSmall, mix into hot) with their call sites.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from support.gobuild import build, go_binary, go_tool

from lumos.golang.gobinary import open_go_binary

VERSIONS = ("1.19", "1.21.13", "1.23.9", "1.27.3")
# Go 1.19's addr2line cannot find the pclntab of its own PIE builds (.data.rel.ro.gopclntab)
CASES = [(v, "default") for v in VERSIONS] + [(v, "pie") for v in VERSIONS[1:]]
SRC = "main.go"


def _source_line(needle: str) -> int:
    from support.gobuild import PROGRAMS
    for i, line in enumerate((PROGRAMS / "profiled" / SRC).read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


@pytest.mark.parametrize("version,variant", CASES)
def test_frames_agree_with_addr2line(version, variant):
    exe = str(build("profiled", version, variant))
    gobin = open_go_binary(exe, use_cache=False)
    lines = gobin.source_lines()
    pcs = []
    for fn in gobin.functions:
        if fn.name.startswith("main."):
            pcs += list(range(fn.entry, fn.end))
    assert len(pcs) > 500
    r = subprocess.run([go_binary(version), "tool", "addr2line", exe],
                       input="".join(f"{pc:#x}\n" for pc in pcs), capture_output=True,
                       text=True, check=True)
    out = r.stdout.splitlines()
    assert len(out) == 2 * len(pcs)
    for i, pc in enumerate(pcs):
        func, where = out[2 * i], out[2 * i + 1]
        frames = lines.frames(pc)
        assert frames[-1].function == func, hex(pc)
        assert not frames[-1].inlined and all(f.inlined for f in frames[:-1])
        file, line = where.rsplit(":", 1)
        if line == "-1":  # padding after the function's code: no line
            assert frames[0].line == 0, hex(pc)
            continue
        assert (frames[0].file, frames[0].line) == (file, int(line)), hex(pc)


@pytest.mark.parametrize("version", VERSIONS)
def test_stripped_binary_gives_the_same_frames(version):
    """-ldflags=-s -w drops symbols and DWARF, not code: every PC's frames are the same."""
    full = open_go_binary(str(build("profiled", version, "default")), use_cache=False)
    bare = open_go_binary(str(build("profiled", version, "stripped")), use_cache=False)
    a, b = full.source_lines(), bare.source_lines()
    n = 0
    for fn in full.functions:
        if fn.name.startswith(("main.", "runtime.mallocgc", "fmt.")):
            for pc in range(fn.entry, fn.end):
                assert a.frames(pc) == b.frames(pc), hex(pc)
                n += 1
    assert n > 1000


@pytest.mark.parametrize("version", ["1.19", "1.27.3"])
def test_known_inlined_calls_expand_with_call_sites(version):
    exe = str(build("profiled", version, "default"))
    gobin = open_go_binary(exe, use_cache=False)
    lines = gobin.source_lines()
    want = {"main.b": ("main.inl", _source_line("func inl"), _source_line("func b(")),
            "main.allocSmall": ("main.newNode", _source_line("func newNode"),
                                _source_line("nd := newNode()")),
            "main.hot": ("main.mix", _source_line("func mix"),
                         _source_line("x = mix(x)"))}
    # the CALL/instruction lines objdump shows for the inlined body
    dump = go_tool(version, "tool", "objdump", "-s", "^main\\.(b|allocSmall|hot)$", exe)
    for outer, (inner, inner_line, call_line) in want.items():
        fn = gobin.get_functions(outer)[0]
        expanded = {tuple((f.function, f.line) for f in lines.frames(pc))
                    for pc in range(fn.entry, fn.end)}
        assert ((inner, inner_line), (outer, call_line)) in expanded, (outer, expanded)
        assert f"{SRC}:{inner_line}" in dump
    # a return address is looked up inside its CALL: b's call of c is in inl's body
    fn = gobin.get_functions("main.b")[0]
    body = go_tool(version, "tool", "objdump", "-s", "^main\\.b$", exe)
    call = next(int(m.group(1), 16) for m in re.finditer(
        r"^\s+\S+\s+0x([0-9a-f]+)\s+([0-9a-f]+)\s+CALL main\.c\(SB\)", body, re.M))
    ret = call + 5
    assert fn.entry < ret < fn.end
    frames = lines.frames(ret, return_address=True)
    assert [(f.function, f.inlined) for f in frames] == [("main.inl", True), ("main.b", False)]
