package pki_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"zonekit/internal/pki"
)

// subCA makes an intermediate CA under parent (a root without a path
// length limit, like an external CA's, when parent is nil).
func subCA(t testing.TB, parent *pki.CA, cn string) *pki.CA {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(nil, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &pki.CA{Cert: c, Key: key}
}

func TestParseCertificatesForms(t *testing.T) {
	root := subCA(t, nil, "Corp Root")
	inter := subCA(t, root, "Issuing")
	p7, err := pkcs7.DegenerateCertificate(append(append([]byte(nil), inter.Cert.Raw...), root.Cert.Raw...))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"pem chain":       append(append([]byte("text before\n"), pki.EncodeCertPEM(inter.Cert)...), pki.EncodeCertPEM(root.Cert)...),
		"der":             root.Cert.Raw,
		"pkcs7 der":       p7,
		"pkcs7 pem block": []byte("-----BEGIN PKCS7-----\n" + b64(p7) + "\n-----END PKCS7-----\n"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			certs, err := pki.ParseCertificates(data)
			if err != nil {
				t.Fatal(err)
			}
			r, ints, err := pki.RootOfChain(certs)
			if name == "der" {
				if err != nil || !r.Equal(root.Cert) || len(ints) != 0 {
					t.Fatalf("root %v ints %d err %v", r, len(ints), err)
				}
				return
			}
			if err != nil || !r.Equal(root.Cert) || len(ints) != 1 || !ints[0].Equal(inter.Cert) {
				t.Fatalf("root %v ints %d err %v", r, len(ints), err)
			}
		})
	}
	for name, data := range map[string][]byte{"empty": nil, "text": []byte("hello"), "key": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")} {
		if _, err := pki.ParseCertificates(data); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, _, err := pki.RootOfChain([]*x509.Certificate{inter.Cert}); err == nil || !strings.Contains(err.Error(), "no self-signed root") {
		t.Errorf("intermediate alone: %v", err)
	}
}

func TestCheckServerCert(t *testing.T) {
	root := subCA(t, nil, "Corp Root")
	inter := subCA(t, root, "Issuing")
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	other, _ := pki.GenerateKey(pki.ECDSAP256)
	wild, err := inter.IssueServer(pki.ServerRequest{CommonName: "*.acme.test", DNSNames: []string{"*.acme.test"}, PublicKey: key.Public()}, now)
	if err != nil {
		t.Fatal(err)
	}
	chk := pki.ServerCertCheck{Root: root.Cert, PublicKey: key.Public(), Name: "zone1.acme.test", At: now}
	leaf, chain, err := pki.CheckServerCert([]*x509.Certificate{inter.Cert, wild}, chk)
	if err != nil || !leaf.Equal(wild) || len(chain) != 2 {
		t.Fatalf("wildcard with chain: leaf %v chain %d err %v", leaf, len(chain), err)
	}
	// The intermediate may be known rather than sent.
	chk.Intermediates = []*x509.Certificate{inter.Cert}
	if _, _, err := pki.CheckServerCert([]*x509.Certificate{wild}, chk); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		chk  pki.ServerCertCheck
		want string
	}{
		{"other key", pki.ServerCertCheck{Root: root.Cert, Intermediates: chk.Intermediates, PublicKey: other.Public(), Name: "zone1.acme.test"}, "does not match"},
		{"other name", pki.ServerCertCheck{Root: root.Cert, Intermediates: chk.Intermediates, PublicKey: key.Public(), Name: "zone1.other.test"}, "not for zone1.other.test"},
		{"other root", pki.ServerCertCheck{Root: subCA(t, root, "X").Cert, PublicKey: key.Public(), Name: "zone1.acme.test"}, "does not chain"},
	}
	for _, b := range bad {
		if _, _, err := pki.CheckServerCert([]*x509.Certificate{wild}, b.chk); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want %q", b.name, err, b.want)
		}
	}
}

func TestCrossSignSurvivesExpiry(t *testing.T) {
	old, err := pki.NewCA("Acme", pki.ECDSAP256, 1, now.AddDate(-2, 0, 0)) // long expired
	if err != nil {
		t.Fatal(err)
	}
	next, err := pki.NewCAWith(pki.CAOptions{CommonName: "Acme", Organization: "Acme", KeyType: pki.RSA2048, Years: 3, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	cross, err := old.CrossSign(next.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !pki.VouchedFor(next.Cert, []*x509.Certificate{cross}, []*x509.Certificate{old.Cert}) {
		t.Fatal("the old CA's cross certificate does not vouch for the new CA")
	}
	stranger := ca(t)
	if pki.VouchedFor(next.Cert, []*x509.Certificate{cross}, []*x509.Certificate{stranger.Cert}) {
		t.Fatal("an unrelated CA vouches")
	}
	if pki.VouchedFor(stranger.Cert, []*x509.Certificate{cross}, []*x509.Certificate{old.Cert}) {
		t.Fatal("the cross certificate vouches for another key")
	}
}

func TestGenerateKeysParallel(t *testing.T) {
	keys, err := pki.GenerateKeys(pki.ECDSAP256, 9)
	if err != nil || len(keys) != 9 {
		t.Fatal(len(keys), err)
	}
	for i, k := range keys {
		if k == nil {
			t.Fatalf("key %d missing", i)
		}
	}
}

func TestParsePrivateKeyDER(t *testing.T) {
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	der, err := pki.EncodeKeyDER(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pki.ParsePrivateKey(der)
	if err != nil || !pki.SameKey(key.Public(), got) {
		t.Fatal(err)
	}
	if _, err := pki.ParsePrivateKey([]byte("junk")); err == nil {
		t.Fatal("junk parsed as a key")
	}
}

// FuzzParseCertificates feeds the import parser (PEM, DER, PKCS#7) hostile
// bytes: it must return certificates or an error, never panic.
func FuzzParseCertificates(f *testing.F) {
	root, _ := testCA()
	f.Add(root.Cert.Raw)
	f.Add(pki.EncodeCertPEM(root.Cert))
	if p7, err := pkcs7.DegenerateCertificate(root.Cert.Raw); err == nil {
		f.Add(p7)
	}
	f.Add([]byte("-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n"))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := pki.ParseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		if err == nil {
			pki.SplitChain(certs)
			pki.RootOfChain(certs)
		}
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// The preflight of a new server certificate lists every name and address
// in use it drops; a wildcard in use needs the same wildcard.
func TestUncoveredNames(t *testing.T) {
	root := subCA(t, nil, "Corp Root")
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := root.IssueServer(pki.ServerRequest{CommonName: "zone1.acme.test", DNSNames: []string{"*.corp.test", "localhost"},
		IPs: []net.IP{net.ParseIP("127.0.10.3")}, PublicKey: key.Public()}, now)
	if err != nil {
		t.Fatal(err)
	}
	inUse := []string{"zone1.acme.test", "ZONE1.acme.test.", "localhost", "127.0.10.3", "a.corp.test", "*.corp.test",
		"127.0.10.4", "zone2.acme.test", "*.acme.test", "::1", "127.0.10.4"}
	got := pki.UncoveredNames(cert, inUse)
	want := []string{"127.0.10.4", "zone2.acme.test", "*.acme.test", "::1"}
	if !slices.Equal(got, want) {
		t.Errorf("UncoveredNames = %q, want %q", got, want)
	}
	if got := pki.NamesOf(cert); !slices.Equal(got, []string{"zone1.acme.test", "*.corp.test", "localhost", "127.0.10.3"}) {
		t.Errorf("NamesOf = %q", got)
	}
}
