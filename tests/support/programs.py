"""Building the C test programs with gcc, cached by source hash outside the repository so
reruns are instant: $LUMOS_TEST_BUILDS or ~/.cache/lumos/testbuilds. (Go programs:
support/gobuild.py.)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "tests" / "programs"
BUILDS = Path(os.environ.get("LUMOS_TEST_BUILDS",
                             Path.home() / ".cache" / "lumos" / "testbuilds"))


def _digest(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_c(name: str, cflags: tuple[str, ...] = ("-O2",)) -> str:
    src = PROGRAMS / "c" / f"{name}.c"
    out = BUILDS / "c" / f"{name}-{_digest([src], ' '.join(cflags))}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        subprocess.run(["gcc", *cflags, "-o", str(tmp), str(src)], check=True)
        tmp.rename(out)
    return str(out)
