"""Building the test programs (C with gcc, Go with a chosen toolchain), cached by source hash
outside the repository so reruns are instant: $LUMOS_TEST_BUILDS or ~/.cache/lumos/testbuilds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


def system_go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Debian golang-go is not installed (run make setup)", pytrace=False)
    return go


def build_go(pkg: str, go: str | None = None, ldflags: str = "", buildmode: str = "") -> str:
    """Build tests/programs/<pkg> (or an absolute dir) with a Go toolchain, cached."""
    go = go or system_go()
    src = Path(pkg) if os.path.isabs(pkg) else PROGRAMS / pkg
    files = [p for p in src.iterdir() if p.suffix in (".go", ".s", ".mod", ".c", ".h")]
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                             check=True).stdout.strip()
    key = _digest(files, f"{version} {ldflags} {buildmode}")
    out = BUILDS / "go" / version / f"{src.name}-{key}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local", GOPROXY="off",
                   GOCACHE=str(BUILDS / "gocache" / version))
        cmd = [go, "build", "-o", str(out.with_suffix(".tmp"))]
        if ldflags:
            cmd.append(f"-ldflags={ldflags}")
        if buildmode:
            cmd.append(f"-buildmode={buildmode}")
        subprocess.run(cmd + ["."], cwd=src, env=env, check=True)
        out.with_suffix(".tmp").rename(out)
    return str(out)
