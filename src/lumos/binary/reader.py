"""Bounds-checked reads from a byte buffer: the one place binary formats are decoded.

Every read checks the buffer's end and raises a BinaryFormatError (or the subclass the
caller names: DwarfFormatError, GoFormatError) saying what was being read and at which
offset, so a damaged file fails where its bytes are read, as pyelftools' struct_parse
does, and never as an IndexError or struct.error, which would then mean a lumos bug.

Functions take and return positions, for the hot loops of the DIE reader and the
pc-value tables (a call per value, no object per read); Reader is a cursor over the
same functions for sequential formats (location lists, expressions).

Encodings: unsigned and signed LEB128 (DWARF, section 7.6), Go's uvarint
(encoding/binary: LEB128 limited to 64 bits, 10 bytes), little-endian fixed-size
integers, NUL-terminated strings.
"""

from __future__ import annotations

import struct

from lumos.errors import BinaryFormatError

_U = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"),
      8: struct.Struct("<Q")}
_S = {1: struct.Struct("<b"), 2: struct.Struct("<h"), 4: struct.Struct("<i"),
      8: struct.Struct("<q")}
_MAX_LEB = 10   # bytes: enough for 64 bits (70 bits of payload)


def _fail(exc: type[BinaryFormatError], what: str, pos: int) -> BinaryFormatError:
    return exc(f"{what} runs off the end", pos)


def uleb128(buf: bytes, pos: int, what: str = "LEB128 value",
            exc: type[BinaryFormatError] = BinaryFormatError) -> tuple[int, int]:
    """(value, position after it) of the unsigned LEB128 at pos."""
    v = shift = 0
    start = pos
    n = len(buf)
    while True:
        if pos >= n:
            raise _fail(exc, what, start)
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, pos
        shift += 7
        if pos - start >= _MAX_LEB:
            raise exc(f"{what} is longer than 64 bits", start)


def sleb128(buf: bytes, pos: int, what: str = "LEB128 value",
            exc: type[BinaryFormatError] = BinaryFormatError) -> tuple[int, int]:
    """(value, position after it) of the signed LEB128 at pos."""
    v = shift = 0
    start = pos
    n = len(buf)
    while True:
        if pos >= n:
            raise _fail(exc, what, start)
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return (v - (1 << shift) if b & 0x40 else v), pos
        if pos - start >= _MAX_LEB:
            raise exc(f"{what} is longer than 64 bits", start)


def uvarint(buf: bytes, pos: int, what: str = "uvarint",
            exc: type[BinaryFormatError] = BinaryFormatError) -> tuple[int, int]:
    """Go's encoding/binary.Uvarint: LEB128 of at most 64 bits."""
    v, end = uleb128(buf, pos, what, exc)
    if v >> 64:
        raise exc(f"{what} overflows 64 bits", pos)
    return v, end


def uint(buf: bytes, pos: int, size: int, what: str = "integer",
         exc: type[BinaryFormatError] = BinaryFormatError) -> int:
    """The little-endian unsigned integer of `size` bytes (1, 2, 4, 8, or any) at pos."""
    if pos < 0 or pos + size > len(buf):
        raise _fail(exc, what, pos)
    s = _U.get(size)
    return s.unpack_from(buf, pos)[0] if s else int.from_bytes(buf[pos:pos + size], "little")


def sint(buf: bytes, pos: int, size: int, what: str = "integer",
         exc: type[BinaryFormatError] = BinaryFormatError) -> int:
    if pos < 0 or pos + size > len(buf):
        raise _fail(exc, what, pos)
    return _S[size].unpack_from(buf, pos)[0]


def unpack(fmt: struct.Struct, buf: bytes, pos: int, what: str = "record",
           exc: type[BinaryFormatError] = BinaryFormatError) -> tuple:
    """struct.unpack_from with the bounds checked first."""
    if pos < 0 or pos + fmt.size > len(buf):
        raise _fail(exc, what, pos)
    return fmt.unpack_from(buf, pos)


def take(buf: bytes, pos: int, size: int, what: str = "bytes",
         exc: type[BinaryFormatError] = BinaryFormatError) -> bytes:
    """Exactly `size` bytes at pos."""
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise _fail(exc, what, pos)
    return buf[pos:pos + size]


def cstring(buf: bytes, pos: int, what: str = "string",
            exc: type[BinaryFormatError] = BinaryFormatError) -> tuple[bytes, int]:
    """(bytes up to the NUL, position after the NUL) at pos."""
    if not 0 <= pos < len(buf):
        raise exc(f"{what} starts outside its table", pos)
    end = buf.find(b"\0", pos)
    if end < 0:
        raise exc(f"{what} is not terminated", pos)
    return buf[pos:end], end + 1


class Reader:
    """A cursor over buf: each read advances it. `what` names the structure in errors."""

    __slots__ = ("buf", "pos", "what", "exc")

    def __init__(self, buf: bytes, pos: int = 0, what: str = "data",
                 exc: type[BinaryFormatError] = BinaryFormatError):
        self.buf, self.pos, self.what, self.exc = buf, pos, what, exc

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def u(self, size: int) -> int:
        v = uint(self.buf, self.pos, size, self.what, self.exc)
        self.pos += size
        return v

    def u8(self) -> int:
        return self.u(1)

    def u16(self) -> int:
        return self.u(2)

    def u32(self) -> int:
        return self.u(4)

    def u64(self) -> int:
        return self.u(8)

    def uleb(self) -> int:
        v, self.pos = uleb128(self.buf, self.pos, self.what, self.exc)
        return v

    def sleb(self) -> int:
        v, self.pos = sleb128(self.buf, self.pos, self.what, self.exc)
        return v

    def uvarint(self) -> int:
        v, self.pos = uvarint(self.buf, self.pos, self.what, self.exc)
        return v

    def bytes(self, size: int) -> bytes:
        b = take(self.buf, self.pos, size, self.what, self.exc)
        self.pos += size
        return b
