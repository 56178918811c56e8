"""Shared fixtures: the real kernel, real programs; fd leaks fail the module."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from support.programs import build_c  # noqa: E402

from lumos.bpf import features  # noqa: E402

LUMOS = [sys.executable, "-m", "lumos.cli"]


def require(feature: str) -> None:
    """Fail (never skip) when a feature lumos needs is missing here."""
    err = features.check(feature)
    if err is not None:
        pytest.fail(f"needs {feature}: {err}", pytrace=False)


def _open_fds() -> set[str]:
    return {fd for fd in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True, scope="module")
def no_fd_leaks():
    before = _open_fds()
    yield
    import gc
    gc.collect()
    leaked = {fd: _target(fd) for fd in _open_fds() - before}
    leaked = {fd: t for fd, t in leaked.items() if t and "anon_inode" in t}
    assert not leaked, f"kernel object fds leaked by this module: {leaked}"


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.fixture(scope="session")
def calls_bin() -> str:
    return build_c("calls")


@pytest.fixture(scope="session")
def opens_bin() -> str:
    return build_c("opens", ("-O2", "-static"))  # static: no loader openat calls


def run_lumos(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LUMOS, *args], capture_output=True, text=True, timeout=timeout,
                          **kw)


@pytest.fixture(scope="module")
def goserver(tmp_path_factory):
    """The demo server on a free port; yields (process, port, path of its stderr log)."""
    import socket

    from support.gobuild import build
    from support.programs import ROOT
    binary = str(build(ROOT / "examples" / "goserver"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("goserver") / "stderr.log"
    with open(log, "w") as errf:
        proc = subprocess.Popen([binary, "-addr", f"127.0.0.1:{port}"], stderr=errf)
    import time
    for _ in range(100):
        if "listening" in log.read_text():
            break
        time.sleep(0.05)
    yield proc, port, log
    proc.kill()
    proc.wait()
