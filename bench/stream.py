"""Sustained streaming, side by side with bpftrace in one run: events written per second,
events lost, peak RSS, and how long after -d each tracer exits.

The traced program is tests/programs/go/streamer: main.emit(n int, s string) called flat
out from 1, 2 or 4 goroutines, or at a fixed total rate. Each tracer is attached with
-p to a streamer already running (so start-up is not counted), writes into a file on
tmpfs (what is written is counted there), and is stopped by its own duration
(`-d`, or bpftrace's `interval:s:N { exit(); }`). Exit latency = end of the run minus
the moment the tracer said it was attached minus the duration.

    .venv/bin/python bench/stream.py [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from common import (
    BPFTRACE,
    LUMOS,
    ROOT,
    Log,
    Procs,
    build_go,
    dump_json,
    go_toolchain,
    machine,
    markdown_table,
    write_section,
)

STREAMER = ROOT / "tests" / "programs" / "go" / "streamer"
CONFIGS = [("1 goroutine flat out", 1, 0), ("2 goroutines flat out", 2, 0),
           ("4 goroutines flat out", 4, 0), ("10k/s", 1, 10_000), ("100k/s", 1, 100_000),
           ("500k/s", 1, 500_000)]
TOOLS = {
    "lumos trace": ["trace"],
    "lumos trace --json": ["trace", "--json"],
    "lumos flow": ["flow"],
    "bpftrace printf": None,
}


def bpftrace_script(binary: str, pid: int, seconds: int) -> str:
    return (f'uprobe:{binary}:main.emit /pid == {pid}/ {{ printf("%d %d %d %s\\n", pid, '
            f'tid, reg("ax"), str(reg("bx"), reg("cx"))); }} '
            f"interval:s:{seconds} {{ exit(); }}")


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    """user + sys CPU seconds of a running process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _head(path) -> str:
    """The start of a growing output file (bpftrace says "Attaching" on stdout)."""
    with open(path, "rb") as f:
        return f.read(4096).decode(errors="replace")


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_one(procs: Procs, binary: str, tool: str, goroutines: int, rate: int,
            seconds: int) -> dict:
    target = procs.start([binary, "-d", str(seconds + 30), "-g", str(goroutines),
                          "-rate", str(rate)], "streamer")
    while "ready" not in target.read_err():
        time.sleep(0.05)
    if TOOLS[tool] is None:
        argv = [BPFTRACE, "-e", bpftrace_script(binary, target.pid, seconds)]
        ready = "Attaching"
    else:
        argv = [*LUMOS, *TOOLS[tool], "-p", str(target.pid), "main.emit", "-d", str(seconds)]
        ready = "Tracing"
    t0 = time.monotonic()
    p = procs.start(argv, tool.replace(" ", "_"))  # output into files on tmpfs
    attached = None
    peak = 0
    cpu0 = target0 = target1 = None
    while True:
        # reaped here (not by Popen) for the tracer's rusage: its CPU to the very end
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.popen.returncode = os.waitstatus_to_exitcode(status)
            break
        if attached is None and (ready in p.read_err() or ready in _head(p.out_path)):
            attached = time.monotonic()
            cpu0, target0 = _cpu_s(p.pid), _cpu_s(target.pid)  # start-up left out
        if attached is not None:
            target1 = _cpu_s(target.pid)
        peak = max(peak, _rss_kb(p.pid))
        time.sleep(0.05)
    ended = time.monotonic()
    tracer_cpu = usage.ru_utime + usage.ru_stime - (cpu0 or 0)
    target_cpu = (target1 or 0) - (target0 or 0)
    text = p.read_out()
    err = p.read_err()
    procs.forget(p)
    target.popen.kill()
    target.popen.wait()
    procs.forget(target)
    lines = text.count("\n")
    if tool == "lumos flow":
        written = text.count("-> main.emit") + text.count("<- main.emit")
    elif tool.startswith("lumos"):
        written = text.count("main.emit")
    else:
        written = lines
    lost = 0
    m = re.search(r"(\d+) events lost", err) or re.search(r"Lost (\d+) events", err)
    if m:
        lost = int(m.group(1))
    start = attached or t0
    calls = (written + lost) // 2 if tool == "lumos flow" else written + lost  # flow: 2 a call
    return {"tool": tool, "goroutines": goroutines, "rate": rate, "written": written,
            "per_s": written / seconds, "lost": lost, "rss_mb": peak / 1024,
            "exit_s": ended - start - seconds, "attach_s": start - t0,
            "tracer_cpu_s": tracer_cpu, "per_cpu_s": written / tracer_cpu if tracer_cpu else 0,
            # what the program did while traced (written + lost = its calls), and what
            # each call cost it, uprobe trap included (the kernel charges it to the caller)
            "calls_per_s": calls / seconds, "target_cpu_s": target_cpu,
            "target_us_per_call": 1e6 * target_cpu / calls if calls else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="flat out with 1 goroutine only")
    args = ap.parse_args()
    log = Log()
    binary = build_go(STREAMER, go_toolchain("system"))
    configs = CONFIGS[:1] if args.quick else CONFIGS
    results = []
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp, \
            Procs(Path(tmp) / "procs") as procs:
        for name, g, rate in configs:
            for tool in TOOLS:
                log(f"{name}: {tool}")
                r = run_one(procs, binary, tool, g, rate, args.seconds)
                r["config"] = name
                results.append(r)
    rows = [[r["config"], r["tool"], f"{r['per_s']:,.0f}", f"{r['lost']:,}",
             f"{r['per_cpu_s']:,.0f}", f"{r['calls_per_s']:,.0f}",
             f"{r['target_us_per_call']:.2f}", f"{r['rss_mb']:.0f} MiB",
             f"{r['exit_s']:+.2f} s"] for r in results]
    table = markdown_table(["load", "tracer", "events written/s", "lost",
                            "written per tracer CPU-s", "calls/s while traced",
                            "target CPU µs/call", "peak RSS", "exit after -d"], rows,
                           align="llrrrrrrr")
    m = machine()
    body = (f"Measured {m['date']} on Linux {m['kernel']}, {m['cpus']} CPUs, "
            f"{m['bpftrace']}, lumos {m['lumos_commit']}; {args.seconds} s per run, "
            f"`tests/programs/go/streamer` (Go 1.19) calling `main.emit(n int, s string)`; "
            f"load average {os.getloadavg()[0]:.1f} at the end (the VM is shared).\n\n"
            "*written per tracer CPU-s*: events written over the tracer's own user+sys CPU "
            "time after it attached (steadier than wall rates on a shared machine); "
            "*calls/s while traced*: written + lost over the run, what the program itself "
            "managed under the probe; *target CPU µs/call*: the program's user+sys CPU over "
            "those calls (the uprobe trap is charged to it).\n\n"
            + table)
    write_section("Streaming: sustained load", body)
    dump_json("stream", {"machine": m, "results": results})
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
