package server_test

import (
	"encoding/asn1"
	"math"
	"net/http"
	"os"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"zonekit/internal/api"
	"zonekit/internal/pki"
	"zonekit/internal/zone"
)

// zoneCAPKCS12 is the fixture's CA key pair as PKCS#12 (2048 iterations,
// so that the test stays quick).
func zoneCAPKCS12(t *testing.T, f *fixture, pass string) []byte {
	t.Helper()
	ca, err := pki.LoadCA(f.paths.CACert(), f.paths.CAKey())
	if err != nil {
		t.Fatal(err)
	}
	data, err := pkcs12.Modern2023.Encode(ca.Key, ca.Cert, nil, pass)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The server refuses a PKCS#12 whose MAC asks for 2^31-1 iterations
// before deriving any key: the request answers at once (the test would
// run for an hour otherwise) and leaves the key file alone.
func TestImportCAHostileIterations(t *testing.T) {
	f := newFixture(t, nil)
	var pfx struct {
		Version  int
		AuthSafe asn1.RawValue
		MacData  struct {
			Mac        asn1.RawValue
			MacSalt    []byte
			Iterations int
		}
	}
	if _, err := asn1.Unmarshal(zoneCAPKCS12(t, f, "a long passphrase"), &pfx); err != nil {
		t.Fatal(err)
	}
	pfx.MacData.Iterations = math.MaxInt32
	hostile, err := asn1.Marshal(pfx)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(f.paths.CAKey())
	r := f.do(t, f.httpClient(nil), "POST", api.Prefix+"/certificate-authority/import", tester,
		api.CAImport{PKCS12: hostile, Passphrase: "a long passphrase"})
	expect(t, r, http.StatusUnprocessableEntity, "iteration count out of bounds: 2147483647")
	if after, _ := os.ReadFile(f.paths.CAKey()); string(after) != string(before) {
		t.Error("the refused import changed the CA key file")
	}
}

// An import the zone refuses (another server holds the CertAuth role)
// writes no key; after the holder gives the role up it succeeds.
func TestImportCARefusedWritesNothing(t *testing.T) {
	f := newFixture(t, nil)
	data := zoneCAPKCS12(t, f, "a long passphrase")
	c := f.httpClient(nil)
	r := f.do(t, c, "POST", api.Prefix+"/certificate-authority/role-disable", tester, api.CARoleDisable{DeleteKey: true})
	expect(t, r, http.StatusOK, "")
	other := zone.Server{ID: "srv-b", Name: "b.acme.example", Port: 443, Roles: []zone.Role{zone.RoleCertAuth}, Created: time.Now()}
	if err := f.db.JoinServer("test", other); err != nil {
		t.Fatal(err)
	}
	r = f.do(t, c, "POST", api.Prefix+"/certificate-authority/import", tester, api.CAImport{PKCS12: data, Passphrase: "a long passphrase"})
	expect(t, r, http.StatusConflict, "server b.acme.example holds the CertAuth role")
	if _, err := os.Stat(f.paths.CAKey()); !os.IsNotExist(err) {
		t.Fatalf("a refused import left %s (stat: %v)", f.paths.CAKey(), err)
	}
	if err := f.db.SetRoles("test", other.ID, nil); err != nil {
		t.Fatal(err)
	}
	r = f.do(t, c, "POST", api.Prefix+"/certificate-authority/import", tester, api.CAImport{PKCS12: data, Passphrase: "a long passphrase"})
	expect(t, r, http.StatusOK, "")
	if _, err := pki.LoadCA(f.paths.CACert(), f.paths.CAKey()); err != nil {
		t.Fatal(err)
	}
}

// A key that is not the zone CA's (left by an earlier CA) does not give
// the role back.
func TestEnableCARoleRefusesForeignKey(t *testing.T) {
	f := newFixture(t, nil)
	c := f.httpClient(nil)
	expect(t, f.do(t, c, "POST", api.Prefix+"/certificate-authority/role-disable", tester, api.CARoleDisable{}), http.StatusOK, "")
	other, err := pki.NewCA("Other", pki.ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKeyPEM(other.Key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.paths.CAKey(), keyPEM)
	r := f.do(t, c, "POST", api.Prefix+"/certificate-authority/role-enable", tester, struct{}{})
	expect(t, r, http.StatusNotFound, "is not the key of the zone CA")
}
