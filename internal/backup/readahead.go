package backup

import (
	"errors"
	"io"
)

// readAhead decompresses in its own goroutine, a few buffers ahead of the
// reader, so that on a server with two cores decompression overlaps with
// writing and hashing files instead of taking turns with them. Memory stays
// bounded by the buffers; errors reach the reader at the position they
// happened, after every byte before them.
type readAhead struct {
	full chan aheadChunk
	free chan []byte
	stop chan struct{}
	done chan struct{} // closed when the goroutine no longer reads src
	buf  []byte        // the buffer being read, whole
	cur  []byte        // its part not yet returned
	err  error
}

type aheadChunk struct {
	b   []byte
	err error
}

const aheadBuffers, aheadBufferSize = 3, 1 << 20

// ReadAhead reads src from its own goroutine up to mib MiB ahead of the
// reader: a download goes on while the reader is busy (deriving a key,
// writing to a slow disk). Close stops the goroutine without waiting for a
// read it is blocked in: close src too.
func ReadAhead(src io.Reader, mib int) interface {
	io.Reader
	Close()
} {
	return newReadAhead(src, func() {}, max(mib, 1))
}

// newReadAhead starts reading src into buffers of aheadBufferSize; closeSrc
// runs in the goroutine when it stops reading, so src (a decompressor) is
// never closed while in use.
func newReadAhead(src io.Reader, closeSrc func(), buffers int) *readAhead {
	ra := &readAhead{
		full: make(chan aheadChunk, buffers),
		free: make(chan []byte, buffers),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range buffers {
		ra.free <- make([]byte, aheadBufferSize)
	}
	go ra.run(src, closeSrc)
	return ra
}

func (ra *readAhead) run(src io.Reader, closeSrc func()) {
	defer close(ra.done)
	defer closeSrc()
	for {
		var buf []byte
		select {
		case <-ra.stop:
			return
		default:
		}
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(src, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		// A full chunk is sent without the error of the next read: that
		// read happens on the next round.
		ra.full <- aheadChunk{b: buf[:n], err: err}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.buf != nil {
			ra.free <- ra.buf
			ra.buf = nil
		}
		c := <-ra.full
		ra.buf, ra.cur, ra.err = c.b[:cap(c.b)], c.b, c.err
		if ra.err != nil {
			ra.buf = nil
			// The source may be read directly after this (the end
			// check): the goroutine must be gone first.
			<-ra.done
		}
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the goroutine without waiting for it: a read it is blocked
// in (on a network body) ends when the body is closed.
func (ra *readAhead) Close() {
	select {
	case <-ra.stop:
	default:
		close(ra.stop)
	}
}
