"""The C string a function returns, read at its uretprobe (C code only): one record per
return, e.g. each line bash's readline() hands back (tools/bashreadline.py).

The string is copied up to its NUL with bpf_probe_read_user_str into a buffer of
max_bytes + 2, which holds min(length, max_bytes + 1) bytes and the NUL: so the reader
can tell a string of exactly max_bytes from a longer one, which it shows cut at
max_bytes and marks. A NULL return (readline at EOF) sends nothing.
"""

from __future__ import annotations

from contextlib import ExitStack

from lumos.bpf.asm import (
    R0,
    R1,
    R2,
    R3,
    R6,
    R8,
    Add,
    Asm,
    Helper,
    Jeq,
    Mov,
    Rsh,
    call,
    exit_,
    ldx,
    stx,
)
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.attach import Attached, attach_sites
from lumos.probes.channel import EventChannel
from lumos.probes.codegen import PT_REGS
from lumos.probes.probesite import ProbeSite
from lumos.probes.record import Field, Record


def record_for(max_bytes: int) -> Record:
    return Record("retstr_event", [
        Field("ts_ns", "u64"), Field("pid", "u32"), Field("tid", "u32"),
        Field("len", "s64", doc="bytes copied with the NUL, or -errno "
                                "(bpf_probe_read_user_str)"),
        Field("comm", "bytes", 16),
        Field("str", "bytes", max_bytes + 2, doc=f"up to {max_bytes + 1} bytes and a NUL"),
    ])


class ReturnedString:
    def __init__(self, channel: EventChannel, max_bytes: int = 256,
                 tgid: int | None = None):
        self.channel = channel
        self.max_bytes = max_bytes
        self.tgid = tgid
        self.record = record_for(max_bytes)

    @property
    def record_size(self) -> int:
        return self.record.size

    def attach(self, sites: list[ProbeSite], stack: ExitStack) -> Attached:
        return attach_sites(self.build, sites, self.tgid, stack)

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        off = self.record.offset
        codegen.save_ctx(a)
        codegen.tgid_filter(a, self.tgid, "out")
        a.comment("ReturnedString: the return value (regs->ax); NULL sends nothing")
        a.emit(ldx(8, R1, R6, PT_REGS["ax"]), Jeq.imm(R1, 0, "out"))
        self.channel.emit_reserve(a, self.record_size, R8, "out")
        a.comment("ReturnedString: ts, pid/tid, comm")
        a.emit(call(Helper.ktime_get_ns), stx(8, R8, off("ts_ns"), R0),
               call(Helper.get_current_pid_tgid), stx(4, R8, off("tid"), R0),
               Rsh.imm(R0, 32), stx(4, R8, off("pid"), R0),
               Mov.reg(R1, R8), Add.imm(R1, off("comm")), Mov.imm(R2, 16),
               call(Helper.get_current_comm))
        a.comment(f"ReturnedString: the string at regs->ax up to its NUL, at most "
                  f"{self.max_bytes + 2} bytes with it (more than {self.max_bytes}: cut)")
        a.emit(Mov.reg(R1, R8), Add.imm(R1, off("str")), Mov.imm(R2, self.max_bytes + 2),
               ldx(8, R3, R6, PT_REGS["ax"]), call(Helper.probe_read_user_str),
               stx(8, R8, off("len"), R0))
        self.channel.emit_submit(a, R8)
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        about = (f"maps:\n  {self.channel.name}: ring buffer\nrecord ({self.record_size} "
                 f"bytes):\n{self.record.c_struct()}")
        return ProgramSpec("lumos_retstr", BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type, about=about)


def decode(raw: bytes, n: int, max_bytes: int) -> tuple[bytes, bool]:
    """(the string's bytes, cut): at most max_bytes of them."""
    if n <= 0:
        return b"", False
    data = raw[:n].split(b"\0", 1)[0]
    return data[:max_bytes], len(data) > max_bytes
