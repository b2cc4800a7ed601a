// Command ocsload plays N OCS Inventory NG agents sending their PROLOG to
// a zone server at once, and reports how many were answered and how long
// it took: scripts/bench/ocs.sh runs it against a real zone server.
//
//	ocsload -url http://127.0.0.1:8080/ocsinventory -agents 500
package main

import (
	"bytes"
	"compress/zlib"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "the OCS endpoint, http://HOST:PORT/ocsinventory")
	agents := flag.Int("agents", 500, "agents sending their PROLOG at once")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "ocsload: -url is required")
		os.Exit(2)
	}
	bodies := make([][]byte, *agents)
	for i := range bodies {
		var b bytes.Buffer
		zw := zlib.NewWriter(&b)
		fmt.Fprintf(zw, `<?xml version="1.0" encoding="UTF-8"?><REQUEST><DEVICEID>load%d-2026-01-01-00-00-00</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`, i)
		zw.Close()
		bodies[i] = b.Bytes()
	}
	hc := &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *agents, MaxConnsPerHost: 0}}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *agents; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := hc.Post(*url, "application/x-compress", bytes.NewReader(bodies[i]))
			if err != nil {
				failed.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	fmt.Printf("agents %d answered %d failed %d in %.0f ms\n", *agents, ok.Load(), failed.Load(), float64(time.Since(start).Microseconds())/1000)
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
