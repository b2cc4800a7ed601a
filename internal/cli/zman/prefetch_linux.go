package zman

import (
	"os"

	"golang.org/x/sys/unix"
)

// prefetchMax bounds what is read ahead: the start of a large archive is
// enough to keep the disk busy while the key is derived, and more would
// only push other files out of the page cache.
const prefetchMax = 256 << 20

// prefetch asks the kernel to read the start of the file now, while the
// key is derived, and the rest ahead of the reads; only hints.
func prefetch(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	unix.Fadvise(int(f.Fd()), 0, prefetchMax, unix.FADV_WILLNEED)
}
