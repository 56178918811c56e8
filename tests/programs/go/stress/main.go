// stress runs one scenario for lumos's truth tests and writes its own account of what
// it did to stderr, as "TRUTH {json}" lines. Nothing goes to stdout (lumos's output
// shares it under -c).
//
//	stress recurse D R     rec(D) R times: D+1 nested calls each, stack growing
//	stress panics N        guarded (recovers inside), thrower (panics through), catcher
//	stress gopanics N      N goroutines one after the other, each calls catcher(i) once
//	stress goroutines N    N goroutines all inside gwork at once, then released
//	stress sleep MS...     work(ms) sleeps ms, once per argument; each call timed
//	stress grow MS...      grow(ms) on a fresh goroutine: deep recursion, then sleep ms
//	stress flood N         flood(s, i) N times as fast as it can, s 4000 bytes long
//	                       (every 1000th call: s = "needle")
//	stress stack           stack frames: each probed function prints runtime.Callers
//	stress bigframe N      N goroutines each call bigframe, whose frame is > 4 KiB:
//	                       its stack must grow at the entry
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

var out = bufio.NewWriter(os.Stderr)

func truth(v map[string]interface{}) {
	b, _ := json.Marshal(v)
	out.WriteString("TRUTH ")
	out.Write(b)
	out.WriteByte('\n')
}

// -- recursion ------------------------------------------------------------------------

//go:noinline
func rec(n int) int {
	var pad [128]byte // a frame big enough that deep recursion grows (moves) the stack
	pad[n%128] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return rec(n-1) + 1 + int(pad[n%128]&0)
}

// -- panics ---------------------------------------------------------------------------

//go:noinline
func guarded(n int) (r int) {
	defer func() {
		if recover() != nil {
			r = -n
		}
	}()
	if n%3 == 0 {
		panic("boom")
	}
	return n
}

//go:noinline
func thrower(n int) int {
	if n%2 == 0 {
		panic(n)
	}
	return n * 10
}

//go:noinline
func catcher(n int) (r int) {
	defer func() {
		if recover() != nil {
			r = -1
		}
	}()
	return thrower(n)
}

// -- goroutines -----------------------------------------------------------------------

var started sync.WaitGroup

//go:noinline
func gwork(i int, release chan struct{}) int {
	started.Done()
	<-release
	return i * 2
}

// -- latency --------------------------------------------------------------------------

//go:noinline
func work(ms int) int {
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return ms
}

//go:noinline
func deep(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	if n == 0 {
		return 0
	}
	return deep(n-1) + int(pad[n%256]&1)
}

// grow makes its own goroutine's stack grow several times during the call (copying
// every frame, grow's included, to a new place) before it sleeps.
//
//go:noinline
func grow(ms int) int {
	d := deep(4000) // ~1 MiB of frames
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return ms + d
}

// -- flood ----------------------------------------------------------------------------

var sink int

//go:noinline
func flood(s string, i int) int { return len(s) + i }

// -- stack ----------------------------------------------------------------------------

type frame struct {
	Func string `json:"func"`
	Off  uint64 `json:"off"`
}

func callers(skip int) []frame {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(skip+1, pcs)
	var out []frame
	for _, pc := range pcs[:n] {
		f := runtime.FuncForPC(pc - 1)
		out = append(out, frame{f.Name(), uint64(pc - f.Entry())})
	}
	return out
}

//go:noinline
func stackLeaf(n int) int { return n + 1 }

//go:noinline
func stackC(n int) int {
	truth(map[string]interface{}{"f": "main.stackC", "n": n, "stack": callers(1)})
	return stackLeaf(n)
}

//go:noinline
func stackB(n int) int { return stackC(n) + 1 }

//go:noinline
func stackA(n int) int { return stackB(n) + 1 }

// -- big frames -----------------------------------------------------------------------

//go:noinline
func bigframe(n int) int {
	var buf [8192]byte
	buf[n%8192] = byte(n)
	return int(buf[(n+1)%8192]) + n
}

func main() {
	defer out.Flush()
	args := make([]int, 0, len(os.Args))
	for _, a := range os.Args[2:] {
		n, err := strconv.Atoi(a)
		if err != nil {
			panic(err)
		}
		args = append(args, n)
	}
	switch os.Args[1] {
	case "recurse":
		d, r := args[0], args[1]
		for i := 0; i < r; i++ {
			// a new goroutine each time: its stack starts small and grows in rec
			done := make(chan int)
			go func() { done <- rec(d) }()
			if got := <-done; got != d {
				panic("rec")
			}
		}
		truth(map[string]interface{}{"f": "main.rec", "depth": d, "repeat": r, "calls": r * (d + 1)})
	case "panics":
		for i := 0; i < args[0]; i++ {
			g := guarded(i)
			c := catcher(i)
			truth(map[string]interface{}{"n": i, "guarded": g, "catcher": c, "thrower_returned": i%2 != 0})
		}
	case "gopanics":
		returned := 0
		for i := 0; i < args[0]; i++ {
			done := make(chan int)
			go func() { done <- catcher(i) }()
			if <-done != -1 {
				returned++
			}
		}
		truth(map[string]interface{}{"catcher": args[0], "thrower_returned": returned})
	case "goroutines":
		n := args[0]
		release := make(chan struct{})
		var done sync.WaitGroup
		results := make([]int, n)
		started.Add(n)
		done.Add(n)
		for i := 0; i < n; i++ {
			go func(i int) {
				defer done.Done()
				results[i] = gwork(i, release)
			}(i)
		}
		started.Wait() // all n are inside gwork now
		truth(map[string]interface{}{"inside": n})
		close(release)
		done.Wait()
		sum := 0
		for _, r := range results {
			sum += r
		}
		truth(map[string]interface{}{"calls": n, "sum": sum})
	case "sleep", "grow":
		for _, ms := range args {
			t0 := time.Now()
			if os.Args[1] == "sleep" {
				work(ms)
			} else {
				done := make(chan struct{})
				go func() {
					grow(ms)
					close(done)
				}()
				<-done
			}
			truth(map[string]interface{}{"ms": ms, "ns": time.Since(t0).Nanoseconds()})
		}
		truth(map[string]interface{}{"done": true})
	case "flood":
		long := strings.Repeat("x", 4000)
		for i := 0; i < args[0]; i++ {
			s := long
			if i%1000 == 0 {
				s = "needle"
			}
			sink += flood(s, i)
		}
		truth(map[string]interface{}{"calls": args[0]})
	case "stack":
		stackA(1)
		stackC(2)
		truth(map[string]interface{}{"f": "main.stack", "main": callers(1)})
	case "bigframe":
		var wg sync.WaitGroup
		for i := 0; i < args[0]; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				sink += bigframe(i)
			}(i)
		}
		wg.Wait()
		truth(map[string]interface{}{"calls": args[0]})
	default:
		panic("unknown mode " + os.Args[1])
	}
}
