package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
)

// TrustedCAs reads every CA in the agent's trust store (cacert.pem): the
// zone CA first, then any the zone announced for a change under way or
// that an administrator added with cert-info.
func (a *Agent) TrustedCAs() ([]*x509.Certificate, error) {
	data, err := os.ReadFile(a.CACertPath())
	if err != nil {
		if os.IsNotExist(err) {
			return nil, errkind.New(errkind.Refused, "no zone CA certificate at %s: register first, or add one with 'zac cert-info FILE'", a.CACertPath())
		}
		return nil, err
	}
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		return nil, errkind.New(errkind.Failure, "trust store %s: %v", a.CACertPath(), err)
	}
	return certs, nil
}

// adoptTrust replaces the trust store with what the zone says to trust,
// when that differs. Only an authenticated zone server is asked.
func (a *Agent) adoptTrust(pems []string) (changed bool, err error) {
	if len(pems) == 0 {
		return false, nil
	}
	var certs []*x509.Certificate
	for _, p := range pems {
		c, err := pki.ParseCertPEM([]byte(p))
		if err != nil || !c.IsCA {
			return false, fmt.Errorf("the zone sent an unusable CA certificate")
		}
		certs = append(certs, c)
	}
	// Roots the administrator added (zac cert-info) stay beside the
	// zone's: the zone does not know them, and a refresh must not drop
	// them.
	for _, c := range a.addedCAs() {
		if !containsCert(certs, c) {
			certs = append(certs, c)
		}
	}
	want := pki.EncodeChainPEM(certs...)
	if have, err := os.ReadFile(a.CACertPath()); err == nil && bytes.Equal(have, want) {
		return false, nil
	}
	return true, atomicfile.WriteFile(a.CACertPath(), want, 0o644)
}

// renewCertificate gets a new device certificate over c (the zone asked
// for it: the old one is from a replaced CA or expires soon).
func (a *Agent) renewCertificate(ctx context.Context, db *bolt.DB, c *client.Client, st *State) error {
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, st.DeviceID)
	if err != nil {
		return err
	}
	var out api.DeviceCertificate
	if err := c.Post(ctx, api.Prefix+"/device/certificate", api.DeviceCertificateRequest{CSR: string(csr)}, &out); err != nil {
		return fmt.Errorf("renew the device certificate: %w", err)
	}
	return a.installDeviceCert(db, st, key, out)
}

// installDeviceCert checks a certificate the zone issued for key, then
// makes it, its key and the zone's trust current.
func (a *Agent) installDeviceCert(db *bolt.DB, st *State, key crypto.Signer, out api.DeviceCertificate) error {
	cert, err := pki.ParseCertPEM([]byte(out.Certificate))
	if err != nil {
		return fmt.Errorf("renewed device certificate: %w", err)
	}
	if len(out.TrustedCAs) == 0 {
		return fmt.Errorf("the zone sent no CA with the device certificate")
	}
	// The first is the zone CA; under an external one the device CA that
	// issues device certificates comes last.
	var cas []*x509.Certificate
	for _, p := range out.TrustedCAs {
		c, err := pki.ParseCertPEM([]byte(p))
		if err != nil {
			return err
		}
		cas = append(cas, c)
	}
	ca := cas[0]
	if err := checkDeviceCert(cert, cas, key.Public()); err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.keyPath()), 0o700); err != nil {
		return err
	}
	// Trust, then the new identity in agent.db, then the certificate,
	// then its key: until the key lands the old pair is still whole on
	// disk, and a crash between the renames leaves a pair that the next
	// open writes again from the committed identity (restoreIdentity).
	if _, err := a.adoptTrust(out.TrustedCAs); err != nil {
		return err
	}
	id := identity{KeyPEM: string(keyPEM), CertPEM: string(pki.EncodeCertPEM(cert))}
	if err := db.Update(func(tx *bolt.Tx) error { return putIdentity(tx, &id) }); err != nil {
		return fmt.Errorf("record the renewed device certificate: %w", err)
	}
	if err := atomicfile.WriteFile(a.keyPath()+".new", keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(a.certPath(), pki.EncodeCertPEM(cert), 0o644); err != nil {
		return err
	}
	if err := os.Rename(a.keyPath()+".new", a.keyPath()); err != nil {
		return err
	}
	st.CertNotAfter = cert.NotAfter.UTC()
	st.CAFingerprint = pki.Fingerprint(ca, "sha256")
	return nil
}

// addedPath keeps the roots added with zac cert-info, so that the trust
// store the zone refreshes can keep them.
func (a *Agent) addedPath() string { return filepath.Join(a.Home, "added-ca.pem") }

// addedCAs are the roots added with zac cert-info; an unreadable file
// adds none (the zone's CAs are still trusted).
func (a *Agent) addedCAs() []*x509.Certificate {
	data, err := os.ReadFile(a.addedPath())
	if err != nil {
		return nil
	}
	certs, _ := pki.ParseCertsPEM(data)
	return certs
}

// AddTrustedCA adds the CA certificates in file (PEM, DER or PKCS#7) to
// the trust store (zac cert-info), where they stay across refreshes. It
// returns those that were new to the trust store.
func (a *Agent) AddTrustedCA(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil, errkind.New(errkind.NotFound, "%s does not exist", file)
	}
	if err != nil {
		return nil, errkind.Wrap(errkind.Usage, err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, errkind.New(errkind.Invalid, "%s: %v", file, err)
	}
	have, err := a.TrustedCAs()
	if err != nil && !errkind.Is(err, errkind.Refused) {
		return nil, err
	}
	var added []*x509.Certificate
	kept := a.addedCAs()
	keptBefore := len(kept)
	for _, c := range certs {
		if !c.IsCA {
			return nil, errkind.New(errkind.Invalid, "%s: %s is not a CA certificate", file, c.Subject)
		}
		if !containsCert(kept, c) {
			kept = append(kept, c)
		}
		if containsCert(have, c) || containsCert(added, c) {
			continue
		}
		added = append(added, c)
	}
	if err := os.MkdirAll(a.Home, 0o755); err != nil {
		return nil, err
	}
	if len(kept) > keptBefore {
		if err := atomicfile.WriteFile(a.addedPath(), pki.EncodeChainPEM(kept...), 0o644); err != nil {
			return nil, err
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	return added, atomicfile.WriteFile(a.CACertPath(), pki.EncodeChainPEM(append(have, added...)...), 0o644)
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// RetrustOptions are the inputs of Retrust.
type RetrustOptions struct {
	Server      string // default: the servers the agent knows
	User        string
	Password    string
	Fingerprint string // SHA-256 of the zone CA to accept, as zman certificate-authority-info shows it
	// Confirm, when set, is asked whether to trust a CA nothing vouches for.
	Confirm func(ca *x509.Certificate) (bool, error)
}

// RetrustResult says what Retrust did.
type RetrustResult struct {
	Server    string `json:"server"`
	CA        string `json:"ca_subject"`
	SHA256    string `json:"ca_sha256_fingerprint"`
	VouchedBy string `json:"vouched_by"` // already-trusted, cross-certificate, fingerprint, administrator
	DeviceID  string `json:"device_id"`
}

// Retrust re-establishes a device's trust in its zone after it missed a
// change of CA. The zone's current CA is accepted only if it is already
// trusted, certified by a trusted CA through the zone's cross
// certificates (the old CA's key signed the new one), matches
// opts.Fingerprint, or is confirmed by the person at the terminal. Only
// then are the administrator's credentials sent, over TLS verified
// against that CA, to have the device re-certified.
func (a *Agent) Retrust(ctx context.Context, o RetrustOptions) (RetrustResult, error) {
	db, err := a.open(false)
	if err != nil {
		return RetrustResult{}, err
	}
	defer db.Close()
	st, err := readState(db)
	if err != nil {
		return RetrustResult{}, err
	}
	servers := st.Servers
	if o.Server != "" {
		u, err := client.ParseServerURL(o.Server)
		if err != nil {
			return RetrustResult{}, err
		}
		servers = []string{u.String()}
	}
	trusted, _ := a.TrustedCAs()
	var errs []string
	for _, srv := range servers {
		res, err := a.retrustWith(ctx, db, srv, &st, trusted, o)
		if err == nil {
			st.LastContact = a.Now().UTC()
			if o.Server != "" {
				// The server named is where the zone is now (a device that
				// missed a rename): it is tried first from now on.
				st.Servers = append([]string{srv}, slices.DeleteFunc(st.Servers, func(s string) bool { return s == srv })...)
			}
			if err := writeState(db, &st); err != nil {
				return RetrustResult{}, err
			}
			return res, nil
		}
		if errkind.Is(err, errkind.Auth) || errkind.Is(err, errkind.Invalid) || errkind.Is(err, errkind.NotFound) {
			return RetrustResult{}, err
		}
		errs = append(errs, err.Error())
	}
	return RetrustResult{}, errkind.New(errkind.Unavailable, "retrust: no zone server answered: %s", strings.Join(errs, "; "))
}

func (a *Agent) retrustWith(ctx context.Context, db *bolt.DB, srv string, st *State, trusted []*x509.Certificate, o RetrustOptions) (RetrustResult, error) {
	t, err := fetchTrust(ctx, srv)
	if err != nil {
		return RetrustResult{}, err
	}
	ca, err := pki.ParseCertPEM([]byte(t.CAPEM))
	if err != nil || !ca.IsCA {
		return RetrustResult{}, errkind.New(errkind.Invalid, "%s sent no usable zone CA", srv)
	}
	if t.Zone != st.ZoneName && st.ZoneName != "" {
		return RetrustResult{}, errkind.New(errkind.Invalid, "%s serves zone %q, this device belongs to %q", srv, t.Zone, st.ZoneName)
	}
	res := RetrustResult{Server: srv, CA: ca.Subject.String(), SHA256: pki.Fingerprint(ca, "sha256"), DeviceID: st.DeviceID}
	var cross []*x509.Certificate
	for _, p := range t.CrossPEMs {
		if c, err := pki.ParseCertPEM([]byte(p)); err == nil {
			cross = append(cross, c)
		}
	}
	switch {
	case containsCert(trusted, ca):
		res.VouchedBy = "already-trusted"
	case vouchedThroughChain(ca, cross, trusted):
		res.VouchedBy = "cross-certificate"
	case o.Fingerprint != "":
		if !sameFingerprint(o.Fingerprint, res.SHA256) {
			return RetrustResult{}, errkind.New(errkind.Invalid, "the zone CA at %s has SHA-256 %s, not the fingerprint given (%s): refusing it", srv, res.SHA256, o.Fingerprint)
		}
		res.VouchedBy = "fingerprint"
	case o.Confirm != nil:
		ok, err := o.Confirm(ca)
		if err != nil {
			return RetrustResult{}, err
		}
		if !ok {
			return RetrustResult{}, errkind.New(errkind.Cancelled, "the zone CA was not accepted")
		}
		res.VouchedBy = "administrator"
	default:
		return RetrustResult{}, errkind.New(errkind.Invalid, "nothing this device trusts vouches for the zone CA %q (SHA-256 %s): check it with 'zman certificate-authority-info' and pass --fingerprint",
			ca.Subject.CommonName, res.SHA256)
	}
	var more []*x509.Certificate
	if f, err := pki.ParseCertPEM([]byte(t.FuturePEM)); err == nil {
		more = append(more, f)
	}
	c, err := client.New(client.Options{BaseURL: srv, CA: ca, MoreCAs: more, Auth: client.Basic(o.User, o.Password), Timeout: 30 * time.Second, EnvProxy: true})
	if err != nil {
		return RetrustResult{}, err
	}
	defer c.Close()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return RetrustResult{}, err
	}
	csr, err := pki.NewCSR(key, st.DeviceID)
	if err != nil {
		return RetrustResult{}, err
	}
	var out api.DeviceCertificate
	if err := c.Post(ctx, api.Prefix+"/device/retrust", api.DeviceCertificateRequest{DeviceID: st.DeviceID, CSR: string(csr)}, &out); err != nil {
		return RetrustResult{}, err
	}
	if err := a.installDeviceCert(db, st, key, out); err != nil {
		return RetrustResult{}, err
	}
	return res, nil
}

// vouchedThroughChain follows cross certificates from a trusted CA to ca,
// through several remints if the device missed more than one.
func vouchedThroughChain(ca *x509.Certificate, cross, trusted []*x509.Certificate) bool {
	known := append([]*x509.Certificate(nil), trusted...)
	for range cross {
		if pki.VouchedFor(ca, cross, known) {
			return true
		}
		grew := false
		for _, c := range cross {
			if !containsCert(known, c) && pki.VouchedFor(c, cross, known) {
				known, grew = append(known, c), true
			}
		}
		if !grew {
			return false
		}
	}
	return false
}

func sameFingerprint(a, b string) bool {
	norm := func(s string) string { return strings.ToUpper(strings.NewReplacer(":", "", " ", "").Replace(s)) }
	return norm(a) == norm(b)
}

// fetchTrust asks a server for the zone's CAs without verifying its
// certificate: nothing secret is sent, and the answer is believed only
// through what Retrust checks afterwards.
func fetchTrust(ctx context.Context, srv string) (api.Trust, error) {
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // see above
		Proxy:           http.ProxyFromEnvironment,                                           // as zac's API client (HTTPS_PROXY, NO_PROXY)
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv+api.Prefix+"/trust", nil)
	if err != nil {
		return api.Trust{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return api.Trust{}, errkind.Wrap(errkind.Unavailable, fmt.Errorf("%s: %w", srv, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return api.Trust{}, errkind.New(errkind.Unavailable, "%s answered %s to the trust request", srv, resp.Status)
	}
	var t api.Trust
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&t); err != nil {
		return api.Trust{}, fmt.Errorf("%s: malformed trust answer: %w", srv, err)
	}
	return t, nil
}

// SPKValues asks the zone for the values of CPK variables that apply to
// this device (zone, its groups, itself: the most specific wins).
// The second result names the values the zone holds as secret.
func (a *Agent) SPKValues(ctx context.Context) (map[string]string, []string, error) {
	st, err := a.State()
	if err != nil {
		return nil, nil, err
	}
	var out api.DeviceSPKValues
	err = a.firstAnswer(st, func(c *client.Client) error {
		return c.Get(ctx, api.Prefix+"/device/spk-values", &out)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("values from the zone: %w", err)
	}
	return out.Values, out.Secret, nil
}
