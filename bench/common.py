"""What every lumos benchmark shares: programs built once into a cache, processes that are
always cleaned up, a ground-truth view of the breakpoints in a process's text, medians,
tables, and the section of bench/RESULTS.md a benchmark owns.

Benchmarks are scripts, not tests: they run the real kernel, the real lumos CLI and
bpftrace side by side in one run, and compare medians measured in that run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
OUT = BENCH / "out"          # raw numbers (gitignored)
RESULTS = BENCH / "RESULTS.md"
CACHE = Path(os.environ.get("LUMOS_BENCH_CACHE", Path.home() / ".cache" / "lumos" / "bench"))
TOOLCHAINS = Path(os.environ.get("LUMOS_TOOLCHAINS",
                                 Path.home() / ".cache" / "lumos" / "toolchains"))
LUMOS = [str(ROOT / ".venv" / "bin" / "lumos")]
BPFTRACE = os.environ.get("BPFTRACE", "/usr/bin/bpftrace")
INT3 = 0xCC


class BenchError(Exception):
    """Something the benchmark needs is missing: say what and how to get it."""


# ---------------------------------------------------------------------------- programs

def go_toolchain(version: str) -> str:
    """Path of the `go` command for a version: "system" (Debian golang-go) or "1.27.3"."""
    if version == "system":
        go = shutil.which("go")
        if go is None:
            raise BenchError("Debian golang-go is not installed (run: make setup)")
        return go
    go = TOOLCHAINS / f"go{version}" / "go" / "bin" / "go"
    if not go.exists():
        raise BenchError(f"Go {version} is not installed at {go} (run: make toolchains)")
    return str(go)


def go_version(go: str) -> str:
    """'go1.19.8' for a toolchain."""
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                          check=True).stdout.strip()


def build_go(src: Path, go: str) -> str:
    """Build the Go program in `src` with toolchain `go`, cached outside the repository
    by source hash and Go version; returns the binary's path."""
    version = go_version(go)
    files = sorted(p for p in src.iterdir() if p.suffix in (".go", ".s", ".mod", ".sum"))
    h = hashlib.sha256(version.encode())
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    out = CACHE / version / f"{src.name}-{h.hexdigest()[:12]}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local", GOPROXY="off",
                   GOCACHE=str(CACHE / "gocache" / version))
        subprocess.run([go, "build", "-o", str(tmp), "."], cwd=src, env=env, check=True)
        tmp.rename(out)
    return str(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- processes

@dataclass
class Proc:
    """A process the benchmark started, in its own session (a terminal's Ctrl-C reaches
    the benchmark only; the benchmark decides what each child gets)."""

    popen: subprocess.Popen
    name: str
    started: float                      # time.monotonic() just before the spawn
    out_path: Path | None = None
    err_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def read_out(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path else ""

    def read_err(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path else ""

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit code, or None if still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


class Procs:
    """Every process a benchmark starts goes through here; on leaving the `with` block
    (normally, on an error, on Ctrl-C or SIGTERM) each one still running gets SIGINT,
    a grace period, then SIGKILL to its whole process group, and is reaped."""

    def __init__(self, workdir: Path, grace: float = 5.0):
        self.workdir = workdir
        self.grace = grace
        self.procs: list[Proc] = []
        self._old_term = None
        self._count = 0

    def __enter__(self) -> Procs:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a
        # background job): children must not inherit an ignored SIGINT either.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGHUP, _raise_interrupt)
        return self

    def __exit__(self, *exc) -> None:
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C waits
        try:
            for p in reversed(self.procs):
                stop(p, self.grace)
                self.forget(p)
            try:
                self.workdir.rmdir()  # when empty
            except OSError:
                pass
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, self._old_term or signal.SIG_DFL)

    def start(self, argv: Sequence[str], name: str, env: dict | None = None,
              capture: bool = True) -> Proc:
        """Start argv with stdout/stderr going to files in workdir (read them any time).
        env adds to (None: removes from) the benchmark's environment."""
        self._count += 1
        out = err = None
        if capture:
            out = self.workdir / f"{self._count:03d}-{name}.out"
            err = self.workdir / f"{self._count:03d}-{name}.err"
        full_env = dict(os.environ)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
        with open(out or os.devnull, "wb") as fo, open(err or os.devnull, "wb") as fe:
            t0 = time.monotonic()
            popen = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=fo,
                                     stderr=fe, start_new_session=True, env=full_env)
        proc = Proc(popen, name, t0, out, err)
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], name: str, timeout: float,
            env: dict | None = None) -> tuple[int | None, str, str]:
        """Run to completion: (exit code or None on timeout, stdout, stderr)."""
        p = self.start(argv, name, env)
        rc = p.wait(timeout)
        if rc is None:
            stop(p, self.grace)
        out, err = p.read_out(), p.read_err()
        self.forget(p)
        return rc, out, err

    def forget(self, p: Proc) -> None:
        """p has exited and been reaped: drop it and its output files."""
        if p.popen.poll() is None:
            raise RuntimeError(f"{p.name} (PID {p.pid}) is still running")
        self.procs.remove(p)
        for path in (p.out_path, p.err_path):
            if path is not None:
                path.unlink(missing_ok=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def stop(p: Proc, grace: float, sig: int = signal.SIGINT) -> None:
    """Send sig (Ctrl-C: tracers detach and print), then SIGKILL the process's whole group
    after `grace` seconds; reap it."""
    if p.popen.poll() is None:
        _signal(p, sig, group=False)
        if p.wait(grace) is None:
            print(f"bench: {p.name} (PID {p.pid}) still running {grace:.0f} s after "
                  f"{signal.Signals(sig).name}: "
                  "SIGKILL (the kernel may take a while to release its probes)",
                  file=sys.stderr, flush=True)
            _signal(p, signal.SIGKILL, group=True)
            p.popen.wait()  # a killed tracer's probes are released before it is reaped
    _signal(p, signal.SIGKILL, group=True)  # children it left behind (a -c command)


def _signal(p: Proc, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------- breakpoints

class TextBreakpoints:
    """Ground truth for "probes attached": how many INT3 bytes a uprobe tool has written
    into the executable mappings of `path` in process `pid`.

    A uprobe is installed by writing INT3 (0xCC) over the first byte of the probed
    instruction in every process that maps the file (for a PID-filtered probe: in that
    process). The count is (INT3 bytes in memory) - (INT3 bytes in the file); uprobes
    never sit on an existing INT3, so the difference is exactly the number of installed
    breakpoints, whichever instruction a tool chooses to probe.

    Reading a whole Go text segment through /proc/PID/mem costs milliseconds, which on a
    small machine slows the tools being timed. With `watch` (function entry addresses),
    count() reads only the pages holding the first WATCH_SPAN bytes of those functions;
    full_count() reads everything, to check that no breakpoint lies outside them.
    """

    WATCH_SPAN = 64
    PAGE = 4096

    def __init__(self, pid: int, path: str, watch: Iterable[int] | None = None):
        self.pid = pid
        self.path = os.path.realpath(path)
        self.full: list[tuple[int, int, int]] = []   # (address, length, INT3s in the file)
        self._file = open(self.path, "rb")  # noqa: SIM115
        size = os.path.getsize(self.path)
        self._maps: list[tuple[int, int, int]] = []  # (start, end, file offset)
        with open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) < 6 or "x" not in parts[1]:
                    continue
                if os.path.realpath(parts[5].strip()) != self.path:
                    continue
                start, end = (int(x, 16) for x in parts[0].split("-"))
                offset = int(parts[2], 16)
                end = min(end, start + size - offset)
                self._maps.append((start, end, offset))
                self.full.append(self._range(start, end))
        if not self.full:
            raise BenchError(f"PID {pid} has no executable mapping of {self.path}")
        self.watched = self.full if watch is None else self._watch_ranges(watch)
        self._mem = open(f"/proc/{pid}/mem", "rb", buffering=0)  # noqa: SIM115

    def _range(self, start: int, end: int) -> tuple[int, int, int]:
        for mstart, mend, offset in self._maps:
            if mstart <= start and end <= mend:
                self._file.seek(offset + start - mstart)
                return start, end - start, self._file.read(end - start).count(INT3)
        raise ValueError(f"{start:#x}-{end:#x} is not in one executable mapping")

    def _watch_ranges(self, addrs: Iterable[int]) -> list[tuple[int, int, int]]:
        pages = set()
        for a in addrs:
            pages.update(range(a // self.PAGE, (a + self.WATCH_SPAN - 1) // self.PAGE + 1))
        runs: list[list[int]] = []
        for p in sorted(pages):
            if runs and runs[-1][1] == p:
                runs[-1][1] = p + 1
            else:
                runs.append([p, p + 1])
        out = []
        for first, end in runs:
            for mstart, mend, _ in self._maps:  # clip to the mappings
                lo, hi = max(first * self.PAGE, mstart), min(end * self.PAGE, mend)
                if lo < hi:
                    out.append(self._range(lo, hi))
        return out

    @property
    def watched_bytes(self) -> int:
        return sum(length for _, length, _ in self.watched)

    def count(self) -> int:
        return self._count(self.watched)

    def full_count(self) -> int:
        return self._count(self.full)

    def _count(self, ranges) -> int:
        n = 0
        for addr, length, in_file in ranges:
            self._mem.seek(addr)
            n += self._mem.read(length).count(INT3) - in_file
        return n

    def close(self) -> None:
        self._mem.close()
        self._file.close()

    def __enter__(self) -> TextBreakpoints:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def attach_fds(pid: int) -> dict[str, int]:
    """How many BPF links and perf events a process holds (its fds' anon inodes)."""
    out = {"bpf_link": 0, "perf_event": 0}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        for kind in out:
            if target.startswith("anon_inode:") and kind in target:
                out[kind] += 1
    return out


def elf_functions(path: str, glob: str) -> dict[str, int]:
    """name -> address of the function symbols of an ELF file matching a glob
    (what both tools match a 'BIN:pattern' against)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    out: dict[str, int] = {}
    with open(path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if not isinstance(sec, SymbolTableSection):
                continue
            for sym in sec.iter_symbols():
                if sym["st_info"]["type"] == "STT_FUNC" and sym["st_value"] \
                        and fnmatch.fnmatchcase(sym.name, glob):
                    out[sym.name] = sym["st_value"]
    return out


# ---------------------------------------------------------------------------- figures

def median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(value: float | None, unit: str = "s", digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f} {unit}".rstrip()


def spread(values: Iterable[float | None], digits: int = 2) -> str:
    """'min–max' of the repetitions, for the table's reader to judge the noise."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return ""
    return f"{min(vals):.{digits}f}–{max(vals):.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                   align: str = "") -> str:
    """A GitHub table padded to line up in a terminal too; align is 'l'/'r' per column."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align.ljust(len(headers), "l")

    def line(r):
        return "| " + " | ".join(c.rjust(w) if a == "r" else c.ljust(w)
                                 for c, w, a in zip(r, widths, align, strict=True)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
                         for w, a in zip(widths, align, strict=True)) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def machine() -> dict:
    """Facts about this run: when, where, which tools."""
    bt = subprocess.run([BPFTRACE, "--version"], capture_output=True, text=True)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "bpftrace": bt.stdout.strip() or bt.stderr.strip(),
        "lumos_commit": rev,
    }


def leftover_uprobe_events(paths: Iterable[str]) -> list[str] | None:
    """tracefs uprobe_events lines naming one of `paths` (None: tracefs not readable).
    Tools that attach through perf events or links leave nothing there; a tracer that
    writes uprobe_events and dies does."""
    for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        try:
            with open(os.path.join(d, "uprobe_events")) as f:
                return [ln.strip() for ln in f if any(p in ln for p in paths)]
        except OSError:
            continue
    return None


def dump_json(name: str, data: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path


def write_section(title: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the '## title' section of RESULTS.md with body."""
    text = path.read_text() if path.exists() else "# lumos benchmarks\n\n" \
        "Written by the scripts in bench/ (`make bench`); each owns one section.\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pat = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        text = pat.sub(lambda m: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


@dataclass
class Log:
    """Progress lines on stderr, so that stdout carries only the final table."""

    quiet: bool = False
    t0: float = field(default_factory=time.monotonic)

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)
