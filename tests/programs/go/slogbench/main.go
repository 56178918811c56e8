// slogbench makes -rate log/slog Debug calls a second (filtered: the logger is at INFO)
// for -d seconds, with three attributes each, and prints its own CPU time, so a
// benchmark can compare it untraced and traced in the same run.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"
)

func main() {
	rate := flag.Int("rate", 100000, "log calls a second")
	dur := flag.Float64("d", 5, "seconds")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	end := start.Add(time.Duration(*dur * float64(time.Second)))
	n := 0
	for now := start; now.Before(end); now = time.Now() {
		due := int(now.Sub(start).Seconds() * float64(*rate))
		for ; n < due; n++ {
			logger.Debug("cache lookup", "key", "user:42", "n", n, "hit", n%3 == 0)
		}
		time.Sleep(time.Millisecond)
	}
	wall := time.Since(start).Seconds()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	json.NewEncoder(os.Stdout).Encode(map[string]any{"calls": n, "wall_s": wall,
		"user_s": cpu(ru.Utime), "sys_s": cpu(ru.Stime)})
}
