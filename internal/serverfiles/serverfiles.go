// Package serverfiles names the files of a server home that a zone server
// needs to start, and checks them: what a restore checks in staging and
// what 'zman zenserver-backup --verify' checks offline. It reads nothing
// of the zone store, so clients may link it.
package serverfiles

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"zonekit/internal/config"
)

// Files a zone server needs to start, as paths inside a backup.
const (
	ConfFile      = "conf/zoneserver.conf"
	ServerCert    = "conf/server.pem"
	ServerKey     = "conf/security/server.key"
	CACert        = "conf/zone-ca.pem"
	StoreEntry    = "data/zone.db"
	MaxConfigFile = 1 << 20 // the largest configuration file read
)

// ConfFiles are the backup entries CheckConf reads.
func ConfFiles() []string { return []string{ConfFile, ServerCert, ServerKey, CACert} }

// CheckConf checks the configuration a start reads, given the content of
// ConfFiles (missing ones absent from files): a valid zoneserver.conf with
// a server.id, a server certificate with its key, and the zone CA the
// certificate chains to. It is what `zman zenserver-backup --verify` checks
// offline and what a restore checks in staging; it returns the server.id.
func CheckConf(files map[string][]byte) (string, error) {
	for _, name := range ConfFiles() {
		if _, ok := files[name]; !ok {
			return "", fmt.Errorf("the backup has no %s: a zone server cannot start without it", name)
		}
	}
	props, err := config.ParseProperties(ConfFile, files[ConfFile])
	if err != nil {
		return "", err
	}
	if err := config.CheckProperties(ConfFile, props); err != nil {
		return "", err
	}
	pair, err := tls.X509KeyPair(files[ServerCert], files[ServerKey])
	if err != nil {
		return "", fmt.Errorf("%s and %s: %w", ServerCert, ServerKey, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("%s: %w", ServerCert, err)
	}
	roots := x509.NewCertPool()
	rest, n := files[CACert], 0
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return "", fmt.Errorf("%s: %w", CACert, err)
		}
		roots.AddCert(c)
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("%s holds no certificate", CACert)
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	// Dates are not checked: an expired certificate is repaired after the
	// restore (zconfigure -c SSL), but one from another CA never starts.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: leaf.NotBefore.Add(time.Second),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "", fmt.Errorf("%s is not issued by the zone CA in %s: %w", ServerCert, CACert, err)
	}
	return props["server.id"], nil
}
