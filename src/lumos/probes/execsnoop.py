"""exec() events with their whole argument list and result, from syscall tracepoints.

Three programs share one in-flight map keyed by thread id (libbpf-tools' execsnoop does
the same with a hash of events):

- at sys_enter_execve / sys_enter_execveat the filename and argv[0..] are copied from
  the caller's memory, each argument up to ARG_BYTES (a longer one is cut and marked),
  up to max_args of them and ARGS_BYTES in all. This is all BCC and bpftrace ever read,
  and it misses every string whose page the caller has not touched yet (after fork, a
  child's file-backed .rodata is not mapped until used: `/bin/true` in a static binary
  reads as nothing);
- at sched_process_exec, an exec from a thread other than the leader has just taken
  the leader's id (de_thread): the entry moves from the old thread id to the new one,
  so such execs are not lost (libbpf-tools drops them);
- at sys_exit_execve / sys_exit_execveat the result and the new comm are added. When the
  exec succeeded, the arguments are read again where the kernel has just copied them,
  in the new program's stack: mm->arg_start..arg_end (what /proc/PID/cmdline shows, in
  one read, no per-argument limit) and the filename just above the environment
  (mm->env_end: the kernel copies it first). These pages were written by the kernel a
  moment ago, so they are always there. For a script this is the argv the kernel made
  (interpreter first), as ps shows it. Then the entry goes to the ring buffer, failures
  included (RET is -errno, arguments as read at entry).

Record field offsets come from EXEC_EVENT; tracepoint record offsets from tracefs
`format` files; task_struct and mm_struct offsets from vmlinux BTF. Filters (-u, -P,
-x, -n) are constants of the programs.
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
    Jle,
    Jne,
    Jsgt,
    Lsh,
    Mov,
    Or,
    Rsh,
    Sub,
    call,
    exit_,
    ja,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.btf import load_vmlinux_btf
from lumos.bpf.frame import Frame
from lumos.bpf.links import attach_tracepoint
from lumos.bpf.maps import array_spec, create_map, hash_spec
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.sys import BPF_ANY, BPF_PROG_TYPE_TRACEPOINT
from lumos.bpf.tracefs import has_tracepoint, require_tracepoint
from lumos.errors import NotSupportedError
from lumos.probes.channel import EventChannel
from lumos.probes.ktask import (
    TASK_COMM_LEN,
    TaskLayout,
    btf_member,
    emit_comm_filter,
    emit_current_ppid,
    emit_read_kernel,
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
EXEC_MM = 16         # arguments from the new program's memory (complete, see above)

EXEC_EVENT = Record("exec_event", [
    Field("ts_ns", "u64", doc="bpf_ktime_get_ns() at execve entry"),
    Field("cut_mask", "u64", doc="bit i: argument i was longer than ARG_BYTES - 1 and cut"),
    Field("pid", "u32", doc="tgid"),
    Field("tid", "u32", doc="the thread that called execve"),
    Field("ppid", "u32", doc="current->real_parent->tgid (vmlinux BTF)"),
    Field("uid", "u32"),
    Field("ret", "s32", doc="sys_exit_execve ret: 0 or -errno"),
    Field("flags", "u32", doc="EXEC_MORE 1 | TOOLONG 2 | FAULT 4 | AT 8 | MM 16"),
    Field("args_count", "u32", doc="arguments read at entry (with EXEC_MM: count the NULs)"),
    Field("args_size", "u32", doc="bytes of args used"),
    Field("args_total", "u32", doc="with EXEC_MM: mm->arg_end - mm->arg_start"),
    Field("comm", "bytes", TASK_COMM_LEN, doc="current->comm at exit: the new program's"),
    Field("filename", "bytes", ARG_BYTES, doc="the path execve was given"),
    Field("args", "bytes", ARGS_BYTES + ARG_BYTES, doc="argv[0], argv[1], ... NUL-terminated"),
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
        btf = load_vmlinux_btf()
        self.task_mm = btf_member(btf, "task_struct", "mm")[0]
        self.mm = {f: btf_member(btf, "mm_struct", f)[0]
                   for f in ("arg_start", "arg_end", "env_end")}
        if (self.mm["arg_end"] - self.mm["arg_start"] != 8
                or not 8 <= self.mm["env_end"] - self.mm["arg_start"] <= 24):
            raise NotSupportedError("mm_struct arg_start..env_end", "",
                                    f"not adjacent in this kernel's BTF: {self.mm}")
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

    def _emit_new_image_args(self, a: Asm, frame: Frame) -> None:
        """After a successful exec: argv and the filename from the new program's stack."""
        mm, area = frame.slot("mm", 8), frame.slot("mm_arg_env", 32)
        m = self.mm
        a.comment(f"emit_exec_args: current->mm (+{self.task_mm:#x}), its arg_start, arg_end, "
                  f"env_end at +{m['arg_start']:#x} +{m['arg_end']:#x} +{m['env_end']:#x} "
                  f"(vmlinux BTF mm_struct)")
        a.emit(call(Helper.get_current_task))
        emit_read_kernel(a, FP, mm, 8, R0, self.task_mm)
        a.emit(ldx(8, R0, FP, mm))
        emit_read_kernel(a, FP, area, 32, R0, m["arg_start"])
        a.comment(f"emit_exec_args: mm->arg_start .. arg_end, at most {ARGS_BYTES} bytes, "
                  f"in one read")
        a.emit(ldx(8, R2, FP, area + m["arg_end"] - m["arg_start"]), ldx(8, R3, FP, area),
               Sub.reg(R2, R3), stx(4, R7, OFF["args_total"], R2),
               Jle.imm(R2, ARGS_BYTES, "mm.fits"), Mov.imm(R2, ARGS_BYTES))
        a.label("mm.fits")
        a.emit(Mov.reg(R8, R2), Mov.reg(R1, R7), Add.imm(R1, OFF["args"]),
               call(Helper.probe_read_user), Jeq.imm(R0, 0, "mm.read"),
               *_or_flag(EXEC_FAULT), ja("comm"))
        a.label("mm.read")
        a.emit(stx(4, R7, OFF["args_size"], R8), st(8, R7, OFF["cut_mask"], 0),
               *_or_flag(EXEC_MM))
        a.comment("emit_exec_args: the filename, just above the environment strings")
        a.emit(ldx(8, R3, FP, area + m["env_end"] - m["arg_start"]), Mov.reg(R1, R7),
               Add.imm(R1, OFF["filename"]), Mov.imm(R2, ARG_BYTES),
               call(Helper.probe_read_user_str))

    def _about(self, frame: Frame) -> str:
        return (f"stack:\n{frame.layout()}\nmaps: lumos_execs (tid -> exec_event, LRU "
                f"{MAX_INFLIGHT}), lumos_exec_zero (one zeroed exec_event)\n"
                f"{EXEC_EVENT.c_struct()}")

    def _enter(self, syscall: str, fields) -> ProgramSpec:
        f, task = self.filt, self.task
        a = Asm()
        frame = a.frame
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
        a.comment(f"emit_exec_enter: the filename ({tp} field filename at "
                  f"+{fields['filename'].offset}, tracefs format)")
        a.emit(ldx(8, R3, R6, fields["filename"].offset), Mov.reg(R1, R7),
               Add.imm(R1, OFF["filename"]), Mov.imm(R2, ARG_BYTES),
               call(Helper.probe_read_user_str), Mov.imm(R8, 0))
        argv = fields["argv"].offset
        for i in range(f.max_args):
            a.comment(f"emit_exec_enter: argv[{i}] (argv at +{argv} of {tp})")
            a.emit(ldx(8, R3, R6, argv), Add.imm(R3, 8 * i), Mov.reg(R1, FP),
                   Add.imm(R1, argp), Mov.imm(R2, 8), call(Helper.probe_read_user),
                   Jne.imm(R0, 0, "fault"), ldx(8, R3, FP, argp), Jeq.imm(R3, 0, "done"))
            if i:
                a.emit(Jgt.imm(R8, ARGS_BYTES, "toolong"))
            a.emit(Mov.reg(R1, R7), Add.imm(R1, OFF["args"]), Add.reg(R1, R8),
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
        a = Asm()
        frame = a.frame
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
        a = Asm()
        frame = a.frame
        key = frame.slot("tid_key", 4)
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
        else:
            a.emit(Jne.imm(R1, 0, "comm"))
            self._emit_new_image_args(a, frame)
        a.label("comm")
        a.emit(Mov.reg(R1, R7), Add.imm(R1, OFF["comm"]), Mov.imm(R2, TASK_COMM_LEN),
               call(Helper.get_current_comm))
        emit_comm_filter(a, R7, OFF["comm"], f.comm, "drop")
        a.comment("emit_exec_exit: the whole entry to the ring buffer")
        self.channel.emit_reserve(a, EXEC_EVENT.size, R8, "drop")
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
    filename: bytes
    args: list[bytes]      # argv[0], argv[1], ...
    cut: list[bool]        # per argument: cut (at ARG_BYTES - 1, or the end of ARGS_BYTES)
    more: bool             # arguments left out (--max-args, or ARGS_BYTES full)
    fault: bool            # argv could not be read to its end
    execveat: bool
    complete: bool         # read from the new program's memory (EXEC_MM)


_STRUCT = EXEC_EVENT.struct


def decode_exec(rec, max_args: int = MAX_ARGS) -> ExecEvent:
    (ts, cut_mask, pid, tid, ppid, uid, ret, flags, count, size, total, comm, filename,
     args) = _STRUCT.unpack_from(rec)
    from_mm = bool(flags & EXEC_MM)
    area = args[:size]
    if from_mm:  # NUL-separated strings; a cut area ends inside the last one
        parts = area.split(b"\0")
        if area.endswith(b"\0"):
            parts.pop()
        cut = [False] * len(parts)
        more = total > size
        if more and parts and not area.endswith(b"\0"):
            cut[-1] = True
        if len(parts) > max_args:
            parts, cut, more = parts[:max_args], cut[:max_args], True
    else:
        parts = area.split(b"\0")[:count]
        cut = [bool(cut_mask >> i & 1) for i in range(len(parts))]
        more = bool(flags & (EXEC_MORE | EXEC_TOOLONG))
    return ExecEvent(ts, pid, tid, ppid, uid, ret,
                     comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
                     filename.split(b"\0", 1)[0], parts, cut, more,
                     bool(flags & EXEC_FAULT) and not from_mm, bool(flags & EXEC_AT), from_mm)
