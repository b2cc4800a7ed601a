package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
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

// restoreUpload is what a stand-in zone server saw of one restore upload.
type restoreUpload struct {
	arrived  time.Time // the request's headers
	first    time.Time // the first byte of its body
	length   int64     // its Content-Length
	body     []byte
	complete bool // the whole announced body came
}

// TestRestoreUpload drives zman zenserver-restore against a stand-in
// server: the request goes out before the key is derived, with the
// decrypted length announced, and carries the decrypted stream; a wrong
// passphrase breaks the upload (exit 12), the server's own refusal is
// what zman reports, and Ctrl-C during the key derivation ends it at once.
func TestRestoreUpload(t *testing.T) {
	var (
		mu      sync.Mutex
		uploads []restoreUpload
		refuse  bool
	)
	dir, global := standIn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := restoreUpload{arrived: time.Now(), length: r.ContentLength}
		if refuse {
			mu.Lock()
			uploads = append(uploads, up)
			mu.Unlock()
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(api.Error{Error: api.ErrorBody{Code: "exists", Message: "another restore is running on this server"}})
			return
		}
		var one [1]byte
		n, err := io.ReadFull(r.Body, one[:])
		up.first = time.Now()
		body := one[:n]
		if err == nil {
			rest, rerr := io.ReadAll(r.Body)
			body, err = append(body, rest...), rerr
		}
		up.body, up.complete = body, err == nil && int64(len(body)) == r.ContentLength
		mu.Lock()
		uploads = append(uploads, up)
		mu.Unlock()
		if !up.complete {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(api.RestoreResult{Zone: "Acme", Server: "srv1", Files: 1, Restart: "zconfigure -c Start --action restart"})
	}))
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("a long backup passphrase\n"), 0o600)
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("not the passphrase at all\n"), 0o600)

	// An archive whose key takes a while to derive (as the default's
	// half a second does), so the order of events shows.
	plain := make([]byte, 3*backup.MinChunkSize+77)
	rand.Read(plain)
	slow := backup.KDFParams{Memory: 16 << 10, Time: 40, Threads: 1}
	archive := filepath.Join(dir, "zone.zbk")
	var sealed bytes.Buffer
	w, err := backup.EncryptWithChunkSize(&sealed, []byte("a long backup passphrase"), slow, backup.MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	os.WriteFile(archive, sealed.Bytes(), 0o600)

	run := func(ctx context.Context, args ...string) (int, string, time.Time) {
		io, _, out, errOut := ui.Test()
		start := time.Now()
		code := cmdutil.Execute(ctx, zman.NewRoot(zman.NewFactory(io)), io, append(global, args...))
		return code, out.String() + errOut.String(), start
	}
	// nth waits for the server to have seen n requests (the handler may
	// still run when zman is done) and returns the nth.
	nth := func(n int) restoreUpload {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			if len(uploads) >= n {
				defer mu.Unlock()
				return uploads[n-1]
			}
			mu.Unlock()
			if time.Now().After(deadline) {
				t.Fatalf("request %d never reached the server", n)
			}
		}
	}

	// The key derivation alone, for comparison.
	f, _ := os.Open(archive)
	kdfStart := time.Now()
	if _, err := backup.Decrypt(f, []byte("a long backup passphrase")); err != nil {
		t.Fatal(err)
	}
	kdf := time.Since(kdfStart)
	f.Close()

	code, out, _ := run(context.Background(), "zenserver-restore", archive, "--passphrase-file", pass)
	if code != 0 {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	up := nth(1)
	if !up.complete || !bytes.Equal(up.body, plain) || up.length != int64(len(plain)) {
		t.Fatalf("the server got %d bytes (Content-Length %d, complete %v), want the %d decrypted bytes", len(up.body), up.length, up.complete, len(plain))
	}
	if ahead := up.first.Sub(up.arrived); ahead < kdf/3 {
		t.Errorf("the request arrived %v before its body, the key takes %v: it waited for the key", ahead, kdf)
	}
	if !strings.Contains(out, "Restart the zone server now") {
		t.Errorf("output: %s", out)
	}

	code, out, _ = run(context.Background(), "zenserver-restore", archive, "--passphrase-file", wrong)
	if code != 12 || !strings.Contains(out, "wrong passphrase") || !strings.Contains(out, "nothing was restored") {
		t.Errorf("wrong passphrase: exit %d: %s", code, out)
	}
	if up := nth(2); up.complete || len(up.body) > 0 {
		t.Errorf("wrong passphrase: the server got %d bytes (complete %v)", len(up.body), up.complete)
	}

	refuse = true
	code, out, _ = run(context.Background(), "zenserver-restore", archive, "--passphrase-file", pass)
	if code != 4 || !strings.Contains(out, "another restore is running") {
		t.Errorf("refused by the server: exit %d: %s", code, out)
	}
	refuse = false

	// Ctrl-C while the key is derived: over at once, nothing restored.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(kdf/4, cancel)
	code, out, start := run(ctx, "zenserver-restore", archive, "--passphrase-file", pass)
	if took := time.Since(start); code != 130 || !strings.Contains(out, "nothing was restored") || took > kdf*3/4 {
		t.Errorf("interrupted during the key derivation: exit %d after %v (key %v): %s", code, took, kdf, out)
	}
}
