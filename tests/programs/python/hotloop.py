"""Calls f() argv[1] times in a loop and writes 'calls N seconds S' (the loop's own
time, monotonic clock) to stderr: the workload of bench/toolbox.py."""

import sys
import time


def f(x):
    return x + 1


n = int(sys.argv[1])
t0 = time.perf_counter()
for i in range(n):
    f(i)
print(f"calls {n} seconds {time.perf_counter() - t0:.6f}", file=sys.stderr)
