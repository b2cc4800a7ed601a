package spk

import (
	"path/filepath"
	"testing"
)

// freeSpace (sys_unix.go, sys_windows.go) answers for a directory the
// package has yet to create by asking about its nearest existing parent.
func TestFreeSpace(t *testing.T) {
	dir := t.TempDir()
	have, err := freeSpace(dir)
	if err != nil || have == 0 {
		t.Fatalf("freeSpace(%s) = %d, %v", dir, have, err)
	}
	got, err := freeSpace(filepath.Join(dir, "not", "yet", "created"))
	if err != nil {
		t.Fatalf("freeSpace of a missing directory: %v", err)
	}
	// Other tests write meanwhile: the two answers are near, not equal.
	if diff := int64(got) - int64(have); diff > 64<<20 || diff < -64<<20 {
		t.Errorf("freeSpace(missing child) = %d, freeSpace(parent) = %d", got, have)
	}
}
