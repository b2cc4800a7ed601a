package observe

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"zonekit/internal/version"
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

// NewRegistry returns a daemon's registry: the Go runtime and process
// metrics and zonekit_build_info; program is the daemon's name.
func NewRegistry(program string) *Registry {
	r := &Registry{}
	r.Collect(GoRuntime)
	r.Collect(Process)
	r.GaugeFunc(BuildInfoName, BuildInfoHelp, []Label{{"program", program}, {"version", version.String()}}, func() float64 { return 1 })
	return r
}

// HTTP counts the requests of a daemon's HTTP listeners.
type HTTP struct {
	requests *CounterVec
	duration *HistogramVec
	bytes    *CounterVec
}

// NewHTTP adds the HTTP request families to r.
func NewHTTP(r *Registry) *HTTP {
	return &HTTP{
		requests: r.NewCounterVec(HTTPRequestsName, HTTPRequestsHelp, "listener", "method", "route", "code"),
		duration: r.NewHistogramVec(HTTPDurationName, HTTPDurationHelp, HTTPDurationBuckets(), "listener", "method", "route"),
		bytes:    r.NewCounterVec(HTTPBytesName, HTTPBytesHelp, "listener", "route"),
	}
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
			route, method := Route(r.Pattern), Method(r.Method)
			h.requests.With(listener, method, route, strconv.Itoa(rec.Status())).Inc()
			h.duration.With(listener, method, route).Observe(time.Since(start).Seconds())
			h.bytes.With(listener, route).Add(float64(rec.Bytes()))
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
		requests *CounterValue
		duration *HistogramValue
		bytes    *CounterValue
	}
	var mu sync.Mutex
	known := map[key]*series{}
	return func(method string, code int, bytes int64, d time.Duration) {
		method = Method(method)
		k := key{method, code}
		mu.Lock()
		s := known[k]
		if s == nil {
			s = &series{
				requests: h.requests.With(listener, method, route, strconv.Itoa(code)),
				duration: h.duration.With(listener, method, route),
				bytes:    h.bytes.With(listener, route),
			}
			known[k] = s
		}
		mu.Unlock()
		s.requests.Inc()
		s.duration.Observe(d.Seconds())
		s.bytes.Add(float64(bytes))
	}
}
