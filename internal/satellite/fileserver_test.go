package satellite

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The fast path answers what Handler answers: fragments pulled on a miss
// and then served from the cache, 502 when no parent has one, 404 for
// what is not a fragment of a known package.
func TestFileServerAnswersAsHandler(t *testing.T) {
	o := newOrigin()
	o.add("100", fill(5000, 'a'), fill(300, 'b'))
	parent := httptest.NewServer(o)
	c := &Cache{Dir: t.TempDir(), Parents: []string{parent.URL + "/content"}, Manifests: o.source}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.FileServer().Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + ln.Addr().String()
	for range 2 {
		if st, b := get(t, base+"/content/100/100-1"); st != 200 || !bytes.Equal(b, fill(5000, 'a')) {
			t.Fatalf("get: %d %d bytes", st, len(b))
		}
	}
	req, _ := http.NewRequest("GET", base+"/content/100/100-1", nil)
	req.Header.Set("Range", "bytes=4990-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || resp.ContentLength != 10 || resp.Header.Get("Content-Range") != "bytes 4990-4999/5000" {
		t.Errorf("range: %d %d %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Range"))
	}
	parent.Close()
	if st, _ := get(t, base+"/content/100/100-1"); st != 200 {
		t.Errorf("a cached fragment with the parent stopped: %d", st)
	}
	if st, _ := get(t, base+"/content/100/100-2"); st != http.StatusBadGateway {
		t.Errorf("an uncached fragment with the parent stopped: %d, want 502", st)
	}
	for _, p := range []string{"/content/100/100-9", "/content/100/info", "/content/abc/abc-1", "/content/100/../x", "/other"} {
		if st, _ := get(t, base+p); st != 404 {
			t.Errorf("%s: %d, want 404", p, st)
		}
	}
}
