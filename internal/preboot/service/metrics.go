package service

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"zonekit/internal/metrics"
	"zonekit/internal/preboot/ptls"
)

// observe registers d's metrics with reg (docs/metrics.md): counters
// read from the service's own statistics at each scrape, and the HTTP
// request metrics of the policy and imaging services.
func observe(reg *prometheus.Registry, d daemon, tls *ptls.Material) {
	counter := func(name, help string, labels prometheus.Labels, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metrics.Namespace, Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f()) })
	}
	switch d := d.(type) {
	case *tftpDaemon:
		st := &d.s.Stats
		reg.MustRegister(
			counter("tftp_transfers_total", "TFTP transfers completed, by direction (read: sent to a client; write: received).",
				prometheus.Labels{"direction": "read"}, st.Reads.Load),
			counter("tftp_transfers_total", "TFTP transfers completed, by direction (read: sent to a client; write: received).",
				prometheus.Labels{"direction": "write"}, st.Writes.Load),
			counter("tftp_transfers_failed_total", "TFTP transfers that ended in an error or a silent client.", nil, st.Failed.Load),
			counter("tftp_requests_busy_total", "TFTP requests refused because too many transfers were under way.", nil, st.Busy.Load),
			counter("tftp_retransmissions_total", "TFTP packets sent again after a timeout.", nil, st.Retransmits.Load),
			counter("tftp_bytes_total", "TFTP data bytes sent and received.", nil, st.Bytes.Load),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metrics.Namespace, Name: "tftp_transfers_active",
				Help: "TFTP transfers under way."}, func() float64 { return float64(d.s.Active()) }),
		)
	case *proxyDaemon:
		st := &d.s.Stats
		reg.MustRegister(
			counter("proxydhcp_requests_total", "DHCP and PXE packets received by the proxy DHCP service.", nil, st.Requests.Load),
			counter("proxydhcp_ignored_total", "Packets the proxy did not answer (not PXE clients, other servers' business, malformed).", nil, st.Ignored.Load),
			counter("proxydhcp_offers_total", "DHCPOFFERs sent to PXE clients.", nil, st.Offers.Load),
			counter("proxydhcp_acks_total", "DHCPACKs sent to PXE clients (boot server requests).", nil, st.Acks.Load),
		)
	case *policyDaemon:
		h := metrics.NewHTTP(reg)
		d.s.Observe = func(next http.Handler) http.Handler { return h.Handler("policy", next) }
	case *imagingDaemon:
		h := metrics.NewHTTP(reg)
		d.s.Observe = func(next http.Handler) http.Handler { return h.Handler("imaging", next) }
	}
	if tls != nil {
		reg.MustRegister(&metrics.CertExpiry{Certs: func() []metrics.Cert {
			out := []metrics.Cert{{Kind: "ca", Name: tls.CA.Subject.CommonName, NotAfter: tls.CA.NotAfter}}
			if l := tls.Cert.Leaf; l != nil {
				out = append(out, metrics.Cert{Kind: "server", Name: l.Subject.CommonName, NotAfter: l.NotAfter})
			}
			return out
		}})
	}
}

// serveMetrics starts the service's metrics listener at addr, if any,
// until ctx ends; the returned function waits for it to stop.
func serveMetrics(ctx context.Context, addr, service string, d daemon, tls *ptls.Material) (wait func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := metrics.Listen(addr, "MetricsAddress in "+service+".conf")
	if err != nil {
		return nil, err
	}
	reg := metrics.NewRegistry("pbserv-" + service)
	observe(reg, d, tls)
	done := make(chan struct{})
	go func() {
		defer close(done)
		metrics.Serve(ctx, ln, metrics.Handler(reg, &metrics.Health{}), nil)
	}()
	return func() { <-done }, nil
}
