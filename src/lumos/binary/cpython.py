"""CPython interpreters as a tracer sees them: which version, where the eval loop enters
and leaves a Python frame, and how to get from a frame to its code object's names.

Why not USDT. `python:function__entry` exists only in builds configured --with-dtrace
(Debian's, not python.org's, pyenv's or most containers'), and since 3.11 it is broken
upstream (CPython gh-98894): Python-to-Python calls are "inlined" into the running
eval loop and only entries from C fire it (2 of 2,002 calls measured here); 3.12
dropped both function probes. So lumos probes the eval loop itself:

- 3.10: every Python call is a C call of _PyEval_EvalFrameDefault(tstate, f, throw):
  entry at its first instruction (f in RSI by the SysV ABI), exits at its RET
  instructions (the innermost frame of the thread returns).
- 3.11+: a call from Python jumps to the `start_frame` label with the new frame in
  `frame`; frames end at the labels of RETURN_VALUE, RETURN_CONST, YIELD_VALUE,
  RETURN_GENERATOR (and their INSTRUMENTED_ twins) and at `exit_unwind` (an
  exception). Label addresses and where `frame` is at each come from DWARF (the file's
  own or its /usr/lib/debug/.build-id file, e.g. Debian's python3.X-dbg). The C entry
  is probed too; where the compiler lets it fall through start_frame, the second hit
  for the same frame is dropped by the reader.

Struct offsets per version are from CPython's headers (Include/internal/
pycore_frame.h, Include/cpython/code.h, unicodeobject.h) for x86-64, checked against
DWARF by the tests, and used from DWARF when the binary has it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from lumos.binary.cdwarf import CFunction, VarLoc, debug_file_for, struct_layouts
from lumos.binary.disasm import ret_addresses
from lumos.binary.elf import ElfBinary, open_elf
from lumos.errors import TargetError

EVAL = "_PyEval_EvalFrameDefault"
ENTRY_LABEL = "start_frame"
EXIT_LABELS = ("TARGET_RETURN_VALUE", "TARGET_RETURN_CONST", "TARGET_YIELD_VALUE",
               "TARGET_RETURN_GENERATOR", "TARGET_INSTRUMENTED_RETURN_VALUE",
               "TARGET_INSTRUMENTED_RETURN_CONST", "TARGET_INSTRUMENTED_YIELD_VALUE",
               "exit_unwind")


@dataclass(frozen=True)
class Layout:
    """Offsets (bytes) lumos reads through, for one CPython minor version on x86-64."""

    frame_code: int       # PyFrameObject.f_code (3.10) / _PyInterpreterFrame.f_code
                          # (3.11, 3.12) / .f_executable (3.13)
    co_filename: int
    co_name: int
    co_qualname: int      # 0: none (3.10 has no co_qualname: co_name is used)
    co_firstlineno: int
    ascii_size: int       # sizeof(PyASCIIObject): compact ASCII data follows it
    compact_size: int     # sizeof(PyCompactUnicodeObject): other compact data follows
    unicode_state: int = 32   # PyASCIIObject.state: interned:2 kind:3 compact:1 ascii:1
    unicode_length: int = 16


LAYOUTS = {
    (3, 10): Layout(0x20, 104, 112, 0, 40, 48, 72),
    (3, 11): Layout(0x20, 112, 120, 128, 72, 48, 72),
    (3, 12): Layout(0x00, 112, 120, 128, 68, 40, 56),
    (3, 13): Layout(0x00, 112, 120, 128, 68, 40, 56),
}


@dataclass(frozen=True)
class EvalSite:
    offset: int              # file offset (where the uprobe goes)
    kind: str                # "entry" | "exit"
    label: str               # what it is: "entry", "start_frame", "TARGET_RETURN_VALUE", "RET"
    frame: VarLoc | None     # where the frame pointer is there (None: not known)


@dataclass
class Interpreter:
    path: str                # the file holding the eval loop (executable or libpython)
    version: tuple[int, int]
    layout: Layout
    sites: list[EvalSite]
    source: str              # where the offsets came from: "DWARF" or "headers table"
    debug_file: str | None


def find_eval_file(exe: str, pid: int | None = None) -> str:
    """The file defining _PyEval_EvalFrameDefault: the executable, or its libpython."""
    candidates = [exe]
    if pid is not None:
        from lumos.binary.procmaps import mapped_libraries
        candidates += [p for p in mapped_libraries(pid) if "libpython" in os.path.basename(p)]
    else:
        with open_elf(exe) as elf:
            needed = [n for n in elf.needed if n.startswith("libpython")]
        if needed:
            from lumos.binary.libs import resolve_library
            rpath_dir = os.path.join(os.path.dirname(os.path.dirname(exe)), "lib")
            for n in needed:
                local = os.path.join(rpath_dir, n)
                candidates.append(local if os.path.exists(local)
                                  else resolve_library(n.split(".so")[0], exe))
    for path in candidates:
        with open_elf(path) as elf:
            if any(s.name == EVAL for s in elf.functions):
                return path
    raise TargetError(f"{exe}: not a CPython interpreter ({EVAL} is in neither it nor a "
                      f"libpython it uses)")


def version_of(path: str, elf: ElfBinary) -> tuple[int, int]:
    """From the file name (python3.11, libpython3.11.so.1.0), else from the version
    string Py_GetVersion returns, which sits in .rodata ('3.11.2 (main, ...')."""
    m = re.search(r"python(\d)\.(\d+)", os.path.basename(path))
    if m:
        return int(m.group(1)), int(m.group(2))
    data = elf.get_section_data(".rodata") or b""
    m = re.search(rb"\b(3)\.(\d+)\.\d+[a-z0-9+]* \(", data)
    if m:
        return int(m.group(1)), int(m.group(2))
    raise TargetError(f"{path}: cannot tell the CPython version")


def _cache_path(path: str) -> str | None:
    with open_elf(path) as elf:
        bid = elf.build_id
    if not bid:
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(root, "lumos", "cpython", f"{bid}-v1.json")


def load_interpreter(exe: str, pid: int | None = None) -> Interpreter:
    """The interpreter's eval sites and layout; cached per build id (DWARF and CFI
    take seconds on a large interpreter, the cache milliseconds)."""
    import json
    path = find_eval_file(exe, pid)
    cache = _cache_path(path)
    if cache and os.path.exists(cache):
        try:
            with open(cache) as f:
                d = json.load(f)
            sites = [EvalSite(s["offset"], s["kind"], s["label"],
                              VarLoc(**s["frame"]) if s["frame"] else None) for s in d["sites"]]
            return Interpreter(path, tuple(d["version"]), Layout(**d["layout"]), sites,
                               d["source"], d["debug_file"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    interp = _load(path)
    if cache:
        try:
            from dataclasses import asdict
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(cache + ".tmp", "w") as f:
                json.dump({"version": interp.version, "layout": asdict(interp.layout),
                           "sites": [asdict(s) for s in interp.sites],
                           "source": interp.source, "debug_file": interp.debug_file}, f)
            os.replace(cache + ".tmp", cache)
        except OSError:
            pass
    return interp


def _load(path: str) -> Interpreter:
    with open_elf(path) as elf:
        version = version_of(path, elf)
        if version not in LAYOUTS:
            known = ", ".join(f"{a}.{b}" for a, b in LAYOUTS)
            raise TargetError(f"{path}: CPython {version[0]}.{version[1]} is not supported "
                              f"by the uprobe mode (known: {known})")
        sym = next(s for s in elf.functions if s.name == EVAL)
        dbg = debug_file_for(elf)
        entry = EvalSite(elf.vaddr_to_offset(sym.addr), "entry", "entry", VarLoc("reg", "si"))
        if version < (3, 11):
            code = elf.read_vaddr(sym.addr, sym.size)
            rets = [EvalSite(elf.vaddr_to_offset(a), "exit", "RET", None)
                    for a in ret_addresses(code, sym.addr)]
            layout, source = LAYOUTS[version], "headers table"
            if dbg is not None:
                layout, source = _dwarf_layout(dbg, sym.addr, version)
            return Interpreter(path, version, layout, [entry, *rets], source, dbg)
        if dbg is None:
            raise TargetError(
                f"{path}: Python {version[0]}.{version[1]} without DWARF: lumos needs the "
                f"eval loop's labels to see Python-to-Python calls (install the debug "
                f"symbols, e.g. Debian's python{version[0]}.{version[1]}-dbg, or build "
                f"with -g; pyenv builds have them)")
        with CFunction(dbg, EVAL, sym.addr) as cf:
            var = "frame"
            if version != (3, 12):
                sites, exits = _resume_sites(cf, elf, var, version)
            else:
                start = cf.labels.get(ENTRY_LABEL)
                if start is None:
                    raise TargetError(f"{dbg}: no '{ENTRY_LABEL}' label in {EVAL}'s DWARF")
                floc = cf.location(var, start) or _cfa_location(cf, elf, var, start)
                if floc is None:
                    raise TargetError(f"{dbg}: DWARF does not say where '{var}' is at "
                                      f"{ENTRY_LABEL} ({start:#x})")
                sites = [entry, EvalSite(elf.vaddr_to_offset(start), "entry", ENTRY_LABEL,
                                         floc)]
                exits = EXIT_LABELS
            for label in exits:
                pc = cf.labels.get(label)
                if pc is not None:
                    sites.append(EvalSite(elf.vaddr_to_offset(pc), "exit", label,
                                          cf.location(var, pc)))
            layout, source = LAYOUTS[version], "headers table"
            dl = _layout_from(struct_layouts(cf, _STRUCTS), version)
            if dl is not None:
                layout, source = dl, "DWARF"
        return Interpreter(path, version, layout, sites, source, dbg)


RESUME_LABELS = ("TARGET_RESUME", "TARGET_RESUME_QUICK", "TARGET_RESUME_CHECK",
                 "TARGET_INSTRUMENTED_RESUME")


# offsetof(_PyCFrame, current_frame) (Include/cpython/pystate.h)
CFRAME_CURRENT = {(3, 11): 8, (3, 12): 0}


def _resume_sites(cf: CFunction, elf: ElfBinary, var: str, version):
    """3.13: specialised calls push the new frame in _PUSH_FRAME and dispatch straight to
    its first instruction, bypassing start_frame; but every (re)entry of a frame runs
    its RESUME instruction (after RETURN_GENERATOR, and after each yield): entries are
    the RESUME handlers. A generator function's first call (RETURN_GENERATOR, before
    RESUME) is then neither entered nor left."""
    sites = []
    for label in RESUME_LABELS:
        pc = cf.labels.get(label)
        if pc is None:
            continue
        floc = cf.location(var, pc) or _cfa_location(cf, elf, var, pc)
        if floc is None and version in CFRAME_CURRENT:
            # the eval loop's local _PyCFrame cframe (on the stack) has current_frame
            cfl = _cfa_location(cf, elf, "cframe", pc)
            if cfl is not None:
                floc = VarLoc("mem", cfl.reg, cfl.offset + CFRAME_CURRENT[version])
        if floc is None:
            raise TargetError(f"{cf.path}: DWARF does not say where '{var}' is at {label}")
        sites.append(EvalSite(elf.vaddr_to_offset(pc), "entry", label, floc))
    if not sites:
        raise TargetError(f"{cf.path}: no RESUME labels in {EVAL}'s DWARF")
    return sites, tuple(x for x in EXIT_LABELS if "RETURN_GENERATOR" not in x)


_STRUCTS = {"PyCodeObject", "_PyInterpreterFrame", "PyFrameObject", "PyASCIIObject",
            "PyCompactUnicodeObject"}


def _dwarf_layout(dbg: str, addr: int, version) -> tuple[Layout, str]:
    with CFunction(dbg, EVAL, addr) as cf:
        dl = _layout_from(struct_layouts(cf, _STRUCTS), version)
    return (dl, "DWARF") if dl is not None else (LAYOUTS[version], "headers table")


def _layout_from(structs: dict, version) -> Layout | None:
    """The Layout DWARF gives, or None when a struct is missing (LTO keeps types in
    another unit): the headers table is used then."""
    try:
        code = structs["PyCodeObject"]
        frame = structs["PyFrameObject" if version < (3, 11) else "_PyInterpreterFrame"]
        fc = frame["f_code"] if "f_code" in frame else frame["f_executable"]
        return Layout(fc, code["co_filename"], code["co_name"], code.get("co_qualname", 0),
                      code["co_firstlineno"], structs["PyASCIIObject"]["__size__"],
                      structs["PyCompactUnicodeObject"]["__size__"],
                      structs["PyASCIIObject"]["state"], structs["PyASCIIObject"]["length"])
    except KeyError:
        return None


def _cfa_location(cf: CFunction, elf: ElfBinary, var: str, pc: int) -> VarLoc | None:
    """DW_OP_fbreg N with DW_AT_frame_base = DW_OP_call_frame_cfa: the slot at CFA + N,
    CFA from the binary's .eh_frame at pc (e.g. rsp + 56)."""
    from lumos.binary.cfi import cfa_at
    n = cf.fbreg_offset(var, pc)
    if n is None:
        return None
    cfa = cfa_at(elf, pc)
    if cfa is None:
        return None
    reg, off = cfa
    return VarLoc("mem", reg, off + n)
