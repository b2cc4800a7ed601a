package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"zonekit/internal/atomicfile"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name     string
		existing []byte // nil: no file before the write
		data     []byte
		perm     os.FileMode
	}{
		{"new private file", nil, []byte("secret\n"), 0o600},
		{"new public file", nil, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644},
		{"empty content", nil, []byte{}, 0o640},
		{"replaces longer content", []byte("old content that is longer than the new"), []byte("new"), 0o600},
		{"replaces and changes mode", []byte("old"), []byte("new"), 0o644},
	}
	// The umask must not loosen or tighten what the caller asked for.
	setUmask(t, 0o077)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.conf")
			if tt.existing != nil {
				if err := os.WriteFile(path, tt.existing, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := atomicfile.WriteFile(path, tt.data, tt.perm); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tt.data) {
				t.Errorf("content = %q, want %q", got, tt.data)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.perm {
				t.Errorf("mode = %v, want %v", fi.Mode().Perm(), tt.perm)
			}
			assertOnly(t, dir, "f.conf")
		})
	}
}

func TestWriteFileFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// Renaming a file over a non-empty directory fails after the temp file exists.
	target := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(target, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(target, []byte("x"), 0o600); err == nil {
		t.Fatal("WriteFile over a non-empty directory succeeded")
	}
	assertOnly(t, dir, "target")
}

func TestWriteFileMissingDirectory(t *testing.T) {
	err := atomicfile.WriteFile(filepath.Join(t.TempDir(), "no", "such", "f"), []byte("x"), 0o600)
	if err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
}

// assertOnly checks that dir holds exactly the named entry: no temp files left.
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only %q", names, name)
	}
}

func TestCommitNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.p12")
	f, err := atomicfile.New(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("first"))
	if err := f.CommitNew(); err != nil {
		t.Fatalf("CommitNew on a new path: %v", err)
	}
	g, err := atomicfile.New(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("second"))
	if err := g.CommitNew(); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CommitNew over a file = %v, want fs.ErrExist", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "first" {
		t.Errorf("the old file became %q", data)
	}
	assertOnly(t, dir, "ca.p12")
}
