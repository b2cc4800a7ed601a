package service

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"zonekit/internal/preboot/conf"
)

func TestStalePidFile(t *testing.T) {
	l := conf.Layout{Home: t.TempDir()}
	os.MkdirAll(l.RunDir(), 0o755)
	// A dead pid, and a live process that is not the daemon (this test).
	for _, pid := range []string{"99999999", "1", "x"} {
		os.WriteFile(l.PidFile(conf.TFTP), []byte(pid+"\n"), 0o644)
		if s := ReadStatus(l, conf.TFTP); s.Running {
			t.Errorf("pid %s read as running", pid)
		}
	}
	if _, err := Reload(l, conf.TFTP, time.Second); err == nil {
		t.Error("reload of a stopped service succeeded")
	}
}

func TestUnit(t *testing.T) {
	u := Unit(conf.Layout{Home: "/var/opt/zonekit"}, conf.ProxyDHCP, "/usr/bin/pbserv")
	for _, want := range []string{"Description=zonekit Proxy DHCP Service", "ExecStart=/usr/bin/pbserv proxydhcp run --home /var/opt/zonekit", "ExecReload=/bin/kill -HUP $MAINPID", "WantedBy=multi-user.target"} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
}

// TestRun runs the TFTP daemon in-process: it writes its configuration
// file, pid file and log, and removes the pid file when it stops.
func TestRun(t *testing.T) {
	l := conf.Layout{Home: t.TempDir()}
	os.MkdirAll(l.Dir(), 0o755)
	root := t.TempDir()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	os.WriteFile(l.File(conf.TFTP), []byte(fmt.Sprintf("TFTPInterface = 127.0.0.1\nTFTPPort = %d\nTFTPDirectory = %s\n", port, root)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	var errOut strings.Builder
	go func() {
		done <- Run(ctx, Options{Layout: l, Service: conf.TFTP, Stderr: &errOut, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(l.PidFile(conf.TFTP)); err != nil {
		t.Fatal("no pid file while running")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.PidFile(conf.TFTP)); err == nil {
		t.Fatal("pid file left after stop")
	}
	log, _ := os.ReadFile(l.Log(conf.TFTP))
	if !strings.Contains(string(log), "[0] zonekit TFTP Service started") || !strings.Contains(string(log), "[0] zonekit TFTP Service stopped") {
		t.Fatalf("log:\n%s", log)
	}
	if !strings.Contains(errOut.String(), "zonekit TFTP Service running") {
		t.Fatalf("stderr: %s", errOut.String())
	}
}

// TestPolicyImagingAddress: the policy service never sends a machine to
// 127.0.0.1. Without PrebootServer it names pbserv's IPAddress when set,
// or else the address each request arrived on.
func TestPolicyImagingAddress(t *testing.T) {
	l := conf.Layout{Home: t.TempDir()}
	os.MkdirAll(l.Dir(), 0o755)
	pv, _ := l.Load(conf.Policy)
	cfg, err := PolicyConfig(l, pv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PrebootServer != "" || cfg.ImagingPort != conf.DefaultImagingPort {
		t.Fatalf("default: %+v", cfg)
	}
	os.WriteFile(l.File(conf.Imaging), []byte("IPAddress = 10.99.0.2\nImagingPort = 9000\n"), 0o644)
	if cfg, _ = PolicyConfig(l, pv, nil); cfg.PrebootServer != "http://10.99.0.2:9000" {
		t.Fatalf("with IPAddress: %q", cfg.PrebootServer)
	}
	os.WriteFile(l.File(conf.Policy), []byte("PrebootServer = 10.0.0.7\n"), 0o644)
	pv, _ = l.Load(conf.Policy)
	if cfg, _ = PolicyConfig(l, pv, nil); cfg.PrebootServer != "http://10.0.0.7:8070" {
		t.Fatalf("with PrebootServer: %q", cfg.PrebootServer)
	}
}

// TestUnitLeastPrivilege: the unit keeps only the capability to bind low
// ports and makes the system read-only but for the home and the
// directories the service's configuration writes to.
func TestUnitLeastPrivilege(t *testing.T) {
	l := conf.Layout{Home: t.TempDir()}
	os.MkdirAll(l.Dir(), 0o755)
	os.WriteFile(l.File(conf.TFTP), []byte("TFTPDirectory = /srv/tftp\nTFTPLogFile = /var/log/zk/tftp.log\n"), 0o644)
	u := Unit(l, conf.TFTP, "/usr/bin/pbserv")
	for _, want := range []string{"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "NoNewPrivileges=yes\n", "ProtectSystem=strict\n",
		"ReadWritePaths=-" + l.Home + " -/var/log/zk -/srv/tftp\n"} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
	if u := Unit(l, conf.Policy, "/usr/bin/pbserv"); !strings.Contains(u, "ReadWritePaths=-"+l.Home+"\n") {
		t.Errorf("policy unit:\n%s", u)
	}
}
