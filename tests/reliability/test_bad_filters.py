"""Malformed --filter expressions over every tool that takes one (trace, http, sql): one
line on stderr, exit 2, no traceback, nothing left attached."""

from __future__ import annotations

import pytest
from support.gobuild import build
from test_bad_input import _uprobe_events, one_clear_line, run_many

# {i}: an integer field of the tool, {s}: a string field
EXPRS = [
    "({i} == 1", "{i} == 1)", "()", "nosuch == 1", "{s} > 3", '{i} == "x"', "{i} ==",
    "{i} == 1 &&", "&& {i} == 1", "{i} == 1 || || {i} == 2", "{i} == 1 {i} == 2",
    "{i} === 1", "{i} ~ 1", "{i} == -", "!", "", "   ", "{i} == 99999999999999999999999999",
    "{i} == 1e999", "{i} == 0x", "{i} == 1.5.5", "naïme == 1", "{s} == \"x", "{s} == 'x",
    '{s} == "\udcff"', "{i} == \x00", "{i} == 1; rm -rf /", "(" * 5000 + "{i} == 1" + ")" * 5000,
    " && ".join(["{i} == 1"] * 20000), "{s} == {s}", "{i} + 1 == 2", "{i} == 1 ?",
]
TOOLS = {  # tool: (arguments to get past its own, int field, string field)
    "trace": (["-p", "{pid}", "main.prepareAnswer"], "year", "name"),
    "http": (["-p", "{pid}"], "status", "method"),
    "sql": (["{reqsvc}"], "rows", "text"),
}


@pytest.fixture(scope="module")
def fill(goserver):
    return {"pid": str(goserver[0].pid), "reqsvc": str(build("reqsvc", "1.23.9"))}


def test_malformed_filters_are_one_line_exit_2(fill):
    before = _uprobe_events()
    argvs = []
    for tool, (base, i, s) in TOOLS.items():
        for e in EXPRS:
            expr = e.replace("{i}", i).replace("{s}", s)
            argvs.append([tool, *[a.format(**fill) for a in base], "-d", "1", "--filter", expr])
    results = run_many(argvs)
    bad = [(r["argv"][0], r["argv"][-1][:60], r["rc"], r["stderr"][-300:]) for r in results
           if not one_clear_line(r, ["filter", "--filter"])]
    print(f"{len(results)} malformed filters over {len(TOOLS)} tools")
    assert len(results) == len(EXPRS) * len(TOOLS)
    assert not bad, "\n".join(map(repr, bad))
    assert _uprobe_events() == before
