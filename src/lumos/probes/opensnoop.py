"""open(2), openat(2), openat2(2) calls with their result, from syscall tracepoints.

At sys_enter_* the path pointer, flags and mode are kept per thread; at sys_exit_* the
path is read (the kernel has just copied it, so its page is resident) and one record goes
to the ring buffer: FD, or -errno. libbpf-tools' opensnoop works the same way.

Tracepoint record offsets come from tracefs `format` files, struct open_how's layout
(openat2) from vmlinux BTF. Filters are constants of the programs: -p (tgid) and -u at
entry, -n (comm contains) at entry, -x (failures only) at exit.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R8,
    R9,
    Add,
    Asm,
    Helper,
    Jeq,
    Jne,
    Jsge,
    Mov,
    Rsh,
    call,
    exit_,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.btf import load_vmlinux_btf
from lumos.bpf.frame import Frame
from lumos.bpf.links import attach_tracepoint
from lumos.bpf.maps import create_map, hash_spec
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.sys import BPF_ANY, BPF_PROG_TYPE_TRACEPOINT
from lumos.bpf.tracefs import has_tracepoint, require_tracepoint
from lumos.probes.channel import EventChannel
from lumos.probes.ktask import (
    TASK_COMM_LEN,
    btf_member,
    emit_comm_filter,
    emit_tgid_filter,
    emit_uid_filter,
)
from lumos.probes.record import Field, Record

PATH_BYTES = 256          # libbpf-tools: NAME_MAX (255); a longer path is cut and marked
MAX_INFLIGHT = 10240      # opens in progress at once (an LRU, as libbpf-tools' size)
SYSCALLS = ("open", "openat", "openat2")   # the order is OPEN_EVENT.call

OPEN_EVENT = Record("open_event", [
    Field("ts_ns", "u64", doc="bpf_ktime_get_ns() at entry"),
    Field("pid", "u32", doc="tgid"),
    Field("tid", "u32"),
    Field("uid", "u32"),
    Field("ret", "s32", doc="the fd, or -errno"),
    Field("flags", "u32", doc="O_* flags (open_how.flags for openat2)"),
    Field("mode", "u32"),
    Field("path_len", "s32", doc="bpf_probe_read_user_str(): bytes with the NUL, or -errno"),
    Field("call", "u16", doc="0 open, 1 openat, 2 openat2"),
    Field("cut", "u16", doc="1: the path was longer than PATH_BYTES - 1"),
    Field("comm", "bytes", TASK_COMM_LEN),
    Field("path", "bytes", PATH_BYTES),
])
OFF = OPEN_EVENT.offsets
# the entry's stash: path pointer, ts, flags, mode
STASH = Record("open_stash", [Field("fname", "u64"), Field("ts_ns", "u64"),
                              Field("flags", "u32"), Field("mode", "u32")])


@dataclass(frozen=True)
class OpenFilter:
    tgid: int | None = None
    uid: int | None = None
    comm: bytes | None = None
    failed_only: bool = False


class OpenProbe:
    def __init__(self, channel: EventChannel, filt: OpenFilter):
        self.channel = channel
        self.filt = filt
        self.syscalls = [sc for sc in SYSCALLS if has_tracepoint("syscalls", f"sys_enter_{sc}")]
        if not self.syscalls:
            require_tracepoint("syscalls", "sys_enter_openat")  # raises, naming it
        missing = sorted(set(SYSCALLS) - set(self.syscalls))
        self.notes = [f"no tracepoint for {sc}(2) on this kernel: not seen"
                      for sc in missing]

    def attach(self, stack: ExitStack) -> OpenProbe:
        self.start = stack.enter_context(create_map(
            hash_spec("lumos_opens", 4, STASH.size, MAX_INFLIGHT, lru=True)))
        for sc in self.syscalls:
            prog = stack.enter_context(load_program(self._enter(sc)))
            stack.enter_context(attach_tracepoint(prog, "syscalls", f"sys_enter_{sc}"))
        for sc in self.syscalls:
            ret = require_tracepoint("syscalls", f"sys_exit_{sc}", ("ret",))["ret"].offset
            prog = stack.enter_context(load_program(self._exit(sc, ret)))
            stack.enter_context(attach_tracepoint(prog, "syscalls", f"sys_exit_{sc}"))
        return self

    def _about(self, frame: Frame) -> str:
        return (f"stack:\n{frame.layout()}\nmaps: lumos_opens (tid -> open_stash, LRU "
                f"{MAX_INFLIGHT})\n{STASH.c_struct()}\n{OPEN_EVENT.c_struct()}")

    def _enter(self, sc: str) -> ProgramSpec:
        f = self.filt
        a = Asm()
        frame = a.frame
        key, stash = frame.slot("tid_key", 4), frame.slot("stash", STASH.size)
        tp = f"syscalls:sys_enter_{sc}"
        if sc == "openat2":
            fields = require_tracepoint("syscalls", tp.split(":")[1], ("filename", "how"))
        else:
            fields = require_tracepoint("syscalls", tp.split(":")[1],
                                        ("filename", "flags", "mode"))
        a.emit(Mov.reg(R6, R1))
        emit_tgid_filter(a, f.tgid, "out")
        emit_uid_filter(a, f.uid, "out")
        if f.comm is not None:
            comm = frame.slot("comm", TASK_COMM_LEN)
            a.emit(Mov.reg(R1, FP), Add.imm(R1, comm), Mov.imm(R2, TASK_COMM_LEN),
                   call(Helper.get_current_comm))
            emit_comm_filter(a, FP, comm, f.comm, "out")
        s = STASH.offsets
        a.comment(f"emit_open_enter: path pointer at +{fields['filename'].offset} of {tp} "
                  f"(tracefs format)")
        a.emit(ldx(8, R1, R6, fields["filename"].offset), stx(8, FP, stash + s["fname"], R1))
        if sc == "openat2":
            btf = load_vmlinux_btf()
            hflags, _ = btf_member(btf, "open_how", "flags")
            hmode, _ = btf_member(btf, "open_how", "mode")
            how = frame.slot("open_how", 8 * 3)
            a.comment(f"emit_open_enter: how->flags at +{hflags}, how->mode at +{hmode} "
                      f"(vmlinux BTF struct open_how); how at +{fields['how'].offset}")
            a.emit(ldx(8, R3, R6, fields["how"].offset), Mov.reg(R1, FP), Add.imm(R1, how),
                   Mov.imm(R2, 24), call(Helper.probe_read_user),
                   ldx(4, R1, FP, how + hflags), stx(4, FP, stash + s["flags"], R1),
                   ldx(4, R1, FP, how + hmode), stx(4, FP, stash + s["mode"], R1))
        else:
            a.comment(f"emit_open_enter: flags at +{fields['flags'].offset}, mode at "
                      f"+{fields['mode'].offset} of {tp}")
            a.emit(ldx(4, R1, R6, fields["flags"].offset), stx(4, FP, stash + s["flags"], R1),
                   ldx(4, R1, R6, fields["mode"].offset), stx(4, FP, stash + s["mode"], R1))
        a.comment("emit_open_enter: lumos_opens[tid] = stash")
        a.emit(call(Helper.ktime_get_ns), stx(8, FP, stash + s["ts_ns"], R0),
               call(Helper.get_current_pid_tgid), stx(4, FP, key, R0),
               ld_map_fd(R1, self.start), Mov.reg(R2, FP), Add.imm(R2, key),
               Mov.reg(R3, FP), Add.imm(R3, stash), Mov.imm(R4, BPF_ANY),
               call(Helper.map_update_elem))
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec(f"lumos_{sc}", BPF_PROG_TYPE_TRACEPOINT, tuple(a.finish()),
                           about=self._about(frame))

    def _exit(self, sc: str, ret_off: int) -> ProgramSpec:
        a = Asm()
        frame = a.frame
        key, byte = frame.slot("tid_key", 4), frame.slot("peek_byte", 8)
        s = STASH.offsets
        a.emit(Mov.reg(R6, R1))
        a.comment("emit_open_exit: this thread's stash")
        a.emit(call(Helper.get_current_pid_tgid), stx(4, FP, key, R0),
               ld_map_fd(R1, self.start), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"), Mov.reg(R7, R0))
        a.comment(f"emit_open_exit: ret at +{ret_off} of syscalls:sys_exit_{sc}")
        a.emit(ldx(8, R9, R6, ret_off))
        if self.filt.failed_only:
            a.emit(Jsge.imm(R9, 0, "drop"))
        self.channel.emit_reserve(a, OPEN_EVENT.size, R8, "drop")
        a.comment("emit_open_exit: the record")
        a.emit(ldx(8, R1, R7, s["ts_ns"]), stx(8, R8, OFF["ts_ns"], R1),
               call(Helper.get_current_pid_tgid), stx(4, R8, OFF["tid"], R0),
               Rsh.imm(R0, 32), stx(4, R8, OFF["pid"], R0),
               call(Helper.get_current_uid_gid), stx(4, R8, OFF["uid"], R0),
               stx(4, R8, OFF["ret"], R9),
               ldx(4, R1, R7, s["flags"]), stx(4, R8, OFF["flags"], R1),
               ldx(4, R1, R7, s["mode"]), stx(4, R8, OFF["mode"], R1),
               st(2, R8, OFF["call"], SYSCALLS.index(sc)), st(2, R8, OFF["cut"], 0),
               Mov.reg(R1, R8), Add.imm(R1, OFF["comm"]), Mov.imm(R2, TASK_COMM_LEN),
               call(Helper.get_current_comm))
        a.comment(f"emit_open_exit: the path, up to {PATH_BYTES} bytes with the NUL")
        a.emit(ldx(8, R3, R7, s["fname"]), Mov.reg(R1, R8), Add.imm(R1, OFF["path"]),
               Mov.imm(R2, PATH_BYTES), call(Helper.probe_read_user_str),
               stx(4, R8, OFF["path_len"], R0), Jne.imm(R0, PATH_BYTES, "send"),
               ldx(8, R3, R7, s["fname"]), Add.imm(R3, PATH_BYTES - 1), Mov.reg(R1, FP),
               Add.imm(R1, byte), Mov.imm(R2, 1), call(Helper.probe_read_user),
               Jne.imm(R0, 0, "send"), ldx(1, R1, FP, byte), Jeq.imm(R1, 0, "send"),
               st(2, R8, OFF["cut"], 1))
        a.label("send")
        self.channel.emit_submit(a, R8)
        a.label("drop")
        a.emit(ld_map_fd(R1, self.start), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_delete_elem))
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec(f"lumos_{sc}_ret", BPF_PROG_TYPE_TRACEPOINT, tuple(a.finish()),
                           about=self._about(frame))


@dataclass
class OpenEvent:
    ts_ns: int
    pid: int
    tid: int
    uid: int
    ret: int
    flags: int
    mode: int
    call: str
    comm: str
    path: bytes | None     # None: unreadable
    cut: bool


_STRUCT = OPEN_EVENT.struct


def decode_open(rec) -> OpenEvent:
    ts, pid, tid, uid, ret, flags, mode, plen, call_, cut, comm, path = _STRUCT.unpack_from(rec)
    return OpenEvent(ts, pid, tid, uid, ret, flags, mode, SYSCALLS[call_] if call_ < 3 else "?",
                     comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
                     path.split(b"\0", 1)[0] if plen > 0 else None, bool(cut))
