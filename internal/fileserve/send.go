package fileserve

import (
	"io"
	"net"
	"os"
	"syscall"
)

// sender writes responses on one connection: on Linux with send and
// sendfile on the socket itself, elsewhere with plain writes.
type sender struct {
	nc  net.Conn
	raw syscall.RawConn // nil: the portable path
	fn  func(uintptr) bool
	buf []byte

	// the response in progress, for fn
	hdr    []byte
	fd     int
	off    int64
	remain int64
	err    error
}

func (s *sender) init(nc net.Conn) {
	s.nc = nc
	if rawSendfile {
		if sc, ok := nc.(syscall.Conn); ok {
			if raw, err := sc.SyscallConn(); err == nil {
				s.raw = raw
				s.fn = s.step // bound once: no allocation per response
			}
		}
	}
}

// send writes head and then n bytes of f from off.
func (s *sender) send(head []byte, f *os.File, fd uintptr, off, n int64) error {
	if s.raw != nil {
		s.hdr, s.fd, s.off, s.remain, s.err = head, int(fd), off, n, nil
		if err := s.raw.Write(s.fn); err != nil {
			return err
		}
		return s.err
	}
	if len(head) > 0 {
		if _, err := s.nc.Write(head); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	if s.buf == nil {
		s.buf = make([]byte, 64<<10)
	}
	// ReadAt, not the file's offset: the file is shared by connections.
	w, err := io.CopyBuffer(writerOnly{s.nc}, io.NewSectionReader(f, off, n), s.buf)
	if err == nil && w < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// writerOnly hides the connection's ReadFrom, which would read the
// section through a buffer of its own.
type writerOnly struct{ io.Writer }
