package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/backup"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Changes tells what a restore adds, changes, replaces and removes, from a
// scan of the live tree made while the backup was unpacked.
func TestLiveScanChanges(t *testing.T) {
	home := t.TempDir()
	write(t, filepath.Join(home, "conf", "same.conf"), "a=1\n")
	write(t, filepath.Join(home, "conf", "edited.conf"), "a=2\n")
	write(t, filepath.Join(home, "conf", "mode.conf"), "m\n")
	write(t, filepath.Join(home, "conf", "extra.conf"), "x\n")
	write(t, filepath.Join(home, "conf", "sub", "deep.conf"), "d\n")
	write(t, filepath.Join(home, "conf", "x.conf.tmp-123"), "partial")
	for _, f := range []string{"same.conf", "edited.conf", "extra.conf", "sub/deep.conf"} {
		os.Chmod(filepath.Join(home, "conf", f), 0o640)
	}
	os.Chmod(filepath.Join(home, "conf", "mode.conf"), 0o600)
	os.Chmod(filepath.Join(home, "conf"), 0o750)
	os.Chmod(filepath.Join(home, "conf", "sub"), 0o700)

	m := &backup.Manifest{Entries: []backup.Entry{
		{Path: "conf", Mode: fs.ModeDir | 0o750},
		{Path: "conf/same.conf", Mode: 0o640, Size: 4, SHA256: sum("a=1\n")},
		{Path: "conf/edited.conf", Mode: 0o640, Size: 4, SHA256: sum("a=1\n")},
		{Path: "conf/mode.conf", Mode: 0o640, Size: 2, SHA256: sum("m\n")},
		{Path: "conf/new.conf", Mode: 0o640, Size: 2, SHA256: sum("n\n")},
		{Path: "conf/sub", Mode: fs.ModeDir | 0o750},
		{Path: "conf/sub/deep.conf", Mode: 0o640, Size: 2, SHA256: sum("d\n")},
		{Path: StoreEntry, Mode: 0o600, Size: 10, SHA256: sum("store")},
	}}
	excluded := func(rel string) bool { return strings.Contains(filepath.Base(rel), ".tmp-") }
	got, err := ScanLive(context.Background(), home, []string{"conf"}, excluded).Changes(m)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.RestoreChange{
		{Path: "conf/edited.conf", Action: "change"},
		{Path: "conf/extra.conf", Action: "remove"},
		{Path: "conf/mode.conf", Action: "change"},
		{Path: "conf/new.conf", Action: "add"},
		{Path: "conf/sub", Action: "change"},
		{Path: "data/zone.db", Action: "replace"},
	}
	if len(got) != len(want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// A scan abandoned (the backup was refused) stops and leaves nothing
// running.
func TestLiveScanStop(t *testing.T) {
	home := t.TempDir()
	for i := range 200 {
		write(t, filepath.Join(home, "conf", "d", strings.Repeat("f", 1+i%50)+string(rune('a'+i%26))), "x")
	}
	l := ScanLive(context.Background(), home, []string{"conf"}, func(string) bool { return false })
	l.Stop()
}

// A symbolic link is compared as Lstat sees it, its content followed; a
// FIFO left in the live tree is reported changed without the scan waiting
// on it; a file that is a whole number of read buffers long is hashed
// whole.
func TestLiveScanSpecialFiles(t *testing.T) {
	home := t.TempDir()
	big := strings.Repeat("z", 2*64<<10)
	write(t, filepath.Join(home, "conf", "target.conf"), "t\n")
	write(t, filepath.Join(home, "conf", "big.conf"), big)
	if err := os.Symlink("target.conf", filepath.Join(home, "conf", "link.conf")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(home, "conf", "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(home, "conf"), 0o750)
	os.Chmod(filepath.Join(home, "conf", "target.conf"), 0o640)
	os.Chmod(filepath.Join(home, "conf", "big.conf"), 0o640)
	m := &backup.Manifest{Entries: []backup.Entry{
		{Path: "conf", Mode: fs.ModeDir | 0o750},
		{Path: "conf/target.conf", Mode: 0o640, Size: 2, SHA256: sum("t\n")},
		{Path: "conf/big.conf", Mode: 0o640, Size: int64(len(big)), SHA256: sum(big)},
		{Path: "conf/link.conf", Mode: 0o777, Size: 2, SHA256: sum("t\n")},
		{Path: "conf/pipe", Mode: 0o600, Size: 1, SHA256: sum("p")},
	}}
	done := make(chan struct{})
	var got []api.RestoreChange
	var err error
	go func() {
		defer close(done)
		got, err = ScanLive(context.Background(), home, []string{"conf"}, func(string) bool { return false }).Changes(m)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the scan waits on the FIFO")
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := []api.RestoreChange{{Path: "conf/pipe", Action: "change"}}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("changes = %v, want %v", got, want)
	}
}
