"""Command lines printed one per line: escaping, cut marks, quoting that shlex reads back."""

import shlex

from lumos.output.cmdline import format_args, printable


def test_quoted_arguments_split_back_exactly():
    args = [b"/bin/x", b"two words", b'say "hi"', b"back\\slash", b"", "ünï ✓".encode()]
    text = format_args(args, [False] * len(args), more=False, quote=True)
    assert shlex.split(text) == [a.decode() for a in args]


def test_cut_and_more_are_marked_and_control_characters_escaped():
    text = format_args([b"a", b"b\nc", b"long"], [False, False, True], more=True)
    assert text == "a b\\nc long... ..."
    assert "\n" not in printable(b"x\x1by\tz\n") and printable(b"x\x1by") == "x\\x1by"
    assert printable(b"\xff") == "\\xff"
