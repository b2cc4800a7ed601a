package pki

import (
	"encoding/asn1"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

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
	f.Add(hostileMAC(f, data))
	f.Add(hostilePBES2(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ImportPKCS12(b, "fuzz passphrase")
		if err == nil && (got.Cert == nil || got.Key == nil) {
			t.Fatal("import succeeded without a certificate and key")
		}
	})
}

// hostileMAC re-encodes a PKCS#12 file with a MAC iteration count of
// 2^31-1: upstream go-pkcs12 would spend an hour deriving the MAC key.
func hostileMAC(t testing.TB, data []byte) []byte {
	t.Helper()
	var pfx struct {
		Version  int
		AuthSafe asn1.RawValue
		MacData  struct {
			Mac        asn1.RawValue
			MacSalt    []byte
			Iterations int `asn1:"optional,default:1"`
		} `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(data, &pfx); err != nil {
		t.Fatal(err)
	}
	pfx.MacData.Iterations = math.MaxInt32
	out, err := asn1.Marshal(pfx)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hostilePBES2 builds a MAC-less PKCS#12 file (which go-pkcs12 reads for
// the empty passphrase) whose one encrypted safe asks for PBKDF2 with
// 2^31-1 iterations.
func hostilePBES2(t testing.TB) []byte {
	t.Helper()
	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	mustMarshal := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	raw := func(b []byte) asn1.RawValue { return asn1.RawValue{FullBytes: b} }
	kdf := mustMarshal(struct {
		Salt       []byte
		Iterations int
		Prf        algID
	}{make([]byte, 16), math.MaxInt32, algID{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}, Parameters: asn1.NullRawValue}})
	pbes2 := mustMarshal(struct{ Kdf, Enc algID }{
		algID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}, raw(kdf)},
		algID{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, raw(mustMarshal(make([]byte, 16)))},
	})
	dataOID := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	encData := mustMarshal(struct {
		Version int
		Info    struct {
			ContentType asn1.ObjectIdentifier
			Alg         algID
			Content     []byte `asn1:"tag:0,optional"`
		}
	}{0, struct {
		ContentType asn1.ObjectIdentifier
		Alg         algID
		Content     []byte `asn1:"tag:0,optional"`
	}{dataOID, algID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}, raw(pbes2)}, make([]byte, 32)}})
	type contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue // [0] EXPLICIT, built by explicit0
	}
	explicit0 := func(b []byte) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: b}
	}
	safes := mustMarshal([]contentInfo{{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}, explicit0(encData)}})
	return mustMarshal(struct {
		Version  int
		AuthSafe contentInfo
	}{3, contentInfo{dataOID, explicit0(mustMarshal(safes))}})
}

// A hostile iteration count is refused before any key derivation (the
// test would run for an hour otherwise), and so is an oversized file.
func TestImportPKCS12Hostile(t *testing.T) {
	ca, err := NewCA("Acme", ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good, err := pkcs12.Modern2023.Encode(ca.Key, ca.Cert, nil, "a long passphrase")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := pkcs12.LegacyRC2.Encode(ca.Key, ca.Cert, nil, "a long passphrase")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, pass string
		data       []byte
		want       string
	}{
		{"MAC", "a long passphrase", hostileMAC(t, good), "iteration count out of bounds: 2147483647"},
		{"legacy MAC", "a long passphrase", hostileMAC(t, legacy), "iteration count out of bounds: 2147483647"},
		{"PBES2", "", hostilePBES2(t), "iteration count out of bounds: 2147483647"},
		{"size", "x", make([]byte, MaxPKCS12Size+1), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ImportPKCS12(tt.data, tt.pass)
			if errkind.Of(err) != errkind.Invalid || !strings.Contains(fmt.Sprint(err), tt.want) {
				t.Fatalf("got %v (kind %v), want an Invalid error containing %q", err, errkind.Of(err), tt.want)
			}
		})
	}
}

// BenchmarkImportPKCS12 is what a CA import costs: our own export (three
// PBKDF2 derivations of PKCS12Iterations) against a hostile file refused
// before any.
func BenchmarkImportPKCS12(b *testing.B) {
	ca, err := NewCA("Bench", ECDSAP256, 1, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	ours, err := ca.ExportPKCS12("a long passphrase", false)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("export", func(b *testing.B) {
		for b.Loop() {
			if _, err := ImportPKCS12(ours, "a long passphrase"); err != nil {
				b.Fatal(err)
			}
		}
	})
	hostile := hostileMAC(b, ours)
	b.Run("hostile", func(b *testing.B) {
		for b.Loop() {
			if _, err := ImportPKCS12(hostile, "a long passphrase"); err == nil {
				b.Fatal("hostile file accepted")
			}
		}
	})
}
