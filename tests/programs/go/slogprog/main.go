// slogprog logs through log/slog at every level with attributes of every type lumos
// decodes, configured at INFO (so its Debug calls are filtered), and writes its own
// ground truth of every call, filtered or not, to -truth: one JSON object per call with
// the values as lumos must print them in --json, and the file:line of the call.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

type Point struct{ X, Y int }

var (
	truth   *json.Encoder
	logger  *slog.Logger
	errBoom = errors.New("boom")
	errWrap = fmt.Errorf("wrap: %w", errBoom)
	errPath = &fs.PathError{Op: "open", Path: "/nonexistent", Err: syscall.ENOENT}
	t0      = time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC)
	pt      = &Point{1, 2}
)

func here() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, line)
}

// value is what lumos's --json prints for v.
func value(v any) any {
	switch x := v.(type) {
	case error:
		return x.Error()
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case time.Duration:
		return x.String()
	case []byte:
		return string(x)
	case *Point:
		return fmt.Sprintf("%T(%p)", x, x)
	case float32:
		return float64(x)
	case slog.Value:
		return value(x.Any())
	}
	return v
}

func note(caller string, level slog.Level, msg string, args ...any) {
	attrs := map[string]any{}
	for i := 0; i < len(args); i++ {
		switch a := args[i].(type) {
		case slog.Attr:
			if a.Value.Kind() == slog.KindAny {
				attrs[a.Key] = fmt.Sprintf("%T", a.Value.Any())
			} else {
				attrs[a.Key] = value(a.Value)
			}
		case string:
			attrs[a] = value(args[i+1])
			i++
		}
	}
	truth.Encode(map[string]any{"level": level.String(), "msg": msg, "attrs": attrs,
		"filtered": level < slog.LevelInfo, "caller": caller, "func": "main.calls"})
}

func calls(i int) {
	ctx := context.Background()
	c := here(); logger.Debug("debug ints", "i", i, "i8", int8(-8), "i16", int16(-1600), "i32", int32(-320000), "i64", int64(-64), "u", uint(7), "u8", uint8(200), "u16", uint16(65000))
	note(c, slog.LevelDebug, "debug ints", "i", i, "i8", int8(-8), "i16", int16(-1600), "i32", int32(-320000), "i64", int64(-64), "u", uint(7), "u8", uint8(200), "u16", uint16(65000))
	c = here(); logger.Info("info more", "u32", uint32(4000000000), "u64", uint64(1<<63), "f32", float32(1.5), "f64", 2.25, "small", 1e-7, "b", true, "s", "hello world", "bytes", []byte("raw"))
	note(c, slog.LevelInfo, "info more", "u32", uint32(4000000000), "u64", uint64(1<<63), "f32", float32(1.5), "f64", 2.25, "small", 1e-7, "b", true, "s", "hello world", "bytes", []byte("raw"))
	c = here(); logger.Warn("warn errors", "err", errBoom, "wrapped", errWrap, "path", errPath, "t", t0, "d", 1500*time.Millisecond, "p", pt, "i", i)
	note(c, slog.LevelWarn, "warn errors", "err", errBoom, "wrapped", errWrap, "path", errPath, "t", t0, "d", 1500*time.Millisecond, "p", pt, "i", i)
	c = here(); logger.Debug("debug attrs", slog.Int("attr_int", 7), slog.String("attr_s", "v w"), "i", i)
	note(c, slog.LevelDebug, "debug attrs", slog.Int("attr_int", 7), slog.String("attr_s", "v w"), "i", i)
	c = here(); slog.Debug("package level", "k", "v", "i", i)
	note(c, slog.LevelDebug, "package level", "k", "v", "i", i)
	c = here(); logger.LogAttrs(ctx, slog.LevelDebug, "logattrs", slog.Int("n", i), slog.String("s", "x"), slog.Float64("f", -0.5), slog.Bool("b", false), slog.Duration("d", 90*time.Second), slog.Time("t", t0), slog.Uint64("u", 1<<40), slog.Any("e", errBoom))
	note(c, slog.LevelDebug, "logattrs", slog.Int("n", i), slog.String("s", "x"), slog.Float64("f", -0.5), slog.Bool("b", false), slog.Duration("d", 90*time.Second), slog.Time("t", t0), slog.Uint64("u", 1<<40), slog.Any("e", errBoom))
	c = here(); logger.Error("error msg", "i", i)
	note(c, slog.LevelError, "error msg", "i", i)
}

const callsPerIteration = 7

// coldString: n bytes of a file mapped but never read: no page table entry yet, so a
// probe cannot read them (they are there: the program reads them after the call)
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
	return unsafe.String(&b[0], n) // the address only: nothing is read
}

// cold logs values whose bytes the kernel cannot read at the call: lumos must show them
// as unreadable (null in --json, ? in text), never as "" or zeros
func cold() {
	s, e, a := coldString(4), errors.New(coldString(3)), slog.String("attr_s", coldString(2))
	c := here(); logger.Debug("cold", "s", s, "err", e, a, "i", 5)
	truth.Encode(map[string]any{"level": "DEBUG", "msg": "cold", "filtered": true,
		"attrs": map[string]any{"s": nil, "err": nil, "attr_s": nil, "i": 5},
		"caller": c, "func": "main.cold"})
	fmt.Fprintf(os.Stderr, "cold bytes after the call: %q %q %q\n", s, e.Error(), a.Value.String())
}

func main() {
	truthPath := flag.String("truth", "", "write the ground truth of every call here")
	n := flag.Int("n", 1, "iterations (each makes 7 log calls)")
	rate := flag.Int("rate", 0, "log calls a second (0: as fast as possible)")
	withCold := flag.Bool("cold", false, "end with a call whose values lie on untouched pages")
	flag.Parse()
	w := io.Discard
	if *truthPath != "" {
		f, err := os.Create(*truthPath)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		w = f
	}
	truth = json.NewEncoder(w)
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	logger = slog.New(slog.NewTextHandler(io.Discard, opts))
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, opts)))
	start := time.Now()
	for i := 0; i < *n; i++ {
		calls(i)
		if *rate > 0 {
			due := start.Add(time.Duration(int64(i+1) * callsPerIteration * int64(time.Second) / int64(*rate)))
			if d := time.Until(due); d > time.Millisecond {
				time.Sleep(d)
			}
		}
	}
	if *withCold {
		cold()
	}
}
