package fileserve

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkServe64K: keep-alive GETs of a 64 KiB file over loopback, the
// client reading raw bytes so that allocs/op are the server's.
func BenchmarkServe64K(b *testing.B) {
	dir := b.TempDir()
	data := content(64<<10, 3)
	if err := os.WriteFile(filepath.Join(dir, "a"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	s := &Server{
		Resolve: func(_ context.Context, path string) (Target, error) {
			return Target{Path: filepath.Join(dir, "a")}, nil
		},
		Fallback: http.NotFoundHandler(),
		Observe:  func(string, int, int64, time.Duration) {},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 128<<10)
	req := []byte("GET /f/a HTTP/1.1\r\nHost: x\r\n\r\n")
	body := make([]byte, len(data))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
		}
		if n != len(body) {
			b.Fatalf("Content-Length %d", n)
		}
		if _, err := io.ReadFull(br, body); err != nil {
			b.Fatal(err)
		}
	}
}
