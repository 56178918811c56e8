"""One line per HTTP request or SQL query (lumos http / lumos sql), text or JSON.

    TIME            PID    GOID KIND   METHOD STATUS BYTES LATms TARGET
    09:30:51.460183 14302    21 client GET       200     -  1.20 http://h/ping <- GET /

An unknown value (a field lumos could not place in this binary) prints as '?'.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import orjson

from lumos.output.clock import Clock, time_offset
from lumos.probes import reqrecord as rr
from lumos.probes.decode import Text
from lumos.probes.filter import BoolOp, Compare, Not
from lumos.probes.reqdecode import GoTime, Opaque, show_text

OPS = {rr.QUERY: "query", rr.EXEC: "exec"}


def _q(v) -> str:
    return "?" if v is None else str(v)


def format_ms(dur_ns: int) -> str:
    """Milliseconds with 2 decimals, hundredths rounded half up (reqcolumns does the same
    in numpy)."""
    h = (dur_ns + 5000) // 10000
    return f"{h // 100}.{h % 100:02d}"


def format_arg(v) -> str:
    """An SQL argument as Go would print it in a %#v-ish way: strings quoted."""
    if v is None:
        return "nil"
    if isinstance(v, Text):
        return '"' + show_text(v).replace('"', '\\"') + '"'
    if isinstance(v, GoTime):
        ns = v.unix_ns
        t = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
        frac = f".{ns % 1_000_000_000:09d}".rstrip("0").rstrip(".")
        return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
    if isinstance(v, Opaque):
        return f"({v.type_name})"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if v != int(v) or abs(v) >= 1e21 else f"{v:g}"
    return str(v)


def json_arg(v):
    if isinstance(v, Text):
        return show_text(v)
    if isinstance(v, GoTime | Opaque):
        return format_arg(v)
    return v


def matches(expr, values: dict) -> bool:
    """Evaluate a parsed --filter over an event's values (None never matches)."""
    if isinstance(expr, BoolOp):
        left = matches(expr.left, values)
        return (left and matches(expr.right, values)) if expr.op == "and" else (
            left or matches(expr.right, values))
    if isinstance(expr, Not):
        return not matches(expr.inner, values)
    assert isinstance(expr, Compare)
    v = values.get(expr.name)
    if v is None:
        return False
    want = expr.value
    if isinstance(want, str) != isinstance(v, str):
        return False
    return {"==": v == want, "!=": v != want, "<": v < want, "<=": v <= want,
            ">": v > want, ">=": v >= want}.get(expr.op, False)


class Printer:
    def __init__(self, args, sql: bool, symbolizer, expr=None):
        self.args, self.sql, self.symbolizer, self.expr = args, sql, symbolizer, expr
        self.out = sys.stdout
        self.offset = time_offset()
        self.clock = Clock(self.offset)

    def header(self) -> None:
        if self.args.json or self.args.quiet:
            return
        if self.sql:
            self.out.write(f"{'TIME':<15} {'PID':>7} {'GOID':>7} {'OP':<5} {'LATms':>8} "
                           f"{'ROWS':>5} QUERY\n")
        else:
            self.out.write(f"{'TIME':<15} {'PID':>7} {'GOID':>7} {'KIND':<6} {'METHOD':<6} "
                           f"{'STATUS':>6} {'BYTES':>8} {'LATms':>8} TARGET\n")

    def _values(self, ev) -> dict:
        req = ev.request
        v = {"ms": ev.dur_ns // 1_000_000, "status": ev.status, "bytes": ev.bytes}
        if self.sql:
            v.update(text=show_text(ev.text), op=OPS.get(ev.kind, "?"), rows=ev.rows,
                     method=show_text(req.method) if req else None,
                     path=show_text(req.path) if req else None)
        elif ev.kind == rr.CLIENT:
            v.update(method=show_text(ev.method), path=ev.url)
        else:
            v.update(method=show_text(req.method) if req else None,
                     path=show_text(req.path) if req else None)
        return v

    def event(self, ev) -> None:
        if self.expr is not None and not matches(self.expr, self._values(ev)):
            return
        if self.args.json:
            self._json(ev)
        elif self.sql:
            self._sql(ev)
        else:
            self._http(ev)
        if ev.stack and not self.args.json:
            sym = self.symbolizer(ev.pid)
            for addr in ev.stack:
                self.out.write(f"{'':>24}{sym.describe(addr)}\n")

    def _for(self, ev) -> str:
        if ev.request is None:
            return ""
        return f" <- {show_text(ev.request.method)} {show_text(ev.request.path)}"

    def _http(self, ev) -> None:
        stamp = self.clock.stamp(ev.ts_ns)
        ms = format_ms(ev.dur_ns)
        if ev.kind == rr.SERVER:
            kind = "HTTP/2" if ev.flags & rr.F_H2 else "HTTP/1"
            req = ev.request
            method = show_text(req.method) if req else "?"
            target = show_text(req.path) if req else "?"
            status, size, tail = _q(ev.status), _q(ev.bytes), ""
        else:
            kind, method, target = "client", show_text(ev.method), ev.url
            status = ev.error if ev.error else _q(ev.status)
            size, tail = "-", self._for(ev)
        self.out.write(f"{stamp:<15} {ev.pid:>7} {ev.goid:>7} {kind:<6} {method:<6} "
                       f"{status:>6} {size:>8} {ms:>8} {target}{tail}\n")

    def _sql(self, ev) -> None:
        stamp = self.clock.stamp(ev.ts_ns)
        args = " ".join(format_arg(a) for a in ev.args)
        more = f" ...(+{ev.nargs - len(ev.args)})" if ev.nargs > len(ev.args) else ""
        rows = "-" if ev.rows is None else str(ev.rows)
        err = f" error: {ev.error}" if ev.error is not None else ""
        text = show_text(ev.text) if ev.text.length or ev.text.data else "?"
        self.out.write(f"{stamp:<15} {ev.pid:>7} {ev.goid:>7} {OPS.get(ev.kind, '?'):<5} "
                       f"{format_ms(ev.dur_ns):>8} {rows:>5} {text} [{args}{more}]{err}"
                       f"{self._for(ev)}\n")

    def _json(self, ev) -> None:
        obj = {"time": float(f"{ev.ts_ns / 1e9 + self.offset:.6f}"), "pid": ev.pid,
               "tid": ev.tid, "goid": ev.goid, "duration_ns": ev.dur_ns}
        req = ev.request
        request = ({"id": req.id, "method": show_text(req.method), "path": show_text(req.path)}
                   if req else None)
        if self.sql:
            obj.update(op=OPS.get(ev.kind), text=show_text(ev.text), text_len=ev.text.length,
                       nargs=ev.nargs, args=[json_arg(a) for a in ev.args], rows=ev.rows,
                       error=ev.error, request=request)
        elif ev.kind == rr.SERVER:
            obj.update(kind="server", proto="HTTP/2" if ev.flags & rr.F_H2 else "HTTP/1",
                       method=request["method"] if request else None,
                       path=request["path"] if request else None,
                       route=show_text(req.route) if req and req.route else None,
                       status=ev.status,
                       bytes=ev.bytes, request_id=req.id if req else None)
        else:
            obj.update(kind="client", method=show_text(ev.method), url=ev.url,
                       status=ev.status, error=ev.error, request=request)
        if ev.stack:
            obj["stack"] = [self.symbolizer(ev.pid).describe(a) for a in ev.stack]
        self.out.write(orjson.dumps(obj).decode() + "\n")   # 5x the stdlib encoder
