// Command clusterlat measures store replication through the zone API:
// the latency of single commands (group-create) sent to a server, and how
// long writes stop when the leader dies. Latencies of several servers are
// measured interleaved (one command to each in turn), so that the load of
// a shared machine weighs on all of them alike; the ratio to the first
// server (the leader) is printed too.
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
	clients := make([]*client.Client, 0, flag.NArg())
	for _, url := range flag.Args() {
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
		clients = append(clients, c)
	}
	if *untilWrite {
		for i, c := range clients {
			untilWritten(ctx, c, flag.Arg(i), *killPID)
		}
		return
	}
	lat := make([][]time.Duration, len(clients))
	stamp := time.Now().UnixNano()
	// A first command on each opens its connection; it is not counted.
	for j, c := range clients {
		if err := c.Post(ctx, api.Prefix+"/groups", api.GroupCreate{Name: fmt.Sprintf("bench-%d-warm-%d", stamp, j)}, nil); err != nil {
			fail(err)
		}
	}
	for i := 0; i < *n; i++ {
		for j, c := range clients {
			t := time.Now()
			if err := c.Post(ctx, api.Prefix+"/groups", api.GroupCreate{Name: fmt.Sprintf("bench-%d-%d-%d", stamp, j, i)}, nil); err != nil {
				fail(err)
			}
			lat[j] = append(lat[j], time.Since(t))
		}
	}
	var p50, p99 []float64
	for j := range clients {
		l := lat[j]
		sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
		q := func(p float64) float64 { return float64(l[int(p*float64(len(l)-1))].Microseconds()) / 1000 }
		p50, p99 = append(p50, q(0.5)), append(p99, q(0.99))
		ratio := ""
		if j > 0 {
			ratio = fmt.Sprintf(" (%.2fx / %.2fx the first)", q(0.5)/p50[0], q(0.99)/p99[0])
		}
		fmt.Printf("%s: %d group-create: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms%s\n", flag.Arg(j), *n, q(0.5), q(0.9), q(0.99), q(1), ratio)
	}
}

// untilWritten SIGKILLs the process in killPID (if any), then writes
// every 20 ms through c until a write succeeds, and prints how long that took.
func untilWritten(ctx context.Context, c *client.Client, url, killPID string) {
	if killPID != "" {
		data, err := os.ReadFile(killPID)
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
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "clusterlat:", err)
	os.Exit(1)
}
