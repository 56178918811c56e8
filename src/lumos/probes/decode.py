"""Records back into values: the inverse of capture.py's layout.

Decoding runs in user space, off the traced program's path. Each variant's layout is
turned into one precompiled struct once; a record then costs one unpack plus the
per-value conversions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lumos.probes.capture import HEADER, READ_FAILED, Capture
from lumos.probes.eventprog import MAX_STACK_DEPTH, Variant
from lumos.probes.probesite import ProbeSite

UNREADABLE = object()  # a value whose words could not be read at the probe site


@dataclass(frozen=True)
class Text:
    """A Go string or []byte: its bytes (possibly cut at --strlen) and full length."""

    data: bytes
    length: int

    @property
    def truncated(self) -> bool:
        return self.length > len(self.data)


@dataclass(frozen=True)
class Boxed:
    """An interface value as copied (Capture.deref): its two words, the bytes behind the
    data word and those behind a string header there; resolved by type in user space."""

    typ: int          # the type word (or itab) as the program had it (runtime address)
    data: int
    window: bytes
    follow: bytes
    itab: bool
    more: tuple[bytes, ...] = ()  # an error's second string and words (emit_boxed)
    failed: int = 0   # the copies that failed (capture.BOXED_* bits)


@dataclass(frozen=True)
class Slice:
    """A slice whose first elements were read (Capture.reads_elems): Text, numbers or
    bools, UNREADABLE where the kernel could not read them; length counts them all."""

    ptr: int
    length: int
    cap: int
    elems: tuple

    @property
    def more(self) -> int:
        """Elements past those read (--max-elems)."""
        return self.length - len(self.elems)


def slice_value(cap: Capture, words, elems: bytes, strs: bytes) -> Slice:
    """The Slice of a capture's three words and its .elems/.strs record bytes."""
    ptr, length, cap_ = (int(w) for w in words)
    failed = bool(length & READ_FAILED) and not length >> 63
    if failed:
        length &= ~READ_FAILED
    if length >= 1 << 63:
        length -= 1 << 64
    n = max(0, min(length, cap.max_elems))
    if failed:
        return Slice(ptr, length, cap_, (UNREADABLE,) * n)
    size, out = cap.elem_size, []
    stride = (cap.str_max + 7) & ~7
    for i in range(n):
        raw = elems[i * size:(i + 1) * size]
        if cap.elem == "string":
            p, ln = struct.unpack("<QQ", raw)
            if ln & READ_FAILED and not ln >> 63:
                out.append(UNREADABLE)
                continue
            ln = ln - (1 << 64) if ln >> 63 else ln
            k = max(0, min(ln, cap.str_max))
            out.append(Text(bytes(strs[i * stride:i * stride + k]), ln))
        elif cap.elem == "float":
            out.append(struct.unpack("<f" if size == 4 else "<d", raw)[0])
        elif cap.elem == "bool":
            out.append(raw[0] != 0)
        else:
            out.append(int.from_bytes(raw, "little", signed=cap.elem == "int"))
    return Slice(ptr, length, cap_, tuple(out))


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
    if kind == "cstring":
        n = struct.unpack_from("<q", rec, bytes_off)[0]
        if w0 == 0:
            return None  # NULL
        if n <= 0:
            return UNREADABLE  # the pointer did not lead to readable memory
        data = bytes(rec[bytes_off + 8: bytes_off + 8 + n - 1])
        return Text(data, len(data) + (n == cap.str_max))  # full: it may go on
    if kind == "hex":
        return w0
    if kind in ("string", "bytes"):
        length = words[1]
        if length & READ_FAILED and not length >> 63:
            return UNREADABLE  # the kernel could not read the bytes: never show zeros
        if length >= 1 << 63:
            length -= 1 << 64
        n = max(0, min(length, cap.str_max))
        return Text(bytes(rec[bytes_off: bytes_off + n]), length)
    if kind == "pointer":
        return w0
    if cap.reads_elems:
        start = bytes_off + cap.elems_bytes
        return slice_value(cap, words, bytes(rec[bytes_off:start]),
                           bytes(rec[start:start + cap.strs_bytes]))
    if cap.boxed:
        n, m = (cap.deref + 7) & ~7, (cap.str_max + 7) & ~7
        end = bytes_off + n + m * (2 if cap.error_follows else 1) + 16 * cap.error_follows
        w = bytes_off + n + 2 * m
        more = (bytes(rec[bytes_off + n + m:bytes_off + n + m + cap.str_max]),
                bytes(rec[w:w + 8]), bytes(rec[w + 8:w + 16])) if cap.error_follows else ()
        failed = struct.unpack_from("<Q", rec, end)[0]
        return Boxed(words[0], words[1], bytes(rec[bytes_off:bytes_off + cap.deref]),
                     bytes(rec[bytes_off + n:bytes_off + n + cap.str_max]), cap.itab, more,
                     failed)
    return tuple(words)
