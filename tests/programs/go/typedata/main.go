// typedata prints, for values of many types held in interfaces, the interface's type
// word and what reflect says of that type: lumos's type-data reader must agree with it
// (the test resolves each type word in the binary file, DWARF or not).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"time"
	"unsafe"
)

type Point struct {
	X, Y int
	Name string
}

type Celsius float64

type Shape interface{ Area() float64 }

func (p *Point) Area() float64 { return float64(p.X * p.Y) }

type entry struct {
	Addr  uint64 `json:"addr"`
	Name  string `json:"name"`
	Kind  uint   `json:"kind"`
	Size  uintptr `json:"size"`
	Elem  uint64 `json:"elem,omitempty"`
	Fields []string `json:"fields,omitempty"`
}

func typeWord(v any) uint64 { return uint64((*[2]uintptr)(unsafe.Pointer(&v))[0]) }

func main() {
	values := []any{
		"s", 1, int8(-1), int16(2), int32(3), int64(4), uint(5), uint8(6), uint16(7),
		uint32(8), uint64(9), uintptr(10), float32(1.5), 2.5, true, complex(1, 2),
		[]byte("b"), []string{"x"}, [3]int{}, map[string]int{}, make(chan int),
		func() {}, &Point{}, Point{}, Celsius(3), errors.New("e"),
		fmt.Errorf("w: %w", errors.New("e")), &fs.PathError{}, time.Now(),
		time.Second, struct{ A int }{}, unsafe.Pointer(nil), new(int), &[]int{},
		[]any{}, os.ErrNotExist, Shape(&Point{}),
	}
	var out []entry
	for _, v := range values {
		t := reflect.TypeOf(v)
		e := entry{Addr: typeWord(v), Name: t.String(), Kind: uint(t.Kind()), Size: t.Size()}
		if t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			e.Elem = typeWord(reflect.Zero(t.Elem()).Interface())
		}
		if t.Kind() == reflect.Struct {
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				e.Fields = append(e.Fields, fmt.Sprintf("%s:%d:%s", f.Name, f.Offset, f.Type))
			}
		}
		out = append(out, e)
	}
	mainPC := reflect.ValueOf(main).Pointer()
	json.NewEncoder(os.Stdout).Encode(map[string]any{"main": mainPC, "types": out})
}
