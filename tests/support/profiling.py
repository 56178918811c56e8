"""Running lumos's stack tools on the `profiled` test program, and reading what they write
with the real clients: `go tool pprof`, headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from support.gobuild import go_binary

LUMOS = [sys.executable, "-m", "lumos.cli"]


def run_tool(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """lumos TOOL ... -c 'profiled ...': the program waits for a line on stdin, which it
    reads only once it runs, i.e. after the probes are attached."""
    r = subprocess.run([*LUMOS, *args], input="\n", capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


def pprof(version: str, *args: str) -> str:
    r = subprocess.run([go_binary(version), "tool", "pprof", *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def pprof_top(path: str, sample_index: str | None = None) -> dict[str, tuple[float, float]]:
    """{function: (flat, cum)} from `go tool pprof -top -raw` style output, in the file's
    unit (numbers only: -unit=... not needed for counts)."""
    args = ["-top", "-nodecount=1000"]
    if sample_index:
        args.append(f"-sample_index={sample_index}")
    out = pprof("1.27.3", *args, "-unit=B" if sample_index and "space" in sample_index
                else "-unit=ms" if sample_index == "cpu" else "-unit=minimum", path)
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d.]+)(\w*)\s+[\d.]+%\s+[\d.]+%\s+([\d.]+)(\w*)\s+[\d.]+%\s+(.+)$",
                     line)
        if m:
            rows[m.group(5).strip()] = (float(m.group(1)), float(m.group(3)))
    return rows


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is missing: apt-get install chromium "
                    "(scripts/setup-system.sh)", pytrace=False)
    return path


def screenshot(url: str, png: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={profile}",
                            "--hide-scrollbars", "--force-device-scale-factor=1",
                            f"--window-size={width},{height}", f"--screenshot={png}", url],
                           capture_output=True, text=True, timeout=120)
    assert png.exists(), r.stderr[-2000:]


ASYNC_PREEMPT = "runtime.asyncPreempt"


def flat_shares(path: str, sample_index: int = -1, fold_async_preempt: bool = False,
                fold_kernel: bool = False) -> dict[str, float]:
    """{function: share of all samples whose leaf it is}, named as `go tool pprof -top`
    names them ("main.mix (inline)" for an inlined frame), from the profile's own
    protobuf. sample_index: which value (-1: the last, cpu nanoseconds).

    fold_async_preempt: a sample whose leaf is runtime.asyncPreempt counts for the frame
    below it. Go's SIGPROF handler names the PC it interrupted; when the preemption
    signal (SIGURG, lower-numbered, so delivered first) came in the same return to user
    mode, that PC is the first instruction of the asyncPreempt call the preemption
    handler injected, and the frame below is the interrupted function at the interrupted
    PC (asyncPreempt's "return address"). A perf-event sample sees the interrupted
    function itself, as this folding does.

    fold_kernel: kernel frames (lumos's "[kernel.kallsyms]" mapping) count for the user
    frame below them. Go's CPU timer counts a thread's system time too, and its SIGPROF
    lands on the user PC that entered the kernel: that is where Go puts those samples."""
    from lumos.output.pprof import read_pprof
    prof = read_pprof(path)
    st = prof.string_table
    names = {f.id: st[f.name] for f in prof.function}
    kernel_maps = {m.id for m in prof.mapping if st[m.filename] == "[kernel.kallsyms]"}
    kernel = {loc.id for loc in prof.location if loc.mapping_id in kernel_maps}
    leaf_of = {}
    for loc in prof.location:
        if not loc.line:
            leaf_of[loc.id] = f"{loc.address:#x}"
            continue
        name = names[loc.line[0].function_id]
        leaf_of[loc.id] = name + (" (inline)" if len(loc.line) > 1 else "")
    shares: dict[str, float] = {}
    total = 0
    for smp in prof.sample:
        v = smp.value[sample_index]
        total += v
        ids = list(smp.location_id)
        if fold_kernel:
            user = [i for i in ids if i not in kernel]
            ids = user or ids
        if fold_async_preempt and ids and leaf_of[ids[0]] == ASYNC_PREEMPT and len(ids) > 1:
            ids = ids[1:]
        name = leaf_of[ids[0]] if ids else "[unknown]"
        shares[name] = shares.get(name, 0) + v
    return {k: v / total for k, v in shares.items()} if total else {}


def agreement(mine: dict[str, float], theirs: dict[str, float], n: int = 20) -> float:
    """How much of the top-n functions' flat share (by `theirs`) the two profiles agree
    on: sum of min(share mine, share theirs) over sum of their shares (1.0: the same)."""
    top = sorted(theirs, key=lambda k: -theirs[k])[:n]
    want = sum(theirs[f] for f in top)
    return sum(min(mine.get(f, 0.0), theirs[f]) for f in top) / want if want else 0.0


def source_line(needle: str, program: str = "profiled") -> int:
    """The line of tests/programs/go/PROGRAM/main.go that contains needle."""
    from support.gobuild import PROGRAMS
    for i, line in enumerate((PROGRAMS / program / "main.go").read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)
