package pki_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"time"
	"zonekit/internal/testenv"

	"zonekit/internal/pki"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testCA is one ECDSA CA shared by the tests that only need some CA.
var testCA = sync.OnceValues(func() (*pki.CA, error) { return pki.NewCA("Acme", pki.ECDSAP256, 10, now) })

func ca(t testing.TB) *pki.CA {
	t.Helper()
	c, err := testCA()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rsa2048 is the one RSA key size the normal run pays for, generated once.
var rsa2048 = sync.OnceValues(func() (crypto.Signer, error) { return pki.GenerateKey(pki.RSA2048) })

func rsaKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := rsa2048()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewCA(t *testing.T) {
	tests := []struct {
		kt   pki.KeyType
		desc string
	}{
		{pki.ECDSAP256, "ECDSA P-256"},
		{pki.RSA2048, "RSA 2048"},
		{pki.RSA3072, "RSA 3072"},
		{pki.RSA4096, "RSA 4096"},
	}
	for _, tt := range tests {
		t.Run(string(tt.kt), func(t *testing.T) {
			if tt.kt == pki.RSA4096 && testing.Short() {
				t.Skip("rsa-4096 key generation takes seconds; skipped with -short")
			}
			t.Parallel()
			c, err := pki.NewCA("Acme Corp", tt.kt, 10, now)
			if err != nil {
				t.Fatalf("NewCA: %v", err)
			}
			cert := c.Cert
			if got := pki.KeyDescription(cert.PublicKey); got != tt.desc {
				t.Errorf("key = %s, want %s", got, tt.desc)
			}
			if !cert.IsCA || !cert.BasicConstraintsValid || cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
				t.Errorf("not a CA limited to issuing end-entity certificates: IsCA=%v MaxPathLen=%d", cert.IsCA, cert.MaxPathLen)
			}
			if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Error("CA cannot sign certificates")
			}
			if cert.Subject.CommonName != "zonekit zone CA Acme Corp" || !slices.Equal(cert.Subject.Organization, []string{"Acme Corp"}) {
				t.Errorf("subject = %s", cert.Subject)
			}
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if !cert.NotBefore.Before(now) || !cert.NotAfter.Equal(now.AddDate(10, 0, 0)) {
				t.Errorf("validity %s to %s, want from before %s to 10 years on", cert.NotBefore, cert.NotAfter, now)
			}
			if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %s is not a positive random number of at least 64 bits", cert.SerialNumber)
			}
			if !c.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
				t.Error("CA key does not match its certificate")
			}
		})
	}
}

func TestNewCAValidity(t *testing.T) {
	for _, years := range []int{-1, 0, 11, 100} {
		if _, err := pki.NewCA("Acme", pki.ECDSAP256, years, now); err == nil || !strings.Contains(err.Error(), "1 to 10 years") {
			t.Errorf("NewCA with %d years = %v; want a refusal naming 1 to 10 years", years, err)
		}
	}
	for _, years := range []int{1, 10} {
		c, err := pki.NewCA("Acme", pki.ECDSAP256, years, now)
		if err != nil {
			t.Fatalf("NewCA with %d years: %v", years, err)
		}
		if !c.Cert.NotAfter.Equal(now.AddDate(years, 0, 0)) {
			t.Errorf("NewCA with %d years expires %s", years, c.Cert.NotAfter)
		}
	}
	if _, err := pki.NewCA("Acme", "dsa-1024", 1, now); err == nil {
		t.Error("NewCA with an unknown key type succeeded")
	}
}

func TestParseKeyType(t *testing.T) {
	for _, kt := range pki.KeyTypes() {
		got, err := pki.ParseKeyType(strings.ToUpper(string(kt)))
		if err != nil || got != kt {
			t.Errorf("ParseKeyType(%q) = %q, %v", strings.ToUpper(string(kt)), got, err)
		}
	}
	if pki.KeyTypes()[0] != pki.ECDSAP256 {
		t.Errorf("default key type is %s, want ecdsa-p256", pki.KeyTypes()[0])
	}
	_, err := pki.ParseKeyType("rsa-1024")
	if err == nil || !strings.Contains(err.Error(), "ecdsa-p256, rsa-2048") {
		t.Errorf("ParseKeyType(rsa-1024) = %v; want an error listing the choices", err)
	}
}

func TestIssueServer(t *testing.T) {
	tests := []struct {
		name     string
		key      func(testing.TB) crypto.Signer
		req      pki.ServerRequest
		wantDNS  []string
		wantIPs  []string
		encipher bool // RSA keys also need key encipherment
	}{
		{
			name:    "FQDN first with every name and address",
			key:     ecKey,
			req:     pki.ServerRequest{CommonName: "zone1.acme.example", DNSNames: []string{"zone1.acme.example", "zone1", "localhost"}, IPs: []net.IP{net.ParseIP("10.0.0.5"), net.ParseIP("127.0.0.1"), net.ParseIP("::1")}},
			wantDNS: []string{"zone1.acme.example", "zone1", "localhost"},
			wantIPs: []string{"10.0.0.5", "127.0.0.1", "::1"},
		},
		{
			name:    "CN added to the DNS names when missing",
			key:     ecKey,
			req:     pki.ServerRequest{CommonName: "zone1.acme.example", DNSNames: []string{"localhost"}},
			wantDNS: []string{"zone1.acme.example", "localhost"},
		},
		{
			name:     "RSA key",
			key:      rsaKey,
			req:      pki.ServerRequest{CommonName: "zone2.acme.example", IPs: []net.IP{net.ParseIP("192.0.2.7")}},
			wantDNS:  []string{"zone2.acme.example"},
			wantIPs:  []string{"192.0.2.7"},
			encipher: true,
		},
	}
	c := ca(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key(t)
			tt.req.PublicKey = key.Public()
			cert, err := c.IssueServer(tt.req, now)
			if err != nil {
				t.Fatalf("IssueServer: %v", err)
			}
			if cert.Subject.CommonName != tt.req.CommonName {
				t.Errorf("CN = %q, want %q", cert.Subject.CommonName, tt.req.CommonName)
			}
			if !slices.Equal(cert.DNSNames, tt.wantDNS) {
				t.Errorf("DNS SANs = %q, want %q", cert.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IP SANs = %q, want %q", ips, tt.wantIPs)
			}
			if cert.IsCA {
				t.Error("server certificate is a CA")
			}
			if got := cert.KeyUsage&x509.KeyUsageKeyEncipherment != 0; got != tt.encipher {
				t.Errorf("key encipherment = %v, want %v", got, tt.encipher)
			}
			if !cert.NotAfter.Equal(c.Cert.NotAfter) {
				t.Errorf("NotAfter = %s, want the CA's %s", cert.NotAfter, c.Cert.NotAfter)
			}
			roots := x509.NewCertPool()
			roots.AddCert(c.Cert)
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
				if err != nil {
					t.Errorf("does not chain to the CA for EKU %v: %v", usage, err)
				}
			}
			for _, name := range append(tt.wantDNS, tt.wantIPs...) {
				if err := cert.VerifyHostname(name); err != nil {
					t.Errorf("VerifyHostname(%s): %v", name, err)
				}
			}
		})
	}
}

func TestIssueServerNotAfter(t *testing.T) {
	c := ca(t)
	key := ecKey(t)
	soon := now.Add(90 * 24 * time.Hour).Truncate(time.Second)
	cert, err := c.IssueServer(pki.ServerRequest{CommonName: "a.example", PublicKey: key.Public(), NotAfter: soon}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(soon) {
		t.Errorf("NotAfter = %s, want %s", cert.NotAfter, soon)
	}
	// Never beyond the CA: a certificate outliving its issuer would not verify.
	cert, err = c.IssueServer(pki.ServerRequest{CommonName: "a.example", PublicKey: key.Public(), NotAfter: now.AddDate(50, 0, 0)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(c.Cert.NotAfter) {
		t.Errorf("NotAfter = %s, want clamped to the CA's %s", cert.NotAfter, c.Cert.NotAfter)
	}
}

func csrFor(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	csr, err := pki.NewCSR(key, cn)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestSignDeviceCSR(t *testing.T) {
	c := ca(t)
	const id = "5d41402abc4b2a76b9719d911017c592"
	for _, tc := range []struct {
		name string
		key  func(testing.TB) crypto.Signer
	}{{"ecdsa", ecKey}, {"rsa", rsaKey}} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key(t)
			// The device asks to be someone else; the CA names it by its id.
			csr := csrFor(t, key, "zone1.acme.example")
			cert, err := c.SignDeviceCSR(csr, id, now)
			if err != nil {
				t.Fatalf("SignDeviceCSR: %v", err)
			}
			if cert.Subject.CommonName != id {
				t.Errorf("CN = %q, want the device id %q", cert.Subject.CommonName, id)
			}
			if !slices.Equal(cert.Subject.OrganizationalUnit, []string{"devices"}) {
				t.Errorf("OU = %q, want devices", cert.Subject.OrganizationalUnit)
			}
			if len(cert.DNSNames) != 0 || len(cert.IPAddresses) != 0 {
				t.Errorf("device certificate carries SANs %q %q", cert.DNSNames, cert.IPAddresses)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("EKU = %v, want client authentication only", cert.ExtKeyUsage)
			}
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
				t.Error("certificate is not for the CSR's key")
			}
			roots := x509.NewCertPool()
			roots.AddCert(c.Cert)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("does not verify as a client certificate: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("a device certificate verifies as a server certificate")
			}
		})
	}
}

func TestSignDeviceCSRRefuses(t *testing.T) {
	c := ca(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := csrFor(t, ecKey(t), "pc1")
	block, _ := pem.Decode(good)
	tampered := bytes.Clone(block.Bytes)
	tampered[len(tampered)-1] ^= 0xff // inside the signature
	badSig := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered})
	// A CSR whose subject was changed after signing.
	otherSubject := func() []byte {
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		raw := bytes.Replace(block.Bytes, []byte("pc1"), []byte("pc2"), 1)
		if bytes.Equal(raw, block.Bytes) || csr.Subject.CommonName != "pc1" {
			t.Fatal("could not alter the subject")
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: raw})
	}()

	tests := []struct {
		name, want string
		csr        []byte
	}{
		{"RSA 1024", "too small", csrFor(t, weak, "pc1")},
		{"ECDSA P-224", "too small", csrFor(t, p224, "pc1")},
		{"bad signature", "signature", badSig},
		{"subject altered after signing", "signature", otherSubject},
		{"not PEM", "no PEM certificate request", []byte("hello")},
		{"a certificate instead", "no PEM certificate request", pki.EncodeCertPEM(c.Cert)},
		{"garbage DER", "parse certificate request", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x03, 1, 2, 3}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := c.SignDeviceCSR(tt.csr, "id", now)
			if err == nil {
				t.Fatalf("SignDeviceCSR signed %s", cert.Subject)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	cert := ca(t).Cert
	sum := sha256.Sum256(cert.Raw)
	fp := pki.Fingerprint(cert, "sha256")
	if got := strings.ReplaceAll(fp, ":", ""); got != strings.ToUpper(hex.EncodeToString(sum[:])) {
		t.Errorf("sha256 fingerprint %s is not the hash of the DER", fp)
	}
	for alg, n := range map[string]int{"sha256": 32, "sha1": 20, "md5": 16, "": 32} {
		fp := pki.Fingerprint(cert, alg)
		if !regexp.MustCompile(`^[0-9A-F]{2}(:[0-9A-F]{2})*$`).MatchString(fp) || len(fp) != 3*n-1 {
			t.Errorf("Fingerprint(%q) = %s, want %d upper-case hex bytes separated by colons", alg, fp, n)
		}
	}
}

func TestKeyDescription(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := []struct {
		key  crypto.PublicKey
		want string
	}{
		{ecKey(t).Public(), "ECDSA P-256"},
		{p384.Public(), "ECDSA P-384"},
		{rsaKey(t).Public(), "RSA 2048"},
		{"not a key", "string"},
	}
	for _, tt := range tests {
		if got := pki.KeyDescription(tt.key); got != tt.want {
			t.Errorf("KeyDescription = %q, want %q", got, tt.want)
		}
	}
}

func TestParseKeyPEM(t *testing.T) {
	ec := ecKey(t).(*ecdsa.PrivateKey)
	rk := rsaKey(t).(*rsa.PrivateKey)
	pkcs8, err := pki.EncodeKeyPEM(ec)
	if err != nil {
		t.Fatal(err)
	}
	sec1DER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8RSA, err := pki.EncodeKeyPEM(rk)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	tests := []struct {
		name string
		pem  []byte
		want crypto.PublicKey
	}{
		{"PKCS#8 ECDSA", pkcs8, ec.Public()},
		{"PKCS#8 RSA", pkcs8RSA, rk.Public()},
		{"PKCS#1 RSA", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), rk.Public()},
		{"SEC 1 ECDSA", enc("EC PRIVATE KEY", sec1DER), ec.Public()},
		{"after other text", append([]byte("key for zone1\n"), pkcs8...), ec.Public()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := pki.ParseKeyPEM(tt.pem)
			if err != nil {
				t.Fatalf("ParseKeyPEM: %v", err)
			}
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want) {
				t.Error("parsed key differs from the encoded one")
			}
		})
	}

	bad := []struct {
		name, want string
		pem        []byte
	}{
		{"empty", "no PEM private key", nil},
		{"certificate", "unexpected PEM block", pki.EncodeCertPEM(ca(t).Cert)},
		{"encrypted", "unexpected PEM block", enc("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3})},
		{"garbage PKCS#8", "parse private key", enc("PRIVATE KEY", []byte{0x30, 0})},
		{"SEC 1 labelled PKCS#1", "parse private key", enc("RSA PRIVATE KEY", sec1DER)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := pki.ParseKeyPEM(tt.pem); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseKeyPEM = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestParseCertsPEM(t *testing.T) {
	c := ca(t)
	key := ecKey(t)
	leaf, err := c.IssueServer(pki.ServerRequest{CommonName: "a.example", PublicKey: key.Public()}, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKeyPEM(key)
	// A chain file as server.pem holds it, with a key block in between to skip.
	data := slices.Concat(pki.EncodeCertPEM(leaf), keyPEM, pki.EncodeCertPEM(c.Cert))
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || !certs[0].Equal(leaf) || !certs[1].Equal(c.Cert) {
		t.Errorf("ParseCertsPEM returned %d certificates, want leaf then CA", len(certs))
	}
	first, err := pki.ParseCertPEM(data)
	if err != nil || !first.Equal(leaf) {
		t.Errorf("ParseCertPEM = %v, want the leaf", err)
	}
	if _, err := pki.ParseCertsPEM(keyPEM); err == nil {
		t.Error("ParseCertsPEM found a certificate in a key file")
	}
	broken := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")})
	if _, err := pki.ParseCertsPEM(append(pki.EncodeCertPEM(leaf), broken...)); err == nil {
		t.Error("ParseCertsPEM accepted a broken certificate after a good one")
	}
}

func TestLoadCA(t *testing.T) {
	c := ca(t)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	keyPEM, _ := pki.EncodeKeyPEM(c.Key)
	os.WriteFile(certPath, pki.EncodeCertPEM(c.Cert), 0o644)
	os.WriteFile(keyPath, keyPEM, 0o600)
	loaded, err := pki.LoadCA(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(c.Cert) {
		t.Error("loaded a different certificate")
	}
	// The loaded CA can sign.
	if _, err := loaded.SignDeviceCSR(csrFor(t, ecKey(t), "pc"), "id", now); err != nil {
		t.Errorf("loaded CA cannot sign: %v", err)
	}
	if _, err := pki.LoadCA(certPath, filepath.Join(dir, "missing.key")); err == nil {
		t.Error("LoadCA without the key file succeeded")
	}
	if _, err := pki.LoadCA(keyPath, keyPath); err == nil || !strings.Contains(err.Error(), keyPath) {
		t.Errorf("LoadCA with a key as certificate = %v; want an error naming the file", err)
	}
}

// TestOpenSSLInterop checks our certificates with the tool administrators use.
func TestOpenSSLInterop(t *testing.T) {
	openssl := testenv.Tool(t, "openssl", "apt-get install openssl")
	c := ca(t)
	key := ecKey(t)
	leaf, err := c.IssueServer(pki.ServerRequest{CommonName: "zone1.acme.example", DNSNames: []string{"localhost"},
		IPs: []net.IP{net.ParseIP("127.0.0.1")}, PublicKey: key.Public()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caPath, leafPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem")
	if err := os.WriteFile(caPath, pki.EncodeCertPEM(c.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leafPath, pki.EncodeCertPEM(leaf), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	if out := run("verify", "-CAfile", caPath, "-purpose", "sslserver", leafPath); !strings.Contains(out, leafPath+": OK") {
		t.Errorf("openssl verify: %s", out)
	}
	run("verify", "-CAfile", caPath, "-purpose", "sslclient", leafPath)
	run("verify", "-CAfile", caPath, "-verify_hostname", "zone1.acme.example", "-verify_ip", "127.0.0.1", leafPath)

	// openssl 1.1 says "SHA256 Fingerprint=", 3.x "sha256 Fingerprint=".
	for _, f := range []struct{ path, alg, flag string }{
		{caPath, "sha256", "-sha256"}, {leafPath, "sha256", "-sha256"}, {leafPath, "sha1", "-sha1"},
	} {
		out := strings.TrimSpace(run("x509", "-noout", "-fingerprint", f.flag, "-in", f.path))
		_, got, ok := strings.Cut(out, "Fingerprint=")
		cert, _ := pki.ReadCertFile(f.path)
		if want := pki.Fingerprint(cert, f.alg); !ok || got != want {
			t.Errorf("openssl %s fingerprint of %s = %q, pki.Fingerprint = %q", f.alg, filepath.Base(f.path), out, want)
		}
	}

	// A key openssl writes (PKCS#8 by default in 3.x, SEC 1 with -traditional or 1.1).
	for _, args := range [][]string{
		{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
		{"ecparam", "-name", "prime256v1", "-genkey", "-noout"},
	} {
		keyPEM := run(args...)
		k, err := pki.ParseKeyPEM([]byte(keyPEM))
		if err != nil {
			t.Errorf("ParseKeyPEM of openssl %s output: %v", args[0], err)
			continue
		}
		if got := pki.KeyDescription(k.Public()); got != "ECDSA P-256" {
			t.Errorf("openssl %s key is %s", args[0], got)
		}
	}
}

func FuzzParseCertsPEM(f *testing.F) {
	c, err := testCA()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pki.EncodeCertPEM(c.Cert))
	f.Add(append(pki.EncodeCertPEM(c.Cert), pki.EncodeCertPEM(c.Cert)...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := pki.ParseCertsPEM(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		for _, c := range certs {
			pki.Fingerprint(c, "sha256")
			pki.KeyDescription(c.PublicKey)
			pki.SerialHex(c)
		}
	})
}

func FuzzParseCSRPEM(f *testing.F) {
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "pc1")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(csr)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := pki.ParseCSRPEM(data)
		if err != nil {
			return
		}
		if err := req.CheckSignature(); err != nil {
			t.Fatalf("ParseCSRPEM accepted a CSR with a bad signature: %v", err)
		}
		pki.CheckPublicKey(req.PublicKey)
		pki.KeyDescription(req.PublicKey)
	})
}

func FuzzParseKeyPEM(f *testing.F) {
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	p8, _ := pki.EncodeKeyPEM(key)
	sec1, _ := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	f.Add(p8)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := pki.ParseKeyPEM(data)
		if err != nil {
			return
		}
		if k == nil || k.Public() == nil {
			t.Fatal("no error and no key")
		}
		pki.KeyDescription(k.Public())
	})
}

// RFC 5280 bounds a common name (and an organization) at 64 characters:
// a long zone name makes the CA's name alone, a longer one is refused.
func TestCANameBounds(t *testing.T) {
	name := strings.Repeat("z", 60)
	ca, err := pki.NewCA(name, pki.ECDSAP256, 1, time.Now())
	if err != nil || ca.Cert.Subject.CommonName != name {
		t.Fatalf("NewCA(60 characters): %v, CN %q", err, ca.Cert.Subject.CommonName)
	}
	if _, err := pki.NewCAWith(pki.CAOptions{CommonName: strings.Repeat("c", 65), KeyType: pki.ECDSAP256, Years: 1, Now: time.Now()}); err == nil {
		t.Fatal("a 65-character common name was accepted")
	}
}
