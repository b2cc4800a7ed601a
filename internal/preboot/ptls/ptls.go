// Package ptls is the TLS of the preboot services: the imaging service
// serves HTTPS with this server's zone certificate, and its clients (the
// policy service, pbserv's image commands, the imaging environment)
// trust exactly the zone CA.
package ptls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// Material is what a zone server has: the zone CA and its own certificate
// (a server certificate, also good for client authentication).
type Material struct {
	CA   *x509.Certificate
	Cert tls.Certificate
}

func (m *Material) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(m.CA)
	return p
}

// ServerConfig serves with the server certificate and asks for, but does
// not require, a client certificate signed by the zone CA (zone servers
// present theirs; administrators and imaging tasks use credentials).
func (m *Material) ServerConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{m.Cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    m.pool(),
		MinVersion:   tls.VersionTLS12,
		// Images are bulk transfers: full-size records from the start.
		DynamicRecordSizingDisabled: true,
	}
}

// ClientConfig trusts a server whose certificate the zone CA issued for
// server use, whatever address it is reached at: machines reach the
// imaging service at addresses that its certificate need not name, and
// only the zone CA can issue such a certificate. cert, when set, is
// presented for client authentication.
func ClientConfig(ca *x509.Certificate, cert *tls.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is checked below, against the zone CA alone; only the
		// host name check is left out.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the imaging service sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				return fmt.Errorf("the imaging service's certificate is not the zone's: %w", err)
			}
			return nil
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// IsServerCert reports whether a verified client certificate is a zone
// server's: server certificates carry serverAuth, device certificates only
// clientAuth.
func IsServerCert(c *x509.Certificate) bool {
	return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) &&
		!slices.Contains(c.Subject.OrganizationalUnit, "devices")
}
