// Package observe is what a zonekit daemon needs to be watched without
// the Prometheus client library: /healthz and /readyz, the plain-HTTP
// metrics listener, the route label of HTTP metrics, and a small registry
// that writes Prometheus's text exposition format with the Go runtime and
// process metrics client_golang's collectors report.
//
// zac links this package and not client_golang: client_golang's package
// initialisation (its default registry with the Go and process collectors,
// procfs, protobuf) ran in every zac process, about a tenth of the CPU of
// a `zac register`. The zone server and pbserv keep client_golang
// (internal/metrics), which uses the shared parts from here.
package observe

// Namespace prefixes every zonekit metric.
const Namespace = "zonekit"
