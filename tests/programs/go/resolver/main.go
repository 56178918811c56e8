// resolver looks up each name given on its command line with Go's net package and
// prints what it did: "lookup NAME MS ADDRS" per lookup, MS the latency it measured
// itself around the call. Which resolver runs (pure Go or cgo's getaddrinfo) is up to
// GODEBUG=netdns=go|cgo. -host uses net.LookupHost, the default net.LookupIP; -dial
// resolves through net.Dial's path (ResolveTCPAddr). -wait prints "ready" and waits
// for a line on stdin first; -r N looks each later name up N times and prints
// "lookups NAME N MS" (the total).
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	mode := "ip"
	repeat := 1
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		name := args[i]
		if name == "-r" && i+1 < len(args) {
			repeat, _ = strconv.Atoi(args[i+1])
			i++
			continue
		}
		if name == "-wait" {
			fmt.Println("ready")
			bufio.NewReader(os.Stdin).ReadString('\n')
			continue
		}
		if strings.HasPrefix(name, "-") {
			mode = name[1:]
			continue
		}
		if repeat > 1 {
			total := 0.0
			var addrs []string
			for k := 0; k < repeat; k++ {
				var ms float64
				addrs, ms = lookup(mode, name)
				total += ms
			}
			fmt.Printf("lookups %s %d %.3f %s\n", name, repeat, total, strings.Join(addrs, ","))
			continue
		}
		addrs, ms := lookup(mode, name)
		fmt.Printf("lookup %s %.3f %s\n", name, ms, strings.Join(addrs, ","))
	}
}

// lookup resolves name one way and says how long that took, in milliseconds.
func lookup(mode, name string) ([]string, float64) {
	start := time.Now()
	var addrs []string
	var err error
	switch mode {
	case "host":
		addrs, err = net.LookupHost(name)
	case "dial":
		var a *net.TCPAddr
		a, err = net.ResolveTCPAddr("tcp", name+":80")
		if err == nil {
			addrs = []string{a.IP.String()}
		}
	default:
		var ips []net.IP
		ips, err = net.LookupIP(name)
		for _, ip := range ips {
			addrs = append(addrs, ip.String())
		}
	}
	ms := float64(time.Since(start).Nanoseconds()) / 1e6
	if err != nil {
		addrs = []string{"error"}
	}
	return addrs, ms
}
