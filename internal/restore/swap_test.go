package restore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/config"
	"zonekit/internal/failpoint"
)

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// home makes a server home in the "old" state and a staging folder
// holding the "new" one.
func home(t *testing.T) (config.Paths, string) {
	p := config.Paths{Home: t.TempDir()}
	write(t, p.ConfigFile(), "old conf")
	write(t, filepath.Join(p.Security(), "server.key"), "old key")
	write(t, p.Store(), "old store")
	write(t, filepath.Join(p.Raft(), "raft.db"), "old log")
	staging, err := os.MkdirTemp(p.Home, StagingPrefix)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(staging, "conf", "zoneserver.conf"), "new conf")
	write(t, filepath.Join(staging, "conf", "security", "server.key"), "new key")
	write(t, filepath.Join(staging, "data", "zone.db"), "new store")
	return p, staging
}

// state says which whole state the home is in: "old", "new", or a
// description of the mix.
func state(t *testing.T, p config.Paths) string {
	t.Helper()
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			return "missing"
		}
		return string(b)
	}
	got := []string{read(p.ConfigFile()), read(filepath.Join(p.Security(), "server.key")), read(p.Store()), read(filepath.Join(p.Raft(), "raft.db"))}
	switch strings.Join(got, "|") {
	case "old conf|old key|old store|old log":
		return "old"
	case "new conf|new key|new store|missing":
		return "new"
	}
	return strings.Join(got, "|")
}

func leftovers(t *testing.T, p config.Paths) []string {
	t.Helper()
	var out []string
	entries, _ := os.ReadDir(p.Home)
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, StagingPrefix) || strings.HasPrefix(n, asidePrefix) || n == journalName {
			out = append(out, n)
		}
	}
	return out
}

// A crash after any step of the swap leaves, once Recover ran at the next
// start, exactly the previous state (before the commit) or exactly the
// new one (from the commit on), and no folder holding keys.
func TestSwapCrashAtEveryStep(t *testing.T) {
	errCrash := errors.New("crash")
	for i, step := range Steps {
		t.Run(step, func(t *testing.T) {
			p, staging := home(t)
			err := swapAndCleanup(p, staging, func(s string) error {
				if s == "restore-"+step {
					return errCrash
				}
				return nil
			})
			if !errors.Is(err, errCrash) {
				t.Fatalf("Swap = %v, want the crash", err)
			}
			did, err := Recover(p)
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			want := "old"
			if i >= 6 { // commit, cleanup
				want = "new"
			}
			if got := state(t, p); got != want {
				t.Errorf("after a crash at %s and Recover: state %s, want %s (Recover: %q)", step, got, want, did)
			}
			if did == "" {
				t.Errorf("Recover did nothing after a crash at %s", step)
			}
			if l := leftovers(t, p); len(l) != 0 {
				t.Errorf("left behind: %v", l)
			}
			// Recover is idempotent: a crash during Recover is followed by another.
			if did, err := Recover(p); err != nil || did != "" {
				t.Errorf("second Recover = %q, %v", did, err)
			}
		})
	}
}

// A crash while unpacking (before the journal) leaves a staging folder
// with decrypted keys: the next start removes it and changes nothing else.
func TestRecoverSweepsStaging(t *testing.T) {
	p, _ := home(t)
	did, err := Recover(p)
	if err != nil || did == "" {
		t.Fatalf("Recover = %q, %v", did, err)
	}
	if got := state(t, p); got != "old" {
		t.Errorf("state %s, want old", got)
	}
	if l := leftovers(t, p); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}

// swapAndCleanup is what a server does: the swap, then (after its answer)
// the cleanup.
func swapAndCleanup(p config.Paths, staging string, hook failpoint.Hook) error {
	if err := Swap(p, staging, hook); err != nil {
		return err
	}
	return Cleanup(p, hook)
}

func TestSwap(t *testing.T) {
	p, staging := home(t)
	if err := Swap(p, staging, nil); err != nil {
		t.Fatal(err)
	}
	if got := state(t, p); got != "new" {
		t.Errorf("state %s, want new", got)
	}
	// Until the cleanup ran, a start would finish it.
	if l := leftovers(t, p); len(l) == 0 {
		t.Errorf("nothing left for the cleanup")
	}
	if err := Cleanup(p, nil); err != nil {
		t.Fatal(err)
	}
	if got := state(t, p); got != "new" {
		t.Errorf("state %s, want new", got)
	}
	if l := leftovers(t, p); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}

// A swap that fails without a crash (the staged store is missing, so the
// move of the store fails after conf/ was swapped) puts the old state back.
func TestSwapFailureRollsBack(t *testing.T) {
	p, staging := home(t)
	os.Remove(filepath.Join(staging, "data", "zone.db"))
	err := Swap(p, staging, nil)
	if err == nil || !strings.Contains(err.Error(), "previous state was put back") {
		t.Fatalf("Swap = %v, want a failure that put the previous state back", err)
	}
	if got := state(t, p); got != "old" {
		t.Errorf("state %s, want old", got)
	}
	if l := leftovers(t, p); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}

func TestRecoverRefusesDamagedJournal(t *testing.T) {
	p, _ := home(t)
	write(t, filepath.Join(p.Home, journalName), `{"state":"swapping","staging":"../../etc","aside":".pre-restore-1"}`)
	if _, err := Recover(p); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Recover = %v, want a damaged journal refused", err)
	}
	if got := state(t, p); got != "old" {
		t.Errorf("state %s, want old", got)
	}
}
