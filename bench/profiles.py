"""Truth and speed of allocs and profile, each row in one run, side by side with the
program's own runtime/pprof profiles and bpftrace's `profile:hz:99 { @[ustack] = count(); }`.

    .venv/bin/python bench/profiles.py        (root; figures go to bench/RESULTS.md by hand)

CPU time is the traced program's own (user + sys, from wait4's rusage): what tracing
adds to it. Peak RSS is lumos's (its rusage as a child of this script).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from support.gobuild import build  # noqa: E402
from support.profiling import pprof_top  # noqa: E402

LUMOS = [sys.executable, "-m", "lumos.cli"]


def run_prog(argv, tracer=None, settle=1.5):
    """(program CPU s, program stdout, tracer rusage): the program waits for a line on
    stdin, sent once the tracer is attached."""
    prog = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert prog.stdout.readline().strip() == "ready"
    tr = None
    if tracer:
        tr = subprocess.Popen([a.replace("PID", str(prog.pid)) for a in tracer],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(settle)
    prog.stdin.write("\n")
    prog.stdin.flush()
    out = prog.stdout.read()
    _, status, ru = os.wait4(prog.pid, 0)
    prog.returncode = status
    tru = None
    if tr:
        tr.send_signal(2)
        tr.stderr.read()
        _, _, tru = os.wait4(tr.pid, 0)
    return ru.ru_utime + ru.ru_stime, out, tru


def allocs_rows(tmp):
    exe = str(build("profiled", "1.27.3", "default"))
    own, mine = f"{tmp}/go.heap", f"{tmp}/heap.pb.gz"
    run_prog([exe, "alloc", "5", "400", own],
             [*LUMOS, "allocs", "-p", "PID", "--pprof", mine])
    time.sleep(0.5)
    a, b = pprof_top(mine, "alloc_space"), pprof_top(own, "alloc_space")
    print("allocs alloc_space vs the program's own heap profile (Go 1.27.3, 400 MiB/s, 5 s):")
    for fn in ("main.allocBig", "main.newNode (inline)"):
        print(f"  {fn:24s} lumos {a[fn][0] / 2**20:9.2f} MiB  Go {b[fn][0] / 2**20:9.2f} MiB "
              f" diff {100 * (a[fn][0] - b[fn][0]) / b[fn][0]:+.2f}%")
    rate = ["alloc", "5", "1024", "-"]
    base, out0, _ = run_prog([exe, *rate])
    traced, out1, tru = run_prog([exe, *rate], [*LUMOS, "allocs", "-p", "PID"])
    gb = int(out0.split()[1]) / 5 / 2**30
    print(f"allocs default, program asking for 1 GiB/s (achieved {gb:.2f} GiB/s): CPU "
          f"{base:.2f} s untraced, {traced:.2f} s traced ({100 * (traced - base) / base:+.1f}%);"
          f" lumos peak RSS {tru.ru_maxrss / 1024:.0f} MiB")
    small = ["alloc", "3", "200", "-"]
    base, out0, _ = run_prog([exe, *small])
    traced, out1, _ = run_prog([exe, *small], [*LUMOS, "allocs", "--every", "-p", "PID"])
    w = out1.split()
    n = int(w[3]) + int(w[5])
    print(f"allocs --every at 200 MiB/s, 3 s: {n} allocations, CPU {base:.2f} s -> "
          f"{traced:.2f} s: {1e6 * (traced - base) / n:.2f} us per allocation")


def profile_rows(tmp):
    exe = str(build("profiled", "1.27.3", "default"))
    own, mine = f"{tmp}/go.cpu", f"{tmp}/cpu.pb.gz"
    run_prog([exe, "cpu", "10", own],
             [*LUMOS, "profile", "-F", "99", "-p", "PID", "--pprof", mine])
    time.sleep(0.5)
    a, b = pprof_top(mine, "cpu"), pprof_top(own, "cpu")
    ta, tb = sum(v[0] for v in a.values()), sum(v[0] for v in b.values())
    top = sorted(b, key=lambda k: -b[k][0])[:20]
    agree = sum(min(a.get(f, (0, 0))[0] / ta, b[f][0] / tb) for f in top) / \
        sum(b[f][0] / tb for f in top)
    print(f"profile -F 99 vs pprof.StartCPUProfile, same 10 s run (Go 1.27.3): top-20 flat "
          f"share agreement {100 * agree:.1f}%")
    for f in top[:4]:
        print(f"  {f:24s} lumos {100 * a.get(f, (0, 0))[0] / ta:5.1f}%  Go "
              f"{100 * b[f][0] / tb:5.1f}%")
    args = ["cpu", "5", "-"]
    base, _, _ = run_prog([exe, *args])
    t0 = time.perf_counter()
    lum, _, lru = run_prog([exe, *args], [*LUMOS, "profile", "-F", "99", "-p", "PID",
                                          "--pprof", f"{tmp}/x.pb.gz"])
    bt, _, bru = run_prog([exe, *args], ["bpftrace", "-e",
                                         "profile:hz:99 /pid == PID/ { @[ustack] = count(); }"],
                          settle=3)
    print(f"profile overhead, 5 s hot loop: program CPU untraced {base:.2f} s, lumos "
          f"{lum:.2f} s, bpftrace {bt:.2f} s; peak RSS lumos {lru.ru_maxrss / 1024:.0f} MiB, "
          f"bpftrace {bru.ru_maxrss / 1024:.0f} MiB")
    del t0
    # time to write the pprof: from the tool's own measurement of write_outputs
    from lumos.golang.inline import SourceFrame
    from lumos.output.pprof import read_pprof, write_pprof
    from lumos.targets.stacks import Location, Sample
    p = read_pprof(mine)
    st = p.string_table
    funcs = {f.id: f for f in p.function}
    locs = {loc.id: Location(loc.address, tuple(SourceFrame(st[funcs[ln.function_id].name],
                                                            st[funcs[ln.function_id].filename],
                                                            ln.line) for ln in loc.line))
            for loc in p.location}
    samples = [Sample([locs[i] for i in s.location_id], list(s.value)) for s in p.sample] * 50
    t = time.perf_counter()
    write_pprof(f"{tmp}/big.pb.gz", samples, [("samples", "count"), ("cpu", "nanoseconds")])
    print(f"writing a pprof of {len(samples)} samples: {1000 * (time.perf_counter() - t):.0f} ms")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        allocs_rows(tmp)
        profile_rows(tmp)
