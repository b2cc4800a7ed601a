//go:build linux && (amd64 || arm64)

package fileserve

import (
	"io"
	"syscall"
	"unsafe"
)

const rawSendfile = true

// step is the sender's write callback on the raw socket: the head with
// MSG_MORE when a body follows (the kernel holds the partial segment and
// fills it with the file's first bytes, as nginx's tcp_nopush does), then
// sendfile from the file at an explicit offset (the file is shared, its
// own offset is not used). It returns false to wait for the socket.
func (s *sender) step(fd uintptr) bool {
	for len(s.hdr) > 0 {
		flags := uintptr(syscall.MSG_NOSIGNAL)
		if s.remain > 0 {
			flags |= syscall.MSG_MORE
		}
		n, _, errno := syscall.Syscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.hdr[0])), uintptr(len(s.hdr)), flags, 0, 0)
		switch errno {
		case 0:
			s.hdr = s.hdr[n:]
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.err = errno
		return true
	}
	for s.remain > 0 {
		n, err := syscall.Sendfile(int(fd), s.fd, &s.off, int(min(s.remain, 1<<30)))
		if n > 0 {
			s.remain -= int64(n)
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			s.err = err
			return true
		case n == 0:
			s.err = io.ErrUnexpectedEOF // the file is shorter than when opened
			return true
		}
	}
	return true
}
