"""Where host-name lookups can be seen: the C library's resolver entry points, and the
functions of Go's own (pure Go) resolver in a Go binary.

C: getaddrinfo(node, ...), gethostbyname(name), gethostbyname2(name, af): the name is
the first argument (RDI), the call ends at the uretprobe (fine in C code).

Go (net package, dnsclient_unix.go, the same in Go 1.19 through 1.27):
    (*Resolver).goLookupHostOrder(ctx, name string, order[, conf])         LookupHost
    (*Resolver).goLookupIPCNAMEOrder(ctx, network, name string, order[, conf])
        LookupIP, LookupIPAddr, Dial and Listen's address resolution
Both take the host as given, consult /etc/hosts (order hostLookupFiles*), then DNS, and
return when the answer is known. They run only for the pure-Go resolver: under cgo
(GODEBUG=netdns=cgo, or the system's configuration) lookupHost/lookupIP call
cgoLookupHost/cgoLookupIP instead, i.e. getaddrinfo, seen by the C probes. LookupHost's
goLookupHostOrder calls goLookupIPCNAMEOrder for DNS names: the program reports the
outermost call of a goroutine only. Entry after the prologue and every RET
(targets/plan.py), never a uretprobe on Go code. The name's registers come from DWARF;
in a binary without it, from the register ABI on these signatures (r is AX, ctx BX/CX,
then each string two registers), since ArgInfo cannot describe goLookupIPCNAMEOrder's
large frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.errors import TargetError
from lumos.probes.capture import WordLoc
from lumos.probes.eventprog import GoroutineSource
from lumos.probes.probesite import ProbeSite
from lumos.targets.plan import plan
from lumos.targets.target import Target

# their signatures, given so that plan() reads no C DWARF (libc6-dbg's takes ~45 s)
C_FUNCTIONS = {
    "getaddrinfo": "getaddrinfo(const char *node, const char *service, void *hints, "
                   "void *res) int",
    "gethostbyname": "gethostbyname(const char *name) void *",
    "gethostbyname2": "gethostbyname2(const char *name, int af) void *",
}
GO_FUNCTIONS = {
    # function: the name's (pointer, length) registers under ABIInternal
    "net.(*Resolver).goLookupHostOrder": ("di", "si"),
    "net.(*Resolver).goLookupIPCNAMEOrder": ("r8", "r9"),
}


@dataclass(frozen=True)
class Resolver:
    """One function to probe: entry, exits, and where the host name is at entry."""

    name: str
    path: str
    entry: ProbeSite
    exits: tuple[ProbeSite, ...]
    host: tuple[WordLoc, ...]          # C: (char *,); Go: (ptr, len)
    goroutine: GoroutineSource | None  # None: C code
    entry_sp_delta: int = 0
    host_source: str = ""

    @property
    def go(self) -> bool:
        return self.goroutine is not None


def c_resolvers(libc: str, pid: int | None) -> list[Resolver]:
    out = []
    for f in plan(Target(libc, pid), list(C_FUNCTIONS.values()), strlen=8):
        cap = next((c for c in f.args if c.kind == "cstring"), None)
        host = cap.words if cap is not None else (WordLoc.register("di"),)
        out.append(Resolver(f.name, f.path, f.entry, tuple(f.exits), tuple(host), None, 0,
                            "SysV ABI: first argument"))
    if not out:
        raise TargetError(f"{libc}: none of {', '.join(C_FUNCTIONS)} is defined there")
    return out


def go_resolvers(exe: str, pid: int | None) -> list[Resolver]:
    """The Go resolver's functions in exe ([] when exe is not Go, or has no net package
    resolver linked in)."""
    from lumos.targets.entry import open_go
    gobin = open_go(exe)
    if gobin is None:
        return []
    with gobin:  # the linker drops what the program never calls (LookupHost, say)
        present = [name for name in GO_FUNCTIONS if gobin.get_functions(name)]
    if not present:
        return []
    out = []
    for f in plan(Target(exe, pid), present, strlen=8):
        if f.goroutine is None or not f.exits:
            continue
        cap = next((c for c in f.args if c.name in ("name", "host") and c.kind == "string"),
                   None)
        if cap is not None and all(w.readable for w in cap.words):
            host, source = cap.words, "DWARF"
        else:
            host = tuple(WordLoc.register(r) for r in GO_FUNCTIONS[f.name])
            source = "register ABI on the net package's signature"
        out.append(Resolver(f.name, f.path, f.entry, tuple(f.exits), tuple(host),
                            f.goroutine, f.entry_sp_delta, source))
    return out
