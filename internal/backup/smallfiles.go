package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Creating a file costs a filesystem more than writing a small one: a
// restore of thousands of configuration files spent most of its time in
// open(O_CREAT). Small files are therefore read from the archive into a
// buffer and created, written and hashed by a few goroutines, in parallel
// with the archive's reading (and with each other, in different
// directories). Memory stays bounded by the buffers.
const (
	smallFileMax     = 256 << 10
	smallFileBuffers = 8
	smallFileWorkers = 2
)

type smallFile struct {
	dir  *os.Root
	base string
	name string
	data []byte
	buf  []byte // data's buffer, whole, for reuse
	seen *seen  // its sum is set by the worker
}

// smallFiles writes small files through worker goroutines.
type smallFiles struct {
	jobs    chan smallFile
	free    chan []byte
	made    int
	pending sync.WaitGroup // files submitted and not yet written
	workers sync.WaitGroup
	failed  atomic.Bool
	mu      sync.Mutex
	err     error
}

func newSmallFiles() *smallFiles {
	w := &smallFiles{jobs: make(chan smallFile, smallFileBuffers), free: make(chan []byte, smallFileBuffers)}
	for range smallFileWorkers {
		w.workers.Add(1)
		go w.work()
	}
	return w
}

// buffer returns a free buffer of smallFileMax bytes, waiting for one if
// every buffer is in use.
func (w *smallFiles) buffer() []byte {
	if w.made < smallFileBuffers {
		select {
		case b := <-w.free:
			return b
		default:
		}
		w.made++
		return make([]byte, smallFileMax)
	}
	return <-w.free
}

func (w *smallFiles) release(b []byte) { w.free <- b }

func (w *smallFiles) submit(f smallFile) {
	w.pending.Add(1)
	w.jobs <- f
}

func (w *smallFiles) work() {
	defer w.workers.Done()
	h := sha256.New()
	for f := range w.jobs {
		if !w.failed.Load() {
			if err := writeSmall(f); err != nil {
				w.fail(fmt.Errorf("unpack %s: %w", f.name, err))
			} else {
				h.Reset()
				h.Write(f.data)
				f.seen.sum = hex.EncodeToString(h.Sum(nil))
			}
		}
		w.release(f.buf)
		w.pending.Done()
	}
}

func writeSmall(f smallFile) error {
	// O_EXCL: never write through whatever might already be there.
	out, err := f.dir.OpenFile(f.base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.Write(f.data); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (w *smallFiles) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
		w.failed.Store(true)
	}
}

// Err returns the first write error so far.
func (w *smallFiles) Err() error {
	if !w.failed.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// wait returns once every submitted file is written, with the first error.
func (w *smallFiles) wait() error {
	w.pending.Wait()
	return w.Err()
}

// stop ends the workers once the files submitted are written.
func (w *smallFiles) stop() {
	close(w.jobs)
	w.workers.Wait()
}
