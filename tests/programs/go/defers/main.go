// defers calls functions with a defer, whose results Go's DWARF describes twice, and
// writes what each returned to stderr as TRUTH JSON lines (the format of
// tests/programs/go/truth): unnamed and named results, error results nil and not,
// several RETs, a panic recovered by a deferred function, a method.
//
// Every traced function is //go:noinline; nothing goes to stdout.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"unsafe"
)

var errBig = errors.New("big")

var sink int

type V []interface{}
type rec map[string]V

func I(n int64) V  { return V{"i", n} }
func S(s string) V { return V{"s", hex.EncodeToString([]byte(s)), len(s)} }

func ifaceWords(p unsafe.Pointer) V {
	w := (*[2]uintptr)(p)
	return V{"ws", []uint64{uint64(w[0]), uint64(w[1])}}
}

var out = bufio.NewWriter(os.Stderr)

func emit(f string, args, results rec) {
	b, err := json.Marshal(map[string]interface{}{"f": f, "args": args, "results": results})
	if err != nil {
		panic(err)
	}
	out.WriteString("TRUTH ")
	out.Write(b)
	out.WriteByte('\n')
}

//go:noinline
func note() { sink++ }

//go:noinline
func Unnamed(n int) (int, error) {
	defer note()
	if n > 5 {
		return 0, errBig
	}
	return n * 2, nil
}

//go:noinline
func Named(n int) (r int, err error) {
	defer func() {
		if err != nil {
			r = -1
		}
	}()
	if n > 5 {
		return 7, errBig
	}
	return n * 3, nil
}

//go:noinline
func Single(n int) int {
	defer note()
	return n + 1
}

//go:noinline
func Recovered(n int) (r int, err error) {
	defer func() {
		if x := recover(); x != nil {
			r, err = -n, errBig
		}
	}()
	if n > 5 {
		panic("too big")
	}
	return n, nil
}

//go:noinline
func Three(s string, n int) (out string, k int, err error) {
	defer note()
	switch {
	case n < 0:
		return "", n, errBig
	case n == 0:
		return s, 0, nil
	}
	return s + strconv.Itoa(n), len(s) + n, nil
}

//go:noinline
func Rets(n int) (int, int, int) {
	defer note()
	if n == 1 {
		return 1, 2, 3
	}
	if n == 2 {
		return 4, 5, 6
	}
	return n, -n, 0
}

type Acc struct{ total int }

//go:noinline
func (a *Acc) Add(n int) (total int, err error) {
	defer func() { a.total = total }()
	if n < 0 {
		return a.total, errBig
	}
	return a.total + n, nil
}

func main() {
	defer out.Flush()
	for _, n := range []int{3, 9} {
		r, err := Unnamed(n)
		emit("main.Unnamed", rec{"n": I(int64(n))},
			rec{"~r0": I(int64(r)), "~r1": ifaceWords(unsafe.Pointer(&err))})
	}
	for _, n := range []int{2, 8} {
		r, err := Named(n)
		emit("main.Named", rec{"n": I(int64(n))},
			rec{"r": I(int64(r)), "err": ifaceWords(unsafe.Pointer(&err))})
	}
	for _, n := range []int{0, 41} {
		emit("main.Single", rec{"n": I(int64(n))}, rec{"~r0": I(int64(Single(n)))})
	}
	for _, n := range []int{4, 6} {
		r, err := Recovered(n)
		emit("main.Recovered", rec{"n": I(int64(n))},
			rec{"r": I(int64(r)), "err": ifaceWords(unsafe.Pointer(&err))})
	}
	for _, v := range []struct {
		s string
		n int
	}{{"abc", -2}, {"xyz", 0}, {"go", 17}} {
		o, k, err := Three(v.s, v.n)
		emit("main.Three", rec{"s": S(v.s), "n": I(int64(v.n))},
			rec{"out": S(o), "k": I(int64(k)), "err": ifaceWords(unsafe.Pointer(&err))})
	}
	for _, n := range []int{1, 2, 3} {
		a, b, c := Rets(n)
		emit("main.Rets", rec{"n": I(int64(n))},
			rec{"~r0": I(int64(a)), "~r1": I(int64(b)), "~r2": I(int64(c))})
	}
	acc := &Acc{}
	for _, n := range []int{5, -1, 7} {
		t, err := acc.Add(n)
		emit("main.(*Acc).Add", rec{"a": V{"w", uint64(uintptr(unsafe.Pointer(acc)))},
			"n": I(int64(n))}, rec{"total": I(int64(t)), "err": ifaceWords(unsafe.Pointer(&err))})
	}
}
