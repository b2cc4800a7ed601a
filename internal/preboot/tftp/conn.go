package tftp

import (
	"errors"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pconn is a transfer's connected UDP socket, used with plain blocking
// system calls rather than the runtime's poller: a lock-step transfer waits
// for one ACK per block, and waking a parked goroutine costs more than the
// network round trip on a LAN. Windows go out in one system call with UDP
// segmentation offload (GSO) where the kernel has it.
type pconn struct {
	fd      int
	timeout time.Duration
	gsoSize int // the segment size set, 0 if none; -1 when GSO is unavailable
}

func dialUDP(local netip.Addr, peer netip.AddrPort) (*pconn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	c := &pconn{fd: fd}
	la := &unix.SockaddrInet4{}
	if local.Is4() {
		la.Addr = local.As4()
	}
	if err := unix.Bind(fd, la); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if !peer.Addr().Is4() {
		unix.Close(fd)
		return nil, errors.New("not an IPv4 client")
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: peer.Addr().As4(), Port: int(peer.Port())}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// setTimeout sets how long read waits; the system call is made only when
// the value (in milliseconds) changes.
func (c *pconn) setTimeout(d time.Duration) error {
	d = d.Round(time.Millisecond)
	if d == c.timeout {
		return nil
	}
	c.timeout = d
	tv := unix.NsecToTimeval(d.Nanoseconds())
	return unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

// errWoken is returned by read after wake.
var errWoken = errors.New("woken")

func (c *pconn) read(b []byte) (int, error) {
	for {
		n, err := unix.Read(c.fd, b)
		switch {
		case err == nil && n == 0 && len(b) > 0:
			return 0, errWoken // shut down by wake (a real empty datagram is too short anyway)
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, errTimeout
		case errors.Is(err, unix.ECONNREFUSED):
			return 0, errors.New("the client went away (port unreachable)")
		default:
			return 0, err
		}
	}
}

func (c *pconn) write(b []byte) error {
	for {
		_, err := unix.Write(c.fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECONNREFUSED) {
			// An ICMP error from an earlier datagram; the next read reports it.
			return nil
		}
		return err
	}
}

// writeSegments sends b as datagrams of seg bytes each (the last may be
// shorter): with GSO in one system call, else one call per datagram.
func (c *pconn) writeSegments(b []byte, seg int) error {
	if len(b) <= seg {
		return c.write(b)
	}
	if c.gsoSize >= 0 && c.gsoSize != seg {
		if err := unix.SetsockoptInt(c.fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT, seg); err != nil {
			c.gsoSize = -1
		} else {
			c.gsoSize = seg
		}
	}
	if c.gsoSize == seg {
		// The kernel takes at most 64 segments and 64 KiB per call.
		per := min(64, 65000/seg)
		for len(b) > 0 {
			n := min(len(b), per*seg)
			if err := c.write(b[:n]); err != nil {
				if errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EINVAL) {
					c.gsoSize = -1 // refused by the device: fall back
					return c.writeSegments(b, seg)
				}
				return err
			}
			b = b[n:]
		}
		return nil
	}
	for len(b) > 0 {
		n := min(len(b), seg)
		if err := c.write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// wake makes a blocked read return errWoken (the server is stopping).
func (c *pconn) wake() { unix.Shutdown(c.fd, unix.SHUT_RD) }

func (c *pconn) close() { unix.Close(c.fd) }
