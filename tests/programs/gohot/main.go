// gohot calls main.hot a known number of times, from one or more goroutines.
//
//	gohot -n 300000 -g 2     calls hot 300000 times in each of 2 goroutines, prints
//	                         "hot=600000" and the time per call
//	gohot -forever           calls hot in a loop, printing calls per second each second
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

var sink int

// inc is a leaf: no stack-check prologue, so its entry probe is single-stepped.
//
//go:noinline
func inc(x int) int {
	return x + 1
}

// hot calls inc, so it has the usual prologue (CMPQ SP, 16(R14); JBE morestack) whose
// JBE lumos probes: emulated by the kernel instead of single-stepped.
//
//go:noinline
func hot(x int) int {
	return inc(x * 2)
}

//go:noinline
func deep(n int) int {
	var pad [64]byte // a frame big enough that recursion grows the stack
	pad[n%64] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%64]&1)
}

func main() {
	n := flag.Int("n", 100000, "calls per goroutine")
	g := flag.Int("g", 1, "goroutines")
	forever := flag.Bool("forever", false, "loop forever, print rate each second")
	depth := flag.Int("deep", 0, "also call deep(N) once per goroutine")
	flag.Parse()
	if *forever {
		start := time.Now()
		calls := 0
		for {
			for i := 0; i < 10000; i++ {
				sink += hot(i)
			}
			calls += 10000
			if el := time.Since(start); el >= time.Second {
				fmt.Printf("rate=%.0f\n", float64(calls)/el.Seconds())
				start, calls = time.Now(), 0
			}
		}
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	for j := 0; j < *g; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := 0
			for i := 0; i < *n; i++ {
				s += hot(i)
			}
			if *depth > 0 {
				s += deep(*depth)
			}
			sink += s
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	fmt.Printf("hot=%d ns_per_call=%.1f\n", *n**g, float64(el.Nanoseconds())/float64(*n))
	os.Exit(0)
}
