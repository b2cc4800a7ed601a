package satellite

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"zonekit/internal/pki"
)

// A certificate replaced on disk is served from the next handshake on; a
// half-written pair keeps the last good one.
func TestTLSFilesReload(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("Acme", pki.ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tf := &TLSFiles{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	if err := tf.Load(); err == nil {
		t.Fatal("loaded without files")
	}
	write := func(name string, data []byte, at time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, at, at)
	}
	issue := func(at time.Time) string {
		key, _ := pki.GenerateKey(pki.ECDSAP256)
		cert, err := ca.IssueServer(pki.ServerRequest{CommonName: "sat", PublicKey: key.Public()}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		kp, _ := pki.EncodeKeyPEM(key)
		write("key.pem", kp, at)
		write("cert.pem", pki.EncodeCertPEM(cert), at)
		return pki.SerialHex(cert)
	}
	write("ca.pem", pki.EncodeCertPEM(ca.Cert), time.Now())
	first := issue(time.Now().Add(-time.Hour))
	served := func() string {
		cfg, err := tf.current()
		if err != nil {
			t.Fatal(err)
		}
		return pki.SerialHex(cfg.Certificates[0].Leaf)
	}
	if got := served(); got != first {
		t.Fatalf("serving %s, want %s", got, first)
	}
	second := issue(time.Now())
	if got := served(); got != second {
		t.Errorf("after the change serving %s, want %s", got, second)
	}
	// A key that is not the certificate's (a change half done): the last good pair.
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	kp, _ := pki.EncodeKeyPEM(key)
	write("key.pem", kp, time.Now().Add(time.Minute))
	if got := served(); got != second {
		t.Errorf("with a mismatched key serving %s, want %s", got, second)
	}
}
