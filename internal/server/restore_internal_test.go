package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/config"
	"zonekit/internal/errkind"
)

func TestSameMajor(t *testing.T) {
	for _, tc := range []struct {
		backup, ours string
		ok           bool
	}{
		{"0.1.0-dev", "0.1.0-dev", true},
		{"0.1.0", "0.9.3", true},
		{"v1.2.3", "1.0.0", true},
		{"1.0.0", "0.1.0-dev", false},
		{"2.0.0", "1.9.9", false},
	} {
		err := sameMajor(tc.backup, tc.ours)
		if (err == nil) != tc.ok {
			t.Errorf("sameMajor(%q, %q) = %v, want ok=%v", tc.backup, tc.ours, err, tc.ok)
		}
		if err != nil && errkind.Of(err) != errkind.Invalid {
			t.Errorf("sameMajor(%q, %q): kind %v, want Invalid (exit 1)", tc.backup, tc.ours, errkind.Of(err))
		}
	}
}

// A swap that fails half-way (here: the staged store is missing, so the
// second move fails after conf/ was already swapped) puts the old state back.
func TestSwapInRollsBack(t *testing.T) {
	home := t.TempDir()
	p := config.Paths{Home: home}
	for _, d := range []string{p.Conf(), p.Data()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.ConfigFile(), "old conf")
	write(p.Store(), "old store")
	staging := filepath.Join(home, ".restore-staging-x")
	write(filepath.Join(staging, "conf", "zoneserver.conf"), "new conf")

	err := swapIn(p, staging)
	if err == nil || !strings.Contains(err.Error(), "previous state was put back") {
		t.Fatalf("swapIn = %v, want a failure that put the previous state back", err)
	}
	for path, want := range map[string]string{p.ConfigFile(): "old conf", p.Store(): "old store"} {
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	left, _ := filepath.Glob(filepath.Join(home, ".pre-restore-*"))
	if len(left) != 0 {
		t.Errorf("set-aside state left behind: %v", left)
	}

	// Staged again, with the store this time, the swap succeeds.
	write(filepath.Join(staging, "conf", "zoneserver.conf"), "new conf")
	write(filepath.Join(staging, "data", "zone.db"), "new store")
	if err := swapIn(p, staging); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{p.ConfigFile(): "new conf", p.Store(): "new store"} {
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
}
