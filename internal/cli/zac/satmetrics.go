package zac

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"zonekit/internal/agent"
	"zonekit/internal/observe"
	"zonekit/internal/pki"
)

// satObserver is a satellite's metrics and health (docs/metrics.md), on
// internal/observe (github.com/VictoriaMetrics/metrics): zac does not link
// the Prometheus client library, whose package initialisation every zac
// process would pay.
type satObserver struct {
	reg    *observe.Registry
	http   *observe.HTTP
	health *observe.Health
}

// newSatObserver watches the satellite of agent a: its cache directory
// (content role) and its certificates (authentication role).
func newSatObserver(a *agent.Agent, dir string, content, auth bool) *satObserver {
	reg := observe.NewRegistry("satellite")
	o := &satObserver{reg: reg, http: observe.NewHTTP(reg), health: &observe.Health{}}
	certs := func() []observe.Cert {
		var out []observe.Cert
		if cas, err := a.TrustedCAs(); err == nil {
			for _, ca := range cas {
				out = append(out, observe.Cert{Kind: "ca", Name: ca.Subject.CommonName, NotAfter: ca.NotAfter})
			}
		}
		if c, err := a.DeviceCert(); err == nil && c.Leaf != nil {
			out = append(out, observe.Cert{Kind: "device", Name: c.Leaf.Subject.CommonName, NotAfter: c.Leaf.NotAfter})
		}
		if auth {
			if c, err := pki.ReadCertFile(a.SatelliteCertPath()); err == nil {
				out = append(out, observe.Cert{Kind: "satellite", Name: c.Subject.CommonName, NotAfter: c.NotAfter})
			}
		}
		return out
	}
	reg.AddCertExpiry(certs, nil)
	if content {
		o.health.Ready = append(o.health.Ready, observe.Check{Name: "cache", Check: func(context.Context) error {
			fi, err := os.Stat(dir)
			if err != nil {
				return fmt.Errorf("cache directory: %w", err)
			}
			if !fi.IsDir() {
				return fmt.Errorf("cache directory %s is not a directory", dir)
			}
			return nil
		}})
	}
	o.health.Ready = append(o.health.Ready, observe.Check{Name: "certificates", Check: func(context.Context) error {
		now := time.Now()
		var errs []error
		for _, c := range certs() {
			if now.After(c.NotAfter) {
				errs = append(errs, fmt.Errorf("the %s certificate %q expired on %s", c.Kind, c.Name, c.NotAfter.UTC().Format(time.RFC3339)))
			}
		}
		if auth {
			if _, err := pki.ReadCertFile(a.SatelliteCertPath()); err != nil {
				errs = append(errs, fmt.Errorf("satellite certificate: %w", err))
			}
		}
		return errors.Join(errs...)
	}})
	return o
}

// handler answers /healthz and /readyz and counts h's requests on
// listener (not the probes', as on the zone server).
func (o *satObserver) handler(listener string, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	o.health.Mount(mux)
	mux.Handle("/", o.http.Handler(listener, h))
	return mux
}
