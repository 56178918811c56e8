"""gethostlatency: each host-name lookup and how long it took (BCC's gethostlatency), in
C programs (libc getaddrinfo, gethostbyname, gethostbyname2) and, past BCC, in Go
programs that use Go's own resolver (targets/resolvers.py), which never calls libc.

Output is BCC's: TIME PID COMM LATms HOST (`%-9s %-7s %-16s %10s %s`, LATms `%10.2f`);
a lookup by Go's resolver shows COMM as `comm [go]` (--json: "resolver": "go").
"""

from __future__ import annotations

import argparse
import sys
import time

from lumos.binary.libs import resolve_library
from lumos.errors import TargetError, UsageError
from lumos.output.clock import time_offset
from lumos.output.jsonl import write_json
from lumos.probes.channel import EventChannel
from lumos.probes.hostlat import HOST_MAX, RECORD, RESOLVER_GO, HostLatency, HostVariant
from lumos.probes.stream import Stream
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.resolvers import c_resolvers, go_resolvers
from lumos.targets.target import Target, resolve_target

HELP = "latency of host-name lookups: libc's and Go's own resolver (BCC's gethostlatency)"
EXAMPLES = """\
  lumos gethostlatency                  # every process's libc lookups (getaddrinfo, ...)
  lumos gethostlatency -p 1234          # one process: its libc, and Go's resolver if Go
  lumos gethostlatency ./server         # Go programs: give the binary (or -p) for Go's own
  lumos gethostlatency -c './client x'  # start a command, trace its lookups
  lumos gethostlatency --json           # JSON lines, with "resolver": "libc" or "go"
"""


def add_arguments(p) -> None:
    p.add_argument("binaries", nargs="*", metavar="GO_BINARY",
                   help="Go programs whose own resolver to probe too (every process "
                        "running them); C programs need none: their libc is probed")
    p.add_argument("-p", "--pid", type=int, help="trace this process only")
    p.add_argument("-c", "--command", metavar="CMD", help="start CMD and trace it")
    p.add_argument("--libc", metavar="PATH", help="the C library to probe (default: the "
                   "process's, or the system's libc.so.6)")
    p.add_argument("-d", "--duration", type=float, metavar="SECONDS",
                   help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="write JSON lines")


def run(args) -> int:
    if (args.pid is not None or args.command) and args.binaries:
        raise UsageError("give Go binaries, or -p PID, or -c CMD, not both")
    ns = argparse.Namespace(args=[], pid=args.pid, command=args.command,
                            duration=args.duration, json=args.json)
    target = (resolve_target(ns, need_patterns=False) if args.pid is not None or args.command
              else Target(None))
    with Session(ns, need_patterns=False, target=target) as s:
        resolvers, where = _resolvers(args, target)
        variants: list[HostVariant] = []
        sites = []
        for fi, r in enumerate(resolvers):
            entry = HostVariant("entry", r.goroutine, r.host, r.entry_sp_delta)
            for site, v in [(r.entry, entry)] + [
                    (x, HostVariant("exit", r.goroutine, (), -8 if x.retprobe else 0))
                    for x in r.exits]:
                if v not in variants:
                    variants.append(v)
                sites.append(_tag(site, fi, variants.index(v)))
        channel = EventChannel(1 << 20, "lumos_hostlat").open(s.stack)
        program = HostLatency(variants, channel, target.pid)
        attached = program.attach(sites, s.stack)
        s.banner(f"host lookups ({'; '.join(where)})", skipped=attached.skipped)
        printer = Printer(resolvers, args.json)
        printer.header()
        runner = s.start()
        stream = Stream(channel, RECORD.size)
        stream.run(runner, printer.batch, flush=sys.stdout.flush)
        report_lost(stream, args.json)
    return getattr(ns, "_command_status", 0)


def _tag(site, func: int, variant: int):
    from dataclasses import replace
    return replace(site, ident=func, variant=variant, func_index=func)


def _resolvers(args, target: Target):
    """(resolver functions, what they are, for the banner)."""
    resolvers, where = [], []
    libc = args.libc or _libc_of(target)
    if libc is not None:
        found = c_resolvers(libc, target.pid)
        resolvers += found
        where.append(f"{', '.join(r.name for r in found)} in {libc}")
    exes = [target.exe] if target.exe else []
    for b in args.binaries:
        found = go_resolvers(_path(b), None)
        if not found:
            raise TargetError(f"{b}: not a Go program with Go's resolver linked in (C "
                              f"programs need no binary: their libc is probed)")
        resolvers += found
        where.append(f"Go's resolver in {b}")
    for exe in exes:
        found = go_resolvers(exe, target.pid)
        if found:
            resolvers += found
            where.append(f"Go's resolver in {exe}")
    if not resolvers:
        raise TargetError(f"{target.label}: uses no libc and has no Go resolver: nothing "
                          f"to probe")
    return resolvers, where


def _libc_of(target: Target) -> str | None:
    if target.pid is None:
        return resolve_library("c")
    try:
        if target.launched is None:
            return resolve_library("c", pid=target.pid)
        return resolve_library("c", target.exe)
    except TargetError:
        return None   # a static program (most Go programs): no libc to probe


def _path(b: str) -> str:
    import os
    import shutil
    path = b if "/" in b else (shutil.which(b) or b)
    if not os.path.exists(path):
        raise TargetError(f"{b}: no such file")
    return os.path.realpath(path)


class Printer:
    def __init__(self, resolvers, json_out: bool):
        self.resolvers = resolvers
        self.json = json_out
        self.offset = time_offset()
        self.out = sys.stdout
        self.unpack = RECORD.struct.unpack_from

    def header(self) -> None:
        if not self.json:
            # BCC's printf: "%-9s %-7s %-16s %10s %s"
            self.out.write(f"{'TIME':<9} {'PID':<7} {'COMM':<16} {'LATms':>10} HOST\n")

    def batch(self, batch) -> None:
        for rec in batch.records():
            self.one(*self.unpack(rec))

    def one(self, ts, lat, goid, pid, tid, func, resolver, host_len, comm, raw) -> None:
        go = resolver == RESOLVER_GO
        host = _host(raw, host_len, go)
        comm = comm.split(b"\0", 1)[0].decode("utf-8", "replace")
        wall = ts / 1e9 + self.offset
        if self.json:
            obj = {"time": round(wall, 6), "pid": pid, "tid": tid, "comm": comm,
                   "lat_ms": round(lat / 1e6, 6), "host": host,
                   "func": self.resolvers[func].name, "resolver": "go" if go else "libc"}
            if go:
                obj["goid"] = goid
            write_json(obj, self.out, flush=False)
            return
        shown = f"{comm} [go]" if go else comm
        stamp = time.strftime("%H:%M:%S", time.localtime(wall))   # "%-9s %-7d %-16s %10.2f %s"
        self.out.write(f"{stamp:<9} {pid:<7} {shown:<16} {lat / 1e6:>10.2f} {host}\n")


def _host(raw: bytes, n: int, go: bool) -> str:
    """Go: len(name) bytes (cut at HOST_MAX, then '...'); C: up to the NUL."""
    if go:
        text = raw[:max(0, min(n, HOST_MAX))].decode("utf-8", "replace")
        return text + ("..." if n > HOST_MAX else "")
    if n <= 0:
        return ""
    return raw[:n].split(b"\0", 1)[0].decode("utf-8", "replace")
