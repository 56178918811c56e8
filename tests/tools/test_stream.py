"""The streaming pipeline under sustained load: exact accounting, bounded memory, prompt
exit. The traced program (tests/programs/go/streamer) calls main.emit(n int, s string)
flat out and prints how many calls it made; lumos's delivered + lost must equal it.

No speed is asserted here (bench/stream.py measures it side by side with bpftrace);
memory and exit bounds have generous margins for a shared machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import LUMOS, run_lumos
from support.gobuild import build

RSS_BOUND_KB = 120_000   # bpftrace's ~90 MiB with room for a noisy machine
EXIT_SLACK_S = 3.0       # start-up (imports, attach) plus the promised 0.5 s after a stop


@pytest.fixture(scope="module")
def streamer() -> str:
    return str(build("streamer"))


def _calls(stderr: str) -> int:
    """What the streamer says it did (on stderr, apart from lumos's output)."""
    return int(re.search(r"^calls=(\d+)$", stderr, re.M).group(1))


def _delivered_and_lost(stdout: str, json_out: bool) -> tuple[int, int]:
    lost = delivered = 0
    for line in stdout.splitlines():
        if json_out and line.startswith('{"lost"'):
            lost = json.loads(line)["lost"]
        elif json_out and line.startswith("{") or not json_out and " main.emit(" in line:
            delivered += 1
    return delivered, lost


def _lost_from_stderr(stderr: str) -> int:
    for line in stderr.splitlines():
        if "events lost" in line:
            return int(line.split()[1])
    return 0


@pytest.mark.parametrize("goroutines", [1, 2, 4])
def test_delivered_plus_lost_equals_calls_json(streamer, goroutines):
    r = run_lumos("trace", "--json", "-c", f"{streamer} -d 3 -g {goroutines}", "main.emit",
                  timeout=120)
    assert r.returncode == 0, r.stderr
    calls = _calls(r.stderr)
    delivered, lost = _delivered_and_lost(r.stdout, json_out=True)
    assert calls > 0
    assert delivered + lost == calls, (delivered, lost, calls)
    assert lost == _lost_from_stderr(r.stderr)


def test_delivered_plus_lost_equals_calls_text(streamer):
    r = run_lumos("trace", "-c", f"{streamer} -d 3 -g 2", "main.emit", timeout=120)
    assert r.returncode == 0, r.stderr
    calls = _calls(r.stderr)
    delivered, _ = _delivered_and_lost(r.stdout, json_out=False)
    assert delivered + _lost_from_stderr(r.stderr) == calls


def test_every_value_survives_the_batch_path(streamer):
    """At a moderate rate nothing is lost, and every n arrives once with its string."""
    r = run_lumos("trace", "--json", "-c", f"{streamer} -d 2 -rate 20000", "main.emit",
                  timeout=120)
    assert r.returncode == 0, r.stderr
    names = ["GET /", "POST /api/v1/users", "Gopher", "GopherConRussia2020",
             "a string a little longer than the others, to vary lengths"]
    events = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{"time"')]
    calls = _calls(r.stderr)
    assert len(events) == calls
    assert sorted(e["args"]["n"] for e in events) == list(range(calls))
    for e in events:
        n, s = e["args"]["n"], e["args"]["s"]
        assert s == {"len": len(names[n % 5]), "str": names[n % 5]}


@pytest.mark.parametrize("tool", [["trace", "--json"], ["trace"], ["flow"]])
def test_memory_stays_bounded_and_exit_is_prompt(streamer, tool, tmp_path):
    """10 s flat out into /dev/null; peak RSS as GNU time reads it from the kernel (a
    child forked from pytest itself would inherit pytest's high-water mark)."""
    rss = tmp_path / "rss"
    with open(os.devnull, "w") as null:
        t0 = time.monotonic()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss), *LUMOS, *tool,
                            "-c", f"{streamer} -d 60", "main.emit", "-d", "8"],
                           stdout=null, stderr=subprocess.PIPE, text=True, timeout=60)
        elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    peak = int(rss.read_text().split()[-1])
    assert peak < RSS_BOUND_KB, f"peak RSS {peak} kB"
    assert elapsed < 8 + EXIT_SLACK_S, f"exited {elapsed:.1f} s after start (-d 8)"


def test_ctrl_c_exits_promptly_with_the_lost_count(streamer):
    proc = subprocess.Popen([*LUMOS, "trace", "--json", "-c", f"{streamer} -d 60",
                             "main.emit"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(4)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0
    assert out.rstrip().splitlines()[-1].startswith('{"lost":')
