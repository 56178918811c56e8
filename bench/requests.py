"""What `lumos http` and `lumos sql` cost a busy Go server: requests/s and p99 from wrk at
full speed on loopback, untraced and traced, in one run, rounds interleaved.

Servers: the goserver (each request: its handler, a goroutine, an HTTP client call to
/ping, a second server request), and reqsvc's /db/query against a real PostgreSQL
(one query per request) for `lumos sql` with queries to see. Side by side: bpftrace
counting ServeHTTP calls with one uprobe (the cheapest thing it can do here; a
uretprobe would crash the Go server, see the reliability section). OBI/Beyla, the
field's leader, cannot be installed here; its users report +40% CPU on busy servers.

    .venv/bin/python bench/requests.py          # ~4 min, updates the "requests" section
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import (  # noqa: E402
    BPFTRACE,
    CACHE,
    LUMOS,
    ROOT,
    Log,
    Procs,
    build_go,
    free_port,
    go_toolchain,
    machine,
    markdown_table,
    stop,
    write_section,
)

GOSERVER = ROOT / "examples" / "goserver"
log = Log()
NOTES = ("Reading it: each traced request costs the server its uprobe traps (a single-stepped "
         "site takes two, an emulated one one). `lumos http` puts two"
         " emulated traps on each request (ServeHTTP's entry, finishRequest's or handlerDone's"
         " entry): compare `lumos funccount` on the same two sites, whose BPF work is a "
         "counter. `--client` and `lumos sql` also follow every goroutine the program starts "
         "(one emulated trap per `go` statement, at runtime.newproc's CALL of runqput, where "
         "the new g and its parent, g0.m.curg, are both at hand; two before: the goserver "
         "starts 5 per request, database/sql, lib/pq and net/http 3 per /db/query) and put a "
         "RET probe on roundTrip/queryDC (single-stepped). "
         "Streaming every request costs lumos's own CPU (the \"tracer\" column) on the same 2 "
         "CPUs. The \"counters on ...'s sites\" rows put counter-only programs on exactly "
         "the sites each tool probes: the same traps, nothing read, nothing sent, the floor "
         "that tool stands on. Compare each configuration's change against the goal of at "
         "most 5% fewer requests/s and 5% more p99: on this 2-CPU VM the traps alone (the "
         "counter rows) cost more than that budget. The field's leader (OBI/Beyla) cannot be "
         "installed on this machine; its users report +40% CPU on busy servers.")


def wrk(procs: Procs, url: str, seconds: int, connections: int) -> dict:
    rc, out, err = procs.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s",
                              "--latency", url], "wrk", timeout=seconds + 30)
    if rc != 0:
        raise RuntimeError(f"wrk failed: {err}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99_ms = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p99_ms": p99_ms, "requests": total}


def attach(procs: Procs, argv: list[str], name: str):
    tool = procs.start(argv, name)
    mark = "Attaching" if name.startswith("bpftrace") else "Tracing"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if mark in tool.read_err() + tool.read_out():
            time.sleep(1.0 if name.startswith("bpftrace") else 0.3)
            return tool
        if tool.popen.poll() is not None:
            raise RuntimeError(f"{name} exited: {tool.read_err()[-400:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not attach")


def cpu_s(pid: int) -> float:
    """utime + stime of a process (uprobe traps count as the traced process's time)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rounds(procs: Procs, url: str, configs: dict, runs: int, seconds: int,
           connections: int, server_pid: int) -> dict:
    results = {name: [] for name in configs}
    for r in range(runs):
        for name, argv in configs.items():
            tool = attach(procs, argv, name) if argv else None
            c0, t0 = cpu_s(server_pid), cpu_s(tool.pid) if tool else 0.0
            res = wrk(procs, url, seconds, connections)
            c1, t1 = cpu_s(server_pid), cpu_s(tool.pid) if tool else 0.0
            res["server_us"] = 1e6 * (c1 - c0) / res["requests"]
            res["tool_us"] = 1e6 * (t1 - t0) / res["requests"]
            if tool is not None:
                stop(tool, 60)
                res["tool_out"] = tool.read_out()[-2000:]
                procs.forget(tool)
            log(f"round {r} {name}: {res['rps']:.0f} req/s, p99 {res['p99_ms']:.2f} ms, "
                f"server {res['server_us']:.1f} µs/req, tracer {res['tool_us']:.1f} µs/req")
            results[name].append(res)
    return results


def table(results: dict) -> tuple[str, dict]:
    base = results["untraced"]
    b_rps = statistics.median(x["rps"] for x in base)
    b_p99 = statistics.median(x["p99_ms"] for x in base)
    b_cpu = statistics.median(x["server_us"] for x in base)
    rows, summary = [], {}
    for name, rs in results.items():
        rps = statistics.median(x["rps"] for x in rs)
        p99 = statistics.median(x["p99_ms"] for x in rs)
        cpu = statistics.median(x["server_us"] for x in rs)
        tool = statistics.median(x["tool_us"] for x in rs)
        summary[name] = (rps, p99)
        rows.append([name, f"{rps:,.0f}", f"{(rps / b_rps - 1) * 100:+.1f}%",
                     f"{p99:.2f}", f"{(p99 / b_p99 - 1) * 100:+.1f}%",
                     f"{cpu:.0f} ({cpu - b_cpu:+.0f})", f"{tool:.1f}",
                     " / ".join(f"{x['rps']:,.0f}" for x in rs)])
    return markdown_table(["tracing", "req/s", "vs untraced", "p99 ms", "vs untraced",
                           "server CPU µs/req (added)", "tracer CPU µs/req",
                           "req/s per round"], rows, "lrrrrrrl"), summary


FLOORS = {"http": {}, "http-client": {"client": True}, "sql": {"sql": True}}


def floor_mode(kind: str, pid: int) -> int:
    """Counter-only programs on exactly the sites `lumos http` / `http --client` /
    `lumos sql` probe (the same traps, nothing read): the floor those tools stand on."""
    from contextlib import ExitStack

    from lumos.probes.count import CountProbe
    from lumos.session.runner import Runner
    from lumos.targets.reqsites import plan_requests
    from lumos.targets.target import Target
    exe = os.readlink(f"/proc/{pid}/exe")
    rplan = plan_requests(Target(exe, pid), server=True, **FLOORS[kind])
    with ExitStack() as stack:
        probe = CountProbe(list(rplan.sites), tgid=pid).attach(stack)
        print(f"Tracing {len(rplan.sites)} sites, counters only", file=sys.stderr, flush=True)
        with Runner(None, None, pid) as runner:
            for _ in runner.ticks(None):
                pass
        print("counts", probe.read(), file=sys.stderr)
    return 0


def floor_argv(kind: str, pid: str) -> list[str]:
    return [str(ROOT / ".venv" / "bin" / "python"), __file__, "--floor", kind, "-p", pid]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--floor", choices=list(FLOORS), help=argparse.SUPPRESS)
    ap.add_argument("-p", dest="pid", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--no-sql", action="store_true", help="skip the PostgreSQL part")
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only the configuration named NAME (again for more; "
                         "untraced always runs); implies --no-results")
    ap.add_argument("--no-goserver", action="store_true", help="skip the goserver part")
    args = ap.parse_args()
    if args.floor:
        return floor_mode(args.floor, args.pid)
    if args.only:
        args.no_results = True
    binary = build_go(GOSERVER, go_toolchain("system"))
    info = machine()
    body = [f"Run {info['date']} on kernel {info['kernel']}, {info['bpftrace']}, lumos at "
            f"{info['lumos_commit']}; `.venv/bin/python bench/requests.py`. wrk -t2 "
            f"-c{args.connections} -d{args.seconds}s on loopback, {args.runs} rounds with "
            "the configurations interleaved; medians. 2 CPUs shared by wrk, the server "
            "and the tracer, and by other work on this machine: req/s moves by ±30% between "
            "rounds, so the CPU the server spends per request (its utime + stime, which "
            "includes the uprobe traps, over the requests wrk completed) is the steadier "
            "figure."]
    with Procs(CACHE / "work-requests") as procs:
        port = free_port()
        srv = procs.start([binary, "-addr", f"127.0.0.1:{port}"], "goserver", capture=False)
        time.sleep(0.5)
        pid = str(srv.pid)
        configs = {
            "untraced": None,
            "lumos http": [*LUMOS, "http", "-p", pid, "--json"],
            "lumos http --client": [*LUMOS, "http", "-p", pid, "--client", "--json"],
            "lumos http --quiet": [*LUMOS, "http", "-p", pid, "--quiet"],
            "lumos http --client --quiet": [*LUMOS, "http", "-p", pid, "--client", "--quiet"],
            "counters on lumos http's sites": floor_argv("http", pid),
            "counters on lumos http --client's sites": floor_argv("http-client", pid),
            "lumos funccount (the same 2 sites)": [
                *LUMOS, "funccount", "-p", pid, "net/http.serverHandler.ServeHTTP",
                "net/http.(*response).finishRequest"],
            "bpftrace (count ServeHTTP)": [
                BPFTRACE, "-p", pid, "-e",
                f'uprobe:{binary}:"net/http.serverHandler.ServeHTTP" {{ @n = count(); }}'],
        }
        url = f"http://127.0.0.1:{port}/?name=bench&year=2020"
        configs = chosen(configs, args.only)
        if not args.no_goserver:
            res = rounds(procs, url, configs, args.runs, args.seconds, args.connections,
                         srv.pid)
            text, _ = table(res)
            body += ["", "**goserver** (Go 1.19; per request: 2 server requests, 1 client "
                     "call, 2 goroutines; `/?name=bench&year=2020`):", "", text]
        stop(srv, 5)
        procs.forget(srv)
        if not args.no_sql:
            body += ["", *sql_part(procs, args)]
    body += ["", NOTES]
    text = "\n".join(body)
    print(text)
    if not args.no_results:
        write_section("requests: lumos http and lumos sql on a busy Go server", text)
    return 0


def chosen(configs: dict, only: list[str] | None) -> dict:
    """untraced and the configurations --only names (all without --only)."""
    return {k: v for k, v in configs.items()
            if v is None or not only or k in only}


def sql_part(procs: Procs, args) -> list[str]:
    from support.gobuild import build
    from support.reqsvc import Postgres, Service
    exe = build("reqsvc", "1.19", "cgo")
    pg = Postgres().start()
    try:
        svc = Service(exe, pg, CACHE / "work-requests", tls=False, quiet=True)
        try:
            pid = str(svc.pid)
            configs = {"untraced": None,
                       "lumos sql": [*LUMOS, "sql", "-p", pid, "--json"],
                       "lumos sql --quiet": [*LUMOS, "sql", "-p", pid, "--quiet"],
                       "counters on lumos sql's sites": floor_argv("sql", pid)}
            configs = chosen(configs, args.only)
            res = rounds(procs, svc.http + "/db/query?id=1", configs, args.runs,
                         args.seconds, args.connections, svc.pid)
            text, _ = table(res)
        finally:
            svc.stop()
    finally:
        pg.stop()
    return ["**reqsvc /db/query** (Go 1.19, lib/pq, PostgreSQL 15 on loopback; one "
            "`SELECT ($1::int + 1)::text` per request):", "", text]


if __name__ == "__main__":
    sys.exit(main())
