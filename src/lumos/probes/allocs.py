"""Go heap allocations with stacks, aggregated in the kernel (lumos allocs).

One program, a body per site kind (the cookie's variant):

    0 malloc    runtime.mProf_Malloc (or mallocgc with --every): key = (pid, user stack
                id, size[, type]), value.count += 1, value.sum += size; with frees tracked, the
                key is also left in `pending` under the thread id
    1 bucket    runtime.setprofilebucket(p, b), called inside mProf_Malloc on the same
                thread: buckets[b] = pending[tid] (the runtime's bucket is its own
                (stack, size) record, so one b always stands for one key)
    2 free      runtime.mProf_Free(b, ...): counts[buckets[b]].frees += 1

The registers come from lumos.golang.heapsample per Go version.
"""

from __future__ import annotations

from contextlib import ExitStack

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
    Asm,
    Helper,
    Jeq,
    Mov,
    Rsh,
    atomic_add,
    call,
    exit_,
    ja,
    ld_map_fd,
    ldx,
    stx,
)
from lumos.bpf.maps import Map, create_map, hash_spec
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.capture import WordLoc, load_sp
from lumos.probes.stackcount import (
    STACK_KEY,
    STACK_VALUE,
    StackMaps,
    StackOptions,
    emit_bump,
    emit_count_key,
)

MALLOC, BUCKET, FREE = 0, 1, 2


class AllocMaps:
    def __init__(self, stack: ExitStack, track_frees: bool):
        self.stacks = StackMaps.create(stack)
        self.pending: Map | None = None
        self.buckets: Map | None = None
        if track_frees:
            self.pending = stack.enter_context(create_map(hash_spec(
                "lumos_allocpend", 8, STACK_KEY.size, 4096)))
            self.buckets = stack.enter_context(create_map(hash_spec(
                "lumos_allocbkt", 8, STACK_KEY.size, 65536, lru=True)))


def alloc_program(maps: AllocMaps, size_reg: str, setbucket_reg: str, free_reg: str,
                  tgid: int | None, attach_type: int, type_reg: str | None = None
                  ) -> ProgramSpec:
    """type_reg: the register holding the allocated *_type (mallocgc's typ), put in the
    key's aux2 so each (stack, size, type) is counted apart; None: not read."""
    a = Asm()
    frame = a.frame  # one frame for every emitter of the program
    track = maps.buckets is not None
    codegen.save_ctx(a)
    codegen.tgid_filter(a, tgid, "out")
    codegen.load_cookie(a, "out")
    a.emit(Mov.reg(R0, R7), Rsh.imm(R0, 40))
    kinds = ["malloc", "bucket", "free"] if track else ["malloc"]
    codegen.dispatch(a, R0, kinds)

    a.label("malloc")
    a.comment(f"alloc_program: an allocation; its size in {size_reg} (golang/heapsample)")
    load_sp(a)
    key = emit_count_key(a, frame, maps.stacks, StackOptions(
        caller_fix=False, aux=WordLoc.register(size_reg), tgid=tgid,
        aux2=WordLoc.register(type_reg) if type_reg else None), 0)
    emit_bump(a, frame, maps.stacks.counts, key)
    if track:
        tid = frame.slot("tid", 8)
        a.comment("alloc_program: pending[tid] = key, for setprofilebucket on this thread")
        a.emit(call(Helper.get_current_pid_tgid), stx(8, FP, tid, R0),
               ld_map_fd(R1, maps.pending), Mov.reg(R2, FP), Add.imm(R2, tid),
               Mov.reg(R3, FP), Add.imm(R3, key), Mov.imm(R4, 0),
               call(Helper.map_update_elem))
    a.emit(ja("out"))

    if track:
        tid = frame.slot("tid", 8)
        b = frame.slot("bucket", 8)
        a.label("bucket")
        a.comment(f"alloc_program: setprofilebucket(p, b): buckets[b={setbucket_reg}] = "
                  f"pending[tid]")
        a.emit(call(Helper.get_current_pid_tgid), stx(8, FP, tid, R0),
               ld_map_fd(R1, maps.pending), Mov.reg(R2, FP), Add.imm(R2, tid),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"), Mov.reg(R7, R0),
               ldx(8, R1, R6, codegen.PT_REGS[setbucket_reg]), stx(8, FP, b, R1),
               ld_map_fd(R1, maps.buckets), Mov.reg(R2, FP), Add.imm(R2, b),
               Mov.reg(R3, R7), Mov.imm(R4, 0), call(Helper.map_update_elem),
               ld_map_fd(R1, maps.pending), Mov.reg(R2, FP), Add.imm(R2, tid),
               call(Helper.map_delete_elem), ja("out"))

        a.label("free")
        a.comment(f"alloc_program: mProf_Free(b={free_reg}): counts[buckets[b]].frees += 1")
        a.emit(ldx(8, R1, R6, codegen.PT_REGS[free_reg]), stx(8, FP, b, R1),
               ld_map_fd(R1, maps.buckets), Mov.reg(R2, FP), Add.imm(R2, b),
               call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"), Mov.reg(R2, R0),
               ld_map_fd(R1, maps.stacks.counts), call(Helper.map_lookup_elem),
               Jeq.imm(R0, 0, "out"), Mov.imm(R1, 1),
               atomic_add(8, R0, STACK_VALUE.offset("frees"), R1), ja("out"))

    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())
    about = (f"stack\n{frame.layout()}\nmaps: counts {maps.stacks.counts!r}, stacks "
             f"{maps.stacks.stacks!r}, pending {maps.pending!r} (tid -> key), buckets "
             f"{maps.buckets!r} (runtime bucket -> key)\n{STACK_KEY.c_struct()}\n"
             f"{STACK_VALUE.c_struct()}")
    return ProgramSpec("lumos_allocs", BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                       expected_attach_type=attach_type, about=about)
