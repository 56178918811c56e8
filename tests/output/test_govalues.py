"""Values printed as Go prints them (no root needed): strconv.Quote, %+v structs, JSON."""

from __future__ import annotations

import json

import pytest

from lumos.output.govalues import format_value, format_values, go_quote, json_value
from lumos.probes.capture import Capture, WordLoc
from lumos.probes.decode import UNREADABLE, Text


@pytest.mark.parametrize("data, quoted", [
    (b"Gopher", '"Gopher"'),
    (b"", '""'),
    (b'a"b\\c', '"a\\"b\\\\c"'),
    (b"tab\tnl\n", '"tab\\tnl\\n"'),
    ("Привет, 世界".encode(), '"Привет, 世界"'),
    ("😀".encode(), '"😀"'),
    (b"\x00\x07\x7f", '"\\x00\\a\\x7f"'),
    (b"\xff\xfe", '"\\xff\\xfe"'),            # invalid UTF-8, byte by byte
    (b"\xe4\xb8", '"\\xe4\\xb8"'),            # a rune cut short
    ("\u200b".encode(), '"\\u200b"'),         # not printable
])
def test_go_quote_is_strconv_quote(data, quoted):
    assert go_quote(data) == quoted


def _cap(name, kind, n=1, **kw):
    return Capture(name, kind, tuple(WordLoc.register("ax") for _ in range(n)), **kw)


def test_values_and_structs():
    caps = [_cap("s", "string", 2, str_max=3), _cap("p.X", "int"), _cap("p.Y", "int"),
            _cap("ok", "bool"), _cap("ptr", "pointer"), _cap("sl", "slice", 3,
                                                             type_name="[]int")]
    values = [Text(b"abc", 10), 1, -2, True, 0, (0xc000010000, 2, 4)]
    assert format_values(caps, values) == [
        's="abc"...(+7)', "p={X: 1, Y: -2}", "ok=true", "ptr=nil", "sl=[]int(len=2, cap=4)"]
    assert format_value(_cap("f", "float"), UNREADABLE) == "?"


def test_json_values():
    assert json_value(_cap("s", "string", 2), Text(b"ab", 2)) == {"len": 2, "str": "ab"}
    assert json_value(_cap("s", "string", 2), Text(b"\xff", 3)) == \
        {"len": 3, "hex": "ff", "truncated": True}
    assert json_value(_cap("f", "float"), float("nan")) == "nan"
    assert json.dumps(json_value(_cap("w", "words", 2), (1, 2))) == "[1, 2]"
