"""Safety rule: lumos never writes into a traced process's memory, except the USDT
semaphores it sets while attached and clears after.

Every writable mapping of the target is read byte for byte through /proc/PID/mem before
lumos attaches, while it is attached (after its banner) and after it has gone, and the
three must be equal. The target is held still for the whole run: the Go server is
SIGSTOP'd (its runtime writes memory on its own when running; attaching needs nothing
from the target), the C program blocks in read() on a pipe. Text mappings are checked
too: while probes are in, the only differences from the file are the kernel's int3
(0xcc) bytes, and after detach the text equals the file again.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from conftest import LUMOS
from support.programs import build_c

SKIP = ("[vvar]", "[vvar_vclock]", "[vsyscall]")


def _mappings(pid: int) -> list[tuple[int, int, str, int, str]]:
    """(start, end, perms, file offset, path) of every mapping."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, parts[1], int(parts[2], 16),
                        parts[5].strip() if len(parts) > 5 else ""))
    return out


def _snapshot(pid: int) -> dict[tuple[int, int, str], bytes]:
    """Bytes of every writable and every executable mapping, keyed by (start, end, perms)."""
    snap = {}
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end, perms, _, path in _mappings(pid):
            if path in SKIP or not ("w" in perms or "x" in perms) or "r" not in perms:
                continue
            mem.seek(start)
            snap[(start, end, perms)] = mem.read(end - start)
    return snap


def _writable(snap):
    return {k: v for k, v in snap.items() if "w" in k[2]}


def _diff(a: bytes, b: bytes) -> list[int]:
    if a == b:
        return []
    return [i for i in range(min(len(a), len(b))) if a[i] != b[i]]


def _text_from_file(pid: int) -> dict[tuple[int, int, str], bytes]:
    """What each file-backed executable mapping holds in its file."""
    out = {}
    for start, end, perms, off, path in _mappings(pid):
        if "x" in perms and path.startswith("/") and os.path.exists(path):
            with open(path, "rb") as f:
                f.seek(off)
                data = f.read(end - start)
            out[(start, end, perms)] = data
    return out


def _traced_run(pid: int, argv: list[str]) -> tuple[dict, dict, str]:
    """(memory while attached, memory after, lumos's stderr) for one lumos run on pid."""
    tracer = subprocess.Popen([*LUMOS, *argv], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        banner = tracer.stderr.readline()
        assert "Tracing" in banner or "attached" in banner.lower(), (
            argv, banner + tracer.stderr.read())
        during = _snapshot(pid)
        tracer.send_signal(signal.SIGINT)
        rest = tracer.stderr.read()
        assert tracer.wait(timeout=60) in (0, 130), (argv, banner + rest)
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
    return during, _snapshot(pid), banner + rest


def _check_text(pid: int, during: dict, after: dict, before: dict) -> int:
    """While attached, text differs from before only in int3 bytes; after, it is the file.
    Returns how many int3s were seen while attached."""
    int3 = 0
    for key, data in before.items():
        if "x" not in key[2]:
            continue
        for i in _diff(data, during[key]):
            assert during[key][i] == 0xCC, (hex(key[0] + i), data[i], during[key][i])
            int3 += 1
        assert after[key] == data, f"text at {key[0]:#x} changed after detach"
    for key, data in _text_from_file(pid).items():
        assert after[key][:len(data)] == data, f"text at {key[0]:#x} is not its file"
    return int3


GO_RUNS = [
    ["trace", "-p", "{pid}", "main.*"],
    ["latency", "-p", "{pid}", "main.prepareAnswer", "--by", "name"],
    ["flow", "-p", "{pid}", "main.*"],
    ["goroutines", "-p", "{pid}"],
    ["logs", "-p", "{pid}"],
    ["http", "-p", "{pid}"],
    ["stacks", "-p", "{pid}", "main.prepareAnswer"],
    ["funccount", "-p", "{pid}", "main.*", "net/http.*"],
]


@pytest.fixture(scope="module")
def stopped_goserver(goserver):
    proc = goserver[0]
    os.kill(proc.pid, signal.SIGSTOP)
    yield proc.pid
    os.kill(proc.pid, signal.SIGCONT)


@pytest.mark.parametrize("argv", GO_RUNS, ids=[r[0] for r in GO_RUNS])
def test_go_target_memory_is_untouched(stopped_goserver, argv):
    pid = stopped_goserver
    before = _snapshot(pid)
    assert sum(len(v) for v in _writable(before).values()) > 1 << 20  # heap, data, stacks
    during, after, err = _traced_run(pid, [a.format(pid=pid) for a in argv])
    for key, data in _writable(before).items():
        assert during[key] == data, (argv, f"{key[0]:#x}", _diff(data, during[key])[:8])
        assert after[key] == data, (argv, f"{key[0]:#x}", _diff(data, after[key])[:8])
    int3 = _check_text(pid, during, after, before)
    print(f"{argv[0]}: {sum(map(len, _writable(before).values()))} writable bytes equal, "
          f"{int3} int3 seen while attached")
    assert int3 > 0, (argv, err)  # probes were really in while we read


def _semaphores(exe: str, pid: int) -> dict[str, int]:
    """Run-time addresses of the program's two semaphores (nm + the PIE load base)."""
    nm = subprocess.run(["nm", exe], capture_output=True, text=True, check=True).stdout
    syms = {p[2]: int(p[0], 16) for p in (x.split() for x in nm.splitlines()) if len(p) == 3}
    base = min(s for s, _, _, _, path in _mappings(pid) if path == os.path.realpath(exe))
    return {n: base + syms[f"lumos_{n}_semaphore"] for n in ("tick", "words")}


@pytest.mark.parametrize("how", ["kernel", "mem"])
def test_usdt_target_only_semaphores_change_and_come_back(how):
    exe = build_c("usdt")
    prog = subprocess.Popen([exe, "4", "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert prog.stdout.readline() == "ready\n"  # now blocked in read() on the pipe
        pid = prog.pid
        sems = _semaphores(exe, pid)
        before = _snapshot(pid)
        during, after, err = _traced_run(
            pid, ["trace", "-p", str(pid), "usdt:lumos:*", "--semaphores", how])
        changed = {}
        for key, data in _writable(before).items():
            for i in _diff(data, during[key]):
                changed[key[0] + i] = (data[i], during[key][i])
            assert after[key] == data, (how, f"{key[0]:#x}", _diff(data, after[key])[:8])
        # each semaphore is a little-endian u16 that went 0 -> 1: only its low byte moves
        assert changed == {sems["tick"]: (0, 1), sems["words"]: (0, 1)}, (changed, sems, err)
        assert _check_text(pid, during, after, before) >= 6  # six probe sites, int3 each
        prog.stdin.write("go\nend\n")
        prog.stdin.flush()
        lines = prog.stdout.read().splitlines()
        assert lines[-1] == "sem 0 0" and "untraced 3" in lines  # cleared: probes quiet
    finally:
        prog.kill()
        prog.wait()
