package zonekit_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdPreboot is the scripts' helper for the preboot services:
//
//	preboot cleanup          stop every preboot daemon of $ZONEKIT_HOME when the script ends
//	preboot freeport VAR     set $VAR to a free TCP and UDP port on 127.0.0.1
//	preboot conf SERVICE NAME=VALUE...
//	                         append parameters to the service's .conf file
//	preboot mkfile FILE MiB  write MiB of random data (MiB may be a fraction, e.g. 0.3)
//	preboot netns up|down    create (or remove) the namespaces of pxe-testing.md: a bridge
//	                         namespace with tap0 and tap1 for QEMU, $PXE_DHCP running an ordinary
//	                         DHCP server (dnsmasq) at 10.99.0.1, $PXE_SRV at 10.99.0.2, and
//	                         $PXE_CLIENT with an unconfigured c1 (52:54:00:00:00:99) for other
//	                         DHCP clients (guard with [!netns] skip)
//	preboot boot bios|uefi MARKER SECONDS
//	                         network-boot a QEMU client on tap0 and wait for MARKER on its
//	                         serial console
//	preboot vm DIR MARKER SECONDS DISK,MAC,APPENDFILE,NET...
//	                         boot DIR/vmlinuz and DIR/initrd in one QEMU per spec, at once,
//	                         each with DISK as its virtio disk, APPENDFILE's contents on the
//	                         kernel command line, and NET: user (the host's 127.0.0.1 is
//	                         10.0.2.2) or tap0/tap1 of the bridge namespace; with NET
//	                         pxe-tap0 the machine network-boots instead (BIOS, the e1000
//	                         iPXE ROM; DIR and APPENDFILE unused); wait until every one
//	                         printed MARKER
//	preboot ext4disk DISK MiB DIR
//	                         write DISK: a DOS partition table and one ext4 partition from
//	                         1 MiB holding DIR's files (mke2fs -d)
func cmdPreboot(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: preboot cleanup|freeport|mkfile|netns|boot ...")
	}
	switch args[0] {
	case "cleanup":
		home := ts.Getenv("ZONEKIT_HOME")
		ts.Defer(func() { stopPreboot(home) })
	case "freeport":
		if len(args) != 2 {
			ts.Fatalf("usage: preboot freeport VAR")
		}
		for range 20 {
			port, err := freePort()
			ts.Check(err)
			if c, err := netListenUDP(port); err == nil {
				c.Close()
				ts.Setenv(args[1], strconv.Itoa(port))
				return
			}
		}
		ts.Fatalf("no free port")
	case "mkfile":
		if len(args) != 3 {
			ts.Fatalf("usage: preboot mkfile FILE MiB")
		}
		mib, err := strconv.ParseFloat(args[2], 64)
		ts.Check(err)
		f, err := os.Create(ts.MkAbs(args[1]))
		ts.Check(err)
		_, err = io.CopyN(f, rand.Reader, int64(mib*(1<<20)))
		ts.Check(err)
		ts.Check(f.Close())
	case "conf":
		if len(args) < 2 {
			ts.Fatalf("usage: preboot conf SERVICE NAME=VALUE...")
		}
		dir := filepath.Join(ts.Getenv("ZONEKIT_HOME"), "conf", "preboot")
		ts.Check(os.MkdirAll(dir, 0o755))
		f, err := os.OpenFile(filepath.Join(dir, args[1]+".conf"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		ts.Check(err)
		for _, kv := range args[2:] {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(f, "%s = %s\n", k, v)
		}
		ts.Check(f.Close())
	case "netns":
		if len(args) != 2 {
			ts.Fatalf("usage: preboot netns up|down")
		}
		if args[1] == "down" {
			netnsDown(ts.Getenv("PXE_BR"), ts.Getenv("PXE_DHCP"), ts.Getenv("PXE_SRV"), ts.Getenv("PXE_CLIENT"))
			return
		}
		netnsUp(ts)
	case "boot":
		if len(args) != 4 {
			ts.Fatalf("usage: preboot boot bios|uefi MARKER SECONDS")
		}
		secs, err := strconv.Atoi(args[3])
		ts.Check(err)
		out, err := qemuBoot(ts, args[1], args[2], time.Duration(secs)*time.Second)
		ts.Logf("serial console:\n%s", out)
		if (err == nil) == neg {
			if err != nil {
				ts.Fatalf("%s boot: %v", args[1], err)
			}
			ts.Fatalf("%s boot reached %q", args[1], args[2])
		}
	case "vm":
		if len(args) < 5 {
			ts.Fatalf("usage: preboot vm DIR MARKER SECONDS DISK,MAC,APPENDFILE,NET...")
		}
		secs, err := strconv.Atoi(args[3])
		ts.Check(err)
		type result struct {
			out string
			err error
		}
		results := make([]chan result, len(args)-4)
		for i, spec := range args[4:] {
			f := strings.Split(spec, ",")
			if len(f) != 4 {
				ts.Fatalf("vm spec %q: want DISK,MAC,APPENDFILE,NET", spec)
			}
			results[i] = make(chan result, 1)
			appendLine := ""
			if !strings.HasPrefix(f[3], "pxe-") {
				appendLine = strings.TrimSpace(ts.ReadFile(f[2]))
			}
			go func(ch chan result) {
				out, err := qemuKernel(ts, ts.MkAbs(args[1]), ts.MkAbs(f[0]), f[1], appendLine, f[3], args[2], time.Duration(secs)*time.Second)
				ch <- result{out, err}
			}(results[i])
		}
		var failed []string
		for i, ch := range results {
			r := <-ch
			ts.Logf("serial console of %s:\n%s", args[4+i], r.out)
			if r.err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", args[4+i], r.err))
			}
		}
		if (len(failed) == 0) == neg {
			if len(failed) > 0 {
				ts.Fatalf("vm: %s", strings.Join(failed, "; "))
			}
			ts.Fatalf("vm reached %q", args[2])
		}
	case "ext4disk":
		if len(args) != 4 {
			ts.Fatalf("usage: preboot ext4disk DISK MiB DIR")
		}
		mib, err := strconv.Atoi(args[2])
		ts.Check(err)
		disk, part := ts.MkAbs(args[1]), ts.MkAbs(args[1]+".part")
		ts.Check(os.WriteFile(disk, nil, 0o644))
		ts.Check(os.Truncate(disk, int64(mib)<<20))
		sf := exec.Command("sfdisk", "-q", disk)
		sf.Stdin = strings.NewReader("label: dos\nstart=2048, type=83\n")
		if out, err := sf.CombinedOutput(); err != nil {
			ts.Fatalf("sfdisk: %v: %s", err, out)
		}
		ts.Check(os.WriteFile(part, nil, 0o644))
		ts.Check(os.Truncate(part, int64(mib-1)<<20))
		if out, err := exec.Command("mke2fs", "-q", "-t", "ext4", "-b", "4096", "-L", "zonekit", "-d", ts.MkAbs(args[3]), part).CombinedOutput(); err != nil {
			ts.Fatalf("mke2fs: %v: %s", err, out)
		}
		if out, err := exec.Command("dd", "if="+part, "of="+disk, "bs=1M", "seek=1", "conv=notrunc", "status=none").CombinedOutput(); err != nil {
			ts.Fatalf("dd: %v: %s", err, out)
		}
		ts.Check(os.Remove(part))
	default:
		ts.Fatalf("preboot: unknown subcommand %q", args[0])
	}
}

// stopPreboot stops the preboot daemons whose pid files lie under home.
func stopPreboot(home string) {
	pids, _ := filepath.Glob(filepath.Join(home, "data", "preboot", "*.pid"))
	for _, p := range pids {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(cmdline), home) {
			continue // not ours
		}
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// netnsOK is the [netns] condition: root, /dev/net/tun and ip, so that
// scripts can build network namespaces with a tap device.
func netnsOK() bool {
	if os.Geteuid() != 0 {
		return false
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return false
	}
	_, err := exec.LookPath("ip")
	return err == nil
}

func netnsUp(ts *testscript.TestScript) {
	if !netnsOK() {
		ts.Fatalf("preboot netns needs root, /dev/net/tun and ip: guard the script with [!netns] skip")
	}
	// Names unique to this script, so parallel scripts and runs do not meet.
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, time.Now().UnixNano()%1000)
	br, dh, srv, cl := "zkbr"+id, "zkdh"+id, "zksr"+id, "zkcl"+id
	ts.Setenv("PXE_BR", br)
	ts.Setenv("PXE_DHCP", dh)
	ts.Setenv("PXE_SRV", srv)
	ts.Setenv("PXE_CLIENT", cl)
	ts.Defer(func() { netnsDown(br, dh, srv, cl) })
	leases := ts.MkAbs("dnsmasq.leases")
	steps := [][]string{
		{"netns", "add", br}, {"netns", "add", dh}, {"netns", "add", srv}, {"netns", "add", cl},
		{"-n", br, "link", "add", "br0", "type", "bridge"},
		{"-n", br, "link", "set", "br0", "up"},
		{"-n", br, "tuntap", "add", "dev", "tap0", "mode", "tap"},
		{"-n", br, "link", "set", "tap0", "master", "br0"},
		{"-n", br, "link", "set", "tap0", "up"},
		{"-n", br, "tuntap", "add", "dev", "tap1", "mode", "tap"},
		{"-n", br, "link", "set", "tap1", "master", "br0"},
		{"-n", br, "link", "set", "tap1", "up"},
		{"-n", br, "link", "add", "d0", "type", "veth", "peer", "name", "d1", "netns", dh},
		{"-n", br, "link", "add", "s0", "type", "veth", "peer", "name", "s1", "netns", srv},
		{"-n", br, "link", "set", "d0", "master", "br0"}, {"-n", br, "link", "set", "d0", "up"},
		{"-n", br, "link", "set", "s0", "master", "br0"}, {"-n", br, "link", "set", "s0", "up"},
		{"-n", br, "link", "add", "c0", "type", "veth", "peer", "name", "c1", "netns", cl},
		{"-n", br, "link", "set", "c0", "master", "br0"}, {"-n", br, "link", "set", "c0", "up"},
		{"-n", cl, "link", "set", "c1", "address", "52:54:00:00:00:99"}, {"-n", cl, "link", "set", "c1", "up"},
		{"-n", dh, "addr", "add", "10.99.0.1/24", "dev", "d1"},
		{"-n", dh, "addr", "add", "fd99::1/64", "dev", "d1", "nodad"},
		{"-n", dh, "link", "set", "d1", "up"}, {"-n", dh, "link", "set", "lo", "up"},
		{"-n", srv, "addr", "add", "10.99.0.2/24", "broadcast", "+", "dev", "s1"}, // udpcast's rendezvous is a broadcast
		{"-n", srv, "link", "set", "s1", "up"}, {"-n", srv, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			ts.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	// The other client has no address yet: let answers from 10.99.0.x in.
	for _, conf := range []string{"all", "c1"} {
		exec.Command("ip", "netns", "exec", cl, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/"+conf+"/rp_filter").Run()
	}
	// The site's ordinary DHCP server; the router advertisement keeps iPXE
	// from waiting for IPv6.
	dnsmasq := exec.Command("ip", "netns", "exec", dh, "dnsmasq", "-d", "--port=0", "--interface=d1", "--bind-interfaces",
		"--dhcp-range=10.99.0.100,10.99.0.150,255.255.255.0,1h", "--dhcp-range=fd99::,ra-only", "--enable-ra",
		"--dhcp-leasefile="+leases, "--conf-file=/dev/null", "--pid-file=")
	dnsmasq.Stdout, dnsmasq.Stderr = io.Discard, io.Discard
	ts.Check(dnsmasq.Start())
	ts.Defer(func() { dnsmasq.Process.Kill(); dnsmasq.Wait() })
}

func netnsDown(names ...string) {
	for _, ns := range names {
		if ns == "" {
			continue
		}
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// qemuBoot boots a QEMU client in the bridge namespace and reads its serial
// console until marker appears or the time is up.
func qemuBoot(ts *testscript.TestScript, kind, marker string, limit time.Duration) (string, error) {
	args := []string{"netns", "exec", ts.Getenv("PXE_BR"), "qemu-system-x86_64", "-accel", "tcg", "-nographic", "-no-reboot",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-boot", "n"}
	switch kind {
	case "bios":
		args = append(args, "-m", "256", "-device", "e1000,netdev=n0,mac=52:54:00:12:34:56")
	case "uefi":
		code, vars := "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"
		if _, err := os.Stat(code); err != nil {
			ts.Fatalf("%s is missing: install ovmf", code)
		}
		data, err := os.ReadFile(vars)
		ts.Check(err)
		myVars := ts.MkAbs("OVMF_VARS.fd")
		ts.Check(os.WriteFile(myVars, data, 0o644))
		args = append(args, "-machine", "q35", "-m", "512",
			"-drive", "if=pflash,format=raw,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,file="+myVars,
			"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:57,romfile=,bootindex=1")
	default:
		ts.Fatalf("boot: want bios or uefi")
	}
	return qemuUntil(ts, "ip", args, marker, limit)
}

// imagingEnvOK is the [imagingenv] condition: QEMU and the packages that
// pbserv imaging-build takes its files from, and mke2fs for test disks.
func imagingEnvOK() bool {
	for _, p := range []string{"/bin/busybox", "/usr/sbin/partclone.extfs", "/usr/bin/zstd", "/usr/bin/udp-sender", "/usr/sbin/sfdisk", "/usr/sbin/mke2fs"} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	if k, _ := filepath.Glob("/boot/vmlinuz-*"); len(k) == 0 {
		return false
	}
	_, err := exec.LookPath("qemu-system-x86_64")
	return err == nil
}

// qemuKernel boots a kernel and initrd directly (no firmware PXE) with a
// disk and user networking, and reads the serial console until the marker.
func qemuKernel(ts *testscript.TestScript, dir, disk, mac, appendLine, network, marker string, limit time.Duration) (string, error) {
	netdev := "user,id=n0"
	pxe := false
	if tap, ok := strings.CutPrefix(network, "pxe-"); ok {
		network, pxe = tap, true
	}
	if network != "user" {
		netdev = "tap,id=n0,ifname=" + network + ",script=no,downscript=no"
	}
	args := []string{"-accel", "tcg", "-m", "384M", "-nographic", "-no-reboot",
		"-drive", "file=" + disk + ",format=raw,if=virtio", "-netdev", netdev}
	if pxe {
		args = append(args, "-boot", "n", "-device", "e1000,netdev=n0,mac="+mac)
	} else {
		args = append(args, "-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "initrd"),
			"-append", "console=ttyS0 panic=-1 "+appendLine, "-device", "virtio-net-pci,netdev=n0,mac="+mac)
	}
	name := "qemu-system-x86_64"
	if network != "user" {
		args = append([]string{"netns", "exec", ts.Getenv("PXE_BR"), name}, args...)
		name = "ip"
	}
	return qemuUntil(ts, name, args, marker, limit)
}

// qemuUntil runs QEMU (name and args, perhaps through ip netns exec) and
// reads its serial console until a line has marker or the time is up; it
// returns what it read either way, and kills QEMU.
func qemuUntil(ts *testscript.TestScript, name string, args []string, marker string, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	stdout, err := cmd.StdoutPipe()
	ts.Check(err)
	cmd.Stderr = cmd.Stdout
	ts.Check(cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var seen strings.Builder
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		seen.WriteString(line)
		if strings.Contains(line, marker) {
			return seen.String(), nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return seen.String(), fmt.Errorf("no %q within %s", marker, limit)
			}
			return seen.String(), fmt.Errorf("qemu ended before %q: %v", marker, err)
		}
	}
}

func netListenUDP(port int) (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
}

// dhcpProbeMain is the dhcpprobe program of the scripts: 'dhcpprobe IFACE
// [CLASS]' broadcasts a DHCPDISCOVER (with option 60 CLASS when given and
// the broadcast flag, so every answer reaches it) out of IFACE and prints
// each offer received within two seconds, one line per answering server.
func dhcpProbeMain() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dhcpprobe IFACE [CLASS]")
		return 2
	}
	ifc, err := net.InterfaceByName(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			syscall.BindToDevice(int(fd), ifc.Name)
		})
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pc.Close()
	mods := []dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}
	if len(os.Args) > 2 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(os.Args[2])))
	}
	d, err := dhcpv4.NewDiscovery(ifc.HardwareAddr, mods...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := pc.WriteTo(d.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return 0
		}
		r, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || r.TransactionID != d.TransactionID || r.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		fmt.Printf("%s from %s: address %s, boot file %q\n", r.MessageType(), r.ServerIdentifier(), r.YourIPAddr, r.BootFileName)
	}
}
