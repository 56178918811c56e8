"""The records and map layouts `lumos http` and `lumos sql` share with their BPF program.

One Record declaration per tool (probes/record.py): the emitter's store offsets and the
decoder's struct come from it. Sizes are fixed so the stream reads records at C speed.
"""

from __future__ import annotations

from lumos.probes.record import Field, Record

METHOD_BYTES = 8       # GET, POST, OPTIONS, PROPFIND (cut, with its length kept)
PATH_BYTES = 64        # request path kept per goroutine and in each record
HOST_BYTES = 48
ROUTE_BYTES = 72       # 64 + room for the last "{id}" (probes/routefold)
TEXT_BYTES = 4096      # SQL text
HIST_TEXT = 64         # bytes of path / SQL text in a summary key
MAX_ARGS = 8           # SQL arguments decoded (the count is always exact)
ARG_STR_BYTES = 32
ERR_BYTES = 120
ERR_CANDIDATES = 3     # strings copied from an error's struct (see golang/sqlerrors)
STACK_DEPTH = 32

# kinds (record "kind" and summary key)
SERVER, CLIENT, QUERY, EXEC = 1, 2, 3, 4
# flags
F_STATUS, F_BYTES, F_ERR, F_PARENT, F_ROWS, F_STMT, F_H2 = 1, 2, 4, 8, 16, 32, 64

# What one goroutine is serving: (pid, goid) -> this, set at the server request's entry,
# copied to every goroutine it starts (runtime.newproc1), dropped at its end.
REQUEST = Record("lumos_request", [
    Field("id", "u64", doc="the server request's id (its start time, ns)"),
    Field("method_len", "u32"), Field("path_len", "u32"),
    Field("method", "bytes", METHOD_BYTES), Field("path", "bytes", PATH_BYTES),
    Field("route_len", "u32", doc="> ROUTE_BYTES - 8: cut"), Field("route_pad", "u32"),
    Field("route", "bytes", ROUTE_BYTES, doc="the path with ids folded (probes/routefold)"),
])
# One call in flight: (goid, pid << 32 | g.stack.hi - SP) -> this, entry to RET.
CALL = Record("lumos_call", [
    Field("ts", "u64"), Field("w0", "u64"), Field("w1", "u64"), Field("w2", "u64"),
    Field("w3", "u64"), Field("op", "u64"),
])
HIST_KEY = Record("lumos_hist_key", [
    Field("kind", "u32"), Field("slot", "u32"), Field("status", "u32"),
    Field("text_len", "u32"), Field("method", "bytes", METHOD_BYTES),
    Field("text", "bytes", HIST_TEXT),
])

_COMMON = [
    Field("ts", "u64", doc="end of the call, ns since boot"), Field("dur", "u64"),
    Field("pid", "u32"), Field("tid", "u32"), Field("goid", "u64"),
    Field("kind", "u32"), Field("flags", "u32"),
    Field("req_id", "u64", doc="the server request (own id for a server request)"),
    Field("pmethod_len", "u32"), Field("ppath_len", "u32"),
    Field("pmethod", "bytes", METHOD_BYTES), Field("ppath", "bytes", PATH_BYTES),
    Field("proute_len", "u32"), Field("proute_pad", "u32"),
    Field("proute", "bytes", ROUTE_BYTES),
]
_STACK = [Field("stack_bytes", "s64"), Field("stack", "bytes", 8 * STACK_DEPTH),
          Field("stack_ret", "u64", doc="[SP] at the RET: the caller"),
          Field("stack_bp_delta", "s64")]

HTTP = Record("lumos_http_event", _COMMON + [
    Field("status", "s64"), Field("bytes", "s64"), Field("err_type", "u64"),
    Field("method_len", "u32"), Field("path_len", "u32"),
    Field("scheme_len", "u32"), Field("host_len", "u32"),
    Field("method", "bytes", METHOD_BYTES), Field("path", "bytes", PATH_BYTES),
    Field("scheme", "bytes", 8), Field("host", "bytes", HOST_BYTES),
] + _STACK)

ARG = [Field("type", "u64"), Field("data", "u64"), Field("val", "bytes", 24),
       Field("str", "bytes", ARG_STR_BYTES)]
ARG_SIZE = 16 + 24 + ARG_STR_BYTES

SQL = Record("lumos_sql_event", _COMMON + [
    Field("rows", "s64"), Field("res_type", "u64"), Field("res_val", "bytes", 16),
    Field("err_type", "u64"), Field("err_struct", "bytes", 64),
    Field("errs", "bytes", ERR_CANDIDATES * (8 + ERR_BYTES)),
    Field("nargs", "u64"), Field("args", "bytes", MAX_ARGS * ARG_SIZE),
    Field("text_len", "u64"), Field("text", "bytes", TEXT_BYTES),
] + _STACK)
