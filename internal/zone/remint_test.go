package zone_test

import (
	"testing"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/zone"
)

func TestRemintLifecycle(t *testing.T) {
	db := newDB(t)
	ca, err := pki.NewCA("Acme", pki.ECDSAP256, 2, t0)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: "zone1.acme.example", PublicKey: key.Public()}, t0)
	if err != nil {
		t.Fatal(err)
	}
	r := zone.Remint{ID: "r1", Kind: zone.ChangeCAExternal, Name: "to corp", External: true, Activation: t0.Add(time.Hour),
		FutureCA: string(pki.EncodeCertPEM(ca.Cert)), Servers: []zone.FutureCert{{Server: "srv1", Name: "zone1.acme.example", Status: zone.FutureCSR}}}
	if err := db.StartRemint("Administrator", r); err != nil {
		t.Fatal(err)
	}
	r2 := r
	r2.ID = "r2"
	wantErr(t, db.StartRemint("Administrator", r2), errkind.Exists, "already under way")

	// Activation needs every server's certificate.
	wantErr(t, db.ActivateRemint("zone-server", "r1"), errkind.Failure, "no future certificate")
	f := r.Servers[0]
	f.Status, f.CertPEM = zone.FutureUploaded, string(pki.EncodeCertPEM(cert))
	if err := db.SetFuture("Administrator", "r1", f); err != nil {
		t.Fatal(err)
	}
	wantErr(t, db.SetFuture("Administrator", "r9", f), errkind.NotFound, "no certificate change")
	if err := db.ActivateRemint("zone-server", "r1"); err != nil {
		t.Fatal(err)
	}
	z, _ := db.Zone()
	if z.CACertPEM != r.FutureCA || z.CAInternal || len(z.PreviousCAs) != 1 {
		t.Errorf("zone after activation: internal %v, %d previous CAs", z.CAInternal, len(z.PreviousCAs))
	}
	s, _ := db.Server("srv1")
	if s.HasRole(zone.RoleCertAuth) {
		t.Error("the CertAuth role survived a change to an external CA")
	}
	if !s.CertNotAfter.Equal(cert.NotAfter.UTC()) {
		t.Error("server certificate not replaced")
	}
	if got, _ := db.Remint(); got != nil {
		t.Error("the change is still under way after activation")
	}
}

func TestRemintCancelCutoff(t *testing.T) {
	db := newDB(t) // its clock reads t0
	for _, c := range []struct {
		in time.Duration
		ok bool
	}{{11 * time.Minute, true}, {10 * time.Minute, false}, {time.Minute, false}} {
		r := zone.Remint{ID: "r", Kind: zone.RemintServers, Activation: t0.Add(c.in), Servers: []zone.FutureCert{{Server: "srv1"}}}
		if err := db.StartRemint("Administrator", r); err != nil {
			t.Fatal(err)
		}
		err := db.CancelRemint("Administrator", "r")
		if c.ok != (err == nil) {
			t.Fatalf("cancel %s before activation: %v", c.in, err)
		}
		if err != nil {
			wantErr(t, err, errkind.Failure, "can no longer be cancelled")
			if err := db.ActivateRemint("x", "r"); err == nil {
				t.Fatal("activated without certificates")
			}
			return
		}
	}
}

// A change past its activation that still waits for a certificate (an
// external CA that never answered) is stalled: nothing switched, so it
// can be cancelled and another started. One whose servers are all ready
// is switching and cannot.
func TestRemintStalledCancel(t *testing.T) {
	db := newDB(t) // its clock reads t0
	waiting := zone.Remint{ID: "r", Kind: zone.ChangeCAExternal, Activation: t0.Add(-time.Hour),
		Servers: []zone.FutureCert{{Server: "srv1", Status: zone.FutureCSR}}}
	if !waiting.Stalled(t0) || !waiting.Cancelable(t0) || waiting.Stalled(t0.Add(-2*time.Hour)) {
		t.Fatal("a change due and waiting for a certificate is not stalled and cancelable")
	}
	if err := db.StartRemint("Administrator", waiting); err != nil {
		t.Fatal(err)
	}
	if err := db.CancelRemint("Administrator", "r"); err != nil {
		t.Fatalf("cancel a stalled change: %v", err)
	}
	ready := waiting
	ready.ID = "r2"
	ready.Servers = []zone.FutureCert{{Server: "srv1", Status: zone.FutureUploaded, CertPEM: "x"}}
	if ready.Stalled(t0) || ready.Cancelable(t0) {
		t.Fatal("a change with every certificate ready is stalled or cancelable past its activation")
	}
	if err := db.StartRemint("Administrator", ready); err != nil {
		t.Fatalf("a new change after the stalled one was cancelled: %v", err)
	}
	wantErr(t, db.CancelRemint("Administrator", "r2"), errkind.Failure, "can no longer be cancelled")
}
