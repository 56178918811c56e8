"""Reliability side by side: timing a Go function's calls, the bpftrace way (a uretprobe)
and the lumos way (uprobes on every RET), on the demo web server under real requests.

For each tool: start a fresh goserver, attach, send REQUESTS requests one by one, then
record how many were answered, whether the server is still alive (and the signal that
killed it if not), and what the tool measured.

    .venv/bin/python bench/reliability.py     # ~1 min, updates the "reliability" section
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
    rc = srv.popen.poll()
    if rc is not None:
        sig = -rc if rc < 0 else None
        result["server"] = (f"killed by {signal.Signals(sig).name}" if sig
                            else f"exited {rc}") + f" after {result['answered']} requests"
        m = re.search(r"SIG\w+|fatal error: [^\n]+", srv.read_err())
        if m:
            result["server"] += f" ({m.group(0)})"
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
    info = machine()
    body = (f"Run {info['date']} on kernel {info['kernel']}, {info['bpftrace']}, lumos at "
            f"{info['lumos_commit']}; `.venv/bin/python bench/reliability.py`. Timing "
            f"`{FUNCTION}` of the goserver (Go 1.19) while sending {REQUESTS} requests:\n\n"
            + markdown_table(["tool", "run", "answered", "goserver", "tool measured"], rows,
                             "lrrll"))
    print(body)
    if not args.no_results:
        write_section("reliability: uretprobe vs RET uprobes on Go", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
