"""lumos goroutines against the leaky program, which reports every goroutine it starts
(goid, parent goid, start function, creating function) and leaks some on purpose.

Every toolchain and build: the program's own goroutines (start functions in main.*)
are reported exactly, no more and no fewer; those that ended have exit events; the
--leaks summary lists exactly the leaked ones, grouped by start and creator.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter

import pytest
from conftest import LUMOS, run_lumos
from support.gobuild import VARIANTS, VERSIONS, build


def truth_of(stderr: str) -> list[dict]:
    return [json.loads(ln[6:]) for ln in stderr.splitlines() if ln.startswith("TRUTH ")]


def ours(g: dict) -> bool:
    return g.get("start", "").startswith("main.")


def check_report(lines: list[dict], truth: list[dict], where: str) -> None:
    assert len(truth) == 15, f"{where}: the program reported {len(truth)} goroutines"
    creates = [x for x in lines if x.get("event") == "create" and ours(x)]
    got = sorted((x["goid"], x["parent"], x["start"], x["creator"]) for x in creates)
    want = sorted((t["goid"], t["parent"], t["start"], t["creator"]) for t in truth)
    assert got == want, f"{where}: creations differ"
    exits = sorted(x["goid"] for x in lines if x.get("event") == "exit" and ours(x))
    assert exits == sorted(t["goid"] for t in truth if not t["leaked"]), where
    for x in lines:
        if x.get("event") == "exit" and ours(x):
            assert x["lived_ns"] > 0, x
    leaks = {(x["start"], x["creator"]): x["alive"] for x in lines if "alive" in x and ours(x)}
    want_leaks = Counter((t["start"], t["creator"]) for t in truth if t["leaked"])
    assert leaks == dict(want_leaks), f"{where}: --leaks"
    assert lines[-1] == {"lost": 0}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_command_from_first_instruction(version, variant):
    exe = str(build("leaky", version, variant))
    r = run_lumos("goroutines", "--json", "--leaks", "-c", exe)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    check_report(lines, truth_of(r.stderr), f"go{version}-{variant}")
    # traced from the first instruction: runtime.main is goroutine 1
    first = next(x for x in lines if x.get("event") == "create")
    assert (first["goid"], first["start"]) == (1, "runtime.main")


def test_running_process_and_text_output(tmp_path):
    """-p PID: the program waits for a line on stdin before it spawns anything; lumos
    is attached by then. Ctrl-C prints the leak table."""
    exe = str(build("leaky", "1.23.9", "default"))
    err = tmp_path / "stderr"
    with open(err, "w") as errf, subprocess.Popen([exe, "wait"], stdin=subprocess.PIPE,
                                                  stderr=errf) as prog:
        with subprocess.Popen([*LUMOS, "goroutines", "-p", str(prog.pid), "--leaks"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as lum:
            assert lum.stderr.readline().startswith("Tracing goroutines")
            prog.stdin.write(b"go\n")
            prog.stdin.flush()
            for _ in range(200):  # the program writes its truth once all are spawned
                if err.read_text().count("TRUTH") == 15:
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # let lumos read the last events
            lum.send_signal(signal.SIGINT)
            out, _ = lum.communicate(timeout=30)
        prog.stdin.close()
        prog.wait(timeout=10)
    truth = truth_of(err.read_text())
    assert len(truth) == 15
    rows = out.splitlines()
    assert rows[0].split() == ["TIME", "PID", "PARENT", "GOID", "EVENT"]
    for t in truth:
        line = next(r for r in rows if f" -> {t['goid']} " in r)
        assert line.split()[2] == str(t["parent"])
        assert line.endswith(f"{t['creator']} -> {t['start']}")
        if not t["leaked"]:
            assert any(f" {t['goid']} " in r and f"exit {t['start']} (lived " in r
                       for r in rows)
    assert "5 goroutines created while tracing are still alive:" in out
    table = {tuple(r.split()[-2:]): int(r.split()[1]) for r in rows
             if r.strip().startswith(str(prog.pid))}
    assert table[("main.leaker", "main.spawnLeakers")] == 3
    assert table[("main.leaker", "main.spawnLeakersFrom")] == 2
