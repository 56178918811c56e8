"""Command lines and paths as event tools print them: one line per event, always.

Bytes from the traced program are decoded as UTF-8 (invalid bytes as \\xNN), and control
characters are escaped (\\n, \\t, \\x1b...) so that an argument can never break a line.
With quote=True each argument is put in double quotes with `"` and `\\` escaped too, so
shlex.split() gives the arguments back exactly (BCC's execsnoop -q escapes only `"`).
"""

from __future__ import annotations

import re

CUT = "..."
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape_control(text: str) -> str:
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def printable(raw: bytes) -> str:
    """One path or argument as text on one line."""
    return _escape_control(raw.decode("utf-8", "backslashreplace"))


def format_args(args: list[bytes], cut: list[bool], more: bool, quote: bool = False) -> str:
    """ARGS column: arguments joined by spaces, a cut one ending in '...', ' ...' when
    arguments were left out (as libbpf-tools prints)."""
    words = []
    for raw, was_cut in zip(args, cut, strict=True):
        text = raw.decode("utf-8", "backslashreplace")
        if quote:
            text = '"' + _escape_control(text.replace("\\", "\\\\").replace('"', '\\"')) + (
                CUT if was_cut else "") + '"'
        else:
            text = _escape_control(text) + (CUT if was_cut else "")
        words.append(text)
    return " ".join(words) + (" " + CUT if more else "")
