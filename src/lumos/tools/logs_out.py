"""logs: records -> log lines (text like a log file, or JSON lines for log shippers)."""

from __future__ import annotations

import datetime as dt
import os
import struct

import orjson

from lumos.golang.anyvalue import WINDOW as WINDOW_FAILED
from lumos.golang.anyvalue import GoAny
from lumos.golang.loggers import PACKAGES, closure_message, level_name, log_closure
from lumos.golang.pclntab import package_of
from lumos.output.anyfmt import json_value, quoted_value, sprint, sprintf, sprintln, text_value
from lumos.probes.capture import READ_FAILED
from lumos.probes.loglayout import ELEM_SIZE, FOLLOW_SIZES, LOG_RECORD, MAX_ELEMS, MSG_MAX, WINDOW

_ZF = 0x40
_UNREAD = GoAny("unreadable", None)


class LogLines:
    """request_of(pid, goid, ts_ns) -> str | None is the hook for the request the
    goroutine is serving (from `lumos http`'s in-flight requests, keyed by goroutine):
    when given, each call carries it ("request" in JSON, req=... in text)."""

    def __init__(self, sites, decoder, lines, grep, clock, json_out: bool, out,
                 request_of=None):
        self.request_of = request_of
        self.sites = sites
        self.decoder = decoder
        self.lines = lines
        self.grep = grep
        self.clock = clock
        self.json = json_out
        self.out = out
        r = LOG_RECORD
        self.unpack = struct.Struct("<QIIQIiqQqQqq4QQ").unpack_from  # up to failed
        self.msg_off, self.pairs_off, self.elems_off = (r.offset("msg"), r.offset("pairs"),
                                                        r.offset("elems"))
        self.probed = {s.func.name for s in sites}
        self.shown = 0
        # Log calls repeat: the same element bytes decode to the same value, the same
        # return addresses to the same caller. Bounded caches keep decoding per call
        # to the few values that changed (measured: 4x faster at 10k calls/s).
        self._values_cache: dict[bytes, object] = {}
        self._callers: dict[tuple, object] = {}
        self._sec, self._sec_text = -1, ""

    def header(self) -> None:
        self.out.write(f"{'TIME':<15} {'PID':>7} {'GOID':>7} {'LEVEL':<6} {'STATE':<8} "
                       f"{'CALLER':<24} MESSAGE\n")

    def batch(self, batch) -> None:
        for rec in batch.records():
            self.handle(rec)

    def handle(self, rec) -> None:
        rec = bytes(rec)  # one copy; slicing bytes is cheaper than slicing a memoryview
        (ts, pid, tid, goid, idx, _frame, level, verdict, msg_len, bias, n0, n1,
         *rets, failed) = self.unpack(rec, 0)
        # READ_FAILED in a length: the kernel could not read the message or the pairs
        msg_bad, bad0, bad1 = (x >= 0 and bool(x & READ_FAILED) for x in (msg_len, n0, n1))
        msg_len, n0, n1 = (x & ~READ_FAILED if x >= 0 else x for x in (msg_len, n0, n1))
        site = self.sites[idx]
        lf = site.func
        pcs = tuple(r - bias if r else 0 for r in rets)
        caller = self._callers.get(pcs, False)
        if caller is False:
            caller = None if self._from_logger(pcs[0]) else self._caller(pcs, lf.logger)
            if len(self._callers) > 65536:
                self._callers.clear()
            self._callers[pcs] = caller
        if caller is None and pcs[0] and self._from_logger(pcs[0]):
            return  # called by another probed function (logrus's Logger.Log -> Entry.Log,
            # zap's sugar -> Logger.check): that call was recorded already
        self.decoder.bias = bias
        values = self._values(site, n0, n1, rec[self.pairs_off:self.elems_off],
                              rec[self.elems_off:], failed, bad0, bad1)
        text = rec[self.msg_off:self.msg_off + max(0, min(msg_len, MSG_MAX))].decode(
            "utf-8", "replace")
        if msg_bad:
            text = "?"  # its bytes were not readable: never an empty message
        elif msg_len > MSG_MAX:
            text += f"...(+{msg_len - MSG_MAX})"
        style, lvl = lf.message, None
        if style == "closure":  # std log: the closure's function says which call it was
            fn = self.lines.tab.function_at(level)
            kind = (log_closure(fn.name) if fn else None) or "Print"
            style = closure_message(kind)
            lvl = "FATAL" if kind.startswith("Fatal") else "PANIC" if kind.startswith(
                "Panic") else "PRINT"
        message, attrs = self._message(lf, style, text, values, n0, n1)
        if self.grep is not None and not self.grep.search(message):
            return
        filtered = self._filtered(site, level, verdict)
        lvl = lvl or level_name(lf.logger, level)
        if self.request_of is not None:
            req = self.request_of(pid, goid, ts)
            if req:
                attrs = [*attrs, ("request", req)]
        self.shown += 1
        if self.json:
            self._json(ts, pid, tid, goid, lf.logger, lvl, filtered, message, attrs, caller)
        else:
            self._text(ts, pid, goid, lvl, filtered, message, attrs, caller)

    # -- decoding ---------------------------------------------------------------------

    def _values(self, site, n0: int, n1: int, pairs, elems, failed: int = 0,
                bad0: bool = False, bad1: bool = False) -> list:
        if not site.slices and site.closure is None:
            return []
        cache = self._values_cache
        if len(cache) > 65536:
            cache.clear()
        if site.func.elem_kind == "attr":
            idx = range(min(n0, MAX_ELEMS))
        else:
            half = MAX_ELEMS // 2
            two = len(site.slices) > 1
            idx = list(range(min(n0, half if two else MAX_ELEMS)))
            if two:
                idx += [half + i for i in range(min(n1, half))]
        out = []
        bias = self.decoder.bias.to_bytes(8, "little")
        half = MAX_ELEMS // 2
        for i in idx:
            if bad1 if i >= half and len(site.slices) > 1 else bad0:
                out.append(_UNREAD)  # its (type, data) pair could not be read
                continue
            bad = failed >> 4 * i & 0xF
            key = pairs[16 * i:16 * i + 16] + elems[ELEM_SIZE * i:ELEM_SIZE * (i + 1)] + \
                bias + bytes([bad])
            v = cache.get(key)
            if v is None:
                v = cache[key] = self._decode(site, pairs, elems, i, bad)
            out.append(v)
        return out

    def _decode(self, site, pairs, elems, i: int, bad: int = 0):
        d = self.decoder
        failed = frozenset(k - 1 if k else WINDOW_FAILED for k in range(4) if bad >> k & 1)
        if site.func.elem_kind == "attr":
            return d.attr(*self._elem(elems, i), failed)
        typ = int.from_bytes(pairs[16 * i:16 * i + 8], "little")
        data = int.from_bytes(pairs[16 * i + 8:16 * i + 16], "little")
        return d.decode(typ - d.bias if typ else 0, data, *self._elem(elems, i), failed)

    @staticmethod
    def _elem(elems: bytes, i: int) -> tuple[bytes, list[bytes]]:
        base = ELEM_SIZE * i
        window = elems[base:base + WINDOW]
        follows, off = [], base + WINDOW
        for size in FOLLOW_SIZES:
            follows.append(elems[off:off + size])
            off += size
        return window, follows

    def _message(self, lf, style: str, text: str, values: list, n0: int, n1: int):
        """(message, [(key, GoAny or str)]) as the logger would make them."""
        half = MAX_ELEMS // 2
        if style == "template":  # zap's sugar: fmtArgs, then context pairs
            fmt_args, ctx = values[:min(n0, half)], values[min(n0, half):]
            if fmt_args:
                text = sprintf(text, fmt_args) if text else sprint(fmt_args)
            return text, _pairs(ctx, n1 - len(ctx))
        if style == "sprint":
            return sprint(values) + _more(n0 - len(values)), []
        if style == "sprintln":
            return sprintln(values) + _more(n0 - len(values)), []
        if style == "sprintf":
            return sprintf(text, values), []
        return text, _pairs(values, n0 - len(values))

    @staticmethod
    def _filtered(site, level: int, verdict: int) -> bool | None:
        if site.verdict == "flags":
            return bool(verdict & _ZF) == site.filtered_if_zf
        if site.verdict == "level_field":
            if site.func.discard:  # std log: the writer is io.Discard
                return (verdict & 0xFFFFFFFF) != 0
            return level > (verdict & 0xFFFFFFFF)
        return None

    def _caller(self, pcs, logger: str):
        packages = set(PACKAGES[logger])
        for pc in pcs:
            if not pc:
                break
            for f in self.lines.frames(pc, return_address=True):
                if _package(f.function) not in packages:
                    return f.function, f.file, f.line
        return None

    def _from_logger(self, pc: int) -> bool:
        frames = self.lines.frames(pc, return_address=True) if pc else []
        return bool(frames) and frames[-1].function in self.probed

    # -- writing ----------------------------------------------------------------------

    def _text(self, ts, pid, goid, lvl, filtered, message, attrs, caller) -> None:
        state = {True: "filtered", False: "logged", None: "?"}[filtered]
        where = f"{os.path.basename(caller[1])}:{caller[2]}" if caller else "?"
        kv = " ".join(f"{k}={quoted_value(v) if not isinstance(v, str) else v}"
                      for k, v in attrs)
        self.out.write(f"{self.clock.stamp(ts):<15} {pid:>7} {goid:>7} {lvl:<6} {state:<8} "
                       f"{where:<24} {message}{' ' + kv if kv else ''}\n")

    def _json(self, ts, pid, tid, goid, logger, lvl, filtered, message, attrs, caller) -> None:
        wall = ts / 1e9 + self.clock.offset
        sec = int(wall)
        if sec != self._sec:  # strftime once a second, as output.clock does
            self._sec = sec
            self._sec_text = dt.datetime.fromtimestamp(sec, dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S")
        when = f"{self._sec_text}.{int((wall - sec) * 1e6):06d}Z"
        obj = {"time": when, "level": lvl, "msg": message, "logger": logger,
               "filtered": filtered, "pid": pid, "tid": tid, "goid": goid}
        if caller:
            obj["caller"] = f"{caller[1]}:{caller[2]}"
            obj["func"] = caller[0]
        obj["attrs"] = {k: (json_value(v) if not isinstance(v, str) else v) for k, v in attrs}
        self.out.write(orjson.dumps(obj).decode() + "\n")


def _pairs(values: list, more: int) -> list:
    """slog's argsToAttr: a string key and the value after it; an Attr as itself; any
    other value (or a key without a value) under !BADKEY."""
    out, i = [], 0
    while i < len(values):
        v = values[i]
        if v.kind == "attr":
            out.append(v.value)
            i += 1
        elif v.kind == "string" and i + 1 < len(values) or \
                v.kind == "unreadable" and v.type_name == "string" and i + 1 < len(values):
            out.append((text_value(v), values[i + 1]))
            i += 2
        else:
            out.append(("!BADKEY", v))
            i += 1
    if more > 0:
        out.append(("!TRUNCATED", f"{more} more"))
    return out


def _more(n: int) -> str:
    return f" ...(+{n} args)" if n > 0 else ""


def _package(fn: str) -> str:
    return package_of(fn)
