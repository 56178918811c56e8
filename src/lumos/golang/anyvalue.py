"""Decoding an `any` from the bytes a probe copied: (type word, data word), a window of
bytes behind data, and up to three follow buffers (probes/logprog.py), by the runtime's
own type descriptors (typedata.py). Works on stripped binaries.

Values come back as GoAny(kind, value, type_name):
    kind "string"/"bytes": value (bytes, full length); "int"/"uint"/"float"/"bool": a
    number; "error": the message (or the type name when it cannot be read);
    "time": (unix ns, utc: bool); "duration": ns; "ptr": address; "attr": (key, GoAny)
    (a slog.Attr); "nil"; "other": just the type (shown as its name); "unreadable": the
    kernel could not read the bytes the value is made of (shown as ?, never as zeros).

A copy the kernel could not make (a page not yet faulted in) is named in `failed`:
WINDOW for the window, 0-2 for a follow buffer; a value built from it is "unreadable".

FOLLOWS says, per type name, which pointers inside the window the kernel should
follow: (ptr offset, len offset or NO_FOLLOW for the buffer's size), by follow slot.
slog.Value (Go 1.21-1.27, log/slog/value.go): {num uint64; any any}; any holds a
slog.Kind (value in num), slog.stringptr (string: len in num, bytes at any),
*time.Location/slog.timeLocation (time: unix ns in num), slog.groupptr, or the value.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

NO = 0xFF
FOLLOWS: dict[str, list[tuple[int, int]]] = {
    "string": [(0, 8)],
    "[]uint8": [(0, 8)],
    "*errors.errorString": [(0, 8)],
    "*fmt.wrapError": [(0, 8)],
    "*fmt.wrapErrors": [(0, 8)],
    "*fs.PathError": [(0, 8), (16, 24), (40, NO)],
    "*os.SyscallError": [(0, 8), (NO, NO), (24, NO)],
    "slog.Attr": [(0, 8), (32, 16), (32, NO)],
    "slog.Value": [(NO, NO), (16, 0), (16, NO)],
}
SLOG_KINDS = ("any", "bool", "duration", "float", "int", "string", "time", "uint", "group",
              "logvaluer")
_INTS = {"int": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8}
_UINTS = {"uint": 8, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "uintptr": 8}
_UNIX_TO_INTERNAL = (1969 * 365 + 1969 // 4 - 1969 // 100 + 1969 // 400) * 86400
_WALL_TO_INTERNAL = (1884 * 365 + 1884 // 4 - 1884 // 100 + 1884 // 400) * 86400


@dataclass(frozen=True)
class GoAny:
    kind: str
    value: object
    type_name: str = ""


@dataclass(frozen=True)
class Resolved:
    """An interface argument decoded by type, with the two words it was made of."""

    value: GoAny
    words: tuple[int, int]


def errno_message(n: int) -> str:
    """syscall.Errno.Error(): Go's table is strerror's text with a lowercase first
    letter (mksyscall's mkerrors.sh lowercases it unless the second letter is upper)."""
    s = os.strerror(n)
    if s.startswith("Unknown error"):
        return f"errno {n}"
    return s[0].lower() + s[1:] if len(s) > 1 and not s[1].isupper() else s


WINDOW = -1  # in `failed`: the window's copy


class _Unreadable(Exception):
    pass


class _Follows:
    """The follow buffers, raising _Unreadable for one whose copy failed."""

    def __init__(self, bufs: list[bytes], failed: frozenset[int]):
        self.bufs, self.failed = bufs, failed

    def __getitem__(self, k: int) -> bytes:
        if k in self.failed:
            raise _Unreadable
        return self.bufs[k]


class AnyDecoder:
    def __init__(self, types, follow_sizes: tuple[int, ...]):
        self.types = types            # typedata.TypeData
        self.sizes = follow_sizes

    def decode(self, typ: int, data: int, window: bytes, follows: list[bytes],
               failed: frozenset[int] = frozenset()) -> GoAny:
        """typ: the type word as an ELF address (load bias removed); 0 for nil."""
        if typ == 0:  # nil, unless the (type, data) pair itself was not read
            return GoAny("unreadable", None) if WINDOW in failed else GoAny("nil", None)
        t = self.types.type_at(typ)
        if t is None:
            return GoAny("other", None, f"type@{typ:#x}")
        if WINDOW in failed and not (t.direct and t.name not in FOLLOWS):
            return GoAny("unreadable", None, t.name)  # all but a bare pointer reads it
        try:
            return self._value(t, data, window, _Follows(follows, failed))
        except _Unreadable:
            return GoAny("unreadable", None, t.name)

    def _value(self, t, data: int, w: bytes, f: list[bytes]) -> GoAny:
        name, kind = t.name, t.kind
        if name == "time.Duration":
            return GoAny("duration", _s64(w, 0), name)
        if name == "syscall.Errno":
            return GoAny("error", errno_message(_u64(w, 0)), name)
        if name == "time.Time":
            return GoAny("time", time_value(_u64(w, 0), _s64(w, 8)) + (_u64(w, 16) == 0,),
                         name)
        if name in ("slog.Attr", "slog.Value") and not f.bufs[2]:
            return GoAny("other", data, name)  # its Kind word was not copied (trace)
        if name == "slog.Attr":
            return self.attr(w, f)
        if name == "slog.Value":
            return self._slog_value(_u64(w, 0), _u64(w, 8), f, 1, 0)
        if kind == "string" or name == "[]uint8":
            return GoAny("string" if kind == "string" else "bytes",
                         _text(f[0], _s64(w, 8)), name)
        if kind in _INTS:
            return GoAny("int", _sint(w, _INTS[kind]), name)
        if kind in _UINTS:
            return GoAny("uint", int.from_bytes(w[:_UINTS[kind]], "little"), name)
        if kind == "float32":
            return GoAny("float", struct.unpack_from("<f", w)[0], name)
        if kind == "float64":
            return GoAny("float", struct.unpack_from("<d", w)[0], name)
        if kind == "bool":
            return GoAny("bool", w[0] != 0, name)
        if name in ("*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors"):
            return GoAny("error", _message(f[0], _s64(w, 8)), name)
        if name in ("*fs.PathError", "*os.SyscallError") and not f.bufs[1] and not f.bufs[2]:
            return GoAny("ptr", data, name)  # only one follow was copied (trace)
        if name == "*fs.PathError":  # Op + " " + Path + ": " + Err.Error()
            inner = self._inner_error(_u64(w, 32), f)
            if inner is None:
                return GoAny("ptr", data, name)
            op, path = _message(f[0], _s64(w, 8)), _message(f[1], _s64(w, 24))
            return GoAny("error", f"{op} {path}: {inner}", name)
        if name == "*os.SyscallError":  # Syscall + ": " + Err.Error()
            inner = self._inner_error(_u64(w, 16), f)
            if inner is None:
                return GoAny("ptr", data, name)
            return GoAny("error", f"{_message(f[0], _s64(w, 8))}: {inner}", name)
        if t.direct:
            return GoAny("ptr", data, name)
        return GoAny("other", data, name)

    def _inner_error(self, itab: int, f: _Follows) -> str | None:
        """A nested error (an itab, not a type word) of which only the first word of its
        value was copied (follow 2): syscall.Errno by its message; None for any other
        type, whose Error() lumos cannot know."""
        if not itab:
            return "<nil>"
        typ = self.types.itab_type(itab - self.bias)
        t = self.types.type_at(typ) if typ else None
        if t is not None and t.name == "syscall.Errno":
            return errno_message(_u64(f[2], 0))
        return None

    bias = 0  # set per record by the caller: nested type words are runtime addresses

    def attr(self, w: bytes, f, failed: frozenset[int] = frozenset()) -> GoAny:
        """A slog.Attr {Key string; Value slog.Value} (40 bytes in the window)."""
        if not isinstance(f, _Follows):
            f = _Follows(f, failed)
        if WINDOW in f.failed:
            return GoAny("unreadable", None, "slog.Attr")
        try:
            key = _text(f[0], _s64(w, 8))[0].decode("utf-8", "replace")
        except _Unreadable:
            key = "?"
        try:
            value = self._slog_value(_u64(w, 16), _u64(w, 24), f, 1, 32)
        except _Unreadable:
            value = GoAny("unreadable", None, "slog.Value")
        return GoAny("attr", (key, value), "slog.Attr")

    def _slog_value(self, num: int, any_typ: int, f: _Follows, k: int, _off: int) -> GoAny:
        """f[k]: the string's bytes (a stringptr), f[k + 1]: the word behind any (a Kind)."""
        t = self.types.type_at(any_typ - self.bias) if any_typ else None
        if t is None:
            return GoAny("nil", None) if not any_typ else GoAny("other", None, "?")
        if t.name == "slog.Kind":
            n = _u64(f[k + 1], 0)
            kind = SLOG_KINDS[n] if n < len(SLOG_KINDS) else "any"
            if kind == "bool":
                return GoAny("bool", num == 1, "bool")
            if kind == "duration":
                return GoAny("duration", _signed(num), "time.Duration")
            if kind == "float":
                return GoAny("float", struct.unpack("<d", struct.pack("<Q", num))[0], "float64")
            if kind == "int":
                return GoAny("int", _signed(num), "int64")
            if kind == "uint":
                return GoAny("uint", num, "uint64")
            return GoAny("other", None, f"slog.Kind({n})")
        if t.name == "slog.stringptr":
            return GoAny("string", _text(f[k], num), "string")
        if t.name in ("*time.Location", "slog.timeLocation"):
            return GoAny("time", (_signed(num), False), "time.Time")
        if t.name == "slog.groupptr":
            return GoAny("other", None, "slog.group")
        return GoAny("ptr" if t.direct else "other", None, t.name)


def time_value(wall: int, ext: int) -> tuple[int]:
    """(unix ns,) of a time.Time {wall, ext} (time/time.go's encoding)."""
    # hasMonotonic (top bit): 33-bit seconds since 1885 in wall; else ext is seconds
    sec = _WALL_TO_INTERNAL + ((wall << 1 & (1 << 64) - 1) >> 31) if wall >> 63 else ext
    nsec = wall & ((1 << 30) - 1)
    return ((sec - _UNIX_TO_INTERNAL) * 1_000_000_000 + nsec,)


def _text(buf: bytes, length: int) -> tuple[bytes, int]:
    n = max(0, min(length, len(buf)))
    return bytes(buf[:n]), length


def _message(buf: bytes, length: int) -> str:
    """A string inside an error's message, marked where the copy cut it (as --strlen
    marks strings: ...(+N) bytes left out), so a cut message never reads as whole."""
    data, n = _text(buf, length)
    text = data.decode("utf-8", "replace")
    return text + (f"...(+{n - len(data)})" if n > len(data) else "")


def _u64(b: bytes, off: int) -> int:
    return struct.unpack_from("<Q", b, off)[0]


def _s64(b: bytes, off: int) -> int:
    return struct.unpack_from("<q", b, off)[0]


def _sint(b: bytes, size: int) -> int:
    return int.from_bytes(b[:size], "little", signed=True)


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v
