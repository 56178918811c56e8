"""lumos usdt: list the USDT probes of a binary, a library or a process, with their
arguments (like `bpftrace -l 'usdt:...' -v` and BCC's `tplist -v`).

Each probe is printed once per file as `usdt:FILE:PROVIDER:NAME`, the form trace and
funccount accept; -v adds each site (address, file offset), its semaphore and where
each argument is (register, memory, constant), in the compiler's spec and in words.
"""

from __future__ import annotations

import sys
from itertools import groupby

from lumos.output.jsonl import write_json
from lumos.session.args import add_target_arguments
from lumos.targets.target import resolve_target
from lumos.targets.usdt import files_of, find_probes, parse_pattern

HELP = "list USDT probes (sys/sdt.h, python --with-dtrace, libc...) with their arguments"
EXAMPLES = """\
  lumos usdt /usr/bin/python3.11                  # every probe of a binary
  lumos usdt /usr/bin/python3.11 'function__*' -v # sites, semaphores, argument locations
  lumos usdt -p 1234                              # the process and every library it maps
  lumos usdt -p 1234 'libc:*'                     # one provider
  lumos usdt /lib/x86_64-linux-gnu/libc.so.6      # a library
  lumos usdt ./app --json                         # JSON lines, one per probe site
"""


def add_arguments(p) -> None:
    add_target_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every site, its semaphore and each argument's location")
    p.add_argument("--json", action="store_true", help="one JSON object per probe site")


def run(args) -> int:
    target = resolve_target(args, need_patterns=False)
    try:
        patterns = [pat if pat.startswith("usdt:") else f"usdt:{pat}"
                    for pat in (target.patterns or ["*:*"])]
        for pat in patterns:
            parse_pattern(pat)
        probes = find_probes(target, patterns)
    finally:
        if target.launched:
            target.launched.close()
    out = sys.stdout
    if args.json:
        for p in probes:
            write_json({"file": p.path, "provider": p.provider, "name": p.name,
                        "address": p.pc, "file_offset": p.offset,
                        "semaphore": p.semaphore or None,
                        "semaphore_file_offset": p.semaphore_offset or None,
                        "args": [{"spec": a.spec, "type": a.type_name, "where": a.describe()}
                                 for a in p.args]}, out, flush=False)
        return 0
    searched = files_of(target) if target.exe else []
    if len(searched) > 1:
        with_probes = len({p.path for p in probes})
        print(f"lumos usdt: {len(probes)} site(s) in {with_probes} of {len(searched)} "
              f"mapped files", file=sys.stderr)
    for (path, full), group in groupby(probes, key=lambda p: (p.path, p.full_name)):
        sites = list(group)
        first = sites[0]
        if not args.verbose:
            types = ", ".join(a.type_name for a in first.args) or "no arguments"
            sem = ", semaphore" if first.semaphore else ""
            many = f", {len(sites)} sites" if len(sites) > 1 else ""
            out.write(f"usdt:{path}:{full}  ({types}{sem}{many})\n")
            continue
        out.write(f"usdt:{path}:{full}\n")
        for s in sites:
            sem = (f", semaphore {s.semaphore:#x} (file offset {s.semaphore_offset:#x})"
                   if s.semaphore else ", no semaphore")
            out.write(f"    site {s.pc:#x} (file offset {s.offset:#x}){sem}\n")
            for i, a in enumerate(s.args):
                out.write(f"      arg{i:<2} {a.type_name:<4} {a.spec:<20} {a.describe()}\n")
            for note in s.notes:
                out.write(f"      note: {note}\n")
    return 0
