"""Calls functions a known number of times from two threads, counting each call itself
(and timing nap's sleeps with the monotonic clock lumos's kernel side uses too), then
writes {qualified name: [calls, ns]} as JSON to argv[1]: the ground truth for lumos
ucalls. Counting uses only C code (a lock, a dict): no Python call is added."""

import json
import sys
import threading
import time

calls: dict[str, list[int]] = {}
lock = threading.Lock()


def count(name, ns=0):
    with lock:
        c = calls.setdefault(name, [0, 0])
        c[0] += 1
        c[1] += ns


def leaf(x):
    count("leaf")
    return x + 1


def fib(n):
    count("fib")
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def fails(n):
    count("fails")
    raise ValueError(n)


def nap(seconds):
    t0 = time.perf_counter_ns()
    time.sleep(seconds)
    count("nap", time.perf_counter_ns() - t0)


class Shape:
    def __init__(self, side):
        count("Shape.__init__")
        self.side = side

    def area(self):
        count("Shape.area")
        return self.side * self.side


def work(rounds):
    count("work")
    for i in range(rounds):
        leaf(i)
        Shape(i).area()
        if i % 10 == 0:
            try:
                fails(i)
            except ValueError:
                pass
    fib(12)
    for _ in range(5):
        nap(0.01)


def main():
    threads = [threading.Thread(target=work, args=(n,)) for n in (300, 700)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(sys.argv[1], "w") as f:
        json.dump(calls, f)


main()
