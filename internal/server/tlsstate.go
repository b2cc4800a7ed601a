package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"sort"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/pki"
)

// trustState is what TLS uses at one moment: the zone CA, the CAs whose
// device certificates are still accepted, and this server's certificate.
// It is replaced whole when a certificate change activates, so that
// handshakes switch without a restart.
type trustState struct {
	ca       *x509.Certificate
	external bool              // the zone CA is external: the zone does not hold its key
	deviceCA *x509.Certificate // the zone's device-issuing CA under an external CA, else nil
	cert     tls.Certificate
	leaf     *x509.Certificate
	config   *tls.Config
	expiry   []string // HeaderCertExpiry values, earliest first; none when nothing expires soon
	checked  time.Time
}

// zoneCA returns the current zone CA.
func (s *Server) zoneCA() *x509.Certificate { return s.trust.Load().ca }

// loadTrust (re)reads the zone CA from the store and this server's
// certificate from conf/, checks them, and installs them for new handshakes.
func (s *Server) loadTrust() error {
	z, err := s.db.Zone()
	if err != nil {
		return fmt.Errorf("read zone: %w", err)
	}
	ca, err := pki.ParseCertPEM([]byte(z.CACertPEM))
	if err != nil {
		return fmt.Errorf("zone CA certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(s.opts.Paths.ServerCert(), s.opts.Paths.ServerKey())
	if err != nil {
		return fmt.Errorf("load server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	cert.Leaf = leaf
	now := s.now()
	if now.After(ca.NotAfter) {
		return errkind.New(errkind.Failure, "the zone CA %q expired on %s: nothing can connect; repair with 'zconfigure -c SSL' (option 2, remint the CA and this server's certificate) while the server is stopped",
			ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.DateOnly))
	}
	if now.After(leaf.NotAfter) {
		if !z.CAInternal {
			// Option 1 needs the CA key, which an external CA keeps.
			return errkind.New(errkind.Failure, "server certificate %s expired on %s: while the server is stopped, write a CSR with 'zconfigure -c SSL --csr FILE', have the external CA sign it, and install the certificate with 'zconfigure -c SSL --option 3 --cert CERTFILE'",
				s.opts.Paths.ServerCert(), leaf.NotAfter.UTC().Format(time.DateOnly))
		}
		return errkind.New(errkind.Failure, "server certificate %s expired on %s: repair it with 'zconfigure -c SSL' (option 1) while the server is stopped",
			s.opts.Paths.ServerCert(), leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("server certificate %s is not issued by this zone's CA: %w", s.opts.Paths.ServerCert(), err)
	}
	// Device certificates from replaced CAs stay accepted until they
	// expire: agents renew them at their next refresh.
	clients := x509.NewCertPool()
	clients.AddCert(ca)
	var deviceCA *x509.Certificate
	if !z.CAInternal && z.DeviceCA != "" {
		// Beside the zone CA, not under it: the zone holds no key of an
		// external CA to certify it with.
		if deviceCA, err = pki.ParseCertPEM([]byte(z.DeviceCA)); err != nil {
			return fmt.Errorf("the zone's device CA: %w", err)
		}
		clients.AddCert(deviceCA)
	}
	for _, p := range z.PreviousCAs {
		if c, err := pki.ParseCertPEM([]byte(p)); err == nil && now.Before(c.NotAfter) {
			clients.AddCert(c)
		}
	}
	st := &trustState{ca: ca, external: !z.CAInternal, deviceCA: deviceCA, cert: cert, leaf: leaf}
	st.config = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    clients,
	}
	s.trust.Store(st)
	return nil
}

// TLSConfig is the server side of the zone's TLS: 1.2 or later, this
// server's certificate, and device certificates verified against the zone
// CA. Each handshake takes the current trust state.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.trust.Load().config, nil
		},
	}
}

// certExpiry names every zone certificate that expires within
// pki.ExpiringWithin (or has expired), earliest first; recomputed at most
// once a minute.
func (s *Server) certExpiry() []string {
	st := s.trust.Load()
	now := s.now()
	if now.Sub(st.checked) < time.Minute && !st.checked.IsZero() {
		return st.expiry
	}
	type expiring struct {
		at   time.Time
		what string
	}
	var list []expiring
	if st.ca.NotAfter.Sub(now) < pki.ExpiringWithin {
		list = append(list, expiring{st.ca.NotAfter, "zone CA " + st.ca.Subject.CommonName})
	}
	if st.deviceCA != nil && st.deviceCA.NotAfter.Sub(now) < pki.ExpiringWithin {
		// Replaced automatically (deviceCAStep); named so that a failure
		// to replace it is seen.
		list = append(list, expiring{st.deviceCA.NotAfter, "device CA " + st.deviceCA.Subject.CommonName})
	}
	if servers, err := s.db.Servers(); err == nil {
		for _, sv := range servers {
			if !sv.CertNotAfter.IsZero() && sv.CertNotAfter.Sub(now) < pki.ExpiringWithin {
				list = append(list, expiring{sv.CertNotAfter, "server certificate of " + sv.Name})
			}
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].at.Before(list[j].at) })
	next := *st
	next.checked, next.expiry = now, nil
	for _, e := range list {
		next.expiry = append(next.expiry, e.at.UTC().Format(time.RFC3339)+" "+e.what)
	}
	s.trust.CompareAndSwap(st, &next)
	return next.expiry
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// tlsTrust is this server's trust as the certificates area sees it.
type tlsTrust struct{ s *Server }

func (t tlsTrust) ZoneCA() *x509.Certificate { return t.s.zoneCA() }
func (t tlsTrust) TrustedCAs() []string      { return t.s.trustedCAs() }
func (t tlsTrust) Served() [][]byte          { return t.s.trust.Load().cert.Certificate }
func (t tlsTrust) Leaf() *x509.Certificate   { return t.s.trust.Load().leaf }
func (t tlsTrust) Reload() error             { return t.s.loadTrust() }
func (t tlsTrust) External() bool            { return t.s.trust.Load().external }
func (t tlsTrust) DeviceCA() *x509.Certificate {
	return t.s.trust.Load().deviceCA
}

// trustedCAs are the PEMs agents should trust now: the zone CA, while
// a change of CA is under way the future one, and under an external CA
// the device CA (last: agents take the first as the zone CA), which
// signs satellites' certificates and CPKs there.
func (s *Server) trustedCAs() []string {
	st := s.trust.Load()
	out := []string{string(pki.EncodeCertPEM(st.ca))}
	if rm, err := s.db.Remint(); err == nil && rm != nil && rm.FutureCA != "" {
		out = append(out, rm.FutureCA)
	}
	if st.external && st.deviceCA != nil {
		out = append(out, string(pki.EncodeCertPEM(st.deviceCA)))
	}
	return out
}

// needsRenewal says whether a device certificate should be replaced: it
// comes from another CA than the one issuing device certificates now (a
// replaced CA, the internal CA before a change to an external one), or it
// expires within 30 days. Only a server that can issue the new one asks.
func (s *Server) needsRenewal(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false
	}
	issuer := s.devCA.Issuer()
	if issuer == nil || (!s.trust.Load().external && s.ca.Load() == nil) {
		return false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	return leaf.CheckSignatureFrom(issuer) != nil || leaf.NotAfter.Sub(s.now()) < 30*24*time.Hour
}
