"""Privileges, found by experiment: lumos runs as a non-root uid (nobody) holding only the
capabilities under test (setpriv with ambient capabilities, the bounding set cut to the
same) and either works, with the counts the program itself prints, or names in one line,
exit 2, exactly the capability it lacks. README's "capabilities needed" table is this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import LUMOS
from support.gobuild import build
from support.programs import ROOT, build_c

NOBODY = 65534


def as_nobody(caps: str, *argv: str, timeout: float = 60, wrap: tuple[str, ...] = ()
              ) -> subprocess.CompletedProcess:
    """Run argv as uid/gid nobody with exactly `caps` (e.g. "+bpf,+perfmon" or "")."""
    sets = f"-all,{caps}" if caps else "-all"
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
           f"--inh-caps={sets}", f"--ambient-caps={sets}", f"--bounding-set={sets}", *argv]
    return subprocess.run([*wrap, *cmd], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HOME": "/tmp"}, cwd="/tmp")


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    """The test programs copied where nobody can read them (/root is 0700)."""
    d = tmp_path_factory.mktemp("privs")
    os.chmod(d, 0o755)
    for p in d.parents:
        if str(p).startswith("/tmp/"):
            os.chmod(p, 0o755)
    out = {}
    for name, src in (("calls", build_c("calls")),
                      ("goserver", str(build(ROOT / "examples" / "goserver")))):
        shutil.copy(src, d / name)
        os.chmod(d / name, 0o755)
        out[name] = str(d / name)
    return out


def _start_server(binary: str, as_user: bool) -> subprocess.Popen:
    pre = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] \
        if as_user else []
    proc = subprocess.Popen([*pre, binary, "-addr", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, text=True)
    assert "listening" in proc.stderr.readline()
    return proc


@pytest.fixture(scope="module")
def servers(bins):
    """Two copies of the goserver: one nobody's own, one root's."""
    own, roots = _start_server(bins["goserver"], True), _start_server(bins["goserver"], False)
    yield own.pid, roots.pid
    for p in (own, roots):
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def tracefs():
    from lumos.bpf.tracefs import tracefs_root
    return tracefs_root()  # as root: mounted from here on, mode 0700 as the kernel makes it


def refused(r: subprocess.CompletedProcess, cap_text: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"missing {cap_text} (run lumos as root" in lines[0], lines[0]


def counted_f(r: subprocess.CompletedProcess, n: int) -> None:
    """`funccount -c 'calls N' f` worked: the program says f=N and lumos counted N."""
    assert r.returncode == 0, r.stderr
    assert f"f={n} " in r.stdout, r.stdout
    rows = dict(ln.split() for ln in r.stdout.splitlines()[1:] if len(ln.split()) == 2)
    assert rows.get("f") == str(n), r.stdout


@pytest.mark.parametrize("caps, missing", [
    ("", "CAP_BPF, CAP_PERFMON"), ("+bpf", "CAP_PERFMON"), ("+perfmon", "CAP_BPF"),
    ("+sys_ptrace,+dac_read_search", "CAP_BPF, CAP_PERFMON")])
def test_without_bpf_and_perfmon_every_tool_refuses_in_one_line(bins, caps, missing):
    for argv in (["funccount", "-c", f"{bins['calls']} 7", "f"],
                 ["trace", bins["calls"], "f"], ["execsnoop", "-d", "1"],
                 ["profile", "-d", "1"], ["runqlat", "-d", "1"]):
        refused(as_nobody(caps, *LUMOS, *argv), missing)


def test_bpf_and_perfmon_are_enough_for_ones_own_processes(bins, servers):
    counted_f(as_nobody("+bpf,+perfmon", *LUMOS, "funccount", "-c", f"{bins['calls']} 7",
                        "f"), 7)
    own = servers[0]
    for argv in (["trace", "-p", str(own), "-d", "0.5", "main.*"],
                 ["latency", "-p", str(own), "-d", "0.5", "main.prepareAnswer"],
                 ["goroutines", "-p", str(own), "-d", "0.5"],
                 ["profile", "-p", str(own), "-d", "0.5"],
                 ["runqlat", "-d", "0.5"]):
        r = as_nobody("+bpf,+perfmon", *LUMOS, *argv)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (argv, r.stderr)


def test_another_users_process_needs_sys_ptrace(bins, servers):
    roots = str(servers[1])
    refused(as_nobody("+bpf,+perfmon", *LUMOS, "trace", "-p", roots, "main.*"),
            "CAP_SYS_PTRACE")
    refused(as_nobody("+bpf,+perfmon,+dac_read_search", *LUMOS, "funccount", "-p", roots,
                      "main.*"), "CAP_SYS_PTRACE")
    r = as_nobody("+bpf,+perfmon,+sys_ptrace", *LUMOS, "funccount", "-p", roots, "-d", "0.5",
                  "main.*")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_tracefs_needs_dac_read_search_as_non_root(bins, tracefs):
    assert oct(os.stat(tracefs).st_mode & 0o777) == "0o700"
    refused(as_nobody("+bpf,+perfmon", *LUMOS, "execsnoop", "-d", "1"), "CAP_DAC_READ_SEARCH")
    marker = f"/tmp/lumos-priv-{os.getpid()}"
    # execsnoop with the capability sees a command run while it traces
    p = subprocess.Popen(["sh", "-c", f"sleep 2; /bin/true {marker}"])
    r = as_nobody("+bpf,+perfmon,+dac_read_search", *LUMOS, "execsnoop", "-d", "4")
    p.wait()
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout, r.stdout


def test_unmounted_tracefs_needs_sys_admin(bins, tracefs):
    # a private mount namespace without tracefs: the machine's own mount stays
    script = ("umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing "
              "2>/dev/null; umount /sys/kernel/debug 2>/dev/null; exec \"$@\"")
    r = as_nobody("+bpf,+perfmon,+dac_read_search", *LUMOS, "execsnoop", "-d", "1",
                  wrap=("unshare", "-m", "--propagation", "private", "sh", "-c", script,
                        "sh"))
    refused(r, "CAP_SYS_ADMIN")
    assert "tracefs is not mounted" in r.stderr


def test_uprobe_perf_event_needs_sys_admin(bins):
    # lumos attaches through uprobe_multi; the per-site fallback (kernels before 6.6)
    # opens uprobe perf events, which this kernel grants only with CAP_SYS_ADMIN
    code = ("import sys\nfrom lumos.bpf.perf import open_uprobe_event\n"
            "from lumos.errors import LumosError\n"
            f"try:\n    open_uprobe_event({bins['calls']!r}, 0x1000).close()\n"
            "except LumosError as e:\n    print(e); sys.exit(2)\nprint('opened')\n")
    r = as_nobody("+bpf,+perfmon", sys.executable, "-c", code)
    assert r.returncode == 2 and "missing CAP_SYS_ADMIN" in r.stdout, (r.stdout, r.stderr)
    r = as_nobody("+bpf,+perfmon,+sys_admin", sys.executable, "-c", code)
    assert r.returncode == 0 and "opened" in r.stdout, (r.stdout, r.stderr)


def test_doctor_reports_the_capabilities_it_has():
    r = as_nobody("+bpf,+perfmon", *LUMOS, "doctor", "--json")
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    have = {x["capability"]: x["effective"] for x in rows if "capability" in x}
    assert have == {"CAP_BPF": True, "CAP_PERFMON": True, "CAP_SYS_ADMIN": False,
                    "CAP_SYS_PTRACE": False, "CAP_DAC_READ_SEARCH": False}
    feats = {x["feature"]: x["available"] for x in rows if "feature" in x}
    assert feats["uprobes"] and feats["uprobe_multi"] and feats["privileges"]
    assert r.returncode == 0, r.stderr  # uprobes work (through uprobe_multi)
    text = as_nobody("", *LUMOS, "doctor")
    assert "CAP_BPF             no" in text.stdout, text.stdout
    assert text.returncode == 1


def test_root_has_everything():
    r = subprocess.run([*LUMOS, "doctor", "--json"], capture_output=True, text=True,
                       timeout=60)
    have = {x["capability"]: x["effective"] for x in map(json.loads, r.stdout.splitlines())
            if "capability" in x}
    assert all(have.values()) and len(have) == 5, have
