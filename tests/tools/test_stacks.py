"""lumos stacks: the known chain a -> b -> inl (inlined) -> c, exactly, counted in the kernel;
its pprof read by `go tool pprof`, its folded stacks equal to the counts, its SVG flame
graph opened in headless Chromium."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image
from support.gobuild import PROGRAMS, build
from support.profiling import pprof, run_tool, screenshot

N = 2000


def line_of(needle: str) -> int:
    for i, line in enumerate((PROGRAMS / "profiled" / "main.go").read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


CHAIN = [("main.c", "func c(", False), ("main.inl", "func inl", True),
         ("main.b", "func b(", False), ("main.a", "func a(", False),
         ("main.main", "sink += a(i)", False)]


@pytest.mark.parametrize("version,variant", [("1.19", "default"), ("1.19", "pie"),
                                             ("1.27.3", "default"), ("1.27.3", "pie"),
                                             ("1.27.3", "stripped")])
def test_known_chain_exact(version, variant, tmp_path):
    exe = build("profiled", version, variant)
    folded, prof = tmp_path / "s.txt", tmp_path / "s.pb.gz"
    r = run_tool("stacks", "-c", f"{exe} stacks {N}", "main.c", "--json",
                 "--folded", str(folded), "--pprof", str(prof))
    assert f"calls {N}" in r.stdout
    stacks = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [s["count"] for s in stacks] == [N]
    frames = stacks[0]["stack"]
    got = [(f["function"], f["line"], f["inlined"]) for f in frames[:len(CHAIN)]]
    # the entry of c is its first line; every caller is at its call site
    want = [(name, line_of(needle) if i == 0 else None, inl)
            for i, (name, needle, inl) in enumerate(CHAIN)]
    assert [(g[0], g[2]) for g in got] == [(w[0], w[2]) for w in want]
    assert got[0][1] == line_of("func c(")
    assert got[1][1] == line_of("func inl")       # inl's call of c
    assert got[2][1] == line_of("func b(")        # b's call of inl (one-line bodies)
    assert got[3][1] == line_of("func a(")
    assert got[4][1] == line_of("sink += a(i)")
    assert [f["function"] for f in frames[len(CHAIN):]] == ["runtime.main", "runtime.goexit"]
    assert all(f["file"].endswith("main.go") for f in frames[:len(CHAIN)])

    names = ";".join(f["function"] for f in reversed(frames))
    assert folded.read_text() == f"{names} {N}\n"

    top = pprof(version, "-top", str(prof))
    assert re.search(rf"^\s+{N}\s+100%\s+100%\s+{N}\s+100%\s+main\.c$", top, re.M), top
    assert re.search(rf"^\s+0\s+0%\s+100%\s+{N}\s+100%\s+main\.inl \(inline\)$", top, re.M)
    traces = pprof(version, "-traces", str(prof))
    assert "main.c\n             main.inl (inline)\n             main.b\n" in traces


def test_svg_flame_graph_opens_in_chromium_showing_the_function(tmp_path):
    exe = build("profiled", "1.19", "default")
    svg = tmp_path / "s.svg"
    run_tool("stacks", "-c", f"{exe} stacks {N}", "main.c", "--svg", str(svg))
    text = svg.read_text()
    assert "<svg" in text and "function search(" in text and "function zoom(" in text
    # width="100%": the graph fills the window, viewBox 0 0 W H
    width, height = (int(float(v)) for v in re.search(
        r'<svg [^>]*viewBox="0 0 ([\d.]+) ([\d.]+)"', text).groups())
    m = re.search(r'<title>main\.b \((\d[\d,]*) calls, 100(?:\.0+)?%\)</title>'
                  r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" '
                  r'fill="rgb\((\d+),(\d+),(\d+)\)"', text)
    assert m, "main.b's frame is not in the SVG"
    assert int(m.group(1).replace(",", "")) == N
    x, y, w, h = (float(m.group(i)) for i in range(2, 6))
    rgb = tuple(int(m.group(i)) for i in range(6, 9))
    png = tmp_path / "s.png"
    screenshot(svg.as_uri(), png, width, height)
    img = Image.open(png).convert("RGB")
    assert img.size == (width, height)
    # the frame's box is drawn in its colour: sample a strip left of its label
    px = img.getpixel((int(x + w - 4), int(y + h / 2)))
    assert all(abs(a - b) <= 8 for a, b in zip(px, rgb, strict=True)), (px, rgb)
