"""Run one lumos command line for real and write down every BPF program it loaded and
how each was attached, as JSON (for the static checks of tests/reliability/
test_bpf_programs.py).

    python progdump.py OUT.json TOOL ARGS...

Programs: each instruction (opcode, registers, offset, immediate, jump target as an
instruction index) and, for map loads, the map's type and key and value sizes. Links:
the attach function, the program's index and the pid it was given (-1: none).
"""

import json
import sys

import lumos.bpf.links as links
from lumos.bpf.asm import LDDW, PSEUDO_MAP_VALUE
from lumos.bpf.prog import observe_loads
from lumos.cli import build_parser, main

specs = []
attached = []


def _index(prog) -> int:
    return next((i for i, s in enumerate(specs) if s is prog.spec), -1)  # -1: a feature probe


def _wrap(name: str, pid_at: int | None):
    orig = getattr(links, name)

    def wrapper(prog, *a, **kw):
        pid = kw.get("pid", a[pid_at - 1] if pid_at is not None and len(a) >= pid_at else -1)
        if _index(prog) >= 0:
            attached.append({"how": name, "prog": _index(prog), "pid": pid})
        return orig(prog, *a, **kw)
    return orig, wrapper


WRAPPED = {"attach_uprobe": 3, "attach_uprobe_multi": 4, "attach_tracepoint": None,
           "attach_raw_tracepoint": None, "attach_sampling": 2, "attach_perf_event": None}


def _spec_json(spec) -> dict:
    labels, slot = {}, 0
    for i, insn in enumerate(spec.insns):
        for name in insn.labels:
            labels[name] = i
        slot += insn.slots
    insns = []
    for insn in spec.insns:
        d = {"op": insn.opcode, "dst": insn.dst, "src": insn.src, "off": insn.off,
             "imm": insn.imm, "target": labels.get(insn.target) if insn.target else None}
        if insn.opcode == LDDW and insn.map_ref is not None:
            m = insn.map_ref.spec
            d["map"] = {"type": m.type, "key": m.key_size, "value": m.value_size,
                        "name": m.name, "direct": insn.src == PSEUDO_MAP_VALUE}
        insns.append(d)
    return {"name": spec.name, "type": spec.prog_type, "insns": insns}


if __name__ == "__main__":
    out_path, argv = sys.argv[1], sys.argv[2:]
    build_parser()  # every tool module imported: now replace the attach functions in each
    for name, pid_at in WRAPPED.items():
        orig, wrapper = _wrap(name, pid_at)
        for mod in list(sys.modules.values()):
            modname = getattr(mod, "__name__", "")
            if name == "attach_perf_event" and modname == "lumos.bpf.links":
                continue  # attach_uprobe's own call: recorded as attach_uprobe
            if modname.startswith("lumos") and getattr(mod, name, None) is orig:
                setattr(mod, name, wrapper)
    observe_loads(lambda spec: spec.name == "lumos_probe" or specs.append(spec))
    code = main(argv)
    with open(out_path, "w") as f:
        json.dump({"rc": code, "programs": [_spec_json(s) for s in specs],
                   "links": attached}, f)
    sys.exit(code)
