package metrics

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP counts the requests of a daemon's HTTP listeners.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
}

// NewHTTP registers the HTTP request metrics with reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by listener, method, route pattern and status code.",
		}, []string{"listener", "method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by listener, method and route pattern.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"listener", "method", "route"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "http", Name: "response_bytes_total",
			Help: "Bytes of response bodies sent, by listener and route pattern (content fragments included).",
		}, []string{"listener", "route"}),
	}
	reg.MustRegister(h.requests, h.duration, h.bytes)
	return h
}

// Handler counts the requests next answers on listener. The route is the
// pattern of the http.ServeMux that matched (r.Pattern without its
// method), so that ids in paths do not make a label value each; next must
// hand the mux the request it was given.
func (h *HTTP) Handler(listener string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			route := Route(r.Pattern)
			method := methodOf(r.Method)
			h.requests.WithLabelValues(listener, method, route, strconv.Itoa(rec.status)).Inc()
			h.duration.WithLabelValues(listener, method, route).Observe(time.Since(start).Seconds())
			h.bytes.WithLabelValues(listener, route).Add(float64(rec.bytes))
		}()
		next.ServeHTTP(rec, r)
	})
}

// Observer returns a function that counts one request answered outside
// Handler (the content port's fast path, internal/fileserve) as Handler
// would count it; pattern is the ServeMux pattern that would have
// matched. It keeps the series it has used, so that a request costs no
// label lookup.
func (h *HTTP) Observer(listener, pattern string) func(method string, code int, bytes int64, d time.Duration) {
	route := Route(pattern)
	type key struct {
		method string
		code   int
	}
	type series struct {
		requests prometheus.Counter
		duration prometheus.Observer
		bytes    prometheus.Counter
	}
	var mu sync.Mutex
	known := map[key]*series{}
	return func(method string, code int, bytes int64, d time.Duration) {
		method = methodOf(method)
		k := key{method, code}
		mu.Lock()
		s := known[k]
		if s == nil {
			s = &series{
				requests: h.requests.WithLabelValues(listener, method, route, strconv.Itoa(code)),
				duration: h.duration.WithLabelValues(listener, method, route),
				bytes:    h.bytes.WithLabelValues(listener, route),
			}
			known[k] = s
		}
		mu.Unlock()
		s.requests.Inc()
		s.duration.Observe(d.Seconds())
		s.bytes.Add(float64(bytes))
	}
}

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

// methodOf bounds the method label to the standard methods.
func methodOf(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// recorder notes the status and counts the body. It keeps io.ReaderFrom,
// the path to sendfile on plain connections, and lets
// http.ResponseController reach the connection.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	bytes       int64
}

func (rec *recorder) WriteHeader(code int) {
	if !rec.wroteHeader && code >= 200 {
		rec.status, rec.wroteHeader = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	rec.wroteHeader = true
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

func (rec *recorder) ReadFrom(src io.Reader) (int64, error) {
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

func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := rec.ResponseWriter.(http.Hijacker); ok {
		return hj.Hijack()
	}
	return nil, nil, errors.New("metrics: the response writer cannot be hijacked")
}

func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }
