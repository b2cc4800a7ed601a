package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/config"
	"zonekit/internal/password"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// newClockedServer provisions a one-server zone (an administrator
// "tester" with a cheap hash) and builds its server on the clock given.
func newClockedServer(t testing.TB, clock *atomic.Pointer[time.Time], logs *bytes.Buffer) (*Server, *zone.DB) {
	t.Helper()
	p := config.Paths{Home: filepath.Join(t.TempDir(), "zone")}
	if _, err := provision.NewZone(provision.NewZoneOptions{
		Paths: p, ZoneName: "Acme", AdminName: "Administrator", AdminPassword: "admin-password",
		DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}, Port: 443, KeyType: pki.ECDSAP256, CAYears: 1,
	}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := func() time.Time { return *clock.Load() }
	db := zone.New(st, now)
	hash, err := password.Hash("tester-password", password.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("test", zone.CmdAdminCreate, zone.Admin{Name: "tester", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadServer(p)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Paths: p, Config: cfg, DB: db, Now: now, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// The zone CA expires while the server runs: the server logs it once,
// naming the way out, and the Immediate remint that way out needs is
// accepted (it activates at once).
func TestZoneCAExpiresWhileRunning(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	var logs bytes.Buffer
	s, _ := newClockedServer(t, &clock, &logs)
	s.changes.Step()
	if strings.Contains(logs.String(), "expired") {
		t.Fatalf("logged an expiry before it happened: %s", logs.String())
	}
	later := s.zoneCA().NotAfter.Add(time.Hour)
	clock.Store(&later)
	s.changes.Step()
	s.changes.Step()
	if n := strings.Count(logs.String(), "the zone CA has expired"); n != 1 || !strings.Contains(logs.String(), "zman --allow-expired-ca certificate-authority-remint") {
		t.Fatalf("logged %d times, want once with the way out: %s", n, logs.String())
	}

	body, _ := json.Marshal(api.RemintRequest{})
	req := httptest.NewRequest(http.MethodPost, api.Prefix+"/certificate-authority/remint", bytes.NewReader(body))
	client.Basic("tester", "tester-password")(req)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var ch api.CertificateChange
	if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil || rec.Code >= 300 {
		t.Fatalf("Immediate remint: %d %s", rec.Code, rec.Body)
	}
	if ch.Kind != "activated" {
		t.Fatalf("Immediate remint answered kind %q, want activated", ch.Kind)
	}
	if !s.zoneCA().NotAfter.After(later) {
		t.Fatal("the zone CA was not replaced")
	}
}

// A change of CA started where the current CA's key is not (cach
// --internal on the server that will hold the new CA) still gets its cross
// certificate: the server that holds the key signs it in its loop.
func TestCrossSignFutureElsewhere(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	var logs bytes.Buffer
	s, db := newClockedServer(t, &clock, &logs)
	next, err := pki.NewCA("Acme 2027", pki.ECDSAP256, 2, start)
	if err != nil {
		t.Fatal(err)
	}
	rm := zone.Remint{ID: "r1", Kind: zone.ChangeCAInternal, Name: "elsewhere", Started: start, Activation: start.Add(24 * time.Hour),
		FutureCA: string(pki.EncodeCertPEM(next.Cert)), CAServer: "another-server",
		Servers: []zone.FutureCert{{Server: s.self.ID, Name: s.self.Name, Status: "pending"}}}
	if err := db.StartRemint("tester", rm); err != nil {
		t.Fatal(err)
	}
	if err := s.changes.Reconcile(); err != nil {
		t.Fatal(err)
	}
	got, err := db.Remint()
	if err != nil || got == nil {
		t.Fatal(got, err)
	}
	cross, err := pki.ParseCertPEM([]byte(got.CrossCert))
	if err != nil {
		t.Fatalf("no cross certificate recorded: %v", err)
	}
	if err := cross.CheckSignatureFrom(s.zoneCA()); err != nil || !pki.SameKey(cross.PublicKey, next.Key) {
		t.Fatalf("the cross certificate is not the current CA's certification of the new one: %v", err)
	}
	// A second pass keeps the first signature.
	if err := s.changes.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if again, _ := db.Remint(); again.CrossCert != got.CrossCert {
		t.Error("the cross certificate was replaced")
	}
}
