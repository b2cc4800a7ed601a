package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"zonekit/internal/serverfiles"
)

// The peers file follows the zone's servers: written on start, rewritten
// when a peer's address changes.
func TestPeersFileFollowsTheServers(t *testing.T) {
	a, b := newReplZone(t)
	path := b.srv.opts.Paths.PeersFile()
	waitPeers := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := serverfiles.ReadPeers(path)
			if err == nil && slices.Equal(got, want) && (len(want) > 0 || fileExists(path)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("peers file %v (%v); want %v", got, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	l := NewLoop("peers file", b.srv.peersFileLoop)
	l.Start(context.Background())
	defer l.Stop()
	// A has no address of its own yet: no peer to list.
	waitPeers([]string{})
	if err := b.db.SetServerAddress("test", a.srv.self.ID, nil, nil, "127.0.0.2:8443"); err != nil {
		t.Fatal(err)
	}
	waitPeers([]string{"127.0.0.2:8443"})
	if err := b.db.SetServerAddress("test", a.srv.self.ID, nil, nil, "127.0.0.3:8443"); err != nil {
		t.Fatal(err)
	}
	waitPeers([]string{"127.0.0.3:8443"})
}
