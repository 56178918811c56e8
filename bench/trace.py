"""Benchmark: what `lumos trace` and `lumos latency` add per call, side by side with
bpftrace doing the same jobs, in the same run.

tests/programs/gohot calls main.hot N times in each of G goroutines and prints its own
ns_per_call. Every tool starts it with -c (held before exec until probes are attached);
overhead = ns_per_call traced - ns_per_call untraced, same binary, same repetition.

  count        lumos funccount main.hot          (entry on the prologue's emulated JBE)
  trace        lumos trace --json main.hot       (every event decoded and written to a file)
  latency      lumos latency main.hot            (entry + every RET, in-kernel histogram)
  floor        two counter-only programs, at the same entry site and RET site as latency
  bt count     bpftrace uprobe:B:main.hot { @ = count(); }
  bt printf    bpftrace uprobe:B:main.hot { printf("%d\\n", reg("ax")); }
  bt latency   bpftrace entry + a hand-placed RET uprobe, keyed by TID (see with_ret_symbol)

Targets (from the issue): trace <= 1.3x lumos count; lumos count <= 0.3x bpftrace count;
latency <= 0.65x bpftrace latency and <= 1.05x the floor; zero lost events with two
goroutines calling at full speed.

    .venv/bin/python bench/trace.py            # ~5 min, updates the "trace and latency" section
    .venv/bin/python bench/trace.py --quick    # 3 reps, one Go version
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BPFTRACE,
    CACHE,
    LUMOS,
    ROOT,
    BenchError,
    Log,
    Procs,
    build_go,
    dump_json,
    fmt,
    go_toolchain,
    go_version,
    machine,
    markdown_table,
    median,
    spread,
    write_section,
)

GOHOT = ROOT / "tests" / "programs" / "gohot"
PY = str(ROOT / ".venv" / "bin" / "python")
LUMOS_ENV = {"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(CACHE / "pycache")}
log = Log()


@dataclass(frozen=True)
class Config:
    name: str
    kind: str  # lumos | bpftrace | untraced

    def argv(self, binary: str, cmd: str) -> list[str]:
        fn = "main.hot"
        if self.name == "untraced":
            return cmd.split()
        if self.name == "count":
            return [*LUMOS, "funccount", "-c", cmd, fn]
        if self.name == "trace":
            return [*LUMOS, "trace", "--json", "-c", cmd, fn]
        if self.name == "latency":
            return [*LUMOS, "latency", "-c", cmd, fn]
        if self.name == "floor":
            return [PY, __file__, "--floor", binary, "-c", cmd]
        prog = {
            "bt count": f"uprobe:{binary}:{fn} {{ @ = count(); }}",
            "bt printf": f'uprobe:{binary}:{fn} {{ printf("%d\\n", reg("ax")); }}',
            "bt latency": (f"uprobe:{binary}:{fn} {{ @s[tid] = nsecs; }} "
                           f"uprobe:{binary}:{RET_ALIAS} /@s[tid]/ "
                           f"{{ @lat = hist(nsecs - @s[tid]); delete(@s[tid]); }}"),
        }[self.name]
        return [BPFTRACE, "-c", cmd, "-e", prog]


CONFIGS = [Config("untraced", "untraced"), Config("count", "lumos"),
           Config("trace", "lumos"), Config("latency", "lumos"), Config("floor", "lumos"),
           Config("bt count", "bpftrace"), Config("bt printf", "bpftrace"),
           Config("bt latency", "bpftrace")]


@dataclass
class Run:
    go: str
    config: str
    goroutines: int
    rep: int
    ns_per_call: float | None = None
    hot: int | None = None
    events: int | None = None
    lost: int | None = None
    error: str | None = None


RET_ALIAS = "runtime.abort.abi0"  # a symbol gohot never calls, re-pointed at main.hot's RET


def with_ret_symbol(binary: str) -> str:
    """A copy of binary whose RET_ALIAS symbol names main.hot's RET (size 1).

    Debian's bpftrace 0.17 cannot probe func+offset ("compiled without (k|u)probe offset
    support") nor a zero-size symbol, so a hand-placed RET uprobe needs a symbol there.
    Only .symtab changes: the code both tools run is the same bytes.
    """
    import shutil
    import struct

    from lumos.binary.elf import ELF64_SYM, open_elf
    from lumos.golang.gobinary import open_go_binary
    out = Path(binary + ".retsym")
    if out.exists():
        return str(out)
    with open_go_binary(binary) as gb:
        ret = gb.spec(gb.get_functions("main.hot")[0]).ret_sites[0].vaddr
    with open_elf(binary) as elf:
        sec = elf.elf.get_section_by_name(".symtab")
        strtab = elf.elf.get_section(sec["sh_link"]).data()
        data = sec.data()
        index = next(i for i, (name, *_rest) in enumerate(ELF64_SYM.iter_unpack(data))
                     if strtab[name:strtab.index(b"\0", name)] == RET_ALIAS.encode())
        where = sec["sh_offset"] + index * ELF64_SYM.size + 8  # st_value, st_size
    tmp = out.with_suffix(".tmp")
    shutil.copy(binary, tmp)
    with open(tmp, "r+b") as f:
        f.seek(where)
        f.write(struct.pack("<QQ", ret, 1))
    tmp.rename(out)
    return str(out)


def run_one(procs: Procs, go: str, binary: str, cfg: Config, n: int, g: int,
            rep: int) -> Run:
    cmd = f"{binary} -n {n} -g {g}"
    r = Run(go, cfg.name, g, rep)
    env = LUMOS_ENV if cfg.kind == "lumos" else None
    rc, out, err = procs.run(cfg.argv(binary, cmd), "gohot", 600, env)
    m = re.search(r"hot=(\d+) ns_per_call=([\d.]+)", out)
    if m:
        r.hot, r.ns_per_call = int(m.group(1)), float(m.group(2))
    if cfg.name == "trace":
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        r.events = sum(1 for x in lines if x.get("event") == "call")
        r.lost = next((x["lost"] for x in lines if "lost" in x), None)
    if cfg.name == "bt printf":
        r.events = sum(1 for x in out.splitlines() if x.strip().isdigit())
    if rc != 0 or m is None:
        r.error = (err.strip().splitlines() or [f"exit {rc}"])[-1][:120]
    return r


def bench(procs: Procs, binaries: dict[str, str], n: int, reps: int) -> list[Run]:
    runs: list[Run] = []
    for go, built in binaries.items():
        binary = with_ret_symbol(built)  # every tool runs this copy (see with_ret_symbol)
        for rep in range(reps):
            k = rep % len(CONFIGS)
            for cfg in CONFIGS[k:] + CONFIGS[:k]:  # rotate: no tool always runs first
                r = run_one(procs, go, binary, cfg, n, 1, rep)
                log(f"{go} {cfg.name:11} rep {rep}: {r.ns_per_call} ns/call"
                    + (f", events {r.events} lost {r.lost}" if r.events is not None else "")
                    + (f"  ERROR {r.error}" if r.error else ""))
                runs.append(r)
        for rep in range(max(1, reps // 2)):  # two goroutines at full speed: nothing lost
            for cfg in (CONFIGS[0], CONFIGS[1], CONFIGS[2]):
                r = run_one(procs, go, binary, cfg, n, 2, rep)
                log(f"{go} {cfg.name:11} -g 2 rep {rep}: {r.ns_per_call} ns/call"
                    + (f", events {r.events}/{r.hot} lost {r.lost}" if r.events is not None
                       else ""))
                runs.append(r)
    return runs


def overheads(runs: list[Run], go: str, g: int) -> dict[str, list[float]]:
    base = {r.rep: r.ns_per_call for r in runs
            if r.go == go and r.goroutines == g and r.config == "untraced"}
    out: dict[str, list[float]] = {}
    for r in runs:
        if r.go == go and r.goroutines == g and r.config != "untraced" \
                and r.ns_per_call is not None and base.get(r.rep) is not None:
            out.setdefault(r.config, []).append((r.ns_per_call - base[r.rep]) / 1000)
    return out


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "—"


def report(runs: list[Run], gos: list[str]) -> str:
    parts = []
    for go in gos:
        ov = overheads(runs, go, 1)
        med = {k: median(v) for k, v in ov.items()}
        rows = [[name, fmt(med.get(name), "µs"), spread(ov.get(name, [])),
                 ratio(med.get(name), med.get("count")),
                 ratio(med.get(name), med.get("bt count"))]
                for name in [c.name for c in CONFIGS[1:]]]
        parts.append(f"**{go}**, one goroutine (`gohot -g 1`), overhead per call, medians:\n\n"
                     + markdown_table(["config", "overhead/call", "range", "÷ lumos count",
                                       "÷ bt count"], rows, "lrrrr"))
        checks = [
            ("trace ≤ 1.3× lumos count", med.get("trace"), med.get("count"), 1.3),
            ("lumos count ≤ 0.3× bpftrace count", med.get("count"), med.get("bt count"), 0.3),
            ("latency ≤ 0.65× bpftrace latency", med.get("latency"), med.get("bt latency"),
             0.65),
            ("latency ≤ 1.05× floor (two counters)", med.get("latency"), med.get("floor"),
             1.05),
        ]
        lines = []
        for label, a, b, limit in checks:
            if a is None or not b:
                lines.append(f"- {label}: not measured")
                continue
            verdict = "met" if a / b <= limit else "NOT met"
            lines.append(f"- {label}: {a / b:.2f}× — {verdict}")
        two = [r for r in runs if r.go == go and r.goroutines == 2 and r.config == "trace"]
        ov2 = overheads(runs, go, 2)
        lines.append("- two goroutines at full speed, `trace --json`: events/calls "
                     + ", ".join(f"{r.events}/{r.hot} (lost {r.lost})" for r in two)
                     + f"; overhead {fmt(median(ov2.get('trace', [])), 'µs')} vs count "
                     f"{fmt(median(ov2.get('count', [])), 'µs')} "
                     f"({ratio(median(ov2.get('trace', [])), median(ov2.get('count', [])))})")
        errors = sorted({f"{r.config}: {r.error}" for r in runs if r.go == go and r.error})
        if errors:
            lines.append("- errors: " + "; ".join(errors))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def floor_mode(binary: str, cmd: str) -> int:
    """Two counter-only programs' worth of work at latency's two sites: one counting
    program on the entry site and the RET site (the floor latency cannot go below)."""
    import shlex

    from lumos.probes.count import CountProbe
    from lumos.session.runner import Runner
    from lumos.targets.launch import Launched
    from lumos.targets.plan import plan
    from lumos.targets.target import Target
    with ExitStack() as stack:
        launched = Launched(shlex.split(cmd))
        stack.callback(launched.close)
        target = Target(launched.exe, launched.pid, launched, ["main.hot"])
        f = plan(target, ["main.hot"])[0]
        probe = CountProbe([f.entry, *f.exits], tgid=launched.pid).attach(stack)
        launched.start()
        with Runner(None, launched) as runner:
            for _ in runner.ticks(None):
                print("counts", probe.read(), file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=300_000, help="main.hot calls per goroutine")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--go", nargs="+", default=["system", "1.27.3"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-results", action="store_true", help="do not touch RESULTS.md")
    ap.add_argument("--floor", metavar="BINARY", help=argparse.SUPPRESS)
    ap.add_argument("-c", dest="cmd", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor:
        return floor_mode(args.floor, args.cmd)
    if args.quick:
        args.reps, args.go = 3, args.go[:1]
    try:
        binaries = {go_version(go_toolchain(v)): build_go(GOHOT, go_toolchain(v))
                    for v in args.go}
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    with Procs(CACHE / "work-trace") as procs:
        runs = bench(procs, binaries, args.n, args.reps)
    info = machine()
    body = (f"Run {info['date']} on kernel {info['kernel']}, {info['cpus']} CPUs (VM, shared), "
            f"{info['bpftrace']}, lumos at {info['lumos_commit']}; "
            f"`.venv/bin/python bench/trace.py` (-n {args.n}, {args.reps} reps, tools "
            f"rotated each rep).\n\n" + report(runs, list(binaries)))
    print(body)
    dump_json("trace", {"machine": info, "runs": [r.__dict__ for r in runs]})
    if not args.no_results:
        write_section("trace and latency", body + "\n\n" + __doc__.split("\n\n", 1)[1]
                      .split("    .venv")[0].strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
