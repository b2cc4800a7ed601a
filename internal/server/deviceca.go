package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/pki"
	"zonekit/internal/server/certificates"
	"zonekit/internal/zone"
)

// The device-issuing CA (docs/design.md, "Trust model"): under an
// external zone CA the zone holds no key of its CA, so it keeps a CA of
// its own for what it issues itself: device certificates, satellite
// certificates and CPK signatures. Its certificate and its key, sealed
// with the zone's sealing key (the SPK values key), are in the zone
// store, so every server can sign with it and backups carry it. Under an
// internal CA the zone CA does all this, as before.

// deviceCASealName is the associated data the device CA's key is sealed
// with: a sealed SPK value cannot be passed off as the key, nor the
// reverse.
const deviceCASealName = "zone device CA key"

// deviceCAState caches the unsealed device CA of this server.
type deviceCAState struct {
	mu     sync.Mutex // one creation or rotation at a time on this server
	signer *pki.CA
}

// deviceIssuer is the CA certificate that issues device certificates now:
// the zone CA under an internal CA, the device CA under an external one
// (nil until the zone has made it).
func (s *Server) deviceIssuer() *x509.Certificate {
	st := s.trust.Load()
	if st.external {
		return st.deviceCA
	}
	return st.ca
}

// deviceSigner returns the device CA, ready to sign, when the zone CA is
// external (creating it if the zone has none yet); nil, nil under an
// internal CA, where the CertAuth server signs.
func (s *Server) deviceSigner(ctx context.Context) (*pki.CA, error) {
	st := s.trust.Load()
	if !st.external {
		return nil, nil
	}
	if st.deviceCA == nil {
		if _, err := s.ensureDeviceCA(ctx, "", false); err != nil {
			return nil, err
		}
		if st = s.trust.Load(); st.deviceCA == nil {
			return nil, errkind.New(errkind.Unavailable, "zone %s has no device CA yet: try again in a moment", s.zone.Name)
		}
	}
	s.devCA.mu.Lock()
	defer s.devCA.mu.Unlock()
	if c := s.devCA.signer; c != nil && c.Cert.Equal(st.deviceCA) {
		return c, nil
	}
	z, err := s.db.Zone()
	if err != nil {
		return nil, err
	}
	cert, err := pki.ParseCertPEM([]byte(z.DeviceCA))
	if err != nil {
		return nil, fmt.Errorf("the zone's device CA: %w", err)
	}
	if !cert.Equal(st.deviceCA) {
		// Rotated a moment ago elsewhere: take it up now rather than at
		// the next loop.
		if err := s.loadTrust(); err != nil {
			return nil, err
		}
	}
	keyPEM, err := s.spk.Unseal(ctx, deviceCASealName, z.DeviceCAKey)
	if err != nil {
		return nil, errkind.Wrap(errkind.Unavailable, fmt.Errorf("the device CA's key: %w", err))
	}
	key, err := pki.ParseKeyPEM([]byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("the device CA's key: %w", err)
	}
	if !pki.SameKey(cert.PublicKey, key) {
		return nil, fmt.Errorf("the device CA's sealed key is not the key of %s", cert.Subject)
	}
	s.devCA.signer = &pki.CA{Cert: cert, Key: key}
	return s.devCA.signer, nil
}

// ensureDeviceCA makes the zone's device CA when it has none (replace
// false), or a new one in place of the current (replace true, a
// rotation); it returns the device CA the zone holds afterwards. Steps:
// make the key and certificate, seal the key, record both with one zone
// command. A crash before the command leaves nothing (the key was only
// in memory); after it, the store has the new CA and every server's loop
// takes it up.
func (s *Server) ensureDeviceCA(ctx context.Context, actor string, replace bool) (*x509.Certificate, error) {
	s.devCA.mu.Lock()
	defer s.devCA.mu.Unlock()
	z, err := s.db.Zone()
	if err != nil {
		return nil, err
	}
	if z.CAInternal {
		return nil, errkind.New(errkind.Usage, "the zone CA of %s is internal: it issues device certificates itself (remint it with certificate-authority-remint); a separate device CA is kept only under an external CA", z.Name)
	}
	if z.DeviceCA != "" && !replace {
		return s.takeUpDeviceCA(z)
	}
	ca, err := pki.NewDeviceCA(z.Name, s.now())
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(ca.Key)
	if err != nil {
		return nil, err
	}
	sealed, err := s.spk.Seal(ctx, deviceCASealName, string(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("seal the device CA's key: %w", err)
	}
	failpoint.Crash("device-ca-sealed")
	if actor == "" {
		actor = certificates.SystemActor
	}
	err = s.db.SetDeviceCA(actor, zone.DeviceCASet{CertPEM: string(pki.EncodeCertPEM(ca.Cert)), SealedKey: sealed, Replaces: zone.DeviceCAID(z.DeviceCA)})
	if zone.IsDeviceCAChanged(err) && !replace {
		// Another server made it first: use theirs.
		if z, err = s.db.Zone(); err != nil {
			return nil, err
		}
		return s.takeUpDeviceCA(z)
	}
	if err != nil {
		return nil, err
	}
	failpoint.Crash("device-ca-recorded")
	if replace {
		s.log.Info("device CA rotated", "actor", actor, "subject", ca.Cert.Subject.String(), "sha256", pki.Fingerprint(ca.Cert, "sha256"))
	} else {
		s.log.Info("device CA created: it issues device certificates while the zone CA is external", "subject", ca.Cert.Subject.String(), "sha256", pki.Fingerprint(ca.Cert, "sha256"))
	}
	s.devCA.signer = ca
	if err := s.loadTrust(); err != nil {
		return nil, err
	}
	return ca.Cert, nil
}

// takeUpDeviceCA makes this server's TLS accept the zone's device CA when
// it does not yet.
func (s *Server) takeUpDeviceCA(z zone.Zone) (*x509.Certificate, error) {
	cert, err := pki.ParseCertPEM([]byte(z.DeviceCA))
	if err != nil {
		return nil, fmt.Errorf("the zone's device CA: %w", err)
	}
	if st := s.trust.Load(); st.deviceCA == nil || !st.deviceCA.Equal(cert) {
		if err := s.loadTrust(); err != nil {
			return nil, err
		}
	}
	return cert, nil
}

// deviceCAStep, in the certificate loop of every server, takes up a
// device CA made or rotated elsewhere, makes one when an external zone
// has none (a change to an external CA just activated, or a zone
// upgraded from a version without it), and replaces it when it expires
// within pki.ExpiringWithin.
func (s *Server) deviceCAStep(ctx context.Context) error {
	z, err := s.db.Zone()
	if err != nil {
		return err
	}
	st := s.trust.Load()
	var stored *x509.Certificate
	if !z.CAInternal && z.DeviceCA != "" {
		if stored, err = pki.ParseCertPEM([]byte(z.DeviceCA)); err != nil {
			return fmt.Errorf("the zone's device CA: %w", err)
		}
	}
	if st.external != !z.CAInternal || (stored == nil) != (st.deviceCA == nil) || (stored != nil && !stored.Equal(st.deviceCA)) {
		if err := s.loadTrust(); err != nil {
			return err
		}
	}
	if z.CAInternal {
		return nil
	}
	if stored == nil {
		_, err := s.ensureDeviceCA(ctx, "", false)
		return err
	}
	if stored.NotAfter.Sub(s.now()) < pki.ExpiringWithin {
		_, err := s.ensureDeviceCA(ctx, "", true)
		if zone.IsDeviceCAChanged(err) {
			return nil // another server rotated it
		}
		return err
	}
	return nil
}

// localIssuer is the CA this server signs satellite certificates and CPK
// signatures with: the device CA under an external zone CA (any server),
// the zone CA where this server holds it (CertAuth) under an internal one.
func (s *Server) localIssuer(ctx context.Context, what string) (*pki.CA, error) {
	dca, err := s.deviceSigner(ctx)
	if err != nil || dca != nil {
		return dca, err
	}
	if ca := s.ca.Load(); ca != nil {
		return ca, nil
	}
	return nil, errkind.New(errkind.Unavailable, "server %s does not hold the CertAuth role: ask the server that does for %s", s.self.Name, what)
}

// rotateDeviceCA replaces the device CA (zman certificate-device-ca-rotate):
// devices keep their certificates, accepted until they expire, and renew
// them from the new CA at their next refresh.
func (s *Server) rotateDeviceCA(w http.ResponseWriter, r *http.Request, actor string) error {
	z, err := s.db.Zone()
	if err != nil {
		return err
	}
	cert, err := s.ensureDeviceCA(r.Context(), actor, z.DeviceCA != "")
	if zone.IsDeviceCAChanged(err) {
		return errkind.New(errkind.Exists, "the device CA was rotated by another server meanwhile: see certificate-authority-info")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, certificates.Summary(cert, true))
	return nil
}

// issuerOf returns which of the zone's issuing CAs signed a certificate
// it just issued (for the agent to check the certificate against).
func (s *Server) issuerOf(c *x509.Certificate) *x509.Certificate {
	for _, ca := range []*x509.Certificate{s.deviceIssuer(), s.zoneCA()} {
		if ca != nil && c.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// fromDeviceCA reports whether a verified chain ends at the device CA:
// such a certificate is a device's or a satellite's, never a zone
// server's, whatever its name.
func (s *Server) fromDeviceCA(chain []*x509.Certificate) bool {
	dca := s.trust.Load().deviceCA
	return dca != nil && len(chain) > 0 && chain[len(chain)-1].Equal(dca)
}

// remintLoop is the daemon's certificate loop: each second a step of the
// change under way (certificates.Changes), then of the device CA.
func (s *Server) remintLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.restored.Load() {
				return
			}
			s.changes.Step()
			if err := s.deviceCAStep(ctx); err != nil {
				msg := err.Error()
				if prev := s.deviceCAErr.Swap(&msg); prev == nil || *prev != msg {
					s.log.Error("device CA", "err", err)
				}
			} else {
				s.deviceCAErr.Store(nil)
			}
		}
	}
}
