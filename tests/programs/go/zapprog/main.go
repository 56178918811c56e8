// zapprog logs through go.uber.org/zap (Logger and SugaredLogger) configured at INFO
// and writes the ground truth of every call (filtered ones too) to -truth, as lumos's
// --json must print it. Built in GOPATH mode against Debian's zap sources.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

var truth *json.Encoder

func here() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, line)
}

func note(caller, level, msg string, filtered bool, kv ...any) {
	attrs := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		switch x := v.(type) {
		case error:
			v = x.Error()
		case time.Duration:
			v = x.String()
		}
		attrs[kv[i].(string)] = v
	}
	truth.Encode(map[string]any{"level": level, "msg": msg, "filtered": filtered,
		"attrs": attrs, "caller": caller, "func": "main.calls"})
}

var errBoom = errors.New("boom")

func calls(z *zap.Logger, s *zap.SugaredLogger, i int) {
	c := here(); z.Debug("zap debug", zap.Int("i", i))
	note(c, "DEBUG", "zap debug", true)
	c = here(); z.Info("zap info", zap.String("k", "v"))
	note(c, "INFO", "zap info", false)
	c = here(); z.Warn("zap warn")
	note(c, "WARN", "zap warn", false)
	c = here(); s.Debugw("sugar debugw", "k", "v", "n", i, "err", errBoom)
	note(c, "DEBUG", "sugar debugw", true, "k", "v", "n", i, "err", errBoom)
	c = here(); s.Infof("sugar infof %s %d", "x", i)
	note(c, "INFO", fmt.Sprintf("sugar infof %s %d", "x", i), false)
	c = here(); s.Debug("sugar", "debug", i)
	note(c, "DEBUG", fmt.Sprint("sugar", "debug", i), true)
	c = here(); s.Warnw("sugar warnw", "d", 1500*time.Millisecond)
	note(c, "WARN", "sugar warnw", false, "d", 1500*time.Millisecond)
}

func main() {
	truthPath := flag.String("truth", "", "write the ground truth of every call here")
	n := flag.Int("n", 1, "iterations (7 log calls each)")
	flag.Parse()
	w := io.Writer(io.Discard)
	if *truthPath != "" {
		f, err := os.Create(*truthPath)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		w = f
	}
	truth = json.NewEncoder(w)
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zap.InfoLevel)
	z := zap.New(core)
	s := z.Sugar()
	for i := 0; i < *n; i++ {
		calls(z, s, i)
	}
}
