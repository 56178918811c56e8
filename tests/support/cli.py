"""Running `lumos` as a user does, in a subprocess, for exit codes and stderr."""

from __future__ import annotations

import subprocess
import sys

# Tools whose modules exist in this checkout (other branches may not have them yet).
_RUN = """
import importlib.util, sys
import lumos.cli as cli
cli.TOOLS = {k: v for k, v in cli.TOOLS.items() if importlib.util.find_spec(v)}
sys.exit(cli.main(sys.argv[1:]))
"""


def run_lumos(*args: str, env: dict | None = None, timeout: float = 120,
              stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=stdin)
