package tftp

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"time"
	"zonekit/internal/testenv"

	"zonekit/internal/preboot/plog"
)

func startServer(t *testing.T, mod func(*Config)) (*Server, string) {
	t.Helper()
	root := t.TempDir()
	cfg := Config{Root: root, Addr: netip.MustParseAddr("127.0.0.1"), Port: 0, MaxBlockSize: 1428,
		Timeout: time.Second, MaxTransfers: 100, MaxWindow: 64}
	if mod != nil {
		mod(&cfg)
	}
	log, err := plog.Open(filepath.Join(t.TempDir(), "tftp.log"), "tftp", plog.Debug, 15, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(10 * time.Millisecond); log.Close() })
	return s, root
}

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func need(t *testing.T, tool string) {
	t.Helper()
	testenv.Tool(t, tool, "apt-get install atftp tftp-hpa")
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestClients fetches files with the real clients and every option
// combination they offer.
func TestClients(t *testing.T) {
	s, root := startServer(t, nil)
	port := fmt.Sprint(s.Addr().Port())
	// Sizes around the block boundaries, and one that is an exact multiple.
	files := map[string][]byte{}
	for _, n := range []int{0, 1, 511, 512, 1428, 1428 * 20, 300000} {
		name := fmt.Sprintf("f%d.bin", n)
		files[name] = writeRandom(t, filepath.Join(root, name), n)
	}
	check := func(t *testing.T, name, out string) {
		t.Helper()
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, files[name]) {
			t.Fatalf("%s: got %d bytes, want %d", name, len(got), len(files[name]))
		}
	}
	t.Run("atftp", func(t *testing.T) {
		need(t, "atftp")
		for _, opts := range [][]string{nil, {"blksize 1428"}, {"blksize 1428", "windowsize 16"}, {"tsize 0", "blksize 512", "timeout 2"}, {"blksize 8192", "windowsize 4", "tsize 0"}} {
			for name := range files {
				out := filepath.Join(t.TempDir(), name)
				args := []string{}
				for _, o := range opts {
					args = append(args, "--option", o)
				}
				args = append(args, "--get", "-r", name, "-l", out, "127.0.0.1", port)
				if o, err := run(t, "atftp", args...); err != nil {
					t.Fatalf("atftp %v: %v\n%s", opts, err, o)
				}
				check(t, name, out)
			}
		}
	})
	t.Run("tftp-hpa", func(t *testing.T) {
		need(t, "tftp")
		for _, mode := range [][]string{{"-m", "binary"}} {
			for name := range files {
				out := filepath.Join(t.TempDir(), name)
				args := append([]string{"127.0.0.1", port}, mode...)
				args = append(args, "-c", "get", name, out)
				o, err := run(t, "tftp", args...)
				if err != nil || strings.Contains(o, "Error") {
					t.Fatalf("tftp %v: %v\n%s", mode, err, o)
				}
				check(t, name, out)
			}
		}
	})
	t.Run("curl", func(t *testing.T) {
		need(t, "curl")
		for _, opts := range [][]string{nil, {"--tftp-blksize", "1428"}, {"--tftp-no-options"}} {
			for name := range files {
				if len(files[name]) == 0 {
					continue // curl refuses a tsize of 0 in an OACK ("invalid tsize")
				}
				out := filepath.Join(t.TempDir(), name)
				args := append([]string{"-sS", "-o", out}, opts...)
				args = append(args, "tftp://127.0.0.1:"+port+"/"+name)
				if o, err := run(t, "curl", args...); err != nil {
					t.Fatalf("curl %v %s: %v\n%s", opts, name, err, o)
				}
				check(t, name, out)
			}
		}
	})
}

// TestNetascii reads and writes in netascii mode with tftp-hpa.
func TestNetascii(t *testing.T) {
	need(t, "tftp")
	s, root := startServer(t, func(c *Config) { c.AllowWrites = true })
	port := fmt.Sprint(s.Addr().Port())
	text := "line one\nline two\r\nbare\rcr\n"
	os.WriteFile(filepath.Join(root, "t.txt"), []byte(text), 0o644)
	out := filepath.Join(t.TempDir(), "t.txt")
	if o, err := run(t, "tftp", "127.0.0.1", port, "-m", "ascii", "-c", "get", "t.txt", out); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if got, _ := os.ReadFile(out); string(got) != text {
		t.Fatalf("netascii read: got %q", got)
	}
	if o, err := run(t, "tftp", "127.0.0.1", port, "-m", "ascii", "-c", "put", out, "u.txt"); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "u.txt")); string(got) != text {
		t.Fatalf("netascii write: got %q", got)
	}
}

// TestRefusals checks that nothing outside the root is reachable and that
// writes follow TFTPAllowWrites and TFTPAllowOverwrites.
func TestRefusals(t *testing.T) {
	need(t, "atftp")
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	s, root := startServer(t, nil)
	port := fmt.Sprint(s.Addr().Port())
	os.WriteFile(filepath.Join(root, "in.txt"), []byte("inside"), 0o644)
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "out-link"))
	os.Symlink("../in.txt", filepath.Join(root, "sub", "in-link"))
	get := func(name string) (string, error) {
		return run(t, "atftp", "--get", "-r", name, "-l", filepath.Join(t.TempDir(), "x"), "127.0.0.1", port)
	}
	for _, bad := range []string{"../" + filepath.Base(outside) + "/secret", "sub/../../secret", "out-link", filepath.Join(outside, "secret"), "sub", "missing"} {
		if o, err := get(bad); err == nil {
			t.Errorf("get %q succeeded:\n%s", bad, o)
		}
	}
	// A link inside the root, and an absolute path, which means the root.
	for _, good := range []string{"sub/in-link", "/in.txt", `sub\in-link`} {
		if o, err := get(good); err != nil {
			t.Errorf("get %q: %v\n%s", good, err, o)
		}
	}
	src := filepath.Join(t.TempDir(), "up")
	os.WriteFile(src, []byte("upload"), 0o644)
	put := func(port, name string) (string, error) {
		return run(t, "atftp", "--put", "-l", src, "-r", name, "127.0.0.1", port)
	}
	if o, err := put(port, "new.txt"); err == nil || !strings.Contains(o, "TFTPAllowWrites") {
		t.Errorf("write allowed by default: %v\n%s", err, o)
	}
	if _, err := os.Stat(filepath.Join(root, "new.txt")); err == nil {
		t.Error("refused write left a file")
	}

	w, wroot := startServer(t, func(c *Config) { c.AllowWrites = true })
	wport := fmt.Sprint(w.Addr().Port())
	os.WriteFile(filepath.Join(wroot, "old.txt"), []byte("old"), 0o644)
	if o, err := put(wport, "new.txt"); err != nil {
		t.Fatalf("write: %v\n%s", err, o)
	}
	if got, _ := os.ReadFile(filepath.Join(wroot, "new.txt")); string(got) != "upload" {
		t.Errorf("written file holds %q", got)
	}
	if o, err := put(wport, "old.txt"); err == nil {
		t.Errorf("overwrite allowed by default:\n%s", o)
	}
	if got, _ := os.ReadFile(filepath.Join(wroot, "old.txt")); string(got) != "old" {
		t.Errorf("refused overwrite changed the file to %q", got)
	}
	if o, err := put(wport, "../escape.txt"); err == nil {
		t.Errorf("write outside the root:\n%s", o)
	}
	if err := w.Reload(func() Config { c := w.st.Load().cfg; c.AllowOverwrites = true; return c }()); err != nil {
		t.Fatal(err)
	}
	if o, err := put(wport, "old.txt"); err != nil {
		t.Fatalf("overwrite after reload: %v\n%s", err, o)
	}
	if got, _ := os.ReadFile(filepath.Join(wroot, "old.txt")); string(got) != "upload" {
		t.Errorf("overwritten file holds %q", got)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(wroot)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left %s", e.Name())
		}
	}
}

// TestWindowedWrite uploads with a window, across block-number rollover.
func TestWindowedWrite(t *testing.T) {
	need(t, "atftp")
	s, root := startServer(t, func(c *Config) { c.AllowWrites = true })
	port := fmt.Sprint(s.Addr().Port())
	src := filepath.Join(t.TempDir(), "big")
	want := writeRandom(t, src, 512*65536+700) // past block 65535 at blksize 512
	if o, err := run(t, "atftp", "--option", "blksize 512", "--option", "windowsize 16", "--put", "-l", src, "-r", "big", "127.0.0.1", port); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "big")); !bytes.Equal(got, want) {
		t.Fatalf("uploaded file differs (%d bytes, want %d)", len(got), len(want))
	}
	out := filepath.Join(t.TempDir(), "back")
	if o, err := run(t, "atftp", "--option", "blksize 512", "--option", "windowsize 16", "--get", "-r", "big", "-l", out, "127.0.0.1", port); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatalf("downloaded file differs (%d bytes, want %d)", len(got), len(want))
	}
}

// TestBusy refuses requests past TFTPMaxTransfers with an error.
func TestBusy(t *testing.T) {
	s, root := startServer(t, func(c *Config) { c.MaxTransfers = 1 })
	os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644)
	c1 := dial(t, s)
	c1.WriteToUDPAddrPort([]byte("\x00\x01f\x00octet\x00"), s.Addr())
	readPacket(t, c1) // DATA 1: the transfer now waits for our ACK
	c2 := dial(t, s)
	c2.WriteToUDPAddrPort([]byte("\x00\x01f\x00octet\x00"), s.Addr())
	if p := readPacket(t, c2); p[1] != opERROR || !strings.Contains(string(p), "busy") {
		t.Fatalf("second transfer got %q", p)
	}
	if s.Stats.Busy.Load() != 1 {
		t.Fatalf("busy count %d", s.Stats.Busy.Load())
	}
}

func dial(t *testing.T, s *Server) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readPacket(t *testing.T, c *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestReloadKeepsTransfers: a transfer under way finishes with the
// settings it started with while the configuration changes under it.
func TestReloadKeepsTransfers(t *testing.T) {
	s, root := startServer(t, nil)
	want := writeRandom(t, filepath.Join(root, "f"), 3000)
	c := dial(t, s)
	c.WriteToUDPAddrPort([]byte("\x00\x01f\x00octet\x00"), s.Addr())
	var got []byte
	buf := make([]byte, 2048)
	for block := uint16(1); ; block++ {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if buf[1] != opDATA || buf[3] != byte(block) {
			t.Fatalf("block %d: got %q", block, buf[:n])
		}
		got = append(got, buf[4:n]...)
		if block == 1 {
			// Move the root elsewhere and forbid everything new.
			cfg := s.st.Load().cfg
			cfg.Root, cfg.MaxBlockSize = t.TempDir(), 512
			if err := s.Reload(cfg); err != nil {
				t.Fatal(err)
			}
		}
		c.WriteToUDPAddrPort(appendACK(nil, block), from)
		if n-4 < 512 {
			break
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	// New requests see the new root.
	c.WriteToUDPAddrPort([]byte("\x00\x01f\x00octet\x00"), s.Addr())
	if p := readPacket(t, c); p[1] != opERROR || p[3] != errNotFound {
		t.Fatalf("after reload: %q", p)
	}
}

// TestFIFO: a FIFO in the directory is refused at once; it neither holds
// a transfer nor keeps the server from stopping.
func TestFIFO(t *testing.T) {
	s, root := startServer(t, nil)
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Skip(err)
	}
	c := dial(t, s)
	c.WriteToUDPAddrPort([]byte("\x00\x01fifo\x00octet\x00"), s.Addr())
	if p := readPacket(t, c); p[1] != opERROR || p[3] != errAccess || !strings.Contains(string(p), "not a regular file") {
		t.Fatalf("fifo: got %q", p)
	}
	stopped := make(chan struct{})
	go func() { s.Stop(5 * time.Second); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop hangs")
	}
}

// TestPerClientLimit: one address cannot take every transfer slot; the
// others stay free for other clients.
func TestPerClientLimit(t *testing.T) {
	s, root := startServer(t, func(c *Config) { c.MaxPerClient = 2 })
	os.WriteFile(filepath.Join(root, "f"), make([]byte, 2000), 0o644)
	for i := range 3 {
		c := dial(t, s)
		c.WriteToUDPAddrPort([]byte("\x00\x01f\x00octet\x00"), s.Addr())
		p := readPacket(t, c)
		if i < 2 && p[1] != opDATA {
			t.Fatalf("transfer %d: got %q", i, p)
		}
		if i == 2 && (p[1] != opERROR || !strings.Contains(string(p), "too many transfers from your address")) {
			t.Fatalf("third transfer from one address: got %q", p)
		}
	}
	if s.Active() != 2 {
		t.Fatalf("%d transfers under way, want 2", s.Active())
	}
}

// TestSilentClient: a client that never acknowledges frees its slot after
// the configured silence, not after the whole backoff.
func TestSilentClient(t *testing.T) {
	s, root := startServer(t, func(c *Config) { c.Silence = 400 * time.Millisecond; c.Timeout = 100 * time.Millisecond })
	os.WriteFile(filepath.Join(root, "f"), make([]byte, 2000), 0o644)
	c := dial(t, s)
	c.WriteToUDPAddrPort([]byte("\x00\x01f\x00octet\x00"), s.Addr())
	readPacket(t, c)
	deadline := time.Now().Add(10 * time.Second)
	for s.Active() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the silent client still holds its slot")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.Stats.Failed.Load() != 1 {
		t.Fatalf("failed count %d", s.Stats.Failed.Load())
	}
	// Its first block went out again at each timeout before the silence
	// ran out (zonekit_tftp_retransmissions_total).
	if s.Stats.Retransmits.Load() < 1 {
		t.Fatalf("retransmissions %d, want at least 1", s.Stats.Retransmits.Load())
	}
}

// TestSweep: temporary files of uploads that a kill cut off are removed
// when the server starts; other dot files stay.
func TestSweep(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	for _, n := range []string{".a.bin.tftp-0123456789ab", "sub/.b.tftp-ba9876543210", ".keep", ".c.tftp-short"} {
		os.WriteFile(filepath.Join(root, n), []byte("x"), 0o644)
	}
	log, _ := plog.Open("", "tftp", plog.Debug, 15, nil)
	s, err := New(Config{Root: root, Addr: netip.MustParseAddr("127.0.0.1")}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.Stop(time.Second)
	for n, want := range map[string]bool{".a.bin.tftp-0123456789ab": false, "sub/.b.tftp-ba9876543210": false, ".keep": true, ".c.tftp-short": true} {
		if _, err := os.Stat(filepath.Join(root, n)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", n, err == nil, want)
		}
	}
}

// TestDebugLogsEveryPacket: at level 4 every packet of a transfer is in
// the log, both ways.
func TestDebugLogsEveryPacket(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), make([]byte, 1000), 0o644)
	logPath := filepath.Join(t.TempDir(), "tftp.log")
	log, _ := plog.Open(logPath, "tftp", plog.Debug, 15, nil)
	s, err := New(Config{Root: root, Addr: netip.MustParseAddr("127.0.0.1")}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	c.WriteToUDPAddrPort([]byte("\x00\x01f\x00octet\x00"), s.Addr())
	for block := byte(1); block <= 2; block++ {
		buf := make([]byte, 600)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteToUDPAddrPort([]byte{0, opACK, 0, block}, from)
	}
	for s.Active() != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	s.Stop(time.Second)
	log.Close()
	data, _ := os.ReadFile(logPath)
	for _, want := range []string{"sent to 127.0.0.1:", ": DATA block 1, 512 bytes", ": DATA block 2, 488 bytes", "ACK block 1", "ACK block 2"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks %q:\n%s", want, data)
		}
	}
}
