"""Where HTTP requests and SQL queries are seen in a Go binary, and which fields to read.

The functions are fixed and their signatures known, so each is planned with its
signature (targets.plan): arguments and results come out at the right registers or
stack slots with DWARF or without (stripped binaries), on every Go release lumos knows.

    net/http.serverHandler.ServeHTTP(sh, rw ResponseWriter, req *Request)
        every server request, HTTP/1.x and HTTP/2 (the h2 server calls it too)
    net/http.(*Transport).roundTrip(req *Request) (*Response, error)
        every client request (http.Client.Do, Get, Post ...)
    database/sql.(*DB).queryDC / execDC(..., query string, args []any)
        every query and exec through DB, Tx and Conn
    database/sql.(*Stmt).QueryContext / ExecContext(ctx, args ...any)
        prepared statements (their text is Stmt.query)
    runtime.newproc.func1 (newproc's closure, at its CALL of runqput(pp, newg, ...))
        goroutine parents, to tie work a handler starts to its request

Field offsets come from golang.fields (DWARF, else measured tables); an unknown one is
named in a note and never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lumos.errors import GoBinaryError, TargetError, UsageError
from lumos.golang.abi import INT_REGS
from lumos.golang.fields import H2_STATE, H2_WRITER, FieldResolver
from lumos.probes import reqrecord as rr
from lumos.probes.capture import WordLoc
from lumos.probes.probesite import ProbeSite
from lumos.probes.reqprog import OP_STMT, Offsets, ReqVariant
from lumos.targets.entry import open_go
from lumos.targets.plan import plan, split_signature
from lumos.targets.target import Target

SERVER_SIG = ("net/http.serverHandler.ServeHTTP(sh struct{srv uintptr}, rw any, "
              "req uintptr)")
# Where a served request ends, on the goroutine that served it: conn.serve calls
# finishRequest right after ServeHTTP returns (HTTP/1.x); the HTTP/2 handler goroutine's
# deferred code calls handlerDone. Their entries are emulated jumps (one trap, ~1 µs
# here) where ServeHTTP's RETs are single-stepped (two traps): see DESIGN.md.
DONE_SIGS = (("net/http.(*response).finishRequest(w uintptr)", False),
             ("net/http.(*http2responseWriter).handlerDone(w uintptr)", True),
             ("net/http/internal/http2.(*responseWriter).handlerDone(w uintptr)", True))
CLIENT_SIG = "net/http.(*Transport).roundTrip(t uintptr, req uintptr) (uintptr, error)"
SQL_SIGS = (
    ("database/sql.(*DB).queryDC(db uintptr, ctx any, txctx any, dc uintptr, "
     "release uintptr, query string, args []any) (uintptr, error)", rr.QUERY),
    ("database/sql.(*DB).execDC(db uintptr, ctx any, dc uintptr, release uintptr, "
     "query string, args []any) (any, error)", rr.EXEC),
    ("database/sql.(*Stmt).QueryContext(s uintptr, ctx any, args []any) (uintptr, error)",
     rr.QUERY | OP_STMT),
    ("database/sql.(*Stmt).ExecContext(s uintptr, ctx any, args []any) (any, error)",
     rr.EXEC | OP_STMT),
)
NONE = WordLoc("none")

FIELDS = {
    "req_method": "net/http.Request.Method", "req_url": "net/http.Request.URL",
    "req_proto": "net/http.Request.ProtoMajor", "url_scheme": "net/url.URL.Scheme",
    "url_host": "net/url.URL.Host", "url_path": "net/url.URL.Path",
    "resp_status": "net/http.response.status", "resp_written": "net/http.response.written",
    "h2_rws": f"{H2_WRITER}.rws", "h2_status": f"{H2_STATE}.status",
    "h2_bytes": f"{H2_STATE}.wroteBytes", "status_code": "net/http.Response.StatusCode",
    "stmt_query": "database/sql.Stmt.query", "result_resi": "database/sql.driverResult.resi",
}
# error types whose message lumos can read: type name -> (field, prefix Error() adds)
ERROR_MESSAGES = {
    "*errors.errorString": ("errors.errorString.s", ""),
    "*fmt.wrapError": ("fmt.wrapError.msg", ""),
    "*pq.Error": ("github.com/lib/pq.Error.Message", "pq: "),
    "sqlite3.Error": ("github.com/mattn/go-sqlite3.Error.err", ""),
}
# driver.Result implementations whose rows-affected count lumos can read: name -> word
ROWS_AFFECTED = {"driver.RowsAffected": 0, "*sqlite3.SQLiteResult": None}


@dataclass
class ReqPlan:
    sites: list[ProbeSite] = field(default_factory=list)
    variants: list[ReqVariant] = field(default_factory=list)
    offsets: Offsets | None = None
    notes: list[str] = field(default_factory=list)
    error_offsets: dict[str, tuple[int, str]] = field(default_factory=dict)
    rows_word: dict[str, int] = field(default_factory=dict)
    functions: list[str] = field(default_factory=list)

    def add(self, site: ProbeSite, v: ReqVariant) -> None:
        if v not in self.variants:
            self.variants.append(v)
        self.sites.append(replace(site, variant=self.variants.index(v)))


def plan_requests(target: Target, server: bool = True, client: bool = False,
                  sql: bool = False) -> ReqPlan:
    exe = target.exe
    gobin = open_go(exe) if exe else None
    if gobin is None:
        raise UsageError(f"{exe}: not a Go program: lumos http/sql read Go's net/http and "
                         "database/sql")
    out = ReqPlan()
    with gobin:
        layout = gobin.runtime_layout()
        fields = FieldResolver(gobin)
        offs = {k: _offset(fields, n) for k, n in FIELDS.items()}
        errs = {}
        for tname, (fname, prefix) in ERROR_MESSAGES.items():
            fo = fields.get(fname)
            if fo is not None:
                errs[tname] = (fo.offset, prefix)
        changes = fields.get("github.com/mattn/go-sqlite3.SQLiteResult.changes")
        out.rows_word = {"driver.RowsAffected": 0}
        if changes is not None and changes.offset in (0, 8):
            out.rows_word["*sqlite3.SQLiteResult"] = changes.offset // 8
        out.error_offsets = errs
        err_strings = tuple(sorted({o for o, _ in errs.values()}))
        out.offsets = Offsets(layout.goid_offset, err_strings=err_strings,
                              g_m=_offset(fields, "runtime.g.m"),
                              m_curg=_offset(fields, "runtime.m.curg"), **offs)
        wanted = [k for k, n in FIELDS.items()
                  if (server or client) and k.startswith(("req_", "url_", "resp_", "h2_",
                                                          "status"))
                  or sql and k in ("stmt_query", "result_resi")]
        unknown = sorted(FIELDS[k] for k in wanted if offs[k] is None)
        if unknown:
            out.notes.append(f"{gobin.go_version or 'this Go'} without DWARF: offsets of "
                             f"{', '.join(unknown)} unknown (shown as ?, never guessed)")
    if server:
        _plan_server(target, out, required=not sql)
    if client:
        _plan_client(target, out)
    if sql:
        _plan_sql(target, out)
    if client or sql:
        _plan_spawn(exe, out)
    return out


def _offset(fields: FieldResolver, name: str) -> int | None:
    fo = fields.get(name)
    return fo.offset if fo is not None else None


def _one(target: Target, sig: str):
    """The planned function for a signature, None when the binary does not have it."""
    gobin = open_go(target.exe)
    with gobin:
        if not gobin.get_functions(split_signature(sig)[0]):
            return None
    try:
        found = plan(target, [sig], strlen=1)
    except TargetError:
        return None
    return found[0] if found else None


def _plan_server(target: Target, out: ReqPlan, required: bool) -> None:
    pf = _one(target, SERVER_SIG)
    if pf is None and not required:
        return
    if pf is None:
        raise GoBinaryError(f"{target.exe}: no net/http.serverHandler.ServeHTTP: this "
                            "program serves no HTTP with net/http")
    out.add(pf.entry, ReqVariant("server_entry", (pf.args[2].words[0],), pf.entry_sp_delta))
    out.functions.append(pf.name)
    for sig, h2 in DONE_SIGS:
        done = _one(target, sig)
        if done is None:
            continue
        out.add(done.entry, ReqVariant("server_done", (done.args[0].words[0],),
                                       done.entry_sp_delta, op=int(h2)))
        out.functions.append(done.name)
    if not any(f.endswith("finishRequest") for f in out.functions):
        raise GoBinaryError(f"{target.exe}: no net/http.(*response).finishRequest: lumos "
                            "cannot see where this net/http's requests end")


def _plan_client(target: Target, out: ReqPlan) -> None:
    pf = _one(target, CLIENT_SIG)
    if pf is None:
        out.notes.append("no net/http.(*Transport).roundTrip in this binary: no client "
                         "requests to see")
        return
    out.add(pf.entry, ReqVariant("client_entry", (pf.args[1].words[0],), pf.entry_sp_delta))
    for site, res in zip(pf.exits, pf.results, strict=True):
        out.add(site, ReqVariant("client_exit", (res[0].words[0], *res[1].words)))
    out.functions.append(pf.name)


def _plan_sql(target: Target, out: ReqPlan) -> None:
    for sig, op in SQL_SIGS:
        pf = _one(target, sig)
        if pf is None:
            continue
        args = pf.args
        text = (args[0].words[0], NONE) if op & OP_STMT else args[5 if op == rr.QUERY
                                                                  else 4].words
        slice_words = args[-1].words
        out.add(pf.entry, ReqVariant("sql_entry", (*text, slice_words[0], slice_words[1]),
                                     pf.entry_sp_delta, op))
        for site, res in zip(pf.exits, pf.results, strict=True):
            words = (*res[1].words, *res[0].words) if op & 7 == rr.EXEC else res[1].words
            out.add(site, ReqVariant("sql_exit", tuple(words), 0, op))
        out.functions.append(pf.name)
    if not out.functions or not any(f.startswith("database/sql.") for f in out.functions):
        raise GoBinaryError(f"{target.exe}: no database/sql query functions: this program "
                            "does not use database/sql")


def _plan_spawn(exe: str, out: ReqPlan) -> None:
    """runtime.newproc's closure (on the system stack, R14 = g0) calls newproc1(fn,
    callergp, ...) and then runqput(pp, newg, ...), for every `go` statement. At the
    CALL of runqput (emulated: one trap) newg is in the second argument register and
    its goid is set; the parent is g0.m.curg, the goroutine that switched to the system
    stack to run newproc: one probe sees both. Without the offsets of g.m and m.curg
    (a stripped build of a Go release not measured), two probes, one on each CALL (the
    parent is newproc1's callergp), pair up per thread."""
    gobin = open_go(exe)
    with gobin:
        closure = gobin.get_functions("runtime.newproc.func1")
        np = gobin.get_functions("runtime.newproc1")
        rq = gobin.get_functions("runtime.runqput")
        calls = _calls(gobin, closure[0], {f.entry for f in np + rq}) if (
            closure and np and rq) else []
    entry = [off for off, t in calls if t == np[0].entry]
    put = [off for off, t in calls if t == rq[0].entry]
    if len(entry) != 1 or len(put) != 1:
        out.notes.append("runtime.newproc's calls of newproc1 and runqput not found: calls "
                         "made from goroutines a handler starts are not tied to its request")
        return
    arg2 = WordLoc.register(INT_REGS[1])   # the second integer argument (BX)
    if out.offsets.g_m is not None and out.offsets.m_curg is not None:
        out.add(ProbeSite(exe, put[0], "runtime.newproc.func1", "call"),
                ReqVariant("spawn", (arg2,)))
        out.functions.append("runtime.newproc.func1")
        return
    out.add(ProbeSite(exe, entry[0], "runtime.newproc.func1", "call"),
            ReqVariant("spawn_entry", (arg2,)))
    out.add(ProbeSite(exe, put[0], "runtime.newproc.func1", "call"),
            ReqVariant("spawn_exit", (arg2,)))
    out.functions.append("runtime.newproc.func1")


def _calls(gobin, fn, targets: set[int]) -> list[tuple[int, int]]:
    """(file offset, target) of the direct CALLs from fn to any of `targets`."""
    from lumos.binary.disasm import iter_insns
    elf = gobin.elf
    code = elf.read_vaddr(fn.entry, fn.size)
    return [(elf.vaddr_to_offset(i.address), i.target) for i in iter_insns(code, fn.entry)
            if i.is_call and i.target in targets]
