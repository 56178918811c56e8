"""lumos trace under stress, against tests/programs/go/stress, which says what it did.

- lost events: a flood of 4 KiB records into a 1 MiB ring; printed + lost = calls made,
  and the loss is printed (JSON and stderr).
- --filter runs in the kernel: with the same flood, only the matching calls reach the
  ring buffer, none lost; integer and string comparisons.
- --stack equals the program's own runtime.Callers, frame for frame (name+offset of
  each physical frame: JSON stack entries' "at"),
  in default, PIE and stripped builds.
- recursion (deep, the stack moving), panics recovered inside the traced function or
  passing through it, 10,000 goroutines in one function at once: every entry and
  return accounted for, values right.
- a function whose frame is bigger than the stack guard, entered on a fresh
  goroutine (the stack grows at its entry): one event per call.
- -c, -p and binary-path targets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter, defaultdict

import pytest
from conftest import LUMOS, run_lumos
from support.gobuild import build


def stress(version: str = "1.21.13", variant: str = "default") -> str:
    return str(build("stress", version, variant))


def trace(*args: str, timeout: float = 120) -> tuple[list[dict], int, list[dict], str]:
    """(events, lost, truth lines, stderr) of `lumos trace --json ...`."""
    r = run_lumos("trace", "--json", *args, timeout=timeout)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert "lost" in lines[-1], lines[-1:]
    truth = [json.loads(x[6:]) for x in r.stderr.splitlines() if x.startswith("TRUTH ")]
    return lines[:-1], lines[-1]["lost"], truth, r.stderr


def test_lost_events_are_counted_and_printed():
    n = 20000
    events, lost, truth, err = trace("--strlen", "4096", "--ring-mb", "1", "-c",
                                     f"{stress()} flood {n}", "main.flood")
    assert truth == [{"calls": n}]
    assert lost > 0, "a 1 MiB ring cannot hold 20,000 records of 4 KiB: expected losses"
    assert len(events) + lost == n
    assert f"lumos: {lost} events lost" in err
    # what did arrive is right, in order
    idx = [e["args"]["i"] for e in events]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    for e in events:
        i, s = e["args"]["i"], e["args"]["s"]
        assert s["len"] == (6 if i % 1000 == 0 else 4000)
        assert s["str"] == ("needle" if i % 1000 == 0 else "x" * 4000)


@pytest.mark.parametrize("expr, want", [
    ("i < 50 || i >= 19950", lambda i: i < 50 or i >= 19950),
    ('s == "needle"', lambda i: i % 1000 == 0),
    ('s != "needle" && i <= 3', lambda i: 0 < i <= 3),
    ('!(i > 7) && !(s == "needle")', lambda i: 0 < i <= 7),
    ("i == 19999", lambda i: i == 19999),
])
def test_filter_in_the_kernel(expr, want):
    """The same flood as above, filtered: calls the filter rejects never take ring space,
    so nothing is lost and exactly the matching calls are printed."""
    n = 20000
    events, lost, truth, _ = trace("--strlen", "4096", "--ring-mb", "1", "--filter", expr,
                                   "-c", f"{stress()} flood {n}", "main.flood")
    assert truth == [{"calls": n}]
    assert lost == 0
    assert [e["args"]["i"] for e in events] == [i for i in range(n) if want(i)]


def test_filter_with_returns_pairs_calls_in_the_kernel():
    """--filter --ret: a return is printed only for a call the filter accepted. thrower
    panics on even n (no RET): the return of the next, rejected, call at the same frame
    must not be taken for it."""
    events, lost, truth, _ = trace("--ret", "--filter", "n == 0 || n == 3 || n == 4",
                                   "-c", f"{stress('1.19')} panics 12", "main.thrower")
    assert len(truth) == 12 and lost == 0
    assert [(e["event"], e.get("args"), e.get("results")) for e in events] == [
        ("call", {"n": 0}, None), ("call", {"n": 3}, None), ("return", None, {"~r0": 30}),
        ("call", {"n": 4}, None)]


def frame_text(f: dict) -> str:
    return f"{f['func']}+{f['off']:#x}"


def norm(frame: str) -> str:
    """ELF symbol names mark assembly functions '.abi0'; Go's runtime does not."""
    name, _, off = frame.rpartition("+")
    return f"{name.removesuffix('.abi0')}+{off}"


@pytest.mark.parametrize("version, variant", [("1.19", "default"), ("1.23.9", "pie"),
                                              ("1.27.3", "stripped")])
def test_stack_equals_runtime_callers(version, variant):
    events, lost, truth, _ = trace("--stack", "-c", f"{stress(version, variant)} stack",
                                   "main.stackC", "main.stackLeaf")
    calls = [t for t in truth if t["f"] == "main.stackC"]
    assert len(calls) == 2 and lost == 0
    by_n = defaultdict(dict)
    for e in events:
        n = e["args"].get("n", e["args"].get("arg0"))
        by_n[n if isinstance(n, int) else n[0]][e["func"]] = [
            norm(f["at"]) for f in e["stack"] if not f["inlined"]]
    for t in calls:
        want = [frame_text(f) for f in t["stack"]]
        got = by_n[t["n"]]["main.stackC"]
        assert got[0].startswith("main.stackC+")
        assert got[1:] == want[1:], f"go{version}-{variant}: stackC({t['n']})"
        leaf = by_n[t["n"]]["main.stackLeaf"]  # a leaf: no frame of its own
        assert leaf[0] == "main.stackLeaf+0x0"
        assert leaf[1].startswith("main.stackC+") and leaf[2:] == want[1:]


def test_text_stack_is_indented_under_the_call():
    r = run_lumos("trace", "--stack", "-c", f"{stress()} stack", "main.stackLeaf")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    i = next(k for k, ln in enumerate(lines) if "main.stackLeaf(n=1)" in ln)
    assert [ln.strip().split("+")[0] for ln in lines[i + 1:i + 7]] == [
        "main.stackLeaf", "main.stackC", "main.stackB", "main.stackA", "main.main",
        "runtime.main"]


def test_recursion_every_call_and_return():
    depth, repeat = 3000, 3
    events, lost, truth, _ = trace("--ret", "-c", f"{stress()} recurse {depth} {repeat}",
                                   "main.rec")
    assert truth[-1]["calls"] == (depth + 1) * repeat and lost == 0
    by_g = defaultdict(list)
    for e in events:
        by_g[e["goid"]].append(e)
    assert len(by_g) == repeat
    for evs in by_g.values():
        calls = [e["args"]["n"] for e in evs if e["event"] == "call"]
        rets = [e["results"]["~r0"] for e in evs if e["event"] == "return"]
        assert calls == list(range(depth, -1, -1))
        assert rets == list(range(depth + 1))  # rec(n) returns n, innermost first


@pytest.mark.parametrize("version", ["1.19", "1.21.13", "1.23.9", "1.27.3"])
def test_panics_inside_and_through_the_traced_function(version):
    n = 300
    events, lost, truth, _ = trace("--ret", "-c", f"{stress(version)} panics {n}",
                                   "main.guarded",
                                   "main.thrower", "main.catcher")
    assert len(truth) == n and lost == 0
    seq = defaultdict(list)
    for e in events:
        seq[(e["func"], e["event"])].append(e)
    for f in ("main.guarded", "main.catcher", "main.thrower"):
        assert [e["args"]["n"] for e in seq[(f, "call")]] == list(range(n)), f
    # guarded recovers inside itself: it returns every time, with its named result
    assert [e["results"]["r"] for e in seq[("main.guarded", "return")]] == \
        [t["guarded"] for t in truth]
    assert [e["results"]["r"] for e in seq[("main.catcher", "return")]] == \
        [t["catcher"] for t in truth]
    # thrower's RET runs only when it does not panic
    assert [e["results"]["~r0"] for e in seq[("main.thrower", "return")]] == \
        [10 * t["n"] for t in truth if t["thrower_returned"]]


def test_ten_thousand_goroutines_at_once():
    n = 10000
    events, lost, truth, _ = trace("--ret", "-c", f"{stress()} goroutines {n}", "main.gwork")
    assert truth == [{"inside": n}, {"calls": n, "sum": n * (n - 1)}]
    assert lost == 0
    calls = {e["goid"]: e for e in events if e["event"] == "call"}
    rets = {e["goid"]: e for e in events if e["event"] == "return"}
    assert len(calls) == len(rets) == n, "one call and one return per goroutine"
    assert sorted(e["args"]["i"] for e in calls.values()) == list(range(n))
    for g, c in calls.items():
        assert rets[g]["results"]["~r0"] == 2 * c["args"]["i"]
        assert rets[g]["time"] >= c["time"]


def test_stack_growth_at_entry_fires_once():
    """bigframe's frame (8 KiB) is bigger than a new goroutine's stack: every call
    starts with the prologue branching to morestack, which grows the stack and restarts
    the function. The entry probe must count the call once, not twice."""
    n = 50
    events, lost, truth, _ = trace("-c", f"{stress()} bigframe {n}", "main.bigframe")
    assert truth == [{"calls": n}] and lost == 0
    assert sorted(e["args"]["n"] for e in events) == list(range(n))


def wait_banner(proc) -> None:
    line = proc.stderr.readline()
    while line and not line.startswith("Tracing"):
        line = proc.stderr.readline()
    assert line.startswith("Tracing"), "no banner"


def test_binary_target_traces_every_process(tmp_path):
    """A binary path: every process running it, each event with its own PID."""
    exe = private_copy(stress("1.23.9", "pie"), tmp_path)
    out = tmp_path / "out.jsonl"
    with open(out, "w") as outf, subprocess.Popen(
            [*LUMOS, "trace", "--json", exe, "main.flood", "--strlen", "8"], stdout=outf,
            stderr=subprocess.PIPE, text=True) as lum:
        wait_banner(lum)
        for n in (100, 250):
            p = subprocess.run([exe, "flood", str(n)], capture_output=True, text=True)
            assert p.returncode == 0 and p.stderr == f'TRUTH {{"calls":{n}}}\n'
        time.sleep(0.5)  # let lumos read the last events
        lum.send_signal(signal.SIGINT)
        lum.wait(timeout=30)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[-1] == {"lost": 0}
    per_pid = Counter(e["pid"] for e in lines[:-1])
    assert sorted(per_pid.values()) == [100, 250]
    for e in lines[:-1]:
        assert e["args"]["s"]["len"] in (6, 4000)
        assert e["args"]["s"].get("truncated", False) == (e["args"]["s"]["len"] > 8)


def test_binary_target_stack_of_a_pie(tmp_path):
    """A binary-path target has no PID up front: each event's frames are placed with its
    own process's mappings (a PIE loads anywhere)."""
    exe = private_copy(str(build("leaky", "1.23.9", "pie")), tmp_path)
    out = tmp_path / "out.jsonl"
    with open(out, "w") as outf, subprocess.Popen(
            [*LUMOS, "trace", "--json", "--stack", exe, "main.finisher"], stdout=outf,
            stderr=subprocess.PIPE, text=True) as lum:
        wait_banner(lum)
        with subprocess.Popen([exe, "wait"], stdin=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) as prog:
            prog.stdin.write(b"go\n")
            prog.stdin.flush()
            time.sleep(1)  # alive while lumos reads the events
            prog.stdin.close()
        lum.send_signal(signal.SIGINT)
        lum.wait(timeout=30)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[-1] == {"lost": 0} and len(lines) == 6
    for e in lines[:-1]:
        assert [norm(f["at"]).split("+")[0] for f in e["stack"]] == ["main.finisher",
                                                               "runtime.goexit"]


def private_copy(exe: str, tmp_path) -> str:
    """A binary target traces every process running that file (its inode): a copy keeps
    other tests' processes out."""
    import shutil
    dst = str(tmp_path / os.path.basename(exe))
    shutil.copy(exe, dst)
    return dst
