package provision

import (
	"crypto"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// RepairMode says what an offline SSL repair remints.
type RepairMode int

const (
	RepairServer      RepairMode = 1 // this Primary Server's certificate, under the current CA
	RepairCAAndServer RepairMode = 2 // a new CA (same subject, cross-signed by the old key) and the server certificate
)

// RepairOptions are the inputs of RepairSSL.
type RepairOptions struct {
	Paths    config.Paths
	Mode     RepairMode
	KeyType  pki.KeyType // "" keeps the current key type
	Years    int         // CA validity for RepairCAAndServer; 0 means 10
	DNSNames []string    // added to the server certificate
	Now      func() time.Time
}

// RepairResult says what was reminted.
type RepairResult struct {
	CA     *pki.CA
	Server *pki.CA // only Cert is set: the new server certificate
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
			return nil, errkind.New(errkind.Unavailable, "the zone server is running: stop it first (zconfigure -c Start --action stop)")
		}
		return nil, err
	}
	defer st.Close()
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
			return nil, errkind.New(errkind.NotFound, "this server cannot sign with the zone CA (%v): repair on the server holding the CA key, or get a certificate from the CA and use 'zman server-add-certificate'", keyErr)
		}
		if now().After(caCert.NotAfter) {
			return nil, errkind.New(errkind.Failure, "the zone CA expired on %s too: choose option 2 (remint the CA and the server certificate)", caCert.NotAfter.UTC().Format(time.DateOnly))
		}
	case RepairCAAndServer:
		if !z.CAInternal {
			return nil, errkind.New(errkind.Usage, "the zone CA is external: it is reminted by its owner; then change to it with 'zman certificate-authority-change --external'")
		}
		servers, err := db.Servers()
		if err != nil {
			return nil, err
		}
		for _, sv := range servers {
			if sv.ID != self.ID && sv.HasRole(zone.RoleCertAuth) {
				return nil, errkind.New(errkind.Usage, "server %s holds the CertAuth role: repair the CA there", sv.Name)
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

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return pki.ParseKeyPEM(data)
}
