"""Finding a library by short name: 'libc' -> /lib/x86_64-linux-gnu/libc.so.6.

With a PID, the library the process has mapped wins; without one, the executable's
DT_NEEDED entries are searched in the standard directories, like the dynamic loader.
"""

from __future__ import annotations

import os
import re

from lumos.binary.elf import open_elf
from lumos.binary.procmaps import mapped_libraries
from lumos.errors import TargetError

LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
            "/lib", "/usr/lib", "/usr/local/lib")


def _matches(short: str, path: str) -> bool:
    base = os.path.basename(path)
    if not short.startswith("lib"):
        short = "lib" + short
    return re.match(re.escape(short) + r"(-[\d.]+)?\.so(\.|$)", base) is not None


def resolve_library(short: str, exe: str | None = None, pid: int | None = None) -> str:
    """Path of a library given as a path or short name ('c', 'libc', 'libssl')."""
    if "/" in short:
        if not os.path.exists(short):
            raise TargetError(f"library {short}: no such file")
        return short
    if pid is not None:
        for path in mapped_libraries(pid):
            if _matches(short, path):
                return f"/proc/{pid}/root{path}" if _in_other_root(pid) else path
        raise TargetError(f"library {short!r} is not mapped in PID {pid}")
    candidates: list[str] = []
    if exe is not None:
        with open_elf(exe) as elf:
            candidates = [n for n in elf.needed if _matches(short, n)]
    for name in candidates or [f"{short if short.startswith('lib') else 'lib' + short}.so"]:
        for d in LIB_DIRS:
            path = os.path.join(d, name)
            if _is_elf(path):
                return os.path.realpath(path)
    for d in LIB_DIRS:
        try:
            for base in sorted(os.listdir(d)):
                if _matches(short, base) and _is_elf(os.path.join(d, base)):
                    return os.path.realpath(os.path.join(d, base))
        except OSError:
            continue
    raise TargetError(f"library {short!r} not found (give its path, e.g. "
                      f"/lib/x86_64-linux-gnu/libc.so.6)")


def _is_elf(path: str) -> bool:
    """Not a linker script: libc6-dev's libc.so is text naming libc.so.6."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _in_other_root(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/root") != "/"
    except OSError:
        return False
