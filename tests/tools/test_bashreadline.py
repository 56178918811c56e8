"""lumos bashreadline: lines typed into a real interactive bash (in tmux, keys sent with
send-keys) come back exactly, in order: unicode, an empty line, a line of exactly
--max bytes (whole) and a longer one (cut at --max, marked)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from conftest import LUMOS, run_lumos

LINES = ["echo one", "echo héllo wörld ✓ 日本語", "", "echo " + "a" * 251,  # 256 bytes
         "echo " + "0123456789" * 30, "echo done-typing"]


@pytest.fixture
def shell(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing (scripts/setup-system.sh installs it)", pytrace=False)
    name = f"lumos-test-{os.getpid()}"
    env = (f"env -i HOME={tmp_path} TERM=xterm LANG=C.UTF-8 LC_ALL=C.UTF-8 "
           f"HISTFILE=/dev/null PS1='$ ' /bin/bash --norc --noprofile")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "250", "-y", "50", env],
                   check=True)
    try:
        pid = int(subprocess.run(["tmux", "list-panes", "-t", name, "-F", "#{pane_pid}"],
                                 capture_output=True, text=True, check=True).stdout)
        yield name, pid
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name])


def _type(session: str, line: str) -> None:
    if line:
        subprocess.run(["tmux", "send-keys", "-t", session, "-l", line], check=True)
    subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)


def _screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session, "-S", "-100"],
                          capture_output=True, text=True).stdout


@pytest.mark.parametrize("where", ["pid", "system-wide"])
def test_typed_lines_come_back_exactly(shell, where):
    session, pid = shell
    only = ["-p", str(pid)] if where == "pid" else []
    tracer = subprocess.Popen([*LUMOS, "bashreadline", *only, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = tracer.stderr.readline()
        assert "lines returned by readline" in banner, banner + tracer.stderr.read()
        for line in LINES:
            _type(session, line)
        for _ in range(200):   # bash has read and run the last line
            if "\ndone-typing" in _screen(session):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("bash did not run the typed lines:\n" + _screen(session))
    finally:
        tracer.send_signal(signal.SIGINT)
        out, err = tracer.communicate(timeout=30)
    assert tracer.returncode == 0, err
    events = [json.loads(x) for x in out.splitlines()]
    assert events[-1] == {"lost": 0}
    events = [e for e in events[:-1] if e["pid"] == pid]   # system-wide: other shells
    got = [(e["line"], e["cut"]) for e in events]
    want = [(x.encode()[:256].decode(), len(x.encode()) > 256) for x in LINES]
    assert got == want
    assert want[3] == (LINES[3], False) and want[4][1] is True
    assert {e["comm"] for e in events} == {"bash"}


def test_text_output_bcc_columns(shell):
    session, pid = shell
    tracer = subprocess.Popen([*LUMOS, "bashreadline", "-p", str(pid), "--max", "8"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Tracing" in tracer.stderr.readline()
        _type(session, "echo 12345678")
        _type(session, "echo done-typing")
        for _ in range(200):
            if "\ndone-typing" in _screen(session):
                break
            time.sleep(0.05)
    finally:
        tracer.send_signal(signal.SIGINT)
        out, _ = tracer.communicate(timeout=30)
    rows = out.splitlines()
    assert rows[0] == "TIME      PID     COMMAND"                # BCC: "%-9s %-7s %s"
    assert [r[10:] for r in rows[1:]] == [f"{pid:<7} echo 123...", f"{pid:<7} echo don..."]


def test_readline_not_found_one_line_exit_2():
    r = run_lumos("bashreadline", "--shell", "/bin/ls")
    assert r.returncode == 2 and "readline not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
