"""execsnoop end to end: execs the test makes itself (it knows every argv, PID and errno)
must come back exactly, failures included, filters applied in the kernel."""

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest
from conftest import LUMOS, run_lumos

ARGV = ["/bin/echo", "two words", 'a "quoted" arg', "ünïcödé ✓", "", "tab\there",
        "back\\slash", "x" * 300]
LONG = 7  # ARGV index of an argument longer than 255 bytes: cut only when read at entry


def wait_for_banner(proc):
    line = proc.stderr.readline()
    while line and not line.startswith("Tracing"):
        line = proc.stderr.readline()
    assert line.startswith("Tracing"), f"no banner: {line!r} {proc.stderr.read()}"


def trace(lumos_args, work, children_only=True) -> tuple[list[str], str]:
    """Run `lumos execsnoop ARGS` (for children of this test), do `work`, stop it."""
    only = ["-P", str(os.getpid())] if children_only else []
    with subprocess.Popen([*LUMOS, "execsnoop", *only, *lumos_args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as lum:
        wait_for_banner(lum)
        work()
        lum.send_signal(signal.SIGINT)
        out, err = lum.communicate(timeout=30)
    assert lum.returncode == 0, err
    return out.splitlines(), err


@pytest.fixture
def not_executable(tmp_path):
    path = tmp_path / "script.sh"
    path.write_text("#!/bin/sh\necho never\n")
    path.chmod(0o644)  # root may exec only what has an x bit: EACCES
    return str(path)


def test_every_exec_with_full_argv_pid_and_errno(tmp_path, not_executable):
    made, failed = [], []

    def work():
        for i in range(20):
            p = subprocess.Popen([*ARGV, f"n={i}"], stdout=subprocess.DEVNULL)
            p.wait()
            made.append((p.pid, [*ARGV, f"n={i}"]))
        for path in (str(tmp_path / "missing"), not_executable):
            for _ in range(3):
                with pytest.raises(OSError) as e:
                    subprocess.Popen([path, "an arg", "ü", "y" * 300])
                failed.append(([path, "an arg", "ü", "y" * 255], -e.value.errno))

    lines, _ = trace(["--json"], work)
    events = [json.loads(x) for x in lines]
    assert events[-1] == {"lost": 0}
    execs = [e for e in events[:-1] if e["ret"] == 0]
    fails = [e for e in events[:-1] if e["ret"] != 0]
    # a successful exec: read from the new program's memory, whole
    assert [(e["pid"], e["args"]) for e in execs] == made
    for e in execs:
        assert e["cut"] == [] and not e["more"] and not e["fault"] and e["complete"]
        assert e["filename"] == "/bin/echo" and e["comm"] == "echo"
        assert e["ppid"] == os.getpid() and e["uid"] == 0
        assert e["syscall"] == "execve" and e["tid"] == e["pid"]
    # a failed one: as read from the caller at entry, an argument cut at 255 bytes
    assert [(e["args"], e["ret"]) for e in fails] == failed
    assert all(e["cut"] == [3] and not e["complete"] and e["filename"] == e["args"][0]
               for e in fails)
    assert {e["errno"] for e in fails} == {"ENOENT", "EACCES"}
    assert {e["ret"] for e in fails} == {-2, -13}


def test_quoted_text_splits_back_into_the_arguments():
    def work():
        subprocess.run([*ARGV, "end"], stdout=subprocess.DEVNULL, check=True)

    lines, _ = trace(["-q"], work)
    assert lines[0].split() == ["PCOMM", "PID", "PPID", "RET", "ARGS"]
    (row,) = [x for x in lines[1:] if x.startswith("echo ")]
    comm, pid, ppid, ret, args = row.split(None, 4)
    assert (comm, int(ppid), int(ret)) == ("echo", os.getpid(), 0)
    want = [*ARGV, "end"]
    want[5] = "tab\\there"                           # control characters escaped
    assert shlex.split(args) == want


def test_failed_only_name_filter_and_time_columns(not_executable):
    def work():
        subprocess.run(["/bin/true"], check=True)
        subprocess.run(["/bin/echo", "hi"], stdout=subprocess.DEVNULL, check=True)
        with pytest.raises(PermissionError):
            subprocess.run([not_executable])

    lines, _ = trace(["-x", "-T", "-t"], work)
    assert lines[0].split() == ["TIME", "TIME(s)", "PCOMM", "PID", "PPID", "RET", "ARGS"]
    rows = [x.split() for x in lines[1:]]
    assert [(r[5], r[6]) for r in rows] == [("-13", not_executable)]
    assert len(rows[0][0]) == 8 and rows[0][0].count(":") == 2
    assert 0 <= float(rows[0][1]) < 60

    def work2():
        subprocess.run(["/bin/true"], check=True)
        subprocess.run(["/bin/echo", "hi"], stdout=subprocess.DEVNULL, check=True)

    lines, _ = trace(["-n", "ech"], work2)  # comm at exit: the new program's name
    assert [x.split()[0] for x in lines[1:]] == ["echo"]


def test_max_args_uid_filter_and_uid_column():
    def work():
        subprocess.run(["/bin/echo", *map(str, range(30))], stdout=subprocess.DEVNULL,
                       check=True)
        subprocess.run(["/bin/echo", "as", "nobody"], stdout=subprocess.DEVNULL, check=True,
                       user=65534, group=65534)

    lines, _ = trace(["--max-args", "5", "--json"], work)
    first = json.loads(lines[0])
    assert first["args"] == ["/bin/echo", "0", "1", "2", "3"] and first["more"]

    def huge():  # 20 x 300 bytes: more than the 4096 bytes of arguments kept
        subprocess.run(["/bin/echo", *[f"{i:03d}" * 100 for i in range(20)]],
                       stdout=subprocess.DEVNULL, check=True)

    lines, _ = trace(["--json", "-q"], huge)
    ev = json.loads(lines[0])
    assert ev["more"] and ev["complete"] and ev["cut"] == [len(ev["args"]) - 1]
    assert "".join(a + "\0" for a in ev["args"]).encode()[:-1] == (
        "\0".join(["/bin/echo", *[f"{i:03d}" * 100 for i in range(20)]]).encode()[:4096])
    lines, _ = trace(["-u", "nobody", "-U"], work)
    assert lines[0].split()[0] == "UID"
    assert [x.split()[0] for x in lines[1:]] == ["65534"]
    assert lines[1].endswith("/bin/echo as nobody")


def test_exec_from_a_thread_keeps_its_argv():
    """de_thread(): the exec'ing thread takes the process id, the entry follows it."""
    code = ("import os, sys, threading\n"
            "def go():\n"
            "    print(os.getpid(), threading.get_native_id(), flush=True)\n"
            "    os.execv('/bin/echo', ['/bin/echo', 'from', 'a thread'])\n"
            "threading.Thread(target=go).start()\n"
            "threading.Event().wait()\n")
    seen = []

    def work():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=20).stdout.splitlines()
        seen.extend(map(int, out[0].split()))
        assert out[1] == "from a thread"

    lines, _ = trace(["--json"], work)
    events = [json.loads(x) for x in lines[:-1]]
    pid, tid = seen
    assert pid != tid
    (ev,) = [e for e in events if e["comm"] == "echo"]
    assert (ev["pid"], ev["tid"], ev["ret"], ev["args"]) == (pid, tid, 0,
                                                              ["/bin/echo", "from", "a thread"])


@pytest.mark.parametrize("argv, message", [
    (["--max-args", "0"], "--max-args must be between 1 and 64"),
    (["-n", "a-name-longer-than-15"], "a process name is 1 to 15 bytes"),
    (["-u", "no-such-user-here"], "is not a UID or a user name"),
    (["-d", "0"], "-d must be a positive number of seconds"),
])
def test_bad_input_is_one_line_exit_2(argv, message):
    r = run_lumos("execsnoop", *argv)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_arguments_the_caller_never_touched_are_read_after_the_exec():
    """A forked child of a static binary has not mapped its .rodata yet: its argv strings
    read as nothing at sys_enter_execve (BCC and bpftrace print empty arguments here),
    lumos reads them again from the new program's stack."""
    from support.programs import build_c
    loops = build_c("loops", ("-O2", "-static"))

    def work():
        subprocess.run([loops, "exec", "5", mark], check=True, capture_output=True)

    mark = f"mark-ünï-{os.getpid()}"
    lines, _ = trace(["--json", "-l", mark], work, children_only=False)
    events = [json.loads(x) for x in lines[:-1]]
    children = [e for e in events if e["comm"] == "true"]
    assert len(children) == 5
    for e in children:
        assert (e["filename"], e["args"], e["complete"]) == (
            "/bin/true", ["/bin/true", mark, "arg two"], True)


def test_execveat_is_seen_too():
    """fexecve(3) is execveat(fd, "", argv, envp, AT_EMPTY_PATH)."""
    code = ("import os\nfd = os.open('/bin/echo', os.O_RDONLY)\n"
            "os.execve(fd, ['echo', 'via', 'fexecve'], {})\n")

    def work():
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

    lines, _ = trace(["--json"], work)
    (ev,) = [json.loads(x) for x in lines[:-1] if '"comm":"echo"' in x]
    assert (ev["syscall"], ev["ret"], ev["args"]) == ("execveat", 0, ["echo", "via", "fexecve"])
    assert ev["filename"].startswith("/dev/fd/")  # the kernel's name for an exec by fd
