// truth calls one function per kind of Go value lumos decodes, with varied arguments,
// and writes what it passed and got back to stderr, one JSON line per call:
//
//	TRUTH {"f":"main.Ints","args":{"a":["i",-1],...},"results":{"~r0":["i",5]}}
//
// lumos's tests trace it with `lumos trace --ret --json` and compare field by field.
// Values are tagged with how lumos shows them: ["i", n] an integer, ["b", x] a bool,
// ["f32", bits] / ["f64", bits] a float by its IEEE bits, ["s", hex, len] the bytes of
// a string or []byte, ["w", n] one machine word (pointer, map, chan, func), ["ws", [...]]
// several words (a slice's ptr/len/cap, an interface's two words, an array). Struct
// fields are flattened as "p.X", the way lumos names them; unnamed results are ~r0, ~r1.
//
// Rules: every traced function is //go:noinline; the truth line is written by main
// after the call, so leaf functions stay leaves. Nothing goes to stdout.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
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

type Named int

func (n Named) String() string { return "named" }

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

// Floats is a leaf: its arguments stay in X registers, which uprobes cannot read.
//
//go:noinline
func Floats(a float32, b float64) float64 { return float64(a) * b }

// FloatSpill keeps x across a call, so it is spilled to the stack and readable there.
//
//go:noinline
func FloatSpill(x float64, n int) float64 {
	s := strconv.Itoa(n)
	return x + float64(len(s))
}

//go:noinline
func Strings(s string, t string) (string, int) { return t, len(s) + len(t) }

var touched byte

// touch reads every byte of s, so that the page holding a literal is resident before
// it is traced (a probe reading a page that was never touched gets an error).
func touch(s string) {
	for i := 0; i < len(s); i++ {
		touched ^= s[i]
	}
}

//go:noinline
func Bytes(b []byte) []byte { return b }

//go:noinline
func Slices(a []int, b []string, c []Point) int { return len(a) + cap(b) + len(c) }

//go:noinline
func Pointers(p *Point, q *int, u unsafe.Pointer) *Point {
	if p != nil && q != nil {
		p.X += *q
	}
	return p
}

//go:noinline
func Maps(m map[string]int, c chan int, f func(int) int) int {
	n := len(m) + cap(c)
	if f != nil {
		n += f(1)
	}
	return n
}

//go:noinline
func Ifaces(e error, a interface{}, s fmt.Stringer) (interface{}, error) { return a, e }

//go:noinline
func Structs(p Point, s Small, b Big, e struct{}) Point {
	return Point{p.X + int(s.A) + len(b.Name), p.Y + b.Vals[3]}
}

//go:noinline
func BigRet(n int) Big {
	return Big{Name: strings.Repeat("x", n), Vals: [4]int{n, -n, 2 * n, 0}}
}

//go:noinline
func Arrays(a [1]int, b [3]int, c [0]int) int { return a[0] + b[2] + len(c) }

//go:noinline
func Many(a1 int, a2 int, a3 int, a4 int, a5 int, a6 int, a7 int, a8 int, a9 int, a10 int, a11 string) (int, string) {
	return a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10, a11
}

//go:noinline
func ManyRet(n int) (int, int, int, int, int, int, int, int, int, int, string) {
	return n, n + 1, n + 2, n + 3, n + 4, n + 5, n + 6, n + 7, n + 8, n + 9, "r" + strconv.Itoa(n)
}

var errBig = errors.New("big")

//go:noinline
func MultiRet(a int) (int, error) {
	if a > 10 {
		return 0, errBig
	}
	return a * 2, nil
}

//go:noinline
func Named2(n Named, c int) (out string, err error) {
	if c < 0 {
		return "", errBig
	}
	return strconv.Itoa(int(n) + c), nil
}

//go:noinline
func (p *Point) Move(dx int, dy int) {
	p.X += dx
	p.Y += dy
}

//go:noinline
func (p Point) Sum() int { return p.X + p.Y }

// Raw is traced without a signature in stripped builds: raw words from Go's traceback
// argument information.
//
//go:noinline
func Raw(a int, s string, p *Point) int { return a + len(s) + p.X }

// asmAdd is written in assembly (asm_amd64.s): ABI0, arguments on the stack.
func asmAdd(a int64, b int64, s string) int64

// asmFunc makes the compiler emit asmAdd's ABIInternal wrapper, which calls it.
var asmFunc = asmAdd

// -- ground truth ------------------------------------------------------------------

type V []interface{}
type rec map[string]V

func I(n int64) V          { return V{"i", n} }
func U(n uint64) V         { return V{"i", n} }
func B(b bool) V           { return V{"b", b} }
func F32(f float32) V      { return V{"f32", math.Float32bits(f)} }
func F64(f float64) V      { return V{"f64", math.Float64bits(f)} }
func S(s string) V         { return V{"s", hex.EncodeToString([]byte(s)), len(s)} }
func Bs(b []byte) V        { return V{"s", hex.EncodeToString(b), len(b)} }
func W(p unsafe.Pointer) V { return V{"w", uint64(uintptr(p))} }

// word: the one machine word of a map, chan or func value.
func word(p unsafe.Pointer) V { return V{"w", uint64(*(*uintptr)(p))} }

func words(p unsafe.Pointer, n int) V {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(*(*uintptr)(unsafe.Pointer(uintptr(p) + uintptr(8*i))))
	}
	return V{"ws", out}
}

func sliceWords(p unsafe.Pointer) V { return words(p, 3) }
func ifaceWords(p unsafe.Pointer) V { return words(p, 2) }

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

// -- the calls ----------------------------------------------------------------------

func main() {
	defer out.Flush()

	for _, v := range []struct {
		a int
		b int8
		c int16
		d int32
		e int64
	}{{0, 0, 0, 0, 0}, {-1, -128, -32768, math.MinInt32, math.MinInt64},
		{math.MaxInt64, 127, 32767, math.MaxInt32, math.MaxInt64}, {12345, -5, 300, -70000, 1 << 40}} {
		r := Ints(v.a, v.b, v.c, v.d, v.e)
		emit("main.Ints", rec{"a": I(int64(v.a)), "b": I(int64(v.b)), "c": I(int64(v.c)),
			"d": I(int64(v.d)), "e": I(v.e)}, rec{"~r0": I(r)})
	}

	for _, v := range []struct {
		a uint
		b uint8
		c uint16
		d uint32
		e uint64
		f uintptr
	}{{0, 0, 0, 0, 0, 0}, {math.MaxUint64, 255, 65535, math.MaxUint32, math.MaxUint64, ^uintptr(0)},
		{7, 128, 32768, 1 << 31, 1 << 63, 0xdeadbeef}} {
		r := Uints(v.a, v.b, v.c, v.d, v.e, v.f)
		emit("main.Uints", rec{"a": U(uint64(v.a)), "b": U(uint64(v.b)), "c": U(uint64(v.c)),
			"d": U(uint64(v.d)), "e": U(v.e), "f": U(uint64(v.f))}, rec{"~r0": U(uint64(r))})
	}

	for _, a := range []bool{false, true} {
		for _, b := range []bool{false, true} {
			emit("main.Bools", rec{"a": B(a), "b": B(b)}, rec{"~r0": B(Bools(a, b))})
		}
	}

	for _, v := range []struct {
		a float32
		b float64
	}{{1.5, 2.5}, {-0.1, 1e300}} {
		r := Floats(v.a, v.b)
		emit("main.Floats", rec{"a": F32(v.a), "b": F64(v.b)}, rec{"~r0": F64(r)})
	}
	for _, v := range []struct {
		x float64
		n int
	}{{2.5, 7}, {-1e-9, -12}, {math.Pi, 0}} {
		r := FloatSpill(v.x, v.n)
		emit("main.FloatSpill", rec{"x": F64(v.x), "n": I(int64(v.n))}, rec{"~r0": F64(r)})
	}

	long := strings.Repeat("0123456789", 10)
	strs := []string{"", "hello", "héllo wörld ✓ 日本語 🐹", long, "\xff\xfe\x00abc",
		strings.Repeat("a", 32), strings.Repeat("b", 33), strings.Repeat("c", 31) + "é",
		"with \"quotes\" and \\ and \n newline"}
	for _, s := range strs {
		touch(s) // its bytes resident: BPF cannot fault a page in (see the ctruth test)
	}
	for i, s := range strs {
		t := strs[(i+1)%len(strs)]
		r0, r1 := Strings(s, t)
		emit("main.Strings", rec{"s": S(s), "t": S(t)}, rec{"~r0": S(r0), "~r1": I(int64(r1))})
	}

	for _, b := range [][]byte{nil, {}, []byte("abc\x00def"), make([]byte, 3, 10), []byte(long)} {
		r := Bytes(b)
		emit("main.Bytes", rec{"b": Bs(b)}, rec{"~r0": Bs(r)})
	}

	{
		type sl struct {
			a []int
			b []string
			c []Point
		}
		for _, v := range []sl{{nil, nil, nil}, {[]int{}, make([]string, 0, 5), []Point{{1, 2}}},
			{[]int{1, 2, 3}, []string{"x"}, make([]Point, 7, 9)}} {
			r := Slices(v.a, v.b, v.c)
			emit("main.Slices", rec{"a": sliceWords(unsafe.Pointer(&v.a)),
				"b": sliceWords(unsafe.Pointer(&v.b)), "c": sliceWords(unsafe.Pointer(&v.c))},
				rec{"~r0": I(int64(r))})
		}
	}

	x := 5
	pt := &Point{1, 2}
	for _, v := range []struct {
		p *Point
		q *int
		u unsafe.Pointer
	}{{nil, nil, nil}, {pt, &x, unsafe.Pointer(&x)}, {pt, nil, unsafe.Pointer(pt)}} {
		r := Pointers(v.p, v.q, v.u)
		emit("main.Pointers", rec{"p": W(unsafe.Pointer(v.p)), "q": W(unsafe.Pointer(v.q)),
			"u": W(v.u)}, rec{"~r0": W(unsafe.Pointer(r))})
	}

	{
		type mv struct {
			m map[string]int
			c chan int
			f func(int) int
		}
		for _, v := range []mv{{nil, nil, nil},
			{map[string]int{"a": 1}, make(chan int, 2), func(i int) int { return i + x }},
			{map[string]int{}, make(chan int), nil}} {
			r := Maps(v.m, v.c, v.f)
			emit("main.Maps", rec{"m": word(unsafe.Pointer(&v.m)), "c": word(unsafe.Pointer(&v.c)),
				"f": word(unsafe.Pointer(&v.f))}, rec{"~r0": I(int64(r))})
		}
	}

	{
		var nilPoint *Point
		type iv struct {
			e error
			a interface{}
			s fmt.Stringer
		}
		for _, v := range []iv{{nil, nil, nil}, {errBig, 42, Named(7)},
			{nil, "str", nil}, {nil, nilPoint, Named(-1)}} {
			r0, r1 := Ifaces(v.e, v.a, v.s)
			emit("main.Ifaces", rec{"e": ifaceWords(unsafe.Pointer(&v.e)),
				"a": ifaceWords(unsafe.Pointer(&v.a)), "s": ifaceWords(unsafe.Pointer(&v.s))},
				rec{"~r0": ifaceWords(unsafe.Pointer(&r0)), "~r1": ifaceWords(unsafe.Pointer(&r1))})
		}
	}

	for i, v := range []struct {
		p Point
		s Small
		b Big
	}{{Point{1, 2}, Small{-3, 65535, 0.5}, Big{"big", [4]int{1, 2, 3, 4}, pt}},
		{Point{-7, 1 << 40}, Small{127, 0, -2}, Big{"", [4]int{-1, 0, -2, 9}, nil}}} {
		r := Structs(v.p, v.s, v.b, struct{}{})
		emit("main.Structs", rec{"p.X": I(int64(v.p.X)), "p.Y": I(int64(v.p.Y)),
			"s.A": I(int64(v.s.A)), "s.B": U(uint64(v.s.B)), "s.C": F64(v.s.C),
			"b.Name": S(v.b.Name), "b.Vals": words(unsafe.Pointer(&v.b.Vals), 4),
			"b.P": W(unsafe.Pointer(v.b.P)), "e": V{"ws", []uint64{}}},
			rec{"~r0.X": I(int64(r.X)), "~r0.Y": I(int64(r.Y))})
		_ = i
	}

	for _, n := range []int{0, 3, 40} {
		r := BigRet(n)
		emit("main.BigRet", rec{"n": I(int64(n))}, rec{"~r0.Name": S(r.Name),
			"~r0.Vals": words(unsafe.Pointer(&r.Vals), 4), "~r0.P": W(unsafe.Pointer(r.P))})
	}

	for _, v := range []struct {
		a [1]int
		b [3]int
	}{{[1]int{1}, [3]int{1, 2, 3}}, {[1]int{-9}, [3]int{-1, math.MaxInt64, 0}}} {
		r := Arrays(v.a, v.b, [0]int{})
		emit("main.Arrays", rec{"a": words(unsafe.Pointer(&v.a), 1),
			"b": words(unsafe.Pointer(&v.b), 3), "c": V{"ws", []uint64{}}}, rec{"~r0": I(int64(r))})
	}

	for _, s := range []string{"eleven", "", long} {
		a := []int{1, -2, 3, -4, 5, -6, 7, -8, 9, 1 << 50}
		r0, r1 := Many(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], s)
		args := rec{"a11": S(s)}
		for i, n := range a {
			args["a"+strconv.Itoa(i+1)] = I(int64(n))
		}
		emit("main.Many", args, rec{"~r0": I(int64(r0)), "~r1": S(r1)})
	}

	for _, n := range []int{0, -100} {
		r := make([]int, 10)
		var s string
		r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], s = ManyRet(n)
		res := rec{"~r10": S(s)}
		for i, v := range r {
			res["~r"+strconv.Itoa(i)] = I(int64(v))
		}
		emit("main.ManyRet", rec{"n": I(int64(n))}, res)
	}

	for _, a := range []int{3, 11, -4} {
		r0, r1 := MultiRet(a)
		emit("main.MultiRet", rec{"a": I(int64(a))},
			rec{"~r0": I(int64(r0)), "~r1": ifaceWords(unsafe.Pointer(&r1))})
	}

	for _, v := range [][2]int{{3, 4}, {0, -1}} {
		o, err := Named2(Named(v[0]), v[1])
		emit("main.Named2", rec{"n": I(int64(v[0])), "c": I(int64(v[1]))},
			rec{"out": S(o), "err": ifaceWords(unsafe.Pointer(&err))})
	}

	for _, d := range [][2]int{{1, 2}, {-5, 1 << 33}} {
		pt.Move(d[0], d[1])
		emit("main.(*Point).Move", rec{"p": W(unsafe.Pointer(pt)), "dx": I(int64(d[0])),
			"dy": I(int64(d[1]))}, rec{})
		p := *pt
		emit("main.Point.Sum", rec{"p.X": I(int64(p.X)), "p.Y": I(int64(p.Y))},
			rec{"~r0": I(int64(p.Sum()))})
	}

	for _, a := range []int{-2, 1 << 42} {
		s := strings.Repeat("r", a&7+1)
		r := Raw(a, s, pt)
		emit("main.Raw", rec{"a": I(int64(a)), "s": S(s), "p": W(unsafe.Pointer(pt))},
			rec{"~r0": I(int64(r))})
	}

	{ // copy() of a known size calls runtime.memmove, an <ABIInternal> assembly body
		src, dst := make([]byte, 12345), make([]byte, 12345)
		n := copy(dst, src)
		emit("runtime.memmove", rec{"to": W(unsafe.Pointer(&dst[0])),
			"from": W(unsafe.Pointer(&src[0])), "n": I(int64(n))}, rec{})
	}

	r := asmAdd(1, 2, "abc")
	emit("asm direct", rec{"a": I(1), "b": I(2), "s": S("abc")}, rec{"~r0": I(r)})
	r = asmFunc(3, -4, "xy")
	emit("asm via func value", rec{"a": I(3), "b": I(-4), "s": S("xy")}, rec{"~r0": I(r)})
}
