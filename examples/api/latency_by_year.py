# A custom tool in 20 lines: main.prepareAnswer's latency per value of its `year`
# argument, aggregated in the kernel, printed at the end. Usage: latency_by_year.py PID [S]
import sys

from lumos.api import Tracer

pid = int(sys.argv[1])
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10

with Tracer(pid=pid) as t:
    hist = t.latency("main.prepareAnswer", by="year")  # entry + every RET, paired per goroutine
    print(f"tracing main.prepareAnswer in PID {pid} for {seconds:g} s", flush=True)
    t.sleep(seconds)  # Ctrl-C ends it early
    print(f"{'YEAR':>8} {'CALLS':>6} {'AVG us':>8}")
    for (_func, year), h in sorted(hist.read().items(), key=lambda kv: kv[0][1]):
        print(f"{year:>8} {h.count:>6} {h.sum / h.count:>8.1f}")
