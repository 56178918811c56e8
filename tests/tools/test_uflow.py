"""lumos uflow -l python: the flow of a program calling functions in a known order from two
threads (tests/programs/python/flowprog.py writes its own call log) equals the log, on
Debian's python3.11 (its USDT function__entry is broken upstream: lumos uses the eval
loop with python3.11-dbg's DWARF) and on pyenv builds without USDT, 3.10 to 3.13."""

from __future__ import annotations

import json
import os

import pytest
from conftest import run_lumos
from support.programs import PROGRAMS

FLOWPROG = str(PROGRAMS / "python" / "flowprog.py")
PYTHONS = ["/usr/bin/python3.11"] + [f"/root/.pyenv/versions/{v}/bin/python{v[:4].rstrip('.')}"
                                     for v in ("3.10.13", "3.11.7", "3.12.1", "3.13.0")]
NAMES = ("Greeter.hello", "world", "inner")


def _python(path: str) -> str:
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing (Debian python3.11 comes from scripts/setup-system.sh; "
                    f"the pyenv builds from the machine image)", pytrace=False)
    return path


def _flow(py: str, tmp_path, *extra) -> tuple[list[str], list[str], str]:
    log = tmp_path / "log.txt"
    r = run_lumos("uflow", "-l", "python", "-c", f"{py} {FLOWPROG} {log}", "--json", *extra,
                  timeout=120)
    assert r.returncode == 0, r.stderr
    truth = log.read_text().split("\n")[:-1]
    got = []
    for line in r.stdout.splitlines():
        o = json.loads(line)
        if o.get("file", "").endswith("flowprog.py") and \
                o["method"].rsplit(".", 1)[-1] in [n.rsplit(".", 1)[-1] for n in NAMES]:
            got.append(f"{o['tid']} {'->' if o['event'] == 'call' else '<-'} {o['method']}")
    return got, truth, r.stderr


@pytest.mark.parametrize("py", PYTHONS)
def test_flow_equals_the_programs_own_log(py, tmp_path):
    got, truth, err = _flow(_python(py), tmp_path)
    if "3.10" in py:  # 3.10 code objects have no co_qualname: the plain name
        truth = [t.replace("Greeter.", "") for t in truth]
    assert len(truth) == 32 and got == truth
    assert "lumos uflow: mode: uprobes on" in err


def test_text_output_indents_by_depth_per_thread(tmp_path):
    log = tmp_path / "log.txt"
    py = _python(PYTHONS[0])
    r = run_lumos("uflow", "-l", "python", "-c", f"{py} {FLOWPROG} {log}", "-C", "Greeter")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["CPU", "PID", "TID", "TIME(us)", "METHOD"]
    body = [x for x in lines[1:] if "flowprog.py" in x]
    assert body and all("Greeter.hello" in x for x in body)   # -C: class Greeter only
    assert all(x.split(None, 4)[4] in ("-> " + FLOWPROG + ".Greeter.hello",
                                       "<- " + FLOWPROG + ".Greeter.hello") for x in body)
    r = run_lumos("uflow", "-l", "python", "-c", f"{py} {FLOWPROG} {log}", "-M", "inner")
    calls = [x for x in r.stdout.splitlines() if "flowprog.py" in x]
    assert len(calls) == 8 and all(".inner" in x for x in calls)  # 2 calls x 2 threads


def test_usdt_mode_on_debian_returns_complete_entries_not(tmp_path):
    """BCC's way on 3.11: function__return is complete, function__entry misses calls from
    Python (CPython gh-98894); lumos says so."""
    got, truth, err = _flow(_python(PYTHONS[0]), tmp_path, "--mode", "usdt")
    short = [t.replace("Greeter.", "") for t in truth]
    assert [g for g in got if " <- " in g] == [t for t in short if " <- " in t]
    assert len([g for g in got if " -> " in g]) < len([t for t in short if " -> " in t])
    assert "mode: USDT" in err and "gh-98894" in err


def test_not_python_one_line_exit_2():
    r = run_lumos("uflow", "-l", "python", "-c", "/bin/sleep 1", "--mode", "uprobe")
    assert r.returncode == 2 and "not a CPython interpreter" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
