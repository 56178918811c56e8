"""Go build information: toolchain version, main module, build settings (`go version -m`).

The linker writes a 32-byte header starting with "\\xff Go buildinf:" into `.go.buildinfo`
(16-byte aligned, in a data segment): ptrSize u8 at 14, flags u8 at 15. Since Go 1.18
(flags & 2) the version and module strings follow inline, each prefixed by its uvarint
length; before, two pointers to Go string headers follow instead. The module string is
the text `go version -m` prints (lines "path", "mod", "dep", "=>", "build" separated by
tabs) wrapped in 16 sentinel bytes on each side.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from lumos.binary.reader import take, uvarint
from lumos.errors import BinaryFormatError, GoFormatError

TYPE_CHECKING = False  # typing costs 10 ms to import; annotations are strings anyway
if TYPE_CHECKING:
    from lumos.binary.elf import ElfBinary

MAGIC = b"\xff Go buildinf:"
_VERSION_RE = re.compile(r"^go(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class BuildInfo:
    """What `go version -m` shows for a binary."""

    go_version: str                  # "go1.27.3" (may carry suffixes: "go1.24.0 X:boringcrypto")
    path: str = ""                   # main package path ("command-line-arguments" for go run x.go)
    main_module: str = ""            # module path of the main module
    main_version: str = ""
    deps: tuple[tuple[str, str], ...] = ()
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def version_tuple(self) -> tuple[int, int, int] | None:
        return parse_go_version(self.go_version)


def parse_go_version(v: str) -> tuple[int, int, int] | None:
    """(1, 27, 3) for "go1.27.3", (1, 21, 0) for "go1.21rc2"; None if not a Go release."""
    m = _VERSION_RE.match(v)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def read_buildinfo(elf: ElfBinary) -> BuildInfo | None:
    """The binary's build info, or None when it has none (not Go, or Go < 1.13)."""
    blob_vaddr, blob = _find_blob(elf)
    if blob is None:
        return None
    if len(blob) < 32:
        raise BinaryFormatError(f"{elf.path}: Go build info is truncated")
    ptr_size, flags = blob[14], blob[15]
    if flags & 2:
        vers, p = _inline_string(blob, 32)
        mod, _ = _inline_string(blob, p)
    else:
        if ptr_size != 8 or flags & 1:
            raise BinaryFormatError(f"{elf.path}: Go build info for another architecture")
        vers = _go_string(elf, struct.unpack_from("<Q", blob, 16)[0])
        mod = _go_string(elf, struct.unpack_from("<Q", blob, 24)[0])
    if not vers:
        return None
    return _parse_modinfo(vers, _strip_sentinels(mod))


def _find_blob(elf: ElfBinary) -> tuple[int, bytes | None]:
    rng = elf.get_section_range(".go.buildinfo")
    if rng:
        data = elf.get_section_data(".go.buildinfo")
        if data and data.startswith(MAGIC):
            return rng[0], data
    # No section headers to go by: search the writable data segments, as debug/buildinfo does.
    for seg in elf.segments:
        if seg.executable or not seg.flags & 0x2 or seg.filesz == 0:
            continue
        data = elf.read_offset(seg.offset, min(seg.filesz, 64 << 20))
        pos = data.find(MAGIC)
        while pos >= 0:
            if (seg.vaddr + pos) % 16 == 0:
                return seg.vaddr + pos, data[pos:pos + 64 * 1024]
            pos = data.find(MAGIC, pos + 1)
    return 0, None


def _inline_string(blob: bytes, p: int) -> tuple[str, int]:
    n, p = uvarint(blob, p, "Go build info: string length", GoFormatError)
    data = take(blob, p, n, "Go build info: string", GoFormatError)
    return data.decode("utf-8", "replace"), p + n


def _go_string(elf: ElfBinary, vaddr: int) -> str:
    hdr = elf.read_vaddr(vaddr, 16)
    if len(hdr) < 16:
        raise BinaryFormatError(f"{elf.path}: Go build info string header is truncated")
    ptr, n = struct.unpack("<QQ", hdr)
    if n > 1 << 20:
        raise BinaryFormatError(f"{elf.path}: Go build info string is implausibly long")
    return elf.read_vaddr(ptr, n).decode("utf-8", "replace") if n else ""


def _strip_sentinels(mod: str) -> str:
    # 16 random bytes on each side (cmd/go/internal/modload.ModInfoProg)
    if len(mod) >= 33 and mod[-17] == "\n":
        return mod[16:-16]
    return mod


def _parse_modinfo(vers: str, mod: str) -> BuildInfo:
    path = main = main_ver = ""
    deps: list[tuple[str, str]] = []
    settings: dict[str, str] = {}
    for line in mod.splitlines():
        parts = line.split("\t")
        if parts[0] == "path" and len(parts) > 1:
            path = parts[1]
        elif parts[0] == "mod" and len(parts) > 1:
            main = parts[1]
            main_ver = parts[2] if len(parts) > 2 else ""
        elif parts[0] == "dep" and len(parts) > 1:
            deps.append((parts[1], parts[2] if len(parts) > 2 else ""))
        elif parts[0] == "build" and len(parts) > 1:
            key, _, value = parts[1].partition("=")
            settings[key] = value
    return BuildInfo(vers, path, main, main_ver, tuple(deps), settings)
