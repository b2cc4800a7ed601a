package satellite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkServe200 has 200 clients fetch cached 1 MiB fragments from a
// satellite, and the same files from a handler doing what the zone
// server's content port does (http.ServeContent on the open file): the
// issue's target is the same throughput.
func BenchmarkServe200(b *testing.B) {
	o := newOrigin()
	var frags [][]byte
	for i := 0; i < 8; i++ {
		f := make([]byte, 1<<20)
		for j := range f {
			f[j] = byte(i + j)
		}
		frags = append(frags, f)
	}
	o.add("900", frags...)
	parent := httptest.NewServer(o)
	defer parent.Close()
	c := &Cache{Dir: b.TempDir(), Parents: []string{parent.URL + "/content"}, Manifests: o.source}
	for i := range frags {
		if _, err := c.Fragment(context.Background(), "900", fmt.Sprintf("900-%d", i+1)); err != nil {
			b.Fatal(err)
		}
	}
	m, _ := c.Manifest(context.Background(), "900")
	zoneLike := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, f := range m.Fragments {
			if r.URL.Path == "/content/900/"+f.Name {
				fh, err := os.Open(c.casPath(f.SHA256))
				if err != nil {
					http.NotFound(w, r)
					return
				}
				defer fh.Close()
				fi, _ := fh.Stat()
				http.ServeContent(w, r, "", fi.ModTime(), fh)
				return
			}
		}
		http.NotFound(w, r)
	})
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"satellite", c.Handler()}, {"zone-content-port", zoneLike}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
			var next atomic.Int64
			b.SetBytes(1 << 20)
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := 0; w < 200; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						resp, err := client.Get(fmt.Sprintf("%s/content/900/900-%d", srv.URL, n%8+1))
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
			}
			wg.Wait()
		})
	}
}
