// profiled: known call chains, CPU hot spots and allocation sites, with the program's own
// runtime/pprof profiles as ground truth.
//
//	profiled stacks N          a -> b -> inl (inlined into b) -> c, N times; prints "calls N"
//	                           and waits for another line (or EOF) before it exits
//	profiled cpu SECONDS F     hot (80%, with mix inlined) and warm (20%) loops of random lengths for SECONDS;
//	                           writes Go's own CPU profile to F (F "-" for none)
//	profiled alloc SECONDS MBPS F   allocates MBPS MiB/s for SECONDS: 3/4 in allocBig
//	                           (64 KiB slices), 1/4 in allocSmall (inlined newNode, 256 B
//	                           objects); then runtime.GC and Go's own heap profile to F
//	profiled types             for a few values: "type 0xADDR SIZE NAME", the type word of
//	                           the value as an `any` (its descriptor's address) and what
//	                           reflect says of it; then waits
//
// Each mode waits for a line on stdin before starting, so a tracer can attach first
// (it prints "ready" to stdout when it is waiting).
package main

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
	"unsafe"
)

var sink int

//go:noinline
func c(x int) int { return x*3 + 1 }

func inl(x int) int { return c(x+1) + 1 } // small: inlined into b

//go:noinline
func b(x int) int { return inl(x) * 2 }

//go:noinline
func a(x int) int { return b(x) + 1 }

func mix(x uint64) uint64 { return x*6364136223846793005 + 1442695040888963407 } // inlined

//go:noinline
func hot(n int) uint64 {
	var x uint64 = 1
	for i := 0; i < n; i++ {
		x = mix(x) ^ (x >> 13)
	}
	return x
}

//go:noinline
func warm(n int) uint64 {
	var x uint64 = 7
	for i := 0; i < n; i++ {
		x = x*2862933555777941757 + 3037000493
	}
	return x
}

type node struct {
	next *node
	buf  [240]byte
}

var keep []*node
var keepBig [][]byte

func newNode() *node { return &node{} } // inlined into allocSmall

//go:noinline
func allocSmall(n int) {
	for i := 0; i < n; i++ {
		nd := newNode()
		nd.buf[0] = byte(i)
		if i%64 == 0 {
			keep = append(keep[:0], nd)
		}
	}
}

//go:noinline
func allocBig(n int) {
	for i := 0; i < n; i++ {
		s := make([]byte, 64<<10)
		s[0] = byte(i)
		if i%16 == 0 {
			keepBig = append(keepBig[:0], s)
		}
	}
}

func wait() {
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
}

func main() {
	if len(os.Args) < 2 || len(os.Args) < 3 && os.Args[1] != "types" {
		fmt.Fprintln(os.Stderr, "usage: profiled stacks N | cpu SECONDS F | alloc SECONDS MBPS F | types x")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "types":
		for _, v := range []any{node{}, &node{}, uint8(0), []uint8(nil), "", []*node(nil),
			map[string]int(nil), [4]uint64{}, time.Duration(0)} {
			w := (*[2]uintptr)(unsafe.Pointer(&v))[0]
			t := reflect.TypeOf(v)
			fmt.Printf("type %#x %d %s\n", w, t.Size(), t.String())
		}
		wait()
	case "stacks":
		n, _ := strconv.Atoi(os.Args[2])
		wait()
		for i := 0; i < n; i++ {
			sink += a(i)
		}
		fmt.Println("calls", n)
		wait() // a second line (or EOF) ends it: a scraper can read the counts meanwhile
	case "cpu":
		secs, _ := strconv.ParseFloat(os.Args[2], 64)
		wait()
		if os.Args[3] != "-" {
			f, _ := os.Create(os.Args[3])
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		end := time.Now().Add(time.Duration(secs * float64(time.Second)))
		// loop lengths vary at random around 4:1 (hot:warm), so the program has no period
		// for a sampling profiler's period to alias with (with fixed lengths, samples
		// 10 ms apart land at slowly drifting phases of a fixed cycle: correlated, and
		// two profilers of one run disagree by far more than their sample counts say)
		r := uint64(88172645463325252)
		for time.Now().Before(end) {
			r ^= r << 13
			r ^= r >> 7
			r ^= r << 17
			sink += int(hot(200000 + int(r%400000)))
			sink += int(warm(50000 + int((r>>32)%100000)))
		}
		fmt.Println("done")
	case "alloc":
		secs, _ := strconv.ParseFloat(os.Args[2], 64)
		mbps, _ := strconv.ParseFloat(os.Args[3], 64)
		wait()
		start := time.Now()
		tick := 10 * time.Millisecond
		perTick := mbps * (1 << 20) * tick.Seconds() // bytes per tick
		bigPerTick := int(perTick * 3 / 4 / (64 << 10))
		smallPerTick := int(perTick / 4 / 256)
		var total, nbig, nsmall int64
		for next := start; time.Since(start).Seconds() < secs; next = next.Add(tick) {
			allocBig(bigPerTick)
			allocSmall(smallPerTick)
			total += int64(bigPerTick)*(64<<10) + int64(smallPerTick)*256
			nbig += int64(bigPerTick)
			nsmall += int64(smallPerTick)
			if d := time.Until(next.Add(tick)); d > 0 {
				time.Sleep(d)
			}
		}
		runtime.GC()
		if os.Args[4] != "-" {
			f, _ := os.Create(os.Args[4])
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		fmt.Println("allocated", total, "big", nbig, "small", nsmall)
	}
}
