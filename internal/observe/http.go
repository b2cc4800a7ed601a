package observe

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// The HTTP request families (docs/metrics.md), shared with the zone
// server's client_golang ones (internal/metrics) so that both say the same.
const (
	HTTPRequestsName  = Namespace + "_http_requests_total"
	HTTPRequestsHelp  = "HTTP requests answered, by listener, method, route pattern and status code."
	HTTPDurationName  = Namespace + "_http_request_duration_seconds"
	HTTPDurationHelp  = "Time from a request's arrival to the end of its answer, by listener, method and route pattern."
	HTTPBytesName     = Namespace + "_http_response_bytes_total"
	HTTPBytesHelp     = "Bytes of response bodies sent, by listener and route pattern (content fragments included)."
	BuildInfoName     = Namespace + "_build_info"
	BuildInfoHelp     = "Always 1; the labels name the zonekit version and the daemon."
	CertNotAfterName  = Namespace + "_certificate_not_after_timestamp_seconds"
	CertNotAfterHelp  = "When the certificate expires (Unix time)."
	CertExpiresInName = Namespace + "_certificate_expires_in_seconds"
	CertExpiresInHelp = "Seconds until the certificate expires; negative once it has."
	CertExpiredName   = Namespace + "_certificate_expired"
	CertExpiredHelp   = "1 if the certificate has expired, else 0."
)

// HTTPDurationBuckets are the request duration histogram's buckets.
func HTTPDurationBuckets() []float64 {
	return []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
}

// HTTP counts the requests of a daemon's HTTP listeners.
type HTTP struct {
	requests, duration, bytes *vm.Set
	buckets                   []float64
}

// NewHTTP adds the HTTP request families to r.
func NewHTTP(r *Registry) *HTTP {
	return &HTTP{
		requests: r.NewFamily(HTTPRequestsName, HTTPRequestsHelp, Counter),
		duration: r.NewFamily(HTTPDurationName, HTTPDurationHelp, Histogram),
		bytes:    r.NewFamily(HTTPBytesName, HTTPBytesHelp, Counter),
		buckets:  HTTPDurationBuckets(),
	}
}

// httpSeries is the three series one kind of request counts in.
type httpSeries struct {
	requests *vm.Counter
	duration *vm.PrometheusHistogram
	bytes    *vm.Counter
}

func (h *HTTP) series(listener, method, route string, code int) httpSeries {
	return httpSeries{
		requests: h.requests.GetOrCreateCounter(HTTPRequestsName + Labels("code", strconv.Itoa(code), "listener", listener, "method", method, "route", route)),
		duration: h.duration.GetOrCreatePrometheusHistogramExt(HTTPDurationName+Labels("listener", listener, "method", method, "route", route), h.buckets),
		bytes:    h.bytes.GetOrCreateCounter(HTTPBytesName + Labels("listener", listener, "route", route)),
	}
}

func (s httpSeries) count(bytes int64, d time.Duration) {
	s.requests.Inc()
	s.duration.Update(d.Seconds())
	s.bytes.AddInt64(bytes)
}

// Handler counts the requests next answers on listener. The route is the
// pattern of the http.ServeMux that matched (r.Pattern without its
// method), so that ids in paths do not make a label value each; next must
// hand the mux the request it was given.
func (h *HTTP) Handler(listener string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := NewRecorder(w)
		defer func() {
			h.series(listener, Method(r.Method), Route(r.Pattern), rec.Status()).count(rec.Bytes(), time.Since(start))
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
	var mu sync.Mutex
	known := map[key]httpSeries{}
	return func(method string, code int, bytes int64, d time.Duration) {
		method = Method(method)
		k := key{method, code}
		mu.Lock()
		s, ok := known[k]
		if !ok {
			s = h.series(listener, method, route, code)
			known[k] = s
		}
		mu.Unlock()
		s.count(bytes, d)
	}
}
