"""lumos trace prints slices by their first elements and errors by dynamic type and
message, exactly as the traced program itself prints them: every toolchain (Go 1.19,
1.21, 1.23, 1.27) and build (default, stripped, PIE).

tests/programs/go/slices passes []string, []int, []int32, []uint16, []int8, []uint64,
[]bool, []float64, []float32 and []byte (nil, empty, longer than --max-elems, strings
longer than --strlen, one on the stack, one returned) and returns errors of several
dynamic types. After each call it writes Go's own %#v of each value, and the same with
lumos's limits applied ("TRUTH {json}" lines on stderr); lumos's line must equal it.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_lumos
from support.gobuild import VARIANTS, VERSIONS, build

from lumos.targets.plan import plan
from lumos.targets.target import Target

STRLEN = 16
# parameter order of each function, and the signature a stripped build is traced with
FUNCS = {
    "main.Names": (["names"], "main.Names(names []string) int"),
    "main.Named": (["l"], "main.Named(l []string) int"),
    "main.Numbers": (["a", "b", "c", "d", "e"],
                     "main.Numbers(a []int, b []int32, c []uint16, d []int8, e []uint64) int"),
    "main.Flags": (["b"], "main.Flags(b []bool) int"),
    "main.Reals": (["f", "g"], "main.Reals(f []float64, g []float32) int"),
    "main.Raw": (["b"], "main.Raw(b []byte) int"),
    "main.Spill": (["a", "b", "c", "d", "s", "t"],
                   "main.Spill(a, b, c, d int, s []string, t []int) int"),
    "main.Split": ([], "main.Split(s string) []string"),
    "main.Fail": ([], "main.Fail(n int) error"),
    "main.Ptrs": (["p"], "main.Ptrs(p []*main.T) int"),
    "main.Real": (["x", "y", "n"], "main.Real(x float64, y float32, n int) float64"),
    "main.Cold": (["e", "a"], "main.Cold(e error, a any) int"),
}
# Floats (main.Real) are read where they are spilled to the stack; where lumos's plan says
# one stays in an X register, it must print ?, never a number.
_unreadable: dict[str, set[str]] = {}


def unreadable_args(exe: str, stripped: bool) -> dict[str, set[str]]:
    pats = [sig for _, sig in FUNCS.values()] if stripped else list(FUNCS)
    return {f.name: {c.name for c in f.args if not all(w.readable for w in c.words)}
            for f in plan(Target(exe), pats, STRLEN)}


def trace(exe: str, stripped: bool, *extra: str) -> tuple[list[str], list[dict]]:
    pats = [sig for _, sig in FUNCS.values()] if stripped else list(FUNCS)
    r = run_lumos("trace", "--ret", "--strlen", str(STRLEN), *extra, "-c",
                  f"{exe} -strlen {STRLEN} -max 8", *pats, timeout=120)
    assert r.returncode == 0, r.stderr
    calls = [ln.split(None, 4)[4] for ln in r.stdout.splitlines()[1:]
             if re.match(r"\d\d:\d\d:\d\d\.\d+ ", ln)]
    truth = [json.loads(x[6:]) for x in r.stderr.splitlines() if x.startswith("TRUTH ")]
    assert truth, r.stderr[-2000:]
    return calls, truth


def expected(t: dict, stripped: bool, key: str = "text",
             unreadable: dict | None = None) -> tuple[str, str]:
    """(the call line, the return line) the program's truth says lumos must print."""
    f = t["f"]

    def shown(n: str, v: dict) -> str:  # stripped: main.Labels is its signature's type
        if n in (unreadable or {}).get(f, ()):
            return "?"
        return v[key].replace("main.Labels{", "[]string{") if stripped else v[key]
    args = ", ".join(f"{n}={shown(n, t['args'][n])}" for n in FUNCS[f][0] if n in t["args"])
    ret = shown("~r0", t["results"]["~r0"]) if t["results"] else None
    return f"{f}({args})", f"{f} => {ret}" if ret is not None else ""


_runs: dict = {}


@pytest.fixture(scope="module", params=[(v, var) for v in VERSIONS for var in VARIANTS],
                ids=lambda p: f"go{p[0]}-{p[1]}")
def run(request):
    version, variant = request.param
    if request.param not in _runs:
        exe = str(build("slices", version, variant))
        stripped = variant == "stripped"
        _runs[request.param] = (stripped, *trace(exe, stripped),
                                unreadable_args(exe, stripped))
    return _runs[request.param]


def test_every_slice_and_error_as_the_program_printed_it(run):
    stripped, calls, truth, unreadable = run
    assert unreadable["main.Real"] <= {"x", "y"}, unreadable  # only the floats, if any
    lines = iter(calls)
    for t in truth:
        call, ret = expected(t, stripped, unreadable=unreadable)
        if t["f"] == "main.Split":  # the argument is a string: its own line first
            got = next(x for x in lines if x.startswith("main.Split("))
        elif t["f"] != "main.Fail":
            got = next(lines)
            assert got == call, f"{got}\n  != {call}"
        else:
            got = next(lines)
            assert got.startswith("main.Fail(n="), got
        got = next(lines)
        if ret:  # errors: *T("message"), or *T(0xADDR) for a message lumos cannot compute
            assert got == ret, f"{got}\n  != {ret}"


def test_within_the_limits_it_is_fmts_own_sharp_v(run):
    """Where nothing is cut, the program's %#v of the whole value is what lumos prints:
    the limits are the only difference, and they are marked."""
    stripped, calls, truth, unreadable = run
    within = [t for t in truth if t["f"] not in ("main.Fail", "main.Raw", "main.Cold") and all(
        v["text"] == v["full"] for v in (*t["args"].values(), *t["results"].values()))]
    assert len(within) >= 8
    for t in within:
        call, ret = expected(t, stripped, "full", unreadable)
        assert (call if t["f"] != "main.Split" else ret) in calls, call


def test_json_elements_and_words():
    exe = str(build("slices", "1.23.9", "default"))
    r = run_lumos("trace", "--json", "--strlen", str(STRLEN), "--max-elems", "2", "-c",
                  f"{exe} -strlen {STRLEN} -max 2", "main.Names", "main.Reals")
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert events[-1] == {"lost": 0}
    names = [e["args"]["names"] for e in events[:-1] if e["func"] == "main.Names"]
    assert names[0]["len"] == 3 and names[0]["cap"] == 4 and names[0]["ptr"] > 0
    assert names[0]["elems"] == [{"len": 1, "str": "a"}, {"len": 1, "str": "b"}]
    assert names[1] == {"ptr": 0, "len": 0, "cap": 0, "elems": []}          # nil
    assert names[2]["ptr"] != 0 and names[2]["elems"] == []                 # empty
    assert names[3]["len"] == 12 and len(names[3]["elems"]) == 2
    assert names[4]["elems"][1] == {"len": 41, "str": "héllo wörld, t", "truncated": True}
    reals = next(e["args"] for e in events[:-1] if e["func"] == "main.Reals")
    assert reals["f"]["elems"] == [1.0, 2.5] and reals["g"]["elems"] == [0.1, 3.4028235e+38]


def test_max_elems_option():
    exe = str(build("slices", "1.19", "default"))
    calls, truth = trace(exe, False, "--max-elems", "0")
    # 0: no elements read, shown by len and cap (nil still nil)
    assert "main.Names(names=[]string(len=3, cap=4))" in calls
    assert "main.Names(names=[]string(nil))" in calls
    r = run_lumos("trace", "--max-elems", "65", "-c", exe, "main.Names")
    assert r.returncode == 2 and r.stderr.strip() == \
        "lumos trace: --max-elems must be between 0 and 64", r.stderr
