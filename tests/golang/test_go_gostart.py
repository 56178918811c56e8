"""Goroutine start functions as Go reports them (GoBinary.reported_start, used by
`lumos goroutines`), against the gowrap program's own runtime.Stack(buf, true).

A go statement with arguments starts the goroutine in a compiler-written wrapper
(main.main.func3 in Go 1.19-1.21, main.main.gowrap1 from 1.22); Go's traceback and
goroutine profile leave wrappers out and show the function the user wrote. So must
lumos, on every toolchain, stripped and PIE. One case it cannot see through, said
here and in the docstring: on Go 1.19-1.21 a function literal with arguments
(`go func(x int){...}(7)`) is called by its wrapper through a func value, so lumos
names the wrapper.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_lumos
from support.gobuild import VARIANTS, VERSIONS, build

from lumos.golang.gobinary import open_go_binary


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("version", VERSIONS)
def test_start_functions_are_what_go_reports(version, variant):
    exe = str(build("gowrap", version, variant))
    r = run_lumos("goroutines", "--json", "-c", exe, timeout=60)
    assert r.returncode == 0, r.stderr
    truth = {t["goid"]: t["start"] for t in (json.loads(x[6:]) for x in r.stderr.splitlines()
                                             if x.startswith("TRUTH "))}
    assert len(truth) == 6, r.stderr
    got = {x["goid"]: x["start"] for x in map(json.loads, r.stdout.splitlines())
           if x.get("event") == "create" and x.get("creator") == "main.main"}
    old = version in ("1.19", "1.21.13")
    for goid, want in truth.items():
        if old and want == "main.main.func1":   # the func literal with an argument
            assert got[goid].startswith("main.main.func"), got
            continue
        assert got.get(goid) == want, f"go{version}-{variant}: goid {goid}: {got} vs {truth}"


@pytest.mark.parametrize("version", VERSIONS)
def test_wrapper_funcid_and_plain_functions(version):
    """The wrapper funcID is read off the binary (21, 21, 22, 23 for these releases);
    a function that is no wrapper is its own start; a PC outside any function, None."""
    with open_go_binary(str(build("gowrap", version, "stripped")), use_cache=False) as gb:
        assert gb._wrapper_funcid() == {"1.19": 21, "1.21.13": 21, "1.23.9": 22,
                                        "1.27.3": 23}[version]
        worker = gb.get_functions("main.worker")[0]
        assert gb.reported_start(worker.entry + 3) == worker
        assert gb.reported_start(1) is None
        wrappers = [f for f in gb.match("main.main.*")
                    if gb.reported_start(f.entry).name == "main.worker"]
        assert len(wrappers) == 1, [f.name for f in gb.match("main.main.*")]
