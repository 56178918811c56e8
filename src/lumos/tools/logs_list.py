"""logs --list: the loggers a binary has, where lumos probes them, and every call site
of their logging API in the program's own code (from the machine code: direct CALLs to
those functions, placed at file:line through the pclntab, inlined frames expanded)."""

from __future__ import annotations

import re
import sys

import numpy as np

from lumos.binary.disasm import iter_insns
from lumos.errors import UsageError
from lumos.golang.loggers import PACKAGES
from lumos.golang.pclntab import package_of
from lumos.output.jsonl import write_json
from lumos.session.session import Session
from lumos.targets.logplan import open_logged, plan_logs

# The logging API a program calls (besides the probed functions themselves).
API = {
    "slog": re.compile(r"log/slog\.(\(\*Logger\)\.)?(Debug|Info|Warn|Error|Log|LogAttrs)"
                       r"(Context)?$"),
    "zap": re.compile(r"go\.uber\.org/zap\.\(\*(Logger|SugaredLogger)\)\."
                      r"(Debug|Info|Warn|Error|DPanic|Panic|Fatal)(w|f|ln)?$"),
    "logrus": re.compile(r"github\.com/sirupsen/logrus\.(\(\*(Logger|Entry)\)\.)?"
                         r"(Trace|Debug|Info|Print|Warn|Warning|Error|Fatal|Panic|Log)(f|ln)?$"),
}


def list_sites(args) -> int:
    if args.command:
        raise UsageError("--list reads the binary: give its path or -p PID, not -c")
    with Session(args, need_patterns=False) as s:
        path = s.target.exe
        gb = open_logged(path)
        sites = plan_logs(gb, path, args.logger)
        loggers = sorted({x.func.logger for x in sites})
        calls = call_sites(gb, path, loggers, {x.func.name for x in sites})
        out = sys.stdout
        if args.json:
            for x in sites:
                write_json({"logger": x.func.logger, "function": x.func.name,
                            "probe": x.probe.kind, "address": x.vaddr,
                            "verdict": x.verdict}, out, flush=False)
            for file, line, func, callee in calls:
                write_json({"caller": f"{file}:{line}", "func": func, "calls": callee}, out,
                           flush=False)
            gb.close()
            return 0
        out.write(f"{path}: {gb.go_version or 'Go'}; loggers: {', '.join(loggers) or 'none'}"
                  f"; {len(calls)} call sites\n")
        if sites:
            out.write(f"\n{'LOGGER':<7} {'FUNCTION':<44} PROBE\n")
        for x in sites:
            fn = gb.get_functions(x.func.name)[0]
            how = {"flags": "the level check's jump: verdict in the flags, arguments from "
                            "their spill slots",
                   "level_field": "entry: verdict from the logger's "
                                  + ("isDiscard flag" if x.func.discard else "Level field"),
                   "none": "entry: no verdict"}[x.verdict]
            out.write(f"{x.func.logger:<7} {x.func.name:<44} +{x.vaddr - fn.entry:#x} "
                      f"{x.probe.kind} ({how})\n")
        if calls:
            out.write(f"\n{'CALLER':<28} {'FUNCTION':<32} CALLS\n")
        for file, line, func, callee in calls:
            out.write(f"{file.rsplit('/', 1)[-1] + ':' + str(line):<28} {func:<32} {callee}\n")
        gb.close()
    return 0


def call_sites(gb, path: str, loggers, probed: set[str]) -> list[tuple[str, int, str, str]]:
    """(file, line, function, callee) of each direct call into the loggers' API from
    code outside the logging packages, sorted by file and line."""
    packages = {p for lg in loggers for p in PACKAGES[lg]}
    targets = {}
    for fn in gb.functions:
        if package_of(fn.name) in packages and (
                fn.name in probed or any(API[lg].match(fn.name) for lg in loggers if lg in API)):
            targets[fn.entry] = fn.name
    if not targets:
        return []
    elf = gb.elf
    start, _off, size = elf.get_section_range(".text")
    code = elf.read_vaddr(start, size)
    buf = np.frombuffer(code, np.uint8)
    pos = np.flatnonzero(buf[:-4] == 0xE8)  # CALL rel32 candidates
    rel = (buf[pos + 1].astype(np.int64) | buf[pos + 2].astype(np.int64) << 8
           | buf[pos + 3].astype(np.int64) << 16
           | buf[pos + 4].astype(np.int8).astype(np.int64) << 24)
    dest = start + pos + 5 + rel
    hit = np.isin(dest, np.fromiter(targets, np.int64))
    candidates: dict[int, list[int]] = {}
    for p in pos[hit]:
        addr = start + int(p)
        fn = gb.function_at(addr)
        if fn is not None and package_of(fn.name) not in packages:
            candidates.setdefault(fn.entry, []).append(addr)
    lines = gb.source_lines()
    out = set()
    for entry, addrs in candidates.items():
        fn = gb.function_at(entry)
        starts = {i.address: i for i in iter_insns(elf.read_vaddr(fn.entry, fn.size), fn.entry)}
        for a in addrs:
            ins = starts.get(a)
            if ins is None or ins.mnemonic != "call":
                continue  # an E8 byte inside another instruction
            callee = targets[int(ins.op_str, 16)]
            for f in lines.frames(a):  # the CALL itself: not a return address
                if package_of(f.function) not in packages:
                    out.add((f.file, f.line, f.function, callee))
                    break
    return sorted(out)
