package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFIFO: a FIFO with no writer is refused at once instead of blocking
// the caller forever.
func TestFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skip(err)
	}
	os.WriteFile(filepath.Join(dir, "file"), []byte("data"), 0o644)
	os.Symlink("fifo", filepath.Join(dir, "link-to-fifo"))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, name := range []string{"fifo", "link-to-fifo", "."} {
			if f, _, err := Open(root, name); !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: %v", name, err)
				if f != nil {
					f.Close()
				}
			}
		}
		if _, _, err := OpenPath(filepath.Join(dir, "fifo")); !errors.Is(err, ErrNotRegular) {
			t.Errorf("OpenPath fifo: %v", err)
		}
		f, fi, err := Open(root, "file")
		if err != nil || fi.Size() != 4 {
			t.Errorf("regular file: %v", err)
		} else {
			b := make([]byte, 4)
			if n, err := f.Read(b); n != 4 || err != nil {
				t.Errorf("read: %d %v", n, err)
			}
			f.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("opening a FIFO blocked")
	}
}
