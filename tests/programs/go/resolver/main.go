// resolver looks up each name given on its command line with Go's net package and
// prints what it did: "lookup NAME MS ADDRS" per lookup, MS the latency it measured
// itself around the call. Which resolver runs (pure Go or cgo's getaddrinfo) is up to
// GODEBUG=netdns=go|cgo. -host uses net.LookupHost, the default net.LookupIP; -dial
// resolves through net.Dial's path (ResolveTCPAddr). -wait prints "ready" and waits
// for a line on stdin first.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	mode := "ip"
	for _, name := range os.Args[1:] {
		if name == "-wait" {
			fmt.Println("ready")
			bufio.NewReader(os.Stdin).ReadString('\n')
			continue
		}
		if strings.HasPrefix(name, "-") {
			mode = name[1:]
			continue
		}
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
		fmt.Printf("lookup %s %.3f %s\n", name, ms, strings.Join(addrs, ","))
	}
}
