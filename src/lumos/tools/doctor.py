"""doctor: what this kernel offers lumos, probed for real, with the consequence of each gap."""

from __future__ import annotations

import os
import sys

from lumos import caps
from lumos.bpf import features
from lumos.output.jsonl import write_json
from lumos.output.table import print_table

HELP = "check what this kernel lets lumos do"
EXAMPLES = """\
  lumos doctor          # a table of features; exit 0 when uprobes and ring buffers work
  lumos doctor --json   # one JSON object per feature
"""

ESSENTIAL = ("privileges", "uprobes", "ringbuf")


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="write JSON lines")


def run(args) -> int:
    rows = []
    for name, feat in features.FEATURES.items():
        err = features.check(name)
        status = "yes" if err is None else "no"
        note = feat.gives if err is None else f"{_reason(err)} -> {feat.if_missing}"
        if args.json:
            write_json({"feature": name, "available": err is None,
                        "min_kernel": feat.min_kernel, "note": note}, sys.stdout)
        else:
            rows.append((name, status, feat.min_kernel or "-", note))
    cap_rows = [(cap, "yes" if caps.has(cap) else "no", why)
                for cap, why in caps.NEEDED_FOR.items()]
    if args.json:
        for cap, have, why in cap_rows:
            write_json({"capability": cap, "effective": have == "yes", "needed_for": why},
                       sys.stdout)
    ok = all(features.check(n) is None for n in ESSENTIAL)
    if not args.json:
        print(f"lumos doctor: Linux {os.uname().release}, {os.uname().machine}")
        print_table(["FEATURE", "OK", "SINCE", "WHAT IT MEANS"], rows, sys.stdout, align="llll")
        print(f"\nuid {os.geteuid()}; capabilities (effective):")
        print_table(["CAPABILITY", "HAVE", "NEEDED FOR"], cap_rows, sys.stdout, align="lll")
        print("\nlumos can trace here." if ok else
              "\nlumos cannot trace here: " + ", ".join(n for n in ESSENTIAL
                                                        if features.check(n)) + " missing.")
    return 0 if ok else 1


def _reason(err) -> str:
    text = getattr(err, "detail", "") or str(err)
    return text.split(" (needs Linux")[0]
