package backup

import (
	"os"

	"golang.org/x/sys/unix"
)

// willNeed starts the reads of f's content without waiting for them (a
// hint: errors are ignored).
func willNeed(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_WILLNEED)
}

// archivePrefetchMax bounds what PrefetchArchive reads ahead: the start of a
// large archive keeps the disk busy while the key is derived, and more
// would only push other files out of the page cache.
const archivePrefetchMax = 256 << 20

// PrefetchArchive asks the kernel to read the start of an archive now,
// while its key is derived, and the rest ahead of the reads (hints only).
func PrefetchArchive(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	unix.Fadvise(int(f.Fd()), 0, archivePrefetchMax, unix.FADV_WILLNEED)
}
