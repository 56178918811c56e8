// alltypes has one function per kind of Go argument lumos decodes. lumos's tests build
// it with every supported toolchain (default, stripped, PIE) and compare what lumos
// reports with the source (via sigdump), `go tool objdump` and DWARF.
//
// Rules for this file: every traced function is //go:noinline, parameters are written
// one name per type (as lumos prints them), and main calls every function.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"unsafe"
)

type Point struct {
	X, Y int
}

type Small struct {
	A int8
	B uint16
	C float64
}

type Big struct {
	Name string
	Vals [4]int
	P    *Point
}

type Celsius float64

type Named int

func (n Named) String() string { return strconv.Itoa(int(n)) }

//go:noinline
func prepareAnswer(name string, year int, status int) string {
	return fmt.Sprintf("Hello, %s! Welcome to %d. Site status: %d", name, year, status)
}

//go:noinline
func Ints(a int, b int8, c int16, d int32, e int64) int64 {
	return int64(a) + int64(b) + int64(c) + int64(d) + e
}

//go:noinline
func Uints(a uint, b uint8, c uint16, d uint32, e uint64, f uintptr) uint {
	return a + uint(b) + uint(c) + uint(d) + uint(e) + uint(f)
}

//go:noinline
func Bools(a bool, b bool) bool { return a && !b }

//go:noinline
func Floats(a float32, b float64) float64 { return float64(a) * b }

// FloatSpill keeps its float argument across a call, so the compiler spills it to the
// stack early: the entry site where every argument is readable lies past the spill.
//
//go:noinline
func FloatSpill(x float64, n int) float64 {
	s := strconv.Itoa(n)
	return x + float64(len(s))
}

//go:noinline
func Complexes(a complex64, b complex128) complex128 { return complex128(a) + b }

//go:noinline
func Slices(a []int, b []string, c []byte) int { return len(a) + len(b) + cap(c) }

//go:noinline
func Pointers(p *Point, q *int, u unsafe.Pointer) *Point {
	if q != nil && u != nil {
		p.X += *q
	}
	return p
}

//go:noinline
func Maps(m map[string]int, c chan int, f func(int) int) int { return len(m) + cap(c) + f(1) }

//go:noinline
func Ifaces(e error, a interface{}, s fmt.Stringer) string {
	return fmt.Sprint(e, a, s)
}

//go:noinline
func Structs(p Point, s Small, b Big, e struct{}) Point {
	return Point{p.X + int(s.A) + len(b.Name), p.Y + b.Vals[3]}
}

//go:noinline
func Arrays(a [1]int, b [3]int, c [0]int) int { return a[0] + b[2] + len(c) }

//go:noinline
func Many(a1 int, a2 int, a3 int, a4 int, a5 int, a6 int, a7 int, a8 int, a9 int, a10 int, a11 string) (int, string) {
	return a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10, a11
}

//go:noinline
func Named2(n Named, c Celsius) (out string, err error) {
	if c < 0 {
		return "", errors.New("too cold")
	}
	return n.String(), nil
}

//go:noinline
func (p *Point) Move(dx int, dy int) {
	p.X += dx
	p.Y += dy
}

//go:noinline
func (p Point) Sum() int { return p.X + p.Y }

//go:noinline
func Leaf(a int) int { return a*3 + 1 }

//go:noinline
func MultiRet(a int) (int, error) {
	if a > 10 {
		return 0, errors.New("big")
	}
	if a < 0 {
		return -1, nil
	}
	return a * 2, nil
}

// BigFrame's frame is bigger than the stack guard: its prologue checks for underflow
// (JB) before comparing with g.stackguard0 (JBE), two jumps to morestack.
//
//go:noinline
func BigFrame(n int) int {
	var buf [8192]byte
	buf[n%len(buf)] = byte(n)
	return int(buf[(n*7)%len(buf)]) + n
}

// Recovered's named result is assigned by a deferred closure: Go 1.21-1.23 describe
// it twice in DWARF.
//
//go:noinline
func Recovered(n int) (r int, ok bool) {
	defer func() {
		if recover() != nil {
			r = -n
		}
	}()
	if n%3 == 0 {
		panic("boom")
	}
	return n, true
}

// asmAdd is written in assembly (asm_amd64.s): ABI0, arguments on the stack.
func asmAdd(a int64, b int64, s string) int64

// asmFunc makes the compiler emit the ABIInternal wrapper of asmAdd, whose DWARF
// carries the Go signature.
var asmFunc = asmAdd

func main() {
	n := 0
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1]) // alltypes N [wait]
	}
	x := 5
	p := &Point{1, 2}
	fmt.Println(prepareAnswer("GopherConRussia2020", 2020, 200))
	fmt.Println(Ints(n, 2, 3, 4, 5), Uints(1, 2, 3, 4, 5, 6), Bools(true, false))
	fmt.Println(Floats(1.5, 2.5), FloatSpill(2.5, n), Complexes(1+2i, 3+4i))
	fmt.Println(Slices([]int{1}, []string{"a"}, make([]byte, 3)))
	fmt.Println(Pointers(p, &x, unsafe.Pointer(&x)).X)
	fmt.Println(Maps(map[string]int{"a": 1}, make(chan int, 2), func(i int) int { return i + n }))
	fmt.Println(Ifaces(errors.New("e"), 42, Named(7)))
	fmt.Println(Structs(Point{1, 2}, Small{1, 2, 3}, Big{"b", [4]int{1, 2, 3, 4}, p}, struct{}{}))
	fmt.Println(Arrays([1]int{1}, [3]int{1, 2, 3}, [0]int{}))
	fmt.Println(Many(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "eleven"))
	fmt.Println(Named2(Named(n), Celsius(21.5)))
	p.Move(1, 2)
	fmt.Println(p.Sum(), Leaf(n))
	fmt.Println(MultiRet(n))
	fmt.Println(BigFrame(n))
	fmt.Println(Recovered(n))
	fmt.Println(asmAdd(1, 2, "abc"), asmFunc(3, 4, "x"))
	if len(os.Args) > 2 && os.Args[2] == "wait" {
		// stay alive until stdin closes, for tests that look at a running process
		io.Copy(io.Discard, os.Stdin)
	}
}
