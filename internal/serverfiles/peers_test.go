package serverfiles

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPeersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	if got, err := ReadPeers(path); err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v, %v; want no peers", got, err)
	}
	want := []string{"127.0.0.2:443", "s3.acme.example:8443"}
	if err := WritePeers(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadPeers(path); err != nil || !slices.Equal(got, want) {
		t.Fatalf("read %v, %v; want %v", got, err, want)
	}
	if err := WritePeers(path, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadPeers(path); err != nil || len(got) != 0 {
		t.Fatalf("after the peers left: %v, %v", got, err)
	}
	// Damage is an error, not a silent empty list.
	os.WriteFile(path, []byte(`{"peers": [`), 0o644)
	if _, err := ReadPeers(path); err == nil {
		t.Error("a truncated file was read")
	}
	os.WriteFile(path, []byte(strings.Repeat(" ", maxPeersFile+1)), 0o644)
	if _, err := ReadPeers(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("an oversized file: %v", err)
	}
}
