// stdlogprog logs through the standard library's log package: a logger writing to
// io.Discard (its calls return early: lumos marks them filtered) and the standard
// logger writing to a file. It writes the ground truth of every call to -truth.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"strings"
)

var truth *json.Encoder

func here() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, line)
}

func note(caller, msg string, filtered bool) {
	truth.Encode(map[string]any{"level": "PRINT", "msg": msg, "filtered": filtered,
		"attrs": map[string]any{}, "caller": caller, "func": "main.calls"})
}

func calls(d *log.Logger, i int) {
	c := here(); d.Printf("discarded %d %s", i, "x")
	note(c, fmt.Sprintf("discarded %d %s", i, "x"), true)
	c = here(); log.Println("println", i, true)
	note(c, strings.TrimSuffix(fmt.Sprintln("println", i, true), "\n"), false)
	c = here(); log.Print("print", 1.5, i)
	note(c, fmt.Sprint("print", 1.5, i), false)
	c = here(); d.Output(1, "output msg")
	note(c, "output msg", true)
	c = here(); log.Printf("printf %q", "q")
	note(c, fmt.Sprintf("printf %q", "q"), false)
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
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	log.SetOutput(null)
	d := log.New(io.Discard, "", 0)
	for i := 0; i < *n; i++ {
		calls(d, i)
	}
}
