"""The bodies of reqprog's variants: what each site reads and where it goes.

Each body is `body(p, a, v)`: p the ReqProgram (frame slots, maps, offsets, shared
pieces), a the assembler, v the ReqVariant. See reqprog's docstring for the flow.
Field offsets come from p.off; a None offset means lumos could not place that field in
this binary, and the body reads nothing for it (the record's flag stays clear and the
tool prints it as unknown).
"""

from __future__ import annotations

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R6,
    R7,
    R8,
    Add,
    Asm,
    Helper,
    Jeq,
    Jle,
    Jne,
    Mov,
    Rsh,
    Sub,
    call,
    ja,
    ldx,
    st,
    stx,
)
from lumos.probes import codegen
from lumos.probes import reqrecord as rr
from lumos.probes.capture import emit_read_word
from lumos.probes.fieldpath import emit_copy_string, emit_read_at
from lumos.probes.reqprog import OP_STMT, S_CALL, S_FOLD, S_REQ, S_TMP, ReqProgram, ReqVariant
from lumos.probes.routefold import emit_fold

W0, W1, W2, W3 = (S_CALL + rr.CALL.offset(f"w{i}") for i in range(4))
REQ = rr.REQUEST


def _field(p: ReqProgram, a: Asm, base_slot: str, offset: int | None, size: int, dst,
           dst_off: int, skip: str) -> None:
    """size bytes at *(base_slot) + offset into dst + dst_off; skip if NULL or unknown."""
    if offset is None:
        a.emit(ja(skip))
        return
    a.emit(ldx(8, R3, FP, p.frame[base_slot]), Jeq.imm(R3, 0, skip))
    emit_read_at(a, p.frame[base_slot], offset, size, dst, dst_off)


def _server_entry(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    """ServeHTTP: the goroutine now serves req; its id is the start time."""
    o, f = p.off, p.frame
    p._goroutine(a, v.sp_delta, with_frame=False)
    a.comment("server entry: req from the ServeHTTP arguments")
    emit_read_word(a, v.words[0], FP, f["r1"])
    a.emit(ldx(8, R1, FP, f["r1"]), Jeq.imm(R1, 0, "out"))
    p._zero(a, R7, S_REQ, REQ.size)
    a.comment(f"server entry: req.Method at +{o.req_method}, req.URL at +{o.req_url}, "
              f"URL.Path at +{o.url_path} (golang.fields)")
    m = a.fresh("method")
    _field(p, a, "r1", o.req_method, 16, R7, S_TMP, m)
    a.emit(ldx(8, R1, R7, S_TMP + 8), stx(4, R7, S_REQ + REQ.offset("method_len"), R1))
    emit_copy_string(a, R7, S_TMP, rr.METHOD_BYTES, R7, S_REQ + REQ.offset("method"))
    a.label(m)
    u = a.fresh("url")
    _field(p, a, "r1", o.req_url, 8, FP, f["ptr"], u)
    _field(p, a, "ptr", o.url_path, 16, R7, S_TMP + 16, u)
    a.emit(ldx(8, R1, R7, S_TMP + 24), stx(4, R7, S_REQ + REQ.offset("path_len"), R1))
    emit_copy_string(a, R7, S_TMP + 16, rr.PATH_BYTES, R7, S_REQ + REQ.offset("path"))
    a.label(u)
    a.emit(Mov.imm(R0, 0))
    emit_fold(a, R7, S_REQ + REQ.offset("path"), S_REQ + REQ.offset("path_len"),
              rr.PATH_BYTES, S_REQ + REQ.offset("route"), S_REQ + REQ.offset("route_len"),
              rr.ROUTE_BYTES, S_FOLD)
    a.emit(call(Helper.ktime_get_ns), stx(8, R7, S_REQ + REQ.offset("id"), R0))
    p._update(a, "requests", "gkey", S_REQ)


def _server_done(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    """finishRequest (HTTP/1.x, w *response) or handlerDone (HTTP/2, w *responseWriter)
    on the goroutine that served the request: its status, bytes and duration."""
    o, f = p.off, p.frame
    h2 = bool(v.op)
    p._goroutine(a, v.sp_delta, with_frame=False)
    if not p.emit_server:  # lumos sql: the request is over, its goroutine serves no more
        p._delete(a, "requests", "gkey")
        return
    p._lookup(a, "requests", "gkey")
    a.emit(Jeq.imm(R0, 0, "out"), stx(8, FP, f["gptr"], R0), ldx(8, R1, R0, REQ.offset("id")),
           stx(8, FP, f["dur"], R1), call(Helper.ktime_get_ns), ldx(8, R1, FP, f["dur"]),
           Sub.reg(R0, R1), stx(8, FP, f["dur"], R0), st(8, FP, f["flags"], 0),
           st(8, FP, f["status"], 0), st(8, FP, f["bytes"], 0))
    emit_read_word(a, v.words[0], FP, f["ptr"])
    done = a.fresh("status")
    if h2:
        a.comment(f"server done, HTTP/2: w.rws at +{o.h2_rws}, rws.status at +{o.h2_status},"
                  f" rws.wroteBytes at +{o.h2_bytes}")
        p._set_flag(a, rr.F_H2)
        _field(p, a, "ptr", o.h2_rws, 8, FP, f["ptr"], done)
        _status_bytes(p, a, o.h2_status, o.h2_bytes, done)
    else:
        a.comment(f"server done, HTTP/1.x: w.status at +{o.resp_status}, w.written at "
                  f"+{o.resp_written}")
        _status_bytes(p, a, o.resp_status, o.resp_written, done)
    a.label(done)
    a.emit(Mov.imm(R0, 0))

    def fill(a: Asm, h: int) -> None:
        a.emit(ldx(8, R2, FP, f["gptr"]), ldx(8, R1, R2, REQ.offset("method")),
               stx(8, R7, h + rr.HIST_KEY.offset("method"), R1),
               ldx(4, R1, R2, REQ.offset("route_len")),
               stx(4, R7, h + rr.HIST_KEY.offset("text_len"), R1))
        p._copy(a, R7, h + rr.HIST_KEY.offset("text"), R2, REQ.offset("route"), rr.HIST_TEXT)

    p._histogram(a, rr.SERVER, fill)
    p._reserve(a, rr.SERVER)
    r = p.record
    a.emit(ldx(8, R1, FP, f["status"]), stx(8, R8, r.offset("status"), R1),
           ldx(8, R1, FP, f["bytes"]), stx(8, R8, r.offset("bytes"), R1))
    p._zero(a, R8, r.offset("err_type"), r.offset("stack_bytes") - r.offset("err_type"))
    p._finish(a)
    p._delete(a, "requests", "gkey")


def _status_bytes(p: ReqProgram, a: Asm, status_off, bytes_off, skip: str) -> None:
    if status_off is not None:
        _field(p, a, "ptr", status_off, 8, FP, p.frame["status"], skip)
        p._set_flag(a, rr.F_STATUS)
    if bytes_off is not None:
        _field(p, a, "ptr", bytes_off, 8, FP, p.frame["bytes"], skip)
        p._set_flag(a, rr.F_BYTES)


def _client_entry(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    p._goroutine(a, v.sp_delta)
    p._save_call(a, v)


def _client_exit(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    o, f = p.off, p.frame
    p._goroutine(a, 0)
    p._take_call(a)
    a.comment("client RET: resp, err (itab, data) from roundTrip's results")
    emit_read_word(a, v.words[0], FP, f["r0"])
    emit_read_word(a, v.words[1], FP, f["r1"])
    a.emit(ldx(8, R1, R7, W0), stx(8, FP, f["ptr"], R1))
    p._zero(a, R7, S_TMP, 72)
    a.comment(f"client RET: req.Method at +{o.req_method}, req.URL at +{o.req_url}; URL."
              f"Scheme/Host/Path at +{o.url_scheme}/+{o.url_host}/+{o.url_path}")
    m = a.fresh("method")
    _field(p, a, "ptr", o.req_method, 16, R7, S_TMP, m)
    a.label(m)
    u = a.fresh("url")
    _field(p, a, "ptr", o.req_url, 8, FP, f["r2"], u)
    for off, dst in ((o.url_scheme, 24), (o.url_host, 40), (o.url_path, 56)):
        nxt = a.fresh("urlpart")
        _field(p, a, "r2", off, 16, R7, S_TMP + dst, nxt)
        a.label(nxt)
        a.emit(Mov.imm(R0, 0))
    a.label(u)
    a.emit(st(8, FP, f["r3"], 0))
    s = a.fresh("resp")
    a.comment(f"client RET: resp.StatusCode at +{o.status_code}")
    _field(p, a, "r0", o.status_code, 8, FP, f["status"], s)
    p._set_flag(a, rr.F_STATUS)
    a.label(s)
    e = a.fresh("err")
    a.emit(ldx(8, R3, FP, f["r1"]), Jeq.imm(R3, 0, e))
    p._set_flag(a, rr.F_ERR)
    a.comment("client RET: the error's type (itab._type at +8)")
    emit_read_at(a, f["r1"], 8, 8, FP, f["r3"])
    a.label(e)
    a.emit(Mov.imm(R0, 0))

    def fill(a: Asm, h: int) -> None:
        emit_copy_string(a, R7, S_TMP, rr.METHOD_BYTES, R7, h + rr.HIST_KEY.offset("method"))
        a.emit(ldx(8, R1, R7, S_TMP + 64), stx(4, R7, h + rr.HIST_KEY.offset("text_len"), R1))
        emit_copy_string(a, R7, S_TMP + 56, rr.HIST_TEXT, R7, h + rr.HIST_KEY.offset("text"))

    p._histogram(a, rr.CLIENT, fill)
    p._reserve(a, rr.CLIENT)
    r = p.record
    a.emit(ldx(8, R1, FP, f["status"]), stx(8, R8, r.offset("status"), R1),
           st(8, R8, r.offset("bytes"), 0), ldx(8, R1, FP, f["r3"]),
           stx(8, R8, r.offset("err_type"), R1))
    for hdr, name, size in ((0, "method", rr.METHOD_BYTES), (56, "path", rr.PATH_BYTES),
                            (24, "scheme", 8), (40, "host", rr.HOST_BYTES)):
        a.emit(ldx(8, R1, R7, S_TMP + hdr + 8), stx(4, R8, r.offset(f"{name}_len"), R1))
        p._zero(a, R8, r.offset(name), size)
        emit_copy_string(a, R7, S_TMP + hdr, size, R8, r.offset(name))
    p._finish(a)


def _sql_entry(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    p._goroutine(a, v.sp_delta)
    p._save_call(a, v)


def _sql_exit(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    o, f, r = p.off, p.frame, p.record
    p._goroutine(a, 0)
    p._take_call(a)
    a.comment("sql RET: err (itab, data) and, for an exec, the Result (itab, data)")
    for i, slot in enumerate(("r0", "r1", "r2", "r3")):
        if i < len(v.words):
            emit_read_word(a, v.words[i], FP, f[slot])
        else:
            a.emit(st(8, FP, f[slot], 0))
    if v.op & OP_STMT:
        a.comment(f"sql RET: the statement's text, Stmt.query at +{o.stmt_query}")
        a.emit(ldx(8, R1, R7, W0), stx(8, FP, f["ptr"], R1), st(8, R7, W0, 0), st(8, R7, W1, 0))
        q = a.fresh("stmt")
        _field(p, a, "ptr", o.stmt_query, 16, R7, W0, q)
        a.label(q)
        a.emit(Mov.imm(R0, 0))
    ok = a.fresh("noerr")
    a.emit(ldx(8, R1, FP, f["r0"]), Jeq.imm(R1, 0, ok), st(8, FP, f["status"], 1))
    p._set_flag(a, rr.F_ERR)
    a.label(ok)
    a.emit(Mov.imm(R0, 0))

    def fill(a: Asm, h: int) -> None:
        a.emit(ldx(8, R1, R7, W1), stx(4, R7, h + rr.HIST_KEY.offset("text_len"), R1))
        emit_copy_string(a, R7, W0, rr.HIST_TEXT, R7, h + rr.HIST_KEY.offset("text"))

    kind = v.op & 7
    p._histogram(a, kind, fill)
    p._reserve(a, kind)
    a.comment(f"sql RET: the text (up to {rr.TEXT_BYTES} bytes)")
    a.emit(ldx(8, R1, R7, W1), stx(8, R8, r.offset("text_len"), R1))
    emit_copy_string(a, R7, W0, rr.TEXT_BYTES, R8, r.offset("text"))
    _sql_args(p, a)
    _sql_error(p, a)
    if kind == rr.EXEC:
        _sql_rows(p, a)
    else:
        a.emit(st(8, R8, r.offset("res_type"), 0))
    p._finish(a)


def _sql_args(p: ReqProgram, a: Asm) -> None:
    """args []any: per element its (type, data) words, 24 bytes at data (an int, float,
    bool, string header or time.Time) and up to ARG_STR_BYTES of the string it may be."""
    r = p.record
    a.comment(f"sql RET: the first {rr.MAX_ARGS} args (eface type, data; 24 bytes at data)")
    a.emit(ldx(8, R1, R7, W3), stx(8, R8, r.offset("nargs"), R1))
    p._zero(a, R8, r.offset("args"), rr.MAX_ARGS * rr.ARG_SIZE)
    done = a.fresh("args.done")
    for i in range(rr.MAX_ARGS):
        base = r.offset("args") + i * rr.ARG_SIZE
        nxt = a.fresh("arg")
        a.emit(ldx(8, R1, R8, r.offset("nargs")), Jle.imm(R1, i, done),
               Mov.reg(R1, R8), Add.imm(R1, base), Mov.imm(R2, 16), ldx(8, R3, R7, W2),
               Jeq.imm(R3, 0, done), Add.imm(R3, 16 * i), call(Helper.probe_read_user),
               ldx(8, R3, R8, base + 8), Jeq.imm(R3, 0, nxt),
               Mov.reg(R1, R8), Add.imm(R1, base + 16), Mov.imm(R2, 24),
               call(Helper.probe_read_user))
        emit_copy_string(a, R8, base + 16, rr.ARG_STR_BYTES, R8, base + 40)
        a.label(nxt)
        a.emit(Mov.imm(R0, 0))
    a.label(done)
    a.emit(Mov.imm(R0, 0))


def _sql_error(p: ReqProgram, a: Asm) -> None:
    """The error's type (itab._type), its first 64 bytes, and the strings at the offsets
    where known error types keep their message (golang.fields: errors.errorString.s,
    pq.Error.Message, ...): user space picks the right one by the type's name."""
    r, f = p.record, p.frame
    p._zero(a, R8, r.offset("err_type"), 8 + 64 + rr.ERR_CANDIDATES * (8 + rr.ERR_BYTES))
    done = a.fresh("err.done")
    a.comment(f"sql RET: error strings at +{list(p.off.err_strings)} of the error's struct")
    a.emit(ldx(8, R3, FP, f["r0"]), Jeq.imm(R3, 0, done), Mov.reg(R1, R8),
           Add.imm(R1, r.offset("err_type")), Mov.imm(R2, 8), Add.imm(R3, 8),
           call(Helper.probe_read_user), ldx(8, R3, FP, f["r1"]), Jeq.imm(R3, 0, done),
           Mov.reg(R1, R8), Add.imm(R1, r.offset("err_struct")), Mov.imm(R2, 64),
           call(Helper.probe_read_user))
    for k, off in enumerate(p.off.err_strings[:rr.ERR_CANDIDATES]):
        if off + 16 > 64:
            continue
        slot = r.offset("errs") + k * (8 + rr.ERR_BYTES)
        a.emit(ldx(8, R1, R8, r.offset("err_struct") + off + 8), stx(8, R8, slot, R1))
        emit_copy_string(a, R8, r.offset("err_struct") + off, rr.ERR_BYTES, R8, slot + 8)
    a.label(done)
    a.emit(Mov.imm(R0, 0))


def _sql_rows(p: ReqProgram, a: Asm) -> None:
    """Rows affected: Result is a driverResult{Locker, resi driver.Result}; resi's type
    and 16 bytes at its data (driver.RowsAffected: the int64; SQLite: {id, changes})."""
    r, f, o = p.record, p.frame, p.off
    p._zero(a, R8, r.offset("res_type"), 24)
    done = a.fresh("rows.done")
    a.comment(f"sql RET: Result -> driverResult.resi at +{o.result_resi}")
    a.emit(ldx(8, R1, FP, f["r0"]), Jne.imm(R1, 0, done))
    _field(p, a, "r3", o.result_resi, 16, R7, S_TMP, done)
    a.emit(ldx(8, R3, R7, S_TMP), Jeq.imm(R3, 0, done), Mov.reg(R1, R8),
           Add.imm(R1, r.offset("res_type")), Mov.imm(R2, 8), Add.imm(R3, 8),
           call(Helper.probe_read_user), ldx(8, R3, R7, S_TMP + 8), Jeq.imm(R3, 0, done),
           Mov.reg(R1, R8), Add.imm(R1, r.offset("res_val")), Mov.imm(R2, 16),
           call(Helper.probe_read_user))
    p._set_flag(a, rr.F_ROWS)
    a.label(done)
    a.emit(Mov.imm(R0, 0))


def _spawn_entry(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    """newproc1 entry (on the system stack): remember the parent if it serves a request."""
    f, o = p.frame, p.off
    a.comment(f"spawn entry: callergp.goid at +{o.goid:#x}; only parents that serve a "
              "request matter")
    emit_read_word(a, v.words[0], FP, f["r0"])
    a.emit(ldx(8, R3, FP, f["r0"]), Jeq.imm(R3, 0, "out"))
    emit_read_at(a, f["r0"], o.goid, 8, R7, S_TMP)
    a.emit(call(Helper.get_current_pid_tgid), stx(8, FP, f["key"], R0), Rsh.imm(R0, 32),
           stx(8, FP, f["gkey"], R0), ldx(8, R1, R7, S_TMP), stx(8, FP, f["gkey"] + 8, R1))
    p._lookup(a, "requests", "gkey")
    none = a.fresh("spawn.none")
    a.emit(Jeq.imm(R0, 0, none))
    p._update(a, "pending", "key", S_TMP)
    a.emit(ja("out"))
    a.label(none)   # a parent serving nothing: no older parent may be left for this thread
    p._delete(a, "pending", "key")


def _spawn_exit(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    """newproc1 RET: the new goroutine gets a copy of its parent's request."""
    f = p.frame
    a.emit(call(Helper.get_current_pid_tgid), stx(8, FP, f["key"], R0))
    p._lookup(a, "pending", "key")
    a.emit(Jeq.imm(R0, 0, "out"), ldx(8, R1, R0, 0), stx(8, FP, f["gkey"] + 8, R1))
    p._delete(a, "pending", "key")
    a.emit(ldx(8, R0, FP, f["key"]), Rsh.imm(R0, 32), stx(8, FP, f["gkey"], R0))
    _give_request(p, a, v, "spawn RET: the new g")


def _give_request(p: ReqProgram, a: Asm, v: ReqVariant, what: str) -> None:
    """requests[(pid, new goid)] = requests[gkey] (the parent's), if it serves one;
    the new g is the variant's first word."""
    f, o = p.frame, p.off
    p._lookup(a, "requests", "gkey")
    a.emit(Jeq.imm(R0, 0, "out"))
    p._copy(a, R7, S_REQ, R0, 0, REQ.size)
    a.comment(f"{what}, its goid at +{o.goid:#x}")
    emit_read_word(a, v.words[0], FP, f["r0"])
    a.emit(ldx(8, R3, FP, f["r0"]), Jeq.imm(R3, 0, "out"))
    emit_read_at(a, f["r0"], o.goid, 8, FP, f["gkey"] + 8)
    p._update(a, "requests", "gkey", S_REQ)


def _spawn(p: ReqProgram, a: Asm, v: ReqVariant) -> None:
    """At newproc's CALL of runqput (system stack): the new goroutine gets a copy of
    the request its parent, g0.m.curg, serves."""
    f, o = p.frame, p.off
    a.comment(f"spawn: parent = g0.m.curg (g.m at +{o.g_m}, m.curg at +{o.m_curg}), "
              f"its goid at +{o.goid:#x}")
    a.emit(ldx(8, R1, R6, codegen.PT_REGS["r14"]), stx(8, FP, f["r0"], R1))
    for off in (o.g_m, o.m_curg):
        a.emit(ldx(8, R3, FP, f["r0"]), Jeq.imm(R3, 0, "out"))
        emit_read_at(a, f["r0"], off, 8, FP, f["r0"])
    a.emit(ldx(8, R3, FP, f["r0"]), Jeq.imm(R3, 0, "out"))
    emit_read_at(a, f["r0"], o.goid, 8, FP, f["gkey"] + 8)
    a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), stx(8, FP, f["gkey"], R0))
    _give_request(p, a, v, "spawn: the new g (runqput's argument)")


BODIES = {"spawn": _spawn, "server_entry": _server_entry, "server_done": _server_done,
          "client_entry": _client_entry, "client_exit": _client_exit,
          "sql_entry": _sql_entry, "sql_exit": _sql_exit,
          "spawn_entry": _spawn_entry, "spawn_exit": _spawn_exit}
