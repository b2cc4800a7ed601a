package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zonekit/internal/config"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
	"zonekit/internal/server"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// TestReadinessFollowsStoreAndCertificates: /readyz on the HTTPS handler
// names each failing condition, and a closed store turns it to 503 while
// /healthz stays 200. (The replication leader's part is in
// metrics-cluster.txtar, with real servers.)
func TestReadinessFollowsStoreAndCertificates(t *testing.T) {
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
	defer st.Close()
	cfg, err := config.LoadServer(p)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	s, err := server.New(server.Options{Paths: p, Config: cfg, DB: zone.New(st, nil), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[+]store ok\n") ||
		!strings.Contains(body, "[-]replication failed: replication has not started\n") || !strings.Contains(body, "[+]certificates ok\n") {
		t.Errorf("before replication: %d %q", code, body)
	}

	// Two years on, the one-year CA has expired.
	now = now.AddDate(2, 0, 0)
	if _, body := get("/readyz"); !strings.Contains(body, "[-]certificates failed: the zone CA expired on ") {
		t.Errorf("expired CA: %q", body)
	}
	now = now.AddDate(-2, 0, 0)

	st.Close()
	failed, report := s.Health().Run(context.Background())
	if failed != 2 || !strings.Contains(report, "[-]store failed: zone store: ") {
		t.Errorf("closed store: %d failed, %q", failed, report)
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz with the store closed: %d %q, want 200 ok: the process is alive", code, body)
	}
}
