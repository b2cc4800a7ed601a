package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/config"
	"zonekit/internal/password"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
	"zonekit/internal/server"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// The tester administrator's hash is cheap, so tests can fail and succeed
// logins without paying for the default Argon2 cost each time.
const (
	testerName = "tester"
	testerPass = "tester-password"
)

type fixture struct {
	paths config.Paths
	cfg   config.Server
	db    *zone.DB
	ca    *x509.Certificate
	srv   *httptest.Server
}

// newFixture provisions a zone in a temporary home and serves it over TLS
// on 127.0.0.1; configure, if given, edits the server's configuration.
func newFixture(t *testing.T, configure func(*config.Server)) *fixture {
	t.Helper()
	p := config.Paths{Home: filepath.Join(t.TempDir(), "zone")}
	res, err := provision.NewZone(provision.NewZoneOptions{
		Paths: p, ZoneName: "Acme", AdminName: "Administrator", AdminPassword: "admin-password",
		DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}, Port: 443,
		KeyType: pki.ECDSAP256, CAYears: 1,
	})
	if err != nil {
		t.Fatalf("NewZone: %v", err)
	}
	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db := zone.New(st, nil)
	hash, err := password.Hash(testerPass, password.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("test", zone.CmdAdminCreate, zone.Admin{Name: testerName, PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadServer(p)
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(&cfg)
	}
	s, err := server.New(server.Options{Paths: p, Config: cfg, DB: db})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = s.TLSConfig()
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return &fixture{paths: p, cfg: cfg, db: db, ca: res.CA.Cert, srv: hs}
}

// httpClient trusts the zone CA and presents cert, if any.
func (f *fixture) httpClient(cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(f.ca)
	tc := &tls.Config{RootCAs: pool}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
}

type response struct {
	status int
	body   []byte
}

// errorMessage is the message of an API error body.
func (r response) errorMessage() string {
	var e api.Error
	json.Unmarshal(r.body, &e)
	return e.Error.Message
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

type auth func(*http.Request)

var (
	noAuth = auth(func(*http.Request) {})
	tester = auth(client.Basic(testerName, testerPass))
)

func (f *fixture) do(t *testing.T, c *http.Client, method, path string, a auth, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	a(req)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: data}
}

func expect(t *testing.T, r response, status int, says string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if says != "" && !strings.Contains(r.errorMessage(), says) {
		t.Errorf("error %q does not say %q", r.errorMessage(), says)
	}
}

// register registers a device and returns its id and a TLS certificate for it.
func (f *fixture) register(t *testing.T, key string) (string, *tls.Certificate) {
	t.Helper()
	priv, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(priv, "pc1.acme.example")
	if err != nil {
		t.Fatal(err)
	}
	r := f.do(t, f.httpClient(nil), "POST", api.Prefix+"/registrations", noAuth,
		api.RegisterRequest{Key: key, CSR: string(csr), Hostname: "pc1.acme.example", OS: "linux"})
	expect(t, r, http.StatusCreated, "")
	var reg api.Registration
	r.decode(t, &reg)
	cert, err := pki.ParseCertPEM([]byte(reg.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != reg.DeviceID || reg.DeviceID == "" {
		t.Fatalf("certificate CN %q is not the device id %q", cert.Subject.CommonName, reg.DeviceID)
	}
	if reg.ZoneName != "Acme" || len(reg.Servers) == 0 {
		t.Errorf("registration answer %+v", reg)
	}
	return reg.DeviceID, &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: priv, Leaf: cert}
}

func TestVersionIsPublic(t *testing.T) {
	f := newFixture(t, nil)
	r := f.do(t, f.httpClient(nil), "GET", "/api/version", noAuth, nil)
	expect(t, r, http.StatusOK, "")
	var v api.Version
	r.decode(t, &v)
	if v.Zone != "Acme" || len(v.APIVersions) == 0 {
		t.Errorf("version %+v", v)
	}
	r = f.do(t, f.httpClient(nil), "GET", api.Prefix+"/no-such-route", tester, nil)
	expect(t, r, http.StatusNotFound, "no such API route")
}

func TestAdminRoutesNeedAuth(t *testing.T) {
	f := newFixture(t, nil)
	c := f.httpClient(nil)
	routes := []struct{ method, path string }{
		{"POST", "/sessions"}, {"DELETE", "/sessions/current"}, {"GET", "/zone"}, {"GET", "/servers"},
		{"GET", "/admins"}, {"POST", "/admins"}, {"DELETE", "/admins/" + testerName},
		{"GET", "/devices"}, {"DELETE", "/devices/x"}, {"GET", "/groups"}, {"POST", "/groups"},
		{"POST", "/groups/g/devices"}, {"GET", "/registration-keys"}, {"POST", "/registration-keys"},
		{"DELETE", "/registration-keys/k"},
	}
	for _, rt := range routes {
		r := f.do(t, c, rt.method, api.Prefix+rt.path, noAuth, nil)
		if r.status != http.StatusUnauthorized || !strings.Contains(r.errorMessage(), "authentication required") {
			t.Errorf("%s %s without credentials: %d %s", rt.method, rt.path, r.status, r.body)
		}
	}
	// A device certificate is not an administrator's credential.
	_, cert := f.register(t, "")
	r := f.do(t, f.httpClient(cert), "GET", api.Prefix+"/devices", noAuth, nil)
	expect(t, r, http.StatusUnauthorized, "")
	// Nothing was changed by the refused requests.
	if _, err := f.db.Admin(testerName); err != nil {
		t.Errorf("tester deleted without credentials: %v", err)
	}
	r = f.do(t, c, "GET", api.Prefix+"/zone", tester, nil)
	expect(t, r, http.StatusOK, "")
	var z api.ZoneInfo
	r.decode(t, &z)
	if z.Name != "Acme" || z.CA.SHA256 != pki.Fingerprint(f.ca, "sha256") || z.DeviceCount != 1 || z.CA.CertAuthRole != "localhost" {
		t.Errorf("zone info %+v", z)
	}
}

func TestWrongPassword(t *testing.T) {
	t.Parallel() // mostly waiting on the server's delays
	f := newFixture(t, nil)
	c := f.httpClient(nil)
	wrong := auth(client.Basic(testerName, "not-the-password"))
	unknown := auth(client.Basic("nobody", testerPass))

	// Wrong password and unknown name look the same to the caller.
	r1 := f.do(t, c, "GET", api.Prefix+"/zone", wrong, nil)
	expect(t, r1, http.StatusUnauthorized, "authentication failed")
	r2 := f.do(t, c, "GET", api.Prefix+"/zone", unknown, nil)
	expect(t, r2, http.StatusUnauthorized, "authentication failed")
	if r1.errorMessage() != r2.errorMessage() {
		t.Errorf("wrong password says %q, unknown name says %q", r1.errorMessage(), r2.errorMessage())
	}

	// Repeated failures are answered ever more slowly: the first three are
	// free, then 250ms doubling. The sixth waits 1s.
	for i := 3; i <= 6; i++ {
		start := time.Now()
		r := f.do(t, c, "GET", api.Prefix+"/zone", wrong, nil)
		took := time.Since(start)
		expect(t, r, http.StatusUnauthorized, "authentication failed")
		if i == 6 && took < 250*time.Millisecond {
			t.Errorf("failure %d answered after %s; want it delayed by at least 250ms", i, took)
		}
	}
}

func TestTokens(t *testing.T) {
	f := newFixture(t, nil)
	c := f.httpClient(nil)
	r := f.do(t, c, "POST", api.Prefix+"/sessions", tester, nil)
	expect(t, r, http.StatusCreated, "")
	var tok api.TokenResponse
	r.decode(t, &tok)
	if tok.Admin != testerName || !strings.HasPrefix(tok.Token, server.TokenPrefix) {
		t.Fatalf("token response %+v", tok)
	}
	bearer := auth(client.Bearer(tok.Token))
	expect(t, f.do(t, c, "GET", api.Prefix+"/admins", bearer, nil), http.StatusOK, "")
	// Only the token's hash is stored.
	if _, err := f.db.Token(server.HashToken(tok.Token)); err != nil {
		t.Errorf("token hash not stored: %v", err)
	}
	if _, err := f.db.Token(tok.Token); err == nil {
		t.Error("the token itself is a store key")
	}

	// Only a stored credential can be revoked; a password cannot.
	expect(t, f.do(t, c, "DELETE", api.Prefix+"/sessions/current", tester, nil), http.StatusBadRequest, "only a stored credential")
	expect(t, f.do(t, c, "DELETE", api.Prefix+"/sessions/current", bearer, nil), http.StatusNoContent, "")
	expect(t, f.do(t, c, "GET", api.Prefix+"/admins", bearer, nil), http.StatusUnauthorized, "no longer valid")
	expect(t, f.do(t, c, "GET", api.Prefix+"/admins", auth(client.Bearer("zk_made-up")), nil), http.StatusUnauthorized, "no longer valid")

	// Deleting an administrator revokes its tokens.
	r = f.do(t, c, "POST", api.Prefix+"/sessions", tester, nil)
	r.decode(t, &tok)
	admin := auth(client.Basic("Administrator", "admin-password"))
	expect(t, f.do(t, c, "DELETE", api.Prefix+"/admins/"+testerName, admin, nil), http.StatusNoContent, "")
	expect(t, f.do(t, c, "GET", api.Prefix+"/admins", auth(client.Bearer(tok.Token)), nil), http.StatusUnauthorized, "")
}

func TestAdminManagement(t *testing.T) {
	f := newFixture(t, nil)
	c := f.httpClient(nil)
	expect(t, f.do(t, c, "POST", api.Prefix+"/admins", tester, api.AdminCreate{Name: "ops", Password: "short"}), http.StatusBadRequest, "at least 8")
	expect(t, f.do(t, c, "POST", api.Prefix+"/admins", tester, api.AdminCreate{Name: "../etc", Password: "long enough"}), http.StatusBadRequest, "administrator name")
	expect(t, f.do(t, c, "POST", api.Prefix+"/admins", tester, api.AdminCreate{Name: "ops", Password: "long enough"}), http.StatusCreated, "")
	expect(t, f.do(t, c, "POST", api.Prefix+"/admins", tester, api.AdminCreate{Name: "ops", Password: "long enough"}), http.StatusConflict, "already exists")
	expect(t, f.do(t, c, "GET", api.Prefix+"/zone", auth(client.Basic("ops", "long enough")), nil), http.StatusOK, "")
	a, err := f.db.Admin("ops")
	if err != nil || a.CreatedBy != testerName || !strings.HasPrefix(a.PasswordHash, "$argon2id$") {
		t.Errorf("stored admin %+v, %v", a, err)
	}
	audit, _ := f.db.Audit(1)
	if len(audit) != 1 || audit[0].Actor != testerName || audit[0].Command != zone.CmdAdminCreate {
		t.Errorf("audit %+v; want admin.create by tester", audit)
	}
	expect(t, f.do(t, c, "DELETE", api.Prefix+"/admins/nobody", tester, nil), http.StatusNotFound, "not found")
}

func TestRegistration(t *testing.T) {
	f := newFixture(t, nil)
	id, cert := f.register(t, "")
	dev, err := f.db.Device(id)
	if err != nil || dev.Name != "pc1.acme.example" || dev.CertSerial != pki.SerialHex(cert.Leaf) || dev.Address != "127.0.0.1" {
		t.Errorf("stored device %+v, %v", dev, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.ca)
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("device certificate does not chain to the zone CA: %v", err)
	}

	dc := f.httpClient(cert)
	r := f.do(t, dc, "GET", api.Prefix+"/device/zone", noAuth, nil)
	expect(t, r, http.StatusOK, "")
	var reg api.Registration
	r.decode(t, &reg)
	if reg.DeviceID != id || reg.Certificate != "" {
		t.Errorf("device zone %+v", reg)
	}
	expect(t, f.do(t, dc, "POST", api.Prefix+"/device/refresh", noAuth, nil), http.StatusOK, "")

	// Without a certificate the device routes refuse.
	for _, rt := range []struct{ method, path string }{{"GET", "/device/zone"}, {"POST", "/device/refresh"}, {"DELETE", "/device"}} {
		expect(t, f.do(t, f.httpClient(nil), rt.method, api.Prefix+rt.path, noAuth, nil), http.StatusUnauthorized, "needs the device's certificate")
	}

	// An administrator deletes the device: its certificate still chains to
	// the CA but no longer opens the device routes.
	expect(t, f.do(t, f.httpClient(nil), "DELETE", api.Prefix+"/devices/"+id, tester, nil), http.StatusNoContent, "")
	dc = f.httpClient(cert) // a new connection, as the agent's next run would make
	expect(t, f.do(t, dc, "GET", api.Prefix+"/device/zone", noAuth, nil), http.StatusUnauthorized, "not registered")

	// A device unregisters itself.
	id2, cert2 := f.register(t, "")
	expect(t, f.do(t, f.httpClient(cert2), "DELETE", api.Prefix+"/device", noAuth, nil), http.StatusNoContent, "")
	if _, err := f.db.Device(id2); err == nil {
		t.Error("device still registered after unregistering")
	}
}

func TestDeviceCertificateOfAnotherCA(t *testing.T) {
	f := newFixture(t, nil)
	other, err := pki.NewCA("Other", pki.ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, "x")
	leaf, err := other.SignDeviceCSR(csr, "x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The handshake fails, or at the latest the route refuses.
	c := f.httpClient(&tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key})
	resp, err := c.Get(f.srv.URL + api.Prefix + "/device/zone")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a certificate from another CA got %s", resp.Status)
		}
	}
}

func TestRegistrationRefused(t *testing.T) {
	f := newFixture(t, nil)
	c := f.httpClient(nil)
	weak := func() string {
		// A CSR of the right shape whose signature does not match.
		key, _ := pki.GenerateKey(pki.ECDSAP256)
		csr, _ := pki.NewCSR(key, "pc")
		return strings.Replace(string(csr), "\n-----END", "A\n-----END", 1)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, "pc")
	tests := []struct {
		name string
		body any
		says string
	}{
		{"malformed JSON", []byte(`{"csr": `), "malformed JSON"},
		{"wrong JSON type", []byte(`["csr"]`), "malformed JSON"},
		{"no host name", api.RegisterRequest{CSR: string(csr)}, "host name"},
		{"no CSR", api.RegisterRequest{Hostname: "pc"}, "certificate request"},
		{"broken CSR", api.RegisterRequest{Hostname: "pc", CSR: weak()}, "certificate request"},
		{"body over 1 MiB", []byte(`{"hostname":"pc","csr":"` + strings.Repeat("A", 1<<20) + `"}`), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, f.do(t, c, "POST", api.Prefix+"/registrations", noAuth, tt.body), http.StatusBadRequest, tt.says)
		})
	}
	expect(t, f.do(t, c, "POST", api.Prefix+"/registrations", noAuth, api.RegisterRequest{Hostname: "pc", CSR: string(csr), Key: "nokey"}), http.StatusUnauthorized, "not valid")
	if n, _ := f.db.DeviceCount(); n != 0 {
		t.Errorf("%d devices registered by refused requests", n)
	}
	// Admin routes refuse malformed and oversized bodies the same way.
	expect(t, f.do(t, c, "POST", api.Prefix+"/groups", tester, []byte(`{"name":`)), http.StatusBadRequest, "malformed JSON")
	expect(t, f.do(t, c, "POST", api.Prefix+"/groups", tester, []byte(`{"name":"`+strings.Repeat("g", 1<<20)+`"}`)), http.StatusBadRequest, "larger than")
}

func TestRegistrationRequiresKey(t *testing.T) {
	f := newFixture(t, func(c *config.Server) { c.RegistrationRequiresKey = true })
	c := f.httpClient(nil)
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, "pc")
	expect(t, f.do(t, c, "POST", api.Prefix+"/registrations", noAuth, api.RegisterRequest{Hostname: "pc", CSR: string(csr)}), http.StatusUnauthorized, "requires a registration key")

	expect(t, f.do(t, c, "POST", api.Prefix+"/groups", tester, api.GroupCreate{Name: "lab"}), http.StatusCreated, "")
	expect(t, f.do(t, c, "POST", api.Prefix+"/registration-keys", tester, api.RegistrationKey{Key: "nogroup-key", Group: "nogroup"}), http.StatusNotFound, `group "nogroup" not found`)
	expect(t, f.do(t, c, "POST", api.Prefix+"/registration-keys", tester, api.RegistrationKey{Key: "lab-key", Group: "lab", Limit: 1}), http.StatusCreated, "")
	id, _ := f.register(t, "lab-key")
	// The key's limit is reached.
	expect(t, f.do(t, c, "POST", api.Prefix+"/registrations", noAuth, api.RegisterRequest{Hostname: "pc", CSR: string(csr), Key: "lab-key"}), http.StatusUnauthorized, "allowed times")

	r := f.do(t, c, "GET", api.Prefix+"/devices", tester, nil)
	expect(t, r, http.StatusOK, "")
	var devs []api.Device
	r.decode(t, &devs)
	if len(devs) != 1 || devs[0].ID != id || len(devs[0].Groups) != 1 || devs[0].Groups[0] != "lab" {
		t.Errorf("devices %+v; want the one registered with the key, in lab", devs)
	}
}

func TestGroupsAndKeys(t *testing.T) {
	f := newFixture(t, nil)
	c := f.httpClient(nil)
	id, _ := f.register(t, "")
	expect(t, f.do(t, c, "POST", api.Prefix+"/groups", tester, api.GroupCreate{Name: "lab"}), http.StatusCreated, "")
	expect(t, f.do(t, c, "POST", api.Prefix+"/groups/lab/devices", tester, api.GroupAddDevices{}), http.StatusBadRequest, "at least one device")
	expect(t, f.do(t, c, "POST", api.Prefix+"/groups/lab/devices", tester, api.GroupAddDevices{Devices: []string{"ghost"}}), http.StatusNotFound, `device "ghost" not found`)
	// By name, as administrators type it.
	expect(t, f.do(t, c, "POST", api.Prefix+"/groups/lab/devices", tester, api.GroupAddDevices{Devices: []string{"pc1.acme.example"}}), http.StatusNoContent, "")
	r := f.do(t, c, "GET", api.Prefix+"/groups", tester, nil)
	var groups []api.Group
	r.decode(t, &groups)
	if len(groups) != 1 || len(groups[0].Members) != 1 || groups[0].Members[0] != id {
		t.Errorf("groups %+v", groups)
	}

	r = f.do(t, c, "POST", api.Prefix+"/registration-keys", tester, api.RegistrationKey{})
	expect(t, r, http.StatusCreated, "")
	var k api.RegistrationKey
	r.decode(t, &k)
	if len(k.Key) < 16 {
		t.Errorf("generated key %q is too short to guess-proof", k.Key)
	}
	expect(t, f.do(t, c, "POST", api.Prefix+"/registration-keys", tester, api.RegistrationKey{Key: "k", Limit: -1}), http.StatusBadRequest, "limit")
	expect(t, f.do(t, c, "DELETE", api.Prefix+"/registration-keys/"+k.Key, tester, nil), http.StatusNoContent, "")
	expect(t, f.do(t, c, "DELETE", api.Prefix+"/registration-keys/"+k.Key, tester, nil), http.StatusNotFound, "")
}

// Serve answers on a listener and, when its context ends, stops cleanly.
func TestServe(t *testing.T) {
	f := newFixture(t, func(c *config.Server) { c.ShutdownTimeout = 2 * time.Second })
	s, err := server.New(server.Options{Paths: f.paths, Config: f.cfg, DB: f.db})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, nil) }()

	c, err := client.New(client.Options{BaseURL: "https://" + ln.Addr().String(), CA: f.ca, Auth: client.Basic(testerName, testerPass)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var info api.ZoneInfo
	if err := c.Get(context.Background(), api.Prefix+"/zone", &info); err != nil {
		t.Fatalf("GET zone through Serve: %v", err)
	}
	if len(info.Servers) != 1 || info.Servers[0].Version == "" {
		t.Errorf("servers %+v; want this server with the version Serve recorded", info.Servers)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

func TestNewRefusesForeignServerCertificate(t *testing.T) {
	f := newFixture(t, nil)
	// Replace the server certificate with one from another CA.
	other, err := pki.NewCA("Other", pki.ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, _ := other.IssueServer(pki.ServerRequest{CommonName: "localhost", PublicKey: key.Public()}, time.Now())
	keyPEM, _ := pki.EncodeKeyPEM(key)
	writeFile(t, f.paths.ServerCert(), pki.EncodeCertPEM(cert))
	writeFile(t, f.paths.ServerKey(), keyPEM)
	_, err = server.New(server.Options{Paths: f.paths, Config: f.cfg, DB: f.db})
	if err == nil || !strings.Contains(err.Error(), "not issued by this zone's CA") {
		t.Errorf("server.New with a foreign certificate = %v", err)
	}
	_, err = server.New(server.Options{Paths: f.paths, Config: config.Server{ServerID: "nope"}, DB: f.db})
	if err == nil || !strings.Contains(err.Error(), "server.id") {
		t.Errorf("server.New with an unknown server id = %v", err)
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"ops": true, "a.b-c_d@e": true, "9lives": true, strings.Repeat("a", 64): true,
		"": false, "-x": false, ".hidden": false, "a/b": false, "a b": false, strings.Repeat("a", 65): false, "é": false,
	} {
		if err := server.CheckName("group", name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// GET /devices?limit=N&after=ID pages through the devices in id order,
// each with its groups; together the pages are the whole list.
func TestDevicesPaged(t *testing.T) {
	f := newFixture(t, nil)
	c := f.httpClient(nil)
	var ids []string
	for range 5 {
		id, _ := f.register(t, "")
		ids = append(ids, id)
	}
	sort.Strings(ids)
	expect(t, f.do(t, c, "POST", api.Prefix+"/groups", tester, api.GroupCreate{Name: "lab"}), http.StatusCreated, "")
	expect(t, f.do(t, c, "POST", api.Prefix+"/groups/lab/devices", tester, api.GroupAddDevices{Devices: []string{ids[3]}}), http.StatusNoContent, "")
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("more pages than devices / 2")
		}
		r := f.do(t, c, "GET", api.Prefix+"/devices?limit=2&after="+after, tester, nil)
		expect(t, r, http.StatusOK, "")
		var page []api.Device
		r.decode(t, &page)
		for _, d := range page {
			got = append(got, d.ID)
			if want := d.ID == ids[3]; want != (len(d.Groups) == 1 && d.Groups[0] == "lab") {
				t.Errorf("device %s: groups %v", d.ID, d.Groups)
			}
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if strings.Join(got, " ") != strings.Join(ids, " ") {
		t.Errorf("pages gave %v, want %v", got, ids)
	}
	expect(t, f.do(t, c, "GET", api.Prefix+"/devices?limit=0", tester, nil), http.StatusBadRequest, "limit")
}
