"""Safety rules checked statically on the BPF programs the tools really load (each tool run
for real on a real target through support/progdump.py, then walked by bpfwalk.py):

- every user-memory read is bounded: its size is a constant or provably bounded, and fits
  the stack slot, map value or record it lands in;
- `-p PID` is applied in the kernel: a uprobe program is attached with a link that carries
  the PID (the kernel then fires it only in that process), and a tracepoint or
  perf-event program compares bpf_get_current_pid_tgid() >> 32 with the PID on every
  path before anything reaches a ring buffer or a map.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from bpfwalk import walk
from support.gobuild import build
from support.programs import build_c

from lumos.bpf.asm import FP, R0, R1, R2, R3, R6, And, Helper, Jgt, Jne, Mov, Rsh, Sub, call, ldx
from lumos.bpf.sys import BPF_PROG_TYPE_SYSCALL

DUMP = Path(__file__).parent.parent / "support" / "progdump.py"
UPROBE_LINKS = {"attach_uprobe", "attach_uprobe_multi"}

# (id, argv, which process is -p / {pid}); {alltypes} {slices} {usdt} {lookups} filled in
RUNS = [
    ("trace-alltypes", ["trace", "{alltypes}", "main.*", "--strlen", "200"], None),
    ("trace-slices", ["trace", "{slices}", "main.*", "--max-elems", "8"], None),
    ("trace-p", ["trace", "-p", "{pid}", "main.*"], "go"),
    ("trace-stack", ["trace", "-p", "{pid}", "main.prepareAnswer", "--stack"], "go"),
    ("latency-by-string", ["latency", "-p", "{pid}", "main.prepareAnswer", "--by", "name"],
     "go"),
    ("flow", ["flow", "-p", "{pid}", "main.*", "net/http.(*conn).serve"], "go"),
    ("goroutines", ["goroutines", "-p", "{pid}"], "go"),
    ("stacks", ["stacks", "-p", "{pid}", "main.prepareAnswer"], "go"),
    ("allocs", ["allocs", "-p", "{pid}"], "go"),
    ("http", ["http", "-p", "{pid}"], "go"),
    ("logs", ["logs", "-p", "{pid}"], "go"),
    ("funccount-go", ["funccount", "-p", "{pid}", "main.*"], "go"),
    ("funccount-tp", ["funccount", "-p", "{pid}", "t:syscalls:sys_enter_read*"], "go"),
    ("gethostlatency-go", ["gethostlatency", "{resolver}"], None),
    ("profile", ["profile", "-p", "{pid}"], "go"),
    ("opensnoop-p", ["opensnoop", "-p", "{pid}"], "go"),
    ("runqlat-p", ["runqlat", "-p", "{pid}"], "go"),
    ("faults-p", ["faults", "-p", "{pid}"], "go"),
    ("swapin-p", ["swapin", "-p", "{pid}"], "go"),
    ("sql", ["sql", "{reqsvc}"], None),
    ("usdt", ["trace", "-p", "{cpid}", "usdt:lumos:*"], "c"),
    ("usdt-mem", ["trace", "-p", "{cpid}", "usdt:lumos:*", "--semaphores", "mem"], "c"),
    ("gethostlatency-c", ["gethostlatency", "-p", "{lpid}"], "lookups"),
    ("uflow", ["uflow", "--mode", "uprobe", "{pypid}"], "python"),
    ("ucalls", ["ucalls", "--mode", "uprobe", "{pypid}"], "python"),
    ("bashreadline", ["bashreadline", "-p", "{bpid}"], "bash"),
    ("execsnoop", ["execsnoop"], None),
    ("opensnoop", ["opensnoop"], None),
]


@pytest.fixture(scope="module")
def targets(goserver, tmp_path_factory):
    procs = {"go": goserver[0]}
    usdt = subprocess.Popen([build_c("usdt"), "1", "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert usdt.stdout.readline() == "ready\n"
    lookups = subprocess.Popen([build_c("lookups"), "-wait", "localhost"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert lookups.stdout.readline() == "ready\n"
    py = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                          stdin=subprocess.PIPE)
    bash = subprocess.Popen(["bash", "--norc", "-i"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.update(c=usdt, lookups=lookups, python=py, bash=bash)
    fill = {"pid": goserver[0].pid, "cpid": usdt.pid, "lpid": lookups.pid, "pypid": py.pid,
            "bpid": bash.pid, "alltypes": build("alltypes", "1.27.3"),
            "slices": build("slices", "1.23.9"), "reqsvc": build("reqsvc", "1.23.9"),
            "resolver": build("resolver", "1.23.9")}
    yield procs, fill
    for p in (usdt, lookups, py, bash):
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def dumps(targets, tmp_path_factory):
    """Each run's programs and links, the runs side by side (3 at a time)."""
    _, fill = targets
    d = tmp_path_factory.mktemp("progs")

    def one(run):
        name, argv, _ = run
        out = d / f"{name}.json"
        argv = [str(a).format(**fill) for a in argv]
        r = subprocess.run([sys.executable, str(DUMP), str(out), *argv, "-d", "1"],
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            return name, r.stderr[-1000:]
        return name, json.loads(out.read_text())
    with ThreadPoolExecutor(3) as pool:
        got = dict(pool.map(one, RUNS))
    failed = {k: v for k, v in got.items() if isinstance(v, str)}
    assert not failed, failed
    return got


def _pid_of(run, targets) -> int | None:
    procs, _ = targets
    return procs[run[2]].pid if run[2] else None


@pytest.fixture(scope="module")
def walked(dumps, targets):
    out = {}
    for run in RUNS:
        pid = _pid_of(run, targets)
        out[run[0]] = [(p, walk(p, pid)) for p in dumps[run[0]]["programs"]]
    return out


def test_every_user_memory_read_is_bounded(walked):
    bad, reads, progs = [], 0, 0
    for name, found in walked.items():
        assert found, f"{name}: no programs loaded"
        for prog, f in found:
            progs += 1
            reads += len(f.reads)
            bad += [(name, prog["name"], *b) for b in f.bad_reads]
    print(f"{progs} programs walked, {reads} reads bounded")
    assert not bad, bad
    assert reads > 200


def test_pid_filter_is_in_the_kernel(dumps, walked, targets):
    """Per program: a uprobe link carrying the PID, or a tgid comparison before output."""
    by_link = by_compare = by_gate = 0
    for run in RUNS:
        pid = _pid_of(run, targets)
        if pid is None:
            continue
        name, data = run[0], dumps[run[0]]
        for i, (prog, f) in enumerate(walked[name]):
            links = [x for x in data["links"] if x["prog"] == i]
            if prog["type"] == BPF_PROG_TYPE_SYSCALL:  # run by lumos (the stage flusher)
                assert not f.reads and not links, (name, prog["name"], f.reads, links)
                continue
            assert links, (name, prog["name"], "loaded but never attached")
            if all(x["how"] in UPROBE_LINKS for x in links):
                assert {x["pid"] for x in links} == {pid}, (name, prog["name"], links)
                by_link += 1
            elif all(o[2] for o in f.outputs) and f.outputs:
                by_compare += 1
            else:  # BCC's shape: the exit program outputs only what the entry one stashed
                filled_by_filtered = _maps_filled_only_when_filtered(walked[name])
                bad = [o for o in f.outputs if not o[2] and not o[3] & filled_by_filtered]
                assert f.outputs and not bad, (name, prog["name"], links, bad)
                by_gate += 1
    print(f"-p: {by_link} programs filtered by their link, {by_compare} by a tgid compare, "
          f"{by_gate} by a map only tgid-compared programs fill")
    assert by_link >= 15 and by_compare >= 5


def _maps_filled_only_when_filtered(found) -> set[str]:
    updates = [o for _, f in found for o in f.outputs if o[4]]
    return {o[4] for o in updates} - {o[4] for o in updates if not o[2]}


# --- the walker itself: it must catch what it is there to catch ---------------------

def _prog(*insns) -> dict:
    from lumos.bpf.asm import exit_
    from lumos.bpf.prog import ProgramSpec
    sys.path.insert(0, str(DUMP.parent))
    from progdump import _spec_json
    body = (*insns, Mov.imm(R0, 0).labelled("out"), exit_())
    return _spec_json(ProgramSpec("t", 2, body))


def _read(size_insns, room=64):
    return _prog(ldx(8, R2, R1, 0), *size_insns, Mov.reg(R1, FP), Sub.imm(R1, room),
                 Mov.imm(R3, 0), call(Helper.probe_read_user))


@pytest.mark.parametrize("size_insns, ok", [
    ([], False),                                  # a size straight from the target
    ([And.imm(R2, 63)], True),                    # masked below the room
    ([And.imm(R2, 127)], False),                  # masked, but past a 64-byte slot
    ([Jgt.imm(R2, 64, "out")], True),             # min'd by a jump
    ([Jgt.imm(R2, 65, "out")], False),            # one byte too many
    ([Mov.imm(R2, 64)], True), ([Mov.imm(R2, 65)], False),
    ([Rsh.imm(R2, 58)], True),                    # at most 63
])
def test_walker_judges_read_sizes(size_insns, ok):
    f = walk(_read(size_insns), None)
    assert (not f.bad_reads and len(f.reads) == 1) == ok, f


@pytest.mark.parametrize("compare, ok", [([], False), ([Jne.imm(R0, 4242, "out")], True),
                                         ([Jne.imm(R0, 4243, "out")], False)])
def test_walker_sees_the_tgid_compare(compare, ok):
    p = _prog(Mov.reg(R6, R1), call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32),
              *compare, Mov.reg(R1, R6), call(Helper.ringbuf_output))
    f = walk(p, 4242)
    assert [o[2] for o in f.outputs] == [ok]
