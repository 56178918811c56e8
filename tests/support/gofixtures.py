"""pytest fixtures for lumos.golang tests: real builds of the test programs, opened once.

Import the fixtures a test module uses by name (`from support.gofixtures import ...`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lumos.golang.gobinary import GoBinary, open_go_binary
from support.gobuild import CGO_VARIANTS, VARIANTS, VERSIONS, build

MATRIX = [(v, var) for v in VERSIONS for var in VARIANTS]
CGO_MATRIX = [(v, var) for v in VERSIONS for var in CGO_VARIANTS]


@dataclass
class Built:
    program: str
    version: str
    variant: str
    exe: Path

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])

    @property
    def has_dwarf(self) -> bool:
        return "stripped" not in self.variant

    def __str__(self) -> str:
        return f"go{self.version}-{self.variant}"


_opened: dict[str, GoBinary] = {}


def opened(b: Built) -> GoBinary:
    """The binary analysed without the on-disk cache, once per session."""
    key = str(b.exe)
    if key not in _opened:
        _opened[key] = open_go_binary(key, use_cache=False)
    return _opened[key]


def _ids(p):
    return f"go{p[0]}-{p[1]}"


@pytest.fixture(scope="session", params=MATRIX, ids=_ids)
def alltypes(request) -> Built:
    v, var = request.param
    return Built("alltypes", v, var, build("alltypes", v, var))


@pytest.fixture(scope="session", params=[m for m in MATRIX if m[1] != "stripped"], ids=_ids)
def alltypes_dwarf(request) -> Built:
    """The builds that keep DWARF (default and PIE)."""
    v, var = request.param
    return Built("alltypes", v, var, build("alltypes", v, var))


@pytest.fixture(scope="session", params=CGO_MATRIX, ids=_ids)
def cgoprog(request) -> Built:
    v, var = request.param
    return Built("cgoprog", v, var, build("cgoprog", v, var))


@pytest.fixture(scope="session", params=VERSIONS, ids=lambda v: f"go{v}")
def alltypes_default(request) -> Built:
    v = request.param
    return Built("alltypes", v, "default", build("alltypes", v, "default"))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """XDG_CACHE_HOME in a temporary directory: the test sees only its own cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "lumos" / "golang"
