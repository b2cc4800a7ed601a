// Package metrics is what the zone server and the pbserv services share to
// be watched, on the Prometheus client library: a registry of the
// process's own (never the global default one), the HTTP middleware that
// counts requests by route pattern, certificate expiry as
// x509-certificate-exporter reports it, and /metrics. Health checks and
// the listener are internal/observe's, which the content satellite (zac,
// without client_golang) uses for all of it.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"zonekit/internal/observe"
	"zonekit/internal/version"
)

// Namespace prefixes every zonekit metric.
const Namespace = observe.Namespace

// NewRegistry returns a registry holding the Go runtime and process
// collectors and zonekit_build_info; program is the daemon's name
// (zoneserver, satellite, or the pbserv service).
func NewRegistry(program string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        observe.BuildInfoName,
			Help:        observe.BuildInfoHelp,
			ConstLabels: prometheus.Labels{"version": version.String(), "program": program},
		}, func() float64 { return 1 }),
	)
	return reg
}
