package server

import (
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/http"
	"slices"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/zone"
)

// acceptRelay lets an authentication satellite speak for the agent it
// relays: when a call carries api.HeaderRelayedFor and comes from a device
// holding the Authentication role (its own device certificate, verified in
// this handshake), the request's address becomes the agent's and its TLS
// state the agent's certificate (api.HeaderRelayedCert, verified again here
// against the zone's client CAs), or none. Every handler then sees the
// agent as if it had connected itself, the way a web server takes the
// client address from a trusted proxy. From anyone else the headers are
// refused (503, so that agents fail over).
func (s *Server) acceptRelay(r *http.Request) error {
	if r.Header.Get(api.HeaderRelayedFor) == "" && r.Header.Get(api.HeaderRelayedCert) == "" {
		return nil
	}
	sat, err := s.deviceOfConn(r)
	if err != nil || sat.Satellite == nil || !slices.Contains(sat.Satellite.Roles, zone.SatelliteAuthentication) {
		// 503, not 401: the agent behind a satellite that lost its role must
		// move on to its next server (a 401 would stop it there).
		return errkind.New(errkind.Unavailable, "only an authentication satellite may relay calls for agents (zman satellite-add-role DEVICE Authentication); ask a zone server")
	}
	ip := net.ParseIP(r.Header.Get(api.HeaderRelayedFor))
	if ip == nil {
		return errkind.New(errkind.Usage, "relayed call from satellite %s: bad %s", sat.Name, api.HeaderRelayedFor)
	}
	state := *r.TLS
	state.PeerCertificates, state.VerifiedChains = nil, nil
	if enc := r.Header.Get(api.HeaderRelayedCert); enc != "" {
		der, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return errkind.New(errkind.Auth, "relayed call from satellite %s: unreadable device certificate", sat.Name)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return errkind.New(errkind.Auth, "relayed call from satellite %s: unreadable device certificate", sat.Name)
		}
		chains, err := leaf.Verify(x509.VerifyOptions{Roots: s.trust.Load().config.ClientCAs, CurrentTime: s.now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return errkind.New(errkind.Auth, "relayed call from satellite %s: the device certificate does not verify against the zone CA", sat.Name)
		}
		state.PeerCertificates, state.VerifiedChains = []*x509.Certificate{leaf}, chains
	}
	r.TLS = &state
	r.RemoteAddr = net.JoinHostPort(ip.String(), "0")
	r.Header.Del(api.HeaderRelayedFor)
	r.Header.Del(api.HeaderRelayedCert)
	return nil
}

// deviceOfConn identifies the device at the other end of the TLS
// connection itself (never a relayed one).
func (s *Server) deviceOfConn(r *http.Request) (zone.Device, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return zone.Device{}, errkind.New(errkind.Auth, "no device certificate")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	dev, err := s.db.Device(leaf.Subject.CommonName)
	if err != nil || dev.CertSerial != pki.SerialHex(leaf) {
		return zone.Device{}, errkind.New(errkind.Auth, "device %s is not registered", leaf.Subject.CommonName)
	}
	return dev, nil
}
