"""lumos flow against tests/programs/go/stress: entries and returns per goroutine, depths
and durations, with recursion (deeper than flow keeps frames for), panics and 10,000
goroutines at once.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
from conftest import run_lumos
from support.gobuild import build


def stress(version: str = "1.23.9", variant: str = "default") -> str:
    return str(build("stress", version, variant))


def flow(*args: str) -> tuple[list[dict], list[dict]]:
    r = run_lumos("flow", "--json", *args, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[-1] == {"lost": 0}
    truth = [json.loads(x[6:]) for x in r.stderr.splitlines() if x.startswith("TRUTH ")]
    return lines[:-1], truth


@pytest.mark.parametrize("version, variant", [("1.19", "default"), ("1.27.3", "pie")])
def test_recursion_depths(version, variant):
    """rec(n) recurses to rec(0) on a fresh goroutine (its stack moving as it grows):
    rec(n)'s entry and return are at depth D - n, in order, for every goroutine."""
    d, repeat = 1000, 3
    events, truth = flow("--args", "-c", f"{stress(version, variant)} recurse {d} {repeat}",
                         "main.rec")
    assert truth == [{"f": "main.rec", "depth": d, "repeat": repeat,
                      "calls": (d + 1) * repeat}]
    by_g = defaultdict(list)
    for e in events:
        by_g[e["goid"]].append(e)
    assert len(by_g) == repeat
    for evs in by_g.values():
        entries = [e for e in evs if e["event"] == "entry"]
        returns = [e for e in evs if e["event"] == "return"]
        assert [e["args"]["n"] for e in entries] == list(range(d, -1, -1))
        assert [e["depth"] for e in entries] == list(range(d + 1))
        assert [e["depth"] for e in returns] == list(range(d, -1, -1))
        # durations for the frames flow keeps (the innermost 256), nested properly
        timed = [e["duration_ns"] for e in returns if "duration_ns" in e]
        assert len(timed) >= 256 and timed == sorted(timed)


def test_panics_do_not_shift_depths():
    """thrower panics on even n (catcher recovers): its RET never runs. The next calls
    must still be at their true depth."""
    n = 200
    events, truth = flow("-c", f"{stress()} panics {n}", "main.thrower", "main.catcher",
                         "main.guarded")
    assert len(truth) == n
    seen = Counter((e["func"], e["event"], e["depth"]) for e in events)
    returned = sum(t["thrower_returned"] for t in truth)
    assert seen == {("main.guarded", "entry", 0): n, ("main.guarded", "return", 0): n,
                    ("main.catcher", "entry", 0): n, ("main.catcher", "return", 0): n,
                    ("main.thrower", "entry", 1): n, ("main.thrower", "return", 1): returned}
    # traced alone, thrower is always at depth 0 on the main goroutine
    events, _ = flow("-c", f"{stress()} panics {n}", "main.thrower")
    assert {(e["event"], e["depth"]) for e in events} == {("entry", 0), ("return", 0)}
    assert all("duration_ns" in e for e in events if e["event"] == "return")


def test_ten_thousand_goroutines():
    n = 10000
    events, truth = flow("--args", "-c", f"{stress()} goroutines {n}", "main.gwork")
    assert truth[-1] == {"calls": n, "sum": n * (n - 1)}
    per_g = defaultdict(list)
    for e in events:
        per_g[e["goid"]].append(e)
    assert len(per_g) == n
    assert sorted(evs[0]["args"]["i"] for evs in per_g.values()) == list(range(n))
    for evs in per_g.values():
        assert [(e["event"], e["depth"]) for e in evs] == [("entry", 0), ("return", 0)]
        assert evs[1]["duration_ns"] > 0


def test_text_output():
    r = run_lumos("flow", "--args", "-c", f"{stress()} panics 2", "main.catcher",
                  "main.thrower")
    assert r.returncode == 0, r.stderr
    rows = [ln[40:] for ln in r.stdout.splitlines()[1:]]  # after TIME PID TID GOID
    assert rows[0] == "-> main.catcher(n=0)"
    assert rows[1] == "  -> main.thrower(n=0)"
    assert rows[2].startswith("<- main.catcher (") and rows[2].endswith(" us)")
    assert rows[3:5] == ["-> main.catcher(n=1)", "  -> main.thrower(n=1)"]
    assert rows[5].startswith("  <- main.thrower (")
    assert rows[6].startswith("<- main.catcher (")
