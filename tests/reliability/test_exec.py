"""Exec while traced: the PID stays, the image is new. With -p lumos stops and says so;
with a binary target a process exec'ing the same binary stays traced (uprobes are per
inode); with -c lumos stops tracing and lets the command run on. Ground truth: goexec
prints its own call counts."""

import json
import os
import signal
import subprocess

import pytest
from conftest import LUMOS, run_lumos
from support.gobuild import build
from support.lumosproc import text_byte, wait_for_banner

from lumos.binary.elf import open_elf
from lumos.bpf.tracefs import probe_events_left


@pytest.fixture(scope="module")
def goexec():
    return str(build("goexec"))


def read_until(stream, prefix: str) -> str:
    for line in stream:
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no {prefix!r} line")


def test_pid_target_exec_stops_with_a_note_and_leaves_the_new_image_clean(goexec):
    prog = subprocess.Popen([goexec, "-wait", "-n", "1000", "self", "-wait", "-n", "2000"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(prog.stderr, "ready")
        lum = subprocess.Popen([*LUMOS, "funccount", "--json", "-p", str(prog.pid),
                                "main.hot"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        wait_for_banner(lum)
        prog.stdin.write("go\n")
        prog.stdin.flush()
        assert read_until(prog.stderr, "hot=") == "hot=1000"
        read_until(prog.stderr, "ready")  # the new image waits: no calls while lumos stops
        out, err = lum.communicate(timeout=30)
        assert lum.returncode == 0, err
        assert f"lumos: PID {prog.pid} exec'd {goexec}: the probes were in the old image" in err
        assert "Traceback" not in err
        counts = {r["func"]: r["count"] for r in map(json.loads, out.splitlines())
                  if "func" in r}
        assert counts == {"main.hot": 1000}, (counts, err)
        # nothing left attached: the new image of the same file has no breakpoint in it
        with open_elf(goexec) as elf:
            addr = next(s.addr for s in elf.functions if s.name == "main.hot")
            text = elf.read_vaddr(addr, 64)
        assert bytes(text_byte(prog.pid, goexec, addr + i) for i in range(64)) == text
        assert probe_events_left() == []
        prog.stdin.write("go\n")
        prog.stdin.close()
        assert read_until(prog.stderr, "hot=") == "hot=2000"
        assert prog.wait(timeout=30) == 0
    finally:
        prog.kill()
        prog.wait()


@pytest.mark.parametrize("tool", ["funccount", "trace"])
def test_binary_target_follows_exec_into_the_same_binary(goexec, tool, tmp_path):
    binary = str(tmp_path / "goexec")
    subprocess.run(["cp", goexec, binary], check=True)  # an inode no other test probes
    lum = subprocess.Popen([*LUMOS, tool, "--json", binary, "main.hot"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_banner(lum)
    r = subprocess.run([binary, "-n", "1000", "self", "-n", "2000", "self", "-n", "3000"],
                       capture_output=True, text=True, timeout=60)
    lum.send_signal(signal.SIGINT)
    out, err = lum.communicate(timeout=60)
    assert r.returncode == 0, r.stderr
    made = sum(int(ln[4:]) for ln in r.stderr.split() if ln.startswith("hot="))
    assert made == 6000, r.stderr
    assert lum.returncode == 0, err
    assert "exec'd" not in err
    rows = [json.loads(ln) for ln in out.splitlines()]
    if tool == "funccount":
        assert [(x["func"], x["count"]) for x in rows if "func" in x] == [("main.hot", made)]
    else:
        calls = [x for x in rows if x.get("func") == "main.hot"]
        assert len(calls) == made, err
        assert {x["pid"] for x in calls} == {calls[0]["pid"]}  # one process throughout


def test_command_exec_stops_tracing_and_the_command_runs_on(goexec):
    r = run_lumos("funccount", "-c", f"{goexec} -n 1000 /bin/sh -c 'sleep 1; echo after; "
                  f"exit 3'", "main.hot", timeout=60)
    assert r.returncode == 3, r.stderr  # the command's own status, as for any -c command
    assert "after" in r.stdout  # it ran to its end after lumos stopped watching
    notes = [ln for ln in r.stderr.splitlines() if "exec'd" in ln]
    assert notes == [f"lumos: the command exec'd {os.path.realpath('/bin/sh')}: tracing stopped, the probes "
                     "were in the old image; the command runs on (trace the new program "
                     "with -c or its path)"], r.stderr
    assert "main.hot                                     1000" in r.stdout
    assert "Traceback" not in r.stderr
