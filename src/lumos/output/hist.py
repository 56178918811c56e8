"""log2 histograms in the layout libbpf-tools and BCC users know:

     usecs               : count    distribution
         0 -> 1          : 0        |                                        |
         2 -> 3          : 4        |****                                    |

Slot i holds values in [2^i, 2^(i+1) - 1]; slot 0 also holds 0. The BPF side computes
the same slot (floor of log2), so the printer and the kernel agree.
"""

from __future__ import annotations

from collections.abc import Sequence

STARS = 40
NUM_SLOTS = 64


def log2_slot(value: int) -> int:
    return value.bit_length() - 1 if value > 0 else 0


def slot_range(slot: int) -> tuple[int, int]:
    if slot == 0:
        return 0, 1
    return 1 << slot, (1 << (slot + 1)) - 1


def format_log2_hist(slots: Sequence[int], unit: str) -> str:
    """Rows up to the last non-empty slot; stars scaled to the largest count."""
    last = max((i for i, c in enumerate(slots) if c), default=-1)
    wide = last > 32
    pad, label_w, num_w = (15, 29, 20) if wide else (5, 19, 10)
    lines = [f"{'':{pad}}{unit:<{label_w}} : count    distribution"]
    top = max(slots) if last >= 0 else 0
    for i in range(last + 1):
        low, high = slot_range(i)
        count = slots[i]
        stars = "*" * (count * STARS // top) if top else ""
        lines.append(f"{low:>{num_w}} -> {high:<{num_w}} : {count:<8} |{stars:<{STARS}}|")
    return "\n".join(lines)
