"""Calls functions in a known order from two threads and writes its own call log
(TID, ->/<-, qualified name) to argv[1]: the ground truth for lumos uflow."""

import sys
import threading

log = []
lock = threading.Lock()


def rec(ev, name):
    with lock:
        log.append(f"{threading.get_native_id()} {ev} {name}")


class Greeter:
    def hello(self, n):
        rec("->", "Greeter.hello")
        r = world(n)
        rec("<-", "Greeter.hello")
        return r


def world(n):
    rec("->", "world")
    if n:
        inner(n - 1)
    rec("<-", "world")
    return n


def inner(n):
    rec("->", "inner")
    rec("<-", "inner")


def worker(k):
    g = Greeter()
    for i in range(3):
        g.hello(i)


threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(sys.argv[1], "w") as f:
    f.write("\n".join(log) + "\n")
