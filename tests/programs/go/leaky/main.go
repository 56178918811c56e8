// leaky starts known goroutines, lets some finish and leaks others on purpose, and
// reports each one itself on stderr: "TRUTH {json}" with its goid, its parent's goid,
// the function it starts in and the function whose go statement created it.
//
//	leaky          spawn, wait until the finished ones are gone, exit
//	leaky wait     read a line from stdin first (attach a tracer meanwhile), and
//	               after the spawning read stdin to EOF before exiting
//
// Spawned: 5 main.finisher and 3 main.leaker from main.spawnFinishers/spawnLeakers,
// 4 closures main.spawnClosures.func1 (finish), 1 main.nested from main.main (finishes)
// which spawns 2 more main.leaker from
// main.spawnLeakersFrom. Leaked at the end: 5 main.leaker.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

var (
	mu       sync.Mutex
	out      = bufio.NewWriter(os.Stderr)
	finished sync.WaitGroup
	block    = make(chan struct{}) // never closed: leakers wait here forever
	ids      = make(chan int)
	leaked   = 0
)

// goid of the calling goroutine, from the first line of its traceback.
func goid() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	n, _ := strconv.Atoi(string(buf[:bytes.IndexByte(buf, ' ')]))
	return n
}

// startFunc: the function the calling goroutine started in (the frame below goexit).
func startFunc() string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(1, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	last := ""
	for {
		f, more := frames.Next()
		if f.Function == "runtime.goexit" || !more {
			return last
		}
		last = f.Function
	}
}

// self: the name of the function calling it.
func self() string {
	pc, _, _, _ := runtime.Caller(1)
	return runtime.FuncForPC(pc).Name()
}

// child reports itself to its creator, which writes the truth line.
func child() {
	ids <- goid()
	ids <- 0
}

func record(creator string, parent int, start *string, leak bool) {
	g := <-ids
	<-ids
	mu.Lock()
	defer mu.Unlock()
	if leak {
		leaked++
	}
	b, _ := json.Marshal(map[string]interface{}{"goid": g, "parent": parent, "start": *start,
		"creator": creator, "leaked": leak})
	out.WriteString("TRUTH ")
	out.Write(b)
	out.WriteByte('\n')
}

var starts = make(chan string, 1)

//go:noinline
func finisher() {
	starts <- startFunc()
	child()
	finished.Done()
}

//go:noinline
func leaker() {
	starts <- startFunc()
	child()
	<-block
}

//go:noinline
func spawnFinishers(n int) {
	me := self()
	for i := 0; i < n; i++ {
		finished.Add(1)
		parent := goid()
		go finisher()
		s := <-starts
		record(me, parent, &s, false)
	}
}

//go:noinline
func spawnLeakers(n int) {
	me := self()
	for i := 0; i < n; i++ {
		parent := goid()
		go leaker()
		s := <-starts
		record(me, parent, &s, true)
	}
}

//go:noinline
func spawnClosures(n int) {
	me := self()
	for i := 0; i < n; i++ {
		finished.Add(1)
		parent := goid()
		go func() {
			starts <- startFunc()
			child()
			finished.Done()
		}()
		s := <-starts
		record(me, parent, &s, false)
	}
}

//go:noinline
func nested() {
	starts <- startFunc()
	child()
	spawnLeakersFrom(2)
	finished.Done()
}

// spawnLeakersFrom is spawnLeakers called from the nested goroutine.
//
//go:noinline
func spawnLeakersFrom(n int) {
	me := self()
	for i := 0; i < n; i++ {
		parent := goid()
		go leaker()
		s := <-starts
		record(me, parent, &s, true)
	}
}

func main() {
	wait := len(os.Args) > 1 && os.Args[1] == "wait"
	in := bufio.NewReader(os.Stdin)
	if wait {
		in.ReadString('\n')
	}
	spawnFinishers(5)
	spawnLeakers(3)
	spawnClosures(4)
	finished.Add(1)
	parent := goid()
	go nested()
	s := <-starts
	record("main.main", parent, &s, false)
	finished.Wait()
	// The finished goroutines are gone once only main and the leakers are left.
	for runtime.NumGoroutine() > 1+leaked {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	out.Flush()
	mu.Unlock()
	if wait {
		io.Copy(io.Discard, in)
	}
}
