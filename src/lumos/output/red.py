"""RED summaries (rate, errors, duration) of requests and queries, from log2 histograms.

The kernel keeps one log2 histogram of microseconds per (kind, status, method, path or
SQL text prefix); this module merges them per route, with ids folded the way
dashboards group them (`/user/123` -> `/user/{id}`), and estimates p50/p90/p99 from the
buckets. The kernel keeps each bucket's sum too, so within a bucket [2^i, 2^(i+1)) the
values are taken as spread evenly around the bucket's own mean (as widely as the bucket
allows): a bucket of one call gives that call's duration exactly, and any estimate stays
inside its bucket, within a factor of two of the truth. (Prometheus' histogram_quantile()
interpolates over the whole bucket, without the mean.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lumos.output.table import format_table

NUM_SLOTS = 64
_DIGITS = re.compile(r"^\d+$")
_HEXDASH = re.compile(r"^[0-9a-fA-F-]{8,}$")


def is_id(segment: str) -> bool:
    """All decimal digits, or 8+ hex digits and '-' with a decimal digit among them
    (hashes, UUIDs; "deadbeef" stays a word): probes/routefold's rule, in the kernel."""
    return bool(_DIGITS.match(segment) or (_HEXDASH.match(segment)
                                           and any(c.isdigit() for c in segment)))


def fold_path(path: str) -> str:
    """/user/123/orders/9f86d081884c7d65 -> /user/{id}/orders/{id}; a path cut short
    keeps its '...'."""
    cut = path.endswith("...")
    body = path[:-3] if cut else path
    parts = body.split("/")
    if cut and parts:
        parts[-1] = parts[-1] + "..."
    return "/".join("{id}" if is_id(p) else p for p in parts)


@dataclass
class Stats:
    slots: list[int] = field(default_factory=lambda: [0] * NUM_SLOTS)
    sums: list[int] = field(default_factory=lambda: [0] * NUM_SLOTS)   # ns, per bucket
    errors: int = 0

    @property
    def sum_ns(self) -> int:
        return sum(self.sums)

    @property
    def count(self) -> int:
        return sum(self.slots)

    def add(self, slot: int, count: int, sum_ns: int, error: bool) -> None:
        self.slots[min(slot, NUM_SLOTS - 1)] += count
        self.sums[min(slot, NUM_SLOTS - 1)] += sum_ns
        if error:
            self.errors += count

    def quantile_us(self, q: float) -> float:
        """The q-quantile in microseconds, interpolated within its log2 bucket."""
        n = self.count
        if n == 0:
            return 0.0
        rank, seen = q * n, 0
        for i, c in enumerate(self.slots):
            if c and seen + c >= rank:
                low, high = (0, 2) if i == 0 else (1 << i, 1 << (i + 1))
                mean = min(max(self.sums[i] / c / 1000, low), high)
                if c == 1:
                    return mean
                half = min(mean - low, high - mean)
                return mean - half + 2 * half * max(0.0, rank - seen) / c
            seen += c
        return float(1 << NUM_SLOTS)


def summary_rows(groups: dict[str, Stats], seconds: float | None) -> list[list]:
    rows = []
    for name, s in sorted(groups.items(), key=lambda kv: (-kv[1].count, kv[0])):
        n = s.count
        rate = f"{n / seconds:.1f}" if seconds else "-"
        rows.append([name, n, s.errors, rate,
                     *(f"{s.quantile_us(q) / 1000:.2f}" for q in (0.5, 0.9, 0.99)),
                     f"{s.sum_ns / n / 1e6:.2f}" if n else "-"])
    return rows


HEADERS = ["COUNT", "ERRORS", "RATE/s", "P50ms", "P90ms", "P99ms", "AVGms"]


def format_summary(title: str, column: str, groups: dict[str, Stats],
                   seconds: float | None) -> str:
    if not groups:
        return f"{title}: none"
    return f"{title}:\n" + format_table([column, *HEADERS], summary_rows(groups, seconds),
                                        align="l" + "r" * len(HEADERS))


def summary_json(groups: dict[str, Stats], kind: str, seconds: float | None) -> list[dict]:
    out = []
    for name, s in sorted(groups.items()):
        out.append({"summary": kind, "name": name, "count": s.count, "errors": s.errors,
                    "rate": round(s.count / seconds, 3) if seconds else None,
                    "p50_ms": round(s.quantile_us(0.5) / 1000, 3),
                    "p90_ms": round(s.quantile_us(0.9) / 1000, 3),
                    "p99_ms": round(s.quantile_us(0.99) / 1000, 3),
                    "sum_ms": round(s.sum_ns / 1e6, 3),
                    "buckets_us": {str(1 << i if i else 2): c
                                   for i, c in enumerate(s.slots) if c}})
    return out
