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
    while p.popen.poll() is None:
        if attached is None and ready in p.read_err():
            attached = time.monotonic()
        peak = max(peak, _rss_kb(p.pid))
        time.sleep(0.05)
    ended = time.monotonic()
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
    return {"tool": tool, "goroutines": goroutines, "rate": rate, "written": written,
            "per_s": written / seconds, "lost": lost, "rss_mb": peak / 1024,
            "exit_s": ended - start - seconds, "attach_s": start - t0}


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
             f"{r['rss_mb']:.0f} MiB", f"{r['exit_s']:+.2f} s"] for r in results]
    table = markdown_table(["load", "tracer", "events written/s", "lost", "peak RSS",
                            "exit after -d"], rows, align="llrrrr")
    m = machine()
    body = (f"Measured {m['date']} on Linux {m['kernel']}, {m['cpus']} CPUs, "
            f"{m['bpftrace']}, lumos {m['lumos_commit']}; {args.seconds} s per run, "
            f"`tests/programs/go/streamer` (Go 1.19) calling `main.emit(n int, s string)`.\n\n"
            + table)
    write_section("Streaming: sustained load", body)
    dump_json("stream", {"machine": m, "results": results})
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
