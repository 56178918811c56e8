"""funccount end to end: real programs, counts equal what the programs say they did."""

import json
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import LUMOS, require, run_lumos
from support.gobuild import build
from support.lumosproc import text_byte
from support.programs import ROOT

from lumos.binary.elf import open_elf
from lumos.bpf.tracefs import probe_events_left


def table(stdout: str) -> dict[str, int]:
    rows = {}
    for line in stdout.splitlines()[1:]:
        name, count = line.rsplit(None, 1)
        rows[name.strip()] = int(count)
    return rows


@pytest.fixture(scope="module")
def gohot():
    return str(build(ROOT / "tests" / "programs" / "gohot"))


@pytest.mark.parametrize("mode", [[], ["--per-site"]], ids=["uprobe_multi", "per-site"])
def test_exact_counts_on_c_program(calls_bin, mode):
    require("uprobe_multi")
    r = run_lumos("funccount", *mode, "-c", f"{calls_bin} 12345", "f", "g")
    assert r.returncode == 0, r.stderr
    truth = dict(kv.split("=") for kv in r.stdout.splitlines()[0].split())
    assert table("\n".join(r.stdout.splitlines()[1:])) == {"f": int(truth["f"]),
                                                           "g": int(truth["g"])}


def test_exact_counts_on_go_program_two_goroutines(gohot):
    r = run_lumos("funccount", "-c", f"{gohot} -n 150000 -g 2", "main.hot")
    assert r.returncode == 0, r.stderr
    made = int(re.search(r"hot=(\d+)", r.stdout).group(1))
    assert made == 300000
    assert table(r.stdout.split("\n", 1)[1])["main.hot"] == made


def test_binary_target_counts_every_process(calls_bin, tmp_path):
    import shutil
    calls_bin = shutil.copy(calls_bin, tmp_path / "calls")  # no other test runs this inode
    with subprocess.Popen([*LUMOS, "funccount", calls_bin, "f", "-d", "3"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as lum:
        wait_for_banner(lum)
        for n in (100, 250):
            subprocess.run([calls_bin, str(n)], check=True, capture_output=True)
        out, err = lum.communicate(timeout=30)
    assert table(out) == {"f": 350}


def wait_for_banner(proc, timeout=20.0):
    """Read stderr until the 'Tracing ...' banner: probes are attached then."""
    line = proc.stderr.readline()
    while line and not line.startswith("Tracing"):
        line = proc.stderr.readline()
    assert line.startswith("Tracing"), f"no banner; stderr: {line}"


def test_pid_target_on_goserver_matches_its_log(goserver):
    proc, port, log = goserver
    with subprocess.Popen([*LUMOS, "funccount", "-p", str(proc.pid), "main.*"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as lum:
        wait_for_banner(lum)
        before = log.read_text().count("prepareAnswer")
        for i in range(7):
            subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/?name=n{i}&year=20{i:02d}"],
                           check=True, capture_output=True)
        lum.send_signal(signal.SIGINT)
        out, err = lum.communicate(timeout=30)
    logged = log.read_text().count("prepareAnswer") - before
    counts = table(out)
    assert logged == 7
    assert counts["main.prepareAnswer"] == logged
    assert counts["main.handler"] == logged
    assert counts["main.checkSite"] == logged


def test_tracepoint_counts_openat_of_one_process(opens_bin):
    require("tracepoints")
    r = run_lumos("funccount", "-c", f"{opens_bin} 37 /dev/null",
                  "t:syscalls:sys_enter_openat")
    assert r.returncode == 0, r.stderr
    assert "openat=37" in r.stdout
    assert table(r.stdout.split("\n", 1)[1]) == {"syscalls:sys_enter_openat": 37}


def test_json_and_interval(calls_bin):
    r = run_lumos("funccount", "--json", "-c", f"{calls_bin} 1000", "f")
    rows = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert [(x["func"], x["count"]) for x in rows] == [("f", 1000)]
    r = run_lumos("funccount", "-i", "0.3", "-d", "1", "-c", "sleep 0.5", "f")
    assert r.returncode == 2 and "matches no function" in r.stderr  # sleep has no f


def test_duration_stops_the_tool(calls_bin):
    t0 = time.monotonic()
    r = run_lumos("funccount", calls_bin, "f", "-d", "0.5")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/bin", "f"], "/nonexistent/bin: no such file"),
    (["/etc/passwd", "f"], "not an ELF file"),
    (["CALLS", "nothing_like_it*"], "matches no function"),
    (["CALLS", "ff"], "did you mean: f"),
    (["-p", "999999", "f"], "PID 999999 is not running"),
    (["-p", "1", "-c", "true", "f"], "-p and -c cannot be combined"),
    (["k:vfs_read"], "kprobes is not supported by this kernel"),
    (["t:nonsense:nothing*"], "matches nothing"),
    (["-c", "/no/such/cmd", "f"], "command not found"),
    (["CALLS", "f", "-d", "-1"], "-d must be a positive"),
])
def test_bad_input_is_one_line_and_exit_2(calls_bin, args, message):
    args = [calls_bin if a == "CALLS" else a for a in args]
    r = run_lumos("funccount", *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_not_root_is_a_clear_error(calls_bin):
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "--inh-caps=-all", *LUMOS, "funccount", calls_bin, "f"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HOME": "/tmp"})
    assert r.returncode == 2, r.stderr
    assert "missing CAP_BPF, CAP_PERFMON" in r.stderr
    assert "Traceback" not in r.stderr


def rate(proc) -> float:
    line = proc.stdout.readline()
    return float(line.split("=")[1])


def test_sigkill_leaves_nothing_behind_and_full_speed(gohot):
    hot = subprocess.Popen([gohot, "-forever"], stdout=subprocess.PIPE, text=True)
    try:
        with open_elf(gohot) as elf:
            addr = next(s.addr for s in elf.functions if s.name == "main.hot")
            original = elf.read_vaddr(addr, 1)[0]
        rate(hot)
        baseline = max(rate(hot), rate(hot))
        lum = subprocess.Popen([*LUMOS, "funccount", "-p", str(hot.pid), "main.hot"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_banner(lum)
        rate(hot)
        traced = rate(hot)
        probed_bytes = {text_byte(hot.pid, gohot, addr + i) for i in range(0, 24)}
        lum.kill()
        lum.wait()
        rate(hot)
        after = max(rate(hot), rate(hot))
        assert 0xCC in probed_bytes  # a breakpoint was in the function while traced
        assert traced < baseline / 3  # and it cost: proof the probe was live
        for i in range(24):
            with open_elf(gohot) as elf:
                assert text_byte(hot.pid, gohot, addr + i) == elf.read_vaddr(addr + i, 1)[0]
        assert text_byte(hot.pid, gohot, addr) == original
        assert after > baseline * 0.6, (baseline, traced, after)
        assert probe_events_left() == []
        assert hot.poll() is None  # the traced program still runs
    finally:
        hot.kill()
        hot.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_prints_summary_and_detaches(gohot, sig):
    hot = subprocess.Popen([gohot, "-forever"], stdout=subprocess.PIPE, text=True)
    try:
        with open_elf(gohot) as elf:
            addr = next(s.addr for s in elf.functions if s.name == "main.hot")
        lum = subprocess.Popen([*LUMOS, "funccount", "-p", str(hot.pid), "main.hot"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_banner(lum)
        time.sleep(0.5)
        lum.send_signal(sig)
        out, err = lum.communicate(timeout=30)
        assert lum.returncode == 0, err
        assert table(out)["main.hot"] > 0
        with open_elf(gohot) as elf:
            for i in range(24):
                assert text_byte(hot.pid, gohot, addr + i) == elf.read_vaddr(addr + i, 1)[0]
        assert hot.poll() is None
    finally:
        hot.kill()
        hot.wait()
