"""The facade of lumos.golang: open a Go executable, list its functions, get FuncSpecs.

    gb = open_go_binary("./server")          # GoBinaryError if not Go, TargetError if absent
    for fn in gb.match("main.*"):            # glob over full names, sorted by address
        spec = gb.spec(fn)                   # model.FuncSpec: params, entry site, RET sites
    rt = gb.runtime_layout()                 # runtime.RuntimeLayout: goid, g, newproc1...
    gb.close()                               # also saves the cache

Everything learnt is cached per build id (cache.py), so a second run answers from a
few JSON files without parsing ELF, pclntab, DWARF or machine code. gb.notices holds one-line
caveats for the user (no DWARF, newer Go than lumos knows).
"""

from __future__ import annotations

import bisect
import contextlib
import fnmatch
import os
import re
import zlib

from elftools.common.exceptions import ELFError

from lumos.errors import (
    BinaryFormatError,
    GoBinaryError,
    GoFormatError,
    LumosError,
    TargetError,
)
from lumos.golang import cache
from lumos.golang.buildinfo import BuildInfo, parse_go_version
from lumos.golang.model import ABI0, ABI_INTERNAL, FuncSpec, Param, Site
from lumos.golang.pclntab import GoFunction, PcLnTab, package_of
from lumos.golang.rawargs import raw_params

# Errors other libraries raise for a damaged file: pyelftools (ELFError, incl.
# ELFParseError), zlib (a compressed section), the OS; MemoryError for an absurd size a
# header asks pyelftools to allocate.
_FORMAT_ERRORS = (ELFError, zlib.error, OSError, EOFError, MemoryError)
KNOWN_GO = (1, 27)      # newest Go release whose layouts lumos has checked
NO_DWARF_NOTICE = ("no DWARF in this binary: arguments are raw words as if in integer "
                   "registers (a float argument would show a wrong value; pass its "
                   "signature to decode it)")


class GoBinary:
    """A Go executable opened for probing. See the module docstring."""

    def __init__(self, path: str, use_cache: bool = True):
        if not os.path.exists(path):
            raise TargetError(f"{path}: no such file")
        if os.path.isdir(path):
            raise TargetError(f"{path}: is a directory, not a program")
        self.path = path
        self._elf = self._tab = self._dwarf = self._md = None
        self._funcs: list[GoFunction] | None = None
        # the function table as columns: what the cache holds, cheap to load and match
        self._names: list[str] | None = None
        self._entries: list[int] = []
        self._ends: list[int] = []
        self._by_name: dict[str, list[int]] | None = None
        self._specs: dict[str, dict] = {}          # entry (hex) -> FuncSpec.to_dict()
        self._entry_sites: dict[str, dict] = {}    # entry (hex) -> Site.to_dict(), no spec
        self._shards: dict[str, bool] = {}         # shard -> changed since loaded
        self._dirty = False
        self._key = cache.binary_key(path, _cache_tag()) if use_cache else None
        data = cache.load(self._key) if self._key else None
        if not (data and self._load_cached(data)):
            with self._parse_errors():
                self._open_fresh()
        self.notices = self._notices()

    @contextlib.contextmanager
    def _parse_errors(self):
        """A damaged file fails where its bytes are read, as a BinaryFormatError (lumos's
        readers: binary/reader.py) or as one of pyelftools' and zlib's own errors, which
        become one here (the cause stays chained for --debug). Nothing else is caught:
        an IndexError or KeyError out of the parsers is a lumos bug, not a bad file."""
        try:
            yield
        except LumosError:
            raise
        except _FORMAT_ERRORS as e:
            raise BinaryFormatError(f"{self.path}: corrupt or truncated file: {e}") from e

    # -- opening -------------------------------------------------------------------

    def _load_cached(self, data: dict) -> bool:
        """Take the binary's index from the cache; False if it is not usable."""
        try:
            bi = data["buildinfo"]
            buildinfo = BuildInfo(**{k: tuple(map(tuple, v)) if k == "deps" else v
                                     for k, v in bi.items()}) if bi else None
            f = data["functions"]
            names, entries, ends = f["names"], f["entries"], f["ends"]
            if not len(names) == len(entries) == len(ends):
                return False
            self.buildinfo, self.has_dwarf = buildinfo, bool(data["has_dwarf"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return False
        self._names, self._entries, self._ends = names, entries, ends
        self._runtime = data.get("runtime")
        return True

    def _open_fresh(self) -> None:
        from lumos.golang.buildinfo import read_buildinfo
        self._runtime = None
        elf = self.elf
        self.buildinfo = read_buildinfo(elf)
        self._table()  # raises GoBinaryError for a non-Go file
        self.has_dwarf = self.dwarf.has_dwarf
        self._dirty = True

    @property
    def elf(self):
        if self._elf is None:
            from lumos.binary.elf import ElfBinary
            self._elf = ElfBinary(self.path)
        return self._elf

    @property
    def dwarf(self):
        if self._dwarf is None:
            from lumos.golang.dwarfargs import GoDwarf
            self._dwarf = GoDwarf(self.elf)
        return self._dwarf

    def _table(self) -> PcLnTab:
        if self._tab is None:
            from lumos.golang.moduledata import find_moduledata, find_pclntab
            found = find_pclntab(self.elf)
            if found is None:
                what = "no pclntab" if self.buildinfo else "no Go build info or pclntab"
                raise GoBinaryError(f"{self.path}: not a Go program ({what})")
            vaddr, data = found
            try:
                tab = PcLnTab(data)
                self._md = find_moduledata(self.elf, vaddr, tab.funcname_offset, self.minor)
                text = self._md.text if self._md else None
                if not text:
                    text = tab.header_text_start or (self.elf.get_section_range(".text")
                                                     or (0,))[0]
                self._tab = PcLnTab(data, text)
            except GoFormatError as e:
                raise GoFormatError(f"{self.path}: corrupt pclntab: {e}") from e
        return self._tab

    @property
    def moduledata(self):
        """runtime.firstmoduledata (moduledata.ModuleData), or None if not found."""
        with self._parse_errors():
            self._table()
        return self._md
    def source_lines(self):
        """PC -> source frames, inlined calls expanded (lumos.golang.inline.SourceLines)."""
        from lumos.golang.inline import SourceLines
        with self._parse_errors():
            tab = self._table()
            return SourceLines(tab, self.elf, self._md)

    def type_names(self):
        """Runtime type descriptor address -> name (lumos.golang.typenames.TypeNames);
        None when runtime.firstmoduledata is not found."""
        from lumos.golang.typenames import TypeNames
        with self._parse_errors():
            self._table()
            return TypeNames(self)

    def inlined_into(self, name: str, limit: int = 5) -> list[str]:
        """Functions `name` was inlined into (it has no code of its own there): searched
        in its own package, where the compiler inlines most; at most `limit`."""
        from lumos.golang.pclntab import package_of
        lines = self.source_lines()
        pkg = package_of(name)
        out = []
        with self._parse_errors():
            for fn in self.functions:
                if fn.package == pkg and name in lines.inlined_names(fn):
                    out.append(fn.name)
                    if len(out) >= limit:
                        break
        return out

    def close(self) -> None:
        """Save what was learnt to the cache and close the file."""
        self.save_cache()
        if self._elf is not None:
            self._elf.close()

    def __enter__(self) -> GoBinary:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- facts -----------------------------------------------------------------------

    @property
    def go_version(self) -> str:
        return self.buildinfo.go_version if self.buildinfo else ""

    @property
    def version(self) -> tuple[int, int, int] | None:
        return parse_go_version(self.go_version)

    @property
    def minor(self) -> int | None:
        v = self.version
        return v[1] if v else None

    @property
    def newer_than_known(self) -> bool:
        v = self.version
        return v is not None and v[:2] > KNOWN_GO

    def _notices(self) -> list[str]:
        out = []
        if self.newer_than_known:
            out.append(f"{self.go_version} is newer than lumos knows (up to go1.{KNOWN_GO[1]}):"
                       " relying on DWARF where layouts may have changed")
        if not self.has_dwarf:
            out.append(NO_DWARF_NOTICE)
        return out

    # -- functions -------------------------------------------------------------------

    @property
    def num_functions(self) -> int:
        return len(self._columns())

    def _columns(self) -> list[str]:
        if self._names is None:
            funcs = self.functions
            self._names = [f.name for f in funcs]
            self._entries = [f.entry for f in funcs]
            self._ends = [f.end for f in funcs]
        return self._names

    def _function(self, i: int) -> GoFunction:
        if self._funcs is not None:
            return self._funcs[i]
        return GoFunction(self._entries[i], self._names[i], self._ends[i], i)

    @property
    def functions(self) -> list[GoFunction]:
        """Every function in the pclntab, sorted by entry address."""
        if self._funcs is None:
            if self._names is not None:
                self._funcs = [self._function(i) for i in range(len(self._names))]
            else:
                with self._parse_errors():
                    self._funcs = self._table().functions
        return self._funcs

    def get_functions(self, name: str) -> list[GoFunction]:
        """All functions with this exact name (an assembly function and its ABI wrapper
        share one)."""
        if self._by_name is None:
            self._by_name = {}
            for i, n in enumerate(self._columns()):
                self._by_name.setdefault(n, []).append(i)
        return [self._function(i) for i in self._by_name.get(name, ())]

    def match(self, pattern: str) -> list[GoFunction]:
        """Functions whose full name matches a shell glob ("main.*", "*Handler*"); a
        pattern without glob characters matches the exact name."""
        if not any(c in pattern for c in "*?["):
            return self.get_functions(pattern)
        rx = re.compile(fnmatch.translate(pattern))
        return [self._function(i) for i, n in enumerate(self._columns()) if rx.match(n)]

    def function_at(self, vaddr: int) -> GoFunction | None:
        """The function containing vaddr (an ELF virtual address, not a runtime one)."""
        self._columns()
        i = bisect.bisect_right(self._entries, vaddr) - 1
        if i >= 0 and self._entries[i] <= vaddr < self._ends[i]:
            return self._function(i)
        return None

    # -- specs -----------------------------------------------------------------------

    def spec(self, fn: GoFunction, signature=None) -> FuncSpec:
        """Parameters, ABI, entry site and RET sites of fn. With `signature` (a
        signature.Signature), parameters come from what the user wrote instead of DWARF."""
        if signature is None:
            cached = self._cached_spec(fn)
            if cached is not None:
                return FuncSpec.from_dict(cached)
        with self._parse_errors():
            spec = self._compute(fn, signature)
        if signature is None:
            self._specs[f"{fn.entry:x}"] = spec.to_dict()
            self._shards[cache.shard_of(fn.package)] = True
        return spec

    def entry_site(self, fn: GoFunction) -> Site:
        """Just the entry site (no DWARF, no ABI): what counting calls needs, fast."""
        from lumos.golang.sites import entry_site_only
        cached = self._cached_spec(fn)
        if cached is not None:
            return FuncSpec.from_dict(cached).entry_site
        key = f"{fn.entry:x}"
        if key in self._entry_sites:
            return Site.from_dict(self._entry_sites[key])
        with self._parse_errors():
            site = entry_site_only(fn.entry, self.elf.read_vaddr(fn.entry, fn.size),
                                   self._site_context(fn))
        self._entry_sites[key] = site.to_dict()  # cached with the package's specs
        self._shards[cache.shard_of(fn.package)] = True
        return site

    def _cached_spec(self, fn: GoFunction) -> dict | None:
        shard = cache.shard_of(fn.package)
        if self._key and shard not in self._shards:
            data = cache.load(self._key, shard) or {}
            self._specs.update(data.get("specs", {}))
            self._entry_sites.update(data.get("entry_sites", {}))
            self._shards[shard] = False
        return self._specs.get(f"{fn.entry:x}")

    def _site_context(self, fn: GoFunction):
        """sites.SiteContext for fn's code (its pcsp table decoded on first use).
        ctx.sp_delta(pc) is how far SP is below its entry value at pc."""
        from lumos.golang.sites import SiteContext
        tab = self._table()
        fn = self._pclntab_function(fn)
        pcsp: list = []

        def sp_delta(pc: int) -> int | None:
            if not pcsp:  # decoded on first use
                pcsp.extend(tab.pcvalue_table(tab.info(fn).pcsp, fn) or [(0, 0, 0)])
            for lo, hi, v in pcsp:
                if lo <= pc < hi:
                    return v
            return None

        def name_at(v: int) -> str | None:
            f = tab.function_at(v)
            return f.name if f else None

        return SiteContext(self.elf.vaddr_to_offset, sp_delta, name_at)

    def _pclntab_function(self, fn: GoFunction) -> GoFunction:
        tab = self._table()
        return tab.functions[fn.index] if 0 <= fn.index < tab.nfunc else fn

    def _compute(self, fn: GoFunction, signature) -> FuncSpec:
        from lumos.golang.abi import assign_abi0, assign_internal
        from lumos.golang.sites import choose_sites
        tab = self._table()
        fn = self._pclntab_function(fn)
        ctx = self._site_context(fn)
        info = tab.info(fn)
        abi = self.abi_of(fn)
        notes: list[str] = []
        dwarf_params = None
        if signature is not None:
            params, results = self._user_params(fn, signature)
            source = "signature"
            notes.extend(f"warning: {w}" for w in self.check_signature(fn, signature))
        else:
            params, results, dwarf_params, source = self._params(fn, info, abi, notes)
        assign = assign_abi0 if abi == ABI0 else assign_internal
        a = assign([p.type for p in params], [p.type for p in results])
        code = self.elf.read_vaddr(fn.entry, fn.size)
        try:
            entry, rets, site_notes = choose_sites(fn.entry, code, a.args, dwarf_params,
                                                   a.results, ctx)
        except BinaryFormatError as e:
            raise BinaryFormatError(f"{self.path}: {fn.name}: {e}") from e
        file, line = tab.source_of(fn)
        return FuncSpec(fn.name, fn.entry, fn.end, abi, tuple(params), tuple(results), source,
                        entry, rets, file, line, tuple(notes) + site_notes)

    def reported_start(self, pc: int) -> GoFunction | None:
        """The function Go's own traceback and goroutine profile show a goroutine
        started in, for its start PC (g.startpc: funcval.fn given to newproc; an ELF
        virtual address). For `go f(x)` the compiler starts the goroutine in a wrapper
        closure that calls f (main.main.func3 in Go 1.19-1.21, main.main.gowrap1 from
        1.22), marked funcID wrapper in the pclntab; Go's tracebacks leave wrapper
        frames out (runtime/traceback.go showframe/elideWrapperCalling), so the
        goroutine shows as started in f. Same here: through each wrapper to the one
        function it calls directly (a method wrapper in turn to the method). A wrapper
        calling through a func value (`go fn(x)`) cannot be seen through: the wrapper
        is returned. None if pc is in no function."""
        from lumos.binary.disasm import iter_insns
        fn = self.function_at(pc)
        wrapper = self._wrapper_funcid()
        for _ in range(4):
            if fn is None or wrapper is None or self._table().info(
                    self._pclntab_function(fn)).func_id != wrapper:
                return fn
            # The wrapper's body is one call: if it was inlined, its inline tree's first
            # entry is the wrapped function; else the one function it calls.
            name = self._table().first_inlined(self._pclntab_function(fn),
                                               self._md.gofunc if self._md else None,
                                               self.elf.read_vaddr, self.minor)
            if name is not None:
                found = self.get_functions(name)
                return found[0] if len(found) == 1 else fn
            callees = set()
            for insn in iter_insns(self.elf.read_vaddr(fn.entry, fn.size), fn.entry):
                callee = self.function_at(insn.target) if insn.is_call and insn.target \
                    else None
                if callee is not None and not callee.name.startswith(_NOT_WRAPPED):
                    callees.add(callee)
            if len(callees) != 1:
                return fn
            fn = callees.pop()
        return fn

    def _wrapper_funcid(self) -> int | None:
        """The pclntab funcID of wrappers (abi.FuncIDWrapper): 21 in Go 1.19-1.21, 22
        in 1.23, 23 in 1.27... Go has always numbered it right after
        FuncID_systemstack_switch, so it is read off runtime.systemstack_switch."""
        if not hasattr(self, "_wrapper_id"):
            funcs = self.get_functions("runtime.systemstack_switch")
            self._wrapper_id = (self._table().info(self._pclntab_function(funcs[0])).func_id
                                + 1) if funcs else None
        return self._wrapper_id

    def _user_params(self, fn: GoFunction, signature) -> tuple[list[Param], list[Param]]:
        """A user signature's parameters, with the dictionary a generic function takes
        first and a user never writes."""
        from lumos.golang import arginfo
        params = list(signature.params)
        if _has_dictionary(fn.name) and not (params and params[0].name == ".dict"):
            params.insert(0, Param(".dict", arginfo.DICT))
        return params, list(signature.results)

    def check_signature(self, fn: GoFunction, signature) -> list[str]:
        """Warnings about a user signature (signature.Signature) for fn; raises
        sigcheck.SignatureError (a UsageError: one line, exit 2) when its argument
        words contradict the binary's traceback argument info, its argument frame or
        DWARF. See sigcheck.py for what is refused and what only warned about."""
        from lumos.golang import arginfo, sigcheck
        with self._parse_errors():
            fn = self._pclntab_function(fn)
            info = self._table().info(fn)
            abi = self.abi_of(fn)
            params, results = self._user_params(fn, signature)
            dwarf = None
            if self.has_dwarf:
                own = self.spec(fn)
                if own.source == "dwarf":
                    dwarf = (list(own.params), list(own.results))
            actual = arginfo.read(self.elf, self._md, info) if abi != ABI0 else None
            return sigcheck.check(fn.name, abi, params, results, actual=actual,
                                  args_size=info.args, generic="[" in fn.name,
                                  dwarf=dwarf)

    def abi_of(self, fn: GoFunction) -> str:
        """ABI0 or ABIInternal: how fn's code takes its arguments (asmabi.py has the
        rules: .symtab's .abi0 names, else the code of assembly bodies and of the
        wrappers between the two ABIs)."""
        from lumos.golang import asmabi
        tab = self._table()
        fn = self._pclntab_function(fn)
        info = tab.info(fn)
        twins = [g for g in self.get_functions(fn.name) if g.entry != fn.entry]
        if not info.is_asm and not twins:
            return ABI_INTERNAL
        if fn.entry in self._abi0_symbols():
            return ABI0

        def code(f):
            return self.elf.read_vaddr(f.entry, min(f.size, 256))

        if not info.is_asm:
            return asmabi.wrapper_abi(code(fn), fn.entry)
        for t in twins:
            if not tab.info(self._pclntab_function(t)).is_asm:   # t wraps this body
                return ABI0 if asmabi.wrapper_abi(code(t), t.entry) == ABI_INTERNAL \
                    else ABI_INTERNAL
        def code_at(vaddr):
            f = self.function_at(vaddr)
            return self.elf.read_vaddr(vaddr, min(f.end - vaddr, 256)) if f else None

        return asmabi.asm_body_abi(code(fn), fn.entry, info.args,
                                   self._site_context(fn).sp_delta, code_at)

    def _abi0_symbols(self) -> set[int]:
        """Entries of the .symtab symbols named pkg.f.abi0 (empty when stripped)."""
        if getattr(self, "_abi0", None) is None:
            self._abi0 = {s.addr for s in self.elf.functions if s.name.endswith(".abi0")}
        return self._abi0

    def _params(self, fn, info, abi, notes):
        dps = self.dwarf.function_params(fn.name, fn.entry) if self.has_dwarf else None
        if abi == ABI0 and not dps and info.args > 0 and self.has_dwarf:
            # An assembly function has no DWARF parameters; its ABIInternal wrapper
            # (same name, compiled from the Go declaration) does.
            for other in self.get_functions(fn.name):
                if other.entry != fn.entry:
                    dps = self.dwarf.function_params(other.name, other.entry)
                    if dps:
                        notes.append("parameters from the Go declaration of this "
                                     "assembly function")
                        break
        if dps is not None and abi == ABI_INTERNAL:
            dps = self._reconcile(fn, info, dps, notes)
        if dps is not None and (dps or info.args <= 0):
            params = [Param(_pname(d.name), d.type) for d in dps if not d.is_result]
            results = [Param(_pname(d.name), d.type, True) for d in dps if d.is_result]
            if any(r.name for r in results):  # Go: all results named or none
                results = [r if r.name else Param("_", r.type, True) for r in results]
            inputs = [d for d in dps if not d.is_result]
            return params, results, inputs if abi == ABI_INTERNAL else None, "dwarf"
        params, raw_notes = raw_params(self.elf, self._md, info, abi)
        notes.extend(raw_notes)
        return params, [], None, "raw"

    def _reconcile(self, fn, info, dps, notes):
        """DWARF's inputs checked against the traceback argument info (arginfo.py), the
        compiler's own record of the argument words, so no argument is read from
        another's register. Go 1.19-1.23 leave a generic function's dictionary (its
        first, hidden argument) out of DWARF, and Go 1.19 unnamed and blank inputs:
        those are put back (the dictionary as *uint8, the others typed as raw words
        from ArgInfo). Inputs that still disagree: None, so the caller falls back to
        raw words, with a note saying why."""
        from lumos.golang import arginfo
        from lumos.golang.dwarfargs import DwarfParam
        # ArgInfo leaves out the first input of any function with "[" in its name
        # (cmd/compile: meant for the dictionary, also hits type:.eq.[2]T); only shape
        # instantiations have a dictionary.
        generic = "[" in fn.name
        inputs = [d for d in dps if not d.is_result]
        results = [d for d in dps if d.is_result]
        if _has_dictionary(fn.name):
            d = next((d for d in inputs if d.name == ".dict"), None)
            if d is not None:
                inputs.remove(d)
            inputs.insert(0, d or DwarfParam(".dict", arginfo.DICT, False, ()))
        actual = arginfo.read(self.elf, self._md, info)
        if actual is None:
            return inputs + results
        rtypes = [r.type for r in results]
        if arginfo.agrees(actual, [d.type for d in inputs], rtypes, generic):
            return inputs + results
        recv = _receiver(fn.name)
        rtype = None
        if recv and not (inputs and inputs[0].type.name == recv):
            rtype = self._named_type(recv)  # an unnamed receiver: typed by the name
        tries = [inputs]
        if rtype is not None:
            tries.insert(0, [DwarfParam("_", rtype, False, ()), *inputs])
        for cand in tries:
            if arginfo.agrees(actual, [d.type for d in cand], rtypes, generic) \
                    and _arrive_as_dwarf_says(fn.entry, cand, rtypes):
                notes.append("unnamed receiver missing from DWARF, typed from the "
                             "method's name")
                return cand + results
        for cand in tries:
            fits = []
            for order in arginfo.fill_missing(actual, [d.type for d in cand], rtypes,
                                              generic):
                filled = [cand[k] if isinstance(k, int) else DwarfParam("_", k, False, ())
                          for k in order]
                if _arrive_as_dwarf_says(fn.entry, filled, rtypes):
                    fits.append(filled)
            if len(fits) == 1:
                notes.append(f"{len(fits[0]) - len(cand)} unnamed parameter(s) missing "
                             "from DWARF, sized from Go's traceback argument info")
                return fits[0] + results
            if fits:
                notes.append("unnamed parameter(s) missing from DWARF, and where they "
                             "were is ambiguous: arguments shown as raw words")
                return None
        got = arginfo.describe(arginfo.expected([d.type for d in inputs], rtypes, generic))
        notes.append(f"DWARF's parameters {got} disagree with Go's traceback argument "
                     f"info {arginfo.describe(actual)}: arguments shown as raw words")
        return None

    def _named_type(self, name: str):
        """A type by its DWARF name; a pointer type DWARF never wrote is made from its
        element type."""
        t = self.dwarf.type_named(name)
        if t is None and name.startswith("*"):
            elem = self.dwarf.type_named(name[1:])
            if elem is not None:
                from lumos.golang.types import GoType
                t = GoType("pointer", 8, name, elem=elem)
        return t

    # -- runtime ---------------------------------------------------------------------

    def runtime_layout(self):
        """runtime.RuntimeLayout: goid/stackguard0 offsets, g access, newproc1, goexit1."""
        from lumos.golang.runtime import RuntimeLayout, compute_layout
        if self._runtime is None:
            with self._parse_errors():
                self._runtime = compute_layout(self).to_dict()
            self._dirty = True
        return RuntimeLayout.from_dict(self._runtime)

    # -- cache -----------------------------------------------------------------------

    def save_cache(self) -> None:
        if not self._key:
            return
        if self._dirty:
            self._columns()
            bi = self.buildinfo
            cache.save(self._key, {
                "path": self.path,
                "buildinfo": None if bi is None else {
                    "go_version": bi.go_version, "path": bi.path,
                    "main_module": bi.main_module, "main_version": bi.main_version,
                    "deps": [list(d) for d in bi.deps], "settings": bi.settings},
                "has_dwarf": self.has_dwarf,
                "functions": {"names": self._names, "entries": self._entries,
                              "ends": self._ends},
                "runtime": self._runtime,
            })
            self._dirty = False
        changed = [s for s, dirty in self._shards.items() if dirty]
        if changed:
            by_shard: dict[str, dict] = {s: {"specs": {}, "entry_sites": {}} for s in changed}
            for key, spec in self._specs.items():
                s = cache.shard_of(package_of(spec["name"]))
                if s in by_shard:
                    by_shard[s]["specs"][key] = spec
            for key, site in self._entry_sites.items():
                fn = self.function_at(int(key, 16))
                s = cache.shard_of(fn.package) if fn else None
                if s in by_shard:
                    by_shard[s]["entry_sites"][key] = site
            for s, data in by_shard.items():
                cache.save(self._key, data, s)
                self._shards[s] = False


def _arrive_as_dwarf_says(entry: int, inputs, results) -> bool:
    """Does the ABI assignment of these inputs put each one where DWARF's location list
    says it is at the function's first instruction (where it has one)?"""
    from lumos.golang.abi import assign_internal
    a = assign_internal([d.type for d in inputs], results)
    for d, slot in zip(inputs, a.args, strict=True):
        pieces = d.pieces_at(entry) if d.ranges else None
        if not pieces or not slot.in_registers or len(pieces) != len(slot.regs):
            continue
        for piece, reg in zip(pieces, slot.regs, strict=True):
            if piece.reg is not None and piece.reg != reg:
                return False
    return True


# what a wrapper may call besides the function it wraps
_NOT_WRAPPED = ("runtime.morestack", "runtime.panicwrap", "runtime.racefunc",
                "runtime.gopanic", "runtime.panic")

_CLOSURE_TAIL = re.compile(r"^\)?\.(?:func|gowrap|deferwrap)\d+$")
_METHOD_TAIL = re.compile(r"^\)?\.\w+$")
_RECEIVER = re.compile(r"^\.(?:\(\*(\w+)\)|(\w+))\.(\w+)$")


def _has_dictionary(name: str) -> bool:
    """Does this function take a generic dictionary as its first, hidden input? Shape
    instantiations do (pkg.F[go.shape.int], pkg.(*T[go.shape.int]).M); their closures
    (...].func1, -range1), method values (-fm) and generated type:.eq functions do not.
    Go 1.19 writes every instantiation's type arguments as [...]."""
    if ("go.shape." not in name and "[...]" not in name) or name.startswith(("type:",
                                                                           "type..")):
        return False
    tail = name[name.rfind("]") + 1:]
    return tail == "" or (bool(_METHOD_TAIL.match(tail)) and not _CLOSURE_TAIL.match(tail))


def _receiver(name: str) -> str | None:
    """The receiver type of a method as DWARF names it: "*sync.noCopy" for
    sync.(*noCopy).Lock, "io.discard" for io.discard.Write; None for a function or a
    closure (the caller checks the type against ArgInfo anyway)."""
    if "[" in name:
        return None
    pkg = package_of(name)
    m = _RECEIVER.match(name[len(pkg):])
    if not m or _CLOSURE_TAIL.match("." + m.group(3)):
        return None
    return f"*{pkg}.{m.group(1)}" if m.group(1) else f"{pkg}.{m.group(2)}"


def _pname(name: str) -> str:
    # Go's DWARF names unnamed results ~r0, ~r1 and blank parameters ~p0 / ~b0.
    return "" if name.startswith("~r") else ("_" if name.startswith(("~p", "~b")) else name)


def _cache_tag() -> str:
    """What the cached analysis depends on besides the binary: the kernel (uprobes
    emulate PUSH since 6.10) and lumos's own analysis code (stat, not read)."""
    rel = ".".join(os.uname().release.split(".")[:2])
    here = os.path.dirname(os.path.abspath(__file__))
    files = [os.path.join(here, f) for f in sorted(os.listdir(here)) if f.endswith(".py")]
    files.append(os.path.join(os.path.dirname(here), "binary", "disasm.py"))
    stamp = []
    for f in files:
        try:
            st = os.stat(f)
            stamp.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            continue
    return rel + "|" + ",".join(stamp)


def open_go_binary(path: str, use_cache: bool = True) -> GoBinary:
    """Open a Go executable (see GoBinary). Raises TargetError, BinaryFormatError or
    GoBinaryError with one clear line."""
    return GoBinary(path, use_cache)
