"""`lumos trace` lines for a whole batch of records at once (text and JSON lines).

    TIME            PID     TID    GOID CALL
    09:30:51.460183 14302   14304       5 main.prepareAnswer(name="Gopher", year=2021)
    09:30:51.460236 14302   14304       5 main.prepareAnswer => "Hello, Gopher!"

Each variant (a set of captures: a function's arguments, or its results at a RET) gets a
template of constant text and values; the function's name comes from the site. The
result is byte for byte what the one-record-at-a-time printer writes (govalues).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import orjson

from lumos.output import columns as C
from lumos.output.clock import epoch_column, stamp_column
from lumos.output.valuecolumns import json_piece, text_piece
from lumos.probes.capture import Capture


def _shown(name: str) -> str:
    """A capture's name as text shows it: '_#1' (a second blank parameter's unique
    record key) is '_'."""
    return name.split("#", 1)[0]


def _groups(captures) -> list[tuple[str, list[Capture]]]:
    """Captures grouped as format_values groups them: struct fields 'p.F' under 'p'."""
    out: list[tuple[str, list[Capture]]] = []
    index: dict[str, int] = {}
    for cap in captures:
        head, dot, _ = cap.name.partition(".")
        if not dot:
            out.append((cap.name, [cap]))
        elif head in index:
            out[index[head]][1].append(cap)
        else:
            index[head] = len(out)
            out.append((head, [cap]))
    return out


def text_template(captures, is_call: bool) -> list:
    """Constant bytes and captures, in line order, after the function's name."""
    shown: list[list] = []
    for head, caps in _groups(captures):
        if len(caps) == 1 and caps[0].name == head:
            prefix = [] if not is_call and head.startswith("~r") else [
                f"{_shown(head)}=".encode()]
            shown.append(prefix + [caps[0]])
            continue
        item = [] if not is_call and head.startswith("~r") else [f"{_shown(head)}=".encode()]
        item.append(b"{")
        for i, cap in enumerate(caps):
            item += [(", " if i else "").encode() + cap.name.partition(".")[2].encode()
                     + b": ", cap]
        item.append(b"}")
        shown.append(item)
    out: list = [b"("] if is_call else [b" => "]
    if not is_call and len(shown) != 1:
        out.append(b"(")
    for i, item in enumerate(shown):
        if i:
            out.append(b", ")
        out += item
    if is_call or len(shown) != 1:
        out.append(b")")
    return out


def json_template(captures, is_call: bool) -> list:
    out: list = [b',"event":"call","args":{' if is_call else b',"event":"return","results":{']
    for i, cap in enumerate(captures):
        out += [(b"," if i else b"") + orjson.dumps(cap.name) + b":", cap]
    out.append(b"}}")
    return out


def _render(rec, template, piece_of) -> list[C.Piece]:
    n = len(rec)
    out, text = [], b""
    for item in template:
        if isinstance(item, bytes):
            text += item
            continue
        if text:
            out.append(C.const(text, n))
            text = b""
        got = piece_of(rec, item)
        out.extend(got if isinstance(got, list) else [got])
    if text:
        out.append(C.const(text, n))
    return out


def _names(names: list[bytes]) -> np.ndarray:
    """A table to gather a name per row: table[site] is the site's name, NUL-padded."""
    width = max((len(x) for x in names), default=0)
    table = np.zeros((len(names), width), np.uint8)
    for i, x in enumerate(names):
        table[i, :len(x)] = np.frombuffer(x, np.uint8)
    return table


class CallLines:
    """Formats batches of trace records. Per site: the function's name, whether it is a
    call or a return, its variant (the record layout) and its named captures."""

    def __init__(self, site_names: list[str], site_is_call: list[bool],
                 site_variant: list[int], variants, site_captures, json: bool, go: bool,
                 offset: float):
        self.json = json
        self.go = go
        self.offset = offset
        self.site_variant = np.asarray(site_variant, np.int64)
        self.variants = variants
        encode = (lambda s: orjson.dumps(s)) if json else (lambda s: s.encode())
        self._names = _names([encode(n) for n in site_names])
        self.templates = []
        for site, v in enumerate(site_variant):
            # values are read by their record field prefix (RecordLayout.keys), shown by
            # the site's own names and types
            named = tuple(site_captures[site])
            keyed = {id(c): replace(c, name=k) for c, k in
                     zip(named, variants[v].layout.keys, strict=True)}
            t = (json_template(named, site_is_call[site]) if json
                 else text_template(named, site_is_call[site]))
            self.templates.append([keyed[id(x)] if isinstance(x, Capture) else x for x in t])

    def name_piece(self, sites) -> C.Piece:
        if len(sites) and (sites == sites[0]).all():  # one function: one constant
            return C.const(self._names[sites[0]].tobytes().rstrip(b"\0"), len(sites))
        return C.Piece(self._names[sites])

    def lines(self, batch) -> bytes:
        from lumos.probes.capture import HEADER_RECORD
        head = batch.records_as(HEADER_RECORD.dtype)
        n = len(head)
        if n == 0:
            return b""
        sites = head["site"].astype(np.int64)
        if (sites == sites[0]).all():  # the usual case: one probe site streaming
            return C.lines(self._pieces(batch, head, int(sites[0]), None))
        parts = []
        for site in np.unique(sites):  # a site's records share layout, names and types
            rows = np.flatnonzero(sites == site)
            buf, _, _ = C.line_buffer(self._pieces(batch, head[rows], int(site), rows))
            parts.append((rows, buf))
        return C.interleave(parts, n)

    def _pieces(self, batch, head, site: int, rows) -> list[C.Piece]:
        """The pieces of the lines of rows of one site (rows None: all of the batch)."""
        n = len(head)
        v = int(self.site_variant[site])
        rec = batch.records_as(self.variants[v].layout.record.dtype, rows)
        body = _render(rec, self.templates[site], json_piece if self.json else text_piece)
        sites = head["site"].astype(np.int64)
        sp = C.const(b" ", n)
        if self.json:
            return [C.const(b'{"time":', n), epoch_column(head["ts_ns"], self.offset),
                    C.const(b',"pid":', n), C.decimal(head["pid"]),
                    C.const(b',"tid":', n), C.decimal(head["tid"]),
                    C.const(b',"goid":', n), C.decimal(head["goid"]),
                    C.const(b',"func":', n), self.name_piece(sites), *body]
        pieces = [stamp_column(head["ts_ns"], self.offset), sp, C.decimal(head["pid"], 7),
                  sp, C.decimal(head["tid"], 7), sp]
        if self.go:
            pieces += [C.decimal(head["goid"], 7), sp]
        return pieces + [self.name_piece(sites), *body]
