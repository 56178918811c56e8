"""Decoded values printed the way Go prints them: strconv.Quote for strings, %+v-style
structs, nil for zero pointers; and their JSON form for --json."""

from __future__ import annotations

from lumos.probes.capture import Capture
from lumos.probes.decode import UNREADABLE, Text

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
    if cap.kind == "cstring":  # C: NULL, and a cut string just trails off
        if value is None:
            return "NULL"
        return go_quote(value.data) + ("..." if value.truncated else "")
    if cap.kind == "hex":
        return f"{value:#x}"
    if isinstance(value, Text):
        text = go_quote(value.data) if cap.kind == "string" else _bytes_literal(value.data)
        if value.truncated:
            text += f"...(+{value.length - len(value.data)})"
        return text
    if cap.kind == "bool":
        return "true" if value else "false"
    if cap.kind == "pointer":
        if value == 0:  # C types are written 'char *', Go's '*main.T'
            return "NULL" if cap.type_name.endswith("*") else "nil"
        return f"{value:#x}"
    if cap.kind == "float":
        return repr(value)
    if cap.kind == "slice":
        ptr, length, cap_ = value
        return "nil" if ptr == 0 else f"{cap.type_name or '[]?'}(len={length}, cap={cap_})"
    if cap.kind == "iface":
        typ, data = value
        return "nil" if typ == 0 else f"{cap.type_name or 'interface'}({typ:#x}, {data:#x})"
    if isinstance(value, tuple):  # raw words: one is a number, more a {..} list
        if len(value) == 1:
            return f"{value[0]:#x}"
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
    if cap.kind == "cstring":
        if value is None:
            return None
        out = {"str": value.data.decode("utf-8", "backslashreplace")}
        if value.truncated:
            out["truncated"] = True
        return out
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
