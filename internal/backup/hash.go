package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"sync"
)

// fileHasher is a SHA-256 writer whose result comes as hex.
type fileHasher interface {
	io.Writer
	// Sum returns the hex digest; it also releases the hasher.
	Sum() string
	// Close releases the hasher without a result (safe after Sum).
	Close()
}

// parallelMin is the file size from which hashing runs beside the copy.
// Many servers have no SHA instructions, and SHA-256 then costs as much CPU
// as zstd: overlapping the two nearly halves the time of a large store.
const parallelMin = 4 << 20

func newFileHasher(size int64) fileHasher {
	if size < parallelMin {
		return &plainHasher{h: sha256.New()}
	}
	return newParallelHasher()
}

type plainHasher struct{ h hash.Hash }

func (p *plainHasher) Write(b []byte) (int, error) { return p.h.Write(b) }
func (p *plainHasher) Sum() string                 { return hex.EncodeToString(p.h.Sum(nil)) }
func (p *plainHasher) Close()                      {}

// parallelHasher hashes copies of what is written in its own goroutine,
// through a few fixed buffers, so memory stays bounded.
type parallelHasher struct {
	h     hash.Hash
	work  chan []byte
	free  chan []byte
	done  chan struct{}
	close sync.Once
}

const hashBuffers, hashBufferSize = 4, 256 << 10

func newParallelHasher() *parallelHasher {
	p := &parallelHasher{h: sha256.New(), work: make(chan []byte, hashBuffers),
		free: make(chan []byte, hashBuffers), done: make(chan struct{})}
	for range hashBuffers {
		p.free <- make([]byte, 0, hashBufferSize)
	}
	go func() {
		defer close(p.done)
		for b := range p.work {
			p.h.Write(b)
			p.free <- b[:0]
		}
	}()
	return p
}

func (p *parallelHasher) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		buf := <-p.free
		k := min(len(b), cap(buf))
		buf = append(buf, b[:k]...)
		p.work <- buf
		b = b[k:]
	}
	return n, nil
}

func (p *parallelHasher) Sum() string {
	p.Close()
	return hex.EncodeToString(p.h.Sum(nil))
}

func (p *parallelHasher) Close() {
	p.close.Do(func() {
		close(p.work)
		<-p.done
	})
}

// copyFrom copies src to dst through the hasher's own buffers and hands
// each buffer to the hashing goroutine once written, instead of copying
// it for the hash as Write does: a restore's store is a gigabyte. It
// returns the bytes copied and a read error (src's, io.EOF excluded) or
// a write error (dst's).
func (p *parallelHasher) copyFrom(dst io.Writer, src io.Reader) (n int64, readErr, writeErr error) {
	for {
		buf := <-p.free
		buf = buf[:cap(buf)]
		k := 0
		var err error
		for k < len(buf) && err == nil {
			var m int
			m, err = src.Read(buf[k:])
			k += m
		}
		if k == 0 {
			p.free <- buf[:0]
		} else {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				p.free <- buf[:0]
				return n, nil, werr
			}
			n += int64(k)
			p.work <- buf[:k]
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}
