"""Counting distinct stacks in the kernel: stacks (uprobes), profile (perf events), allocs.

Each hit builds a key on the BPF stack, bumps a value in a hash map, and nothing
crosses to user space per hit (BCC's stackcount and profile work the same way):

    key   = STACK_KEY: pid, user stack id, kernel stack id, caller, aux, aux2, comm
    value = STACK_VALUE: count, sum (of aux: bytes for allocs), frees, pad

Stack ids come from bpf_get_stackid on a BPF_MAP_TYPE_STACK_TRACE map (the kernel walks
frame pointers, which Go keeps), so equal stacks share one entry. A negative id is the
helper's -errno (-EEXIST: a hash collision in the stack map, -EFAULT: no stack of that
kind, e.g. no kernel stack in user mode) and is counted like any other key.

caller: the kernel's walk starts at BP. At a uprobe on a Go entry site (in the
prologue, before the function saved BP) BP is still the caller's, so the walk skips the
caller itself; the program then reads the return address at SP + sp_delta (the bytes
pushed so far, per site) and puts it in the key, as trace --stack does. When BP is
already this frame's (BP == SP at entry - 8), caller is 0.

A site's cookie is its index (bits 0-31), its pt_regs->flags mask (bits 32-39, the
morestack pass of a Go prologue is dropped) and its variant (bits 40-63): here the
variant picks a program body per distinct sp_delta.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
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
    Add,
    And,
    Asm,
    Helper,
    Jeq,
    Jne,
    Mov,
    Rsh,
    Sub,
    atomic_add,
    call,
    exit_,
    ja,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.frame import Frame
from lumos.bpf.maps import Map, MapSpec, create_map, hash_spec, stack_trace_spec
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.capture import R_SP, WordLoc, emit_read_word, load_sp
from lumos.probes.record import Field, Record

BPF_F_USER_STACK = 1 << 8
BPF_NOEXIST = 1
MAX_DEPTH = 127            # the kernel's default perf_event_max_stack

STACK_KEY = Record("stack_key", [
    Field("pid", "u32"), Field("ustack", "s32", doc="bpf_get_stackid(USER) or -errno"),
    Field("kstack", "s32", doc="bpf_get_stackid(kernel) or -errno; -1: not asked"),
    Field("pad", "u32"),
    Field("caller", "u64", doc="return address the frame-pointer walk skipped, or 0"),
    Field("aux", "u64", doc="tool-defined: allocation size for allocs"),
    Field("aux2", "u64", doc="tool-defined, not summed: the *_type for allocs --every"),
    Field("comm", "bytes", 16),
])
STACK_VALUE = Record("stack_value", [
    Field("count", "u64"), Field("sum", "u64", doc="sum of aux"),
    Field("frees", "u64", doc="allocs: frees seen of this key"), Field("pad", "u64"),
])


@dataclass(frozen=True)
class StackOptions:
    """What one stack-count program records."""

    user: bool = True
    kernel: bool = False
    caller_fix: bool = True          # uprobe sites: put back the caller the walk skips
    aux: WordLoc | None = None       # a word to sum (and key by): allocation size
    aux2: WordLoc | None = None      # a word to key by only: the allocated type
    tgid: int | None = None
    skip_idle: bool = False          # whole-machine sampling: no samples of the idle task
    sampled_caller: bool = False     # perf events: [SP] when it looks like a return address


@dataclass
class StackMaps:
    counts: Map
    stacks: Map

    @staticmethod
    def create(stack: ExitStack, max_stacks: int = 16384, max_keys: int = 40960) -> StackMaps:
        counts = stack.enter_context(create_map(counts_spec(max_keys)))
        stacks = stack.enter_context(create_map(stack_trace_spec("lumos_stacks", MAX_DEPTH,
                                                                 max_stacks)))
        return StackMaps(counts, stacks)


def counts_spec(max_keys: int) -> MapSpec:
    return hash_spec("lumos_stackcnt", STACK_KEY.size, STACK_VALUE.size, max_keys)


def emit_count_key(a: Asm, frame: Frame, maps: StackMaps, opt: StackOptions,
                   sp_delta: int) -> int:
    """Build the key at FP+key (returned); R6 = ctx. Clobbers R0-R5."""
    key = frame.slot("stack_key", STACK_KEY.size)
    a.comment(f"emit_count_key: zero the {STACK_KEY.size}-byte key (holes must hash equal)")
    for off in range(0, STACK_KEY.size, 8):
        a.emit(st(8, FP, key + off, 0))
    a.comment("emit_count_key: pid (tgid), comm")
    a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32),
           stx(4, FP, key + STACK_KEY.offset("pid"), R0),
           Mov.reg(R1, FP), Add.imm(R1, key + STACK_KEY.offset("comm")), Mov.imm(R2, 16),
           call(Helper.get_current_comm))
    for kind, flags, want in (("ustack", BPF_F_USER_STACK, opt.user),
                              ("kstack", 0, opt.kernel)):
        if not want:
            a.emit(st(4, FP, key + STACK_KEY.offset(kind), -1))
            continue
        a.comment(f"emit_count_key: {kind} = bpf_get_stackid(ctx, stacks, {flags:#x})")
        a.emit(Mov.reg(R1, R6), ld_map_fd(R2, maps.stacks), Mov.imm(R3, flags),
               call(Helper.get_stackid), stx(4, FP, key + STACK_KEY.offset(kind), R0))
    if opt.caller_fix:
        done = a.fresh("caller_done")
        a.comment(f"emit_count_key: caller = *(SP+{sp_delta}) unless BP == SP at entry - 8 "
                  f"(sp_delta {sp_delta}: bytes this site's function pushed, pclntab pcsp)")
        a.emit(ldx(8, R1, R6, codegen.PT_REGS["bp"]), Sub.reg(R1, R_SP),
               Add.imm(R1, -sp_delta), Jeq.imm(R1, -8, done),
               Mov.reg(R1, FP), Add.imm(R1, key + STACK_KEY.offset("caller")), Mov.imm(R2, 8),
               Mov.reg(R3, R_SP), Add.imm(R3, sp_delta), call(Helper.probe_read_user))
        a.label(done)
    if opt.sampled_caller:
        emit_sampled_caller(a, frame, key + STACK_KEY.offset("caller"))
    if opt.aux is not None:
        a.comment(f"emit_count_key: aux = {opt.aux.kind} {opt.aux.reg or opt.aux.sp_offset}")
        emit_read_word(a, opt.aux, FP, key + STACK_KEY.offset("aux"))
    if opt.aux2 is not None:
        a.comment(f"emit_count_key: aux2 = {opt.aux2.kind} {opt.aux2.reg or opt.aux2.sp_offset}")
        emit_read_word(a, opt.aux2, FP, key + STACK_KEY.offset("aux2"))
    return key


def emit_sampled_caller(a: Asm, frame: Frame, dst: int) -> None:
    """FP+dst = the word at user SP if the byte 5 before it is 0xe8 (CALL rel32, how Go and
    C call): in a function that has not pushed a frame (a frameless leaf, a prologue)
    that word is the return address the frame-pointer walk skipped. User space keeps it
    only where the pclntab says the sampled function had pushed nothing (pcsp = 0)."""
    byte = frame.slot("call_byte", 8)
    done, clear = a.fresh("sc_done"), a.fresh("sc_clear")
    a.comment("emit_sampled_caller: user mode only ((regs->cs & 3) == 3)")
    a.emit(ldx(8, R1, R6, codegen.PT_REGS["cs"]), And.imm(R1, 3), Jne.imm(R1, 3, done),
           Mov.reg(R1, FP), Add.imm(R1, dst), Mov.imm(R2, 8), Mov.reg(R3, R_SP),
           call(Helper.probe_read_user), Jne.imm(R0, 0, clear))
    a.comment("emit_sampled_caller: keep it only after a CALL rel32 (0xe8 at word - 5)")
    a.emit(st(8, FP, byte, 0), Mov.reg(R1, FP), Add.imm(R1, byte), Mov.imm(R2, 1),
           ldx(8, R3, FP, dst), Add.imm(R3, -5), call(Helper.probe_read_user),
           Jne.imm(R0, 0, clear), ldx(1, R1, FP, byte), Jeq.imm(R1, 0xE8, done))
    a.label(clear)
    a.emit(st(8, FP, dst, 0))
    a.label(done)


def emit_bump(a: Asm, frame: Frame, counts: Map, key: int, field: str = "count",
              add_sum: bool = True, skip: str = "out") -> None:
    """counts[FP+key].field += 1 (and .sum += key.aux), creating the entry if new."""
    val = frame.slot("stack_value", STACK_VALUE.size)
    found = a.fresh("found")
    a.comment(f"emit_bump: value.{field} += 1 atomically; a new key starts at zero")
    a.emit(ld_map_fd(R1, counts), Mov.reg(R2, FP), Add.imm(R2, key),
           call(Helper.map_lookup_elem), Jne.imm(R0, 0, found))
    for off in range(0, STACK_VALUE.size, 8):
        a.emit(st(8, FP, val + off, 0))
    a.emit(ld_map_fd(R1, counts), Mov.reg(R2, FP), Add.imm(R2, key), Mov.reg(R3, FP),
           Add.imm(R3, val), Mov.imm(R4, BPF_NOEXIST), call(Helper.map_update_elem),
           ld_map_fd(R1, counts), Mov.reg(R2, FP), Add.imm(R2, key),
           call(Helper.map_lookup_elem), Jeq.imm(R0, 0, skip))  # map full: dropped
    a.label(found)
    a.emit(Mov.imm(R1, 1), atomic_add(8, R0, STACK_VALUE.offset(field), R1))
    if add_sum:
        a.emit(ldx(8, R1, FP, key + STACK_KEY.offset("aux")),
               atomic_add(8, R0, STACK_VALUE.offset("sum"), R1))


def stack_program(maps: StackMaps, opt: StackOptions, prog_type: int, attach_type: int = 0,
                  sp_deltas: tuple[int, ...] = (0,), name: str = "lumos_stackcnt") -> ProgramSpec:
    """One body per distinct sp_delta (the site's variant); perf events use one body."""
    a = Asm()
    frame = a.frame  # one frame for every emitter of the program
    uprobe = prog_type == BPF_PROG_TYPE_KPROBE
    a.comment("stack_program: R6 = ctx (pt_regs, or bpf_perf_event_data whose first "
              "member is pt_regs)")
    codegen.save_ctx(a)
    codegen.tgid_filter(a, opt.tgid, "out")
    if opt.skip_idle:
        a.comment("stack_program: not the idle task (pid 0)")
        a.emit(call(Helper.get_current_pid_tgid), Mov.reg32(R0, R0), Jeq.imm(R0, 0, "out"))
    if uprobe:
        codegen.load_cookie(a, "out")
        a.emit(Mov.reg(R0, R7), Rsh.imm(R0, 40))
        labels = [f"delta.{d}" for d in sp_deltas]
        codegen.dispatch(a, R0, labels)
    else:
        labels = ["body"]
    for label, delta in zip(labels, sp_deltas if uprobe else (0,), strict=True):
        a.label(label)
        load_sp(a)
        key = emit_count_key(a, frame, maps, dataclasses.replace(
            opt, caller_fix=opt.caller_fix and uprobe), delta)
        emit_bump(a, frame, maps.counts, key, add_sum=opt.aux is not None)
        a.emit(ja("out"))
    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())
    about = (f"stack\n{frame.layout()}\nmaps: {maps.counts!r} (key -> value), "
             f"{maps.stacks!r} (stack id -> {MAX_DEPTH} return addresses)\n"
             f"{STACK_KEY.c_struct()}\n{STACK_VALUE.c_struct()}")
    return ProgramSpec(name, prog_type, tuple(a.finish()), expected_attach_type=attach_type,
                       about=about)


@dataclass(frozen=True)
class StackCount:
    """One aggregated key, its stacks resolved to addresses (leaf first)."""

    pid: int
    comm: str
    user: tuple[int, ...]       # leaf first; the skipped caller put back in place
    kernel: tuple[int, ...]
    aux: int
    count: int
    sum: int
    frees: int
    user_error: int = 0         # -errno of a failed user stack id (0: fine)
    aux2: int = 0


def read_counts(maps: StackMaps, clear: bool = False,
                keep_caller: Callable[[int, int], bool] | None = None) -> list[StackCount]:
    """Every key with its stacks. Stack ids are looked up once each. keep_caller(pid,
    leaf address) says whether a recorded caller belongs in the stack (default: yes)."""
    ks, vs = STACK_KEY.struct, STACK_VALUE.struct
    cache: dict[int, tuple[int, ...]] = {}

    def stack_of(sid: int) -> tuple[int, ...]:
        if sid < 0:
            return ()
        if sid not in cache:
            raw = maps.stacks.lookup(struct.pack("<I", sid))
            ips = struct.unpack(f"<{MAX_DEPTH}Q", raw) if raw else ()
            cache[sid] = tuple(ip for ip in ips if ip) if 0 not in ips else \
                tuple(ips[:ips.index(0)])
        return cache[sid]

    out = []
    keys = list(maps.counts.items())
    for k, v in keys:
        pid, ustack, kstack, _pad, caller, aux, aux2, comm = ks.unpack(k)
        count, total, frees, _ = vs.unpack(v)
        user = stack_of(ustack)
        # the kernel adds the caller itself at a probe on `push %rbp` (Linux 6.11+)
        if caller and user and (len(user) < 2 or user[1] != caller) and (
                keep_caller is None or keep_caller(pid, user[0])):
            user = (user[0], caller) + user[1:]
        out.append(StackCount(pid, comm.split(b"\0", 1)[0].decode("utf-8", "replace"), user,
                              stack_of(kstack), aux, count, total, frees,
                              ustack if ustack < 0 else 0, aux2))
    if clear:
        for k, _ in keys:
            maps.counts.delete(k)
        for sid in cache:
            maps.stacks.delete(struct.pack("<I", sid))
    return out
