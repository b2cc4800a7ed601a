package server_test

import (
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/pki"
)

// relayed sends a call as an authentication satellite relays it: over the
// satellite's own TLS connection, naming the agent's address and, when
// given, its certificate.
func (f *fixture) relayed(t *testing.T, sat *tls.Certificate, method, path, addr string, agent *tls.Certificate, body any) response {
	t.Helper()
	return f.do(t, f.httpClient(sat), method, path, func(r *http.Request) {
		r.Header.Set(api.HeaderRelayedFor, addr)
		if agent != nil {
			r.Header.Set(api.HeaderRelayedCert, base64.StdEncoding.EncodeToString(agent.Certificate[0]))
		}
	}, body)
}

func TestAuthenticationSatelliteRelays(t *testing.T) {
	f := newFixture(t, nil)
	satID, sat := f.register(t, "")
	pcID, pc := f.register(t, "")
	c := f.httpClient(nil)

	// Before it holds the role, the satellite's relay is refused.
	r := f.relayed(t, sat, "GET", api.Prefix+"/device/zone", "10.1.2.3", pc, nil)
	expect(t, r, http.StatusServiceUnavailable, "only an authentication satellite may relay")
	r = f.do(t, c, "POST", api.Prefix+"/satellites/"+satID+"/roles", tester, api.SatelliteRoleAdd{Role: "authentication", AuthURL: "https://sat.acme.example:8443/"})
	expect(t, r, http.StatusNoContent, "")

	// Relayed, the zone sees the agent: its identity and its address.
	r = f.relayed(t, sat, "POST", api.Prefix+"/device/refresh", "10.1.2.3", pc, nil)
	expect(t, r, http.StatusOK, "")
	var reg api.Refresh
	r.decode(t, &reg)
	if reg.DeviceID != pcID {
		t.Errorf("relayed refresh answered for %s, want %s", reg.DeviceID, pcID)
	}
	if len(reg.AuthSatellites) != 1 || reg.AuthSatellites[0] != "https://sat.acme.example:8443" {
		t.Errorf("auth satellites %q", reg.AuthSatellites)
	}
	if dev, err := f.db.Device(pcID); err != nil || dev.Address != "10.1.2.3" {
		t.Errorf("device address %q (%v), want the relayed one", dev.Address, err)
	}
	// A satellite is not told about itself.
	r = f.do(t, f.httpClient(sat), "GET", api.Prefix+"/device/zone", noAuth, nil)
	expect(t, r, http.StatusOK, "")
	var own api.Registration
	r.decode(t, &own)
	if own.DeviceID != satID || len(own.AuthSatellites) != 0 {
		t.Errorf("satellite's own answer %+v", own)
	}

	// Relayed without a certificate, a call is anonymous: never the satellite's.
	r = f.relayed(t, sat, "GET", api.Prefix+"/device/zone", "10.1.2.3", nil, nil)
	expect(t, r, http.StatusUnauthorized, "")
	// A certificate the zone CA did not issue is refused.
	other, err := pki.NewCA("Other", pki.ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	leaf, err := other.IssueServer(pki.ServerRequest{CommonName: pcID, PublicKey: key.Public()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r = f.relayed(t, sat, "GET", api.Prefix+"/device/zone", "10.1.2.3", &tls.Certificate{Certificate: [][]byte{leaf.Raw}}, nil)
	expect(t, r, http.StatusUnauthorized, "does not verify against the zone CA")
	// Bad address header.
	r = f.relayed(t, sat, "GET", api.Prefix+"/device/zone", "not-an-ip", pc, nil)
	expect(t, r, http.StatusBadRequest, "")
	// An agent cannot relay for another.
	r = f.relayed(t, pc, "GET", api.Prefix+"/device/zone", "10.1.2.3", sat, nil)
	expect(t, r, http.StatusServiceUnavailable, "only an authentication satellite may relay")

	// A relayed registration records the agent's address.
	priv, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(priv, "pc2")
	r = f.relayed(t, sat, "POST", api.Prefix+"/registrations", "10.7.7.7", nil, api.RegisterRequest{CSR: string(csr), Hostname: "pc2", OS: "linux"})
	expect(t, r, http.StatusCreated, "")
	var reg2 api.Registration
	r.decode(t, &reg2)
	if dev, err := f.db.Device(reg2.DeviceID); err != nil || dev.Address != "10.7.7.7" {
		t.Errorf("relayed registration address %q (%v)", dev.Address, err)
	}
}

func TestSatelliteCertificate(t *testing.T) {
	f := newFixture(t, nil)
	satID, sat := f.register(t, "")
	c := f.httpClient(nil)
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, "whatever-it-asks")
	r := f.do(t, f.httpClient(sat), "POST", api.Prefix+"/device/satellite/certificate", noAuth, api.SatelliteCertRequest{CSR: string(csr)})
	expect(t, r, http.StatusNotFound, "holds no satellite role")

	expect(t, f.do(t, c, "POST", api.Prefix+"/satellites/"+satID+"/roles", tester,
		api.SatelliteRoleAdd{Role: "Authentication", AuthURL: "https://sat.acme.example:8443"}), http.StatusNoContent, "")
	expect(t, f.do(t, c, "POST", api.Prefix+"/satellites/"+satID+"/roles", tester,
		api.SatelliteRoleAdd{ContentURL: "http://10.0.0.5:8080/content", Prefetch: "30m"}), http.StatusNoContent, "")
	r = f.do(t, f.httpClient(sat), "POST", api.Prefix+"/device/satellite/certificate", noAuth, api.SatelliteCertRequest{CSR: "junk"})
	expect(t, r, http.StatusBadRequest, "certificate request")
	r = f.do(t, f.httpClient(sat), "POST", api.Prefix+"/device/satellite/certificate", noAuth, api.SatelliteCertRequest{CSR: string(csr)})
	expect(t, r, http.StatusOK, "")
	var out api.SatelliteCert
	r.decode(t, &out)
	certs, err := pki.ParseCertsPEM([]byte(out.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	// For the names of both roles, whatever the CSR asked, from the zone CA.
	leaf, _, err := pki.CheckServerCert(certs, pki.ServerCertCheck{Root: f.ca, PublicKey: key.Public(), Name: "sat.acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "sat.acme.example" || len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.5" {
		t.Errorf("certificate for %s, IPs %v", leaf.Subject.CommonName, leaf.IPAddresses)
	}
	r = f.do(t, c, "GET", api.Prefix+"/satellites", tester, nil)
	var sats []api.Satellite
	r.decode(t, &sats)
	if len(sats) != 1 || !sats[0].CertNotAfter.Equal(leaf.NotAfter) || sats[0].Prefetch != "30m0s" || sats[0].AuthURL != "https://sat.acme.example:8443" {
		t.Errorf("satellite list %+v", sats)
	}
	// Prefetch list: active packages only (none here).
	r = f.do(t, f.httpClient(sat), "GET", api.Prefix+"/device/satellite/packages", noAuth, nil)
	expect(t, r, http.StatusOK, "")
	if string(r.body) != "[]\n" && string(r.body) != "[]" {
		t.Errorf("packages %s", r.body)
	}
}
