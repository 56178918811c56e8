"""Reliability side by side: timing a Go function's calls, the bpftrace way (a uretprobe)
and the lumos way (uprobes on every RET), on the demo web server under real requests.

For each tool: start a fresh goserver, attach, send REQUESTS requests one by one, then
record how many were answered, whether the server is still alive (and the signal that
killed it if not), and what the tool measured. Then the same under load: Debian's wrk
(2 threads, 8 connections, WRK_S seconds on loopback) against the server untraced and
under each tool: requests served, non-2xx answers, socket errors, the server's fate.

    .venv/bin/python bench/reliability.py     # ~2 min, updates the "reliability" section
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
REQUESTS = 20
WRK_S = 10
FUNCTION = "main.handler"
log = Log()


def tools(binary: str, pid: int) -> dict[str, list[str]]:
    return {
        "bpftrace uretprobe": [BPFTRACE, "-p", str(pid), "-e",
                               f"uprobe:{binary}:{FUNCTION} {{ @s[tid] = nsecs; }} "
                               f"uretprobe:{binary}:{FUNCTION} /@s[tid]/ "
                               f"{{ @us = hist((nsecs - @s[tid]) / 1000); @n = count(); "
                               f"delete(@s[tid]); }}"],
        "lumos latency": [*LUMOS, "latency", "-p", str(pid), FUNCTION],
    }


def wrk_tools(binary: str, pid: int) -> dict[str, list[str] | None]:
    return {
        "untraced": None,
        "lumos latency main.handler": [*LUMOS, "latency", "-p", str(pid), FUNCTION],
        "lumos latency main.* net/http.*": [*LUMOS, "latency", "-p", str(pid), "main.*",
                                            "net/http.*"],
        "bpftrace uretprobe main.handler": tools(binary, pid)["bpftrace uretprobe"],
    }


def server_fate(srv, served: str) -> str:
    rc = srv.popen.poll()
    if rc is None:
        return "alive"
    sig = -rc if rc < 0 else None
    fate = (f"killed by {signal.Signals(sig).name}" if sig else f"exited {rc}") + served
    m = re.search(r"SIG\w+|fatal error: [^\n]+", srv.read_err())
    return fate + (f" (its stderr: {m.group(0)})" if m else "")


def under_wrk(procs: Procs, binary: str, name: str) -> dict:
    port = free_port()
    srv = procs.start([binary, "-addr", f"127.0.0.1:{port}"], "goserver")
    time.sleep(0.5)
    argv = wrk_tools(binary, srv.pid)[name]
    result = {"tool": name, "served": 0, "non2xx": 0, "socket errors": 0, "server": "alive"}
    tool = None
    if argv is not None:
        env = {"PYTHONDONTWRITEBYTECODE": None,
               "PYTHONPYCACHEPREFIX": str(CACHE / "pycache")}
        tool = procs.start(argv, "tool", env=env if name.startswith("lumos") else None)
        if not attached(tool, name, timeout=180):
            result["server"] = "tool did not attach: " + tool.read_err().strip()[-200:]
            stop(tool, 5)
            stop(srv, 5)
            return result
    w = procs.start(["wrk", "-t2", "-c8", f"-d{WRK_S}s", "--timeout", "2s",
                     f"http://127.0.0.1:{port}/?name=wrk&year=2024"], "wrk")
    w.popen.wait(timeout=WRK_S + 60)
    out = w.read_out()
    m = re.search(r"(\d+) requests in", out)
    result["served"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                  out)
    result["socket errors"] = sum(map(int, m.groups())) if m else 0
    result["server"] = server_fate(srv, "")
    if tool is not None:
        stop(tool, 120)
    stop(srv, 5)
    return result


def attached(proc, tool: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    mark = "Attaching" if tool.startswith("bpftrace") else "Tracing"
    while time.monotonic() < deadline:
        if mark in proc.read_err() + proc.read_out():
            time.sleep(1.0 if tool.startswith("bpftrace") else 0.1)  # bpftrace: line comes first
            return True
        if proc.popen.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def one(procs: Procs, binary: str, name: str) -> dict:
    port = free_port()
    srv = procs.start([binary, "-addr", f"127.0.0.1:{port}"], "goserver")
    time.sleep(0.5)
    argv = tools(binary, srv.pid)[name]
    env = {"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(CACHE / "pycache")}
    tool = procs.start(argv, "tool", env=env if name.startswith("lumos") else None)
    result = {"tool": name, "answered": 0, "server": "alive", "measured": ""}
    if not attached(tool, name):
        result["server"] = "tool did not attach: " + (tool.read_err().strip()[-200:])
        stop(tool, 5)
        stop(srv, 5)
        return result
    for i in range(REQUESTS):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/?name=r{i}&year=2020",
                                        timeout=5) as resp:
                resp.read()
            result["answered"] += 1
        except OSError:
            break
    time.sleep(0.3)
    result["server"] = server_fate(srv, f" after {result['answered']} requests")
    stop(tool, 120)
    out = tool.read_out()
    if name.startswith("lumos"):
        m = re.search(r"count: (\d+)", out)
        result["measured"] = f"{m.group(1)} calls timed" if m else out.strip()[-80:]
    else:
        m = re.search(r"@n: (\d+)", out)
        result["measured"] = f"{m.group(1)} calls timed" if m else "nothing"
    stop(srv, 5)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    binary = build_go(GOSERVER, go_toolchain("system"))
    rows = []
    with Procs(CACHE / "work-reliability") as procs:
        for run in range(args.runs):
            for name in ("bpftrace uretprobe", "lumos latency"):
                r = one(procs, binary, name)
                log(f"run {run} {name}: {r}")
                rows.append([name, run, f"{r['answered']}/{REQUESTS}", r["server"],
                             r["measured"]])
        wrk_rows = []
        for name in ("untraced", "lumos latency main.handler",
                     "lumos latency main.* net/http.*", "bpftrace uretprobe main.handler"):
            r = under_wrk(procs, binary, name)
            log(f"wrk {name}: {r}")
            wrk_rows.append([name, f"{r['served']:,}", r["non2xx"], r["socket errors"],
                             r["server"]])
    info = machine()
    body = (f"Run {info['date']} on kernel {info['kernel']}, {info['bpftrace']}, lumos at "
            f"{info['lumos_commit']}; `.venv/bin/python bench/reliability.py`. Timing "
            f"`{FUNCTION}` of the goserver (Go 1.19) while sending {REQUESTS} requests:\n\n"
            + markdown_table(["tool", "run", "answered", "goserver", "tool measured"], rows,
                             "lrrll")
            + f"\n\nUnder wrk (2 threads, 8 connections, {WRK_S} s, loopback), a fresh "
            f"goserver each:\n\n"
            + markdown_table(["tool", "requests served", "non-2xx", "socket errors",
                              "goserver"], wrk_rows, "lrrrl"))
    print(body)
    if not args.no_results:
        write_section("reliability: uretprobe vs RET uprobes on Go", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
