"""faults and swapin end to end: tests/programs/c/memtouch touches known pages and prints
what getrusage(2) and /proc/vmstat counted meanwhile; lumos must count the same for it.

The swap test makes swap space for real (tests/support/swap.py: a swap file, else zram,
else a loop device) and a cgroup whose memory limit pushes the program's pages out."""

import json
import re
import signal
import subprocess

import pytest
from conftest import LUMOS, run_lumos
from support.programs import build_c
from support.swap import memory_cgroup, swap_space

RESULT = re.compile(r"pages=(\d+) minflt=(\d+) majflt=(\d+) swapins=(\d+) pswpin=(\d+)")


@pytest.fixture(scope="module")
def memtouch():
    return build_c("memtouch", ("-O2", "-static"))


def start(argv):
    """Start lumos tools; returns them once each has attached (printed its banner)."""
    procs = [subprocess.Popen([*LUMOS, *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for a in argv]
    for p in procs:
        line = p.stderr.readline()
        assert line.startswith("Tracing"), line + p.stderr.read()
    return procs


def stop(procs) -> list[str]:
    outs = []
    for p in procs:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


def paced(prog, lumos_argv) -> tuple[dict, list[str]]:
    """prog is ready: attach the tools, let it touch its pages, stop them, let it exit."""
    tools = start([[a.replace("PID", str(prog.pid)) for a in argv] for argv in lumos_argv])
    prog.stdin.write("go\n")
    prog.stdin.flush()
    m = RESULT.search(prog.stdout.readline())
    outs = stop(tools)
    prog.communicate("done\n", timeout=30)
    assert m, "memtouch printed no result"
    return dict(zip(("pages", "minflt", "majflt", "swapins", "pswpin"),
                    map(int, m.groups()), strict=True)), outs


def rows(text: str) -> dict[int, list[int]]:
    """pid -> counts, from a BCC-style COMM PID COUNT... table (all intervals summed)."""
    out: dict[int, list[int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].isdigit():
            counts = [int(x) for x in parts[2:]]
            prev = out.get(int(parts[1]), [0] * len(counts))
            out[int(parts[1])] = [a + b for a, b in zip(prev, counts, strict=True)]
    return out


def test_minor_faults_of_fresh_pages_equal_getrusage(memtouch):
    prog = subprocess.Popen([memtouch, "5000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert prog.stdout.readline().startswith("ready")
    truth, (everyone, only) = paced(prog, [["faults", "--json"],
                                           ["faults", "-p", "PID", "-T"]])
    assert truth["minflt"] == 5000 and truth["majflt"] == 0   # one fault per fresh page
    per_pid = {}
    for line in everyone.splitlines():
        e = json.loads(line)
        per_pid[e["pid"]] = (per_pid.get(e["pid"], (0, 0))[0] + e["minor"],
                             per_pid.get(e["pid"], (0, 0))[1] + e["major"])
    minor, major = per_pid[prog.pid]
    # lumos also sees the program's own stdin read and printf after its second getrusage
    assert 0 <= minor - truth["minflt"] <= 8 and major == 0, (minor, truth)
    assert only.splitlines()[0].split() == ["COMM", "PID", "MINOR", "MAJOR"]
    assert list(rows(only)) == [prog.pid]
    assert rows(only)[prog.pid] == [minor, major]


def test_swapins_of_a_process_pushed_out_by_its_memory_limit(memtouch, tmp_path):
    with swap_space(tmp_path) as where, memory_cgroup(16 << 20) as procs:
        print(f"swap: {where}")
        # 64 MiB written under a 16 MiB limit: most of it goes to swap before "ready"
        prog = subprocess.Popen(["sh", "-c", f"echo $$ > {procs}; exec {memtouch} -r 16384"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert prog.stdout.readline().startswith("ready")
        truth, (swapins, faults) = paced(prog, [["swapin", "-p", "PID", "-T", "1"],
                                                ["faults", "-p", "PID", "--json"]])
    assert truth["swapins"] > 8000, truth     # it did swap in (most of its 16384 pages)
    # the system's swap-in counters moved by what this process read back, nothing else
    # here swaps; lumos counts it in the process, summed over its 1-second reports
    (count,) = rows(swapins)[prog.pid]
    assert 0 <= count - truth["swapins"] <= max(64, truth["swapins"] // 100), (count, truth)
    events = [json.loads(x) for x in faults.splitlines()]
    minor = sum(e["minor"] for e in events if e["pid"] == prog.pid)
    major = sum(e["major"] for e in events if e["pid"] == prog.pid)
    assert truth["majflt"] > 0
    assert 0 <= major - truth["majflt"] <= 16, (major, truth)
    assert 0 <= minor - truth["minflt"] <= 16, (minor, truth)


@pytest.mark.parametrize("tool", ["faults", "swapin"])
@pytest.mark.parametrize("argv, message", [
    (["-p", "999999999"], "999999999"),
    (["0"], "interval must be a positive number of seconds"),
    (["2", "-1"], "count must be at least 1"),
])
def test_bad_input_is_one_line_exit_2(tool, argv, message):
    r = run_lumos(tool, *argv)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
