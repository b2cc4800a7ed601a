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
