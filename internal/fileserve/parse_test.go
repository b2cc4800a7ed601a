package fileserve

import (
	"bytes"
	"testing"
)

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		v             string
		size          int64
		start, length int64
		ok            bool
	}{
		{"bytes=0-0", 10, 0, 1, true},
		{"bytes=0-9", 10, 0, 10, true},
		{"bytes=0-99", 10, 0, 10, true},
		{"bytes=3-", 10, 3, 7, true},
		{"bytes=-3", 10, 7, 3, true},
		{"bytes=-30", 10, 0, 10, true},
		{"bytes=10-", 10, 0, 0, false}, // unsatisfiable: 416 by net/http
		{"bytes=-0", 10, 0, 0, false},  // unsatisfiable
		{"bytes=5-4", 10, 0, 0, false}, // invalid
		{"bytes=0-1,3-4", 10, 0, 0, false},
		{"bytes= 0-1", 10, 0, 0, false},
		{"bytes=0-1", 0, 0, 0, false},
		{"Bytes=0-1", 10, 0, 0, false},
		{"bytes=99999999999999999999-", 10, 0, 0, false},
		{"bytes=-", 10, 0, 0, false},
		{"bytes=a-", 10, 0, 0, false},
	} {
		start, length, ok := parseRange([]byte(c.v), c.size)
		if ok != c.ok || ok && (start != c.start || length != c.length) {
			t.Errorf("%q of %d: %d+%d %v, want %d+%d %v", c.v, c.size, start, length, ok, c.start, c.length, c.ok)
		}
	}
}

func TestParseRequest(t *testing.T) {
	for _, c := range []struct {
		head string
		ok   bool
	}{
		{"GET /content/1/1-1 HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"HEAD /a HTTP/1.1\r\nhost: h\r\nUser-Agent: x\r\n\r\n", true},
		{"GET /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n", true},
		{"GET /a HTTP/1.1\r\n\r\n", false}, // no Host
		{"GET /a HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", false},
		{"GET /a HTTP/1.0\r\nHost: h\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nRange: bytes=0-1\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: x\r\n\r\n", false},
		{"PUT /a HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET a HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /a/./b HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /a/../b HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /a//b HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /a%2f HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /a HTTP/1.1 \r\nHost: h\r\n\r\n", false},
	} {
		var r request
		if ok := parseRequest([]byte(c.head), &r); ok != c.ok {
			t.Errorf("%q: %v, want %v", c.head, ok, c.ok)
		}
	}
}

func TestHeadEnd(t *testing.T) {
	for _, c := range []struct {
		b string
		n int
	}{
		{"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET", 27},
		{"GET / HTTP/1.1\nHost: h\n\n", 24},
		{"GET / HTTP/1.1\r\nHost: h\r\n", -1},
		{"GET / HTTP/1.1\r\nHost: h\r\n\r", -1},
		{"", -1},
	} {
		if n := headEnd([]byte(c.b)); n != c.n {
			t.Errorf("%q: %d, want %d", c.b, n, c.n)
		}
	}
}

// FuzzParseRequest: any bytes from the network; parsing never panics,
// a head it accepts has a plain path, and ranges stay within the file.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("GET /content/1/1-1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-5\r\nIf-None-Match: \"x\"\r\n\r\n"), int64(10))
	f.Add([]byte("HEAD / HTTP/1.1\nHost: h\nConnection: close\n\n"), int64(0))
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: h\r\nRange: bytes=-5\r\n\r\n"), int64(3))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		n := headEnd(b)
		if n < -1 || n > len(b) {
			t.Fatalf("headEnd %d of %d bytes", n, len(b))
		}
		var r request
		if n < 0 || !parseRequest(b[:n], &r) {
			return
		}
		if !plainPath(r.path) || bytes.Contains(r.path, []byte("..")) && bytes.Contains(r.path, []byte("/..")) {
			t.Fatalf("accepted path %q", r.path)
		}
		if r.rng != nil {
			if start, length, ok := parseRange(r.rng, size); ok && (start < 0 || length <= 0 || start+length > size) {
				t.Fatalf("range %q of %d: %d+%d", r.rng, size, start, length)
			}
		}
	})
}
