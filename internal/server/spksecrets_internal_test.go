package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/zone"
)

// A secret value sealed on one server opens on another, which fetches
// the key over the peer link; the store holds only ciphertext.
func TestSPKSecretsSealedAndSharedByPeers(t *testing.T) {
	a, b := newReplZone(t)
	ctx := context.Background()
	sealed, err := a.srv.spk.Seal(ctx, "PASSWD", "S3cret-pass")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "S3cret") || !strings.HasPrefix(sealed, "v1:") {
		t.Fatalf("sealed: %q", sealed)
	}
	if got, err := a.srv.spk.Unseal(ctx, "PASSWD", sealed); err != nil || got != "S3cret-pass" {
		t.Fatalf("unseal on A: %q %v", got, err)
	}
	// Bound to the name: the same ciphertext under another name fails.
	if _, err := a.srv.spk.Unseal(ctx, "OTHER", sealed); err == nil {
		t.Fatal("a sealed value opened under another name")
	}
	// B has no key yet: it asks A (by its peer address).
	if err := b.db.SetServerAddress("test", a.srv.self.ID, nil, nil, strings.TrimPrefix(a.hs.URL, "https://")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.srv.spk.Unseal(ctx, "PASSWD", sealed); err != nil || got != "S3cret-pass" {
		t.Fatalf("unseal on B: %q %v", got, err)
	}
	keys, _ := filepath.Glob(filepath.Join(b.srv.spk.Dir, "*.key"))
	if len(keys) != 1 {
		t.Fatalf("B's keyring: %v", keys)
	}
	if fi, _ := os.Stat(keys[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	// B seals new values with the same key.
	if s2, err := b.srv.spk.Seal(ctx, "X", "y"); err != nil || !strings.HasPrefix(s2, sealed[:len("v1:")+16]) {
		t.Errorf("B seals with %q, %v", s2, err)
	}
	// Through the store: only ciphertext is kept, devices get clear text.
	if err := a.db.SetSPKValues("test", zone.ScopeZone, "", map[string]zone.SPKValue{"PASSWD": {Secret: true, Sealed: sealed}}, nil); err != nil {
		t.Fatal(err)
	}
	all, _ := a.db.AllSPKValues()
	if len(all) != 1 || all[0].Values["PASSWD"].Value != "" {
		t.Fatalf("stored: %+v", all)
	}
}
