// Package observe is what a zonekit daemon needs to be watched without
// the Prometheus client library: /healthz and /readyz, the plain-HTTP
// metrics listener, the route label of HTTP metrics, and a Registry of
// metric families on github.com/VictoriaMetrics/metrics, which counts
// and writes the text exposition format, with the go_* and process_*
// metrics that library reports.
//
// zac links this package and not client_golang: client_golang's package
// initialisation (its default registry with the Go and process collectors,
// procfs, protobuf) ran in every zac process, about a tenth of the CPU of
// a `zac register`; VictoriaMetrics/metrics initialises in a fraction of
// that. The zone server and pbserv keep client_golang (internal/metrics),
// which uses the shared parts from here.
package observe

// Namespace prefixes every zonekit metric.
const Namespace = "zonekit"
