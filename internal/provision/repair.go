package provision

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/pki"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// RepairMode says what an offline SSL repair remints.
type RepairMode int

const (
	RepairServer      RepairMode = 1 // this Primary Server's certificate, under the current CA
	RepairCAAndServer RepairMode = 2 // a new CA (same subject, cross-signed by the old key) and the server certificate
	RepairImport      RepairMode = 3 // a certificate for this server the zone CA's owner issued (an external CA)
)

// RepairOptions are the inputs of RepairSSL.
type RepairOptions struct {
	Paths    config.Paths
	Mode     RepairMode
	KeyType  pki.KeyType // "" keeps the current key type
	Years    int         // CA validity for RepairCAAndServer; 0 means 10
	DNSNames []string    // added to the server certificate
	Now      func() time.Time

	// RepairImport: the certificate (PEM, DER or PKCS#7, with its chain),
	// the key it certifies (nil: this server's current key), and whether
	// to accept one that drops names in use.
	Cert  []byte
	Key   []byte
	Force bool
	// Hook is called after each step of the import (failpoint.Crash when
	// nil): tests crash it there.
	Hook failpoint.Hook
}

// RepairResult says what was reminted.
type RepairResult struct {
	CA       *pki.CA
	Server   *pki.CA  // only Cert is set: the new server certificate
	Warnings []string // what a forced import breaks
}

// RepairSSL remints certificates with the zone server stopped, for when
// they have expired and nothing can connect (zconfigure -c SSL). It opens
// the store itself, so a running server (which holds the store's lock)
// makes it fail cleanly.
func RepairSSL(o RepairOptions) (*RepairResult, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	p := o.Paths
	st, err := openStopped(p)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	cfg, err := config.LoadServer(p)
	if err != nil {
		return nil, err
	}
	db := zone.New(st, now)
	z, err := db.Zone()
	if err != nil {
		return nil, err
	}
	self, err := db.Server(cfg.ServerID)
	if err != nil {
		return nil, err
	}
	if rm, err := db.Remint(); err != nil {
		return nil, err
	} else if rm != nil {
		return nil, errkind.New(errkind.Exists, "certificate change %q is under way: start the server and cancel it (zman certificate-change-cancel) or let it activate", rm.Name)
	}
	caCert, err := pki.ParseCertPEM([]byte(z.CACertPEM))
	if err != nil {
		return nil, err
	}
	if o.Mode == RepairImport {
		return importServerCert(p, db, self, caCert, o, now())
	}
	oldKey, keyErr := readKey(p.CAKey())
	if keyErr == nil && !pki.SameKey(caCert.PublicKey, oldKey) {
		keyErr = fmt.Errorf("%s is not the zone CA's key", p.CAKey())
	}
	kt := o.KeyType
	if kt == "" {
		kt = pki.KeyTypeOf(caCert.PublicKey)
	}
	ca := &pki.CA{Cert: caCert, Key: oldKey}
	res := &RepairResult{}
	const actor = "zconfigure -c SSL"

	switch o.Mode {
	case RepairServer:
		if keyErr != nil {
			return nil, errkind.New(errkind.NotFound, "this server cannot sign with the zone CA (%v): repair on the server holding the CA key, or have the CA sign a CSR (zconfigure -c SSL --csr FILE) and import its certificate with option 3 (--cert CERTFILE)", keyErr)
		}
		if now().After(caCert.NotAfter) {
			return nil, errkind.New(errkind.Failure, "the zone CA expired on %s too: choose option 2 (remint the CA and the server certificate)", caCert.NotAfter.UTC().Format(time.DateOnly))
		}
	case RepairCAAndServer:
		if !z.CAInternal {
			return nil, errkind.New(errkind.Refused, "the zone CA is external: it is reminted by its owner; then change to it with 'zman certificate-authority-change --external'")
		}
		servers, err := db.Servers()
		if err != nil {
			return nil, err
		}
		for _, sv := range servers {
			if sv.ID != self.ID && sv.HasRole(zone.RoleCertAuth) {
				return nil, errkind.New(errkind.Refused, "server %s holds the CertAuth role: repair the CA there", sv.Name)
			}
		}
		years := o.Years
		if years == 0 {
			years = 10
		}
		org := z.Name
		if len(caCert.Subject.Organization) > 0 {
			org = caCert.Subject.Organization[0]
		}
		next, err := pki.NewCAWith(pki.CAOptions{CommonName: caCert.Subject.CommonName, Organization: org, KeyType: kt, Years: years, Now: now()})
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, err)
		}
		var cross string
		if keyErr == nil {
			// Signing with an expired CA's key is still a valid signature:
			// it is what lets agents follow with 'zac retrust'.
			c, err := ca.CrossSign(next.Cert)
			if err != nil {
				return nil, err
			}
			cross = string(pki.EncodeCertPEM(c))
		}
		keyPEM, err := pki.EncodeKeyPEM(next.Key)
		if err != nil {
			return nil, err
		}
		if keyErr == nil {
			data, _ := os.ReadFile(p.CAKey())
			if err := atomicfile.WriteFile(filepath.Join(p.Security(), "zone-ca.previous.key"), data, 0o600); err != nil {
				return nil, err
			}
		}
		if err := atomicfile.WriteFile(p.CAKey(), keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(p.CACert(), pki.EncodeCertPEM(next.Cert), 0o644); err != nil {
			return nil, err
		}
		if err := db.ReplaceCA(actor, string(pki.EncodeCertPEM(next.Cert)), cross, true); err != nil {
			return nil, err
		}
		if !self.HasRole(zone.RoleCertAuth) {
			if err := db.SetRoles(actor, self.ID, append([]zone.Role{zone.RoleCertAuth}, self.Roles...)); err != nil {
				return nil, err
			}
		}
		ca = next
		res.CA = next
	default:
		return nil, errkind.New(errkind.Usage, "repair option %d: want 1 (server certificate) or 2 (CA and server certificate)", o.Mode)
	}

	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, s := range self.IPs {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		}
	}
	names := append(append([]string(nil), self.DNSNames...), o.DNSNames...)
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: self.Name, DNSNames: names, IPs: ips, PublicKey: key.Public()}, now())
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(p.ServerKey(), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(p.ServerCert(), append(pki.EncodeCertPEM(cert), pki.EncodeCertPEM(ca.Cert)...), 0o644); err != nil {
		return nil, err
	}
	if err := db.SetServerCert(actor, self.ID, string(pki.EncodeCertPEM(cert))); err != nil {
		return nil, err
	}
	res.Server = &pki.CA{Cert: cert}
	return res, nil
}

// importServerCert installs a server certificate from the zone CA's owner
// offline: the way out when an external CA's server certificate expired
// and the server, which 'zman sacert' needs, will not start. It must chain
// to the zone CA, be valid now, certify the key and cover the names in
// use (unless forced).
//
// It goes the way of a certificate change's activation, so that a run cut
// short at any step is finished by the server's next start (or undone by
// nothing having changed): the certificate and key are staged in
// remint-repo, the store records the certificate (the commit point), then
// conf/ gets them and remint-repo is cleaned. At start-up a store whose
// certificate differs from conf/ installs the staged files.
func importServerCert(p config.Paths, db *zone.DB, self zone.Server, caCert *x509.Certificate, o RepairOptions, now time.Time) (*RepairResult, error) {
	const actor = "zconfigure -c SSL"
	certs, err := pki.ParseCertificates(o.Cert)
	if err != nil {
		return nil, errkind.New(errkind.Invalid, "the certificate file: %v", err)
	}
	keyData := o.Key
	newKey := keyData != nil
	if !newKey {
		if keyData, err = os.ReadFile(p.ServerKey()); err != nil {
			return nil, fmt.Errorf("this server's key: %w", err)
		}
	}
	key, err := pki.ParsePrivateKey(keyData)
	if err != nil {
		return nil, errkind.New(errkind.Invalid, "the key: %v", err)
	}
	// The intermediates the current certificate was served with are
	// known; a renewed one usually comes from the same issuing CA.
	var inter []*x509.Certificate
	if cur, err := os.ReadFile(p.ServerCert()); err == nil {
		if cs, err := pki.ParseCertsPEM(cur); err == nil {
			for _, c := range cs {
				if c.IsCA && !c.Equal(caCert) {
					inter = append(inter, c)
				}
			}
		}
	}
	leaf, chain, err := pki.CheckServerCert(certs, pki.ServerCertCheck{Root: caCert, Intermediates: inter, PublicKey: key.Public(), At: now})
	if err != nil {
		if !newKey && strings.Contains(err.Error(), "does not match the server's key") {
			return nil, errkind.New(errkind.Invalid, "%v: give the key it certifies with --key FILE", err)
		}
		return nil, errkind.Wrap(errkind.Invalid, err)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, errkind.New(errkind.Invalid, "the certificate is valid from %s to %s, not now", leaf.NotBefore.UTC().Format(time.DateOnly), leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	res := &RepairResult{Server: &pki.CA{Cert: leaf}}
	if missing := pki.UncoveredNames(leaf, self.NamesInUse()); len(missing) > 0 {
		what := fmt.Sprintf("the certificate for %s does not cover %s, which agents, zman or peer servers use to reach it: they would be refused", self.Name, strings.Join(missing, ", "))
		if !o.Force {
			return nil, errkind.New(errkind.Invalid, "%s. Have it issued for these names too, or give -f to accept it anyway", what)
		}
		res.Warnings = append(res.Warnings, "accepted with -f: "+what)
	}
	hook := o.Hook
	if hook == nil {
		hook = failpoint.Crash
	}
	stagedKey := filepath.Join(p.RemintRepo(), "key.der")
	stagedChain := filepath.Join(p.RemintRepo(), "server.pem")
	chainPEM := pki.EncodeChainPEM(chain...)
	if err := os.MkdirAll(p.RemintRepo(), 0o700); err != nil {
		return nil, err
	}
	os.Remove(stagedKey) // without one, the start-up uses the current key
	if newKey {
		der, err := pki.EncodeKeyDER(key)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(stagedKey, der, 0o600); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.WriteFile(stagedChain, chainPEM, 0o644); err != nil {
		return nil, err
	}
	if err := hook("ssl-import-staged"); err != nil {
		return nil, err
	}
	if err := db.SetServerCert(actor, self.ID, string(chainPEM)); err != nil {
		return nil, err
	}
	if err := hook("ssl-import-recorded"); err != nil {
		return nil, err
	}
	if newKey {
		keyPEM, err := pki.EncodeKeyPEM(key)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(p.ServerKey(), keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := hook("ssl-import-key"); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.WriteFile(p.ServerCert(), append(chainPEM, pki.EncodeCertPEM(caCert)...), 0o644); err != nil {
		return nil, err
	}
	if err := hook("ssl-import-cert"); err != nil {
		return nil, err
	}
	os.Remove(stagedKey)
	os.Remove(stagedChain)
	return res, nil
}

// ServerCSR makes a certificate request for this server's current key,
// naming everything the server is reached by, for an external CA to
// renew its certificate while the server is stopped.
func ServerCSR(p config.Paths) ([]byte, error) {
	if err := p.CheckZone(); err != nil {
		return nil, err
	}
	cfg, err := config.LoadServer(p)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, errkind.New(errkind.Unavailable, "the zone server is running: use 'zman server-certificate-csr' instead")
		}
		return nil, err
	}
	defer st.Close()
	self, err := zone.New(st, nil).Server(cfg.ServerID)
	if err != nil {
		return nil, err
	}
	key, err := readKey(p.ServerKey())
	if err != nil {
		return nil, fmt.Errorf("this server's key: %w", err)
	}
	var dns, ips []string
	for _, n := range self.NamesInUse() {
		switch {
		case net.ParseIP(n) != nil:
			if !slices.Contains(ips, n) {
				ips = append(ips, n)
			}
		case n != self.Name && !slices.Contains(dns, n):
			dns = append(dns, n)
		}
	}
	return pki.NewServerCSR(key, pki.CSRSubject{CommonName: self.Name, DNSNames: dns}, ips)
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return pki.ParseKeyPEM(data)
}
