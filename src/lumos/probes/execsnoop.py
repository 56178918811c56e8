"""exec() events with their whole argument list and result, from syscall tracepoints.

Three programs share one in-flight map keyed by thread id (libbpf-tools' execsnoop does
the same with a hash of events):

- at sys_enter_execve / sys_enter_execveat the filename and argv[1..] are copied from
  the caller's memory into the map entry, each argument up to ARG_BYTES (a longer one
  is cut and marked), up to max_args of them and ARGS_BYTES in all (marked when more);
- at sched_process_exec, an exec from a thread other than the leader has just taken
  the leader's id (de_thread): the entry moves from the old thread id to the new one,
  so such execs are not lost (libbpf-tools drops them);
- at sys_exit_execve / sys_exit_execveat the result and the new comm are added and the
  whole entry is copied into the ring buffer, failures included (RET is -errno).

Record field offsets come from EXEC_EVENT; tracepoint record offsets from tracefs
`format` files; task_struct offsets from vmlinux BTF. Filters (-u, -P, -x, -n) are
constants of the programs.
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
    Add,
    Asm,
    Helper,
    Jeq,
    Jgt,
    Jne,
    Jsgt,
    Lsh,
    Mov,
    Or,
    Rsh,
    call,
    exit_,
    ja,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.links import attach_tracepoint
from lumos.bpf.maps import array_spec, create_map, hash_spec
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.sys import BPF_ANY, BPF_PROG_TYPE_TRACEPOINT
from lumos.bpf.tracefs import has_tracepoint, require_tracepoint
from lumos.probes.channel import EventChannel
from lumos.probes.frame import Frame
from lumos.probes.ktask import (
    TASK_COMM_LEN,
    TaskLayout,
    emit_comm_filter,
    emit_current_ppid,
    emit_uid_filter,
)
from lumos.probes.record import Field, Record

ARG_BYTES = 256          # one argument: 255 bytes and a NUL (libbpf-tools: 128)
ARGS_BYTES = 4096        # all arguments (a new one starts only below this)
MAX_ARGS = 64            # --max-args at most (one bit each in cut_mask)
MAX_INFLIGHT = 1024      # execs in progress at once (an LRU: a killed exec cannot leak)

EXEC_MORE = 1        # argv has more than max_args arguments
EXEC_TOOLONG = 2     # the arguments did not fit in ARGS_BYTES
EXEC_FAULT = 4       # argv could not be read (unmapped or not paged in)
EXEC_AT = 8          # execveat(2)

EXEC_EVENT = Record("exec_event", [
    Field("ts_ns", "u64", doc="bpf_ktime_get_ns() at execve entry"),
    Field("cut_mask", "u64", doc="bit i: argument i was longer than ARG_BYTES - 1 and cut"),
    Field("pid", "u32", doc="tgid"),
    Field("tid", "u32", doc="the thread that called execve"),
    Field("ppid", "u32", doc="current->real_parent->tgid (vmlinux BTF)"),
    Field("uid", "u32"),
    Field("ret", "s32", doc="sys_exit_execve ret: 0 or -errno"),
    Field("flags", "u32", doc="EXEC_MORE 1 | EXEC_TOOLONG 2 | EXEC_FAULT 4 | EXEC_AT 8"),
    Field("args_count", "u32"),
    Field("args_size", "u32"),
    Field("comm", "bytes", TASK_COMM_LEN, doc="current->comm at exit: the new program's"),
    Field("args", "bytes", ARGS_BYTES + ARG_BYTES,
          doc="NUL-terminated: the filename, then argv[1], argv[2], ..."),
])
OFF = EXEC_EVENT.offsets


@dataclass(frozen=True)
class ExecFilter:
    uid: int | None = None
    ppid: int | None = None
    failed_only: bool = False
    comm: bytes | None = None
    max_args: int = 20


class ExecProbe:
    """Attaches the three programs; events arrive on `channel`."""

    def __init__(self, channel: EventChannel, filt: ExecFilter):
        if not 1 <= filt.max_args <= MAX_ARGS:
            raise ValueError(f"max_args must be 1..{MAX_ARGS}")
        self.channel = channel
        self.filt = filt
        self.task = TaskLayout.load()
        self.notes: list[str] = []
        self.syscalls = ["execve"]
        require_tracepoint("syscalls", "sys_enter_execve", ("filename", "argv"))
        require_tracepoint("syscalls", "sys_exit_execve", ("ret",))
        self.exec_fields = require_tracepoint("sched", "sched_process_exec", ("pid", "old_pid"))
        if has_tracepoint("syscalls", "sys_enter_execveat"):
            self.syscalls.append("execveat")
        else:
            self.notes.append("no execveat tracepoints on this kernel: execveat(2) is not seen")

    def attach(self, stack: ExitStack) -> ExecProbe:
        record = EXEC_EVENT.size
        self.zero = stack.enter_context(create_map(array_spec("lumos_exec_zero", record, 1)))
        self.execs = stack.enter_context(create_map(
            hash_spec("lumos_execs", 4, record, MAX_INFLIGHT, lru=True)))
        for sc in self.syscalls:
            enter = require_tracepoint("syscalls", f"sys_enter_{sc}", ("filename", "argv"))
            prog = stack.enter_context(load_program(self._enter(sc, enter)))
            stack.enter_context(attach_tracepoint(prog, "syscalls", f"sys_enter_{sc}"))
        prog = stack.enter_context(load_program(self._moved()))
        stack.enter_context(attach_tracepoint(prog, "sched", "sched_process_exec"))
        for sc in self.syscalls:
            ret = require_tracepoint("syscalls", f"sys_exit_{sc}", ("ret",))["ret"]
            prog = stack.enter_context(load_program(self._exit(sc, ret.offset)))
            stack.enter_context(attach_tracepoint(prog, "syscalls", f"sys_exit_{sc}"))
        return self

    # -- programs ------------------------------------------------------------------

    def _about(self, frame: Frame) -> str:
        return (f"stack:\n{frame.layout()}\nmaps: lumos_execs (tid -> exec_event, LRU "
                f"{MAX_INFLIGHT}), lumos_exec_zero (one zeroed exec_event)\n"
                f"{EXEC_EVENT.c_struct()}")

    def _enter(self, syscall: str, fields) -> ProgramSpec:
        f, task = self.filt, self.task
        a, frame = Asm(), Frame()
        key, zkey = frame.slot("tid_key", 4), frame.slot("zero_key", 4)
        argp, byte = frame.slot("argp", 8), frame.slot("peek_byte", 8)
        tp = f"syscalls:sys_enter_{syscall}"
        a.emit(Mov.reg(R6, R1))
        emit_uid_filter(a, f.uid, "out")
        a.comment("emit_exec_enter: a zeroed entry for this thread in lumos_execs")
        a.emit(call(Helper.get_current_pid_tgid), stx(4, FP, key, R0), st(4, FP, zkey, 0),
               ld_map_fd(R1, self.zero), Mov.reg(R2, FP), Add.imm(R2, zkey),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"),
               Mov.reg(R3, R0), ld_map_fd(R1, self.execs), Mov.reg(R2, FP), Add.imm(R2, key),
               Mov.imm(R4, BPF_ANY), call(Helper.map_update_elem),
               ld_map_fd(R1, self.execs), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"), Mov.reg(R7, R0))
        a.comment("emit_exec_enter: ts, pid, tid, uid")
        a.emit(call(Helper.ktime_get_ns), stx(8, R7, OFF["ts_ns"], R0),
               call(Helper.get_current_pid_tgid), stx(4, R7, OFF["tid"], R0),
               Rsh.imm(R0, 32), stx(4, R7, OFF["pid"], R0),
               call(Helper.get_current_uid_gid), stx(4, R7, OFF["uid"], R0))
        emit_current_ppid(a, task, R7, OFF["ppid"], frame)
        if f.ppid is not None:
            a.comment(f"emit_exec_enter: only children of {f.ppid} (-P)")
            a.emit(ldx(4, R1, R7, OFF["ppid"]), Jne.imm(R1, f.ppid, "drop"))
        if syscall == "execveat":
            a.emit(st(4, R7, OFF["flags"], EXEC_AT))
        a.comment(f"emit_exec_enter: argument 0 is the filename ({tp} field filename at "
                  f"+{fields['filename'].offset}, tracefs format)")
        a.emit(ldx(8, R3, R6, fields["filename"].offset), stx(8, FP, argp, R3),
               Mov.reg(R1, R7), Add.imm(R1, OFF["args"]), Mov.imm(R2, ARG_BYTES),
               call(Helper.probe_read_user_str), Jsgt.imm(R0, 0, "arg0.ok"),
               st(1, R7, OFF["args"], 0), Mov.imm(R0, 1), *_or_flag(EXEC_FAULT))
        a.label("arg0.ok")
        a.emit(Jgt.imm(R0, ARG_BYTES, "fault"), Mov.reg(R8, R0),
               st(4, R7, OFF["args_count"], 1))
        _emit_cut_check(a, 0, argp, byte)
        argv = fields["argv"].offset
        for i in range(1, f.max_args):
            a.comment(f"emit_exec_enter: argv[{i}] (argv at +{argv} of {tp})")
            a.emit(ldx(8, R3, R6, argv), Add.imm(R3, 8 * i), Mov.reg(R1, FP),
                   Add.imm(R1, argp), Mov.imm(R2, 8), call(Helper.probe_read_user),
                   Jne.imm(R0, 0, "fault"), ldx(8, R3, FP, argp), Jeq.imm(R3, 0, "done"),
                   Jgt.imm(R8, ARGS_BYTES, "toolong"),
                   Mov.reg(R1, R7), Add.imm(R1, OFF["args"]), Add.reg(R1, R8),
                   Mov.imm(R2, ARG_BYTES), call(Helper.probe_read_user_str),
                   Jsgt.imm(R0, 0, f"arg{i}.ok"), ja("fault"))
            a.label(f"arg{i}.ok")
            a.emit(Jgt.imm(R0, ARG_BYTES, "fault"), Add.reg(R8, R0),
                   st(4, R7, OFF["args_count"], i + 1))
            _emit_cut_check(a, i, argp, byte)
        a.comment(f"emit_exec_enter: is there an argv[{f.max_args}] (more than --max-args)?")
        a.emit(ldx(8, R3, R6, argv), Add.imm(R3, 8 * f.max_args), Mov.reg(R1, FP),
               Add.imm(R1, argp), Mov.imm(R2, 8), call(Helper.probe_read_user),
               Jne.imm(R0, 0, "done"), ldx(8, R3, FP, argp), Jeq.imm(R3, 0, "done"))
        a.emit(*_or_flag(EXEC_MORE), ja("done"))
        if f.max_args > 1:  # the verifier refuses unreachable code
            a.label("toolong")
            a.emit(*_or_flag(EXEC_TOOLONG), ja("done"))
        a.label("fault")
        a.emit(*_or_flag(EXEC_FAULT))
        a.label("done")
        a.emit(stx(4, R7, OFF["args_size"], R8))
        if f.ppid is not None:
            a.emit(ja("out"))
            a.label("drop")
            a.emit(ld_map_fd(R1, self.execs), Mov.reg(R2, FP), Add.imm(R2, key),
                   call(Helper.map_delete_elem))
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec(f"lumos_exec_{syscall}", BPF_PROG_TYPE_TRACEPOINT,
                           tuple(a.finish()), about=self._about(frame))

    def _moved(self) -> ProgramSpec:
        """sched_process_exec: an exec from a non-leader thread took the leader's id."""
        a, frame = Asm(), Frame()
        old, new = frame.slot("old_tid", 4), frame.slot("new_tid", 4)
        pid, old_pid = self.exec_fields["pid"].offset, self.exec_fields["old_pid"].offset
        a.comment(f"emit_exec_moved: sched_process_exec old_pid at +{old_pid}, pid at +{pid} "
                  f"(tracefs format); nothing to do unless they differ")
        a.emit(Mov.reg(R6, R1), ldx(4, R1, R6, old_pid), ldx(4, R2, R6, pid),
               Jeq.reg(R1, R2, "out"), stx(4, FP, old, R1), stx(4, FP, new, R2))
        a.comment("emit_exec_moved: lumos_execs[pid] = lumos_execs[old_pid]; delete the old")
        a.emit(ld_map_fd(R1, self.execs), Mov.reg(R2, FP), Add.imm(R2, old),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"), Mov.reg(R3, R0),
               ld_map_fd(R1, self.execs), Mov.reg(R2, FP), Add.imm(R2, new),
               Mov.imm(R4, BPF_ANY), call(Helper.map_update_elem),
               ld_map_fd(R1, self.execs), Mov.reg(R2, FP), Add.imm(R2, old),
               call(Helper.map_delete_elem))
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec("lumos_exec_moved", BPF_PROG_TYPE_TRACEPOINT, tuple(a.finish()),
                           about=self._about(frame))

    def _exit(self, syscall: str, ret_off: int) -> ProgramSpec:
        f = self.filt
        a, frame = Asm(), Frame()
        key, scratch = frame.slot("tid_key", 4), frame.slot("drop_scratch", 8)
        a.emit(Mov.reg(R6, R1))
        a.comment("emit_exec_exit: this thread's entry")
        a.emit(call(Helper.get_current_pid_tgid), stx(4, FP, key, R0),
               ld_map_fd(R1, self.execs), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"), Mov.reg(R7, R0))
        a.comment(f"emit_exec_exit: ret at +{ret_off} of syscalls:sys_exit_{syscall} "
                  f"(tracefs format)")
        a.emit(ldx(8, R1, R6, ret_off), stx(4, R7, OFF["ret"], R1))
        if f.failed_only:
            a.comment("emit_exec_exit: failed execs only (-x)")
            a.emit(Jeq.imm(R1, 0, "drop"))
        a.emit(Mov.reg(R1, R7), Add.imm(R1, OFF["comm"]), Mov.imm(R2, TASK_COMM_LEN),
               call(Helper.get_current_comm))
        emit_comm_filter(a, R7, OFF["comm"], f.comm, "drop")
        a.comment("emit_exec_exit: the whole entry to the ring buffer")
        self.channel.emit_reserve(a, EXEC_EVENT.size, R8, "drop", scratch)
        a.emit(Mov.reg(R1, R8), Mov.imm(R2, EXEC_EVENT.size), Mov.reg(R3, R7),
               call(Helper.probe_read_kernel))
        self.channel.emit_submit(a, R8)
        a.label("drop")
        a.emit(ld_map_fd(R1, self.execs), Mov.reg(R2, FP), Add.imm(R2, key),
               call(Helper.map_delete_elem))
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec(f"lumos_exec_ret_{syscall}"[:15], BPF_PROG_TYPE_TRACEPOINT,
                           tuple(a.finish()), about=self._about(frame))


def _or_flag(flag: int) -> tuple:
    """exec_event.flags |= flag (the entry is at R7)."""
    return (ldx(4, R1, R7, OFF["flags"]), Or.imm(R1, flag), stx(4, R7, OFF["flags"], R1))


def _emit_cut_check(a: Asm, i: int, argp: int, byte: int) -> None:
    """After reading argument i (R0 = bytes copied with the NUL, its user address in the
    argp slot): a full buffer means it was cut unless its last byte was the end."""
    done = a.fresh("cut.no")
    a.emit(Jne.imm(R0, ARG_BYTES, done), ldx(8, R3, FP, argp), Add.imm(R3, ARG_BYTES - 1),
           Mov.reg(R1, FP), Add.imm(R1, byte), Mov.imm(R2, 1), call(Helper.probe_read_user),
           Jne.imm(R0, 0, done), ldx(1, R1, FP, byte), Jeq.imm(R1, 0, done),
           ldx(8, R1, R7, OFF["cut_mask"]), Mov.imm(R2, 1), Lsh.imm(R2, i), Or.reg(R1, R2),
           stx(8, R7, OFF["cut_mask"], R1))
    a.label(done)


@dataclass
class ExecEvent:
    ts_ns: int
    pid: int
    tid: int
    ppid: int
    uid: int
    ret: int
    comm: str
    args: list[bytes]
    cut: list[bool]        # per argument: cut at ARG_BYTES - 1 bytes
    more: bool             # arguments left out (--max-args, or ARGS_BYTES full)
    fault: bool            # argv could not be read to its end
    execveat: bool


_STRUCT = EXEC_EVENT.struct


def decode_exec(rec) -> ExecEvent:
    (ts, cut_mask, pid, tid, ppid, uid, ret, flags, count, size, comm,
     args) = _STRUCT.unpack_from(rec)
    parts = args[:size].split(b"\0")[:count]
    return ExecEvent(ts, pid, tid, ppid, uid, ret, comm.split(b"\0", 1)[0].decode(
        "utf-8", "replace"), parts, [bool(cut_mask >> i & 1) for i in range(len(parts))],
        bool(flags & (EXEC_MORE | EXEC_TOOLONG)), bool(flags & EXEC_FAULT),
        bool(flags & EXEC_AT))
