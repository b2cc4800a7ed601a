package content

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing f to disk now, without
// waiting, so that the sync at the end of a build finds little left to do
// and disk and CPU work overlap.
func startWriteback(f *os.File) {
	// Only a hint: a failure surfaces at syncFiles.
	unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

// syncFiles makes the files of dir durable. One syncfs costs one journal
// commit where an fsync per fragment would cost one each (a thousand for
// a 1 GiB package), which made the disk, not the hashing, the bottleneck.
func syncFiles(dir string, names []string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
