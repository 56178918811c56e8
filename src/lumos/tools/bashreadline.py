"""bashreadline: every line typed into bash (BCC's bashreadline), from the return of
readline, read as the C string it returns (probes/retstr.py), at most --max bytes
(default 256; longer lines are shown cut, marked "...").

Which function: readline_internal_teardown (libbpf-tools' choice: it returns the line
readline() then returns), else readline, in the bash executable when it defines them
(Debian links readline statically and exports both in .dynsym), else in the
libreadline it is linked with. Output is BCC's: TIME PID COMMAND (`%-9s %-7s %s`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from lumos.binary.elf import open_elf
from lumos.binary.libs import resolve_library
from lumos.errors import TargetError, UsageError
from lumos.output.clock import time_offset
from lumos.output.jsonl import write_json
from lumos.probes.channel import EventChannel
from lumos.probes.probesite import ProbeSite
from lumos.probes.retstr import ReturnedString, decode
from lumos.probes.stream import Stream
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.target import Target, resolve_target

HELP = "every line typed into bash, from readline's return (BCC's bashreadline)"
EXAMPLES = """\
  lumos bashreadline                      # every bash on the system (/bin/bash)
  lumos bashreadline -p 1234              # one shell
  lumos bashreadline --shell /opt/bash-5.2/bin/bash   # another bash
  lumos bashreadline -s /usr/lib/libreadline.so.8     # readline in a shared library
  lumos bashreadline --json               # JSON lines: time, pid, comm, line, cut
"""

FUNCTIONS = ("readline_internal_teardown", "readline")


def add_arguments(p) -> None:
    p.add_argument("-p", "--pid", type=int, help="only this shell")
    p.add_argument("--shell", default="/bin/bash", metavar="PATH",
                   help="the bash executable (default /bin/bash; with -p: the process's)")
    p.add_argument("-s", "--shared", metavar="LIB",
                   help="the libreadline to probe, when bash uses a shared one")
    p.add_argument("--max", type=int, default=256, metavar="BYTES",
                   help="bytes of each line shown at most (default 256)")
    p.add_argument("-d", "--duration", type=float, metavar="SECONDS",
                   help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="write JSON lines")


def run(args) -> int:
    if not 1 <= args.max <= 4096:
        raise UsageError("--max must be between 1 and 4096")
    ns = argparse.Namespace(args=[], pid=args.pid, command=None, duration=args.duration,
                            json=args.json)
    target = resolve_target(ns, need_patterns=False) if args.pid is not None else Target(None)
    with Session(ns, need_patterns=False, target=target) as s:
        path, func, offset = find_readline(args.shared or _shell(args, target), target.pid)
        channel = EventChannel(1 << 20, "lumos_lines").open(s.stack)
        program = ReturnedString(channel, args.max, target.pid)
        program.attach([ProbeSite(path, offset, func, "return", retprobe=True)], s.stack)
        s.banner(f"lines returned by {func} in {path}")
        if not args.json:
            sys.stdout.write(f"{'TIME':<9} {'PID':<7} COMMAND\n")   # BCC: "%-9s %-7s %s"
        offset_s = time_offset()
        unpack = program.record.struct.unpack_from

        def on_batch(batch) -> None:
            for rec in batch.records():
                ts, pid, _tid, n, comm, raw = unpack(rec)
                data, cut = decode(raw, n, args.max)
                line = data.decode("utf-8", "replace")
                wall = ts / 1e9 + offset_s
                if args.json:
                    write_json({"time": round(wall, 6), "pid": pid,
                                "comm": comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
                                "line": line, "cut": cut}, sys.stdout, flush=False)
                else:
                    stamp = time.strftime("%H:%M:%S", time.localtime(wall))
                    sys.stdout.write(f"{stamp:<9} {pid:<7} {line}{'...' if cut else ''}\n")

        runner = s.start()
        stream = Stream(channel, program.record_size)
        stream.run(runner, on_batch, flush=sys.stdout.flush)
        report_lost(stream, args.json)
    return 0


def _shell(args, target: Target) -> str:
    if target.pid is not None:
        return target.exe
    path = args.shell if "/" in args.shell else (shutil.which(args.shell) or args.shell)
    if not os.path.exists(path):
        raise TargetError(f"{args.shell}: no such file")
    return os.path.realpath(path)


def find_readline(path: str, pid: int | None = None) -> tuple[str, str, int]:
    """(file, function, file offset): in path itself, else in the libreadline it needs."""
    got = _defined(path)
    if got is not None:
        return (path, *got)
    with open_elf(path) as elf:
        libs = [n for n in elf.needed if n.startswith("libreadline")]
    for name in libs:
        lib = resolve_library("readline", path, pid)
        got = _defined(lib)
        if got is not None:
            return (lib, *got)
        raise TargetError(f"{lib} (needed by {path} as {name}) defines no readline")
    raise TargetError(f"{path}: readline not found (neither defined there nor in a "
                      f"libreadline it uses; give the library with -s, or the bash with "
                      f"--shell)")


def _defined(path: str) -> tuple[str, int] | None:
    with open_elf(path) as elf:
        syms = {s.name: s for s in elf.functions}
        for name in FUNCTIONS:
            sym = syms.get(name)
            if sym is not None and sym.addr:
                return name, elf.vaddr_to_offset(sym.addr)
    return None
