// Command clusterlat measures store replication through the zone API:
// the latency of single commands (group-create) sent to a server, and how
// long writes stop when the leader dies.
//
//	go run ./scripts/bench/clusterlat -cacert CA -n 500 https://127.0.0.1:P https://127.0.0.2:P
//	go run ./scripts/bench/clusterlat -cacert CA -until-write https://127.0.0.2:P
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/pki"
)

func main() {
	caFile := flag.String("cacert", "", "zone CA certificate")
	n := flag.Int("n", 500, "commands per server")
	user := flag.String("user", "Administrator", "administrator")
	pass := flag.String("password", os.Getenv("ZMAN_PASSWORD"), "password (or $ZMAN_PASSWORD)")
	untilWrite := flag.Bool("until-write", false, "write every 20 ms until one succeeds; print how long it took")
	killPID := flag.String("kill", "", "with -until-write: SIGKILL the process in this pid file first (the leader), once logged in")
	flag.Parse()
	ca, err := pki.ReadCertFile(*caFile)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	for _, url := range flag.Args() {
		// A stored credential, as zman uses: Basic auth would measure
		// password hashing, not replication.
		basic, err := client.New(client.Options{BaseURL: url, CA: ca, Auth: client.Basic(*user, *pass)})
		if err != nil {
			fail(err)
		}
		var tok api.TokenResponse
		if err := basic.Post(ctx, api.Prefix+"/sessions", nil, &tok); err != nil {
			fail(err)
		}
		c, err := client.New(client.Options{BaseURL: url, CA: ca, Auth: client.Bearer(tok.Token), Timeout: 30 * time.Second})
		if err != nil {
			fail(err)
		}
		if *untilWrite {
			if *killPID != "" {
				data, err := os.ReadFile(*killPID)
				if err != nil {
					fail(err)
				}
				pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
				if err != nil {
					fail(err)
				}
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					fail(err)
				}
			}
			start := time.Now()
			for i := 0; ; i++ {
				err := c.Post(ctx, api.Prefix+"/groups", api.GroupCreate{Name: fmt.Sprintf("failover-%d-%d", start.UnixNano(), i)}, nil)
				if err == nil {
					fmt.Printf("%s: first write accepted after %.2f s\n", url, time.Since(start).Seconds())
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			continue
		}
		lat := make([]time.Duration, 0, *n)
		stamp := time.Now().UnixNano()
		for i := 0; i < *n; i++ {
			t := time.Now()
			if err := c.Post(ctx, api.Prefix+"/groups", api.GroupCreate{Name: fmt.Sprintf("bench-%d-%d", stamp, i)}, nil); err != nil {
				fail(err)
			}
			lat = append(lat, time.Since(t))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
		fmt.Printf("%s: %d group-create: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", url, *n, q(0.5), q(0.99), q(1))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "clusterlat:", err)
	os.Exit(1)
}
