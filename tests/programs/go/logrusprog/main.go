// logrusprog logs through github.com/sirupsen/logrus configured at INFO and writes the
// ground truth of every call (filtered ones too) to -truth, as lumos's --json must
// print it. Built in GOPATH mode against Debian's logrus sources.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/sirupsen/logrus"
)

var truth *json.Encoder

func here() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, line)
}

func note(caller, level, msg string, filtered bool) {
	truth.Encode(map[string]any{"level": level, "msg": msg, "filtered": filtered,
		"attrs": map[string]any{}, "caller": caller, "func": "main.calls"})
}

func calls(l *logrus.Logger, i int) {
	c := here(); l.Debug("lr debug ", i)
	note(c, "DEBUG", fmt.Sprint("lr debug ", i), true)
	c = here(); l.Infof("lr infof %d %s", i, "x")
	note(c, "INFO", fmt.Sprintf("lr infof %d %s", i, "x"), false)
	c = here(); l.WithField("k", "v").Warn("lr warn ", 2.5)
	note(c, "WARN", fmt.Sprint("lr warn ", 2.5), false)
	c = here(); l.Debugln("lr", "debugln", i)
	note(c, "DEBUG", strings.TrimSuffix(fmt.Sprintln("lr", "debugln", i), "\n"), true)
	c = here(); l.WithField("k", "v").Debugf("lr entry debugf %s %v", "y", true)
	note(c, "DEBUG", fmt.Sprintf("lr entry debugf %s %v", "y", true), true)
}

func main() {
	truthPath := flag.String("truth", "", "write the ground truth of every call here")
	n := flag.Int("n", 1, "iterations (5 log calls each)")
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
	l := logrus.New()
	l.Out = io.Discard
	l.SetLevel(logrus.InfoLevel)
	for i := 0; i < *n; i++ {
		calls(l, i)
	}
}
