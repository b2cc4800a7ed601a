package pki

import (
	"testing"
	"time"

	"zonekit/internal/errkind"
)

func TestPKCS12RoundTrip(t *testing.T) {
	ca, err := NewCA("Acme", ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, legacy := range []bool{false, true} {
		data, err := ca.ExportPKCS12("a long passphrase", legacy)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ImportPKCS12(data, "a long passphrase")
		if err != nil {
			t.Fatalf("legacy=%v: %v", legacy, err)
		}
		if !got.Cert.Equal(ca.Cert) {
			t.Errorf("legacy=%v: certificate changed on the way", legacy)
		}
		if _, err := ImportPKCS12(data, "not the passphrase"); errkind.Of(err) != errkind.Passphrase {
			t.Errorf("legacy=%v: wrong passphrase gave %v (kind %v), want kind Passphrase", legacy, err, errkind.Of(err))
		}
	}
	if _, err := ImportPKCS12([]byte("not a PKCS#12 file"), "x"); errkind.Of(err) != errkind.Invalid {
		t.Errorf("garbage gave %v, want kind Invalid", err)
	}
}

func FuzzImportPKCS12(f *testing.F) {
	ca, err := NewCA("Fuzz", ECDSAP256, 1, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	data, err := ca.ExportPKCS12("fuzz passphrase", false)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ImportPKCS12(b, "fuzz passphrase")
		if err == nil && (got.Cert == nil || got.Key == nil) {
			t.Fatal("import succeeded without a certificate and key")
		}
	})
}
