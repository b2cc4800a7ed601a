package agent

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
)

// SatelliteConfig asks the zone what this device does as a satellite
// (its roles, the content URL agents use, its parent), as the
// administrator set it with 'zman satellite-add-role'.
func (a *Agent) SatelliteConfig(ctx context.Context) (api.Satellite, error) {
	st, err := a.State()
	if err != nil {
		return api.Satellite{}, err
	}
	var sat api.Satellite
	err = a.firstAnswer(zoneServersOnly(st), func(c *client.Client) error {
		return c.Get(ctx, api.Prefix+"/device/satellite", &sat)
	})
	if err != nil {
		return api.Satellite{}, fmt.Errorf("satellite configuration: %w", err)
	}
	return sat, nil
}

// SatelliteCertPath and SatelliteKeyPath hold the certificate (leaf first,
// then its chain) and key the satellite serves agents with over HTTPS.
func (a *Agent) SatelliteCertPath() string { return filepath.Join(a.Home, "satellite", "cert.pem") }
func (a *Agent) SatelliteKeyPath() string {
	return filepath.Join(a.Home, "security", "satellite.key")
}

// SatelliteCertResult tells what a satellite certificate change did.
type SatelliteCertResult struct {
	Subject  string    `json:"subject"`
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	Serial   string    `json:"serial"`
	NewKey   bool      `json:"new_key"`
}

// RequestSatelliteCert has the zone CA certify this satellite for the
// names of all its roles (zac asr -t all, zac rsc): a CSR is made here and
// the key never leaves the device. keepKey reuses the current key when
// there is one (a remint); otherwise a new key is made.
func (a *Agent) RequestSatelliteCert(ctx context.Context, keepKey bool) (SatelliteCertResult, error) {
	st, err := a.State()
	if err != nil {
		return SatelliteCertResult{}, err
	}
	var key crypto.Signer
	newKey := true
	if keepKey {
		if data, err := os.ReadFile(a.SatelliteKeyPath()); err == nil {
			if key, err = pki.ParseKeyPEM(data); err != nil {
				return SatelliteCertResult{}, fmt.Errorf("satellite key %s: %w", a.SatelliteKeyPath(), err)
			}
			newKey = false
		}
	}
	if key == nil {
		if key, err = pki.GenerateKey(pki.ECDSAP256); err != nil {
			return SatelliteCertResult{}, err
		}
	}
	csr, err := pki.NewCSR(key, st.DeviceID)
	if err != nil {
		return SatelliteCertResult{}, err
	}
	var out api.SatelliteCert
	err = a.firstAnswer(zoneServersOnly(st), func(c *client.Client) error {
		return c.Post(ctx, api.Prefix+"/device/satellite/certificate", api.SatelliteCertRequest{CSR: string(csr)}, &out)
	})
	if err != nil {
		return SatelliteCertResult{}, fmt.Errorf("satellite certificate: %w", err)
	}
	certs, err := pki.ParseCertsPEM([]byte(out.Certificate))
	if err != nil {
		return SatelliteCertResult{}, fmt.Errorf("satellite certificate from the zone: %w", err)
	}
	res, err := a.installSatelliteCert(certs, key)
	res.NewKey = newKey
	return res, err
}

// ImportSatelliteCert installs a certificate and key an administrator
// brings (zac iac): the certificate must be for the key, chain to a CA of
// this device's trust store (through the intermediates given with it) and
// serve TLS, so that agents trusting only the zone CA accept it.
func (a *Agent) ImportSatelliteCert(certs []*x509.Certificate, key crypto.Signer) (SatelliteCertResult, error) {
	if _, err := a.State(); err != nil {
		return SatelliteCertResult{}, err
	}
	return a.installSatelliteCert(certs, key)
}

func (a *Agent) installSatelliteCert(certs []*x509.Certificate, key crypto.Signer) (SatelliteCertResult, error) {
	cas, err := a.TrustedCAs()
	if err != nil {
		return SatelliteCertResult{}, err
	}
	var leaf *x509.Certificate
	var chain []*x509.Certificate
	var errs []error
	for _, ca := range cas {
		leaf, chain, err = pki.CheckServerCert(certs, pki.ServerCertCheck{Root: ca, PublicKey: key.Public(), At: a.Now()})
		if err == nil {
			break
		}
		errs = append(errs, err)
	}
	if leaf == nil {
		return SatelliteCertResult{}, errkind.New(errkind.Invalid, "certificate refused: %v (agents trust only the zone CA %s)", errs[0], cas[0].Subject.CommonName)
	}
	if a.Now().After(leaf.NotAfter) {
		return SatelliteCertResult{}, errkind.New(errkind.Invalid, "certificate refused: it expired on %s", leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return SatelliteCertResult{}, err
	}
	if err := os.MkdirAll(filepath.Dir(a.SatelliteKeyPath()), 0o700); err != nil {
		return SatelliteCertResult{}, err
	}
	if err := os.MkdirAll(filepath.Dir(a.SatelliteCertPath()), 0o755); err != nil {
		return SatelliteCertResult{}, err
	}
	// Key first: a certificate never sits beside a key it does not match
	// for longer than the two renames (a running satellite-serve checks the
	// pair before it switches).
	oldKey, oldKeyErr := os.ReadFile(a.SatelliteKeyPath())
	if err := atomicfile.WriteFile(a.SatelliteKeyPath(), keyPEM, 0o600); err != nil {
		return SatelliteCertResult{}, err
	}
	if err := atomicfile.WriteFile(a.SatelliteCertPath(), pki.EncodeChainPEM(chain...), 0o644); err != nil {
		// Put the old pair back together rather than leave a key without
		// its certificate.
		if oldKeyErr == nil {
			atomicfile.WriteFile(a.SatelliteKeyPath(), oldKey, 0o600)
		} else {
			os.Remove(a.SatelliteKeyPath())
		}
		return SatelliteCertResult{}, err
	}
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return SatelliteCertResult{Subject: leaf.Subject.CommonName, Names: names, Issuer: leaf.Issuer.CommonName,
		NotAfter: leaf.NotAfter.UTC(), Serial: pki.SerialHex(leaf)}, nil
}

// zoneServersOnly is st with the authentication satellites taken out of
// its server list: a satellite talks to the zone servers themselves.
func zoneServersOnly(st State) State {
	var servers []string
	for _, s := range st.Servers {
		if !slices.Contains(st.AuthSatellites, s) {
			servers = append(servers, s)
		}
	}
	st.Servers = servers
	return st
}

// ZoneServers lists the zone servers this device knows, without the
// authentication satellites: where a satellite relays to.
func (a *Agent) ZoneServers() ([]string, error) {
	st, err := a.State()
	if err != nil {
		return nil, err
	}
	return zoneServersOnly(st).Servers, nil
}

// DeviceCert is this device's TLS client certificate (a satellite relays
// with it).
func (a *Agent) DeviceCert() (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(a.certPath(), a.keyPath())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("device certificate: %w", err)
	}
	return cert, nil
}

// SatellitePackages lists the active packages a content satellite
// prefetches.
func (a *Agent) SatellitePackages(ctx context.Context) ([]api.SatellitePackage, error) {
	st, err := a.State()
	if err != nil {
		return nil, err
	}
	var out []api.SatellitePackage
	err = a.firstAnswer(zoneServersOnly(st), func(c *client.Client) error {
		return c.Get(ctx, api.Prefix+"/device/satellite/packages", &out)
	})
	return out, err
}
