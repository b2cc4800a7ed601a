package observe

import (
	"cmp"
	"slices"
	"time"
)

// Cert is one certificate whose expiry is reported.
type Cert struct {
	Kind     string // "ca", "server", "satellite", ...
	Name     string // the CA's subject CN, the server's name, ...
	NotAfter time.Time
}

// CertExpiry returns a collector of what x509-certificate-exporter
// reports (x509_cert_not_after, x509_cert_expired,
// x509_cert_expires_in_seconds) under zonekit's names, for the
// certificates certs returns at each scrape; now is nil for the wall clock.
func CertExpiry(certs func() []Cert, now func() time.Time) func(emit func(Family)) {
	return func(emit func(Family)) {
		t := time.Now()
		if now != nil {
			t = now()
		}
		notAfter := Family{Name: CertNotAfterName, Help: CertNotAfterHelp, Type: Gauge}
		expiresIn := Family{Name: CertExpiresInName, Help: CertExpiresInHelp, Type: Gauge}
		expired := Family{Name: CertExpiredName, Help: CertExpiredHelp, Type: Gauge}
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
		// client_golang sorts a family's series by their labels.
		slices.SortFunc(list, func(a, b Cert) int {
			return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
		})
		for _, c := range list {
			labels := []Label{{"kind", c.Kind}, {"name", c.Name}}
			left := c.NotAfter.Sub(t).Seconds()
			gone := 0.0
			if left <= 0 {
				gone = 1
			}
			notAfter.Samples = append(notAfter.Samples, Sample{Labels: labels, Value: float64(c.NotAfter.Unix())})
			expiresIn.Samples = append(expiresIn.Samples, Sample{Labels: labels, Value: left})
			expired.Samples = append(expired.Samples, Sample{Labels: labels, Value: gone})
		}
		emit(notAfter)
		emit(expiresIn)
		emit(expired)
	}
}
