"""lumos usdt / trace usdt: / funccount usdt: on the C test program (tests/programs/c/usdt.c),
built at -O0 and -O2 (different argument specs): every argument lumos reports equals what
the program printed when it fired the probe; semaphores are set while traced, by the
kernel (ref_ctr_offset) or through /proc/PID/mem, and cleared again afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from conftest import LUMOS, require, run_lumos
from support.programs import build_c

ROUNDS = 12


@pytest.fixture(scope="module", params=["-O0", "-O2"])
def usdt_bin(request) -> str:
    return build_c("usdt", (request.param,))


def test_list_probes(usdt_bin):
    r = run_lumos("usdt", usdt_bin)
    assert r.returncode == 0, r.stderr
    names = [line.split()[0].rsplit(":", 2)[-2:] for line in r.stdout.splitlines()]
    assert sorted(":".join(n) for n in names) == [
        "lumos:global", "lumos:mem", "lumos:mixed", "lumos:plain", "lumos:tick", "lumos:words"]
    v = run_lumos("usdt", usdt_bin, "tick", "-v").stdout
    assert "semaphore 0x" in v and "arg2" in v
    assert "no semaphore" in run_lumos("usdt", usdt_bin, "lumos:plain", "-v").stdout


def test_bad_input_one_line_exit_2(usdt_bin):
    for argv, words in ((["usdt", "/bin/true"], "has no USDT probes"),
                        (["usdt", usdt_bin, "nosuch"], "matches no USDT probe"),
                        (["trace", "/bin/true", "usdt:a:b"], "has no USDT probes"),
                        (["trace", usdt_bin, "usdt:lumos:plain", "--str", "x"], "--str")):
        r = run_lumos(*argv)
        assert r.returncode == 2 and words in r.stderr, (argv, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def _expected(lines: list[str]) -> list[tuple[str, list]]:
    """The program's own lines as (probe, argument values)."""
    out = []
    for line in lines:
        name, *vals = line.split(" ", 4 if line.startswith(("plain", "tick")) else 9)
        if name not in ("plain", "mixed", "mem", "global", "tick", "words"):
            continue
        if name == "tick":
            vals = [int(vals[0]), int(vals[1]), " ".join(vals[2:])]
        elif name == "plain":
            vals = [int(vals[0]), int(vals[1]), int(vals[2]), " ".join(vals[3:])]
        else:
            vals = [int(v) for v in vals]
        out.append((f"lumos:{name}", vals))
    return out


def _reported(stdout: str) -> list[tuple[str, list]]:
    got = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"probe"' in line:
            o = json.loads(line)
            got.append((o["probe"], list(o["args"].values())))
    return got


def test_trace_every_argument_equals_the_program(usdt_bin):
    require("uprobe_multi")
    r = run_lumos("trace", "-c", f"{usdt_bin} {ROUNDS}", "usdt:lumos:*", "--str", "2,3",
                  "--json")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if not x.startswith("{")]
    expected = _expected(lines)
    assert len(expected) == 6 * ROUNDS          # tick and words fired: semaphores were set
    assert _reported(r.stdout) == expected
    assert lines[-1] == "sem 1 1"               # the kernel's ref_ctr: one per probe
    assert "semaphores: kernel" in r.stderr
    assert '{"lost":0}' in r.stdout


def test_untraced_run_skips_guarded_probes(usdt_bin):
    out = subprocess.run([usdt_bin, "3"], capture_output=True, text=True).stdout
    assert "untraced 0" in out and "tick" not in out and out.endswith("sem 0 0\n")


def test_funccount_counts_each_probe_exactly(usdt_bin):
    r = run_lumos("funccount", "-c", f"{usdt_bin} {ROUNDS}", "usdt:lumos:*")
    assert r.returncode == 0, r.stderr
    counts = dict(line.split() for line in r.stdout.splitlines()
                  if line.startswith("usdt:"))
    assert counts == {f"usdt:lumos:{n}": str(ROUNDS)
                      for n in ("global", "mem", "mixed", "plain", "tick", "words")}


@pytest.mark.parametrize("how", ["kernel", "mem"])
def test_pid_semaphores_set_while_traced_and_cleared_after(usdt_bin, how):
    """-p on a running process: semaphores 1 while lumos is attached (set by the kernel
    or written to /proc/PID/mem), 0 again once it is stopped with SIGTERM."""
    prog = subprocess.Popen([usdt_bin, "4", "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert prog.stdout.readline() == "ready\n"
        tracer = subprocess.Popen([*LUMOS, "trace", "-p", str(prog.pid), "usdt:lumos:tick",
                                   "--semaphores", how, "--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        banner = tracer.stderr.readline()
        assert "Tracing" in banner, banner + tracer.stderr.read()
        assert f"semaphores: {'kernel' if how == 'kernel' else '/proc/PID/mem'}" in banner
        prog.stdin.write("go\n")
        prog.stdin.flush()
        lines = []
        while not (line := prog.stdout.readline()).startswith("sem"):
            lines.append(line.strip())
        assert line == "sem 1 0\n"               # tick's semaphore only
        assert [x for x in lines if x.startswith("tick")] == [
            f"tick {i} {i * i} {['alpha', 'beta', 'gamma', 'délta ünïcode'][i]}"
            for i in range(4)]
        time.sleep(0.3)
        tracer.send_signal(signal.SIGTERM)
        out, err = tracer.communicate(timeout=30)
        assert tracer.returncode == 0, err
        assert [v[:2] for _, v in _reported(out)] == [[i, i * i] for i in range(4)]
        prog.stdin.write("end\n")
        prog.stdin.flush()
        assert prog.stdout.readline() == "sem 0 0\n"
    finally:
        prog.kill()
        prog.wait()
