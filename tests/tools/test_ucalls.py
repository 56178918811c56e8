"""lumos ucalls -l python: calls per method equal the counts a program keeps of itself
(tests/programs/python/callcounts.py: two threads, recursion, methods, exceptions), on
Debian's python3.11 and pyenv's builds without USDT (3.10 to 3.13), counted in the
kernel; -L times contain the program's own timing of its sleeps; --mode usdt (BCC's
probes) counts the same calls at their returns."""

from __future__ import annotations

import json

import pytest
from conftest import run_lumos
from support.programs import PROGRAMS
from test_uflow import PYTHONS, _python

CALLCOUNTS = str(PROGRAMS / "python" / "callcounts.py")


def _ucalls(py: str, tmp_path, *extra) -> tuple[dict, dict, str]:
    """(lumos's rows for callcounts.py's methods by qualified name, the truth, stderr)."""
    log = tmp_path / "counts.json"
    r = run_lumos("ucalls", "-l", "python", "-c", f"{py} {CALLCOUNTS} {log}", "--json",
                  *extra, timeout=180)
    assert r.returncode == 0, r.stderr
    rows = {}
    prefix = CALLCOUNTS + "."
    for line in r.stdout.splitlines():
        o = json.loads(line)
        if o.get("method", "").startswith(prefix):
            rows[o["method"][len(prefix):]] = o
    return rows, json.loads(log.read_text()), r.stderr


def _short(name: str, py: str) -> str:
    """3.10 code objects have no co_qualname: the plain name."""
    return name.rsplit(".", 1)[-1] if "3.10" in py else name


@pytest.mark.parametrize("py", PYTHONS)
def test_counts_equal_the_programs_own(py, tmp_path):
    rows, truth, err = _ucalls(_python(py), tmp_path, "-L")
    assert "counted in the kernel" in err
    assert len(truth) == 7
    for name, (calls, _ns) in truth.items():
        got = rows[_short(name, py)]
        assert got["calls"] == calls, (name, got, calls)
        assert got["timed"] == calls, (name, got)     # every entry was seen (-c)
    # lumos's interval (frame entry to exit) contains the program's own perf_counter_ns
    # interval around the sleep (the same monotonic clock)
    nap = rows["nap"]
    assert truth["nap"][1] <= nap["total_ns"] < 2 * truth["nap"][1]


def test_text_output_is_bccs_sorted_and_top(tmp_path):
    py = _python(PYTHONS[0])
    log = tmp_path / "counts.json"
    r = run_lumos("ucalls", "-l", "python", "-c", f"{py} {CALLCOUNTS} {log}", "-T", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "" and lines[1] == f"{'METHOD':<50} {'# CALLS':>8}"
    body = [x.rsplit(None, 1) for x in lines[2:]]
    assert len(body) == 3 and [int(n) for _, n in body] == sorted(int(n) for _, n in body)
    assert body[-1] == [CALLCOUNTS + ".count", "4042"]     # the most called, last (BCC)
    r = run_lumos("ucalls", "-l", "python", "-c", f"{py} {CALLCOUNTS} {log}", "-L", "-m",
                  "-T", "2")
    head = r.stdout.splitlines()[1]
    assert head.split() == ["METHOD", "#", "CALLS", "TIME", "(ms)", "AVG", "(ms)"]


def test_usdt_mode_counts_returns(tmp_path):
    """BCC's probes on Debian 3.11: every return fires function__return (names are
    co_name there), so the counts are complete."""
    py = _python(PYTHONS[0])
    rows, truth, err = _ucalls(py, tmp_path, "--mode", "usdt")
    assert "mode: USDT" in err
    for name, (calls, _ns) in truth.items():
        assert rows[name.rsplit(".", 1)[-1]]["calls"] == calls, name


def test_bad_input_one_line_exit_2(tmp_path):
    r = run_lumos("ucalls", "-l", "python", "-c", "/bin/sleep 1")
    assert r.returncode == 2 and "not a CPython interpreter" in r.stderr
    assert "function__entry USDT probes" in r.stderr       # and says how to get a Python
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_lumos("ucalls", "-l", "python", "-T", "0", "-c", "/bin/sleep 1")
    assert r.returncode == 2 and r.stderr.strip() == "lumos ucalls: --top must be at least 1, not 0"
