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


def preempt_shift(go_version: str) -> int:
    """What to add to the address Go's CPU profile records for the frame below
    runtime.asyncPreempt to get the interrupted PC. Go 1.19 and 1.20 store that frame's
    PC unadjusted, so the profile (which takes every non-leaf PC as a return address)
    records and names the byte before the interrupted instruction (seen: 0x4b98ed, in
    the middle of an ADDQ of the inlined main.mix, for an interrupted XORQ at 0x4b98ee
    of main.hot); the unwinder of Go 1.21+ adds 1 there as it does for a signal's leaf
    PC, and the address is exact (checked here on 1.21, 1.23, 1.27)."""
    minor = int(go_version.split(".")[1])
    return 1 if minor <= 20 else 0


def leaves(path: str, sample_index: int = -1, fold_async_preempt: bool = False,
           fold_kernel: bool = False, shift: int = 0) -> list[tuple[int, tuple[str, ...], int]]:
    """(address, function names innermost first, value) of each sample's leaf.

    fold_async_preempt: a sample whose leaf is runtime.asyncPreempt counts for the frame
    below it. Go's SIGPROF handler names the PC it interrupted; when the preemption
    signal (SIGURG, lower-numbered, so delivered first) came in the same return to user
    mode, that PC is the first instruction of the asyncPreempt call the preemption
    handler injected (every such sample sits at asyncPreempt's entry, none inside its
    1,312 bytes), and the frame below is the interrupted function at the interrupted PC.
    A perf-event sample sees the interrupted function itself, as this folding does.
    `shift` (preempt_shift) moves that frame's address to the interrupted instruction,
    named as the same profile names it where it is a leaf.

    fold_kernel: kernel frames (lumos's "[kernel.kallsyms]" mapping) count for the user
    frame below them. Go's CPU timer counts a thread's system time too, and its SIGPROF
    lands on the user PC that entered the kernel: that is where Go puts those samples."""
    from lumos.output.pprof import read_pprof
    prof = read_pprof(path)
    st = prof.string_table
    fnames = {f.id: st[f.name] for f in prof.function}
    kernel_maps = {m.id for m in prof.mapping if st[m.filename] == "[kernel.kallsyms]"}
    locs = {loc.id: (loc.address, tuple(fnames[ln.function_id] for ln in loc.line)
                     or (f"{loc.address:#x}",), loc.mapping_id in kernel_maps)
            for loc in prof.location}
    out, preempted = [], []
    for smp in prof.sample:
        ids = list(smp.location_id)
        if fold_kernel:
            ids = [i for i in ids if not locs[i][2]] or ids
        v = smp.value[sample_index]
        if fold_async_preempt and len(ids) > 1 and locs[ids[0]][1][0] == ASYNC_PREEMPT:
            preempted.append((locs[ids[1]], v))
            continue
        out.append((*locs[ids[0]][:2], v) if ids else (0, ("[unknown]",), v))
    named = {a: n for a, n, _ in out}
    for (addr, names, _), v in preempted:
        addr += shift
        out.append((addr, named.get(addr, names), v))
    return out


def flat_shares(path: str, sample_index: int = -1, fold_async_preempt: bool = False,
                fold_kernel: bool = False, shift: int = 0) -> dict[str, float]:
    """{function: share of all samples whose leaf it is}, named as `go tool pprof -top`
    names them ("main.mix (inline)" for an inlined frame); the folds as in leaves()."""
    shares: dict[str, float] = {}
    total = 0
    for _, names, v in leaves(path, sample_index, fold_async_preempt, fold_kernel, shift):
        name = names[0] + (" (inline)" if len(names) > 1 else "")
        shares[name] = shares.get(name, 0) + v
        total += v
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


def leaf_names(path: str, **fold) -> dict[int, tuple[str, ...]]:
    """{address: function names at it, innermost first} of the samples' leaves."""
    return {a: n for a, n, _ in leaves(path, **fold)}


def num_samples(path: str) -> int:
    from lumos.output.pprof import read_pprof
    return sum(smp.value[0] for smp in read_pprof(path).sample)


def run_tool_pid(tool_args: list[str], prog_argv: list[str], timeout: float = 120
                 ) -> tuple[subprocess.CompletedProcess, str]:
    """lumos TOOL -p PID ... on a `profiled` program already running (it waits for a line
    on stdin): the line is sent once lumos's banner says the probes are attached; lumos
    ends when the program exits. (lumos's result, the program's stdout)."""
    prog = subprocess.Popen(prog_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert prog.stdout.readline().strip() == "ready"
        lum = subprocess.Popen([*LUMOS, *tool_args[:1], "-p", str(prog.pid), *tool_args[1:]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = lum.stderr.readline()
        assert first.startswith("Tracing"), first + lum.stderr.read()
        prog.stdin.write("\n")
        prog.stdin.flush()
        out = prog.stdout.read()
        prog.wait(timeout=timeout)
        stdout, stderr = lum.communicate(timeout=timeout)
    finally:
        if prog.poll() is None:
            prog.kill()
            prog.wait()
    r = subprocess.CompletedProcess(lum.args, lum.returncode, stdout, first + stderr)
    assert r.returncode == 0, r.stderr
    return r, out
