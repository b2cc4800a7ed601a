// Package restore puts a server backup in place of a server's state:
// checks that what was unpacked can start a zone server, and swaps
// configuration, zone store and replication log atomically across crashes
// through an intent journal that the next start finishes or undoes.
package restore

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"zonekit/internal/config"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// Files a zone server needs to start, as paths inside a backup.
const (
	ConfFile      = "conf/zoneserver.conf"
	ServerCert    = "conf/server.pem"
	ServerKey     = "conf/security/server.key"
	CACert        = "conf/zone-ca.pem"
	StoreEntry    = "data/zone.db"
	maxConfigFile = 1 << 20
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

// CheckStaged checks an unpacked backup in staging as a start would use
// it: CheckConf, the zone store opens (an older schema is migrated in the
// staging copy, a newer one refused), holds a zone, and lists the server
// that server.id names.
func CheckStaged(staging string) error {
	files := map[string][]byte{}
	for _, name := range ConfFiles() {
		data, err := readSmall(filepath.Join(staging, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		files[name] = data
	}
	id, err := CheckConf(files)
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(staging, filepath.FromSlash(StoreEntry)), store.Options{LockTimeout: time.Second})
	if err != nil {
		return fmt.Errorf("its zone store: %w", err)
	}
	defer st.Close()
	db := zone.New(st, nil)
	if _, err := db.Zone(); err != nil {
		return fmt.Errorf("its zone store holds no zone: %w", err)
	}
	if _, err := db.Server(id); err != nil {
		return fmt.Errorf("its zone store has no server %s (server.id in %s): %w", id, ConfFile, err)
	}
	return nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxConfigFile {
		return nil, fmt.Errorf("%s: %d bytes is too large for a configuration file", path, fi.Size())
	}
	data := make([]byte, fi.Size())
	_, err = f.ReadAt(data, 0)
	return data, err
}
