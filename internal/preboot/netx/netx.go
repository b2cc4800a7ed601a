// Package netx opens the UDP sockets the preboot services need: IPv4,
// told by the kernel which local address and interface each datagram
// arrived on (IP_PKTINFO), so that a server listening on every address
// answers from the address it was asked on, and broadcasts go out of the
// interface the request came in on.
package netx

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Listen opens an IPv4 UDP socket on addr:port (an invalid addr means every
// address) with IP_PKTINFO on; broadcast allows sending to 255.255.255.255.
func Listen(addr netip.Addr, port int, broadcast bool) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if broadcast {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	host := "0.0.0.0"
	if addr.IsValid() {
		host = addr.String()
	}
	pc, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// Packet is a received datagram with where it came from and arrived.
type Packet struct {
	N       int
	Src     netip.AddrPort
	Dst     netip.Addr // the local address it was sent to (may be a broadcast address)
	Local   netip.Addr // the address of the interface it arrived on
	IfIndex int
}

// OOBSize is enough room for the control messages Read expects.
const OOBSize = 128

// Read reads one datagram into buf, using oob (OOBSize bytes) for the
// control message.
func Read(c *net.UDPConn, buf, oob []byte) (Packet, error) {
	n, oobn, _, src, err := c.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return Packet{}, err
	}
	p := Packet{N: n, Src: netip.AddrPortFrom(src.Addr().Unmap(), src.Port())}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return p, nil
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= int(unsafe.Sizeof(unix.Inet4Pktinfo{})) {
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&m.Data[0]))
			p.IfIndex = int(pi.Ifindex)
			p.Dst = netip.AddrFrom4(pi.Addr)
			p.Local = netip.AddrFrom4(pi.Spec_dst)
		}
	}
	return p, nil
}

// WriteFrom sends b to dst out of interface ifindex with source address
// src (either may be zero to let the kernel choose).
func WriteFrom(c *net.UDPConn, b []byte, dst netip.AddrPort, ifindex int, src netip.Addr) error {
	var oob []byte
	if ifindex != 0 || src.IsValid() {
		pi := unix.Inet4Pktinfo{Ifindex: int32(ifindex)}
		if src.Is4() {
			pi.Spec_dst = src.As4()
		}
		oob = unix.PktInfo4(&pi)
	}
	_, _, err := c.WriteMsgUDPAddrPort(b, oob, dst)
	return err
}

// InterfaceAddr returns the first IPv4 address of the interface with the
// given index.
func InterfaceAddr(ifindex int) (netip.Addr, error) {
	ifc, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(pn.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address", ifc.Name)
}

// CheckLocal refuses an address that no interface of this server has: a
// service told to use it would otherwise wait for requests that never
// come (the proxy binds every address and filters by arrival address).
func CheckLocal(a netip.Addr) error {
	if !a.IsValid() {
		return nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("list this server's addresses: %w", err)
	}
	for _, ia := range addrs {
		if p, ok := ia.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(p.IP); ok && b.Unmap() == a.Unmap() {
				return nil
			}
		}
	}
	return fmt.Errorf("%s is not an address of this server", a)
}
