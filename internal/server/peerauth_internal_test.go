package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/pki"
	"zonekit/internal/zone"
)

// peerOf lists in a's zone a server "c.example" with a certificate of the
// zone CA and returns its record and a client presenting that
// certificate, which keeps its connection alive.
func peerOf(t *testing.T, a *replPeer) (zone.Server, *http.Client) {
	t.Helper()
	ca, err := a.srv.devCA.LocalIssuer(context.Background(), "a test peer's certificate")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: "c.example", PublicKey: key.Public()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec := zone.Server{ID: "server-c", Name: "c.example", Port: 443, CertPEM: string(pki.EncodeCertPEM(cert)), Created: time.Now()}
	if err := a.db.JoinServer("test", rec); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.srv.zoneCA())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}}}
	t.Cleanup(tr.CloseIdleConnections)
	return rec, &http.Client{Transport: tr}
}

// A peer connection's certificate is verified once and kept, but a server
// removed from the zone is refused at its next request on the same
// connection.
func TestPeerAuthKeptUntilServerRemoved(t *testing.T) {
	a, _ := newReplZone(t)
	rec, c := peerOf(t, a)
	get := func(wantReused bool) int {
		t.Helper()
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequest(http.MethodGet, a.hs.URL+api.Prefix+"/replication/images", nil)
		resp, err := c.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if reused != wantReused {
			t.Fatalf("connection reused: %v, want %v", reused, wantReused)
		}
		return resp.StatusCode
	}
	if code := get(false); code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	if n := len(a.srv.peerAuth.m); n != 1 {
		t.Fatalf("%d connections kept, want 1", n)
	}
	if code := get(true); code != http.StatusOK {
		t.Fatalf("second request: %d", code)
	}
	if err := a.db.DeleteServer("test", rec.ID); err != nil {
		t.Fatal(err)
	}
	if code := get(true); code != http.StatusUnauthorized {
		t.Fatalf("a removed server's request on its open connection: %d, want %d", code, http.StatusUnauthorized)
	}
	// Listed again (another version of the list), it is checked afresh.
	if err := a.db.JoinServer("test", rec); err != nil {
		t.Fatal(err)
	}
	if code := get(true); code != http.StatusOK {
		t.Fatalf("after rejoining: %d", code)
	}
}

// An entry holds for the trust state and the server list it was made
// with, within its chain's validity, and for nothing else.
func TestPeerAuthEntryLimits(t *testing.T) {
	a, _ := newReplZone(t)
	_, c := peerOf(t, a)
	resp, err := c.Get(a.hs.URL + api.Prefix + "/replication/images")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if len(a.srv.peerAuth.m) != 1 {
		t.Fatalf("%d entries, want 1", len(a.srv.peerAuth.m))
	}
	st := a.srv.trust.Load()
	v, _ := a.db.ServersVersion()
	now := a.srv.now()
	for leaf, e := range a.srv.peerAuth.m {
		if _, ok := a.srv.peerAuth.get(leaf, st, v, now); !ok {
			t.Fatal("the entry does not hold for the state it was made in")
		}
		if _, ok := a.srv.peerAuth.get(leaf, st, v+1, now); ok {
			t.Fatal("the entry holds for another server list")
		}
		if err := a.srv.loadTrust(); err != nil {
			t.Fatal(err)
		}
		if _, ok := a.srv.peerAuth.get(leaf, a.srv.trust.Load(), v, now); ok {
			t.Fatal("the entry holds for a new trust state")
		}
		if _, ok := a.srv.peerAuth.get(leaf, st, v, e.valid[1].Add(time.Second)); ok {
			t.Fatal("the entry holds after its chain expired")
		}
		if _, ok := a.srv.peerAuth.get(leaf, st, v, e.valid[0].Add(-time.Second)); ok {
			t.Fatal("the entry holds before its chain is valid")
		}
	}
}
