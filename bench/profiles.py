"""Truth and speed of allocs, profile and stacks, each row in one run, side by side with the
program's own runtime/pprof profiles and bpftrace's `profile:hz:99 { @[ustack] = count(); }`.

    .venv/bin/python bench/profiles.py [allocs] [profile] [stacks]   (root; figures go
                                                                     to bench/RESULTS.md)

CPU time is the traced program's own (user + sys, from wait4's rusage): what tracing
adds to it. Peak RSS is lumos's (its rusage as a child of this script).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from support.gobuild import build  # noqa: E402
from support.profiling import (  # noqa: E402
    agreement,
    flat_shares,
    leaf_names,
    num_samples,
    pprof_top,
    preempt_shift,
)

LUMOS = [sys.executable, "-m", "lumos.cli"]


def run_prog(argv, tracer=None, ready="Tracing", env=None, settle=0.0):
    """(program CPU s, program stdout, tracer rusage): the program waits for a line on
    stdin, sent once the tracer says it is attached (a line of its output starting with
    `ready`: lumos's banner on stderr, bpftrace's "Attaching" on stdout), so nothing the
    program does is missed by a tracer still starting. bpftrace prints "Attaching" before
    it attaches (and a SIGINT soon after went unanswered here): `settle` more seconds."""
    prog = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)
    assert prog.stdout.readline().strip() == "ready"
    tr, drains = None, []
    if tracer:
        tr = subprocess.Popen([a.replace("PID", str(prog.pid)) for a in tracer],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()
        for pipe in (tr.stdout, tr.stderr):
            t = threading.Thread(target=lambda p=pipe: [lines.put(x) for x in p], daemon=True)
            t.start()
            drains.append(t)
        while not lines.get(timeout=60).startswith(ready):
            pass
        time.sleep(settle)
    prog.stdin.write("\n")
    prog.stdin.close()   # `profiled stacks` waits for a second line or EOF at its end
    out = prog.stdout.read()
    _, status, ru = os.wait4(prog.pid, 0)
    prog.returncode = status
    tru = None
    if tr:
        tr.send_signal(2)
        for t in drains:
            t.join()
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


def profile_rows(tmp, version="1.27.3", secs="20"):
    exe = str(build("profiled", version, "default"))
    own, mine = f"{tmp}/go.cpu", f"{tmp}/cpu.pb.gz"
    for godebug in (None, "asyncpreemptoff=1"):
        env = dict(os.environ, GODEBUG=godebug) if godebug else None
        run_prog([exe, "cpu", secs, own],
                 [*LUMOS, "profile", "-F", "99", "-p", "PID", "--pprof", mine], env=env)
        a = flat_shares(mine)
        ak = flat_shares(mine, fold_kernel=True)
        b = flat_shares(own)
        bf = flat_shares(own, fold_async_preempt=True, shift=preempt_shift(version))
        print(f"profile -F 99 vs pprof.StartCPUProfile, same {secs} s run (Go {version}"
              f"{', GODEBUG=' + godebug if godebug else ''}; {num_samples(mine)} / "
              f"{num_samples(own)} samples): top-20 flat share agreement "
              f"{100 * agreement(a, b):.1f}% as written, {100 * agreement(a, bf):.1f}% with "
              f"Go's asyncPreempt samples folded into the interrupted frame, "
              f"{100 * agreement(ak, bf):.1f}% with lumos's kernel frames folded into the "
              f"user frame below too")
        for f in sorted(b, key=lambda k: -b[k])[:5]:
            print(f"  {f:24s} lumos {100 * a.get(f, 0):5.1f}% ({100 * ak.get(f, 0):5.1f}% "
                  f"folded)  Go {100 * b[f]:5.1f}% ({100 * bf.get(f, 0):5.1f}% folded)")
        mn, gn = leaf_names(mine), leaf_names(own)
        same = sum(mn[x] == gn[x] for x in set(mn) & set(gn))
        print(f"  sampled PCs in both profiles named the same (inlined frames included): "
              f"{same} of {len(set(mn) & set(gn))}")
    args = ["cpu", "5", "-"]
    base, _, _ = run_prog([exe, *args])
    lum, _, lru = run_prog([exe, *args], [*LUMOS, "profile", "-F", "99", "-p", "PID",
                                          "--pprof", f"{tmp}/x.pb.gz"])
    bt, _, bru = run_prog([exe, *args], ["bpftrace", "-e",
                                         "profile:hz:99 /pid == PID/ { @[ustack] = count(); }"],
                          ready="Attaching", settle=2)
    print(f"profile overhead, 5 s hot loop: program CPU untraced {base:.2f} s, lumos "
          f"{lum:.2f} s, bpftrace {bt:.2f} s; peak RSS lumos {lru.ru_maxrss / 1024:.0f} MiB, "
          f"bpftrace {bru.ru_maxrss / 1024:.0f} MiB")
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


def stacks_rows(tmp, version="1.27.3", n=300_000):
    """Per-hit cost of counting the stacks that reach main.c (a -> b -> inl -> c), lumos
    stacks against bpftrace's `uprobe:...:main.c { @[ustack] = count(); }`."""
    exe = str(build("profiled", version, "default"))
    args = [exe, "stacks", str(n)]
    base, _, _ = run_prog(args)
    lum, out, lru = run_prog(args, [*LUMOS, "stacks", "-p", "PID", "main.c", "--pprof",
                                    f"{tmp}/s.pb.gz"])
    assert f"calls {n}" in out
    got = num_samples(f"{tmp}/s.pb.gz")
    bt, _, bru = run_prog(args, ["bpftrace", "-e",
                                 f"uprobe:{exe}:main.c {{ @[ustack] = count(); }}"],
                          ready="Attaching", settle=2)
    print(f"stacks main.c, {n} calls (Go {version}): program CPU untraced {base:.2f} s, lumos "
          f"{lum:.2f} s (+{1e6 * (lum - base) / n:.2f} us per call, {got} counted), bpftrace "
          f"{bt:.2f} s (+{1e6 * (bt - base) / n:.2f} us per call); peak RSS lumos "
          f"{lru.ru_maxrss / 1024:.0f} MiB, bpftrace {bru.ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    parts = sys.argv[1:] or ["allocs", "profile", "stacks"]  # bench/profiles.py [part...]
    with tempfile.TemporaryDirectory() as tmp:
        if "allocs" in parts:
            allocs_rows(tmp)
        if "profile" in parts:
            profile_rows(tmp)
        if "stacks" in parts:
            stacks_rows(tmp)
