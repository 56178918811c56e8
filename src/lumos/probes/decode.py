"""Records back into values: the inverse of capture.py's layout.

Decoding runs in user space, off the traced program's path. Each variant's layout is
turned into one precompiled struct once; a record then costs one unpack plus the
per-value conversions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lumos.probes.capture import HEADER, Capture
from lumos.probes.event import MAX_STACK_DEPTH, Variant
from lumos.probes.sites import ProbeSite

UNREADABLE = object()  # a value whose words could not be read at the probe site


@dataclass(frozen=True)
class Text:
    """A Go string or []byte: its bytes (possibly cut at --strlen) and full length."""

    data: bytes
    length: int

    @property
    def truncated(self) -> bool:
        return self.length > len(self.data)


@dataclass
class Event:
    ts_ns: int
    pid: int
    tid: int
    goid: int
    site: int
    frame: int
    values: list
    stack: list[int] | None = None


class _VariantDecoder:
    def __init__(self, v: Variant):
        self.v = v
        layout = v.layout
        self.captures = v.captures
        self.slots = [struct.Struct(f"<{len(c.words)}Q") for c in v.captures]
        self.offsets = layout.offsets
        self.stack_off = v.stack_offset if v.user_stack else None

    def values(self, rec) -> list:
        out = []
        for cap, slot, off in zip(self.captures, self.slots, self.offsets, strict=True):
            words = slot.unpack_from(rec, off)
            out.append(convert(cap, words, rec, off + 8 * len(words)))
        return out

    def stack(self, rec) -> list[int]:
        n = struct.unpack_from("<q", rec, self.stack_off)[0]
        if n <= 0:
            return []
        n = min(n // 8, MAX_STACK_DEPTH)
        frames = list(struct.unpack_from(f"<{n}Q", rec, self.stack_off + 8))
        ret, bp_delta = struct.unpack_from("<Qq", rec, self.stack_off + 8 + 8 * MAX_STACK_DEPTH)
        if ret and bp_delta != -8:  # BP not yet this frame's: the walk skipped the caller
            frames.insert(1, ret)
        return frames


class Decoder:
    def __init__(self, sites: list[ProbeSite], variants: list[Variant]):
        self._by_variant = [_VariantDecoder(v) for v in variants]
        self._site_variant = [s.variant for s in sites]

    def decode(self, rec) -> Event:
        ts, pid, tid, goid, site, frame = HEADER.unpack_from(rec, 0)
        vd = self._by_variant[self._site_variant[site]]
        ev = Event(ts, pid, tid, goid, site, frame, vd.values(rec))
        if vd.stack_off is not None:
            ev.stack = vd.stack(rec)
        return ev


def convert(cap: Capture, words: tuple[int, ...], rec, bytes_off: int):
    if not all(w.readable for w in cap.words):
        return UNREADABLE
    w0 = words[0] if words else 0
    kind = cap.kind
    if kind == "int":
        bits = 8 * cap.size
        v = w0 & ((1 << bits) - 1)
        return v - (1 << bits) if v >> (bits - 1) else v
    if kind == "uint":
        return w0 & ((1 << (8 * cap.size)) - 1)
    if kind == "bool":
        return bool(w0 & 0xFF)
    if kind == "float":
        if cap.size == 4:
            return struct.unpack("<f", struct.pack("<I", w0 & 0xFFFFFFFF))[0]
        return struct.unpack("<d", struct.pack("<Q", w0))[0]
    if kind in ("string", "bytes"):
        length = words[1]
        if length >= 1 << 63:
            length -= 1 << 64
        n = max(0, min(length, cap.str_max))
        return Text(bytes(rec[bytes_off: bytes_off + n]), length)
    if kind == "pointer":
        return w0
    return tuple(words)


# -- formatting as Go would print it -------------------------------------------------

_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
        "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(data: bytes) -> str:
    """strconv.Quote: printable runes as is, the rest escaped, invalid UTF-8 as \\xNN."""
    out = ['"']
    i = 0
    while i < len(data):
        ch, size = _decode_rune(data, i)
        if ch is None:
            out.append(f"\\x{data[i]:02x}")
            i += 1
            continue
        i += size
        if ch in _ESC:
            out.append(_ESC[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _decode_rune(data: bytes, i: int) -> tuple[str | None, int]:
    b = data[i]
    if b < 0x80:
        return chr(b), 1
    size = 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 0
    if not size or i + size > len(data):
        return None, 1
    try:
        return data[i:i + size].decode("utf-8"), size
    except UnicodeDecodeError:
        return None, 1


def format_value(cap: Capture, value) -> str:
    if value is UNREADABLE:
        return "?"
    if isinstance(value, Text):
        text = go_quote(value.data) if cap.kind == "string" else _bytes_literal(value.data)
        if value.truncated:
            text += f"...(+{value.length - len(value.data)})"
        return text
    if cap.kind == "bool":
        return "true" if value else "false"
    if cap.kind == "pointer":
        return "nil" if value == 0 else f"{value:#x}"
    if cap.kind == "float":
        return repr(value)
    if cap.kind == "slice":
        ptr, length, cap_ = value
        return "nil" if ptr == 0 else f"{cap.type_name or '[]?'}(len={length}, cap={cap_})"
    if cap.kind == "iface":
        typ, data = value
        return "nil" if typ == 0 else f"{cap.type_name or 'interface'}({typ:#x}, {data:#x})"
    if isinstance(value, tuple):
        return "{" + ", ".join(f"{w:#x}" for w in value) + "}"
    return str(value)


def _bytes_literal(data: bytes) -> str:
    return "[]byte(" + go_quote(data) + ")"


def format_values(captures, values) -> list[str]:
    """name=value for each value; struct fields (captures named 'p.F') grouped as
    p={F: value, G: value}, as Go's %+v would."""
    out: list[str] = []
    groups: dict[str, list[str]] = {}
    for cap, value in zip(captures, values, strict=True):
        head, dot, field = cap.name.partition(".")
        text = format_value(cap, value)
        if dot:
            if head not in groups:
                groups[head] = []
                out.append(head)
            groups[head].append(f"{field}: {text}")
        else:
            out.append(f"{cap.name}={text}")
    return [f"{x}={{{', '.join(groups[x])}}}" if x in groups else x for x in out]


def json_value(cap: Capture, value):
    """A JSON-friendly value: strings as text (and hex if not UTF-8), words as lists."""
    if value is UNREADABLE:
        return None
    if isinstance(value, Text):
        out = {"len": value.length}
        try:
            out["str"] = value.data.decode("utf-8")
        except UnicodeDecodeError:
            out["hex"] = value.data.hex()
        if value.truncated:
            out["truncated"] = True
        return out
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)  # JSON has no NaN/Inf
    return value
