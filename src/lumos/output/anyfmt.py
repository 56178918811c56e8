"""Decoded Go `any` values (golang.anyvalue.GoAny) as text and JSON, as Go prints them:
fmt's %v for numbers (strconv 'g' shortest for floats), Duration.String(), RFC 3339
with nanoseconds for times, errors by message, pointers as TYPE(0xADDR). Also fmt's
Sprint/Sprintln/Sprintf over such values, for loggers that format (logrus, zap's sugar).
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np

from lumos.output.govalues import go_quote


def go_float(x: float, bits: int = 64) -> str:
    """strconv.FormatFloat(x, 'g', -1, bits): shortest digits, %e when exp < -4 || >= 6."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    v = np.float32(x) if bits == 32 else np.float64(x)
    sci = np.format_float_scientific(v, unique=True, trim="-")
    mant, exp = sci.split("e")
    e = int(exp)
    digits = mant.replace("-", "").replace(".", "")
    neg = "-" if mant.startswith("-") else ""
    if x == 0:
        return neg + "0"
    if e < -4 or e >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{neg}{m}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if e < 0:
        return f"{neg}0.{'0' * (-e - 1)}{digits}"
    if len(digits) <= e + 1:
        return neg + digits + "0" * (e + 1 - len(digits))
    return f"{neg}{digits[:e + 1]}.{digits[e + 1:]}"


def go_duration(ns: int) -> str:
    """time.Duration.String()."""
    if ns == 0:
        return "0s"
    neg, u = ns < 0, abs(ns)
    if u < 1_000_000_000:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < size * 1000:
                return ("-" if neg else "") + _frac(u, size) + unit
    s, out = u // 1_000_000_000, ""
    frac = _frac(u % 1_000_000_000, 1_000_000_000)[1:]  # ".5" or ""
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if h:
        out = f"{h}h{m}m"
    elif m:
        out = f"{m}m"
    return ("-" if neg else "") + out + f"{s}{frac}s"


def _frac(v: int, size: int) -> str:
    whole, rest = divmod(v, size)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(size)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def go_time(unix_ns: int, utc: bool) -> str:
    """time.Time.Format(time.RFC3339Nano); a non-UTC time in this machine's zone."""
    sec, ns = divmod(unix_ns, 1_000_000_000)
    t = dt.datetime.fromtimestamp(sec, dt.UTC)
    if not utc:
        t = t.astimezone()
    frac = f".{ns:09d}".rstrip("0") if ns else ""
    off = t.utcoffset() or dt.timedelta(0)
    zone = "Z" if utc or not off else t.strftime("%z")[:3] + ":" + t.strftime("%z")[3:]
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (frac if frac != "." else "") + zone


def text_value(v) -> str:
    """%v of a GoAny (strings unquoted)."""
    k = v.kind
    if k in ("string", "bytes"):
        data, length = v.value
        s = data.decode("utf-8", "replace")
        return s + (f"...(+{length - len(data)})" if length > len(data) else "")
    if k == "float":
        return go_float(v.value, 32 if v.type_name == "float32" else 64)
    if k == "bool":
        return "true" if v.value else "false"
    if k in ("int", "uint", "error"):
        return str(v.value)
    if k == "duration":
        return go_duration(v.value)
    if k == "time":
        return go_time(v.value[0], v.value[1])
    if k == "ptr":
        return f"{v.type_name}({v.value:#x})" if v.value is not None else v.type_name
    if k == "nil":
        return "<nil>"
    if k == "attr":
        return f"{v.value[0]}={text_value(v.value[1])}"
    if k == "unreadable":  # the kernel could not read it: never a zero or an empty string
        return "?"
    return v.type_name


def quoted_value(v) -> str:
    """A value in key=value text, quoted as slog's TextHandler would (when needed)."""
    s = text_value(v)
    if v.kind in ("string", "bytes", "error") and _needs_quote(s):
        return go_quote(s.encode())
    return s


def _needs_quote(s: str) -> bool:
    return s == "" or any(c in ' ="\\' or not c.isprintable() for c in s)


def json_value(v):
    k = v.kind
    if k in ("int", "uint", "bool"):
        return v.value
    if k == "float":
        x = v.value
        return x if x == x and abs(x) != float("inf") else go_float(x)
    if k in ("nil", "unreadable"):
        return None
    return text_value(v)


# -- fmt over decoded values ------------------------------------------------------------

def sprint(values) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, v in enumerate(values):
        if i and v.kind != "string" and values[i - 1].kind != "string":
            out.append(" ")
        out.append(text_value(v))
    return "".join(out)


def sprintln(values) -> str:
    return " ".join(text_value(v) for v in values)


_VERB = re.compile(r"%([-+# 0]*\d*(?:\.\d+)?)([a-zA-Z%])")


def sprintf(fmt: str, values) -> str:
    """fmt.Sprintf for the common verbs (%v %s %d %q %t %f %g %x %T %%)."""
    it = iter(values)
    missing = object()

    def sub(m) -> str:
        flags, verb = m.group(1), m.group(2)
        if verb == "%":
            return "%"
        v = next(it, missing)
        if v is missing:
            return f"%!{verb}(MISSING)"
        if verb == "T":
            return v.type_name
        if verb == "q":
            return go_quote(text_value(v).encode())
        if verb in "fFeg" and v.kind == "float":
            return format(v.value, flags + verb.lower())
        if verb == "x" and v.kind in ("int", "uint"):
            return format(v.value, "x")
        return text_value(v)

    out = _VERB.sub(sub, fmt)
    extra = list(it)
    if extra:
        out += "%!(EXTRA " + ", ".join(f"{v.type_name}={text_value(v)}" for v in extra) + ")"
    return out
