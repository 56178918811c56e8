// gowrap starts goroutines the compiler starts through a go-statement wrapper (a go
// statement with arguments: main.main.func3 in Go 1.19-1.21, main.main.gowrap1 from
// 1.22) and others, then writes what Go itself reports for each, from
// runtime.Stack(buf, true): "TRUTH {json}" with the goid and the last frame before
// "created by" (the function Go's traceback says the goroutine runs in).
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

type T struct{ n int }

var started sync.WaitGroup

//go:noinline
func worker(n int) {
	started.Done()
	select {}
}

//go:noinline
func (t *T) run() {
	started.Done()
	select {}
}

//go:noinline
func plain() {
	started.Done()
	select {}
}

//go:noinline
func twoArgs(a int, s string) {
	started.Done()
	select {}
}

func main() {
	started.Add(6)
	go worker(5)
	t := &T{3}
	go t.run()
	go plain()
	go twoArgs(1, "x")
	go func(x int) {
		started.Done()
		select {}
	}(7)
	go func() {
		started.Done()
		select {}
	}()
	started.Wait()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	out := bufio.NewWriter(os.Stderr)
	defer out.Flush()
	for _, block := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(block, "\n")
		head := strings.Fields(lines[0])
		if len(head) < 2 || head[0] != "goroutine" {
			continue
		}
		goid, _ := strconv.Atoi(head[1])
		last := ""
		for _, ln := range lines[1:] {
			if strings.HasPrefix(ln, "created by ") {
				break
			}
			if ln != "" && !strings.HasPrefix(ln, "\t") {
				last = ln[:strings.LastIndex(ln, "(")]
			}
		}
		if !strings.HasPrefix(last, "main.") || goid == 1 {
			continue
		}
		b, _ := json.Marshal(map[string]interface{}{"goid": goid, "start": last})
		out.WriteString("TRUTH ")
		out.Write(b)
		out.WriteByte('\n')
	}
}
