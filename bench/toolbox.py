"""The toolbox tools side by side with bpftrace's equivalents in one run: the event rate
each sustains with zero lost records, and what it costs the traced workload.

Python calls (tests/programs/python/hotloop.py: f() called N times flat out on Debian's
python3.11, its loop timed by itself):
    lumos ucalls            calls per method counted in the kernel (return sites only)
    lumos ucalls -L         with time per method (entry and return sites)
    lumos uflow             every entry and return streamed, decoded, written
    lumos trace usdt:python:function__return   every return (USDT), streamed
    bpftrace usdt:...:function__return { @[str(arg1)] = count(); }
Lost = what the tool says it lost; seen = the f() calls (or events) it reported, which
must equal N. bpftrace cannot do uflow's or ucalls's uprobe mode: the eval loop's
labels are file offsets only DWARF gives (bpftrace 0.17 here has no uprobe offsets).

Lookups (tests/programs/c/lookups.c and tests/programs/go/resolver, N lookups of an
/etc/hosts name, as fast as the resolver answers):
    lumos gethostlatency    (system-wide; the Go binary as target for Go's resolver)
    bpftrace /usr/sbin/gethostlatency.bt (sees no lookup of Go's own resolver)

    .venv/bin/python bench/toolbox.py [--calls N] [--lookups N] [--quick]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from common import (
    BPFTRACE,
    LUMOS,
    ROOT,
    Log,
    Procs,
    dump_json,
    machine,
    markdown_table,
    stop,
    write_section,
)

sys.path.insert(0, str(ROOT / "tests"))
from support.dnsserver import LoopbackDNS  # noqa: E402
from support.gobuild import build  # noqa: E402
from support.programs import build_c  # noqa: E402

PY = "/usr/bin/python3.11"
HOTLOOP = str(ROOT / "tests" / "programs" / "python" / "hotloop.py")
USDT_RETURN = ("usdt:/usr/bin/python3.11:python:function__return "
               "{ @[str(arg1)] = count(); }")
HOST = "files.test"


def _loop_seconds(text: str) -> float | None:
    m = re.search(r"calls (\d+) seconds ([\d.]+)", text)
    return float(m.group(2)) if m else None


def _lost(err: str) -> int:
    m = re.search(r"(\d+) events lost", err)
    return int(m.group(1)) if m else 0


def _python_configs(cmd: str) -> list[tuple[str, list[str] | None, int]]:
    """(tool, argv or None for untraced, probe hits per call of f)."""
    return [
        ("untraced", None, 0),
        ("lumos ucalls", [*LUMOS, "ucalls", "-l", "python", "-c", cmd, "--json"], 1),
        ("lumos ucalls -L", [*LUMOS, "ucalls", "-l", "python", "-c", cmd, "-L", "--json"], 2),
        ("lumos uflow", [*LUMOS, "uflow", "-l", "python", "-c", cmd], 2),
        ("lumos trace usdt:", [*LUMOS, "trace", "-c", cmd, "usdt:python:function__return",
                               "--str", "0,1"], 1),
        ("bpftrace usdt count", [BPFTRACE, "-e", USDT_RETURN, "-c", cmd], 1),
    ]


def python_run(procs: Procs, n: int, rate: int, tool: str) -> dict:
    """One run of hotloop (n calls at rate, 0 = flat out) under one tool."""
    cmd = f"{PY} {HOTLOOP} {n} {rate}"
    argv, per_call = next((a, k) for t, a, k in _python_configs(cmd) if t == tool)
    rc, out, err = procs.run(argv or [PY, HOTLOOP, str(n), str(rate)],
                             tool.replace(" ", "_"), timeout=600)
    secs = _loop_seconds(err)
    seen = None
    if tool.startswith("lumos ucalls"):
        seen = sum(int(m.group(1)) for m in re.finditer(
            r'"method":"[^"]*hotloop\.py\.f","calls":(\d+)', out))
    elif tool == "lumos uflow":
        seen = sum(1 for line in out.splitlines() if line.endswith("hotloop.py.f"))
    elif tool == "lumos trace usdt:":
        seen = out.count('hotloop.py", arg1="f",')
    elif tool.startswith("bpftrace"):
        m = re.search(r"@\[f\]: (\d+)", out)
        seen = int(m.group(1)) if m else 0
    expected = n * (2 if tool == "lumos uflow" else 1) if argv else None
    return {"tool": tool, "rate": rate, "rc": rc, "loop_s": secs,
            "calls_per_s": n / secs if secs else None, "probe_hits_per_call": per_call,
            "seen": seen, "expected": expected, "lost": _lost(err),
            "complete": argv is None or (seen == expected and not _lost(err))}


def python_calls(procs: Procs, n: int, rates: list[int], seconds: float,
                 log: Log) -> tuple[list[dict], list[dict]]:
    """(flat-out runs of every tool, paced runs: the highest rate each keeps whole)."""
    flat = []
    for tool, _, _ in _python_configs(""):
        log(f"python flat out: {tool}")
        flat.append(python_run(procs, n, 0, tool))
    paced = []
    for tool, argv, _ in _python_configs(""):
        if argv is None:
            continue
        for rate in rates:
            log(f"python at {rate:,}/s: {tool}")
            row = python_run(procs, int(rate * seconds), rate, tool)
            paced.append(row)
            if not row["complete"]:
                break
    return flat, paced


def _traced_lookups(procs: Procs, tracer: list[str] | None, name: str, client: list[str],
                    env: dict, ready: str, log: Log) -> dict:
    log(f"lookups: {name}")
    t = None
    if tracer is not None:
        t = procs.start(tracer, name.replace(" ", "_"))
        deadline = time.monotonic() + 60
        while ready not in t.read_err() + t.read_out():
            if time.monotonic() > deadline or t.popen.poll() is not None:
                raise RuntimeError(f"{name} did not start: {t.read_err()}")
            time.sleep(0.05)
    rc, out, _ = procs.run(client, "client", timeout=600, env=env)
    m = re.search(r"lookups (\S+) (\d+) ([\d.]+)", out)
    n, total_ms = int(m.group(2)), float(m.group(3))
    seen = lost = None
    if t is not None:
        time.sleep(0.5)
        stop(t, 10)
        text, err = t.read_out(), t.read_err()
        procs.forget(t)
        seen = sum(1 for line in text.splitlines() if HOST in line)
        lost = _lost(err)
    return {"tool": name, "lookups": n, "lookups_per_s": n / (total_ms / 1000),
            "seen": seen, "lost": lost}


def lookups(procs: Procs, n: int, tmp: Path, log: Log) -> list[dict]:
    c = build_c("lookups")
    go = str(build("resolver", "1.27.3", "default"))
    rows = []
    with LoopbackDNS(0.0, tmp, {HOST: "127.0.0.9"}) as dns:
        for label, client, env, lumos_extra in (
                ("C getaddrinfo", [c, "-r", str(n), HOST], {}, []),
                ("Go resolver (netdns=go)", [go, "-r", str(n), HOST],
                 {"GODEBUG": "netdns=go"}, [go])):
            wrapped = dns.wrap(client)
            for name, tracer, ready in (
                    ("untraced", None, ""),
                    ("lumos gethostlatency", [*LUMOS, "gethostlatency", *lumos_extra],
                     "Tracing"),
                    ("bpftrace gethostlatency.bt", [BPFTRACE, "/usr/sbin/gethostlatency.bt"],
                     "Tracing getaddr")):
                row = _traced_lookups(procs, tracer, name, wrapped, env, ready, log)
                row["workload"] = label
                rows.append(row)
    return rows


def _f(v, digits=0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _sustained(paced: list[dict]) -> str:
    rows = []
    for tool in dict.fromkeys(r["tool"] for r in paced):
        runs = [r for r in paced if r["tool"] == tool]
        # a paced run faster than the workload can go runs flat out: its own rate counts
        whole = [min(r["rate"], r["calls_per_s"] or 0) for r in runs if r["complete"]]
        broke = next((r for r in runs if not r["complete"]), None)
        rows.append([tool, _f(max(whole)) if whole else "none",
                     "-" if broke is None else
                     f"{broke['rate']:,}/s: {broke['seen']:,} of {broke['expected']:,}, "
                     f"{broke['lost']:,} lost"])
    return markdown_table(["tool", "f() calls/s reached with every record", "first rate "
                           "that lost records"], rows, "lrl")


def report(py_rows, paced, dns_rows, facts, n_calls) -> str:
    base = next(r for r in py_rows if r["tool"] == "untraced")["loop_s"]
    t1 = markdown_table(
        ["tool", "f() calls/s", "probe hits/s", "loop time vs untraced", "seen / expected",
         "lost"],
        [[r["tool"], _f(r["calls_per_s"]),
          _f(r["calls_per_s"] * r["probe_hits_per_call"]) if r["calls_per_s"] and
          r["probe_hits_per_call"] else "-",
          f"{r['loop_s'] / base:.1f}x" if r["loop_s"] and base else "-",
          f"{r['seen']:,} / {r['expected']:,}" if r["expected"] else "-", _f(r["lost"])]
         for r in py_rows], "lrrrrr")
    t2 = markdown_table(
        ["workload", "tool", "lookups/s", "time per lookup vs untraced", "seen / made",
         "lost"],
        [[r["workload"], r["tool"], _f(r["lookups_per_s"]),
          f"{next(x for x in dns_rows if x['workload'] == r['workload'] and x['tool'] == 'untraced')['lookups_per_s'] / r['lookups_per_s']:.2f}x",  # noqa: E501
          f"{r['seen']:,} / {r['lookups']:,}" if r["seen"] is not None else "-",
          _f(r["lost"])] for r in dns_rows], "llrrrr")
    return (f"One run: {facts['date']}, kernel {facts['kernel']}, {facts['cpus']} CPUs "
            f"(shared), {facts['bpftrace']}, lumos {facts['lumos_commit']}.\n\n"
            f"Python calls: f() {n_calls:,} times flat out on Debian's python3.11 "
            f"(tests/programs/python/hotloop.py, -c):\n\n{t1}\n\n"
            "bpftrace has no equivalent of uflow's or ucalls's uprobe mode (probes at the "
            "eval loop's labels need file offsets from DWARF; bpftrace 0.17 here cannot "
            "place uprobe offsets), so its row counts USDT returns.\n\n"
            "The same workload paced (3 s at each rate of f() calls per second: "
            f"{', '.join(f'{x:,}' for x in sorted({r['rate'] for r in paced}))}), each tool "
            "at rising rates until it loses records:\n\n" + _sustained(paced) + "\n\n"
            f"Lookups of an /etc/hosts name, back to back, the tracer system-wide:\n\n{t2}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--lookups", type=int, default=5_000)
    ap.add_argument("--rates", default="10000,30000,100000,300000,1000000",
                    help="paced f() calls per second, tried in order")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    a = ap.parse_args()
    if a.quick:
        a.calls, a.lookups = 20_000, 500
    log = Log()
    facts = machine()
    with tempfile.TemporaryDirectory() as tmp, Procs(Path(tmp) / "procs") as procs:
        rates = [int(x) for x in a.rates.split(",")]
        py_rows, paced = python_calls(procs, a.calls, rates, 1.0 if a.quick else 3.0, log)
        dns_rows = lookups(procs, a.lookups, Path(tmp), log)
    text = report(py_rows, paced, dns_rows, facts, a.calls)
    print(text)
    dump_json("toolbox", {"machine": facts, "python": py_rows, "paced": paced,
                          "lookups": dns_rows})
    if not a.no_write and not a.quick:
        write_section("toolbox: ucalls, uflow, trace usdt:, gethostlatency (bench/toolbox.py)",
                      text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
