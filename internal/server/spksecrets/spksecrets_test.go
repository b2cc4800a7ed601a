package spksecrets

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/errkind"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

type servers []zone.Server

func (s servers) Servers() ([]zone.Server, error) { return s, nil }

// routes records what a keyring mounts and lets the test call it.
type routes struct {
	httpapi.Routes
	peer map[string]func(http.ResponseWriter, *http.Request, zone.Server) error
}

func (r *routes) Peer(p string, h func(http.ResponseWriter, *http.Request, zone.Server) error) {
	r.peer[p] = h
}

// peers answers a peer call with the peer's keyring route.
type peers struct {
	ring  map[string]*routes
	calls int
}

func (p *peers) Call(ctx context.Context, peer zone.Server, method, path string, in, out any) error {
	p.calls++
	r, ok := p.ring[peer.ID]
	if !ok {
		return errors.New("connection refused")
	}
	req := httptest.NewRequest(method, "/api/v1"+path, nil)
	rec := httptest.NewRecorder()
	if err := r.peer["GET /api/v1/cluster/spk-values-key"](rec, req, zone.Server{ID: "self", Name: "self"}); err != nil {
		return err
	}
	return json.NewDecoder(rec.Body).Decode(out)
}

func newRing(t *testing.T, id string, all servers, p *peers) *Keyring {
	k := &Keyring{Dir: filepath.Join(t.TempDir(), "spk-values"), Zone: all, Peers: p, Self: zone.Server{ID: id, Name: id},
		Log: slog.New(slog.DiscardHandler)}
	r := &routes{peer: map[string]func(http.ResponseWriter, *http.Request, zone.Server) error{}}
	k.Register(r)
	p.ring[id] = r
	return k
}

func TestSealedValueOpensOnAPeerThatFetchesTheKey(t *testing.T) {
	ctx := context.Background()
	all := servers{{ID: "a", Name: "a"}, {ID: "b", Name: "b"}}
	p := &peers{ring: map[string]*routes{}}
	a, b := newRing(t, "a", all, p), newRing(t, "b", all, p)

	// The first server to seal makes the zone's key (no peer has one).
	sealed, err := a.Seal(ctx, "PASSWD", "S3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, sealPrefix) || strings.Contains(sealed, "S3cret") {
		t.Fatalf("sealed %q", sealed)
	}
	if _, err := a.Unseal(ctx, "OTHER", sealed); err == nil {
		t.Error("a value opened under another name")
	}
	// B has no key: it asks A, keeps it (0600) and seals with it.
	if got, err := b.Unseal(ctx, "PASSWD", sealed); err != nil || got != "S3cret" {
		t.Fatalf("B unseals %q, %v", got, err)
	}
	keys, _ := filepath.Glob(filepath.Join(b.Dir, "*.key"))
	if len(keys) != 1 {
		t.Fatalf("B's keys: %v", keys)
	}
	if fi, err := os.Stat(keys[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("B's key: %v, %v", fi, err)
	}
	s2, err := b.Seal(ctx, "X", "y")
	if err != nil || s2[:len(sealPrefix)+16] != sealed[:len(sealPrefix)+16] {
		t.Errorf("B seals with %q, %v; want A's key", s2, err)
	}
}

func TestUnknownKeyIsUnavailable(t *testing.T) {
	p := &peers{ring: map[string]*routes{}}
	a := newRing(t, "a", servers{{ID: "a", Name: "a"}, {ID: "gone", Name: "gone"}}, p)
	_, err := a.Unseal(context.Background(), "PASSWD", sealPrefix+"0011223344556677:AAAA")
	if errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("a value under a key no server has: %v; want Unavailable", err)
	}
	for _, bad := range []string{"v2:x", "v1:nocolon", sealPrefix + "../x:AAAA"} {
		if _, err := a.Unseal(context.Background(), "PASSWD", bad); err == nil {
			t.Errorf("unsealed %q", bad)
		}
	}
}
