package metrics

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"zonekit/internal/observe"
)

// Handler serves GET /metrics from g and, with h, /healthz and /readyz.
func Handler(g prometheus.Gatherer, h *Health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		// A collector that fails (a store read) leaves its metrics out
		// and says so in the log; the rest are still served.
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	if h != nil {
		h.Mount(mux)
	}
	mux.HandleFunc("/", observe.NotFound)
	return mux
}

// Listen opens the metrics listener (observe.Listen).
func Listen(addr, setting string) (net.Listener, error) { return observe.Listen(addr, setting) }

// Serve answers on ln with h until ctx ends (observe.Serve).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	return observe.Serve(ctx, ln, h, log)
}

// Health answers /healthz and /readyz (observe.Health).
type Health = observe.Health

// Check is one condition of readiness (observe.Check).
type Check = observe.Check
