"""Lines every tool prints on stderr the same way: skipped sites, notes."""

from __future__ import annotations

import sys

from lumos.output.jsonl import write_json


def report_skipped(skipped) -> None:
    """Say which sites the kernel refused to probe (never drop them silently)."""
    if skipped:
        names = ", ".join(sorted({s.name for s in skipped})[:8])
        more = f" and {len(skipped) - 8} more" if len(skipped) > 8 else ""
        print(f"lumos: skipped {len(skipped)} site(s) the kernel cannot probe: {names}{more}",
              file=sys.stderr)


def report_lost(stream, json_out: bool, out=sys.stdout) -> int:
    """Print the events that were not delivered (the ring buffer was full, or still held
    them at exit); never silent. stream: a probes.stream.Stream."""
    lost = stream.lost
    if json_out:
        write_json({"lost": lost}, out)
    if lost:
        print(f"lumos: {lost} events lost (ring buffer full; try a larger --ring-mb or a "
              f"--filter)", file=sys.stderr)
    return lost
