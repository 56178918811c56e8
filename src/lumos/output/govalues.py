"""Decoded values printed the way Go prints them: strconv.Quote for strings, %+v-style
structs, nil for zero pointers; and their JSON form for --json."""

from __future__ import annotations

from lumos.golang.anyvalue import GoAny, Resolved
from lumos.probes.capture import Capture
from lumos.probes.decode import UNREADABLE, Boxed, Slice, Text

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
    if cap.kind == "float":  # fmt's %v: strconv 'g' shortest, float32 at 32 bits
        from lumos.output.anyfmt import go_float
        return go_float(value, 8 * cap.size)
    if isinstance(value, Slice):
        return _slice_text(cap, value)
    if cap.kind == "slice":
        ptr, length, cap_ = value
        tn = cap.type_name or "[]?"
        return f"{tn}(nil)" if ptr == 0 else f"{tn}(len={length}, cap={cap_})"
    if cap.kind == "iface":
        if isinstance(value, Resolved):  # decoded by type (targets.ifaces)
            return _any_text(value.value)
        typ, data = (value.typ, value.data) if isinstance(value, Boxed) else value
        return "nil" if typ == 0 else f"{cap.type_name or 'interface'}({typ:#x}, {data:#x})"
    if isinstance(value, tuple):  # raw words: one is a number, more a {..} list
        if len(value) == 1:
            return f"{value[0]:#x}"
        return "{" + ", ".join(f"{w:#x}" for w in value) + "}"
    return str(value)


def _slice_text(cap: Capture, v: Slice) -> str:
    """fmt's %#v: []string{"a", "b"}, []int{1, 2}, []string(nil), []int{}; the elements
    past --max-elems counted as ...(+N), strings cut at --strlen as elsewhere."""
    tn = cap.type_name or "[]?"
    if v.ptr == 0:
        return f"{tn}(nil)"
    items = [_elem_text(cap, e) for e in v.elems]
    if v.more > 0:
        items.append(f"...(+{v.more})")
    return tn + "{" + ", ".join(items) + "}"


def _elem_text(cap: Capture, e) -> str:
    if e is UNREADABLE:
        return "?"
    if isinstance(e, Text):
        return go_quote(e.data) + (f"...(+{e.length - len(e.data)})" if e.truncated else "")
    if cap.elem == "bool":
        return "true" if e else "false"
    if cap.elem == "float":
        from lumos.output.anyfmt import go_float
        return go_float(e, 8 * cap.elem_size)
    if cap.elem == "uint":  # %#v writes unsigned integers in hex
        return f"{e:#x}"
    if cap.elem == "pointer":  # %#v of a pointer inside a value: (*main.T)(0xc000010000)
        tn = cap.elem_type or (cap.type_name[2:] if cap.type_name.startswith("[]") else "?")
        return f"({tn})({e:#x})" if e else f"({tn})(nil)"
    return str(e)


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
    if isinstance(value, Resolved):
        from lumos.output.anyfmt import json_value as any_json
        return {"type": value.value.type_name or None, "value": any_json(value.value),
                "words": list(value.words)}
    if isinstance(value, Boxed):
        return [value.typ, value.data]
    if isinstance(value, Slice):  # the elements read, and the slice's own three words
        return {"ptr": value.ptr, "len": value.length, "cap": value.cap,
                "elems": [_json_elem(cap, e) for e in value.elems]}
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
    if cap.kind == "float" and cap.size == 4:  # float32's own shortest digits, as elements
        from lumos.output.anyfmt import go_float
        return float(go_float(value, 32))
    return value


def _json_elem(cap: Capture, e):
    if e is UNREADABLE:
        return None
    if isinstance(e, Text):
        return json_value(Capture("", "string", ()), e)
    if isinstance(e, float) and (e != e or e in (float("inf"), float("-inf"))):
        return str(e)  # JSON has no NaN/Inf (as json_value says of a float argument)
    if cap.elem == "float" and cap.elem_size == 4:  # float32's own shortest digits
        from lumos.output.anyfmt import go_float
        return float(go_float(e, 32))
    return e


def _any_text(v: GoAny) -> str:
    """An interface's value as Go's %#v-ish short form: strings quoted, errors and other
    values by their text, pointers as TYPE(0xADDR)."""
    from lumos.output.anyfmt import text_value
    if v.kind in ("string", "bytes"):
        data, length = v.value
        text = go_quote(data) if v.kind == "string" else _bytes_literal(data)
        return text + (f"...(+{length - len(data)})" if length > len(data) else "")
    if v.kind == "error":
        return f"{v.type_name}({go_quote(str(v.value).encode())})"
    if v.kind == "nil":
        return "nil"
    if v.kind == "unreadable":  # its type is known, its bytes could not be read
        return f"{v.type_name}(?)" if v.type_name else "?"
    if v.kind in ("int", "uint", "float", "bool") and v.type_name not in (
            "int", "int64", "uint64", "float64", "bool", "string"):
        return f"{v.type_name}({text_value(v)})"
    return text_value(v)
