package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"zonekit/internal/observe"
)

// Cert is one certificate whose expiry is reported (observe.Cert).
type Cert = observe.Cert

// CertExpiry reports, for the certificates certs returns at each scrape,
// what x509-certificate-exporter reports (x509_cert_not_after,
// x509_cert_expired, x509_cert_expires_in_seconds) under zonekit's names.
type CertExpiry struct {
	Certs func() []Cert
	Now   func() time.Time // nil for the wall clock
}

var (
	certNotAfterDesc = prometheus.NewDesc(observe.CertNotAfterName, observe.CertNotAfterHelp, []string{"kind", "name"}, nil)
	certExpiresDesc  = prometheus.NewDesc(observe.CertExpiresInName, observe.CertExpiresInHelp, []string{"kind", "name"}, nil)
	certExpiredDesc  = prometheus.NewDesc(observe.CertExpiredName, observe.CertExpiredHelp, []string{"kind", "name"}, nil)
)

// Describe implements prometheus.Collector.
func (c *CertExpiry) Describe(ch chan<- *prometheus.Desc) {
	ch <- certNotAfterDesc
	ch <- certExpiresDesc
	ch <- certExpiredDesc
}

// Collect implements prometheus.Collector.
func (c *CertExpiry) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	seen := map[[2]string]bool{}
	for _, cert := range c.Certs() {
		k := [2]string{cert.Kind, cert.Name}
		if cert.NotAfter.IsZero() || seen[k] {
			continue
		}
		seen[k] = true
		left := cert.NotAfter.Sub(now).Seconds()
		expired := 0.0
		if left <= 0 {
			expired = 1
		}
		ch <- prometheus.MustNewConstMetric(certNotAfterDesc, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), cert.Kind, cert.Name)
		ch <- prometheus.MustNewConstMetric(certExpiresDesc, prometheus.GaugeValue, left, cert.Kind, cert.Name)
		ch <- prometheus.MustNewConstMetric(certExpiredDesc, prometheus.GaugeValue, expired, cert.Kind, cert.Name)
	}
}
