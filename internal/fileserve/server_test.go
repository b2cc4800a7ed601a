package fileserve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// start serves dir's files under /f/ on the fast path; net/http serves
// the same files with http.ServeContent as the fallback (today's handler).
func start(t *testing.T, dir string, maxOpen int) (addr string, s *Server) {
	t.Helper()
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/f/")
		if !ok || strings.Contains(name, "/") {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		serveFile(w, r, filepath.Join(dir, name))
	})
	s = &Server{
		Resolve: func(_ context.Context, path string) (Target, error) {
			name, ok := strings.CutPrefix(path, "/f/")
			if !ok || strings.Contains(name, "/") {
				return Target{}, ErrNotHandled
			}
			if name == "gone" {
				return Target{}, &StatusError{http.StatusNotFound, "not found"}
			}
			return Target{Path: filepath.Join(dir, name), CacheControl: "max-age=86400"}, nil
		},
		Fallback: fallback,
		MaxOpen:  maxOpen,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String(), s
}

// serveFile is the zone server's handler before this package.
func serveFile(w http.ResponseWriter, r *http.Request, path string) {
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "max-age=86400")
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size()))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends raw request heads on one connection and reads the responses.
func do(t *testing.T, addr string, heads ...string) []response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, strings.Join(heads, "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []response
	for _, h := range heads {
		method := h[:strings.IndexByte(h, ' ')]
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%q: %v", h, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%q: body: %v", h, err)
		}
		out = append(out, response{resp.StatusCode, resp.Header, body})
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// The fast path answers as the net/http handler it replaces: the same
// status, headers and body for every kind of request, whether it answers
// itself or hands the request over.
func TestMatchesNetHTTP(t *testing.T) {
	dir := t.TempDir()
	data := content(100000, 1)
	writeFile(t, filepath.Join(dir, "a"), data)
	writeFile(t, filepath.Join(dir, "empty"), nil)
	addr, _ := start(t, dir, 0)
	ref := httpServer(t, dir)
	fi, _ := os.Stat(filepath.Join(dir, "a"))
	etag := fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size())

	heads := []string{
		"GET /f/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /f/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /f/a HTTP/1.1\nHost: x\n\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=99990-\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=-10\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=-200000\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=50-200000\r\n\r\n",
		"HEAD /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=5-9\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=100000-\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=9-5\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,5-6\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: items=0-1\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nRange: bytes=-0\r\n\r\n",
		"GET /f/empty HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n",
		"GET /f/empty HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + "\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + "\r\nRange: bytes=0-1\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/" + etag + "\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\", " + etag + "\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n",
		"HEAD /f/a HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + "\r\n\r\n",
		"GET /f/a HTTP/1.1\r\nHost: x\r\nIf-Range: " + etag + "\r\nRange: bytes=0-1\r\n\r\n",
		"GET /f/a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /f/%61 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /f/missing HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /f/../f/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /other HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /f/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET /f/a HTTP/1.0\r\n\r\n",
	}
	for _, h := range heads {
		got := do(t, addr, h)[0]
		want := do(t, ref, h)[0]
		compare(t, h, got, want)
	}
	// The same on one keep-alive connection, pipelined: the fast path
	// hands the connection over at the first request it leaves.
	var keep []string
	for _, h := range heads {
		if !strings.Contains(h, "HTTP/1.0") {
			keep = append(keep, h)
		}
	}
	got, want := do(t, addr, keep...), do(t, ref, keep...)
	for i := range keep {
		compare(t, keep[i], got[i], want[i])
	}
}

func compare(t *testing.T, req string, got, want response) {
	t.Helper()
	if strings.HasPrefix(want.header.Get("Content-Type"), "multipart/byteranges") {
		// Random boundaries: the same status and length is the check.
		got.body, want.body = nil, nil
		got.header.Del("Content-Type")
		want.header.Del("Content-Type")
	}
	if got.status != want.status || !bytes.Equal(got.body, want.body) {
		t.Errorf("%q: got %d with %d bytes, want %d with %d bytes", req, got.status, len(got.body), want.status, len(want.body))
	}
	for _, k := range []string{"Content-Length", "Content-Range", "Content-Type", "Etag", "Cache-Control", "Last-Modified", "Accept-Ranges", "X-Content-Type-Options"} {
		if g, w := got.header.Values(k), want.header.Values(k); strings.Join(g, ",") != strings.Join(w, ",") {
			t.Errorf("%q: %s %q, want %q", req, k, g, w)
		}
	}
	if got.header.Get("Date") == "" {
		t.Errorf("%q: no Date", req)
	}
}

// httpServer is the reference: the fallback alone, on net/http.
func httpServer(t *testing.T, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/f/")
		if !ok || strings.Contains(name, "/") {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		serveFile(w, r, filepath.Join(dir, name))
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// A file replaced (renamed over) or removed after it was served and kept
// open is never served again: the next request gets the new file, or 404.
func TestReplacedOrRemovedFileNotServedStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	writeFile(t, path, content(5000, 1))
	addr, s := start(t, dir, 0)
	get := "GET /f/a HTTP/1.1\r\nHost: x\r\n\r\n"
	if r := do(t, addr, get)[0]; !bytes.Equal(r.body, content(5000, 1)) {
		t.Fatal("first content wrong")
	}
	for i := range 3 {
		// Same size, so only the inode tells the files apart.
		writeFile(t, path, content(5000, byte(2+i)))
		r := do(t, addr, get, get)
		for _, r := range r {
			if !bytes.Equal(r.body, content(5000, byte(2+i))) {
				t.Fatalf("round %d: stale content served", i)
			}
		}
	}
	// Replaced on a connection kept alive between two requests.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	read := func() []byte {
		io.WriteString(c, get)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	read()
	writeFile(t, path, content(7000, 9))
	if !bytes.Equal(read(), content(7000, 9)) {
		t.Fatal("stale content on a kept-alive connection")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if r := do(t, addr, get)[0]; r.status != http.StatusNotFound {
		t.Fatalf("removed file: %d, want 404", r.status)
	}
	if n := s.files.len(); n != 0 {
		t.Fatalf("%d files still open after the only one was removed", n)
	}
}

// The sweep closes idle files whose path changed, without a request.
func TestSweepClosesRemoved(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), content(10, 1))
	writeFile(t, filepath.Join(dir, "b"), content(10, 2))
	addr, s := start(t, dir, 0)
	do(t, addr, "GET /f/a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /f/b HTTP/1.1\r\nHost: x\r\n\r\n")
	os.Remove(filepath.Join(dir, "a"))
	s.files.sweep()
	if n := s.files.len(); n != 1 {
		t.Fatalf("%d files open after the sweep, want 1", n)
	}
}

// At most MaxOpen files stay open, whatever is requested.
func TestOpenFilesBounded(t *testing.T) {
	dir := t.TempDir()
	var heads []string
	for i := range 20 {
		name := fmt.Sprint("f", i)
		writeFile(t, filepath.Join(dir, name), content(100+i, byte(i)))
		heads = append(heads, "GET /f/"+name+" HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	addr, s := start(t, dir, 4)
	for range 2 {
		for i, r := range do(t, addr, heads...) {
			if !bytes.Equal(r.body, content(100+i, byte(i))) {
				t.Fatalf("file %d: wrong content", i)
			}
		}
	}
	if n := s.files.len(); n > 4 {
		t.Fatalf("%d files open, bound 4", n)
	}
}

// A StatusError from Resolve is answered as http.Error would.
func TestStatusError(t *testing.T) {
	addr, _ := start(t, t.TempDir(), 0)
	r := do(t, addr, "GET /f/gone HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD /f/gone HTTP/1.1\r\nHost: x\r\n\r\n")
	if r[0].status != 404 || string(r[0].body) != "not found\n" || r[0].header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("GET: %d %q %v", r[0].status, r[0].body, r[0].header)
	}
	if r[1].status != 404 || len(r[1].body) != 0 {
		t.Fatalf("HEAD: %d %q", r[1].status, r[1].body)
	}
}

// Connection: close ends the connection after the response.
func TestConnectionClose(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), content(10, 1))
	addr, _ := start(t, dir, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /f/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(all, []byte("HTTP/1.1 200 OK\r\n")) || !bytes.HasSuffix(all, content(10, 1)) {
		t.Fatalf("response %q", all)
	}
}

// Serve returns when its context is done, closing idle keep-alive
// connections and letting a response in flight finish.
func TestShutdown(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), content(1, 1))
	s := &Server{
		Resolve: func(_ context.Context, path string) (Target, error) {
			return Target{Path: filepath.Join(dir, "a")}, nil
		},
		Fallback: http.NotFoundHandler(),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /f/a HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
}
