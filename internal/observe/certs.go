package observe

import (
	"cmp"
	"io"
	"slices"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// Cert is one certificate whose expiry is reported.
type Cert struct {
	Kind     string // "ca", "server", "satellite", ...
	Name     string // the CA's subject CN, the server's name, ...
	NotAfter time.Time
}

// AddCertExpiry adds what x509-certificate-exporter reports
// (x509_cert_not_after, x509_cert_expired, x509_cert_expires_in_seconds)
// under zonekit's names, for the certificates certs returns at each
// scrape (a certificate listed twice counts once); now is nil for the
// wall clock.
func (r *Registry) AddCertExpiry(certs func() []Cert, now func() time.Time) {
	r.AddWriter(func(w io.Writer) {
		t := time.Now()
		if now != nil {
			t = now()
		}
		seen := map[[2]string]bool{}
		var list []Cert
		for _, c := range certs() {
			k := [2]string{c.Kind, c.Name}
			if c.NotAfter.IsZero() || seen[k] {
				continue
			}
			seen[k] = true
			list = append(list, c)
		}
		if len(list) == 0 {
			return
		}
		slices.SortFunc(list, func(a, b Cert) int {
			return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
		})
		labels := make([]string, len(list))
		for i, c := range list {
			labels[i] = Labels("kind", c.Kind, "name", c.Name)
		}
		// One family after the other: a family's lines stay together.
		WriteHeader(w, CertNotAfterName, CertNotAfterHelp, Gauge)
		for i, c := range list {
			vm.WriteGaugeFloat64(w, CertNotAfterName+labels[i], float64(c.NotAfter.Unix()))
		}
		WriteHeader(w, CertExpiresInName, CertExpiresInHelp, Gauge)
		for i, c := range list {
			vm.WriteGaugeFloat64(w, CertExpiresInName+labels[i], c.NotAfter.Sub(t).Seconds())
		}
		WriteHeader(w, CertExpiredName, CertExpiredHelp, Gauge)
		for i, c := range list {
			expired := uint64(0)
			if !c.NotAfter.After(t) {
				expired = 1
			}
			vm.WriteGaugeUint64(w, CertExpiredName+labels[i], expired)
		}
	}, CertNotAfterName, CertExpiresInName, CertExpiredName)
}
