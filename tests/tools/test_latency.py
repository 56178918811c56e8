"""lumos latency against tests/programs/go/stress, which times its own calls.

- work(ms) sleeps ms: per --by value, the call count is exact and every call lands in
  the log2 bucket of its duration as the program measured it around the call (lumos
  sees a little less: the call overhead; generous slack, sleeps only).
- grow(ms) recurses ~1 MiB deep before sleeping: its goroutine's stack is copied
  while the call is in progress. Measured right, and the program survives (a
  uretprobe here kills Go programs; lumos probes RET instructions).
- 10,000 goroutines inside one function at once, and panics unwinding through a
  timed function on thousands of goroutines: counts exact, and the map of calls in
  progress ends empty, or bounded by --max-inflight when panics leave stale starts.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack

import pytest
from conftest import run_lumos
from support.gobuild import build

from lumos.output.hist import slot_range
from lumos.probes.latency import LatencyFunction, LatencyProbe
from lumos.targets.launch import Launched
from lumos.targets.plan import plan
from lumos.targets.target import Target

SLACK_US = 3000  # how much less than the program's own timing lumos may measure


def stress(version: str = "1.23.9", variant: str = "default") -> str:
    return str(build("stress", version, variant))


def latency(*args: str) -> tuple[list[dict], list[dict], str]:
    r = run_lumos("latency", "--json", *args, timeout=120)
    assert r.returncode == 0, r.stderr
    hists = [json.loads(x) for x in r.stdout.splitlines()]
    truth = [json.loads(x[6:]) for x in r.stderr.splitlines() if x.startswith("TRUTH ")]
    return hists, truth, r.stderr


def bucket_of(us: int) -> int:
    return max(us, 1).bit_length() - 1  # log2 slot: [2^k, 2^(k+1) - 1]


def check_buckets(hist: dict, samples_ns: list[int], floor_us: int) -> None:
    """Each call is in the bucket of a duration between max(floor, program's - slack)
    and the program's own measurement; counts exact."""
    assert hist["count"] == len(samples_ns)
    options = []
    for ns in samples_ns:
        hi = ns // 1000
        lo = max(floor_us, hi - SLACK_US)
        options.append(range(bucket_of(lo), bucket_of(hi) + 1))
    counts = {i: b["count"] for i, b in enumerate(hist["buckets"])}
    for i, b in enumerate(hist["buckets"]):
        assert (b["low"], b["high"]) == slot_range(i)
    for k in set(counts) | {k for o in options for k in o}:
        must = sum(1 for o in options if list(o) == [k])
        may = sum(1 for o in options if k in o)
        assert must <= counts.get(k, 0) <= may, \
            f"bucket {slot_range(k)}: {counts.get(k, 0)} calls; program's timings (ns): " \
            f"{samples_ns}"
    assert floor_us * len(samples_ns) <= hist["sum"] <= sum(samples_ns) // 1000


@pytest.mark.parametrize("version, variant", [("1.19", "default"), ("1.27.3", "pie")])
def test_buckets_per_by_value(version, variant):
    sleeps = [3, 10, 3, 40, 10, 3, 20, 3, 10, 1]
    hists, truth, _ = latency("--by", "ms", "-c",
                              f"{stress(version, variant)} sleep {' '.join(map(str, sleeps))}",
                              "main.work")
    assert truth[-1] == {"done": True}
    by = {h["by"]["ms"]: h for h in hists}
    assert sorted(by) == sorted(set(sleeps))
    for ms, h in by.items():
        assert (h["func"], h["unit"]) == ("main.work", "usecs")
        check_buckets(h, [t["ns"] for t in truth[:-1] if t["ms"] == ms], 1000 * ms)


def test_stack_growth_during_the_call():
    """grow(ms) runs on a fresh goroutine and recurses ~1 MiB deep first: the stack is
    copied (grow's own frame moved) several times before grow returns."""
    sleeps = [3, 10, 3, 10, 3]
    hists, truth, _ = latency("--by", "ms", "-c",
                              f"{stress()} grow {' '.join(map(str, sleeps))}", "main.grow",
                              "main.deep")
    assert truth[-1] == {"done": True}, "the traced program did not survive"
    grow = {h["by"]["ms"]: h for h in hists if h["func"] == "main.grow"}
    assert sorted(grow) == [3, 10]
    for ms, h in grow.items():
        check_buckets(h, [t["ns"] for t in truth[:-1] if t["ms"] == ms], 1000 * ms)
    deep = [h for h in hists if h["func"] == "main.deep"]
    assert len(deep) == 1 and deep[0]["count"] == 4001 * len(sleeps)


def test_text_histogram():
    r = run_lumos("latency", "-m", "-c", f"{stress()} sleep 20 20", "main.work")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "main.work"
    assert "msecs" in lines[2]
    row = next(ln for ln in lines if ln.strip().startswith("16 -> 31"))
    assert row.split(":")[1].split()[0] == "2"
    assert lines[-1].startswith("avg = 2") and lines[-1].endswith("msecs, count: 2")


def probe_run(exe: str, argv: list[str], patterns: list[str], max_inflight: int,
              tmp_path) -> tuple[dict, int, list[dict]]:
    """lumos latency's pipeline, in this process, to look at the in-kernel map of calls
    in progress after the run: ({func: count}, entries left in the map, truth)."""
    err = tmp_path / "stderr"
    saved = os.dup(2)
    with open(err, "w") as f:  # the child's stderr: the program's truth
        os.dup2(f.fileno(), 2)
        try:
            launched = Launched([exe, *argv])
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    with ExitStack() as stack:
        stack.callback(launched.close)
        target = Target(launched.exe, launched.pid, launched, patterns)
        planned = plan(target, patterns, strlen=16)
        functions = [LatencyFunction(f.name, f.goroutine, None, f.entry_sp_delta)
                     for f in planned]
        probe = LatencyProbe(functions, [f.entry for f in planned],
                             [s for f in planned for s in f.exits], 1000, launched.pid,
                             max_inflight).attach(stack)
        launched.start()
        assert launched.wait() == 0
        counts = {functions[fi].name: h.count for (fi, _), h in probe.read().items()}
        inflight = probe.inflight
    truth = [json.loads(x[6:]) for x in err.read_text().splitlines() if x.startswith("TRUTH ")]
    return counts, inflight, truth


def test_ten_thousand_goroutines_leave_no_call_in_progress(tmp_path):
    n = 10000
    counts, inflight, truth = probe_run(stress(), ["goroutines", str(n)], ["main.gwork"],
                                        65536, tmp_path)
    assert truth[-1] == {"calls": n, "sum": n * (n - 1)}
    assert counts == {"main.gwork": n}
    assert inflight == 0


def test_panics_through_the_function_are_bounded(tmp_path):
    """thrower panics on every other call (catcher recovers): those calls never reach a
    RET and leave their start in the map, one per goroutine. The map is an LRU of
    LRU_HEADROOM x --max-inflight entries (room for at least --max-inflight calls in
    progress); the calls that did return are all counted."""
    from lumos.probes.latency import LRU_HEADROOM
    n = 2000
    counts, inflight, truth = probe_run(stress(), ["gopanics", str(n)],
                                        ["main.thrower", "main.catcher"], 256, tmp_path)
    assert truth == [{"catcher": n, "thrower_returned": n // 2}]
    assert counts == {"main.catcher": n, "main.thrower": n // 2}
    assert 0 < inflight <= LRU_HEADROOM * 256


def test_max_inflight_from_the_command_line():
    n = 1000
    hists, truth, _ = latency("--max-inflight", "64", "-c", f"{stress()} gopanics {n}",
                              "main.thrower", "main.catcher")
    assert truth == [{"catcher": n, "thrower_returned": n // 2}]
    assert {h["func"]: h["count"] for h in hists} == {"main.catcher": n,
                                                     "main.thrower": n // 2}


def test_binary_target_two_processes_at_once(tmp_path):
    """A binary path traces every process running it. Two run the same sleeps at the
    same time, on goroutines with the same ids at the same depths: their calls must not
    be paired with each other."""
    import shutil
    import signal
    import subprocess
    import time

    from conftest import LUMOS
    # A private copy: a binary target traces every process running the file (its inode),
    # and other tests run the shared build.
    exe = str(tmp_path / "stress")
    shutil.copy(stress(), exe)
    sleeps = ["20"] * 6
    with subprocess.Popen([*LUMOS, "latency", "--json", "--by", "ms", exe, "main.work"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as lum:
        line = lum.stderr.readline()
        while line and not line.startswith("Tracing"):
            line = lum.stderr.readline()
        progs = [subprocess.Popen([exe, "sleep", *sleeps], stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        truths = []
        for p in progs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0
            truths.append([json.loads(x[6:]) for x in err.splitlines()])
        time.sleep(0.3)
        lum.send_signal(signal.SIGINT)
        out, _ = lum.communicate(timeout=30)
    hists = [json.loads(x) for x in out.splitlines()]
    assert len(hists) == 1 and hists[0]["by"] == {"ms": 20}
    check_buckets(hists[0], [t["ns"] for tr in truths for t in tr[:-1]], 20000)
