package agent

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"zonekit/internal/errkind"
)

// One engine per home: a second is Busy (exit status 8) until the first
// lets go (deploy_unix.go: flock; deploy_windows.go: LockFileEx; both
// released by the OS when an engine is killed).
func TestEngineLock(t *testing.T) {
	a := New(t.TempDir())
	unlock, err := a.lockEngine()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.lockEngine(); !errkind.Is(err, errkind.Busy) {
		t.Fatalf("second engine: %v, want Busy", err)
	}
	unlock()
	unlock2, err := a.lockEngine()
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlock2()
}

// The OS-specific pieces the engine uses, on this host.
func TestHostPieces(t *testing.T) {
	dir := t.TempDir()
	if n, err := freeSpace(filepath.Join(dir, "not", "yet")); err != nil || n == 0 {
		t.Errorf("freeSpace of a missing directory: %d %v", n, err)
	}
	line := "echo $ZK_TEST_VALUE"
	if runtime.GOOS == "windows" {
		line = "echo %ZK_TEST_VALUE%"
	}
	cmd := shellCommand(t.Context(), line)
	cmd.Env = []string{"ZK_TEST_VALUE=expanded by the shell"}
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "expanded by the shell" {
		t.Errorf("shellCommand: %q %v", out, err)
	}
	if l := launchLine("setup.sh --quiet"); !strings.HasSuffix(l, "setup.sh --quiet") || !strings.HasPrefix(l, ".") {
		t.Errorf("launchLine = %q", l)
	}
}
