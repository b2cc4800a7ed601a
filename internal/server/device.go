package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/server/satellites"
	"zonekit/internal/zone"
)

// deviceFromTLS identifies the device by its verified client certificate.
// The certificate must be the one the zone issued last: a deleted or
// re-registered device's old certificate is refused even though it still
// chains to the zone CA.
func (s *Server) deviceFromTLS(r *http.Request) (zone.Device, error) {
	if err := s.acceptRelay(r); err != nil {
		return zone.Device{}, err
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return zone.Device{}, errkind.New(errkind.Auth, "this route needs the device's certificate (register with zac first)")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	dev, err := s.db.Device(leaf.Subject.CommonName)
	if err != nil || dev.CertSerial != pki.SerialHex(leaf) {
		return zone.Device{}, errkind.New(errkind.Auth, "device %s is not registered in zone %s", leaf.Subject.CommonName, s.zone.Name)
	}
	return dev, nil
}

func (s *Server) urlOf(sv zone.Server) string {
	return fmt.Sprintf("https://%s:%d", sv.Name, sv.Port)
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	if err := s.acceptRelay(r); err != nil {
		return err
	}
	var req api.RegisterRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Key == "" && s.opts.Config.RegistrationRequiresKey {
		return errkind.New(errkind.Auth, "zone %s requires a registration key (zac register -k KEY)", s.zone.Name)
	}
	host := cleanHostname(req.Hostname)
	if host == "" {
		return errkind.New(errkind.Usage, "registration needs the device's host name")
	}
	idb := make([]byte, 16)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	cert, err := s.signer.Sign(r.Context(), api.ClusterSign{Kind: "device", ID: id, CSR: req.CSR})
	if err != nil {
		return err
	}
	now := s.db.Now()
	dev := zone.Device{ID: id, Name: host, OS: cleanHostname(req.OS), CertSerial: pki.SerialHex(cert),
		CertNotAfter: cert.NotAfter.UTC(), Registered: now, LastContact: now, Address: clientIP(r), RegKey: req.Key}
	if err := s.db.ExecBatch("device:"+id, zone.CmdDeviceRegister, map[string]any{"device": dev}); err != nil {
		return err
	}
	reg := s.registration(dev)
	reg.Certificate = string(pki.EncodeCertPEM(cert))
	if issuer := s.devCA.IssuerOf(cert); issuer != nil {
		reg.IssuerPEM = string(pki.EncodeCertPEM(issuer))
	}
	writeJSON(w, http.StatusCreated, reg)
	return nil
}

// cleanHostname keeps a reported name printable and short; it is shown to
// administrators and must not carry terminal escapes.
func cleanHostname(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) && r != '/' {
			return r
		}
		return -1
	}, strings.TrimSpace(s))
	if len(s) > 253 {
		s = s[:253]
	}
	return s
}

func (s *Server) registration(dev zone.Device) api.Registration {
	return api.Registration{DeviceID: dev.ID, ZoneName: s.zone.Name, ZoneID: s.zone.ID, Servers: s.serverURLsFor(dev),
		ContentSatellites: satellites.Content(s.db, dev.Address), AuthSatellites: satellites.Auth(s.db, dev)}
}

func (s *Server) deviceZone(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	writeJSON(w, http.StatusOK, s.registration(dev))
	return nil
}

func (s *Server) deviceRefresh(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	now := s.db.Now()
	if err := s.db.ExecBatch("device:"+dev.ID, zone.CmdDeviceContact, map[string]any{"id": dev.ID, "time": now, "address": clientIP(r)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Refresh{Registration: s.registration(dev), Contact: now,
		TrustedCAs: s.trustedCAs(), RenewCertificate: s.needsRenewal(r)})
	return nil
}

func (s *Server) deviceUnregister(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	if err := s.db.Exec("device:"+dev.ID, zone.CmdDeviceDelete, map[string]string{"name": dev.ID}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
