"""Ring buffer round trips on the real kernel: every record arrives, or is counted as lost."""

import struct
import subprocess
import threading
from contextlib import ExitStack

from conftest import require
from test_bpf_links import offsets

from lumos.bpf import sys as bsys
from lumos.bpf.asm import R0, R1, R6, R7, Asm, Mov, exit_, ldx, stx
from lumos.bpf.links import attach_uprobe
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.ringbuf import iter_records
from lumos.probes.channel import EventChannel
from lumos.probes.codegen import PT_REGS

RECORD = 24  # the argument of f() and two words of padding, to fill the ring faster


def record_arg_program(chan):
    a = Asm()
    a.emit(Mov.reg(R6, R1))
    chan.emit_reserve(a, RECORD, R7, "out")
    a.emit(ldx(8, R1, R6, PT_REGS["di"]), stx(8, R7, 0, R1), stx(8, R7, 8, R1),
           stx(8, R7, 16, R1))
    chan.emit_submit(a, R7)
    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())
    return ProgramSpec("rec", bsys.BPF_PROG_TYPE_KPROBE, tuple(a.finish()))


def run_traced(calls_bin, n, ring_bytes, read_while_running):
    require("ringbuf")
    with ExitStack() as stack:
        chan = EventChannel(ring_bytes).open(stack)
        prog = stack.enter_context(load_program(record_arg_program(chan)))
        stack.enter_context(attach_uprobe(prog, calls_bin, offsets(calls_bin, "f")[0]))
        got = []
        done = threading.Event()

        def reader():
            while not done.is_set():
                chan.reader.wait(0.05)
                chan.reader.drain(lambda b: got.append(struct.unpack_from("<Q", b)[0]))

        t = threading.Thread(target=reader) if read_while_running else None
        if t:
            t.start()
        out = subprocess.run([calls_bin, str(n)], capture_output=True, text=True).stdout
        done.set()
        if t:
            t.join()
        chan.reader.drain(lambda b: got.append(struct.unpack_from("<Q", b)[0]))
        return int(out.split()[0].split("=")[1]), got, chan.lost()


def test_every_record_arrives_in_order(calls_bin):
    made, got, lost = run_traced(calls_bin, 50_000, 1 << 22, read_while_running=True)
    assert made == 50_000
    assert lost == 0
    assert got == list(range(made))  # f(i) for i = 0..n-1, one process: in order


def test_overflow_is_counted_never_silent(calls_bin):
    made, got, lost = run_traced(calls_bin, 5_000, 4096, read_while_running=False)
    assert lost > 0
    assert len(got) + lost == made == 5_000
    assert got == list(range(len(got)))  # the first records fit, the rest were dropped


def test_read_chunk_batches(calls_bin):
    require("ringbuf")
    with ExitStack() as stack:
        chan = EventChannel(1 << 20).open(stack)
        prog = stack.enter_context(load_program(record_arg_program(chan)))
        stack.enter_context(attach_uprobe(prog, calls_bin, offsets(calls_bin, "f")[0]))
        subprocess.run([calls_bin, "3000"], capture_output=True, check=True)
        chunk, n = chan.reader.read_chunk()
        values = [struct.unpack_from("<Q", r)[0] for r in iter_records(chunk)]
        assert n == 3000 and values == list(range(3000))
        assert chan.reader.read_chunk() == (b"", 0)


def test_read_chunk_fixed_matches_record_walk(calls_bin):
    require("ringbuf")
    with ExitStack() as stack:
        chan = EventChannel(1 << 20).open(stack)
        prog = stack.enter_context(load_program(record_arg_program(chan)))
        stack.enter_context(attach_uprobe(prog, calls_bin, offsets(calls_bin, "f")[0]))
        subprocess.run([calls_bin, "5000"], capture_output=True, check=True)
        chunk, n = chan.reader.read_chunk_fixed(RECORD)
        assert n == 5000
        assert [struct.unpack_from("<Q", r)[0] for r in iter_records(chunk)] == list(range(5000))
        assert chan.reader.read_chunk_fixed(RECORD) == (b"", 0)
        assert chan.lost() == 0
