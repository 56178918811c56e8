"""Faults: lumos killed mid-trace, two lumos on the same functions, stdout closed early,
the target exiting, a target in another mount namespace, ring buffer overflow per streaming
tool. Ground truth: the Go programs print their own call counts."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from conftest import LUMOS, build_c, run_lumos
from support.gobuild import build
from support.lumosproc import cpu_s, text_byte, wait_for_banner
from support.programs import ROOT

from lumos.binary.elf import open_elf
from lumos.bpf.tracefs import probe_events_left


@pytest.fixture(scope="module")
def gohot():
    return str(build(ROOT / "tests" / "programs" / "gohot"))


def cpu_per_call(hot, lines: int) -> float:
    """CPU seconds per main.hot call over the next `lines` rate lines of `gohot -forever`
    (CPU time is steadier than wall time on a shared machine)."""
    hot.stdout.readline()
    c0, t0, calls = cpu_s(hot.pid), time.monotonic(), 0.0
    for _ in range(lines):
        rate = float(hot.stdout.readline().split("=")[1])
        t1 = time.monotonic()
        calls += rate * (t1 - t0)
        t0 = t1
    return (cpu_s(hot.pid) - c0) / calls


TOOLS = {"trace": ["trace", "--ret"], "latency": ["latency"], "flow": ["flow"]}


@pytest.mark.parametrize("tool", TOOLS)
def test_sigkill_leaves_nothing_behind_and_full_speed(gohot, tool):
    hot = subprocess.Popen([gohot, "-forever"], stdout=subprocess.PIPE, text=True)
    try:
        with open_elf(gohot) as elf:
            addr = next(s.addr for s in elf.functions if s.name == "main.hot")
            text = elf.read_vaddr(addr, 64)
        before = cpu_per_call(hot, 2)
        lum = subprocess.Popen([*LUMOS, *TOOLS[tool], "-p", str(hot.pid), "main.hot"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for_banner(lum)
        traced = cpu_per_call(hot, 2)
        probed = bytes(text_byte(hot.pid, gohot, addr + i) for i in range(64))
        lum.kill()
        lum.wait()
        after = cpu_per_call(hot, 2)
        assert 0xCC in probed and probed != text  # breakpoints were in while traced
        assert traced > 2 * before, (before, traced)  # and cost: proof they were live
        assert bytes(text_byte(hot.pid, gohot, addr + i) for i in range(64)) == text
        assert probe_events_left() == []
        assert after < 1.5 * before, (before, traced, after)  # back to full speed
        assert hot.poll() is None
    finally:
        hot.kill()
        hot.wait()


def test_two_instances_on_the_same_functions_both_exact(gohot, tmp_path):
    binary = shutil.copy(gohot, tmp_path / "gohot")  # no other test runs this inode
    lums = [subprocess.Popen([*LUMOS, tool, "--json", binary, "main.hot", "main.inc"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for tool in ("latency", "funccount")]
    try:
        for lum in lums:
            wait_for_banner(lum)
        r = subprocess.run([binary, "-n", "150000", "-g", "2"], capture_output=True,
                           text=True, check=True)
        assert "hot=300000" in r.stdout
        for lum in lums:
            lum.send_signal(signal.SIGINT)
        outs = [lum.communicate(timeout=60) for lum in lums]
    finally:
        for lum in lums:
            if lum.poll() is None:
                lum.kill()
    for (out, err), lum in zip(outs, lums, strict=True):
        assert lum.returncode == 0, err
        counts = {row["func"]: row["count"] for row in map(json.loads, out.splitlines())
                  if "func" in row}
        assert counts == {"main.hot": 300000, "main.inc": 300000}, (counts, err)


@pytest.mark.parametrize("tool", ["trace", "flow"])
def test_stdout_closed_early_detaches_cleanly(gohot, tool):
    hot = subprocess.Popen([gohot, "-forever"], stdout=subprocess.DEVNULL)
    try:
        lum = subprocess.Popen([*LUMOS, tool, "-p", str(hot.pid), "main.hot"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        head = subprocess.Popen(["head", "-1"], stdin=lum.stdout, stdout=subprocess.PIPE)
        lum.stdout.close()  # only head holds the pipe now, as in a shell pipeline
        first = head.communicate(timeout=60)[0]
        t0 = time.monotonic()
        err = lum.communicate(timeout=30)[1].decode()
        assert time.monotonic() - t0 < 10, "lumos did not notice its reader was gone"
        assert first.strip(), "nothing printed"
        assert lum.returncode in (0, 141, -signal.SIGPIPE), (lum.returncode, err)
        assert "Traceback" not in err and "BrokenPipe" not in err, err
        assert probe_events_left() == []
        with open_elf(gohot) as elf:
            addr = next(s.addr for s in elf.functions if s.name == "main.hot")
            for i in range(64):
                assert text_byte(hot.pid, gohot, addr + i) == elf.read_vaddr(addr + i, 1)[0]
        assert hot.poll() is None
    finally:
        hot.kill()
        hot.wait()


@pytest.mark.parametrize("tool", ["funccount", "trace"])
def test_ctrl_c_the_moment_the_banner_shows(gohot, tool):
    """Ctrl-C as soon as 'Tracing ...' appears (before the tool's loop has started) is a
    stop like any other: the summary, exit 0, no KeyboardInterrupt, nothing attached.
    Started as a shell's background job would be: SIGINT ignored until lumos takes it."""
    hot = subprocess.Popen([gohot, "-forever"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(5):
            lum = subprocess.Popen([*LUMOS, tool, "-p", str(hot.pid), "main.hot"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                    signal.SIG_IGN))
            wait_for_banner(lum)
            lum.send_signal(signal.SIGINT)
            out, err = lum.communicate(timeout=30)
            assert lum.returncode == 0 and "Traceback" not in err, err
            assert probe_events_left() == []
    finally:
        hot.kill()
        hot.wait()


def test_target_exit_is_noticed_and_reported(gohot):
    hot = subprocess.Popen([gohot, "-forever"], stdout=subprocess.DEVNULL)
    lum = subprocess.Popen([*LUMOS, "latency", "-p", str(hot.pid), "main.hot"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_banner(lum)
    time.sleep(1)
    hot.kill()
    hot.wait()
    out, err = lum.communicate(timeout=30)
    assert lum.returncode == 0, err
    assert f"lumos: PID {hot.pid} exited" in err
    assert "count:" in out  # the summary of what was seen
    assert "Traceback" not in err


def test_binary_target_follows_restarts(gohot, tmp_path):
    binary = shutil.copy(gohot, tmp_path / "gohot")
    lum = subprocess.Popen([*LUMOS, "funccount", "--json", binary, "main.hot"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_banner(lum)
    for n in (1000, 2500, 4000):  # the program exits and is started again
        subprocess.run([binary, "-n", str(n)], check=True, capture_output=True)
    lum.send_signal(signal.SIGINT)
    out, err = lum.communicate(timeout=30)
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert [(r["func"], r["count"]) for r in rows if "func" in r] == [("main.hot", 7500)], err


def test_target_in_another_mount_namespace(gohot, tmp_path):
    """The program runs from a tmpfs mounted in its own mount namespace, chrooted: its
    /proc/PID/exe path names nothing in ours."""
    root = tmp_path / "root"
    root.mkdir()
    inside = (f"mount -t tmpfs none {root} && cp {gohot} {root}/gohot "  # static: enough
              f"&& exec chroot {root} /gohot -forever")
    hot = subprocess.Popen(["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                            inside], stdout=subprocess.PIPE, text=True)
    try:
        hot.stdout.readline()
        assert not os.path.exists(os.readlink(f"/proc/{hot.pid}/exe"))  # not visible here
        r = run_lumos("funccount", "-p", str(hot.pid), "main.hot", "-d", "2")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        count = int(r.stdout.splitlines()[1].split()[-1])
        assert count > 0, r.stdout
    finally:
        hot.kill()
        hot.wait()


def streamer() -> str:
    return str(build(ROOT / "tests" / "programs" / "go" / "streamer"))


@pytest.mark.parametrize("tool", ["trace", "flow"])
def test_ring_overflow_counted_and_the_tool_keeps_going(tool):
    r = run_lumos(tool, "--json", "--ring-mb", "1", "-c", f"{streamer()} -d 3 -g 2",
                  "main.emit", timeout=120)
    assert r.returncode == 0, r.stderr
    calls = int(next(ln for ln in r.stderr.splitlines() if ln.startswith("calls="))[6:])
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    lost = rows[-1]["lost"]
    events = rows[:-1]
    per_call = 2 if tool == "flow" else 1  # flow: an entry and a return line
    assert lost > 0, "2 goroutines flat out into a 1 MiB ring: expected losses"
    assert f"lumos: {lost} events lost" in r.stderr
    assert len(events) + lost == per_call * calls, (len(events), lost, calls)
    assert events[-1]["time"] - events[0]["time"] > 2  # it kept going to the end


def test_binary_rebuilt_in_place_while_traced(gohot, tmp_path):
    """A new build moved over the traced path (a new inode, as `go build -o` and `cp` to
    a temporary then rename do): lumos keeps counting the old file, says the path now
    names another file, does not crash."""
    binary = tmp_path / "gohot"
    shutil.copy(gohot, binary)
    lum = subprocess.Popen([*LUMOS, "funccount", "--json", str(binary), "main.hot"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_banner(lum)
    old = subprocess.Popen([binary, "-forever"], stdout=subprocess.PIPE, text=True)
    try:
        old.stdout.readline()
        shutil.copy(gohot, tmp_path / "gohot.new")
        os.replace(tmp_path / "gohot.new", binary)
        subprocess.run([binary, "-n", "5000"], check=True, capture_output=True)  # new inode
        time.sleep(0.5)
        lum.send_signal(signal.SIGINT)
        out, err = lum.communicate(timeout=30)
    finally:
        old.kill()
        old.wait()
    assert lum.returncode == 0, err
    assert "Traceback" not in err
    assert f"lumos: {binary} was replaced on disk: the probes stay on the old file" in err
    counts = {r["func"]: r["count"] for r in map(json.loads, out.splitlines()) if "func" in r}
    assert counts["main.hot"] > 10000  # the old process, still traced


@pytest.fixture(scope="module")
def other_binary():
    """A different program to write over gohot: main.hot sits elsewhere in it."""
    return str(build("goexec"))


@pytest.mark.parametrize("how", ["cp", "dd"])
def test_binary_modified_in_place_while_traced_detaches(gohot, other_binary, how, tmp_path):
    """The same inode gets new content (possible while nothing runs it; a running binary
    is ETXTBSY): probes at the old offsets would land anywhere in the new code, so lumos
    detaches at once, says why, and a process started from the new content runs clean."""
    binary = tmp_path / "gohot"
    shutil.copy(gohot, binary)
    inode = os.stat(binary).st_ino
    lum = subprocess.Popen([*LUMOS, "funccount", "--json", str(binary), "main.hot"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_banner(lum)
    assert "hot=1000" in subprocess.run([binary, "-n", "1000"], capture_output=True,
                                        text=True, check=True).stdout
    if how == "cp":  # cp truncates and writes the same inode
        subprocess.run(["cp", other_binary, str(binary)], check=True)
    else:  # same size, 4 KiB of the text rewritten with the other program's bytes
        with open(other_binary, "rb") as f:
            f.seek(0x2000)
            patch = f.read(4096)
        subprocess.run(["dd", f"of={binary}", "conv=notrunc", "bs=4096", "seek=2",
                        "status=none"], input=patch, check=True)
    assert os.stat(binary).st_ino == inode
    out, err = lum.communicate(timeout=30)  # it stops by itself
    assert lum.returncode == 0, err
    assert "Traceback" not in err
    assert f"lumos: {binary} was modified in place: lumos detached" in err, err
    counts = {r["func"]: r["count"] for r in map(json.loads, out.splitlines()) if "func" in r}
    assert counts == {"main.hot": 1000}, (counts, err)
    if how == "cp":
        r = subprocess.run([binary, "-n", "5000"], capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stderr) == (0, "hot=5000\n")  # no stale breakpoint hit


def test_binary_modified_between_analysis_and_attach_is_refused(gohot, other_binary,
                                                                tmp_path):
    from lumos.api import Tracer
    from lumos.errors import TargetError
    binary = str(tmp_path / "gohot")
    shutil.copy(gohot, binary)
    with Tracer(binary) as t:
        assert [f.name for f in t.functions("main.hot")] == ["main.hot"]  # analysed
        subprocess.run(["cp", other_binary, binary], check=True)
        with pytest.raises(TargetError, match=f"^{binary} was modified on disk after lumos "
                           f"read it: its probe offsets would be stale"):
            t.latency("main.hot")


def test_goroutines_ring_overflow_counted_and_the_tool_keeps_going():
    """50,000 goroutines started flat out into a 1 MiB ring. A goroutine is three records
    (newproc1's entry and return make its create line, goexit1 its exit line): records
    shown + creations left half-shown + lost = what the program made, and main.last,
    started after the flood, is shown."""
    n = 50000
    exe = str(build("spawner"))
    r = run_lumos("goroutines", "--json", "--ring-mb", "1", "-c", f"{exe} -n {n}",
                  timeout=120, env={**os.environ, "GOGC": "off"})  # no GC workers mid-flood
    assert r.returncode == 0, r.stderr
    assert f"goroutines={n}" in r.stderr
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    lost = rows[-1]["lost"]
    unpaired = next((x["unpaired"] for x in rows if "unpaired" in x), 0)
    ours = [x for x in rows if "event" in x and (x.get("start") or "main.").startswith("main.")]
    creates = sum(x["event"] == "create" for x in ours)
    exits = sum(x["event"] == "exit" for x in ours)  # those whose create was lost: no start
    assert lost > 0, "a goroutine flood into a 1 MiB ring: expected losses"
    assert f"lumos: {lost} events lost" in r.stderr
    assert 2 * creates + exits + unpaired + lost == 3 * (n + 1), (creates, exits, unpaired,
                                                                   lost)
    assert [x["event"] for x in ours if x.get("start") == "main.last"] == ["create", "exit"]


def test_execsnoop_ring_overflow_counted_and_the_tool_keeps_going(tmp_path):
    """100,000 failing execve() calls (ENOENT: as fast as one process can make them) into
    a 1 MiB ring of 4.6 KiB records, then an exec in place: shown + lost = made, and
    the last exec is shown."""
    n = 100000
    loop = build_c("execloop")
    out = tmp_path / "out"  # a file: a pipe nobody reads until the end would stall lumos
    with open(out, "w") as outf, subprocess.Popen(
            [*LUMOS, "execsnoop", "--json", "--ring-mb", "1", "-P", str(os.getpid())],
            stdout=outf, stderr=subprocess.PIPE, text=True) as lum:
        wait_for_banner(lum)
        made = subprocess.run([loop, str(n), "/bin/true"], capture_output=True, text=True,
                              timeout=60)
        time.sleep(0.5)  # the last exec's event is read
        lum.send_signal(signal.SIGINT)
        err = lum.communicate(timeout=30)[1]
    assert lum.returncode == 0, err
    assert (made.returncode, made.stderr) == (0, f"execs={n}\n")
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    lost = rows[-1]["lost"]
    # the filename reads as "" where its page was not touched yet (probes/execsnoop.py)
    failed = [x for x in rows if x.get("ret") == -2]
    assert {x["filename"] for x in failed} <= {"/nonexistent/lumos-execloop", ""}
    assert lost > 0, "100,000 execs into a 1 MiB ring: expected losses"
    assert f"lumos: {lost} events lost" in err
    assert len(failed) + lost == n, (len(failed), lost)
    assert [x["ret"] for x in rows if x.get("filename") == "/bin/true"] == [0]
