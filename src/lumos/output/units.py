"""Durations as people read them: 3.20 us, 259 us, 24.0 ms, 1.6 s."""


def format_duration(ns: int) -> str:
    if ns < 10_000:
        return f"{ns / 1000:.2f} us"
    if ns < 10_000_000:
        return f"{ns / 1000:.0f} us"
    if ns < 10_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.1f} s"
