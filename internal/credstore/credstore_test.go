package credstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/credstore"
)

func TestPutGetDelete(t *testing.T) {
	s := credstore.New(filepath.Join(t.TempDir(), "zman"))
	const a, b = "https://zone1.example:443", "https://zone2.example:8443"

	if _, ok, err := s.Get(a); err != nil || ok {
		t.Fatalf("Get on an empty store = %v, %v; want not found, no error", ok, err)
	}
	if err := s.Put(a, credstore.Credential{Admin: "Administrator", Token: "zk_one"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.Put(b, credstore.Credential{Admin: "ops", Token: "zk_two"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	// Put replaces the credential of the same server.
	if err := s.Put(a, credstore.Credential{Admin: "Administrator", Token: "zk_three"}); err != nil {
		t.Fatalf("Put: %v", err)
	}

	for server, want := range map[string]credstore.Credential{
		a: {Admin: "Administrator", Token: "zk_three"},
		b: {Admin: "ops", Token: "zk_two"},
	} {
		got, ok, err := s.Get(server)
		if err != nil || !ok || got != want {
			t.Errorf("Get(%s) = %+v, %v, %v; want %+v", server, got, ok, err, want)
		}
	}

	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credential file mode = %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm()&0o077 != 0 {
		t.Errorf("credential directory mode = %v, want no group or other access", di.Mode().Perm())
	}

	got, ok, err := s.Delete(a)
	if err != nil || !ok || got.Token != "zk_three" {
		t.Errorf("Delete(a) = %+v, %v, %v", got, ok, err)
	}
	if _, ok, _ := s.Get(a); ok {
		t.Error("credential still there after Delete")
	}
	if _, ok, err := s.Delete(a); err != nil || ok {
		t.Errorf("second Delete = %v, %v; want not found, no error", ok, err)
	}
	if _, ok, _ := s.Get(b); !ok {
		t.Error("Delete(a) removed b too")
	}
	// Deleting the last credential removes the file.
	if _, _, err := s.Delete(b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Errorf("file left after the last credential was deleted: %v", err)
	}
}

func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	s := credstore.New(dir)
	if err := os.WriteFile(s.Path(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Get("https://zone1.example:443")
	if err == nil {
		t.Fatal("Get on a corrupt file succeeded")
	}
	if !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), s.Path()) {
		t.Errorf("error %q should say the file is corrupt and name it", err)
	}
	if err := s.Put("x", credstore.Credential{}); err == nil {
		t.Error("Put over a corrupt file succeeded (and would have lost its content)")
	}
}

func TestNewDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(credstore.DirEnv, dir)
	if got := credstore.New("").Path(); got != filepath.Join(dir, "zman-credentials.json") {
		t.Errorf("with $%s the path is %s", credstore.DirEnv, got)
	}
	other := t.TempDir()
	if got := credstore.New(other).Path(); !strings.HasPrefix(got, other) {
		t.Errorf("an explicit directory should win over $%s, got %s", credstore.DirEnv, got)
	}
}
