//go:build linux

package fileserve

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// cold writes data to a file, syncs it and drops it from the page cache;
// it skips the test where the cache keeps it (tmpfs).
func cold(t *testing.T, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	writeFile(t, path, data)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	if cached(t, f, len(data)) {
		t.Skip("the page cache keeps the file here (tmpfs?)")
	}
	return f
}

func cached(t *testing.T, f *os.File, size int) bool {
	t.Helper()
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	return resident(m)
}

// A file not in the page cache is read into it whole, unchanged; one over
// populateMax is left to readahead.
func TestPopulate(t *testing.T) {
	data := content(3<<20+5000, 7)
	f := cold(t, data)
	populate(f, int64(len(data)))
	if !cached(t, f, len(data)) {
		t.Fatal("the file is not in the page cache after populate")
	}
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content after populate: %v", err)
	}

	f = cold(t, content(64<<10, 8))
	populate(f, populateMax+1)
	if cached(t, f, 64<<10) {
		t.Fatal("a file over populateMax was read")
	}
}
