"""lumos logs on real loggers: slog and the standard log (Go 1.21/1.23/1.27), zap and
logrus (Debian's sources, Go 1.19 and 1.27), default, stripped and PIE builds. Each program logs at INFO with Debug calls
that its level filters out and writes its own ground truth of every call; lumos's
output must equal it field for field, file:line included."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import run_lumos
from support.gobuild import build

SLOG_VERSIONS = ("1.21.13", "1.23.9", "1.27.3")
VARIANTS = ("default", "stripped", "pie")
FIELDS = ("level", "msg", "filtered", "attrs", "caller", "func")


def _run(exe, tmp_path, *flags, n=3, extra=""):
    truth = tmp_path / "truth.jsonl"
    r = run_lumos("logs", "-c", f"{exe} -n {n} -truth {truth} {extra}", "--json", *flags,
                  timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    calls = [x for x in lines if "msg" in x]
    tail = {k: v for x in lines if "msg" not in x for k, v in x.items()}
    return calls, [json.loads(x) for x in truth.read_text().splitlines()], tail, r.stderr


def _same(calls, truth):
    got = [{k: c.get(k) for k in FIELDS} for c in calls]
    want = [{k: t[k] for k in FIELDS} for t in truth]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"call {i}"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("version", SLOG_VERSIONS)
def test_slog_equals_ground_truth(version, variant, tmp_path):
    exe = build("slogprog", version, variant)
    calls, truth, tail, _ = _run(exe, tmp_path, "--rate", "0")
    _same(calls, truth)
    assert any(c["filtered"] for c in calls) and not all(c["filtered"] for c in calls)
    assert tail["lost"] == 0 and tail["rate_limited"] == 0


@pytest.mark.parametrize("variant", ["default", "stripped"])
@pytest.mark.parametrize("version", ["1.21.13", "1.27.3"])
def test_unreadable_values_are_null_not_empty(version, variant, tmp_path):
    """Values whose bytes lie on pages the program mapped but never touched (it reads
    them right after the call): the probe cannot copy them, and lumos says so (null,
    ? in text) instead of printing "" or zeros."""
    exe = build("slogprog", version, variant)
    calls, truth, _, stderr = _run(exe, tmp_path, "--rate", "0", n=1, extra="-cold")
    _same(calls, truth)
    assert 'cold bytes after the call: "\\x7fELF" "\\x7fEL" "\\x7fE"' in stderr, stderr
    r = run_lumos("logs", "-c", f"{exe} -n 1 -cold", timeout=120)
    line = next(x for x in r.stdout.splitlines() if " cold " in x or x.endswith("cold"))
    assert "s=? err=? attr_s=? i=5" in line, line


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("program", ["zapprog", "logrusprog"])
def test_zap_and_logrus_equal_ground_truth(program, variant, tmp_path):
    for version in ("1.19", "1.27.3"):
        exe = build(program, version, variant)
        calls, truth, tail, _ = _run(exe, tmp_path, "--rate", "0")
        _same(calls, truth)
        assert tail["lost"] == 0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("version", SLOG_VERSIONS)
def test_standard_log_equals_ground_truth(version, variant, tmp_path):
    """log.Printf & co. to io.Discard return early in output(): shown, marked filtered."""
    exe = build("stdlogprog", version, variant)
    calls, truth, tail, _ = _run(exe, tmp_path, "--rate", "0")
    _same(calls, truth)
    assert tail["lost"] == 0


def test_level_and_grep_filter(tmp_path):
    exe = build("slogprog", "1.23.9")
    calls, truth, _, _ = _run(exe, tmp_path, "--level", "warn", "--rate", "0")
    _same(calls, [t for t in truth if t["level"] in ("WARN", "ERROR")])
    calls, truth, _, _ = _run(exe, tmp_path, "--grep", "^debug", "--rate", "0")
    _same(calls, [t for t in truth if t["msg"].startswith("debug")])


def test_rate_limit_counts_the_excess(tmp_path):
    """At most N calls a second per site are shown; every other one is counted."""
    exe = build("slogprog", "1.27.3")
    calls, truth, tail, err = _run(exe, tmp_path, "--rate", "50", "--no-pause", n=2000)
    assert len(truth) == 14000
    # two sites (log, logAttrs); the run takes well under the first second's window
    # or a few windows: the count shown is bounded by 50 per site per window started
    assert len(calls) + tail["rate_limited"] + tail["lost"] == len(truth)
    assert tail["rate_limited"] > 0 and "over the --rate limit" in err
    assert 0 < len(calls) < len(truth)


def test_a_spent_site_steps_aside_until_its_next_second(tmp_path):
    """By default a site whose --rate is spent is detached for the rest of its second
    (its traps cost the program even when the kernel drops the call), then attached
    again: the calls shown are the program's own, in order, from every second it ran;
    the time stepped aside is reported."""
    exe = build("slogprog", "1.27.3")
    calls, truth, tail, err = _run(exe, tmp_path, "--rate", "20", n=9000,
                                   extra="-rate 21000")  # ~3 s, 3,000 calls/s per site
    assert len(truth) == 63000
    keys = [tuple(c.get(k) for k in FIELDS) for c in calls]
    want = [tuple(t[k] for k in FIELDS) for t in truth]
    it = iter(want)
    assert all(k in it for k in keys), "each call shown is one the program made, in order"
    seconds = {c["time"][:19] for c in calls}
    assert len(seconds) >= 3, f"the probes came back after each pause: {sorted(seconds)}"
    assert tail["lost"] == 0 and len(calls) <= 20 * 2 * (len(seconds) + 1)
    paused = tail["paused"]
    assert paused and all(v["windows"] >= 2 and v["seconds"] > 1 for v in paused.values())
    assert "stepped aside" in err
    assert len(calls) + tail["rate_limited"] < len(truth)  # the uncounted, by design


def test_ten_thousand_calls_a_second(tmp_path):
    """At 10k calls/s at least 99% arrive, and none is lost without being counted."""
    exe = build("slogprog", "1.27.3")
    calls, truth, tail, _ = _run(exe, tmp_path, "--rate", "0", n=3000, extra="-rate 10000")
    assert len(truth) == 21000
    assert len(calls) + tail["lost"] == len(truth)
    assert len(calls) >= 0.99 * len(truth)
    _same(calls, truth) if len(calls) == len(truth) else None


def test_text_lines(tmp_path):
    exe = build("slogprog", "1.21.13")
    truth = tmp_path / "t.jsonl"
    r = run_lumos("logs", "-c", f"{exe} -n 1 -truth {truth}", timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["TIME", "PID", "GOID", "LEVEL", "STATE", "CALLER", "MESSAGE"]
    t = json.loads(truth.read_text().splitlines()[3])
    line = lines[4].split(None, 6)
    assert line[3:6] == ["DEBUG", "filtered", "main.go:" + t["caller"].rsplit(":", 1)[1]]
    assert line[6] == 'debug attrs attr_int=7 attr_s="v w" i=0'


def test_list_shows_loggers_and_call_sites():
    exe = build("slogprog", "1.23.9", "stripped")
    r = run_lumos("logs", str(exe), "--list")
    assert r.returncode == 0, r.stderr
    src = (build.__globals__["PROGRAMS"] / "slogprog" / "main.go").read_text().splitlines()
    want = {i + 1 for i, line in enumerate(src) if line.startswith("\tc = here(); ")
            or line.startswith("\tc := here(); ")}
    got = {int(x.split()[0].rsplit(":", 1)[1]) for x in r.stdout.splitlines()
           if x.startswith("main.go:")}
    assert got == want
    assert "log/slog.(*Logger).log" in r.stdout


def test_not_a_go_program(calls_bin):
    r = run_lumos("logs", calls_bin, "--list")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1


def test_no_logger(tmp_path):
    exe = build("typedata", "1.19")
    r = run_lumos("logs", "-c", str(exe))
    assert r.returncode == 2 and "no known logger" in r.stderr
    subprocess.run([str(exe)], capture_output=True, check=True)


@pytest.mark.parametrize("variant", ["default", "pie"])
def test_attach_to_a_running_process(variant, tmp_path):
    """-p PID: a process already running (PIE: loaded anywhere) is seen from outside."""
    import time
    exe = build("slogprog", "1.27.3", variant)
    truth = tmp_path / "truth.jsonl"
    proc = subprocess.Popen([str(exe), "-n", "1000000", "-rate", "700", "-truth", str(truth)])
    try:
        time.sleep(0.5)
        r = run_lumos("logs", "-p", str(proc.pid), "-d", "2", "--json", timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert r.returncode == 0, r.stderr
    calls = [json.loads(x) for x in r.stdout.splitlines() if '"msg"' in x]
    want = {json.dumps({k: t[k] for k in FIELDS}, sort_keys=True)
            for t in map(json.loads, truth.read_text().splitlines())}
    assert len(calls) > 100
    for c in calls:
        assert json.dumps({k: c.get(k) for k in FIELDS}, sort_keys=True) in want, c
