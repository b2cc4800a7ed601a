package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"zonekit/internal/pki"
	"zonekit/internal/testenv"
)

// The device CA is a CA of its own (self-signed, P-256, DeviceCAYears),
// whose device certificates verify against it and against nothing else,
// for client authentication only.
func TestNewDeviceCA(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	dca, err := pki.NewDeviceCA("Acme", now)
	if err != nil {
		t.Fatal(err)
	}
	c := dca.Cert
	if !c.IsCA || c.Subject.CommonName != "zonekit device CA Acme" || c.Issuer.String() != c.Subject.String() {
		t.Errorf("device CA %s issued by %s, CA %v", c.Subject, c.Issuer, c.IsCA)
	}
	if got := pki.KeyDescription(c.PublicKey); got != "ECDSA P-256" {
		t.Errorf("key %s", got)
	}
	if want := now.AddDate(pki.DeviceCAYears, 0, 0); !c.NotAfter.Equal(want) {
		t.Errorf("expires %s; want %s", c.NotAfter, want)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := pki.NewCSR(key, "whatever")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := dca.SignDeviceCSR(csr, "0123abcd", now)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(c.NotAfter) {
		t.Errorf("device certificate outlives or undershoots its issuer: %s vs %s", leaf.NotAfter, c.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("device certificate does not verify against the device CA: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a device certificate verifies for server authentication")
	}
	other, _ := pki.NewDeviceCA("Acme", now)
	pool := x509.NewCertPool()
	pool.AddCert(other.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a device certificate verifies against another device CA of the same name")
	}

	// A long zone name is cut to RFC 5280's 64 characters, never inside a
	// character.
	long, err := pki.NewDeviceCA(strings.Repeat("é", 40), now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{long.Cert.Subject.CommonName, long.Cert.Subject.Organization[0]} {
		if len(s) > pki.MaxCommonName || !utf8.ValidString(s) {
			t.Errorf("name %q: %d bytes, valid UTF-8 %v", s, len(s), utf8.ValidString(s))
		}
	}

	// openssl agrees: the device certificate chains to the device CA.
	openssl := testenv.Tool(t, "openssl", "apt-get install openssl")
	dir := t.TempDir()
	caPath, leafPath := filepath.Join(dir, "device-ca.pem"), filepath.Join(dir, "device.pem")
	os.WriteFile(caPath, pki.EncodeCertPEM(c), 0o644)
	os.WriteFile(leafPath, pki.EncodeCertPEM(leaf), 0o644)
	out, err := exec.Command(openssl, "verify", "-CAfile", caPath, "-purpose", "sslclient", leafPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), leafPath+": OK") {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
}
