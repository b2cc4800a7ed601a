// Package metrics is what zonekit's daemons (the zone server, content
// satellites, the pbserv services) share to be watched: a Prometheus
// registry of the process's own (never the global default one), the HTTP
// middleware that counts requests by route pattern, certificate expiry as
// x509-certificate-exporter reports it, health checks, and the plain-HTTP
// listener that serves /metrics, /healthz and /readyz.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"zonekit/internal/version"
)

// Namespace prefixes every zonekit metric.
const Namespace = "zonekit"

// NewRegistry returns a registry holding the Go runtime and process
// collectors and zonekit_build_info; program is the daemon's name
// (zoneserver, satellite, or the pbserv service).
func NewRegistry(program string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace:   Namespace,
			Name:        "build_info",
			Help:        "Always 1; the labels name the zonekit version and the daemon.",
			ConstLabels: prometheus.Labels{"version": version.String(), "program": program},
		}, func() float64 { return 1 }),
	)
	return reg
}
