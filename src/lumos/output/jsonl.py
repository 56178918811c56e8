"""JSON lines: one object per line, flushed, for `--json` on every tool."""

from __future__ import annotations

import json
from typing import TextIO


def write_json(obj: dict, out: TextIO) -> None:
    out.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
    out.write("\n")
    out.flush()
