package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/pki"
	"zonekit/internal/server/certificates"
	"zonekit/internal/zone"
)

// Under an external zone CA the server makes the device CA, trusts it for
// client certificates, signs devices with it, asks holders of other
// certificates to renew, never takes its certificates for a zone
// server's, and refuses to sign a joining server's certificate.
func TestDeviceCAUnderExternalCA(t *testing.T) {
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	var logs bytes.Buffer
	s, db := newClockedServer(t, &clock, &logs)
	ctx := context.Background()

	devCSR := func() string {
		key, _ := pki.GenerateKey(pki.ECDSAP256)
		csr, _ := pki.NewCSR(key, "x")
		return string(csr)
	}
	internalCert, err := s.signer.Sign(ctx, api.ClusterSign{Kind: "device", ID: "dev-internal", CSR: devCSR()})
	if err != nil {
		t.Fatal(err)
	}
	if !s.devCA.IssuerOf(internalCert).Equal(s.zoneCA()) || s.trust.Load().deviceCA != nil {
		t.Fatal("under the internal CA the zone CA must issue device certificates")
	}

	// The zone CA becomes external (same certificate, so that this
	// server's certificate still verifies): the loop makes a device CA.
	z, _ := db.Zone()
	if err := db.ReplaceCA("test", z.CACertPEM, "", false); err != nil {
		t.Fatal(err)
	}
	if err := s.devCA.Step(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.trust.Load()
	if !st.external || st.deviceCA == nil {
		t.Fatalf("no device CA after the step: external %v", st.external)
	}
	first := st.deviceCA
	if err := s.devCA.Step(ctx); err != nil || !s.trust.Load().deviceCA.Equal(first) {
		t.Fatalf("a second step changed the device CA (%v)", err)
	}

	cert, err := s.signer.Sign(ctx, api.ClusterSign{Kind: "device", ID: "dev-external", CSR: devCSR()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(first); err != nil {
		t.Fatalf("device certificate not from the device CA: %v", err)
	}
	if !s.devCA.IssuerOf(cert).Equal(first) {
		t.Fatal("IssuerOf does not name the device CA")
	}
	// A certificate without key ids is told by its signature.
	noIDs := *cert
	noIDs.AuthorityKeyId = nil
	if !s.devCA.IssuerOf(&noIDs).Equal(first) {
		t.Fatal("IssuerOf does not name the device CA of a certificate without key ids")
	}
	verify := func(c *x509.Certificate) ([][]*x509.Certificate, error) {
		return c.Verify(x509.VerifyOptions{Roots: s.trust.Load().config.ClientCAs, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	}
	chains, err := verify(cert)
	if err != nil {
		t.Fatalf("ClientCAs do not accept the device CA's certificate: %v", err)
	}
	if _, err := verify(internalCert); err != nil {
		t.Errorf("ClientCAs no longer accept the certificate from before the change: %v", err)
	}
	if cas := s.trustedCAs(); len(cas) != 2 || cas[1] != string(pki.EncodeCertPEM(first)) {
		t.Errorf("agents' trust: %d CAs; want the zone CA, then the device CA", len(cas))
	}

	req := func(chain []*x509.Certificate) *http.Request {
		return &http.Request{TLS: &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{chain}}}
	}
	internalChains, _ := verify(internalCert)
	if !s.needsRenewal(req(internalChains[0])) {
		t.Error("a certificate from the zone CA is not renewed from the device CA")
	}
	if s.needsRenewal(req(chains[0])) {
		t.Error("a fresh certificate from the device CA is to be renewed")
	}

	// A certificate from the device CA named like a zone server is not one.
	dca, err := s.devCA.Signer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	fake, err := dca.IssueServer(pki.ServerRequest{CommonName: s.self.Name, PublicKey: key.Public()}, now)
	if err != nil {
		t.Fatal(err)
	}
	fakeChains, err := fake.Verify(x509.VerifyOptions{Roots: s.trust.Load().config.ClientCAs, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	if s.isZoneServer(req(fakeChains[0])) {
		t.Error("a device CA certificate passed for a zone server")
	}
	if _, err := s.verifyServerCert(fake, nil); err == nil {
		t.Error("a device CA certificate passed for a peer")
	}

	if _, err := s.signer.Sign(ctx, api.ClusterSign{Kind: "server", CSR: devCSR(), DNSNames: []string{"new.acme.test"}}); err == nil || !strings.Contains(err.Error(), "external") {
		t.Errorf("joining server's certificate under an external CA: %v; want a refusal naming the external CA", err)
	}

	// Rotation: the new device CA issues, the old one's certificates stay
	// accepted and are to be renewed.
	second, err := s.devCA.Ensure(ctx, "tester", true)
	if err != nil {
		t.Fatal(err)
	}
	if second.Equal(first) || !s.trust.Load().deviceCA.Equal(second) {
		t.Fatal("rotation did not install a new device CA")
	}
	if _, err := verify(cert); err != nil {
		t.Errorf("the replaced device CA's certificate is refused: %v", err)
	}
	if !s.needsRenewal(req(chains[0])) {
		t.Error("a certificate from the replaced device CA is not renewed")
	}
	if again, err := s.signer.Sign(ctx, api.ClusterSign{Kind: "device", ID: "dev-again", CSR: devCSR()}); err != nil || again.CheckSignatureFrom(second) != nil {
		t.Errorf("after rotation: %v", err)
	} else if !s.devCA.IssuerOf(again).Equal(second) {
		t.Error("after rotation IssuerOf does not name the new device CA")
	}
	z, _ = db.Zone()
	if z.DeviceCAKey == "" || strings.Contains(z.DeviceCAKey, "PRIVATE KEY") {
		t.Error("the device CA's key is not sealed in the store")
	}
}

// Within pki.ExpiringWithin of its end the device CA is replaced by the
// loop, and until then the expiry warning names it.
func TestDeviceCAReplacedBeforeItExpires(t *testing.T) {
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	var logs bytes.Buffer
	s, db := newClockedServer(t, &clock, &logs)
	ctx := context.Background()
	z, _ := db.Zone()
	if err := db.ReplaceCA("test", z.CACertPEM, "", false); err != nil {
		t.Fatal(err)
	}
	// A device CA made long ago, 30 days from its end, as a zone would
	// have it after years.
	old, err := pki.NewDeviceCA("Acme", now.AddDate(-pki.DeviceCAYears, 0, 30))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKeyPEM(old.Key)
	sealed, err := s.spk.Seal(ctx, certificates.DeviceCASealName, string(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetDeviceCA("test", zone.DeviceCASet{CertPEM: string(pki.EncodeCertPEM(old.Cert)), SealedKey: sealed}); err != nil {
		t.Fatal(err)
	}
	if err := s.loadTrust(); err != nil {
		t.Fatal(err)
	}
	first := s.trust.Load().deviceCA
	if !first.Equal(old.Cert) {
		t.Fatal("the recorded device CA is not taken up")
	}
	found := false
	for _, e := range s.certExpiry() {
		found = found || strings.Contains(e, "device CA "+first.Subject.CommonName)
	}
	if !found {
		t.Errorf("the expiry warning does not name the device CA: %v", s.certExpiry())
	}
	if err := s.devCA.Step(ctx); err != nil {
		t.Fatal(err)
	}
	next := s.trust.Load().deviceCA
	if next.Equal(first) || next.NotAfter.Sub(now) < pki.ExpiringWithin {
		t.Fatalf("device CA not replaced before its end: %s", next.NotAfter)
	}
	if !strings.Contains(logs.String(), "device CA rotated") {
		t.Errorf("the replacement is not logged: %s", logs.String())
	}
}
