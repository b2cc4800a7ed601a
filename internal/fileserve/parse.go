package fileserve

import "bytes"

// request is what the fast path needs of a request head. Its slices point
// into the connection's read buffer and are valid until the head is
// discarded.
type request struct {
	head  bool // HEAD, else GET
	path  []byte
	close bool
	rng   []byte // the Range value, nil when absent
	inm   []byte // the If-None-Match value, nil when absent
}

// headEnd returns the length of the request head in b (through the blank
// line ending it), or -1 when b does not hold a whole head yet. Lines may
// end in CRLF or LF, as net/http accepts.
func headEnd(b []byte) int {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
	return -1
}

// parseRequest parses a whole request head into r. It reports false for
// anything the fast path leaves to net/http: another method or version, a
// path that is not plain (escapes, queries, dot segments), a body, headers
// whose semantics it does not implement (If-Range, If-Modified-Since,
// Expect, ...), repeated or folded headers. net/http then answers exactly
// as before, so the fast path never has to be complete, only right.
func parseRequest(b []byte, r *request) bool {
	*r = request{}
	line, rest := nextLine(b)
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		r.head = true
		line = line[5:]
	default:
		return false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return false
	}
	r.path = line[:sp]
	if !plainPath(r.path) {
		return false
	}
	host := false
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			return false
		}
		name, value := line[:colon], trimSpace(line[colon+1:])
		switch {
		case equalFold(name, "host"):
			if host {
				return false
			}
			host = true
		case equalFold(name, "connection"):
			for _, tok := range bytes.Split(value, []byte(",")) {
				tok = trimSpace(tok)
				switch {
				case equalFold(tok, "close"):
					r.close = true
				case equalFold(tok, "keep-alive"), len(tok) == 0:
				default:
					return false // upgrade and the like
				}
			}
		case equalFold(name, "range"):
			if r.rng != nil {
				return false
			}
			r.rng = value
		case equalFold(name, "if-none-match"):
			if r.inm != nil {
				return false
			}
			r.inm = value
		case equalFold(name, "content-length"):
			if string(value) != "0" {
				return false
			}
		case equalFold(name, "transfer-encoding"), equalFold(name, "expect"), equalFold(name, "upgrade"),
			equalFold(name, "if-range"), equalFold(name, "if-match"),
			equalFold(name, "if-modified-since"), equalFold(name, "if-unmodified-since"):
			return false
		}
	}
	return host // net/http answers 400 to an HTTP/1.1 request without Host
}

// nextLine splits b at its first line end (LF or CRLF).
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// plainPath reports whether p is an absolute path of letters, digits and
// "-._~/" with no empty or dot segment: the paths the fast path maps to
// files without unescaping or cleaning (net/http redirects the others).
func plainPath(p []byte) bool {
	if len(p) == 0 || p[0] != '/' || len(p) > 1024 {
		return false
	}
	for i, c := range p {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '~':
		case c == '.':
			if p[i-1] == '/' {
				return false
			}
		case c == '/':
			if i > 0 && p[i-1] == '/' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares an ASCII header token with a lower-case name.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseRange reads a Range value of one satisfiable byte range of a file
// of size bytes: "bytes=a-b", "bytes=a-" or "bytes=-n". Everything else
// (several ranges, unsatisfiable or malformed ones, which net/http answers
// with 416 or ignores) reports false.
func parseRange(v []byte, size int64) (start, length int64, ok bool) {
	spec, found := bytes.CutPrefix(v, []byte("bytes="))
	if !found || size <= 0 {
		return 0, 0, false
	}
	dash := bytes.IndexByte(spec, '-')
	if dash < 0 {
		return 0, 0, false
	}
	first, last := spec[:dash], spec[dash+1:]
	if len(first) == 0 {
		n, ok := parseUint(last)
		if !ok || n == 0 {
			return 0, 0, false
		}
		n = min(n, size)
		return size - n, n, true
	}
	a, ok := parseUint(first)
	if !ok || a >= size {
		return 0, 0, false
	}
	end := size - 1
	if len(last) > 0 {
		b, ok := parseUint(last)
		if !ok || b < a {
			return 0, 0, false
		}
		end = min(b, size-1)
	}
	return a, end - a + 1, true
}

// parseUint parses up to 18 decimal digits (no sign, no overflow).
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
