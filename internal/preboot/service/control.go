// Package service runs the preboot services as daemons (the foreground
// 'pbserv SERVICE run' with its pid file, log and configuration reload on
// SIGHUP) and controls them from outside: start, stop, restart,
// force-reload, status, showpid and install (a systemd unit).
package service

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/proc"
)

// Title is how status messages name a service.
func Title(service string) string {
	switch service {
	case conf.Imaging:
		return "zonekit Imaging Service"
	case conf.ProxyDHCP:
		return "zonekit Proxy DHCP Service"
	case conf.TFTP:
		return "zonekit TFTP Service"
	case conf.Policy:
		return "zonekit Preboot Policy Service"
	}
	return service
}

// Status is whether a service runs, and its pid.
type Status = proc.Status

// spec is the background daemon of a service.
func spec(l conf.Layout, service, exe string) proc.Spec {
	return proc.Spec{
		Title: Title(service), Name: Title(service),
		PidFile: l.PidFile(service), OutFile: OutFile(l, service),
		Dirs: []string{l.RunDir(), l.LogDir()},
		Exe:  exe, Args: []string{service, "run", "--home", l.Home},
		Ours:   func(cmdline []byte) bool { return proc.HasArgs(cmdline, service, "run") },
		Prefix: "pbserv: ",
	}
}

// ReadStatus reads the pid file and checks that the process lives and is
// this service's daemon, so a stale file after a crash reads as stopped.
func ReadStatus(l conf.Layout, service string) Status {
	return proc.ReadStatus(spec(l, service, ""))
}

// OutFile receives a background daemon's stdout and stderr.
func OutFile(l conf.Layout, service string) string {
	return filepath.Join(l.LogDir(), service+".out")
}

// Start launches 'exe SERVICE run' in the background and waits until its
// pid file names it, or reports the daemon's last words.
func Start(l conf.Layout, service, exe string, wait time.Duration) (Status, error) {
	return proc.Start(spec(l, service, exe), wait)
}

// Stop sends SIGTERM and waits for the daemon to end its transfers and exit.
func Stop(l conf.Layout, service string, wait time.Duration) (Status, error) {
	return proc.Stop(spec(l, service, ""), wait)
}

// Reload asks a running daemon to reread its configuration (SIGHUP) and
// waits up to wait for it to report the outcome.
func Reload(l conf.Layout, service string, wait time.Duration) (Status, error) {
	s := ReadStatus(l, service)
	if !s.Running {
		return s, errkind.New(errkind.NotFound, "%s is not running", Title(service))
	}
	// Check the file first, so a typo is reported here and not only in the log.
	if _, err := l.Load(service); err != nil {
		return s, err
	}
	before, _ := os.ReadFile(ReloadFile(l, service))
	if err := syscall.Kill(s.Pid, syscall.SIGHUP); err != nil {
		return s, fmt.Errorf("reload %s (pid %d): %w", Title(service), s.Pid, err)
	}
	// Wait for the daemon to say it is done, so that what follows sees the
	// new settings.
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		now, err := os.ReadFile(ReloadFile(l, service))
		if err == nil && !bytes.Equal(now, before) {
			fields := strings.SplitN(strings.TrimSpace(string(now)), " ", 3)
			if len(fields) == 3 && fields[2] != "ok" {
				return s, errkind.New(errkind.Failure, "%s kept its previous configuration: %s", Title(service), strings.TrimPrefix(fields[2], "error: "))
			}
			return s, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s, errkind.New(errkind.Failure, "%s (pid %d) did not confirm the reload within %s; see its log", Title(service), s.Pid, wait)
}

// SystemdDirEnv overrides where install writes units (tests use it).
const SystemdDirEnv = "ZONEKIT_SYSTEMD_DIR"

// UnitName is a service's systemd unit.
func UnitName(service string) string { return "zonekit-" + service + ".service" }

// Unit renders the systemd unit that runs a service at boot. The daemon
// runs with no more privilege than it needs: of root's capabilities only
// CAP_NET_BIND_SERVICE (ports 67 and 69), the file system read-only but
// for the zonekit home and the directories its configuration writes to
// (TFTPDirectory, ImageDirectory, log files), no new privileges, no
// kernel tunables or modules, and only the address families it uses
// (netlink for the interface addresses).
func Unit(l conf.Layout, service, exe string) string {
	rw := []string{l.Home}
	if v, err := l.Load(service); err == nil {
		path, _, _ := logSettings(l, service, v)
		if path != "" {
			rw = append(rw, filepath.Dir(path))
		}
		switch service {
		case conf.TFTP:
			rw = append(rw, v.String("TFTPDirectory"))
		case conf.Imaging:
			rw = append(rw, v.String("ImageDirectory"))
		}
	}
	var paths []string
	for _, p := range rw {
		if p == "" || slices.Contains(paths, "-"+p) {
			continue
		}
		inHome := strings.HasPrefix(p+"/", l.Home+"/") && p != l.Home
		if !inHome {
			paths = append(paths, "-"+p) // "-": a missing directory is no error
		}
	}
	return fmt.Sprintf(`[Unit]
Description=%s
Documentation=man:pbserv(1)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=%s %s run --home %s
ExecReload=/bin/kill -HUP $MAINPID
KillMode=mixed
TimeoutStopSec=30
Restart=on-failure
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
AmbientCapabilities=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=%s
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`, Title(service), exe, service, l.Home, strings.Join(paths, " "))
}

// Installed says what Install did.
type Installed struct {
	Path    string
	Enabled bool   // systemctl enable succeeded
	Why     string // why it was not enabled
}

// Install writes the unit and enables it with systemctl when systemd runs.
func Install(l conf.Layout, service, exe string, write func(path string, data []byte) error) (Installed, error) {
	dir := os.Getenv(SystemdDirEnv)
	if dir == "" {
		dir = "/etc/systemd/system"
	}
	res := Installed{Path: filepath.Join(dir, UnitName(service))}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := write(res.Path, []byte(Unit(l, service, exe))); err != nil {
		return res, err
	}
	if os.Getenv(SystemdDirEnv) != "" {
		res.Why = SystemdDirEnv + " is set"
		return res, nil
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		res.Why = "systemd is not running on this system"
		return res, nil
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", UnitName(service)}} {
		if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
			return res, fmt.Errorf("systemctl %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		}
	}
	res.Enabled = true
	return res, nil
}
