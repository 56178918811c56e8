"""Calls f() argv[1] times in a loop, flat out or (argv[2], calls per second) paced in
batches of 100, and writes 'calls N seconds S' (the loop's own time, monotonic clock)
to stderr: the workload of bench/toolbox.py."""

import sys
import time


def f(x):
    return x + 1


n = int(sys.argv[1])
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
t0 = time.perf_counter()
if rate:
    for i in range(0, n, 100):
        for j in range(i, min(i + 100, n)):
            f(j)
        ahead = t0 + (i + 100) / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
else:
    for i in range(n):
        f(i)
print(f"calls {n} seconds {time.perf_counter() - t0:.6f}", file=sys.stderr)
