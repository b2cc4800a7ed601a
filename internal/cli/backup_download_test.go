package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/backup"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/cli/zman"
	"zonekit/internal/ui"
)

// TestBackupDownload drives zman zenserver-backup against a stand-in
// server: the request goes out while the key is derived, not after it, the
// file decrypts to the stream the server sent, and Ctrl-C during the key
// derivation ends it at once with no file written.
func TestBackupDownload(t *testing.T) {
	stream := make([]byte, 3<<20+77)
	rand.Read(stream)
	var (
		mu      sync.Mutex
		arrived []time.Time
		delay   time.Duration // before the answer's headers
	)
	dir, global := standIn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived = append(arrived, time.Now())
		d := delay
		mu.Unlock()
		// A zone server walks its configuration tree before it answers.
		time.Sleep(d)
		w.Header().Set("Content-Type", "application/zstd")
		w.Header().Set(api.HeaderZone, "Acme")
		w.Header().Set(api.HeaderServer, "srv1")
		w.Write(stream)
	}))
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("a long backup passphrase\n"), 0o600)
	run := func(ctx context.Context, args ...string) (int, string, time.Time) {
		io, _, out, errOut := ui.Test()
		start := time.Now()
		code := cmdutil.Execute(ctx, zman.NewRoot(zman.NewFactory(io)), io, append(global, args...))
		return code, out.String() + errOut.String(), start
	}

	// The key derivation alone, for comparison.
	kdfStart := time.Now()
	if _, err := backup.NewSealer([]byte("a long backup passphrase"), backup.DefaultKDF()); err != nil {
		t.Fatal(err)
	}
	kdf := time.Since(kdfStart)

	// A server as slow to answer as the key is to derive: the two overlap.
	delay = kdf
	file := filepath.Join(dir, "zone.zbk")
	code, out, start := run(context.Background(), "zenserver-backup", file, "--passphrase-file", pass)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, out)
	}
	mu.Lock()
	if len(arrived) != 1 {
		t.Fatalf("%d requests, want 1", len(arrived))
	}
	if waited := arrived[0].Sub(start); waited > kdf/2 {
		t.Errorf("the request reached the server %v after the start, the key takes %v: it waited for the key", waited, kdf)
	}
	if took := time.Since(start); took > kdf*7/4 {
		t.Errorf("the backup took %v with a server answering after %v and a key derived in %v: they did not overlap", took, delay, kdf)
	}
	delay = 0
	mu.Unlock()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := backup.Decrypt(f, []byte("a long backup passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(dec)
	f.Close()
	if err != nil || !bytes.Equal(got, stream) {
		t.Fatalf("the file decrypts to %d bytes (%v), want the %d the server sent", len(got), err, len(stream))
	}

	// Ctrl-C while the key is derived: over at once, nothing written.
	again := filepath.Join(dir, "again.zbk")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(kdf/4, cancel)
	code, out, start = run(ctx, "zenserver-backup", again, "--passphrase-file", pass)
	if took := time.Since(start); code != 130 || !strings.Contains(out, "nothing was written") || took > kdf*3/4 {
		t.Errorf("interrupted during the key derivation: exit %d after %v (key %v): %s", code, took, kdf, out)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "again") || strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("left behind after Ctrl-C: %s", e.Name())
			}
		}
	}
}
