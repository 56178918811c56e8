"""C functions traced with their arguments and return values (System V ABI), typed by C
DWARF, by a signature in the pattern (C or Go word order), or raw; checked against what
tests/programs/c/ctruth.c prints of every call it made."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_lumos
from support.programs import build_c

FUNCS = ["ints", "pick", "seven", "mixed", "tail"]
SIGS = {
    "ints": "ints(int a, unsigned char b, short c, unsigned int d, long e) long",
    "pick": "pick(s *char, t *char, which int) *char",           # Go word order
    "seven": "seven(int a1, int a2, int a3, int a4, int a5, int a6, long a7) size_t",
    "mixed": "mixed(double x, int n, void *p) int",
    "tail": "tail(int n) int",
}
STRLEN = 32


@pytest.fixture(scope="module")
def ctruth_dwarf() -> str:
    return build_c("ctruth", ("-O2", "-g"))


@pytest.fixture(scope="module")
def ctruth_plain(tmp_path_factory) -> str:
    exe = build_c("ctruth", ("-O2",))
    private = tmp_path_factory.mktemp("c") / "ctruth"   # a binary target of its own
    shutil.copy(exe, private)
    return str(private)


def _truth(stdout: str) -> list[dict]:
    return [json.loads(x[6:]) for x in stdout.splitlines() if x.startswith("TRUTH ")]


def _events(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines() if x.startswith('{"time"')]


def _c_string(hexed: str | None, got) -> None:
    if hexed is None:
        assert got is None
        return
    data = bytes.fromhex(hexed)
    want = data[:STRLEN - 1]
    assert got["str"].encode() == want
    assert got.get("truncated", False) == (len(data) >= STRLEN - 1)


def _compare(truth: list[dict], events: list[dict]) -> None:
    if truth and truth[-1].get("cold"):  # the last call: pick() on a never-touched page
        truth = truth[:-1]
        last_call = max(i for i, e in enumerate(events) if e["func"] == "pick"
                        and e["event"] == "call")
        last_ret = max(i for i, e in enumerate(events) if e["func"] == "pick"
                       and e["event"] == "return")
        cold = events[last_call]
        # a probe cannot fault the page in: unreadable, never a wrong value ("")
        assert cold["args"]["s"] is None and cold["args"]["t"] == {"str": "warm"}, cold
        events = [e for i, e in enumerate(events) if i not in (last_call, last_ret)]
    calls = [e for e in events if e["event"] == "call"]
    rets = [e for e in events if e["event"] == "return"]
    assert [e["func"] for e in calls] == [t["f"] for t in truth]
    assert [e["func"] for e in rets] == [t["f"] for t in truth]
    for t, c, r in zip(truth, calls, rets, strict=True):
        for name, value in t["args"].items():
            got = c["args"][name]
            if t["f"] == "pick" and name in ("s", "t"):
                _c_string(value, got)
            else:
                assert got == value, (t, c)
        if t["f"] == "mixed":
            assert c["args"]["x"] is None   # a double: in XMM0, unreadable, never wrong
        ret = r["results"]["~r0"]
        if t["f"] == "pick":
            _c_string(t["ret"], ret)
        else:
            assert ret == t["ret"], (t, r)


def test_values_from_c_dwarf_equal_the_program(ctruth_dwarf):
    r = run_lumos("trace", "--ret", "--json", "--strlen", str(STRLEN), "-c", ctruth_dwarf,
                  *FUNCS)
    assert r.returncode == 0, r.stderr
    assert "no C signature" not in r.stderr
    _compare(_truth(r.stdout), _events(r.stdout))


def test_values_from_signatures_equal_the_program(ctruth_plain):
    r = run_lumos("trace", "--ret", "--json", "--strlen", str(STRLEN), "-c", ctruth_plain,
                  *SIGS.values())
    assert r.returncode == 0, r.stderr
    _compare(_truth(r.stdout), _events(r.stdout))


def test_without_a_signature_the_argument_registers(ctruth_plain):
    r = run_lumos("trace", "--ret", "--json", "-c", ctruth_plain, "seven")
    assert r.returncode == 0, r.stderr
    assert "no C signature for seven" in r.stderr
    truth = [t for t in _truth(r.stdout) if t["f"] == "seven"]
    events = _events(r.stdout)
    calls = [e for e in events if e["event"] == "call"]
    assert len(calls) == len(truth) == 5
    for t, c in zip(truth, calls, strict=True):
        regs = [c["args"][f"arg{i}"] & 0xFFFFFFFF for i in range(6)]
        assert regs == [t["args"][f"a{i}"] for i in range(1, 7)]


def test_text_output_of_c_values(ctruth_dwarf):
    r = run_lumos("trace", "--ret", "-c", ctruth_dwarf, "pick", "mixed")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if not x.startswith("TRUTH")]
    assert any(x.endswith('pick(s="hello", t="", which=0)') for x in lines)
    assert any(x.endswith('pick => "hello"') for x in lines)
    assert any(x.endswith("mixed(x=?, n=0, p=NULL)") for x in lines)
    assert any(x.endswith("pick => NULL") for x in lines)


def test_a_filter_on_c_arguments(ctruth_dwarf):
    r = run_lumos("trace", "--ret", "--json", "-c", ctruth_dwarf, "ints",
                  "--filter", "a <= -10 && b != 203")
    assert r.returncode == 0, r.stderr
    calls = [e for e in _events(r.stdout) if e["event"] == "call"]
    assert [e["args"]["a"] for e in calls] == [-10, -20]
    assert len([e for e in _events(r.stdout) if e["event"] == "return"]) == 2


def test_latency_of_c_functions_pairs_every_call(ctruth_dwarf):
    r = run_lumos("latency", "--json", "-c", ctruth_dwarf, "tail", "pick")
    assert r.returncode == 0, r.stderr
    counts = {json.loads(x)["func"]: json.loads(x)["count"] for x in r.stdout.splitlines()
              if x.startswith('{"time"')}
    assert counts == {"tail": 5, "pick": 6}
    assert "no recorded entry" not in r.stderr
