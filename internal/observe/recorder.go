package observe

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
)

// Route turns a ServeMux pattern ("GET /api/v1/devices/{ref}") into the
// route label ("/api/v1/devices/{ref}"); no pattern is "unmatched".
func Route(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return strings.TrimSpace(path)
	}
	return pattern
}

// Method bounds the method label to the standard methods.
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// Recorder notes the status and counts the body of an answer. It keeps
// io.ReaderFrom, the path to sendfile on plain connections, and lets
// http.ResponseController reach the connection.
type Recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	bytes       int64
}

// NewRecorder wraps w; the status is 200 until a handler sets another.
func NewRecorder(w http.ResponseWriter) *Recorder {
	return &Recorder{ResponseWriter: w, status: http.StatusOK}
}

// Status is the answer's status code.
func (rec *Recorder) Status() int { return rec.status }

// Bytes counts the body bytes written.
func (rec *Recorder) Bytes() int64 { return rec.bytes }

func (rec *Recorder) WriteHeader(code int) {
	if !rec.wroteHeader && code >= 200 {
		rec.status, rec.wroteHeader = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *Recorder) Write(b []byte) (int, error) {
	rec.wroteHeader = true
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

func (rec *Recorder) ReadFrom(src io.Reader) (int64, error) {
	rec.wroteHeader = true
	var n int64
	var err error
	if rf, ok := rec.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{rec.ResponseWriter}, src)
	}
	rec.bytes += n
	return n, err
}

func (rec *Recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (rec *Recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := rec.ResponseWriter.(http.Hijacker); ok {
		return hj.Hijack()
	}
	return nil, nil, errors.New("metrics: the response writer cannot be hijacked")
}

func (rec *Recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }
