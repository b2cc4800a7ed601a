package server

import (
	"crypto/x509"

	"zonekit/internal/pki"
)

// cpkTrust is what a CPK package must be signed by: the CAs agents trust
// now (the zone CA, and its successor during a change of CA).
func (s *Server) cpkTrust() []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range s.trustedCAs() {
		if c, err := pki.ParseCertPEM([]byte(p)); err == nil {
			out = append(out, c)
		}
	}
	return out
}
