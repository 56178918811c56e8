"""The BPF program of `lumos http` and `lumos sql`: requests, the calls they make, summaries.

Sites (one program, dispatch on the variant in the cookie, see probesite.ProbeSite):

- server entry/RET (net/http.serverHandler.ServeHTTP, which HTTP/1.1 and HTTP/2 both
  reach): at entry the request's method and path are read (req.Method, req.URL.Path) and
  kept per goroutine in `requests` ((pid, goid) -> REQUEST); at the RET the response
  status and body bytes (http.response.status/written, or for HTTP/2 the writer state's
  status/wroteBytes) complete it.
- spawn (runtime.newproc's closure, on the system stack, at its CALL of runqput): a
  goroutine started while its parent serves a request gets a copy of the parent's
  entry: the new g is runqput's argument, the parent is g0.m.curg (the goroutine
  that switched to the system stack to run newproc); without those offsets, two sites
  (spawn entry/exit at the CALLs of newproc1 and runqput) pair through `pending`. So
  work the handler hands to goroutines (the goserver's checkSite) is tied to the
  request. Goroutine ids are never reused, so
  an entry left by a goroutine that ended is only memory, bounded by the LRU map.
- client entry/RET (net/http.(*Transport).roundTrip), sql entry/RET
  (database/sql.(*DB).queryDC/execDC, which DB, Tx and Conn use, and (*Stmt).QueryContext/
  ExecContext): the entry saves the pointers (request, SQL text, args) under the call's
  key (goid, pid << 32 | g.stack.hi - SP: latency.py's pairing, stable across stack moves);
  the RET reads through them, with the results (status, error, rows affected).

Every RET adds the call to a log2 histogram keyed by kind, status and text (path or the
first HIST_TEXT bytes of SQL) in the kernel, and sends a record only when the call took
at least `slow_ns` (--slow): the summary covers every call whatever is printed.

Memory: a per-CPU scratch array value (SCRATCH_BYTES) holds the big values (REQUEST
copies, the call state, the histogram key, pointers read on the way) that the 512-byte
stack cannot; the stack holds the small slots named in the Frame. Registers: R6 = ctx,
R7 = scratch pointer (after dispatch), R8 = the record, R9 = SP at the site.
"""

from __future__ import annotations

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
    Div,
    Helper,
    Jeq,
    Jge,
    Lsh,
    Mov,
    Or,
    Rsh,
    Sub,
    call,
    exit_,
    ja,
    ld_imm64,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes import reqrecord as rr
from lumos.probes.capture import R_SP, WordLoc, emit_read_word, load_sp
from lumos.probes.codegen import emit_counter_add, emit_hist_add, emit_log2

BPF_F_USER_STACK = 1 << 8
SCRATCH_BYTES = 512
S_REQ, S_CALL, S_HKEY, S_TMP, S_HVAL = 0, 176, 224, 320, 448   # scratch regions
S_FOLD = S_TMP + 96   # routefold's state (32 bytes)
assert rr.REQUEST.size <= S_CALL and S_CALL + rr.CALL.size <= S_HKEY
assert S_HKEY + rr.HIST_KEY.size <= S_TMP
OP_STMT = 8


@dataclass(frozen=True)
class ReqVariant:
    """What one kind of site does. words: at an entry, what to save (server: rw data,
    req; client: req; sql: query ptr, len or the *Stmt, args ptr, len; spawn: callergp);
    at a RET, where the results are (client: resp, err tab, err data; sql: err tab, err
    data[, result tab, result data]; spawn: the new g)."""

    kind: str
    words: tuple[WordLoc, ...] = ()
    sp_delta: int = 0
    op: int = 0          # sql: rr.QUERY or rr.EXEC, | OP_STMT for the *Stmt methods


@dataclass(frozen=True)
class Offsets:
    """Field offsets from golang.fields; None: unknown there, so never read."""

    goid: int
    req_method: int | None = None
    req_url: int | None = None
    req_proto: int | None = None
    url_scheme: int | None = None
    url_host: int | None = None
    url_path: int | None = None
    resp_status: int | None = None      # net/http.response.status
    resp_written: int | None = None
    h2_rws: int | None = None
    h2_status: int | None = None
    h2_bytes: int | None = None
    status_code: int | None = None      # net/http.Response.StatusCode
    stmt_query: int | None = None
    result_resi: int | None = None
    err_strings: tuple[int, ...] = ()   # offsets of string fields copied from an error
    g_m: int | None = None              # runtime.g.m, runtime.m.curg: the goroutine a
    m_curg: int | None = None           # system-stack probe runs for (spawn)


class ReqProgram:
    def __init__(self, variants: list[ReqVariant], offsets: Offsets, maps: dict, channel,
                 record, tgid: int | None, slow_ns: int = 0, user_stack: bool = False,
                 name: str = "lumos_http", emit_server: bool = True):
        self.variants, self.off, self.maps = variants, offsets, maps
        self.emit_server = emit_server
        self.channel, self.record, self.tgid = channel, record, tgid
        self.slow_ns, self.user_stack, self.name = slow_ns, user_stack, name
        self.frame = None   # the Asm's Frame, while a program is built

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        self.frame = a.frame
        for slot in ("drop", "goid", "frame", "tmp", "gptr", "dur", "status", "bytes",
                     "flags", "r0", "r1", "r2", "r3", "ptr"):
            self.frame.slot(slot, 8)
        self.frame.slot("key", 16)
        self.frame.slot("gkey", 16)
        codegen.save_ctx(a)
        codegen.tgid_filter(a, self.tgid, "out")
        codegen.load_cookie(a, "out")
        load_sp(a)
        a.comment(f"{self.name}: R7 = the per-CPU scratch value ({SCRATCH_BYTES} bytes)")
        a.emit(Mov.reg(R0, R7), Rsh.imm(R0, 40), stx(8, FP, self.frame["tmp"], R0),
               st(4, FP, self.frame["drop"], 0), ld_map_fd(R1, self.maps["scratch"]),
               Mov.reg(R2, FP), Add.imm(R2, self.frame["drop"]), call(Helper.map_lookup_elem),
               Jeq.imm(R0, 0, "out"), Mov.reg(R7, R0), ldx(8, R0, FP, self.frame["tmp"]))
        from lumos.probes.reqbodies import BODIES
        labels = [f"variant.{i}" for i in range(len(self.variants))]
        codegen.dispatch(a, R0, labels)
        for label, v in zip(labels, self.variants, strict=True):
            a.label(label)
            BODIES[v.kind](self, a, v)
            a.emit(ja("out"))
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        return ProgramSpec(self.name, BPF_PROG_TYPE_KPROBE, tuple(a.finish()),
                           expected_attach_type=attach_type,
                           about=self._about())

    def _about(self) -> str:
        maps = {"scratch": f"per-CPU array, {SCRATCH_BYTES} bytes: request copy at +{S_REQ}, "
                           f"call state at +{S_CALL}, summary key at +{S_HKEY}, reads at "
                           f"+{S_TMP}",
                "calls": "LRU hash (goid, pid << 32 | frame) -> lumos_call (entry to RET)",
                "requests": "LRU hash (pid, goid) -> lumos_request (what it serves)",
                "pending": "LRU hash pid_tgid -> parent goid (newproc1 to runqput)",
                "hist": "per-CPU hash lumos_hist_key -> (count, sum ns)",
                "hist_lost": "per-CPU array: calls a full summary map left out"}
        return "\n".join(["stack slots:", self.frame.layout(), "maps:",
                          *(f"  lumos_req_{k}: {v}" for k, v in maps.items()),
                          rr.REQUEST.c_struct(), rr.CALL.c_struct(), rr.HIST_KEY.c_struct(),
                          self.record.c_struct()])

    # -- shared pieces ---------------------------------------------------------------

    def _slot(self, name: str) -> int:
        return self.frame[name]

    def _goroutine(self, a: Asm, sp_delta: int, with_frame: bool = True) -> None:
        """goid, frame (g.stack.hi - SP at entry), key = (goid, pid << 32 | frame) and
        gkey = (pid, goid). g is R14 (Go's ABIInternal)."""
        f = self._slot
        a.comment(f"goroutine: g = R14, goid at g+{self.off.goid:#x}, stack.hi at g+0x8 "
                  "(golang.runtime layout)")
        a.emit(ldx(8, R3, R6, codegen.PT_REGS["r14"]), Add.imm(R3, self.off.goid),
               Mov.reg(R1, FP), Add.imm(R1, f("goid")), Mov.imm(R2, 8),
               call(Helper.probe_read_user))
        if with_frame:
            a.emit(ldx(8, R3, R6, codegen.PT_REGS["r14"]), Add.imm(R3, 8),
                   Mov.reg(R1, FP), Add.imm(R1, f("frame")), Mov.imm(R2, 8),
                   call(Helper.probe_read_user), ldx(8, R1, FP, f("frame")),
                   Sub.reg(R1, R_SP), Add.imm(R1, -sp_delta), stx(8, FP, f("frame"), R1))
        else:
            a.emit(st(8, FP, f("frame"), 0))
        a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), stx(8, FP, f("gkey"), R0),
               ldx(8, R1, FP, f("goid")), stx(8, FP, f("gkey") + 8, R1),
               stx(8, FP, f("key"), R1), Lsh.imm(R0, 32), ldx(8, R1, FP, f("frame")),
               Mov.reg32(R1, R1), Or.reg(R1, R0), stx(8, FP, f("key") + 8, R1))

    def _lookup(self, a: Asm, m: str, key_slot: str) -> None:
        a.emit(ld_map_fd(R1, self.maps[m]), Mov.reg(R2, FP), Add.imm(R2, self._slot(key_slot)),
               call(Helper.map_lookup_elem))

    def _delete(self, a: Asm, m: str, key_slot: str) -> None:
        a.emit(ld_map_fd(R1, self.maps[m]), Mov.reg(R2, FP), Add.imm(R2, self._slot(key_slot)),
               call(Helper.map_delete_elem))

    def _update(self, a: Asm, m: str, key_slot: str, scratch_off: int) -> None:
        a.emit(ld_map_fd(R1, self.maps[m]), Mov.reg(R2, FP), Add.imm(R2, self._slot(key_slot)),
               Mov.reg(R3, R7), Add.imm(R3, scratch_off), Mov.imm(R4, 0),
               call(Helper.map_update_elem))

    def _copy(self, a: Asm, dst, dst_off: int, src, src_off: int, size: int) -> None:
        for i in range(0, size, 8):
            a.emit(ldx(8, R1, src, src_off + i), stx(8, dst, dst_off + i, R1))

    def _save_call(self, a: Asm, v: ReqVariant, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """calls[key] = {now, the entry's words (then `extra` (field, slot) pairs), op}."""
        a.comment(f"{self.name}: save the call's pointers until its RET ({len(v.words)} words)")
        c = S_CALL
        self._zero(a, R7, c, rr.CALL.size)
        for i, loc in enumerate(v.words[:4]):
            emit_read_word(a, loc, R7, c + rr.CALL.offset(f"w{i}"))
        for fld, slot in extra:
            a.emit(ldx(8, R1, FP, self._slot(slot)), stx(8, R7, c + rr.CALL.offset(fld), R1))
        a.emit(st(8, R7, c + rr.CALL.offset("op"), v.op), call(Helper.ktime_get_ns),
               stx(8, R7, c + rr.CALL.offset("ts"), R0))
        self._update(a, "calls", "key", c)

    @staticmethod
    def _zero(a: Asm, base, off: int, size: int) -> None:
        for i in range(0, size, 8):
            a.emit(st(8, base, off + i, 0))

    def _take_call(self, a: Asm) -> None:
        """At a RET: scratch CALL = calls[key] (or out), the entry forgotten; gptr = the
        goroutine's request (or NULL); dur = now - ts."""
        f = self._slot
        a.comment(f"{self.name}: pair the RET with its entry (key: goid, frame)")
        self._lookup(a, "calls", "key")
        a.emit(Jeq.imm(R0, 0, "out"))
        self._copy(a, R7, S_CALL, R0, 0, rr.CALL.size)
        self._delete(a, "calls", "key")
        self._lookup(a, "requests", "gkey")
        a.emit(stx(8, FP, f("gptr"), R0), call(Helper.ktime_get_ns),
               ldx(8, R1, R7, S_CALL + rr.CALL.offset("ts")), Sub.reg(R0, R1),
               stx(8, FP, f("dur"), R0), st(8, FP, f("flags"), 0), st(8, FP, f("status"), 0),
               st(8, FP, f("bytes"), 0))

    def _set_flag(self, a: Asm, flag: int) -> None:
        a.emit(ldx(8, R1, FP, self._slot("flags")), Or.imm(R1, flag),
               stx(8, FP, self._slot("flags"), R1))

    def _read_ptr_field(self, a: Asm, ptr_slot: str, offset: int | None, dst_slot: str,
                        skip: str) -> None:
        """dst = *(u64 *)(*ptr_slot + offset); skip when the pointer is NULL or the
        offset is unknown."""
        if offset is None:
            a.emit(ja(skip))
            return
        a.emit(ldx(8, R3, FP, self._slot(ptr_slot)), Jeq.imm(R3, 0, skip), Mov.reg(R1, FP),
               Add.imm(R1, self._slot(dst_slot)), Mov.imm(R2, 8), Add.imm(R3, offset),
               call(Helper.probe_read_user))

    def _histogram(self, a: Asm, kind: int, fill_text) -> None:
        """hist[kind, log2(dur in µs), status, method, text] += (1, dur); fill_text(a,
        key_offset) writes the key's method, text_len and text (scratch at R7)."""
        f, h = self._slot, S_HKEY
        a.comment(f"{self.name}: summary histogram, log2 of microseconds, in the kernel")
        self._zero(a, R7, h, rr.HIST_KEY.size)
        a.emit(st(4, R7, h + rr.HIST_KEY.offset("kind"), kind),
               ldx(8, R1, FP, f("status")), stx(4, R7, h + rr.HIST_KEY.offset("status"), R1))
        fill_text(a, h)
        a.emit(ldx(8, R0, FP, f("dur")), Div.imm(R0, 1000))
        emit_log2(a, R0, R1)
        a.emit(stx(4, R7, h + rr.HIST_KEY.offset("slot"), R1))
        done, full = a.fresh("hist.done"), a.fresh("hist.full")
        a.comment(f"{self.name}: R8 = dur (the record is reserved after this)")
        a.emit(ldx(8, R8, FP, f("dur")))
        emit_hist_add(a, self.maps["hist"], h, R8, S_HVAL, done, full, base=R7)
        a.label(full)
        a.comment(f"{self.name}: the summary map is full: count the call as left out")
        emit_counter_add(a, self.maps["hist_lost"], 0, done)
        a.label(done)
        if self.slow_ns:
            a.comment(f"{self.name}: --slow: records only for calls of {self.slow_ns} ns "
                      "or more")
            cont = a.fresh("slow")
            a.emit(ldx(8, R1, FP, f("dur")), ld_imm64(R2, self.slow_ns),
                   Jge.reg(R1, R2, cont), ja("out"))
            a.label(cont)

    def _reserve(self, a: Asm, kind_slot_or_imm) -> None:
        """R8 = a record with the common fields filled (and the request's if any)."""
        f, r = self._slot, self.record
        self.channel.emit_reserve(a, r.size, R8, "out")
        a.comment(f"{self.name}: the record's common part ({r.name})")
        a.emit(call(Helper.ktime_get_ns), stx(8, R8, r.offset("ts"), R0),
               call(Helper.get_current_pid_tgid), stx(4, R8, r.offset("tid"), R0),
               Rsh.imm(R0, 32), stx(4, R8, r.offset("pid"), R0),
               ldx(8, R1, FP, f("goid")), stx(8, R8, r.offset("goid"), R1),
               ldx(8, R1, FP, f("dur")), stx(8, R8, r.offset("dur"), R1))
        if isinstance(kind_slot_or_imm, int):
            a.emit(st(4, R8, r.offset("kind"), kind_slot_or_imm))
        else:
            a.emit(ldx(8, R1, FP, f(kind_slot_or_imm)), stx(4, R8, r.offset("kind"), R1))
        none = a.fresh("noreq")
        a.emit(ldx(8, R2, FP, f("gptr")), Jeq.imm(R2, 0, none))
        self._copy(a, R8, r.offset("req_id"), R2, 0, rr.REQUEST.size)
        a.emit(ldx(8, R1, FP, f("flags")), Or.imm(R1, rr.F_PARENT), stx(8, FP, f("flags"), R1),
               ja(none + ".done"))
        a.label(none)
        self._zero(a, R8, r.offset("req_id"), rr.REQUEST.size)
        a.label(none + ".done")
        a.emit(Mov.imm(R0, 0))

    def _finish(self, a: Asm) -> None:
        """flags, the user stack if asked, submit."""
        f, r = self._slot, self.record
        a.emit(ldx(8, R1, FP, f("flags")), stx(4, R8, r.offset("flags"), R1))
        if self.user_stack:
            a.comment(f"{self.name}: user stack at the RET, and [SP] (the caller, which the "
                      "frame-pointer walk skips there)")
            off = r.offset("stack")
            a.emit(Mov.reg(R1, R6), Mov.reg(R2, R8), Add.imm(R2, off),
                   Mov.imm(R3, 8 * rr.STACK_DEPTH), Mov.imm(R4, BPF_F_USER_STACK),
                   call(Helper.get_stack), stx(8, R8, r.offset("stack_bytes"), R0),
                   Mov.reg(R1, R8), Add.imm(R1, r.offset("stack_ret")), Mov.imm(R2, 8),
                   Mov.reg(R3, R_SP), call(Helper.probe_read_user),
                   ldx(8, R1, R6, codegen.PT_REGS["bp"]), Sub.reg(R1, R_SP),
                   stx(8, R8, r.offset("stack_bp_delta"), R1))
        self.channel.emit_submit(a, R8)


MAX_INFLIGHT = 65536     # calls awaiting their RET, and goroutines tied to a request
HIST_KEYS = 16384        # distinct (kind, slot, status, text) summary buckets per CPU


def open_request_maps(stack) -> dict:
    """The program's maps, on `stack`: calls and requests are LRU (bounded whatever the
    traffic: an entry whose RET never comes, or a goroutine that ended, is evicted)."""
    from lumos.bpf.maps import array_spec, create_map, hash_spec
    from lumos.probes.latency import LRU_HEADROOM
    return {
        "scratch": stack.enter_context(create_map(array_spec(
            "lumos_req_scratch", SCRATCH_BYTES, 1, percpu=True))),
        "calls": stack.enter_context(create_map(hash_spec(
            "lumos_req_calls", 16, rr.CALL.size, LRU_HEADROOM * MAX_INFLIGHT, lru=True))),
        "requests": stack.enter_context(create_map(hash_spec(
            "lumos_req_goroutines", 16, rr.REQUEST.size, LRU_HEADROOM * MAX_INFLIGHT,
            lru=True))),
        "pending": stack.enter_context(create_map(hash_spec(
            "lumos_req_spawning", 8, 8, 4096, lru=True))),
        "hist": stack.enter_context(create_map(hash_spec(
            "lumos_req_hist", rr.HIST_KEY.size, 16, HIST_KEYS, percpu=True))),
        "hist_lost": stack.enter_context(create_map(array_spec(
            "lumos_req_hist_lost", 8, 1, percpu=True))),
    }


def summary_left_out(maps) -> int:
    """Calls the summary could not count: its map was full (HIST_KEYS buckets)."""
    import struct
    return sum(struct.unpack("<Q", v)[0]
               for v in maps["hist_lost"].lookup_percpu(struct.pack("<I", 0)) or [])
