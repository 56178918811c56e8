"""Durations as people read them: 3.20 us, 259 us, 24.0 ms, 1.6 s."""


def format_duration(ns: int) -> str:
    if ns < 10_000:
        return f"{ns / 1000:.2f} us"
    if ns < 10_000_000:
        return f"{ns / 1000:.0f} us"
    if ns < 10_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.1f} s"


def format_bytes(n: float) -> str:
    """Bytes as pprof prints them: 512B, 64kB, 162.23MB (powers of 1024)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" or n == int(n) else f"{n:.2f}{unit}"
        n /= 1024
    return f"{n}B"


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 function', '2 functions' (words: an irregular plural)."""
    return f"{n} {word if n == 1 else words or word + 's'}"
