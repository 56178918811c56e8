// goexec calls main.hot N times, prints "hot=N" on stderr, then execs the command given
// after its flags ("self" stands for its own binary): the ground truth for what a
// tracer sees across exec (the PID stays, the image is new).
//
//	goexec -n 1000 self -n 2000        1000 calls, exec itself, 2000 more calls
//	goexec -wait -n 500 /bin/echo hi   wait for a line on stdin, 500 calls, exec echo
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"syscall"
)

var sink int

//go:noinline
func inc(x int) int {
	return x + 1
}

// hot calls inc, so it has the usual stack-check prologue.
//
//go:noinline
func hot(x int) int {
	return inc(x * 2)
}

func main() {
	n := flag.Int("n", 1000, "calls of main.hot")
	wait := flag.Bool("wait", false, "read a line from stdin first (a tracer attaches)")
	flag.Parse()
	if *wait {
		fmt.Fprintf(os.Stderr, "ready pid=%d\n", os.Getpid())
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	for i := 0; i < *n; i++ {
		sink += hot(i)
	}
	fmt.Fprintf(os.Stderr, "hot=%d\n", *n)
	argv := flag.Args()
	if len(argv) == 0 {
		return
	}
	path := argv[0]
	if path == "self" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		path = exe
	}
	err := syscall.Exec(path, argv, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	os.Exit(1)
}
