"""--filter: the parser, its errors and the checks against captures (no root needed)."""

from __future__ import annotations

import pytest

from lumos.errors import UsageError
from lumos.probes.capture import Capture, WordLoc
from lumos.probes.filter import (
    BoolOp,
    Compare,
    Not,
    check_filter,
    format_expr,
    names_in,
    parse_filter,
)

YEAR = Capture("year", "int", (WordLoc.register("cx"),), 8, type_name="int")
NAME = Capture("name", "string", (WordLoc.register("ax"), WordLoc.register("bx")), 16,
               str_max=64, type_name="string")
OK = Capture("ok", "bool", (WordLoc.register("di", 1),), 1, type_name="bool")
F = Capture("f", "float", (WordLoc("none"),), 8, type_name="float64")
CAPS = {c.name: c for c in (YEAR, NAME, OK, F)}


@pytest.mark.parametrize("text, expected", [
    ("year == 2021", Compare("year", "==", 2021)),
    ("year >= -5", Compare("year", ">=", -5)),
    ("year != 0x10", Compare("year", "!=", 16)),
    ('name == "Gopher"', Compare("name", "==", "Gopher")),
    ('name == "a\\"b"', Compare("name", "==", 'a"b')),
    ('name == "Привет"', Compare("name", "==", "Привет")),
    ("ok", Compare("ok", "!=", 0)),
    ("ok == true", Compare("ok", "==", 1)),
    ("!ok", Not(Compare("ok", "!=", 0))),
    ("not ok", Not(Compare("ok", "!=", 0))),
    ("year == 1 && ok", BoolOp("and", Compare("year", "==", 1), Compare("ok", "!=", 0))),
    ("year == 1 or year == 2", BoolOp("or", Compare("year", "==", 1),
                                      Compare("year", "==", 2))),
])
def test_parses(text, expected):
    assert parse_filter(text) == expected


def test_and_binds_tighter_than_or_and_parentheses_override():
    e = parse_filter("a == 1 || b == 2 && c == 3")
    assert format_expr(e) == "(a == 1 || (b == 2 && c == 3))"
    e = parse_filter("(a == 1 || b == 2) && c == 3")
    assert format_expr(e) == "((a == 1 || b == 2) && c == 3)"
    assert names_in(e) == {"a", "b", "c"}


@pytest.mark.parametrize("text, message", [
    ("year ==", "unexpected end"),
    ("year == 2021 &&", "unexpected end"),
    ("(year == 1", "missing ')'"),
    ("year == 1)", "unexpected ')'"),
    ("== 3", "expected an argument name"),
    ("year = 3", "cannot read"),
    ("year == abc", "expected a number or a string"),
    ("year ~ 3", "cannot read"),
    ("year 3", "expected a comparison"),
])
def test_syntax_errors_are_one_clear_line(text, message):
    with pytest.raises(UsageError) as e:
        parse_filter(text)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, message", [
    ("nosuch == 1", "has no argument 'nosuch' (arguments: year, name, ok, f)"),
    ('year == "x"', "year is int, not a string"),
    ("name == 3", "name is string; compare it with a string"),
    ('name < "x"', "strings support only == and !="),
    ("name == \"" + "x" * 65 + "\"", "limited to 64 bytes"),
    ("f == 1", "cannot be read at the probe site"),
])
def test_checks_against_the_captures(text, message):
    with pytest.raises(UsageError) as e:
        check_filter(parse_filter(text), CAPS, "main.f")
    assert message in str(e.value)


def test_accepts_what_it_can_compile():
    for text in ("year == 2021 && name != \"\"", "!ok || year < 0", 'name == ""'):
        check_filter(parse_filter(text), CAPS, "main.f")
