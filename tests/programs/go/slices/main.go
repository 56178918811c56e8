// slices: calls functions taking slices of strings, numbers, bools and bytes, and
// returning errors of several dynamic types, and writes after each call what it passed
// and got back, as Go itself prints it ("TRUTH {json}" lines on stderr):
//
//	full: fmt's %#v of the whole value ([]string{"a", "b"}, []int(nil)); for []byte
//	      []byte(%q); for an error %T("Error()") or nil
//	text: the same, with lumos's limits applied by this program: the first -max
//	      elements, then ...(+N) for the rest; each string's first -strlen bytes
//	      strconv.Quote'd, then ...(+N) for the bytes cut
//
// Also floats as fmt's %v prints them, and an error and an `any` whose bytes lie on pages
// this process mapped but never touched at the time of the call: the kernel cannot read
// them at the probe, so lumos must print them as unreadable (?), never as "" or zeros.
//
// Usage: slices -strlen N -max N
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

var strlen, maxElems int

type MyErr struct{ Code int }

func (e *MyErr) Error() string { return "my error " + strconv.Itoa(e.Code) }

type Labels []string

type T struct{ A int }

//go:noinline
func Ptrs(p []*T) int { return len(p) }

// Real keeps x and y across a call: spilled to the stack, where DWARF builds read them
//
//go:noinline
func Real(x float64, y float32, n int) float64 {
	s := strconv.Itoa(n)
	return x + float64(y) + float64(len(s))
}

//go:noinline
func Cold(e error, a interface{}) int {
	if e == nil || a == nil {
		return 0
	}
	return 1
}

// coldString: n bytes of a file mapped but never read: no page table entry yet
func coldString(n int) string {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	b, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		panic(err)
	}
	var s string // unsafe.String(&b[0], n) without Go 1.20: the address only, nothing read
	h := (*reflect.StringHeader)(unsafe.Pointer(&s))
	h.Data, h.Len = uintptr(unsafe.Pointer(&b[0])), n
	return s
}

//go:noinline
func Names(names []string) int { return len(names) }

//go:noinline
func Named(l Labels) int { return len(l) }

//go:noinline
func Numbers(a []int, b []int32, c []uint16, d []int8, e []uint64) int {
	return len(a) + len(b) + len(c) + len(d) + len(e)
}

//go:noinline
func Flags(b []bool) int { return len(b) }

//go:noinline
func Reals(f []float64, g []float32) int { return len(f) + len(g) }

//go:noinline
func Raw(b []byte) int { return len(b) }

// Spill: t is past the nine integer registers, on the stack
//
//go:noinline
func Spill(a, b, c, d int, s []string, t []int) int { return a + b + c + d + len(s) + len(t) }

//go:noinline
func Split(s string) []string { return strings.Split(s, ",") }

//go:noinline
func Fail(n int) error {
	switch n {
	case 1:
		return errors.New("boom")
	case 2:
		_, err := os.Open("/no/such/lumos")
		return err
	case 3:
		return fmt.Errorf("wrap: %w", errors.New("inner"))
	case 4:
		return &MyErr{7}
	case 5:
		return syscall.ENOENT
	case 6:
		return errors.New(strings.Repeat("x", 40))
	case 7:
		return os.NewSyscallError("read", syscall.ECONNRESET)
	case 8:
		return os.NewSyscallError("write", errors.New("not an errno"))
	}
	return nil
}

// text is %#v of a slice with lumos's limits; full is %#v.
func text(v interface{}) (string, string) {
	rv := reflect.ValueOf(v)
	if b, ok := v.([]byte); ok {
		if len(b) > strlen {
			return fmt.Sprintf("[]byte(%q)...(+%d)", b[:strlen], len(b)-strlen), ""
		}
		return fmt.Sprintf("[]byte(%q)", b), fmt.Sprintf("[]byte(%q)", b)
	}
	full := fmt.Sprintf("%#v", v)
	if rv.IsNil() {
		return full, full
	}
	var items []string
	for i := 0; i < rv.Len() && i < maxElems; i++ {
		e := rv.Index(i)
		if e.Kind() == reflect.String && e.Len() > strlen {
			s := e.String()
			items = append(items, strconv.Quote(s[:strlen])+fmt.Sprintf("...(+%d)", len(s)-strlen))
			continue
		}
		if e.Kind() == reflect.Ptr { // at depth > 0 %#v prints the type and the address
			if e.IsNil() {
				items = append(items, fmt.Sprintf("(%s)(nil)", e.Type()))
			} else {
				items = append(items, fmt.Sprintf("(%s)(%p)", e.Type(), e.Interface()))
			}
			continue
		}
		items = append(items, fmt.Sprintf("%#v", e.Interface()))
	}
	if rv.Len() > maxElems {
		items = append(items, fmt.Sprintf("...(+%d)", rv.Len()-maxElems))
	}
	return rv.Type().String() + "{" + strings.Join(items, ", ") + "}", full
}

// errText: %T("Error()") for the types whose message is in their fields; lumos cuts each string field of an error at -strlen (and
// marks it): an *errors.errorString's message is its one field
func errText(err error) string {
	if err == nil {
		return "nil"
	}
	if _, ok := err.(*MyErr); ok { // its Error() is code lumos cannot run: type, address
		return fmt.Sprintf("%T(%p)", err, err)
	}
	// the inner error of these is known only when it is a syscall.Errno
	if se, ok := err.(*os.SyscallError); ok {
		if _, errno := se.Err.(syscall.Errno); !errno {
			return fmt.Sprintf("%T(%p)", err, err)
		}
	}
	msg := err.Error()
	if fmt.Sprintf("%T", err) == "*errors.errorString" && len(msg) > strlen {
		msg = msg[:strlen] + fmt.Sprintf("...(+%d)", len(msg)-strlen)
	}
	return fmt.Sprintf("%T(%q)", err, msg)
}

type rec map[string]map[string]string

func val(v interface{}) map[string]string {
	t, f := text(v)
	return map[string]string{"text": t, "full": f}
}

func emit(f string, args, results rec) {
	b, err := json.Marshal(map[string]interface{}{"f": f, "args": args, "results": results})
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(os.Stderr, "TRUTH %s\n", b)
}

// populate maps this binary's own pages in (MADV_POPULATE_READ, Linux 5.14): its string
// literals are then readable by a probe whatever the process touched before; only the
// pages coldString maps later stay cold
func populate() {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		panic(err)
	}
	exe, _ := os.Readlink("/proc/self/exe")
	for _, ln := range strings.Split(string(maps), "\n") {
		f := strings.Fields(ln)
		if len(f) < 6 || f[5] != exe {
			continue
		}
		var lo, hi uintptr
		fmt.Sscanf(f[0], "%x-%x", &lo, &hi)
		const madvPopulateRead = 22
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvPopulateRead); e != 0 {
			panic(e)
		}
	}
}

func main() {
	populate()
	flag.IntVar(&strlen, "strlen", 16, "bytes of a string lumos shows")
	flag.IntVar(&maxElems, "max", 8, "elements of a slice lumos shows")
	flag.Parse()

	abc := make([]string, 3, 4)
	copy(abc, []string{"a", "b", "c"})
	many := make([]string, 12)
	for i := range many {
		many[i] = "s" + strconv.Itoa(i)
	}
	for _, v := range [][]string{abc, nil, {}, many,
		{"say \"hi\"\n", "héllo wörld, this is longer than strlen", "", "\xff\x00tab\t"}} {
		Names(v)
		emit("main.Names", rec{"names": val(v)}, rec{})
	}
	l := Labels{"x", "y"}
	Named(l)
	emit("main.Named", rec{"l": val(l)}, rec{})

	type nums struct {
		a []int
		b []int32
		c []uint16
		d []int8
		e []uint64
	}
	seq := make([]int, 20)
	for i := range seq {
		seq[i] = i * i
	}
	for _, v := range []nums{
		{[]int{1, -2, 3}, []int32{'h', 'i'}, []uint16{65535}, []int8{-128, 127}, []uint64{1<<63 + 5, 0}},
		{nil, []int32{}, nil, []int8{}, nil},
		{seq, nil, []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil, []uint64{math.MaxUint64}},
	} {
		Numbers(v.a, v.b, v.c, v.d, v.e)
		emit("main.Numbers", rec{"a": val(v.a), "b": val(v.b), "c": val(v.c), "d": val(v.d),
			"e": val(v.e)}, rec{})
	}
	for _, v := range [][]bool{{true, false, true}, nil} {
		Flags(v)
		emit("main.Flags", rec{"b": val(v)}, rec{})
	}
	f := []float64{1, 2.5, -0.1, 1e21, 1e-7, 123456789, math.Inf(1), math.Inf(-1), math.NaN()}
	g := []float32{0.1, 3.4028235e38, -1.5}
	Reals(f, g)
	emit("main.Reals", rec{"f": val(f), "g": val(g)}, rec{})
	for _, v := range [][]byte{[]byte("hi\x00"), nil, []byte(strings.Repeat("z", 40))} {
		Raw(v)
		emit("main.Raw", rec{"b": val(v)}, rec{})
	}
	s, t := []string{"p", "q"}, []int{7, 8, 9}
	Spill(1, 2, 3, 4, s, t)
	one := func(n int) map[string]string {
		return map[string]string{"text": strconv.Itoa(n), "full": strconv.Itoa(n)}
	}
	emit("main.Spill", rec{"a": one(1), "b": one(2), "c": one(3), "d": one(4), "s": val(s),
		"t": val(t)}, rec{})
	for _, in := range []string{"a,b", "one,two,three,four,five,six,seven,eight,nine"} {
		r := Split(in)
		emit("main.Split", rec{}, rec{"~r0": val(r)})
	}
	for n := 0; n <= 8; n++ {
		err := Fail(n)
		e := errText(err)
		emit("main.Fail", rec{}, rec{"~r0": {"text": e, "full": e}})
	}
	ps := []*T{{1}, nil, {2}}
	for _, v := range [][]*T{ps, nil, {}} {
		Ptrs(v)
		emit("main.Ptrs", rec{"p": val(v)}, rec{})
	}
	for _, v := range []struct {
		x float64
		y float32
	}{{1, 0.1}, {1e-7, 3.4028235e38}, {-2.5, 1e21}, {123456789, -0}, {math.Inf(1), float32(math.NaN())}} {
		Real(v.x, v.y, 7)
		x, y := fmt.Sprint(v.x), fmt.Sprint(v.y) // fmt's %v: 'g' shortest, float32 at 32 bits
		emit("main.Real", rec{"x": {"text": x, "full": x}, "y": {"text": y, "full": y},
			"n": one(7)}, rec{})
	}
	// both values' bytes on pages not yet touched: the probe cannot read them
	e, a := errors.New(coldString(5)), interface{}(coldString(3))
	Cold(e, a)
	unread := map[string]string{"text": "*errors.errorString(?)", "full": "*errors.errorString(?)"}
	emit("main.Cold", rec{"e": unread, "a": {"text": "string(?)", "full": "string(?)"}}, rec{})
	fmt.Fprintf(os.Stderr, "cold bytes after the call: %q %q\n", e.Error(), a)
}
