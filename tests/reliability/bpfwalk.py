"""A small abstract interpreter over lumos's BPF programs (the JSON of support/progdump.py),
for two safety rules:

- every bpf_probe_read_user / _user_str / probe_read(_str) has a size (R2) that is a
  constant or provably bounded, and fits its destination (R1): the rest of a stack frame
  from fp+off, or the rest of a map value / ring-buffer record;
- with -p, nothing reaches a ring buffer or a map before the program compared
  bpf_get_current_pid_tgid() >> 32 with the PID (on every path).

Values tracked per register (and per 8-byte stack slot): ("const", c), ("bound", hi) for
0..hi, ("fp", lo, hi) and ("mem", size, lo, hi) for pointers with an offset range, "pt"
(pid_tgid), "tgid" (also a u32 read from a task_struct
with bpf_probe_read_kernel, as runqlat filters the woken task, not the current one). Paths are joined at jump targets; signed compares refine nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

READS = {4: "probe_read", 45: "probe_read_str", 112: "probe_read_user",
         114: "probe_read_user_str"}
OUTPUTS = {2: "map_update_elem", 25: "perf_event_output", 130: "ringbuf_output",
           131: "ringbuf_reserve"}
MAP_LOOKUP, RINGBUF_RESERVE, PID_TGID, PROBE_READ_KERNEL = 1, 131, 14, 113
U64 = (1 << 64) - 1


@dataclass
class State:
    regs: dict = field(default_factory=dict)
    stack: dict = field(default_factory=dict)
    filtered: bool = False
    gates: frozenset = frozenset()  # maps whose lookup succeeded on this path

    def copy(self) -> State:
        return State(dict(self.regs), dict(self.stack), self.filtered, self.gates)


def _join_val(a, b):
    if a == b:
        return a
    if a is None or b is None:
        return None
    na, nb = _num_hi(a), _num_hi(b)
    if na is not None and nb is not None:
        return ("bound", max(na, nb))
    if a[0] == b[0] and a[0] in ("fp", "mem") and a[:-2] == b[:-2]:
        return (*a[:-2], min(a[-2], b[-2]), max(a[-1], b[-1]))
    if a[0] == b[0] == "mem":  # a staged block's slot or a ring record: the smaller room
        return ("mem", min(a[1], b[1]), "joined", min(a[-2], b[-2]), max(a[-1], b[-1]))
    return None


def _join(a: State, b: State) -> State:
    regs = {r: _join_val(a.regs.get(r), b.regs.get(r)) for r in set(a.regs) | set(b.regs)}
    stack = {o: _join_val(a.stack.get(o), b.stack.get(o)) for o in set(a.stack) | set(b.stack)}
    return State(regs, stack, a.filtered and b.filtered, a.gates & b.gates)


def _num_hi(v) -> int | None:
    if v is None:
        return None
    if v[0] == "const" and v[1] >= 0:
        return v[1]
    if v[0] == "bound":
        return v[1]
    return None


@dataclass
class Finding:
    reads: list = field(default_factory=list)     # (insn, helper, size bound, room)
    bad_reads: list = field(default_factory=list)  # (insn, helper, why)
    outputs: list = field(default_factory=list)   # (insn, what, filtered, gates, map)


def walk(prog: dict, tgid: int | None) -> Finding:
    insns = prog["insns"]
    found = Finding()
    states: dict[int, State] = {0: State(regs={1: ("ctx",), 10: ("fp", 0, 0)})}
    visits: dict[int, int] = {}
    work = [0]
    seen_calls: dict[int, tuple] = {}
    while work:
        i = work.pop()
        st = states[i].copy()
        visits[i] = visits.get(i, 0) + 1
        if visits[i] > 64:  # a loop that keeps widening: give up on precision
            continue
        for succ, s in _step(insns, i, st, tgid, found, seen_calls):
            if succ >= len(insns):
                continue
            old = states.get(succ)
            new = s if old is None else _join(old, s)
            if old is None or new != old:
                states[succ] = new
                work.append(succ)
    for i, (kind, data) in sorted(seen_calls.items()):
        if kind == "read":
            name, size, room, why = data
            if why:
                found.bad_reads.append((i, name, why))
            else:
                found.reads.append((i, name, size, room))
        else:
            found.outputs.append((i, *data))
    return found


def _alu(op: int, is64: bool, dv, sv, k: int | None):
    """The abstract result of dst op= (src or k)."""
    rhs = ("const", k) if k is not None else sv
    if op == 0xB0:  # mov
        if not is64 and rhs is not None and rhs[0] not in ("const", "bound"):
            return ("bound", 0xFFFFFFFF)
        if not is64 and rhs is not None and rhs[0] == "const":
            return ("const", rhs[1] & 0xFFFFFFFF)
        return rhs
    if dv is None and op == 0x70 and k is not None:  # rsh: at most what is left
        return ("bound", U64 >> (k & 63) if is64 else 0xFFFFFFFF >> (k & 31))
    if dv is None:
        return ("bound", 0xFFFFFFFF) if not is64 else (
            ("bound", rhs[1]) if op == 0x50 and rhs and rhs[0] == "const" and rhs[1] >= 0
            else None)
    if dv[0] in ("fp", "mem") and op in (0x00, 0x10) and is64:  # pointer arithmetic
        hi = _num_hi(rhs)
        if rhs is not None and rhs[0] == "const":
            c = rhs[1] if op == 0x00 else -rhs[1]
            return (*dv[:-2], dv[-2] + c, dv[-1] + c)
        if op == 0x00 and hi is not None:
            return (*dv[:-2], dv[-2], dv[-1] + hi)
        return None
    if dv == "pt" or dv == ("pt",):
        if op == 0x70 and k == 32:
            return ("tgid",)
        return None
    a, b = _num_hi(dv), _num_hi(rhs)
    if dv[0] == "const" and rhs is not None and rhs[0] == "const":
        x, y = dv[1], rhs[1]
        val = {0x00: lambda: x + y, 0x10: lambda: x - y, 0x20: lambda: x * y,
               0x40: lambda: x | y, 0x50: lambda: x & y, 0x60: lambda: x << (y & 63),
               0x70: lambda: (x & U64) >> (y & 63), 0xA0: lambda: x ^ y}.get(op)
        if val is not None:
            v = val() & U64
            v = v - (1 << 64) if v >> 63 else v  # kept signed: negative offsets stay so
            return ("const", v if is64 else v & 0xFFFFFFFF)
    if op == 0x50 and b is not None:  # and: never more than the mask
        return ("bound", min(b, a) if a is not None else b)
    if a is None or b is None:
        return None if is64 else ("bound", 0xFFFFFFFF)
    val = {0x00: a + b, 0x20: a * b, 0x70: a >> (rhs[1] if rhs[0] == "const" else 0),
           0x60: a << (rhs[1] if rhs[0] == "const" else 63), 0x90: b,
           0x30: a, 0x40: (1 << max(a, b).bit_length()) - 1}.get(op)
    if val is None or val > U64:
        return None if is64 else ("bound", 0xFFFFFFFF)
    return ("bound", val if is64 else min(val, 0xFFFFFFFF))


def _refine(v, op: int, k: int, taken: bool):
    """What `if v OP k` says of v on one side (unsigned compares only)."""
    if v is not None and v[0] not in ("const", "bound"):
        return v
    hi = None
    if op == 0x20 and not taken or op == 0xB0 and taken:  # > k false / <= k true
        hi = k
    elif op == 0x30 and not taken or op == 0xA0 and taken:  # >= k false / < k true
        hi = k - 1
    elif op == 0x10 and taken:
        return ("const", k)
    if hi is None or hi < 0:
        return v
    cur = _num_hi(v)
    return ("bound", hi if cur is None else min(cur, hi))


def _step(insns, i, st: State, tgid, found, seen_calls):
    ins = insns[i]
    op, cls = ins["op"], ins["op"] & 7
    dst, src, off, imm = ins["dst"], ins["src"], ins["off"], ins["imm"]
    regs = st.regs
    nxt = i + 1
    if op == 0x18:  # lddw
        m = ins.get("map")
        if m is None:
            regs[dst] = ("const", imm)
        elif m["direct"]:
            regs[dst] = ("mem", m["value"], "direct", imm, imm)
        else:
            regs[dst] = ("map", m["value"], m["type"], m["name"])
        return [(nxt, st)]
    if cls in (4, 7):  # alu, alu64
        k = imm if not op & 0x08 else None
        regs[dst] = _alu(op & 0xF0, cls == 7, regs.get(dst), regs.get(src), k)
        if regs[dst] == ("pt",) and op & 0xF0 != 0xB0:
            regs[dst] = None
        return [(nxt, st)]
    if cls == 1:  # ldx
        size = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[op & 0x18]
        base = regs.get(src)
        if base and base[0] == "fp" and base[1] == base[2] and size == 8:
            regs[dst] = st.stack.get(base[1] + off)
        elif base and base[0] == "fp" and base[1] == base[2] and size == 4 and \
                st.stack.get(base[1] + off) == ("kernel u32",):
            regs[dst] = ("tgid",)  # a task's tgid, read from its task_struct (runqlat)
        else:
            regs[dst] = ("bound", (1 << (8 * size)) - 1) if size < 8 else None
        return [(nxt, st)]
    if cls in (2, 3):  # st, stx
        base = regs.get(dst)
        if base and base[0] == "mem":  # into a map value or a record: user space sees it
            _output(seen_calls, i, st, "store to map/record", None)
        if cls == 3 and op & 0xE0 == 0xC0 and imm & 0x01:  # atomic fetch: old value out
            regs[0 if imm == 0xF1 else src] = None  # cmpxchg's goes to R0
        if base and base[0] == "fp" and base[1] == base[2]:
            slot = base[1] + off
            size = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[op & 0x18]
            for o in range(slot - 7, slot + size):
                st.stack.pop(o, None)
            if size == 8 and cls == 3 and op & 0xE0 == 0x60:
                st.stack[slot] = regs.get(src)
            elif size == 8 and cls == 2:
                st.stack[slot] = ("const", imm)
        return [(nxt, st)]
    if cls in (5, 6):
        jop = op & 0xF0
        if jop == 0x80:  # call
            _call(insns, i, st, tgid, seen_calls)
            return [(nxt, st)]
        if jop == 0x90:
            return []
        tgt = ins["target"] if ins["target"] is not None else i + 1 + off
        if jop == 0x00:
            return [(tgt, st)]
        taken, fall = st, st.copy()
        v = regs.get(dst)
        k = imm if not op & 0x08 else (_const(regs.get(src)))
        if k is not None and cls == 5:
            taken.regs[dst] = _refine(v, jop, k, True)
            fall.regs[dst] = _refine(v, jop, k, False)
            if v is not None and v[0] == "mem" and v[2].startswith("lookup:") and k == 0:
                side = fall if jop == 0x10 else taken if jop == 0x50 else None
                if side is not None:
                    side.gates = side.gates | {v[2][7:]}
            if v == ("tgid",) and tgid is not None and k == tgid:
                if jop == 0x50:
                    fall.filtered = True
                elif jop == 0x10:
                    taken.filtered = True
        return [(nxt, fall), (tgt, taken)]
    return [(nxt, st)]


def _output(seen_calls, i, st: State, what: str, updated_map: str | None) -> None:
    """Something user space can see: (insn, what, tgid compared, maps gating it, the map
    updated); over several paths the worst verdict stays."""
    prev = seen_calls.get(i)
    ok = st.filtered and (prev is None or prev[1][1])
    gates = st.gates if prev is None else st.gates & prev[1][2]
    seen_calls[i] = ("out", (what, ok, gates, updated_map))


def _const(v):
    return v[1] if v is not None and v[0] == "const" else None


def _room(ptr) -> int | None:
    if ptr is None:
        return None
    if ptr[0] == "fp" and ptr[2] < 0:
        return -ptr[2]
    if ptr[0] == "mem":
        return ptr[1] - ptr[4]
    return None


def _call(insns, i, st: State, tgid, seen_calls) -> None:
    helper, regs = insns[i]["imm"], st.regs
    if helper in READS:
        size, room = _num_hi(regs.get(2)), _room(regs.get(1))
        why = None
        if size is None:
            why = f"size R2 unbounded ({regs.get(2)})"
        elif room is None:
            why = f"destination R1 unknown ({regs.get(1)})"
        elif size > room:
            why = f"size up to {size} into {room} bytes"
        prev = seen_calls.get(i)
        if prev is None or (why and not prev[1][3]):  # keep the worst path's verdict
            seen_calls[i] = ("read", (READS[helper], size, room, why))
    if helper in OUTPUTS:
        m = regs.get(1)
        _output(seen_calls, i, st, OUTPUTS[helper],
                m[3] if helper == 2 and m is not None and m[0] == "map" else None)
    dst = regs.get(1)
    if helper == PROBE_READ_KERNEL and dst and dst[0] == "fp" and dst[1] == dst[2]:
        for o in range(dst[1] - 7, dst[1] + 8):
            st.stack.pop(o, None)
        if _const(regs.get(2)) == 4:
            st.stack[dst[1]] = ("kernel u32",)
    r0 = None
    if helper == PID_TGID:
        r0 = ("pt",)
    elif helper == MAP_LOOKUP and regs.get(1) and regs[1][0] == "map":
        r0 = ("mem", regs[1][1], "lookup:" + regs[1][3], 0, 0)
    elif helper == RINGBUF_RESERVE and _const(regs.get(2)) is not None:
        r0 = ("mem", _const(regs[2]), "ringbuf", 0, 0)
    for r in range(1, 6):
        regs.pop(r, None)
    regs[0] = r0
