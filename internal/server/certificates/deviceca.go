package certificates

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/pki"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// The device-issuing CA (docs/design.md, "Trust model"): under an
// external zone CA the zone holds no key of its CA, so it keeps a CA of
// its own for what it issues itself: device certificates, satellite
// certificates and CPK signatures. Its certificate and its key, sealed
// with the zone's sealing key (the SPK values key), are in the zone
// store, so every server can sign with it and backups carry it. Under an
// internal CA the zone CA does all this, as before.

// DeviceCASealName is the associated data the device CA's key is sealed
// with: a sealed SPK value cannot be passed off as the key, nor the
// reverse.
const DeviceCASealName = "zone device CA key"

// DeviceCAZone is what the device CA needs of the zone's state (*zone.DB).
type DeviceCAZone interface {
	Zone() (zone.Zone, error)
	SetDeviceCA(actor string, set zone.DeviceCASet) error
}

// Sealer seals and unseals with the zone's sealing key (the core's
// spksecrets.Keyring).
type Sealer interface {
	Seal(ctx context.Context, name, value string) (string, error)
	Unseal(ctx context.Context, name, sealed string) (string, error)
}

// DeviceCA is the zone's device-issuing CA as this server uses it: which
// CA issues device certificates now, its signer (the sealed key, unsealed
// once and cached), its creation and rotation, and its step in the
// certificate loop. TLS is the core's trust state, CA the zone CA this
// server holds (CertAuth), Self this server.
type DeviceCA struct {
	Zone   DeviceCAZone
	TLS    TLS
	CA     CAHolder
	Sealer Sealer
	Self   zone.Server
	Now    func() time.Time
	Log    *slog.Logger

	mu      sync.Mutex // one creation or rotation at a time on this server
	signer  *pki.CA
	lastErr atomic.Pointer[string] // last error the loop logged
}

// Register mounts the device CA's route.
func (d *DeviceCA) Register(r httpapi.Routes) {
	r.Admin("POST "+api.Prefix+"/certificate-authority/device-ca/rotate", d.rotate)
}

// Issuer is the CA certificate that issues device certificates now:
// the zone CA under an internal CA, the device CA under an external one
// (nil until the zone has made it).
func (d *DeviceCA) Issuer() *x509.Certificate {
	if d.TLS.External() {
		return d.TLS.DeviceCA()
	}
	return d.TLS.ZoneCA()
}

// Signer returns the device CA, ready to sign, when the zone CA is
// external (creating it if the zone has none yet); nil, nil under an
// internal CA, where the CertAuth server signs.
func (d *DeviceCA) Signer(ctx context.Context) (*pki.CA, error) {
	if !d.TLS.External() {
		return nil, nil
	}
	current := d.TLS.DeviceCA()
	if current == nil {
		if _, err := d.Ensure(ctx, "", false); err != nil {
			return nil, err
		}
		if current = d.TLS.DeviceCA(); current == nil {
			z, _ := d.Zone.Zone()
			return nil, errkind.New(errkind.Unavailable, "zone %s has no device CA yet: try again in a moment", z.Name)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.signer; c != nil && c.Cert.Equal(current) {
		return c, nil
	}
	z, err := d.Zone.Zone()
	if err != nil {
		return nil, err
	}
	cert, err := pki.ParseCertPEM([]byte(z.DeviceCA))
	if err != nil {
		return nil, fmt.Errorf("the zone's device CA: %w", err)
	}
	if !cert.Equal(current) {
		// Rotated a moment ago elsewhere: take it up now rather than at
		// the next loop.
		if err := d.TLS.Reload(); err != nil {
			return nil, err
		}
	}
	keyPEM, err := d.Sealer.Unseal(ctx, DeviceCASealName, z.DeviceCAKey)
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
	d.signer = &pki.CA{Cert: cert, Key: key}
	return d.signer, nil
}

// Ensure makes the zone's device CA when it has none (replace
// false), or a new one in place of the current (replace true, a
// rotation); it returns the device CA the zone holds afterwards. Steps:
// make the key and certificate, seal the key, record both with one zone
// command. A crash before the command leaves nothing (the key was only
// in memory); after it, the store has the new CA and every server's loop
// takes it up.
func (d *DeviceCA) Ensure(ctx context.Context, actor string, replace bool) (*x509.Certificate, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	z, err := d.Zone.Zone()
	if err != nil {
		return nil, err
	}
	if z.CAInternal {
		return nil, errkind.New(errkind.Usage, "the zone CA of %s is internal: it issues device certificates itself (remint it with certificate-authority-remint); a separate device CA is kept only under an external CA", z.Name)
	}
	if z.DeviceCA != "" && !replace {
		return d.takeUp(z)
	}
	ca, err := pki.NewDeviceCA(z.Name, d.Now())
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(ca.Key)
	if err != nil {
		return nil, err
	}
	sealed, err := d.Sealer.Seal(ctx, DeviceCASealName, string(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("seal the device CA's key: %w", err)
	}
	failpoint.Crash("device-ca-sealed")
	if actor == "" {
		actor = SystemActor
	}
	err = d.Zone.SetDeviceCA(actor, zone.DeviceCASet{CertPEM: string(pki.EncodeCertPEM(ca.Cert)), SealedKey: sealed, Replaces: zone.DeviceCAID(z.DeviceCA)})
	if zone.IsDeviceCAChanged(err) && !replace {
		// Another server made it first: use theirs.
		if z, err = d.Zone.Zone(); err != nil {
			return nil, err
		}
		return d.takeUp(z)
	}
	if err != nil {
		return nil, err
	}
	failpoint.Crash("device-ca-recorded")
	if replace {
		d.Log.Info("device CA rotated", "actor", actor, "subject", ca.Cert.Subject.String(), "sha256", pki.Fingerprint(ca.Cert, "sha256"))
	} else {
		d.Log.Info("device CA created: it issues device certificates while the zone CA is external", "subject", ca.Cert.Subject.String(), "sha256", pki.Fingerprint(ca.Cert, "sha256"))
	}
	d.signer = ca
	if err := d.TLS.Reload(); err != nil {
		return nil, err
	}
	return ca.Cert, nil
}

// takeUp makes this server's TLS accept the zone's device CA when
// it does not yet.
func (d *DeviceCA) takeUp(z zone.Zone) (*x509.Certificate, error) {
	cert, err := pki.ParseCertPEM([]byte(z.DeviceCA))
	if err != nil {
		return nil, fmt.Errorf("the zone's device CA: %w", err)
	}
	if cur := d.TLS.DeviceCA(); cur == nil || !cur.Equal(cert) {
		if err := d.TLS.Reload(); err != nil {
			return nil, err
		}
	}
	return cert, nil
}

// Step, in the certificate loop of every server, takes up a
// device CA made or rotated elsewhere, makes one when an external zone
// has none (a change to an external CA just activated, or a zone
// upgraded from a version without it), and replaces it when it expires
// within pki.ExpiringWithin.
func (d *DeviceCA) Step(ctx context.Context) error {
	z, err := d.Zone.Zone()
	if err != nil {
		return err
	}
	cur := d.TLS.DeviceCA()
	var stored *x509.Certificate
	if !z.CAInternal && z.DeviceCA != "" {
		if stored, err = pki.ParseCertPEM([]byte(z.DeviceCA)); err != nil {
			return fmt.Errorf("the zone's device CA: %w", err)
		}
	}
	if d.TLS.External() != !z.CAInternal || (stored == nil) != (cur == nil) || (stored != nil && !stored.Equal(cur)) {
		if err := d.TLS.Reload(); err != nil {
			return err
		}
	}
	if z.CAInternal {
		return nil
	}
	if stored == nil {
		_, err := d.Ensure(ctx, "", false)
		return err
	}
	if stored.NotAfter.Sub(d.Now()) < pki.ExpiringWithin {
		_, err := d.Ensure(ctx, "", true)
		if zone.IsDeviceCAChanged(err) {
			return nil // another server rotated it
		}
		return err
	}
	return nil
}

// LocalIssuer is the CA this server signs satellite certificates and CPK
// signatures with: the device CA under an external zone CA (any server),
// the zone CA where this server holds it (CertAuth) under an internal one.
func (d *DeviceCA) LocalIssuer(ctx context.Context, what string) (*pki.CA, error) {
	dca, err := d.Signer(ctx)
	if err != nil || dca != nil {
		return dca, err
	}
	if ca := d.CA.Load(); ca != nil {
		return ca, nil
	}
	return nil, errkind.New(errkind.Unavailable, "server %s does not hold the CertAuth role: ask the server that does for %s", d.Self.Name, what)
}

// rotate replaces the device CA (zman certificate-device-ca-rotate):
// devices keep their certificates, accepted until they expire, and renew
// them from the new CA at their next refresh.
func (d *DeviceCA) rotate(w http.ResponseWriter, r *http.Request, actor string) error {
	z, err := d.Zone.Zone()
	if err != nil {
		return err
	}
	cert, err := d.Ensure(r.Context(), actor, z.DeviceCA != "")
	if zone.IsDeviceCAChanged(err) {
		return errkind.New(errkind.Exists, "the device CA was rotated by another server meanwhile: see certificate-authority-info")
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, Summary(cert, true))
	return nil
}

// IssuerOf returns which of the zone's issuing CAs signed a certificate
// it just issued (for the agent to check the certificate against). The
// certificate names its issuer (issuer name and authority key id, set
// from the CA by x509.CreateCertificate): that names the CA without a
// signature check, about 0.1 ms of each registration; one without key ids
// (a CA imported without them) is checked against each CA's key.
func (d *DeviceCA) IssuerOf(c *x509.Certificate) *x509.Certificate {
	cas := []*x509.Certificate{d.Issuer(), d.TLS.ZoneCA()}
	for _, ca := range cas {
		if ca != nil && len(c.AuthorityKeyId) > 0 && bytes.Equal(c.AuthorityKeyId, ca.SubjectKeyId) &&
			bytes.Equal(c.RawIssuer, ca.RawSubject) {
			return ca
		}
	}
	for _, ca := range cas {
		if ca != nil && c.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// Issued reports whether a verified chain ends at the device CA:
// such a certificate is a device's or a satellite's, never a zone
// server's, whatever its name.
func (d *DeviceCA) Issued(chain []*x509.Certificate) bool {
	dca := d.TLS.DeviceCA()
	return dca != nil && len(chain) > 0 && chain[len(chain)-1].Equal(dca)
}

// Loop is the daemon's certificate loop: each second a step of the
// certificate change under way, then of the device CA, until ctx ends or
// Stopped (a restore) says to answer nothing more.
type Loop struct {
	Changes  *Changes
	DeviceCA *DeviceCA
	Stopped  func() bool
}

// Run runs the loop until ctx ends.
func (l Loop) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if l.Stopped() {
				return
			}
			l.Changes.Step()
			d := l.DeviceCA
			if err := d.Step(ctx); err != nil {
				msg := err.Error()
				if prev := d.lastErr.Swap(&msg); prev == nil || *prev != msg {
					d.Log.Error("device CA", "err", err)
				}
			} else {
				d.lastErr.Store(nil)
			}
		}
	}
}
