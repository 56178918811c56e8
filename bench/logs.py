"""Benchmark: what `lumos logs` adds to a Go program whose debug calls are filtered out,
side by side with bpftrace counting the same calls, in the same run.

tests/programs/go/slogbench makes -rate slog Debug calls a second (the logger is at
INFO, so every call is filtered) with three attributes, for -d seconds, and prints its
own CPU time (getrusage: the uprobe's kernel work lands in the traced thread's sys
time). Each configuration starts it with -c; reps alternate configurations.

  untraced       the program alone
  logs           lumos logs (default --rate 1000 per site: 1,000/s decoded and printed;
                 once a second's quota is spent the site's probe steps aside until the
                 next second, so the rest cost no trap and are not counted)
  logs no-pause  lumos logs --no-pause: every call probed, the excess counted in the kernel
  logs all       lumos logs --rate 0 at 10,000 calls/s: every call captured and decoded
  bt count       bpftrace uprobe:B:"log/slog.(*Logger).log" { @ = count(); }

Added CPU = (traced CPU - untraced CPU) / wall time, in % of one CPU; per call = the
same difference / calls made. lumos's own CPU (decoding, output) is reported apart.

    .venv/bin/python bench/logs.py            # ~2 min, updates the "logs" section
    .venv/bin/python bench/logs.py --quick    # 1 rep
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BPFTRACE,
    LUMOS,
    ROOT,
    build_go,
    dump_json,
    go_toolchain,
    go_version,
    machine,
    markdown_table,
    median,
    write_section,
)

PROGRAM = ROOT / "tests" / "programs" / "go" / "slogbench"
FN = "log/slog.(*Logger).log"


def argv(config: str, binary: str, cmd: str) -> list[str]:
    if config == "untraced":
        return cmd.split()
    if config == "logs":
        return [*LUMOS, "logs", "-c", cmd, "--json"]
    if config == "logs no-pause":
        return [*LUMOS, "logs", "-c", cmd, "--json", "--no-pause"]
    if config == "logs all":
        return [*LUMOS, "logs", "-c", cmd, "--json", "--rate", "0"]
    return [BPFTRACE, "-c", cmd, "-e", f'uprobe:{binary}:"{FN}" {{ @ = count(); }}']


def run_one(config: str, binary: str, rate: int, secs: float) -> dict:
    cmd = f"{binary} -rate {rate} -d {secs}"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv(config, binary, cmd), stdout=out, stderr=err,
                             start_new_session=True)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except KeyboardInterrupt:
            p.kill()
            raise
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        lines = out.read().splitlines()
        stderr = err.read()
    prog = next((json.loads(x) for x in lines if x.startswith('{"calls"')), None)
    if prog is None:
        raise SystemExit(f"{config}: the program printed nothing ({stderr.strip()[-300:]})")
    shown = sum(1 for x in lines if x.startswith('{"time"'))
    lost = next((json.loads(x)["lost"] for x in lines if x.startswith('{"lost"')), 0)
    limited = next((json.loads(x)["rate_limited"] for x in lines
                    if x.startswith('{"rate_limited"')), 0)
    tool_cpu = ru.ru_utime + ru.ru_stime - prog["user_s"] - prog["sys_s"]
    return {"config": config, "rate": rate, "calls": prog["calls"],
            "cpu_s": prog["user_s"] + prog["sys_s"], "wall_s": prog["wall_s"],
            "tool_cpu_s": tool_cpu if config != "untraced" else 0.0, "shown": shown,
            "lost": lost, "rate_limited": limited, "elapsed_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--secs", type=float, default=5.0)
    a = ap.parse_args()
    reps = 1 if a.quick else a.reps
    go = go_toolchain("1.27.3")
    binary = build_go(PROGRAM, go)
    jobs = [("untraced", 100_000), ("logs", 100_000), ("logs no-pause", 100_000),
            ("bt count", 100_000),
            ("untraced", 10_000), ("logs all", 10_000)]
    runs = []
    for rep in range(reps):
        for config, rate in jobs:
            r = run_one(config, binary, rate, a.secs)
            r["rep"] = rep
            runs.append(r)
            print(f"rep {rep} {config:13} {rate:>7}/s: calls {r['calls']}, "
                  f"cpu {r['cpu_s']:.3f} s, tool cpu {r['tool_cpu_s']:.2f} s, "
                  f"shown {r['shown']}, limited {r['rate_limited']}, lost {r['lost']}",
                  flush=True)
    rows = []
    for config, rate in jobs:
        if config == "untraced":
            continue
        base = [r for r in runs if r["config"] == "untraced" and r["rate"] == rate]
        mine = [r for r in runs if r["config"] == config and r["rate"] == rate]
        added = median((m["cpu_s"] - b["cpu_s"]) / m["wall_s"] * 100
                       for m, b in zip(mine, base, strict=True))
        per_call = median((m["cpu_s"] - b["cpu_s"]) / max(m["calls"], 1) * 1e6
                          for m, b in zip(mine, base, strict=True))
        calls_rate = median(m["calls"] / m["wall_s"] for m in mine)
        tool = median(m["tool_cpu_s"] / m["elapsed_s"] * 100 for m in mine)
        shown = median(m["shown"] for m in mine)
        rows.append([config, f"{rate:,}/s", f"{calls_rate:,.0f}/s", f"{added:.1f}%",
                     f"{per_call:.2f} µs", f"{tool:.1f}%",
                     f"{shown:,.0f} shown, {median(m['rate_limited'] for m in mine):,.0f}"
                     f" counted, {median(m['lost'] for m in mine):,.0f} lost"
                     if config != "bt count" else "-"])
    base = median(r["cpu_s"] / r["wall_s"] * 100 for r in runs
                  if r["config"] == "untraced" and r["rate"] == 100_000)
    body = (f"Go {go_version(go)}, {machine()['kernel']}, {reps} rep(s) of {a.secs:.0f} s, "
            f"medians. The program alone uses {base:.1f}% of a CPU at 100,000 calls/s.\n\n"
            + markdown_table(["config", "asked", "made", "added CPU (program)",
                              "added per call", "tool's own CPU", "calls"], rows))
    write_section("logs: filtered debug calls (lumos logs vs bpftrace)", body)
    dump_json("logs", {"runs": runs})
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
