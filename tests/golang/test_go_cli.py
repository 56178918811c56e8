"""`lumos funcs` as a user runs it: text, JSON lines, -p PID, --sig, --runtime."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import run_lumos
from support.gobuild import build, source_signatures
from support.gofixtures import isolated_cache  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _env():
    return dict(os.environ)


def test_text_output_lists_signatures_and_sites():
    exe = build("alltypes", "1.27.3", "default")
    r = run_lumos("funcs", str(exe), env=_env())
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.splitlines()[0].startswith(f"{exe}: go1.27.3, example.com/alltypes, DWARF;")
    for sig in source_signatures("alltypes").values():
        assert "\n" + sig + "\n" in out, sig
    block = out.split("main.prepareAnswer(name string, year int, status int) string\n")[1]
    block = block.split("\n\n")[0]
    assert "entry  +0x4 stack-check JBE (emulated)" in block and "flags & 0x41" in block
    assert "exits  1 RET; result AX,BX" in block
    assert "args   name=AX,BX  year=CX  status=DI" in block
    assert r.stderr == ""


def test_json_lines():
    exe = build("alltypes", "1.23.9", "pie")
    r = run_lumos("funcs", str(exe), "main.*", "--json", env=_env())
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    by = {d["name"]: d for d in recs}
    p = by["main.prepareAnswer"]
    assert p["signature"] == "main.prepareAnswer(name string, year int, status int) string"
    e = p["entry_site"]
    assert e["morestack"]["flags_mask"] == 0x41 and e["emulated"]
    assert [loc["reg"] for loc in e["locs"][0]] == ["ax", "bx"]
    assert [loc["part"] for loc in e["locs"][0]] == [".ptr", ".len"]
    assert len(p["ret_sites"]) == 1 and p["ret_sites"][0]["insn"] == "ret"
    assert p["params"][0]["type"]["kind"] == "string"
    # file offsets are what a uprobe needs: the RET byte is there
    with open(exe, "rb") as f:
        f.seek(p["ret_sites"][0]["offset"])
        assert f.read(1) == b"\xc3"


def test_pid_target():
    exe = build("alltypes", "1.21.13", "default")
    proc = subprocess.Popen([str(exe), "1", "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    try:
        r = run_lumos("funcs", "-p", str(proc.pid), "main.Leaf", env=_env())
        assert r.returncode == 0, r.stderr
        assert "main.Leaf(a int) int" in r.stdout
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_signature_decodes_stripped_binary():
    exe = build("alltypes", "1.27.3", "stripped")
    r = run_lumos("funcs", str(exe), "--sig", "main.FloatSpill(x float64, n int) float64",
                  env=_env())
    assert r.returncode == 0, r.stderr
    assert "main.FloatSpill(x float64, n int) float64" in r.stdout
    assert "params from signature" in r.stdout
    # no DWARF, yet x is read where the code spilled it from X0, never guessed
    assert "x=0x20(SP)  n=AX" in r.stdout
    assert r.stderr == ""  # no "no DWARF" note: the signature stands in for it


def test_runtime_facts():
    exe = build("alltypes", "1.19", "default")
    r = run_lumos("funcs", str(exe), "--runtime", env=_env())
    assert r.returncode == 0, r.stderr
    assert "g.goid     offset 0x98 (from dwarf)" in r.stdout
    assert "runtime.newproc1(fn *runtime.funcval, callergp *runtime.g, callerpc uintptr) " \
           "*runtime.g" in r.stdout
    assert "runtime.goexit1()" in r.stdout
    r = run_lumos("funcs", str(exe), "--runtime", "--json", env=_env())
    d = json.loads(r.stdout)
    assert d["goid_offset"] == 0x98 and d["g_register"] == "r14" and d["g_tls_offset"] == -8
    assert [loc["reg"] for v in d["newproc1"]["entry_site"]["locs"] for loc in v] == \
        ["ax", "bx", "cx"]
