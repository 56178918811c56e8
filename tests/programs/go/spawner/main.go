// spawner starts N goroutines as fast as it can (each ends at once), then, after a
// pause, one more (main.last): the ground truth for a goroutine tracer under overflow.
// It prints "goroutines=N" (main.worker ones) on stderr and exits after main.last ends.
// Run it with GOGC=off: no GC worker goroutines appear in the middle of the flood.
//
//	spawner -n 200000
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

var sink int

//go:noinline
func worker(i int, wg *sync.WaitGroup) {
	sink += i
	wg.Done()
}

//go:noinline
func last(done chan struct{}) {
	close(done)
}

func main() {
	n := flag.Int("n", 100000, "goroutines to start")
	pause := flag.Duration("pause", 500*time.Millisecond, "before main.last")
	flag.Parse()
	var wg sync.WaitGroup
	wg.Add(*n)
	for i := 0; i < *n; i++ {
		go worker(i, &wg)
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "goroutines=%d\n", *n)
	time.Sleep(*pause) // the tracer drains its ring meanwhile
	done := make(chan struct{})
	go last(done)
	<-done
	time.Sleep(100 * time.Millisecond) // main.last's exit is seen before the process ends
}
