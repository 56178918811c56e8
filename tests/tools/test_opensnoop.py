"""opensnoop end to end: tests/programs/c/openmix prints every open it makes and what the
kernel answered; lumos must report exactly those opens, fd or errno, path and flags."""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest
from conftest import LUMOS, run_lumos
from support.programs import build_c

LINE = re.compile(r"call=(\w+) flags=(0[0-7]*) mode=(0[0-7]*) fd=(-?\d+) err=(\d+) path=(.*)")


@pytest.fixture(scope="module")
def openmix():
    return build_c("openmix", ("-O2", "-static"))  # static: no loader opens


@pytest.fixture
def files(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "exists").write_text("x")
    (tmp_path / "fichier ünï").write_text("x")
    deep = tmp_path / ("d" * 200) / ("e" * 200)
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    os.chmod(tmp_path, 0o755)
    return tmp_path


def specs(d) -> list[str]:
    return [f"openat:r:{d}/exists", f"open:r:{d}/missing", f"openat2:r:{d}/fichier ünï",
            f"openat:w:{d}/created", f"openat2:x:{d}/exists", f"open:w:{d}/dir",
            f"openat:d:{d}/exists", f"openat2:d:{d}/dir", "openat:r:/etc/shadow",
            f"openat:r:{d}/{'d' * 200}/{'e' * 200}/f"]


def truth(stdout: str) -> list[tuple]:
    out = []
    for line in stdout.splitlines():
        m = LINE.fullmatch(line)
        if m:
            call, flags, mode, fd, err, path = m.groups()
            out.append((call, int(flags, 8), int(mode, 8), int(fd), int(err), path))
    return out


def reported(events) -> list[tuple]:
    return [(e["syscall"], e["flags"], e["mode"], e["fd"], e["err"], e["path"]) for e in events]


def test_every_open_with_fd_or_errno(openmix, files):
    cmd = f"{openmix} -n 5 " + " ".join(f"'{s}'" for s in specs(files))
    r = run_lumos("opensnoop", "--json", "-c", cmd)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    events = [json.loads(x) for x in lines if x.startswith("{")]
    assert events[-1] == {"lost": 0}
    want = truth(r.stdout)
    assert len(want) == 50
    got = reported(events[:-1])
    long_path = str(files / ("d" * 200) / ("e" * 200) / "f")
    cut = [i for i, e in enumerate(events[:-1]) if e["cut"]]
    # the 400-byte path is cut at 255 bytes (and marked); every other field is exact
    assert cut == [i for i, w in enumerate(want) if w[5] == long_path]
    want = [w if w[5] != long_path else (*w[:5], long_path[:255]) for w in want]
    assert got == want
    errs = {(w[4], w[0]) for w in want if w[3] == -1}
    assert {e for e, _ in errs} >= {2, 17, 20, 21}   # ENOENT EEXIST ENOTDIR EISDIR
    assert {c for _, c in errs} == {"open", "openat", "openat2"}
    comm = os.path.basename(openmix)[:15]  # the kernel's comm: 15 bytes of the name
    assert all(e["comm"] == comm and e["pid"] == events[0]["pid"] for e in events[:-1])


def test_text_failed_only_as_nobody_with_extended_fields(openmix, files):
    cmd = f"{openmix} -u 65534 " + " ".join(f"'{s}'" for s in specs(files))
    r = run_lumos("opensnoop", "-x", "-e", "-U", "-T", "-c", cmd)
    assert r.returncode == 0, r.stderr
    head, *rows = [x for x in r.stdout.splitlines() if not x.startswith("call=")]
    assert head.split() == ["TIME", "UID", "PID", "COMM", "FD", "ERR", "FLAGS", "MODE", "PATH"]
    want = [w for w in truth(r.stdout) if w[3] == -1]
    assert len(rows) == len(want) and any(w[4] == 13 for w in want)  # EACCES as nobody
    for row, (_call, flags, mode, _fd, err, path) in zip(rows, want, strict=True):
        t, uid, pid, comm, rfd, rerr, rflags, rmode, rpath = row.split(None, 8)
        assert (uid, comm, int(rfd), int(rerr), int(rflags, 8)) == (
            "65534", os.path.basename(openmix)[:15], -1, err, flags)
        assert rmode == (f"{mode:04o}" if flags & os.O_CREAT else "n/a")
        assert rpath == (path if len(path) < 256 else path[:255] + "...")


def test_pid_and_name_filters_leave_other_processes_out(openmix, files, tmp_path):
    other = shutil.copy(openmix, tmp_path / "othermix")
    spec = [f"openat:r:{files}/exists", f"open:r:{files}/missing"]

    def run_both(lumos_args, target):
        progs = [subprocess.Popen([b, "-w", "-n", "3", *spec], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for b in (openmix, other)]
        pids = [int(p.stdout.readline().split("=")[1]) for p in progs]
        args = [a.replace("PID", str(pids[target])) for a in lumos_args]
        with subprocess.Popen([*LUMOS, "opensnoop", "--json", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as lum:
            line = lum.stderr.readline()
            assert line.startswith("Tracing"), line + lum.stderr.read()
            outs = [p.communicate("go\n", timeout=20)[0] for p in progs]
            lum.send_signal(signal.SIGINT)
            out, err = lum.communicate(timeout=30)
        events = [json.loads(x) for x in out.splitlines()][:-1]
        return pids, outs, events

    pids, outs, events = run_both(["-p", "PID"], target=1)
    assert {e["pid"] for e in events} == {pids[1]}
    assert reported(events) == truth(outs[1])
    pids, outs, events = run_both(["-n", "openmi"], target=0)
    assert {e["pid"] for e in events} == {pids[0]}
    assert reported(events) == truth(outs[0])


@pytest.mark.parametrize("argv, message", [
    (["-p", "999999999"], "999999999"),
    (["-n", ""], "a process name is 1 to 15 bytes"),
    (["-p", "1", "-c", "true"], "-p and -c cannot be combined"),
    (["--ring-mb", "3"], "--ring-mb must be a power of two"),
])
def test_bad_input_is_one_line_exit_2(argv, message):
    r = run_lumos("opensnoop", *argv)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
