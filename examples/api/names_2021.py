# Streaming: every call of main.prepareAnswer whose year is 2021 (filtered in the
# kernel), with its goroutine and name argument. Usage: names_2021.py PID [SECONDS]
import sys

from lumos.api import Tracer

pid = int(sys.argv[1])
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10


def show(ev):
    print(f"goid={ev.goid} name={ev.args['name']!r} year={ev.args['year']}", flush=True)


with Tracer(pid=pid) as t:
    print(f"tracing main.prepareAnswer in PID {pid} for {seconds:g} s", flush=True)
    lost = t.stream("main.prepareAnswer", show, filter="year == 2021", duration=seconds)
    print(f"lost {lost}")
