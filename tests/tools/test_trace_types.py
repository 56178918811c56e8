"""lumos trace against the truth program: every argument and result, every type, every
toolchain (Go 1.19, 1.21, 1.23, 1.27) and build (default, stripped, PIE).

tests/programs/go/truth calls one function per kind of Go value and writes, after each
call, what it passed and got back ("TRUTH {json}" lines on stderr). One `lumos trace
--ret --json -c` run per build; every event must equal the program's own account, field
for field. A value may be null only where lumos itself says it cannot be read there (an
X register: floats), never wrong. Stripped builds have no DWARF: they are traced with a
user-written signature per function and must decode exactly like the DWARF builds.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from conftest import run_lumos
from support.gobuild import VARIANTS, VERSIONS, build
from support.truth import check, pair_calls

from lumos.targets.plan import plan
from lumos.targets.target import Target

STRLEN = 32

# The functions traced, with the signature a user would give for a stripped build
# (named types written as their underlying types; a pointer's element may stay named).
SIGNATURES = {
    "main.Ints": "main.Ints(a int, b int8, c int16, d int32, e int64) int64",
    "main.Uints": "main.Uints(a uint, b uint8, c uint16, d uint32, e uint64, f uintptr) uint",
    "main.Bools": "main.Bools(a bool, b bool) bool",
    "main.Floats": "main.Floats(a float32, b float64) float64",
    "main.FloatSpill": "main.FloatSpill(x float64, n int) float64",
    "main.Strings": "main.Strings(s string, t string) (string, int)",
    "main.Bytes": "main.Bytes(b []byte) []byte",
    "main.Slices": "main.Slices(a []int, b []string, c []struct{X int; Y int}) int",
    "main.Pointers": "main.Pointers(p *main.Point, q *int, u unsafe.Pointer) *main.Point",
    "main.Maps": "main.Maps(m map[string]int, c chan int, f func(int) int) int",
    "main.Ifaces": "main.Ifaces(e error, a interface{}, s interface{String() string}) "
                   "(interface{}, error)",
    "main.Structs": "main.Structs(p struct{X int; Y int}, s struct{A int8; B uint16; C float64}, "
                    "b struct{Name string; Vals [4]int; P *main.Point}, e struct{}) "
                    "struct{X int; Y int}",
    "main.BigRet": "main.BigRet(n int) struct{Name string; Vals [4]int; P *main.Point}",
    "main.Arrays": "main.Arrays(a [1]int, b [3]int, c [0]int) int",
    "main.Many": "main.Many(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10 int, a11 string) "
                 "(int, string)",
    "main.ManyRet": "main.ManyRet(n int) (int, int, int, int, int, int, int, int, int, int, "
                    "string)",
    "main.MultiRet": "main.MultiRet(a int) (int, error)",
    "main.Named2": "main.Named2(n int, c int) (out string, err error)",
    "main.(*Point).Move": "main.(*Point).Move(p *main.Point, dx int, dy int)",
    "main.Point.Sum": "main.Point.Sum(p struct{X int; Y int}) int",
    "main.asmAdd": "main.asmAdd(a int64, b int64, s string) int64",
}
RAW = "main.Raw"  # traced without a signature everywhere


def patterns(stripped: bool) -> list[str]:
    if stripped:
        return [*SIGNATURES.values(), RAW]
    return [name for name in SIGNATURES if name != "main.asmAdd"] + ["main.asmAdd*", RAW]


class Run:
    """One traced run of the truth program: lumos's events and the program's truth."""

    def __init__(self, version: str, variant: str):
        self.version, self.variant = version, variant
        self.stripped = variant == "stripped"
        self.exe = str(build("truth", version, variant))
        pats = patterns(self.stripped)
        r = run_lumos("trace", "--ret", "--json", "--strlen", str(STRLEN), "-c", self.exe,
                      *pats, timeout=120)
        assert r.returncode == 0, r.stderr
        self.stderr = r.stderr
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert lines[-1] == {"lost": 0}, lines[-1]
        self.events = lines[:-1]
        self.truth = [json.loads(x[6:]) for x in r.stderr.splitlines()
                      if x.startswith("TRUTH ")]
        assert self.truth, f"the program wrote no truth:\n{r.stderr[-2000:]}"
        self.calls = pair_calls(self.events)
        # What lumos says it cannot read: {func: {value name}} for args and results.
        self.unreadable_args: dict[str, set[str]] = defaultdict(set)
        self.unreadable_results: dict[str, set[str]] = defaultdict(set)
        for f in plan(Target(self.exe), pats, STRLEN):
            self.unreadable_args[f.name] |= {c.name for c in f.args if not readable(c)}
            for caps in f.results:
                self.unreadable_results[f.name] |= {c.name for c in caps if not readable(c)}

    def __str__(self) -> str:
        return f"go{self.version}-{self.variant}"


def readable(cap) -> bool:
    return all(w.readable for w in cap.words)


_runs: dict[tuple[str, str], Run] = {}


@pytest.fixture(scope="module", params=[(v, var) for v in VERSIONS for var in VARIANTS],
                ids=lambda p: f"go{p[0]}-{p[1]}")
def run(request) -> Run:
    if request.param not in _runs:
        _runs[request.param] = Run(*request.param)
    return _runs[request.param]


def check_call(run: Run, func: str, truth: dict, call: dict, ret: dict | None) -> None:
    where = f"{run}: {func}"
    assert set(call["args"]) == set(truth["args"]), f"{where}: {call['args']} vs {truth}"
    for name, t in truth["args"].items():
        check(f"{where} arg {name}", t, call["args"][name],
              name in run.unreadable_args[func])
    assert ret is not None, f"{where}: no return event for {call}"
    assert set(ret["results"]) == set(truth["results"]), f"{where}: {ret} vs {truth}"
    for name, t in truth["results"].items():
        check(f"{where} result {name}", t, ret["results"][name],
              name in run.unreadable_results[func])


@pytest.mark.parametrize("func", [f for f in SIGNATURES if f != "main.asmAdd"])
def test_every_value_equals_what_the_program_printed(run, func):
    truth = [t for t in run.truth if t["f"] == func]
    assert truth, f"no truth for {func}"
    calls = run.calls.get(func, [])
    assert len(calls) == len(truth), f"{run}: {func}: {len(calls)} traced, {len(truth)} made"
    for t, (call, ret) in zip(truth, calls, strict=True):
        check_call(run, func, t, call, ret)


def test_goroutine_id_is_main(run):
    """The truth program calls everything from main.main: goroutine 1, read from g
    (R14 in Go code, thread-local storage in the assembly function)."""
    goids = {(ev["func"], ev["goid"]) for ev in run.events}
    assert {g for _, g in goids} == {1}, sorted(goids)


def test_floats_in_x_registers_are_null_not_wrong(run):
    """Floats passed in X registers cannot be read by a uprobe: lumos says so and prints
    null; once spilled (FloatSpill, with DWARF) they are read exactly (checked above)."""
    assert {"a", "b"} <= run.unreadable_args["main.Floats"]
    assert all(call["args"]["a"] is None and call["args"]["b"] is None
               for call, _ in run.calls["main.Floats"])
    if not run.stripped:
        assert "x" not in run.unreadable_args["main.FloatSpill"]


def test_assembly_function_abi0(run):
    """asmAdd is ABI0 assembly (arguments on the stack): called directly, and through a
    func value, i.e. via its ABIInternal wrapper, which then calls it."""
    direct, via = (next(t for t in run.truth if t["f"] == f)
                   for f in ("asm direct", "asm via func value"))
    if run.stripped:  # the pclntab names both main.asmAdd
        expected = {"main.asmAdd": [direct, via, via]}
    else:
        expected = {"main.asmAdd.abi0": [direct, via], "main.asmAdd": [via]}
    for func, truths in expected.items():
        calls = run.calls.get(func, [])
        assert len(calls) == len(truths), f"{run}: {func}: {calls}"
        for t, (call, ret) in zip(truths, calls, strict=True):
            check_call(run, func, t, call, ret)


def test_raw_words_without_dwarf_or_signature(run):
    """main.Raw(a int, s string, p *Point) has no signature: with DWARF it decodes
    normally (checked through the truth like the rest); stripped, lumos falls back to
    the raw words Go's traceback information describes, and says so."""
    truth = [t for t in run.truth if t["f"] == RAW]
    calls = run.calls[RAW]
    assert len(calls) == len(truth) == 2
    if not run.stripped:
        for t, (call, ret) in zip(truth, calls, strict=True):
            check_call(run, RAW, t, call, ret)
        return
    assert "no DWARF in this binary" in run.stderr
    for t, (call, _) in zip(truth, calls, strict=True):
        a, s, p = (t["args"][k] for k in ("a", "s", "p"))
        args = call["args"]
        assert args["arg0"] == [a[1] & (1 << 64) - 1], args
        assert args["arg1.w1"] == [s[2]], args                 # the string's length word
        assert args["arg2"] == [p[1]], args


def test_text_output_cuts_long_strings_with_a_marker():
    """The text format: Go-quoted strings, cut at --strlen with '...(+N)' saying how many
    bytes were left out; empty and unicode strings as Go would print them."""
    exe = str(build("truth", "1.19", "default"))
    r = run_lumos("trace", "--ret", "--strlen", "16", "-c", exe, "main.Strings")
    assert r.returncode == 0, r.stderr
    calls = [ln.split(None, 4)[4] for ln in r.stdout.splitlines()[1:]]
    assert 'main.Strings(s="", t="hello")' in calls
    assert 'main.Strings => ("hello", 5)' in calls
    assert 'main.Strings(s="0123456789012345"...(+84), t="\\xff\\xfe\\x00abc")' in calls
    assert 'main.Strings(s="aaaaaaaaaaaaaaaa"...(+16), t="bbbbbbbbbbbbbbbb"...(+17))' in calls
    # cut inside a rune: the bytes that are there, escaped as Go's %q would
    assert 'main.Strings(s="hello", t="héllo wörld \\xe2\\x9c"...(+16))' in calls
    assert 'main.Strings(s="with \\"quotes\\" an"...(+17), t="")' in calls


@pytest.mark.parametrize("func, expr, keep", [
    ("main.Ints", "b == -128 || c > 300", lambda a: a["b"] == -128 or a["c"] > 300),
    ("main.Ints", "e < 0", lambda a: a["e"] < 0),
    ("main.Uints", "e >= 9223372036854775808", lambda a: a["e"] >= 1 << 63),
    ("main.Uints", "b == 255 && d == 4294967295", lambda a: a["b"] == 255 and a["d"] == 2**32 - 1),
    ("main.Bools", "a && !b", lambda a: a["a"] and not a["b"]),
    ("main.Pointers", "p && !(q)", lambda a: a["p"] != 0 and a["q"] == 0),
    ("main.Bools", "a == true && b == false", lambda a: a["a"] and not a["b"]),
    ("main.Pointers", "p == 0", lambda a: a["p"] == 0),
    ("main.Many", 'a11 == "eleven" || a10 < 0', lambda a: a["a11"] == b"eleven"),
    ("main.Strings", 's == "héllo wörld ✓ 日本語 🐹"',
     lambda a: a["s"] == "héllo wörld ✓ 日本語 🐹".encode()),
    ("main.Strings", 's != "" && t == ""', lambda a: a["s"] != b"" and a["t"] == b""),
])
def test_filter_by_type(func, expr, keep):
    """--filter on every kind it compares: signed and unsigned integers of each size
    (sign-extended as the type says), bools and pointers (also bare: not zero),
    strings (also on the stack)."""
    exe = str(build("truth", "1.23.9", "default"))
    r = run_lumos("trace", "--json", "--strlen", str(STRLEN), "--filter", expr, "-c", exe, func)
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.stdout.splitlines()][:-1]
    truths = [t for t in (json.loads(x[6:]) for x in r.stderr.splitlines()
                          if x.startswith("TRUTH ")) if t["f"] == func]

    def value(v):
        return bytes.fromhex(v[1]) if v[0] == "s" else v[1]

    wanted = [t for t in truths if keep({k: value(v) for k, v in t["args"].items()})]
    assert wanted, "the filter should keep some calls"
    assert len(events) == len(wanted)
    for t, e in zip(wanted, events, strict=True):
        for name, v in t["args"].items():
            check(f"{func} {name}", v, e["args"][name], False)
