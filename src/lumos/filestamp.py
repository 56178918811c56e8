"""Is the file lumos analysed still the one it attaches to?

Uprobes are placed by (inode, offset), and the kernel copies the original instruction
when the first probe at an offset goes in. Offsets worked out from one content and
used on another land wherever they land, mid-instruction perhaps: the "crash from stale
probe offsets" seen with other tools when a binary is rebuilt or patched under them.
So lumos stamps each file when it first reads it (device, inode, size, mtime) and
compares before and after attaching; a running binary cannot be written (ETXTBSY), but
one that is not running can be, in place (`cp new old`, `dd conv=notrunc`) or replaced.

A leaf beside errors.py: binary/ and golang/ stamp files as they read them, probes/
checks where it attaches, and neither layer needs the other for that.
"""

from __future__ import annotations

import os

from lumos.errors import TargetError

_first: dict[str, tuple[int, int, int, int]] = {}


def stamp_of(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def current(path: str) -> tuple[int, int, int, int] | None:
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None


def remember(path: str, st: os.stat_result | None = None) -> None:
    """Stamp path as read now (st: fstat of the descriptor read from), the first time
    only: attaching compares with the content the analysis began on (the function list
    of that first read is cached for the whole run, targets.patterns)."""
    stamp = stamp_of(st) if st is not None else current(path)
    if stamp is not None:
        _first.setdefault(os.path.realpath(path), stamp)


def first_seen(path: str) -> tuple[int, int, int, int] | None:
    return _first.get(os.path.realpath(path))


def changed(path: str) -> str | None:
    """How path differs from when lumos first read it: "replaced" (another inode now),
    "modified" (same inode, new size or mtime), or None (unchanged, or never read)."""
    then = first_seen(path)
    if then is None:
        return None
    now = current(path)
    if now is None or now[:2] != then[:2]:
        return "replaced"
    return "modified" if now != then else None


def check_unchanged(path: str) -> None:
    """Refuse to attach to a file that changed since lumos analysed it."""
    how = changed(path)
    if how is not None:
        raise TargetError(_stale(path, how))


def _stale(path: str, how: str) -> str:
    return (f"{path} was {how} on disk after lumos read it: its probe offsets would be "
            f"stale (run lumos again)")
