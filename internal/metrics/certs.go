package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Cert is one certificate whose expiry is reported.
type Cert struct {
	Kind     string // "ca", "server", "satellite", ...
	Name     string // the CA's subject CN, the server's name, ...
	NotAfter time.Time
}

// CertExpiry reports, for the certificates certs returns at each scrape,
// what x509-certificate-exporter reports (x509_cert_not_after,
// x509_cert_expired, x509_cert_expires_in_seconds) under zonekit's names.
type CertExpiry struct {
	Certs func() []Cert
	Now   func() time.Time // nil for the wall clock
}

var (
	certNotAfterDesc = prometheus.NewDesc(Namespace+"_certificate_not_after_timestamp_seconds",
		"When the certificate expires (Unix time).", []string{"kind", "name"}, nil)
	certExpiresDesc = prometheus.NewDesc(Namespace+"_certificate_expires_in_seconds",
		"Seconds until the certificate expires; negative once it has.", []string{"kind", "name"}, nil)
	certExpiredDesc = prometheus.NewDesc(Namespace+"_certificate_expired",
		"1 if the certificate has expired, else 0.", []string{"kind", "name"}, nil)
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
