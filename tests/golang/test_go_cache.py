"""The per-build-id cache: a second run answers without parsing the binary."""

from __future__ import annotations

import shutil

import pytest
from support.gobuild import build
from support.gofixtures import isolated_cache  # noqa: F401

from lumos.golang import cache
from lumos.golang.gobinary import open_go_binary


@pytest.fixture
def exe(tmp_path):
    p = tmp_path / "alltypes"
    shutil.copy(build("alltypes", "1.27.3", "default"), p)
    return p


def test_second_run_uses_cache(exe, isolated_cache):  # noqa: F811
    with open_go_binary(str(exe)) as gb:
        first = [gb.spec(f) for f in gb.match("main.*")]
        rt = gb.runtime_layout()
    files = list(isolated_cache.glob("*.json"))
    assert len(files) == 1
    gb = open_go_binary(str(exe))
    second = [gb.spec(f) for f in gb.match("main.*")]
    assert second == first and gb.runtime_layout() == rt
    assert gb._elf is None and gb._tab is None  # nothing parsed
    assert gb.go_version == "go1.27.3" and gb.has_dwarf
    # a function not analysed yet opens the file on demand, and is cached after
    f = gb.get_functions("fmt.Sprintf")[0]
    assert gb.spec(f).signature().startswith("fmt.Sprintf(format string, a []interface {})")
    assert gb._elf is not None
    gb.close()
    gb = open_go_binary(str(exe))
    gb.spec(gb.get_functions("fmt.Sprintf")[0])
    assert gb._elf is None


def test_key_follows_build_id_and_lumos(exe, tmp_path):
    go_id, gnu_id = cache.read_build_ids(str(exe))
    assert go_id.count("/") == 3 and len(gnu_id) == 40
    other = build("alltypes", "1.27.3", "stripped")
    assert cache.binary_key(str(exe)) != cache.binary_key(str(other))
    assert cache.binary_key(str(exe)) != cache.binary_key(str(exe), extra="other-kernel")
    no_ids = tmp_path / "plain"
    no_ids.write_bytes(b"\x7fELF" + bytes(100))
    assert cache.read_build_ids(str(no_ids)) == ("", "")
    assert len(cache.binary_key(str(no_ids))) == 32  # falls back to hashing the bytes


def test_damaged_cache_is_ignored(exe, isolated_cache):  # noqa: F811
    with open_go_binary(str(exe)) as gb:
        gb.spec(gb.get_functions("main.Leaf")[0])
    (f,) = isolated_cache.glob("*.json")
    f.write_text("{not json")
    with open_go_binary(str(exe)) as gb:
        assert gb.spec(gb.get_functions("main.Leaf")[0]).signature() == "main.Leaf(a int) int"
    assert cache.load(f.stem) is not None


def test_unwritable_cache_is_not_an_error(exe, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("XDG_CACHE_HOME", str(ro / "sub"))
    with open_go_binary(str(exe)) as gb:
        assert gb.spec(gb.get_functions("main.Leaf")[0])
