package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"zonekit/internal/observe"
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
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: observe.HTTPRequestsName, Help: observe.HTTPRequestsHelp},
			[]string{"listener", "method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: observe.HTTPDurationName, Help: observe.HTTPDurationHelp,
			Buckets: observe.HTTPDurationBuckets()}, []string{"listener", "method", "route"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: observe.HTTPBytesName, Help: observe.HTTPBytesHelp},
			[]string{"listener", "route"}),
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
		rec := observe.NewRecorder(w)
		defer func() {
			route := observe.Route(r.Pattern)
			method := observe.Method(r.Method)
			h.requests.WithLabelValues(listener, method, route, strconv.Itoa(rec.Status())).Inc()
			h.duration.WithLabelValues(listener, method, route).Observe(time.Since(start).Seconds())
			h.bytes.WithLabelValues(listener, route).Add(float64(rec.Bytes()))
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
	route := observe.Route(pattern)
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
		method = observe.Method(method)
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
