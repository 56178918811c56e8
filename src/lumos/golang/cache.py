"""The per-binary cache of what lumos learnt about a Go binary, under ~/.cache/lumos/golang.

Keyed by the binary's build ids (Go's and GNU's, read from its note segments and
sections with plain struct reads, so a warm run needs neither pyelftools nor capstone),
its size, the lumos version and this cache's format number; a binary without build ids
is keyed by a hash of its bytes. Per key: an index (build info, function table, runtime
layout) and the function specs in shards by package. Files are replaced atomically; one
that does not parse is ignored and rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import zlib

import lumos
from lumos import filestamp

FORMAT = 3
SHARDS = 64
_PT_NOTE = 4
_SHT_NOTE = 7
_NT_GNU_BUILD_ID = 3
_NT_GO_BUILD_ID = 4


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lumos", "golang")


def read_build_ids(path: str) -> tuple[str, str]:
    """(Go build id, GNU build id hex) from the ELF's note segments and note sections
    (Go's linker leaves .note.gnu.build-id out of PT_NOTE); "" where absent."""
    go_id = gnu_id = ""
    try:
        with open(path, "rb") as f:
            hdr = f.read(64)
            if len(hdr) < 64 or hdr[:4] != b"\x7fELF" or hdr[4] != 2 or hdr[5] != 1:
                return "", ""
            phoff, shoff = struct.unpack_from("<QQ", hdr, 0x20)
            phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", hdr, 0x36)
            spans = []
            if phentsize >= 56 and phnum <= 256:
                f.seek(phoff)
                ph = f.read(phentsize * phnum)
                for i in range(len(ph) // phentsize):
                    p_type, _, off, _, _, size = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
                    if p_type == _PT_NOTE:
                        spans.append((off, size))
            if shentsize >= 64 and shnum <= 4096:
                f.seek(shoff)
                sh = f.read(shentsize * shnum)
                for i in range(len(sh) // shentsize):
                    _, sh_type, _, _, off, size = struct.unpack_from("<IIQQQQ", sh, i * shentsize)
                    if sh_type == _SHT_NOTE:
                        spans.append((off, size))
            for off, size in spans:
                if size > 1 << 16:
                    continue
                f.seek(off)
                for name, ntype, desc in _notes(f.read(size)):
                    if name == b"Go" and ntype == _NT_GO_BUILD_ID:
                        go_id = desc.rstrip(b"\0").decode("ascii", "replace")
                    elif name == b"GNU" and ntype == _NT_GNU_BUILD_ID:
                        gnu_id = desc.hex()
    except (OSError, struct.error):
        return "", ""
    return go_id, gnu_id


def _notes(data: bytes):
    p = 0
    while p + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, p)
        p += 12
        name = data[p:p + namesz].rstrip(b"\0")
        p += (namesz + 3) & ~3
        desc = data[p:p + descsz]
        p += (descsz + 3) & ~3
        yield name, ntype, desc


def binary_key(path: str, extra: str = "") -> str:
    """Cache key of the binary at path (see module doc)."""
    filestamp.remember(path)  # the warm path reads no ELF: stamp the file here
    go_id, gnu_id = read_build_ids(path)
    size = os.path.getsize(path)
    ident = f"{go_id}|{gnu_id}"
    if not go_id and not gnu_id:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        ident = h.hexdigest()
    raw = f"{ident}|{size}|{lumos.__version__}|{FORMAT}|{extra}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def shard_of(package: str) -> str:
    """Which spec file a function's package goes to: one package's functions share one
    file, so `main.*` reads a few kilobytes even when '*' was cached before."""
    return f"{zlib.crc32(package.encode()) % SHARDS:02x}"


def load(key: str, shard: str = "") -> dict | None:
    """The cached index of a binary (shard ""), or one shard of its specs."""
    try:
        with open(_path(key, shard), encoding="utf-8") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def save(key: str, data: dict, shard: str = "") -> None:
    """Write a cache file; a cache that cannot be written is not an error."""
    import tempfile  # only when writing: keeps warm runs' imports small

    path = _path(key, shard)
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # dumps, not dump: dump streams through the pure-Python encoder (10x slower)
            f.write(json.dumps({**data, "format": FORMAT}, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _path(key: str, shard: str) -> str:
    return os.path.join(cache_dir(), f"{key}.json" if not shard else f"{key}.specs/{shard}.json")
