// goserver is the demo web server from the article "BPF and Go: Modern forms of
// introspection in Linux": a handler reads name and year from the URL, checks a site
// with a goroutine and a channel, and builds the answer in prepareAnswer.
//
// Every prepareAnswer call is logged to stderr as ground truth for lumos's tests:
//
//	prepareAnswer name="GopherConRussia2020" year=2020 status=200
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"
)

var siteURL string

// checkSite asks our own /ping from a goroutine and waits for the status on a channel.
func checkSite() int {
	ch := make(chan int)
	go func() {
		client := http.Client{Timeout: 2 * time.Second}
		resp, err := client.Get(siteURL)
		if err != nil {
			ch <- 0
			return
		}
		resp.Body.Close()
		ch <- resp.StatusCode
	}()
	return <-ch
}

//go:noinline
func prepareAnswer(name string, year int, status int) string {
	fmt.Fprintf(os.Stderr, "prepareAnswer name=%s year=%d status=%d\n",
		strconv.Quote(name), year, status)
	return fmt.Sprintf("Hello, %s! Welcome to %d. Site status: %d", name, year, status)
}

func handler(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	year, _ := strconv.Atoi(r.URL.Query().Get("year"))
	status := checkSite()
	fmt.Fprintln(w, prepareAnswer(name, year, status))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	siteURL = "http://" + *addr + "/ping"
	http.HandleFunc("/", handler)
	http.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	log.Printf("goserver listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
