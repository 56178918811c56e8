"""Running lumos's stack tools on the `profiled` test program, and reading what they write
with the real clients: `go tool pprof`, headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from support.gobuild import go_binary

LUMOS = [sys.executable, "-m", "lumos.cli"]


def run_tool(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """lumos TOOL ... -c 'profiled ...': the program waits for a line on stdin, which it
    reads only once it runs, i.e. after the probes are attached."""
    r = subprocess.run([*LUMOS, *args], input="\n", capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


def pprof(version: str, *args: str) -> str:
    r = subprocess.run([go_binary(version), "tool", "pprof", *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def pprof_top(path: str, sample_index: str | None = None) -> dict[str, tuple[float, float]]:
    """{function: (flat, cum)} from `go tool pprof -top -raw` style output, in the file's
    unit (numbers only: -unit=... not needed for counts)."""
    args = ["-top", "-nodecount=1000"]
    if sample_index:
        args.append(f"-sample_index={sample_index}")
    out = pprof("1.27.3", *args, "-unit=B" if sample_index and "space" in sample_index
                else "-unit=ms" if sample_index == "cpu" else "-unit=minimum", path)
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d.]+)(\w*)\s+[\d.]+%\s+[\d.]+%\s+([\d.]+)(\w*)\s+[\d.]+%\s+(.+)$",
                     line)
        if m:
            rows[m.group(5).strip()] = (float(m.group(1)), float(m.group(3)))
    return rows


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is missing: apt-get install chromium "
                    "(scripts/setup-system.sh)", pytrace=False)
    return path


def screenshot(url: str, png: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={profile}",
                            "--hide-scrollbars", "--force-device-scale-factor=1",
                            f"--window-size={width},{height}", f"--screenshot={png}", url],
                           capture_output=True, text=True, timeout=120)
    assert png.exists(), r.stderr[-2000:]
