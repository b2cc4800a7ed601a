package dhcp

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"zonekit/internal/preboot/plog"
)

var mac = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}

func testConfig() *Config {
	return &Config{DHCPPort: 67, PXEPort: 4011, NBPx86: "undionly.kpxe", NBPx64: "ipxe.efi", NBParm64: "ipxe-arm64.efi", PolicyPort: 8069, MenuTimeout: 2}
}

const noArch = iana.Arch(0xffff)

// discover builds a DISCOVER as the firmware of the notes sends it.
func discover(t testing.TB, class string, arch iana.Arch, userClass string) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{dhcpv4.WithHwAddr(mac)}
	if class != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)))
	}
	if arch != noArch {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClientArch(arch)))
	}
	if userClass != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, []byte(userClass))))
	}
	mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, make([]byte, 17))))
	d, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var local = netip.MustParseAddr("10.99.0.2")

func TestAnswer(t *testing.T) {
	cases := []struct {
		name      string
		req       *dhcpv4.DHCPv4
		pxe       bool
		menu      int
		file      string // "" = no answer
		why       string
		vendorHas byte
	}{
		{"bios", discover(t, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, ""), false, 0, "undionly.kpxe", "", pxeDiscoveryControl},
		{"bios menu", discover(t, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, ""), false, 2, "undionly.kpxe", "", pxeMenuPrompt},
		{"uefi", discover(t, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64, ""), false, 0, "ipxe.efi", "", pxeDiscoveryControl},
		{"uefi bc", discover(t, "PXEClient:Arch:00009:UNDI:003000", iana.EFI_BC, ""), false, 0, "ipxe.efi", "", 0},
		{"arch from option 60", discover(t, "PXEClient:Arch:00007:UNDI:003000", noArch, ""), false, 0, "ipxe.efi", "", 0},
		{"no arch is bios", discover(t, "PXEClient", noArch, ""), false, 0, "undionly.kpxe", "", 0},
		{"ipxe", discover(t, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, "iPXE"), false, 2, "http://10.99.0.2:8069/ipxe/52-54-00-12-34-56", "", 0},
		{"http client", discover(t, "HTTPClient:Arch:00016:UNDI:003000", iana.EFI_X86_64_HTTP, ""), false, 0, "http://10.99.0.2:8069/boot/ipxe.efi", "", 0},
		{"not pxe", discover(t, "", noArch, ""), false, 0, "", "not a PXE client", 0},
		{"other vendor", discover(t, "MSFT 5.0", noArch, ""), false, 0, "", "not a PXE client", 0},
		{"arm64", discover(t, "PXEClient:Arch:00011:UNDI:003000", iana.EFI_ARM64, ""), false, 0, "ipxe-arm64.efi", "", pxeDiscoveryControl},
		{"arm64 http", discover(t, "HTTPClient:Arch:00019:UNDI:003000", iana.EFI_ARM64_HTTP, ""), false, 0, "http://10.99.0.2:8069/boot/ipxe-arm64.efi", "", 0},
		{"riscv", discover(t, "PXEClient:Arch:00027:UNDI:003000", iana.Arch(27), ""), false, 0, "", "no boot file", 0},
		{"discover on 4011", discover(t, "PXEClient", iana.INTEL_X86PC, ""), true, 0, "", "not a boot server request", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MenuTimeout = c.menu
			reply, why := Answer(cfg, c.req, c.pxe, local)
			if c.file == "" {
				if reply != nil || !strings.Contains(why, c.why) {
					t.Fatalf("want no answer (%s), got %v %q", c.why, reply, why)
				}
				return
			}
			if reply == nil {
				t.Fatalf("no answer: %s", why)
			}
			if reply.BootFileName != c.file {
				t.Errorf("boot file %q, want %q", reply.BootFileName, c.file)
			}
			if !reply.YourIPAddr.Equal(net.IPv4zero) {
				t.Errorf("the proxy handed out %s", reply.YourIPAddr)
			}
			if reply.MessageType() != dhcpv4.MessageTypeOffer || !reply.ServerIdentifier().Equal(net.ParseIP("10.99.0.2")) || !reply.ServerIPAddr.Equal(net.ParseIP("10.99.0.2")) {
				t.Errorf("reply %s", reply.Summary())
			}
			if reply.GetOneOption(dhcpv4.OptionClientMachineIdentifier) == nil {
				t.Error("option 97 not copied")
			}
			if c.vendorHas != 0 && subOption(reply.GetOneOption(dhcpv4.OptionVendorSpecificInformation), c.vendorHas) == nil {
				t.Errorf("option 43 lacks sub-option %d", c.vendorHas)
			}
		})
	}
}

// TestBootServerRequest answers the request a client sends to port 4011
// after the menu, echoing its boot item.
func TestBootServerRequest(t *testing.T) {
	d := discover(t, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64, "")
	req, err := dhcpv4.NewRequestFromOffer(d)
	if err != nil {
		t.Fatal(err)
	}
	req.OpCode = dhcpv4.OpcodeBootRequest
	req.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000"))
	req.UpdateOption(dhcpv4.OptClientArch(iana.EFI_X86_64))
	req.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{pxeBootItem, 4, 0x80, 0, 0, 0, 0xff}))
	reply, why := Answer(testConfig(), req, true, local)
	if reply == nil {
		t.Fatal(why)
	}
	if reply.MessageType() != dhcpv4.MessageTypeAck || reply.BootFileName != "ipxe.efi" {
		t.Fatalf("reply %s", reply.Summary())
	}
	if item := subOption(reply.GetOneOption(dhcpv4.OptionVendorSpecificInformation), pxeBootItem); string(item) != "\x80\x00\x00\x00" {
		t.Fatalf("boot item %x", item)
	}
	// The same request to port 67 without a boot item is the address server's.
	req.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{0xff}))
	if reply, _ := Answer(testConfig(), req, false, local); reply != nil {
		t.Fatal("answered a REQUEST meant for the DHCP server")
	}
}

// TestServe runs the proxy on loopback ports and checks it answers a PXE
// client, stays silent for another, and survives garbage.
func TestServe(t *testing.T) {
	log, err := plog.Open(filepath.Join(t.TempDir(), "p.log"), "proxydhcp", plog.Debug, 15, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cfg := *testConfig()
	cfg.DHCPPort, cfg.PXEPort = freeUDP(t), freeUDP(t)
	cfg.Addr = netip.MustParseAddr("127.0.0.1")
	s := New(cfg, log)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// An answer may take long on a loaded machine; silence is checked
	// for a shorter while, and the ignored-count check below confirms it.
	send := func(b []byte, port int) *dhcpv4.DHCPv4 {
		wait := 5 * time.Second
		if m, err := dhcpv4.FromBytes(b); err != nil || !strings.HasPrefix(m.ClassIdentifier(), "PXEClient") {
			wait = 300 * time.Millisecond
		}
		c.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 1500)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return nil
		}
		r, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := send([]byte{1, 2, 3}, cfg.DHCPPort); r != nil {
		t.Fatal("answered garbage")
	}
	if r := send(discover(t, "", noArch, "").ToBytes(), cfg.DHCPPort); r != nil {
		t.Fatal("answered a non-PXE client")
	}
	// A client that has an address (on loopback) gets a unicast answer.
	d := discover(t, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, "")
	d.ClientIPAddr = net.IPv4(127, 0, 0, 1)
	r := send(d.ToBytes(), cfg.DHCPPort)
	if r == nil || r.BootFileName != "undionly.kpxe" {
		t.Fatalf("no or wrong answer: %v", r)
	}
	req, err := dhcpv4.NewRequestFromOffer(d, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")), dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))))
	if err != nil {
		t.Fatal(err)
	}
	req.OpCode = dhcpv4.OpcodeBootRequest
	if r := send(req.ToBytes(), cfg.PXEPort); r == nil || !strings.HasPrefix(r.BootFileName, "http://127.0.0.1:8069/ipxe/") {
		t.Fatalf("4011: %v", r)
	}
	if got := s.Stats.Ignored.Load(); got != 2 {
		t.Errorf("ignored %d, want 2", got)
	}
	// The server counts an answer after sending it, so the client can
	// read the answer before the count moves: wait for it a while.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		o, a := s.Stats.Offers.Load(), s.Stats.Acks.Load()
		if o == 1 && a == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d offers and %d acks counted, want 1 and 1", o, a)
		}
	}
}

func freeUDP(t *testing.T) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func FuzzAnswer(f *testing.F) {
	f.Add(discover(f, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, "iPXE").ToBytes())
	f.Add(discover(f, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64, "").ToBytes())
	f.Add(discover(f, "HTTPClient:Arch:00016", iana.EFI_X86_64_HTTP, "").ToBytes())
	f.Add([]byte{1, 1, 6, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		for _, pxe := range []bool{false, true} {
			reply, _ := Answer(testConfig(), req, pxe, local)
			if reply == nil {
				continue
			}
			if !strings.HasPrefix(req.ClassIdentifier(), "PXEClient") && !strings.HasPrefix(req.ClassIdentifier(), "HTTPClient") {
				t.Fatalf("answered a non-PXE client")
			}
			if !reply.YourIPAddr.IsUnspecified() {
				t.Fatalf("handed out an address")
			}
			reply.ToBytes()
		}
		subOption(req.Options.Get(dhcpv4.OptionVendorSpecificInformation), pxeBootItem)
	})
}

// TestSeparateTFTPServer: with boot files on another server the offer
// carries no F8 menu (EDK2 would load the file from the boot server it
// asked on port 4011, not from siaddr): it names the file, and siaddr the
// TFTP server. When TFTPServer is the proxy's own address, the menu's
// boot server list names the proxy.
func TestSeparateTFTPServer(t *testing.T) {
	cfg := testConfig()
	cfg.TFTPServer = netip.MustParseAddr("10.99.0.9")
	reply, why := Answer(cfg, discover(t, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64, ""), false, local)
	if reply == nil {
		t.Fatal(why)
	}
	if !reply.ServerIPAddr.Equal(net.ParseIP("10.99.0.9")) {
		t.Errorf("siaddr %s, want the TFTP server", reply.ServerIPAddr)
	}
	vendor := reply.GetOneOption(dhcpv4.OptionVendorSpecificInformation)
	if dc := subOption(vendor, pxeDiscoveryControl); string(dc) != "\x08" || subOption(vendor, pxeBootServers) != nil {
		t.Errorf("option 43 %v: want discovery control 8 and no boot servers", vendor)
	}
	cfg.TFTPServer = local
	reply, _ = Answer(cfg, discover(t, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64, ""), false, local)
	servers := subOption(reply.GetOneOption(dhcpv4.OptionVendorSpecificInformation), pxeBootServers)
	if want := []byte{0x80, 0, 1, 10, 99, 0, 2}; string(servers) != string(want) {
		t.Errorf("boot servers %v, want %v (the proxy)", servers, want)
	}
}

// TestLocalInterfaceMustBeLocal: an address this server does not have is
// refused at start, not accepted to wait for requests that never come.
func TestLocalInterfaceMustBeLocal(t *testing.T) {
	cfg := *testConfig()
	cfg.DHCPPort, cfg.PXEPort = freeUDP(t), freeUDP(t)
	cfg.Addr = netip.MustParseAddr("192.0.2.77") // TEST-NET-1, on no interface here
	s := New(cfg, nil)
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "192.0.2.77 is not an address of this server") {
		s.Stop()
		t.Fatalf("start: %v", err)
	}
	cfg.Addr = netip.MustParseAddr("127.0.0.1")
	s = New(cfg, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	bad := cfg
	bad.Addr = netip.MustParseAddr("192.0.2.77")
	if err := s.Reload(bad); err == nil {
		t.Fatal("reload to a foreign address accepted")
	}
}
