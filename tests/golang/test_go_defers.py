"""Results of functions with a defer, traced on every toolchain and build, against what
tests/programs/go/defers itself printed.

In such functions Go 1.19-1.23 describe each result twice in DWARF (`~r0, ~r0, ~r1, ~r1`;
a named result a deferred closure assigns as `r, r`): read as four results, `f(n int)
(int, error)` printed `(10, 0, nil, error(0x1, 0x10))`. The program covers unnamed and
named results, error results nil and not, several RETs, a panic recovered by a deferred
function (the function then returns through its deferreturn RET) and a method.
Stripped builds are traced with the signature a user would write.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_lumos
from support.gobuild import VARIANTS, VERSIONS, build
from support.truth import check, pair_calls

SIGNATURES = {
    "main.Unnamed": "main.Unnamed(n int) (int, error)",
    "main.Named": "main.Named(n int) (r int, err error)",
    "main.Single": "main.Single(n int) int",
    "main.Recovered": "main.Recovered(n int) (r int, err error)",
    "main.Three": "main.Three(s string, n int) (out string, k int, err error)",
    "main.Rets": "main.Rets(n int) (int, int, int)",
    "main.(*Acc).Add": "main.(*Acc).Add(a *main.Acc, n int) (total int, err error)",
}

_runs: dict = {}


def traced(version: str, variant: str) -> tuple[list[dict], list[dict]]:
    """(lumos's events, the program's truth) of one traced run, cached per build."""
    if (version, variant) not in _runs:
        exe = str(build("defers", version, variant))
        pats = list(SIGNATURES.values()) if variant == "stripped" else list(SIGNATURES)
        r = run_lumos("trace", "--ret", "--json", "-c", exe, *pats, timeout=120)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert lines[-1] == {"lost": 0}, lines[-1]
        truth = [json.loads(x[6:]) for x in r.stderr.splitlines() if x.startswith("TRUTH ")]
        _runs[version, variant] = (lines[:-1], truth)
    return _runs[version, variant]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("func", list(SIGNATURES))
def test_results_equal_what_the_program_returned(version, variant, func):
    events, truth = traced(version, variant)
    want = [t for t in truth if t["f"] == func]
    calls = pair_calls(events).get(func, [])
    where = f"go{version}-{variant}: {func}"
    assert want, f"{where}: no truth"
    assert len(calls) == len(want), f"{where}: {len(calls)} traced, {len(want)} made"
    for t, (call, ret) in zip(want, calls, strict=True):
        for name, v in t["args"].items():
            check(f"{where} arg {name}", v, call["args"][name], False)
        assert ret is not None, f"{where}: no return for {call}"
        assert set(ret["results"]) == set(t["results"]), f"{where}: {ret} vs {t}"
        for name, v in t["results"].items():
            check(f"{where} result {name}", v, ret["results"][name], False)


@pytest.mark.parametrize("version", VERSIONS)
def test_funcs_prints_each_result_once(version):
    """`lumos funcs` shows the source signature, not DWARF's doubled results."""
    exe = str(build("defers", version, "default"))
    r = run_lumos("funcs", exe, "main.*")
    assert r.returncode == 0, r.stderr
    lines = {line.strip() for line in r.stdout.splitlines()}
    for sig in SIGNATURES.values():
        assert sig in lines, f"go{version}: {sig} not in\n{r.stdout}"
