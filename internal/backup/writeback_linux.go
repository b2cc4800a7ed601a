package backup

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// writebackStep is how much of a large file is written before the kernel
// is asked to start putting it on disk.
const writebackStep = 8 << 20

// writeback starts the disk writes of a large unpacked file as it goes, so
// that the flush a restore makes before its swap finds little left to do
// and disk and CPU work overlap. The requests go out from their own
// goroutine: sync_file_range waits when the device's queue is full, and
// the unpack must not wait with it.
type writeback struct {
	f     *os.File
	off   int64
	asked int64
	req   chan int64
	done  chan struct{}
	once  sync.Once
}

func newWriteback(f *os.File) *writeback {
	w := &writeback{f: f, req: make(chan int64, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var sent int64
		fd := int(f.Fd())
		for end := range w.req {
			// Only a hint: failures surface at the flush, which waits.
			unix.SyncFileRange(fd, sent, end-sent, unix.SYNC_FILE_RANGE_WRITE)
			sent = end
		}
	}()
	return w
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.asked >= writebackStep {
		select {
		case w.req <- w.off:
			w.asked = w.off
		default: // still busy with the last range: the next one covers this
		}
	}
	return n, err
}

// stop waits for the requests made; call it before closing the file.
func (w *writeback) stop() {
	w.once.Do(func() {
		close(w.req)
		<-w.done
	})
}
