// cgoprog is a cgo program: its text starts with C code (crt and cgo glue), so the Go
// text start (runtime.text) is not the .text section address, and PIE builds of it are
// linked by the system linker. lumos's tests check the pclntab reader and probe sites
// against `go tool nm` and `go tool objdump` on it.
package main

/*
static int twice(int x) { return 2 * x; }
*/
import "C"

import (
	"fmt"
	"os"
)

//go:noinline
func Add(a int, s string) int { return a + len(s) }

//go:noinline
func Scale(x float64, n int) float64 {
	fmt.Fprintln(os.Stderr, "scale", n)
	return x * float64(n)
}

func main() {
	fmt.Println(Add(int(C.twice(3)), "x"), Scale(1.5, len(os.Args)))
}
