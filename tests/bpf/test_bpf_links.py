"""One contract for every link kind: attach, it fires, info says what it is, close twice."""

import struct
import subprocess

import pytest
from conftest import require

from lumos.binary.elf import open_elf
from lumos.bpf import sys as bsys
from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    Add,
    Asm,
    Helper,
    Jeq,
    Mov,
    Rsh,
    call,
    exit_,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.links import (
    attach_raw_tracepoint,
    attach_sampling,
    attach_tracepoint,
    attach_uprobe,
    attach_uprobe_multi,
)
from lumos.bpf.maps import array_spec, create_map
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.tracefs import probe_events_left


def count_into(m, prog_type, attach_type=0, by_cookie=False):
    """counts[cookie or 0] += 1"""
    a = Asm()
    if by_cookie:
        a.emit(call(Helper.get_attach_cookie), stx(4, FP, -4, R0))
    else:
        a.emit(st(4, FP, -4, 0))
    a.emit(ld_map_fd(R1, m), Mov.reg(R2, FP), Add.imm(R2, -4), call(Helper.map_lookup_elem),
           Jeq.imm(R0, 0, "out"), ldx(8, R1, R0, 0), Add.imm(R1, 1), stx(8, R0, 0, R1))
    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())
    return ProgramSpec("count", prog_type, tuple(a.finish()), expected_attach_type=attach_type)


def total(m, n=1):
    return [sum(struct.unpack("<Q", v)[0] for v in m.lookup_percpu(struct.pack("<I", i)))
            for i in range(n)]


def offsets(path, *names):
    with open_elf(path) as elf:
        syms = {s.name: s.addr for s in elf.functions}
        return [elf.vaddr_to_offset(syms[n]) for n in names]


def run_calls(path, n):
    out = subprocess.run([path, str(n)], capture_output=True, text=True, check=True).stdout
    return dict(kv.split("=") for kv in out.split())


def check_contract(link, kind):
    assert link.info().type == kind
    assert not link.closed
    link.close()
    link.close()
    assert link.closed


def test_uprobe_perf_event_link(calls_bin):
    require("uprobes")
    with create_map(array_spec("c", 8, 2, percpu=True)) as m, \
            load_program(count_into(m, bsys.BPF_PROG_TYPE_KPROBE, by_cookie=True)) as p:
        f, g = offsets(calls_bin, "f", "g")
        links = [attach_uprobe(p, calls_bin, f, cookie=0), attach_uprobe(p, calls_bin, g, cookie=1)]
        truth = run_calls(calls_bin, 1001)
        assert total(m, 2) == [int(truth["f"]), int(truth["g"])] == [1001, 501]
        for link in links:
            check_contract(link, bsys.BPF_LINK_TYPE_PERF_EVENT)
        run_calls(calls_bin, 10)
        assert total(m, 2) == [1001, 501]  # detached: nothing more counted


def test_uprobe_multi_link(calls_bin):
    require("uprobe_multi")
    with create_map(array_spec("c", 8, 2, percpu=True)) as m, \
            load_program(count_into(m, bsys.BPF_PROG_TYPE_KPROBE, bsys.BPF_TRACE_UPROBE_MULTI,
                                    by_cookie=True)) as p:
        link = attach_uprobe_multi(p, calls_bin, offsets(calls_bin, "f", "g"), [0, 1])
        assert link.num_sites == 2
        truth = run_calls(calls_bin, 2000)
        assert total(m, 2) == [int(truth["f"]), int(truth["g"])]
        check_contract(link, bsys.BPF_LINK_TYPE_UPROBE_MULTI)
    assert probe_events_left() == []


def test_uprobe_multi_pid_filter(calls_bin):
    require("uprobe_multi")
    with create_map(array_spec("c", 8, 1, percpu=True)) as m, \
            load_program(count_into(m, bsys.BPF_PROG_TYPE_KPROBE,
                                    bsys.BPF_TRACE_UPROBE_MULTI)) as p:
        sleeper = subprocess.Popen(["sleep", "30"])
        try:
            with attach_uprobe_multi(p, calls_bin, offsets(calls_bin, "f"), pid=sleeper.pid):
                run_calls(calls_bin, 500)  # another process: filtered out by the kernel
            assert total(m) == [0]
        finally:
            sleeper.kill()
            sleeper.wait()


def test_tracepoint_link_counts_openat(opens_bin):
    require("tracepoints")
    # count sys_enter_openat of one process: filter by tgid inside the program
    with create_map(array_spec("c", 8, 1)) as m:
        proc = subprocess.Popen([opens_bin, "37", "/dev/null"], stdout=subprocess.PIPE, text=True)
        a = Asm()
        a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), Jeq.imm(R0, proc.pid, "mine"),
               Mov.imm(R0, 0), exit_())
        a.label("mine")
        a.extend(count_into(m, 0).insns)
        with load_program(ProgramSpec("openat", bsys.BPF_PROG_TYPE_TRACEPOINT,
                                      tuple(a.finish()))) as p:
            link = attach_tracepoint(p, "syscalls", "sys_enter_openat")
            out = proc.communicate(timeout=10)[0]
            assert total_plain(m) == int(out.split("=")[1]) == 37
            check_contract(link, bsys.BPF_LINK_TYPE_PERF_EVENT)


def total_plain(m):
    return struct.unpack("<Q", m.lookup(struct.pack("<I", 0)))[0]


def test_raw_tracepoint_link():
    require("raw_tracepoints")
    with create_map(array_spec("c", 8, 1)) as m, \
            load_program(count_into(m, bsys.BPF_PROG_TYPE_RAW_TRACEPOINT)) as p:
        link = attach_raw_tracepoint(p, "sys_enter")
        subprocess.run(["true"], check=True)
        assert total_plain(m) > 0
        check_contract(link, bsys.BPF_LINK_TYPE_RAW_TRACEPOINT)


def test_sampling_perf_event_links():
    require("perf_events")
    with create_map(array_spec("c", 8, 1)) as m, \
            load_program(count_into(m, bsys.BPF_PROG_TYPE_PERF_EVENT)) as p:
        group = attach_sampling(p, 999)
        subprocess.run(["timeout", "0.3", "sh", "-c", "while :; do :; done"])
        assert total_plain(m) > 50  # ~300 samples expected on the busy CPU
        assert group.info().type == bsys.BPF_LINK_TYPE_PERF_EVENT
        group.close()
        group.close()
        assert group.closed


def test_attach_to_missing_file_and_tracepoint_are_clear_errors():
    from lumos.errors import LumosError
    with load_program(ProgramSpec("x", bsys.BPF_PROG_TYPE_KPROBE, (Mov.imm(R0, 0), exit_()))) as p:
        with pytest.raises(LumosError, match="no such file|No such file"):
            attach_uprobe(p, "/nonexistent", 0)
    with load_program(ProgramSpec("x", bsys.BPF_PROG_TYPE_TRACEPOINT,
                                  (Mov.imm(R0, 0), exit_()))) as p:
        with pytest.raises(LumosError, match="does not exist"):
            attach_tracepoint(p, "syscalls", "sys_enter_nonsense")
