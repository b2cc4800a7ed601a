package backup

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackStep is how much of a large file is written before the kernel
// is asked to start putting it on disk.
const writebackStep = 8 << 20

// writeback starts the disk writes of a large unpacked file as it goes, so
// that the flush a restore makes before its swap finds little left to do
// and disk and CPU work overlap.
type writeback struct {
	f         *os.File
	off, sent int64
}

func newWriteback(f *os.File) *writeback { return &writeback{f: f} }

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.sent >= writebackStep {
		// Only a hint: failures surface at the flush, which waits.
		unix.SyncFileRange(int(w.f.Fd()), w.sent, w.off-w.sent, unix.SYNC_FILE_RANGE_WRITE)
		w.sent = w.off
	}
	return n, err
}
