"""Records of `lumos http` / `lumos sql` back into values (the inverse of reqbodies).

Type names (of SQL arguments, errors, driver results) come from a callable the tool
passes in (golang.typenames through the process's load bias): this layer knows records,
not Go binaries. A value lumos could not read is None, printed as '?'.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache

from lumos.probes import reqrecord as rr
from lumos.probes.decode import Text
from lumos.probes.routefold import ROUTE_CUT

WALL_HAS_MONOTONIC = 1 << 63
WALL_NSEC_MASK = (1 << 30) - 1
WALL_TO_INTERNAL = 59453308800     # time.wallToInternal: 1885-01-01 in seconds since year 1
UNIX_TO_INTERNAL = 62135596800     # time.unixToInternal


@dataclass
class Request:
    """The server request a record was made for."""

    id: int
    method: Text
    path: Text
    route: Text | None = None     # the path with ids folded (probes/routefold)


@dataclass
class Event:
    ts_ns: int
    dur_ns: int
    pid: int
    tid: int
    goid: int
    kind: int                         # rr.SERVER, CLIENT, QUERY, EXEC
    flags: int
    request: Request | None           # for a server record: itself
    status: int | None = None         # HTTP status (None: unknown)
    bytes: int | None = None
    method: Text | None = None        # client request
    url: str = ""
    error: str | None = None          # text, or "(type name)" when lumos cannot read it
    text: Text | None = None          # SQL
    args: list = field(default_factory=list)
    nargs: int = 0
    rows: int | None = None
    stack: list[int] | None = None

    @property
    def failed(self) -> bool:
        return bool(self.flags & rr.F_ERR)


@lru_cache(maxsize=8192)
def _text(data: bytes, length: int) -> Text:
    """The same method, path or query comes back again and again: one Text each
    (a frozen dataclass costs ~2 µs to build, a cache hit ~0.1 µs)."""
    if length >= 1 << 63:
        length -= 1 << 64
    return Text(bytes(data[:max(0, min(length, len(data)))]), length)


class ReqDecoder:
    """type_name(runtime type pointer) -> (name, kind) or None."""

    def __init__(self, record, type_name, error_offsets: dict[str, tuple[int, str]],
                 err_strings: tuple[int, ...], rows_word: dict[str, int], stack: bool):
        self.record = record
        self.struct = record.struct
        self.names = [f.name for f in record.fields]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.type_name = type_name
        self.error_offsets = error_offsets
        self.err_strings = err_strings
        self.rows_word = rows_word
        self.stack = stack

    def decode(self, rec) -> Event:
        v = _Fields(self.index, self.struct.unpack_from(rec, 0))
        flags = v["flags"]
        req = (Request(v["req_id"], _text(v["pmethod"], v["pmethod_len"]),
                       _text(v["ppath"], v["ppath_len"]),
                       route_text(v["proute"], v["proute_len"]))
               if flags & rr.F_PARENT else None)
        ev = Event(v["ts"], v["dur"], v["pid"], v["tid"], v["goid"], v["kind"], flags, req)
        if ev.kind in (rr.SERVER, rr.CLIENT):
            self._http(ev, v)
        else:
            self._sql(ev, v)
        if self.stack:
            ev.stack = _stack(v)
        return ev

    def _http(self, ev: Event, v) -> None:
        if ev.flags & rr.F_STATUS:
            # a handler that wrote nothing answers 200 (http.response.finishRequest)
            ev.status = v["status"] or (200 if ev.kind == rr.SERVER else 0)
        if ev.flags & rr.F_BYTES:
            ev.bytes = v["bytes"]
        if ev.kind == rr.CLIENT:
            ev.method = _text(v["method"], v["method_len"])
            scheme = _text(v["scheme"], v["scheme_len"])
            host = _text(v["host"], v["host_len"])
            path = _text(v["path"], v["path_len"])
            ev.url = "".join(_show(t) for t in (scheme, Text(b"://", 3), host, path))
            if ev.failed:
                ev.status = None
                ev.error = self._type_label(v["err_type"])

    def _type_label(self, ptr: int) -> str:
        t = self.type_name(ptr) if ptr else None
        return f"({t[0]})" if t else f"(type at {ptr:#x})"

    def _sql(self, ev: Event, v) -> None:
        ev.text = _text(v["text"], v["text_len"])
        ev.nargs = v["nargs"]
        raw = v["args"]
        for i in range(min(ev.nargs, rr.MAX_ARGS)):
            ev.args.append(self._arg(raw[i * rr.ARG_SIZE:(i + 1) * rr.ARG_SIZE]))
        if ev.failed:
            ev.error = self._error(v)
        elif ev.flags & rr.F_ROWS and v["res_type"]:
            t = self.type_name(v["res_type"])
            word = self.rows_word.get(t[0]) if t else None
            if word is not None:
                ev.rows = struct.unpack_from("<q", v["res_val"], 8 * word)[0]

    def _error(self, v) -> str:
        t = self.type_name(v["err_type"]) if v["err_type"] else None
        if t is None:
            return self._type_label(v["err_type"])
        known = self.error_offsets.get(t[0])
        if known is None or known[0] not in self.err_strings:
            return f"({t[0]})"
        k = self.err_strings.index(known[0])
        base = k * (8 + rr.ERR_BYTES)
        (n,) = struct.unpack_from("<q", v["errs"], base)
        msg = _text(v["errs"][base + 8: base + 8 + rr.ERR_BYTES], n)
        return known[1] + _show(msg)

    def _arg(self, raw: bytes):
        tptr, data = struct.unpack_from("<QQ", raw)
        if tptr == 0:
            return None
        t = self.type_name(tptr)
        if t is None:
            return Opaque(f"type at {tptr:#x}")
        name, kind = t
        val = raw[16:40]
        w0, w1 = struct.unpack_from("<QQ", val)
        if data == 0:
            return Opaque(name)
        if name == "time.Time":
            return GoTime(*struct.unpack_from("<Qq", val))
        if kind in ("int", "int8", "int16", "int32", "int64"):
            size = {"int8": 1, "int16": 2, "int32": 4}.get(kind, 8)
            return int.from_bytes(val[:size], "little", signed=True)
        if kind in ("uint", "uint8", "uint16", "uint32", "uint64", "uintptr"):
            size = {"uint8": 1, "uint16": 2, "uint32": 4}.get(kind, 8)
            return int.from_bytes(val[:size], "little")
        if kind == "bool":
            return bool(val[0])
        if kind == "float64":
            return struct.unpack_from("<d", val)[0]
        if kind == "float32":
            return struct.unpack_from("<f", val)[0]
        if kind == "string":
            return _text(raw[40:40 + rr.ARG_STR_BYTES], w1)
        if name == "[]uint8":
            return _text(raw[40:40 + rr.ARG_STR_BYTES], w1)
        return Opaque(name)


@dataclass(frozen=True)
class Opaque:
    """An argument lumos does not decode: its type name."""

    type_name: str


@dataclass(frozen=True)
class GoTime:
    """A time.Time's wall and ext words (time/time.go)."""

    wall: int
    ext: int

    @property
    def unix_ns(self) -> int:
        nsec = self.wall & WALL_NSEC_MASK
        if self.wall & WALL_HAS_MONOTONIC:
            sec = WALL_TO_INTERNAL + (((self.wall << 1) & ((1 << 64) - 1)) >> 31)
        else:
            sec = self.ext
        return (sec - UNIX_TO_INTERNAL) * 1_000_000_000 + nsec


@lru_cache(maxsize=8192)
def _show(t: Text) -> str:
    s = t.data.decode("utf-8", "backslashreplace")
    return s + "..." if t.truncated else s


class _Fields:
    """A record's unpacked values by field name, without building a dict per record."""

    __slots__ = ("index", "values")

    def __init__(self, index: dict[str, int], values: tuple):
        self.index, self.values = index, values

    def __getitem__(self, name: str):
        return self.values[self.index[name]]


@lru_cache(maxsize=8192)
def route_text(data: bytes, length: int) -> Text:
    """A route from routefold: its length, with ROUTE_CUT set when it goes on."""
    n = length & (ROUTE_CUT - 1)
    return Text(bytes(data[:n]), n + 1 if length & ROUTE_CUT else n)


def _stack(v) -> list[int]:
    n = v["stack_bytes"]
    if n <= 0:
        return []
    n = min(n // 8, rr.STACK_DEPTH)
    frames = list(struct.unpack_from(f"<{n}Q", v["stack"]))
    if v["stack_ret"] and v["stack_bp_delta"] != -8:  # the walk skipped the caller
        frames.insert(1, v["stack_ret"])
    return frames


show_text = _show


@dataclass(frozen=True)
class Bucket:
    """One summary bucket from the kernel: a kind, status and text, one log2 slot."""

    kind: int
    slot: int
    status: int
    method: str
    text: str
    count: int
    sum_ns: int


def read_histograms(hist) -> list[Bucket]:
    """Every bucket of the per-CPU `hist` map (reqprog), summed over CPUs."""
    key = rr.HIST_KEY.struct
    out = []
    for k, values in hist.items_percpu():
        kind, slot, status, text_len, method, text = key.unpack_from(k)
        count = total = 0
        for v in values:
            c, s = struct.unpack("<QQ", v)
            count += c
            total += s
        if count:
            shown = route_text(text, text_len) if kind == rr.SERVER else _text(text, text_len)
            out.append(Bucket(kind, slot, status,
                              method.rstrip(b"\0").decode("utf-8", "replace"), _show(shown),
                              count, total))
    return out
