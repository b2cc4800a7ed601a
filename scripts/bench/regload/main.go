// Command regload registers N devices with a running zone server from C
// concurrent agents, each with its own agent home, through the agent engine
// that `zac register` runs (key generation, CSR, a new TLS connection, the
// registration, the agent's files and store), but without paying a process
// start per registration. It prints one JSON line with the rate.
//
//	go run ./scripts/bench/regload -n 1000 -c 50 -cacert CA.pem https://localhost:PORT
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"zonekit/internal/agent"
)

func main() {
	n := flag.Int("n", 1000, "registrations")
	c := flag.Int("c", 50, "concurrent agents")
	caPath := flag.String("cacert", "", "zone CA certificate")
	flag.Parse()
	if flag.NArg() != 1 || *caPath == "" {
		fmt.Fprintln(os.Stderr, "usage: regload [-n N] [-c C] -cacert CA.pem https://SERVER:PORT")
		os.Exit(2)
	}
	work, err := os.MkdirTemp("", "zonekit-regload-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(work)
	ca, err := agent.New(work).LoadCA(*caPath)
	if err != nil {
		fail(err)
	}
	var next, failed atomic.Int64
	lat := make([]time.Duration, *n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				a := agent.New(filepath.Join(work, fmt.Sprintf("a%d", i)))
				t := time.Now()
				_, err := a.Register(context.Background(), agent.RegisterOptions{
					ServerURL: flag.Arg(0), CA: ca, Hostname: fmt.Sprintf("load-%d", i)})
				lat[i] = time.Since(t)
				if err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "regload: first failure:", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ok := int64(*n) - failed.Load()
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"registrations": ok, "failed": failed.Load(), "concurrency": *c,
		"seconds": elapsed.Seconds(), "per_second": float64(ok) / elapsed.Seconds(),
		"p50_ms": ms(lat[len(lat)/2]), "p99_ms": ms(lat[len(lat)*99/100]),
	})
	if failed.Load() > 0 {
		os.Exit(1)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "regload:", err)
	os.Exit(1)
}
