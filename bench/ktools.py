"""Benchmark: lumos's kernel tools beside Debian bpftrace's own tools, in the same run.

Each workload is a tight loop of one kernel event (tests/programs/c/loops.c, which
prints the wall time per operation); it runs untraced, under lumos, and under bpftrace,
interleaved, the order rotating each repetition. Overhead = ns/op traced - ns/op
untraced in the same repetition. Delivered = events of this workload the tool printed
(the workload marks them: a unique exec argument, a unique path, its own PID), against
the number the workload made; events/s = delivered / the workload's wall time.

- exec: delivered counts lines with the whole command line `/bin/true MARK arg two`.
  The loop is a static binary: its forked child has not mapped the page of .rodata that
  holds "/bin/true" and "arg two", so a tool reading argv at sys_enter_execve gets
  nothing there (bpftrace prints an empty ARGS); lumos reads argv again from the new
  program's stack after the exec.
- runq: lumos -P counts the waits of the loop's two processes (each trip wakes both:
  made = 2 x trips); runqlat.bt has one histogram for the whole machine, so its count
  is everyone's waits, shown for scale only.

    exec    loops exec N MARK     lumos execsnoop      /usr/sbin/execsnoop.bt
    open    loops open N PATH x2  lumos opensnoop      /usr/sbin/opensnoop.bt
    runq    loops pingpong N      lumos runqlat        /usr/sbin/runqlat.bt (see below)
    faults  loops touch N         lumos faults         bpftrace software:{minor,major}-faults

Debian's runqlat.bt does not run here: its `#include <linux/sched.h>` needs kernel
headers (clang: "unknown type name '__aligned_u64'"); it is run with that line removed
and TASK_RUNNING written as 0, the one thing it took from the header. bpftrace has no
page-fault tool; the faults row is the equivalent one-liner. BCC's swapin.bt needs a
kprobe (none here), and swap-ins are bounded by the swap device: not benchmarked.

    .venv/bin/python bench/ktools.py            # 3 repetitions (~5 min), updates RESULTS.md
    .venv/bin/python bench/ktools.py --quick    # 1 repetition, smaller loops
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import (  # noqa: E402
    BPFTRACE,
    LUMOS,
    OUT,
    BenchError,
    Log,
    Procs,
    dump_json,
    machine,
    markdown_table,
    median,
    spread,
    stop,
    write_section,
)
from support.programs import build_c  # noqa: E402

FAULTS_BT = ("software:minor-faults:1 { @minor[comm, pid] = count(); } "
             "software:major-faults:1 { @major[comm, pid] = count(); }")
SIZES = {"exec": 2000, "open": 300000, "runq": 100000, "faults": 400000}
QUICK = {"exec": 500, "open": 100000, "runq": 30000, "faults": 100000}


@dataclass
class Run:
    workload: str
    tool: str
    rep: int
    ns_per_op: float | None = None
    made: int = 0
    delivered: int | None = None
    lost_reported: int | None = None
    wall_s: float | None = None
    tool_cpu_s: float | None = None
    error: str | None = None


def runqlat_bt(workdir: Path) -> str:
    text = Path("/usr/sbin/runqlat.bt").read_text()
    text = text.replace("#include <linux/sched.h>", "").replace("TASK_RUNNING", "0")
    path = workdir / "runqlat-noheaders.bt"
    path.write_text(text)
    return str(path)


def tool_argv(workload: str, tool: str, workdir: Path) -> tuple[list[str], str, str]:
    """(argv, where its ready line appears: out|err, the ready line's start)."""
    if tool == "lumos":
        name = {"exec": "execsnoop", "open": "opensnoop", "runq": "runqlat",
                "faults": "faults"}[workload]
        extra = ["-P"] if workload == "runq" else []
        return [*LUMOS, name, *extra], "err", "Tracing"
    if workload == "faults":
        return [BPFTRACE, "-e", FAULTS_BT], "out", "Attaching"
    script = {"exec": "/usr/sbin/execsnoop.bt", "open": "/usr/sbin/opensnoop.bt"}.get(
        workload) or runqlat_bt(workdir)
    ready = {"exec": "TIME(ms)", "open": "PID", "runq": "Tracing"}[workload]
    return [BPFTRACE, script], "out", ready


def workload_argv(workload: str, n: int, loops: str, mark: str, path: str) -> list[list[str]]:
    if workload == "exec":
        return [[loops, "exec", str(n), mark]]
    if workload == "open":
        return [[loops, "open", str(n), path]] * 2
    if workload == "runq":
        return [[loops, "pingpong", str(n)]]
    return [[loops, "touch", str(n)]]


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    import os
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_delivered(workload: str, tool: str, out: str, mark: str, path: str,
                    pids: list[int], comm: str) -> int:
    if workload == "exec":   # the /bin/true children, not the loop's own exec
        return sum(1 for line in out.splitlines() if f"/bin/true {mark} arg two" in line)
    if workload == "open":
        return sum(1 for line in out.splitlines() if line.endswith(path))
    if workload == "runq":
        if tool == "lumos":   # -P: the histograms of this workload's two processes
            total = 0
            for block in re.split(r"\n(?=pid = )", out):
                m = re.match(r"pid = \d+ (\S+)", block)
                if m and m.group(1) == comm:
                    total += int(re.search(r"count: (\d+)", block).group(1))
            return total
        # runqlat.bt has one histogram of every task's waits: the machine's, not ours
        return sum(int(c) for c in re.findall(r"^\[[^\]\)]*[\]\)]\s+(\d+) \|", out, re.M))
    if tool == "lumos":
        return sum(int(parts[2]) for parts in (ln.split() for ln in out.splitlines())
                   if len(parts) == 4 and parts[1].isdigit() and int(parts[1]) in pids)
    return sum(int(m.group(2)) for m in re.finditer(r"@minor\[[^,]*, (\d+)\]: (\d+)", out)
               if int(m.group(1)) in pids)


def one_run(procs: Procs, workload: str, tool: str, rep: int, n: int, loops: str,
            workdir: Path, log: Log) -> Run:
    mark = f"lumosbench{uuid.uuid4().hex[:8]}"
    path = str(workdir / f"{mark}.txt")
    Path(path).write_text("x")
    run = Run(workload, tool, rep)
    tracer = None
    try:
        if tool != "untraced":
            argv, where, ready = tool_argv(workload, tool, workdir)
            tracer = procs.start(argv, f"{workload}-{tool}")
            deadline = time.monotonic() + 120
            while ready not in (tracer.read_err() if where == "err" else tracer.read_out()):
                if tracer.popen.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"{tool} did not attach: {tracer.read_err()[-300:]}")
                time.sleep(0.05)
            time.sleep(0.3)
        t0 = time.monotonic()
        loopers = [procs.start(a, f"{workload}-loop{i}")
                   for i, a in enumerate(workload_argv(workload, n, loops, mark, path))]
        per_op = []
        pids = [p.pid for p in loopers]
        for p in loopers:
            if p.wait(600) != 0:
                raise BenchError(f"workload failed: {p.read_err()[-200:]}")
            m = re.search(r"n=(\d+) ns_per_op=([\d.]+)", p.read_out())
            run.made += int(m.group(1)) * (2 if workload == "runq" else 1)
            per_op.append(float(m.group(2)))
            procs.forget(p)
        run.wall_s = time.monotonic() - t0
        run.ns_per_op = max(per_op)
        if tracer is not None:
            time.sleep(1.0)  # let the reader catch up before the stop
            run.tool_cpu_s = cpu_seconds(tracer.pid)
            stop(tracer, 30)
            out, err = tracer.read_out(), tracer.read_err()
            procs.forget(tracer)
            tracer = None
            run.delivered = count_delivered(workload, tool, out, mark, path, pids,
                                            Path(loops).name[:15])
            m = re.search(r"(\d+) events lost|Lost (\d+) events", err + out)
            run.lost_reported = int(next(g for g in m.groups() if g)) if m else 0
    except BenchError as e:
        run.error = str(e)
        log(f"  error: {e}")
    finally:
        if tracer is not None:
            stop(tracer, 10)
            procs.forget(tracer)
        Path(path).unlink(missing_ok=True)
    return run


def table(runs: list[Run], workload: str) -> str:
    rows = []
    base = {r.rep: r.ns_per_op for r in runs if r.workload == workload and r.tool == "untraced"}
    for tool in ("untraced", "lumos", "bpftrace"):
        rs = [r for r in runs if r.workload == workload and r.tool == tool]
        if not rs:
            continue
        ns = median(r.ns_per_op for r in rs)
        over = [r.ns_per_op - base[r.rep] for r in rs
                if r.ns_per_op is not None and base.get(r.rep) is not None]
        if tool == "untraced":
            rows.append([tool, f"{ns / 1000:.2f}" if ns else "—", "—", "", "", "", "", "", ""])
            continue
        delivered = " ".join(f"{r.delivered}/{r.made}" for r in rs if r.delivered is not None)
        rate = median(r.delivered / r.wall_s for r in rs if r.delivered and r.wall_s)
        cpu = median(r.tool_cpu_s for r in rs)
        errors = "; ".join(sorted({r.error for r in rs if r.error}))[:80]
        rows.append([tool, f"{ns / 1000:.2f}" if ns else "—",
                     f"{median(over) / 1000:.2f} µs" if over else "—",
                     spread([o / 1000 for o in over]), delivered,
                     " ".join(str(r.lost_reported) for r in rs if r.lost_reported is not None),
                     f"{rate:,.0f}" if rate else "—", f"{cpu:.2f}" if cpu is not None else "—",
                     errors])
    return markdown_table(["tool", "µs/op", "overhead/op", "range", "delivered/made",
                           "lost (reported)", "events/s", "tool CPU s", "errors"], rows,
                          "lrrrlrrrl")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one repetition, smaller loops")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", nargs="*", choices=list(SIZES), default=list(SIZES))
    args = ap.parse_args()
    reps, sizes = (1, QUICK) if args.quick else (args.reps, SIZES)
    log = Log()
    loops = build_c("loops", ("-O2", "-static"))
    info = machine()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="lumos-ktools-") as tmp, \
            Procs(OUT / "ktools-work") as procs:
        workdir = Path(tmp)
        for workload in args.only:
            for rep in range(reps):
                order = ["untraced", "lumos", "bpftrace"]
                order = order[rep % 3:] + order[:rep % 3]
                for tool in order:
                    log(f"{workload} rep {rep + 1}/{reps}: {tool}")
                    runs.append(one_run(procs, workload, tool, rep, sizes[workload], loops,
                                        workdir, log))
    dump_json("ktools", {"machine": info, "runs": [asdict(r) for r in runs]})
    titles = {"exec": "exec loop (`loops exec`, fork + exec + wait): execsnoop",
              "open": "open loop (`loops open`, two processes): opensnoop",
              "runq": "pipe ping-pong (`loops pingpong`, 2 wake-ups a trip): runqlat",
              "faults": "page-fault loop (`loops touch`): faults"}
    body = (f"Run {info['date']} on kernel {info['kernel']}, {info['cpus']} CPUs (VM, "
            f"shared), {info['bpftrace']}, lumos at {info['lumos_commit']}. "
            f"{reps} repetition(s), medians; `.venv/bin/python bench/ktools.py`.\n")
    for workload in args.only:
        body += (f"\n### {titles[workload]}\n\n{sizes[workload]:,} operations per run.\n\n"
                 + table(runs, workload) + "\n")
    print(body)
    if not args.quick:
        write_section("kernel tools", body + "\n" + __doc__.split("\n\n", 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
