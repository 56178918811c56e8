"""JSON lines: one object per line, for `--json` on every tool."""

from __future__ import annotations

import json
from typing import TextIO

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def write_json(obj: dict, out: TextIO, flush: bool = True) -> None:
    """Write one line; streaming tools pass flush=False and flush once per batch."""
    out.write(_encode(obj) + "\n")
    if flush:
        out.flush()


def encode_json(obj: dict) -> str:
    """One JSON line (with its newline), for tools that write a batch at once."""
    return _encode(obj) + "\n"
