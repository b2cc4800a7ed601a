// Package dhcp is the preboot proxy DHCP service (RFC 2131, RFC 2132, PXE
// 2.1): it answers PXE clients with the boot file for their architecture
// next to the site's ordinary DHCP server, never hands out addresses, and
// stays silent for every other client.
package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"zonekit/internal/preboot/netx"
	"zonekit/internal/preboot/plog"
)

// Config is the proxy's resolved configuration.
type Config struct {
	LocalDHCP  bool       // LocalDHCPFlag: the DHCP server is on this host; answer on the PXE port only
	Addr       netip.Addr // LocalInterface: answer only requests arriving on this address's interface
	DHCPPort   int        // 67
	PXEPort    int        // 4011
	NBPx86     string     // BIOS boot file
	NBPx64     string     // x86-64 UEFI boot file
	NBParm64   string     // boot file for ARM64 UEFI clients (option 93 = 11, or 19 over HTTP)
	TFTPServer netip.Addr // where boot files are; invalid means the answering address
	// PolicyEngine is address[:port] of the preboot policy service; empty
	// means the answering address and PolicyPort.
	PolicyEngine string
	PolicyPort   int
	MenuTimeout  int // seconds; 0 shows no menu
}

// Stats counts what the proxy did since it started.
type Stats struct {
	Requests, Answered, Ignored atomic.Int64
	Offers, Acks                atomic.Int64 // Answered by type: DHCPOFFER and DHCPACK
}

// Server is a running proxy DHCP service.
type Server struct {
	log   *plog.Logger
	cfg   atomic.Pointer[Config]
	Stats Stats

	mu    sync.Mutex
	conns []*net.UDPConn
	loops sync.WaitGroup
}

// New returns a proxy with cfg; Start begins serving.
func New(cfg Config, log *plog.Logger) *Server {
	s := &Server{log: log}
	s.cfg.Store(&cfg)
	return s
}

func (s *Server) ports(cfg *Config) []int {
	if cfg.LocalDHCP {
		return []int{cfg.PXEPort}
	}
	return []int{cfg.DHCPPort, cfg.PXEPort}
}

// Start opens the DHCP and PXE ports. They are bound to every address so
// that broadcasts arrive; LocalInterface filters by arrival interface.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open(s.cfg.Load())
}

func (s *Server) open(cfg *Config) error {
	if err := netx.CheckLocal(cfg.Addr); err != nil {
		return fmt.Errorf("LocalInterface: %w", err)
	}
	var conns []*net.UDPConn
	for _, port := range s.ports(cfg) {
		c, err := netx.Listen(netip.Addr{}, port, true)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return fmt.Errorf("listen for proxy DHCP on port %d: %w", port, err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		s.loops.Add(1)
		go s.serve(c)
	}
	s.conns = conns
	return nil
}

// Ports returns the bound ports (tests bind port 0).
func (s *Server) Ports() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []int
	for _, c := range s.conns {
		ps = append(ps, c.LocalAddr().(*net.UDPAddr).Port)
	}
	return ps
}

// Reload applies a new configuration; the sockets move only when the ports
// or LocalDHCPFlag changed.
func (s *Server) Reload(cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cfg.Load()
	if err := netx.CheckLocal(cfg.Addr); err != nil {
		return fmt.Errorf("LocalInterface: %w", err)
	}
	if fmt.Sprint(s.ports(old)) != fmt.Sprint(s.ports(&cfg)) {
		for _, c := range s.conns {
			c.Close()
		}
		s.loops.Wait()
		if err := s.open(&cfg); err != nil {
			return err
		}
	}
	s.cfg.Store(&cfg)
	return nil
}

// Stop closes the sockets.
func (s *Server) Stop() {
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.loops.Wait()
}

func (s *Server) serve(c *net.UDPConn) {
	defer s.loops.Done()
	port := c.LocalAddr().(*net.UDPAddr).Port
	buf := make([]byte, 4096)
	oob := make([]byte, netx.OOBSize)
	for {
		p, err := netx.Read(c, buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Logf(plog.Warning, "read: %v", err)
			continue
		}
		s.handle(c, port, buf[:p.N], p)
	}
}

func (s *Server) handle(c *net.UDPConn, port int, b []byte, p netx.Packet) {
	cfg := s.cfg.Load()
	s.Stats.Requests.Add(1)
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		s.Stats.Ignored.Add(1)
		s.log.Logf(plog.Request, "ignored a malformed packet from %s: %v", p.Src, err)
		return
	}
	if s.log.Enabled(plog.Debug) {
		s.log.Logf(plog.Debug, "received on port %d from %s:", port, p.Src)
		logLines(s.log, req.Summary())
	}
	local := p.Local
	if cfg.Addr.IsValid() {
		if local != cfg.Addr {
			s.Stats.Ignored.Add(1)
			s.log.Logf(plog.Request, "ignored %s from %s: it arrived on %s, not LocalInterface %s", req.MessageType(), req.ClientHWAddr, local, cfg.Addr)
			return
		}
	}
	if !local.Is4() || local.IsUnspecified() {
		if a, err := netx.InterfaceAddr(p.IfIndex); err == nil {
			local = a
		}
	}
	reply, why := Answer(cfg, req, port == cfg.PXEPort, local)
	if reply == nil {
		s.Stats.Ignored.Add(1)
		s.log.Logf(plog.Request, "ignored %s from %s (xid %s): %s", req.MessageType(), req.ClientHWAddr, req.TransactionID, why)
		return
	}
	s.log.Logf(plog.Request, "%s from %s (xid %s, %q, arch %s)", req.MessageType(), req.ClientHWAddr, req.TransactionID, req.ClassIdentifier(), archName(req))
	dst := replyAddr(req, p.Src, port == cfg.PXEPort, cfg.DHCPPort)
	ifindex := p.IfIndex
	if err := netx.WriteFrom(c, reply.ToBytes(), dst, ifindex, local); err != nil {
		s.log.Logf(plog.Warning, "answer %s at %s: %v", req.ClientHWAddr, dst, err)
		return
	}
	s.Stats.Answered.Add(1)
	if reply.MessageType() == dhcpv4.MessageTypeOffer {
		s.Stats.Offers.Add(1)
	} else {
		s.Stats.Acks.Add(1)
	}
	s.log.Logf(plog.Transaction, "%s to %s at %s: boot file %q from %s", reply.MessageType(), req.ClientHWAddr, dst, reply.BootFileName, reply.ServerIPAddr)
	if s.log.Enabled(plog.Debug) {
		s.log.Logf(plog.Debug, "sent:")
		logLines(s.log, reply.Summary())
	}
}

// logLines logs a packet's decoded form one line per entry; each line is
// escaped on its own, so an option string cannot add lines.
func logLines(log *plog.Logger, text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		log.Logf(plog.Debug, "  %s", line)
	}
}

// replyAddr is where an answer goes: back to the sender on the PXE port;
// on the DHCP port to the relay, to a client that has an address, or
// else broadcast, since the client has none yet.
func replyAddr(req *dhcpv4.DHCPv4, src netip.AddrPort, pxePort bool, dhcpPort int) netip.AddrPort {
	if pxePort {
		return src
	}
	if gi, ok := netip.AddrFromSlice(req.GatewayIPAddr.To4()); ok && !gi.IsUnspecified() {
		return netip.AddrPortFrom(gi, uint16(dhcpPort))
	}
	client := uint16(68)
	if dhcpPort != 67 {
		client = src.Port() // tests move the ports
	}
	if ci, ok := netip.AddrFromSlice(req.ClientIPAddr.To4()); ok && !ci.IsUnspecified() {
		return netip.AddrPortFrom(ci, client)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), client)
}

// PXE vendor options (option 43 sub-options, PXE 2.1 section 2.4).
const (
	pxeDiscoveryControl = 6
	pxeBootServers      = 8
	pxeBootMenu         = 9
	pxeMenuPrompt       = 10
	pxeBootItem         = 71
	// bootServerType is the type of this server's menu entry, in the
	// vendor range so that clients do not take it for "local boot" (0).
	bootServerType = 0x8000
)

func archName(req *dhcpv4.DHCPv4) string {
	a, ok := clientArch(req)
	if !ok {
		return "unknown"
	}
	return fmt.Sprintf("%d (%s)", uint16(a), a)
}

// clientArch reads option 93, or the Arch field of option 60; a PXE client
// without either is a BIOS client (PXE 2.1).
func clientArch(req *dhcpv4.DHCPv4) (iana.Arch, bool) {
	if as := req.ClientArch(); len(as) > 0 {
		return as[0], true
	}
	if raw := req.Options.Get(dhcpv4.OptionClientSystemArchitectureType); raw != nil {
		return 0, false // present but malformed
	}
	class := req.ClassIdentifier()
	if i := strings.Index(class, "Arch:"); i >= 0 && len(class) >= i+10 {
		var n int
		if _, err := fmt.Sscanf(class[i+5:i+10], "%05d", &n); err == nil {
			return iana.Arch(n), true
		}
		return 0, false
	}
	return iana.INTEL_X86PC, true
}

// IsIPXE reports whether the client is iPXE, which sends "iPXE" in option
// 77 (user class) and is handed its script instead of a boot file.
func IsIPXE(req *dhcpv4.DHCPv4) bool {
	return strings.Contains(string(req.Options.Get(dhcpv4.OptionUserClassInformation)), "iPXE")
}

// ScriptURL is the iPXE script URL for a client.
func ScriptURL(cfg *Config, local netip.Addr, mac net.HardwareAddr) string {
	host := cfg.PolicyEngine
	if host == "" {
		host = local.String()
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, fmt.Sprint(cfg.PolicyPort))
	}
	return "http://" + host + "/ipxe/" + strings.ReplaceAll(mac.String(), ":", "-")
}

// Answer decides the reply to one request, or why there is none. pxePort
// tells whether it came to the PXE boot server port (4011); local is the
// address the proxy answers from.
func Answer(cfg *Config, req *dhcpv4.DHCPv4, pxePort bool, local netip.Addr) (*dhcpv4.DHCPv4, string) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, "not a request"
	}
	class := req.ClassIdentifier()
	httpClient := strings.HasPrefix(class, "HTTPClient")
	if !strings.HasPrefix(class, "PXEClient") && !httpClient {
		return nil, fmt.Sprintf("not a PXE client (option 60 %q)", class)
	}
	if len(req.ClientHWAddr) == 0 {
		return nil, "no hardware address"
	}
	var typ dhcpv4.MessageType
	mt := req.MessageType()
	vendor := req.Options.Get(dhcpv4.OptionVendorSpecificInformation)
	bootItem := subOption(vendor, pxeBootItem)
	switch {
	case pxePort && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
		typ = dhcpv4.MessageTypeAck
	case pxePort:
		return nil, fmt.Sprintf("%s is not a boot server request", mt)
	case mt == dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case mt == dhcpv4.MessageTypeRequest && bootItem != nil:
		typ = dhcpv4.MessageTypeAck // boot server discovery by broadcast
	case mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform:
		return nil, fmt.Sprintf("%s for the address-giving DHCP server", mt)
	default:
		return nil, fmt.Sprintf("message type %s needs no answer from a proxy", mt)
	}

	arch, ok := clientArch(req)
	if !ok {
		return nil, "malformed client architecture (option 93 or 60)"
	}
	tftp := cfg.TFTPServer
	if !tftp.IsValid() {
		tftp = local
	}
	ipxe := IsIPXE(req)
	var file string
	switch {
	case ipxe:
		file = ScriptURL(cfg, local, req.ClientHWAddr)
	case httpClient:
		var nbp string
		switch arch {
		case iana.EFI_X86_64_HTTP, iana.EFI_X86_64, iana.EFI_BC:
			nbp = cfg.NBPx64
		case iana.EFI_ARM64_HTTP, iana.EFI_ARM64:
			nbp = cfg.NBParm64
		default:
			return nil, fmt.Sprintf("no boot file for HTTP client architecture %d", uint16(arch))
		}
		host := cfg.PolicyEngine
		if host == "" {
			host = local.String()
		}
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, fmt.Sprint(cfg.PolicyPort))
		}
		file = "http://" + host + "/boot/" + strings.TrimLeft(nbp, "/")
	case arch == iana.INTEL_X86PC:
		file = cfg.NBPx86
	case arch == iana.EFI_X86_64 || arch == iana.EFI_BC:
		file = cfg.NBPx64
	case arch == iana.EFI_ARM64:
		file = cfg.NBParm64
	default:
		return nil, fmt.Sprintf("no boot file for client architecture %d (%s)", uint16(arch), arch)
	}
	if file == "" {
		return nil, "the boot file for this architecture is not set"
	}

	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(tftp.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(local.AsSlice())),
		dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientMachineIdentifier),
	}
	if httpClient {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient")))
	} else {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")))
	}
	reply, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil, fmt.Sprintf("build reply: %v", err)
	}
	reply.YourIPAddr = net.IPv4zero // a proxy never hands out an address
	reply.ClientIPAddr = req.ClientIPAddr
	reply.BootFileName = file
	if !ipxe && !httpClient {
		// The F8 menu sends the firmware to a boot server on port 4011,
		// and EDK2 then loads the boot file from that server, whatever
		// siaddr says. So with boot files on another server there is no
		// menu: the offer names the file, and siaddr its server.
		menu := cfg.MenuTimeout > 0 && tftp == local
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, vendorOptions(cfg, typ, local, bootItem, menu)))
	}
	return reply, ""
}

// vendorOptions builds option 43. With a menu timeout the client shows
// the F8 menu with this server as its first (and default) entry and asks
// the listed boot server on port 4011; without one it loads the boot file
// at once. server is the proxy's own address, never TFTPServer: the boot
// server request is a DHCP message that only the proxy answers.
func vendorOptions(cfg *Config, typ dhcpv4.MessageType, server netip.Addr, bootItem []byte, menu bool) []byte {
	var v []byte
	add := func(code byte, data []byte) {
		v = append(v, code, byte(len(data)))
		v = append(v, data...)
	}
	if typ == dhcpv4.MessageTypeAck && bootItem != nil {
		add(pxeBootItem, bootItem)
	} else if menu {
		// Broadcast and multicast discovery off, only the listed server.
		add(pxeDiscoveryControl, []byte{0x07})
		ip := server.As4()
		add(pxeBootServers, append([]byte{bootServerType >> 8, bootServerType & 0xff, 1}, ip[:]...))
		label := "zonekit preboot services"
		add(pxeBootMenu, append([]byte{bootServerType >> 8, bootServerType & 0xff, byte(len(label))}, label...))
		add(pxeMenuPrompt, append([]byte{byte(cfg.MenuTimeout)}, "Press F8 for the boot menu"...))
	} else {
		add(pxeDiscoveryControl, []byte{0x08}) // load the boot file named here
	}
	return append(v, 0xff)
}

// subOption finds a sub-option in an encapsulated option.
func subOption(b []byte, code byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c == 0 {
			i++
			continue
		}
		if c == 0xff || i+1 >= len(b) {
			return nil
		}
		n := int(b[i+1])
		if i+2+n > len(b) {
			return nil
		}
		if c == code {
			return b[i+2 : i+2+n]
		}
		i += 2 + n
	}
	return nil
}
