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

// The zone CA expires while the server runs: the server logs it once,
// naming the way out, and the Immediate remint that way out needs is
// accepted (it activates at once).
func TestZoneCAExpiresWhileRunning(t *testing.T) {
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
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
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
	var logs bytes.Buffer
	s, err := New(Options{Paths: p, Config: cfg, DB: db, Now: now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.noteExpiredCA()
	if strings.Contains(logs.String(), "expired") {
		t.Fatalf("logged an expiry before it happened: %s", logs.String())
	}
	later := s.zoneCA().NotAfter.Add(time.Hour)
	clock.Store(&later)
	s.noteExpiredCA()
	s.noteExpiredCA()
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
