// streamer calls main.emit(n int, s string) from G goroutines for D seconds, flat out
// or at a fixed total rate, then prints how many calls it made: the ground truth for
// lumos's streaming accounting (delivered + lost must equal it).
//
//	streamer -d 10 -g 2            flat out, 2 goroutines
//	streamer -d 10 -rate 100000    100,000 calls a second in all
//
// It prints "ready" once running and "calls=N" at the end, on stderr: a tracer's large
// writes to a shared stdout pipe may interleave with a short line.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var names = []string{"GET /", "POST /api/v1/users", "Gopher", "GopherConRussia2020",
	"a string a little longer than the others, to vary lengths"}

var sink int

// emit calls measure, so it has the usual stack-check prologue whose JBE lumos probes
// (emulated by the kernel, not single-stepped).
//
//go:noinline
func emit(n int, s string) int {
	return measure(n, s)
}

//go:noinline
func measure(n int, s string) int {
	return n + len(s)
}

func main() {
	d := flag.Float64("d", 5, "seconds to run")
	g := flag.Int("g", 1, "goroutines")
	rate := flag.Int("rate", 0, "calls per second in all (0: flat out)")
	wait := flag.Float64("wait", 0, "seconds to sleep before starting (to attach)")
	flag.Parse()
	time.Sleep(time.Duration(*wait * float64(time.Second)))
	fmt.Fprintln(os.Stderr, "ready")
	var total int64
	var wg sync.WaitGroup
	end := time.Now().Add(time.Duration(*d * float64(time.Second)))
	for j := 0; j < *g; j++ {
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			calls, s := 0, 0
			if *rate == 0 {
				for time.Now().Before(end) {
					for i := 0; i < 1000; i++ {
						s += emit(calls+i, names[(calls+i)%len(names)])
					}
					calls += 1000
				}
			} else {
				// pace in 1 ms steps: each goroutine's share of the rate per step
				per := float64(*rate) / float64(*g) / 1000
				start := time.Now()
				for now := start; now.Before(end); now = time.Now() {
					due := int(per * float64(now.Sub(start).Microseconds()) / 1000)
					for ; calls < due; calls++ {
						s += emit(calls, names[calls%len(names)])
					}
					time.Sleep(time.Millisecond)
				}
			}
			atomic.AddInt64(&total, int64(calls))
			sink += s
		}(j)
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "calls=%d\n", total)
}
