// fmtvalues prints how Go's fmt writes floats (32 and 64 bit) and durations, as
// ground truth for lumos's Go-style formatting of decoded values.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"
)

func main() {
	f64 := []float64{0, 1, -1, 0.5, 2.25, 1e-7, 1e-5, 1e-4, 123456, 1234567, 1e20, 1e21, 1.5e300,
		math.Pi, -0.000123, 100, 1.0 / 3, 5e-324, math.MaxFloat64}
	f32 := []float32{0.1, 1.5, 3.14159, 1e10, 16777216, 1e-8}
	durs := []time.Duration{0, 1, 999, 1500, time.Millisecond, 2500 * time.Microsecond,
		time.Second, 1500 * time.Millisecond, 90 * time.Second, 3723 * time.Second,
		-42 * time.Minute, 100 * time.Hour, math.MaxInt64}
	var out [][2]any
	for _, f := range f64 {
		out = append(out, [2]any{math.Float64bits(f), fmt.Sprint(f)})
	}
	var out32 [][2]any
	for _, f := range f32 {
		out32 = append(out32, [2]any{math.Float32bits(f), fmt.Sprint(f)})
	}
	var outd [][2]any
	for _, d := range durs {
		outd = append(outd, [2]any{int64(d), d.String()})
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"f64": out, "f32": out32, "dur": outd})
}
