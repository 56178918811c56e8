"""A real PostgreSQL and the reqsvc test service (tests/programs/go/reqsvc) for the
lumos http / lumos sql tests.

PostgreSQL (Debian's `postgresql`) is initialised in a temporary directory, owned by the
`postgres` user when running as root (initdb refuses root), listening on 127.0.0.1 on a
free port with its socket in that directory; stopped and removed at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql "
                    "(scripts/setup-system.sh)", pytrace=False)
    return found[-1]


class Postgres:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="lumos-pg-"))
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.dsn = (f"host=127.0.0.1 port={self.port} user=lumos dbname=postgres "
                    "sslmode=disable")

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if self.user:
            cmd = ["su", self.user, "-s", "/bin/sh", "-c", " ".join(map(_quote, cmd))]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log = self.dir / "log"
            pytest.fail(f"{argv[0]} failed: {r.stderr}{r.stdout}"
                        f"{log.read_text() if log.exists() else ''}", pytrace=False)

    def start(self) -> Postgres:
        data = self.dir / "data"
        self._run(_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "lumos")
        self._run(_pg_bin("pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _quote(s: str) -> str:
    import shlex
    return shlex.quote(s)


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), for HTTPS with HTTP/2."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.fail(f"openssl failed: {r.stderr}", pytrace=False)
    return cert, key


class Service:
    """reqsvc running: .http and .https base URLs, .log() its own lines so far."""

    def __init__(self, exe: Path, pg: Postgres | None, workdir: Path, tls: bool = True,
                 quiet: bool = False):
        self.workdir = workdir
        self.out = workdir / f"reqsvc-{free_port()}.log"
        argv = [str(exe), "-sqlite", str(workdir / f"lite-{os.getpid()}-{time.time_ns()}.db")]
        if pg is not None:
            argv += ["-pg", pg.dsn]
        if tls:
            cert, key = make_cert(workdir)
            argv += ["-cert", str(cert), "-key", str(key)]
        if quiet:
            argv.append("-quiet")
        with open(self.out, "w") as outf:   # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(argv, stdout=outf, stderr=subprocess.STDOUT)
        self.http = self.https = ""
        for _ in range(200):
            text = self.out.read_text()
            lines = [ln.split()[1] for ln in text.splitlines() if ln.startswith("listening ")]
            if any(u.startswith("http://") for u in lines) and (
                    not tls or any(u.startswith("https://") for u in lines)):
                self.http = next(u for u in lines if u.startswith("http://"))
                self.https = next((u for u in lines if u.startswith("https://")), "")
                break
            if self.proc.poll() is not None:
                pytest.fail(f"reqsvc exited: {text}", pytrace=False)
            time.sleep(0.05)
        else:
            pytest.fail(f"reqsvc did not start: {self.out.read_text()}", pytrace=False)
        self.pid = self.proc.pid

    def log(self) -> list[str]:
        return [ln for ln in self.out.read_text().splitlines()
                if not ln.startswith("listening ")]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
