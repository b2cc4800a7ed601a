package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"zonekit/internal/config"
	"zonekit/internal/errkind"
)

// Status describes the background server.
type Status struct {
	Running bool
	Pid     int
}

// ReadStatus reads the pid file and checks that its process is alive and a
// zone server, so a stale file after a crash reads as stopped.
func ReadStatus(p config.Paths) Status {
	data, err := os.ReadFile(p.PidFile())
	if err != nil {
		return Status{}
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return Status{}
	}
	if !alive(pid) {
		return Status{}
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && !bytes.Contains(cmdline, []byte("serve")) {
		return Status{} // the pid was reused by another program
	}
	return Status{Running: true, Pid: pid}
}

// Start launches `zconfigure serve` in the background and waits until it
// listens or fails; a failure carries the server's own last words.
func Start(p config.Paths, exe string, wait time.Duration) (Status, error) {
	if err := p.CheckZone(); err != nil {
		return Status{}, err
	}
	if s := ReadStatus(p); s.Running {
		return s, errkind.New(errkind.Exists, "the zone server is already running (pid %d)", s.Pid)
	}
	os.Remove(p.PidFile()) // stale
	out, err := os.OpenFile(p.OutFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return Status{}, fmt.Errorf("open %s: %w", p.OutFile(), err)
	}
	defer out.Close()
	start, _ := out.Seek(0, 2)
	cmd := exec.Command(exe, "serve", "--home", p.Home)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive the shell that started it
	if err := cmd.Start(); err != nil {
		return Status{}, fmt.Errorf("start zone server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return Status{}, errkind.New(errkind.Failure, "the zone server did not start: %s", lastLine(p.OutFile(), start))
		case <-deadline.C:
			cmd.Process.Kill()
			return Status{}, errkind.New(errkind.Failure, "the zone server did not start within %s; see %s", wait, p.OutFile())
		case <-tick.C:
			if s := ReadStatus(p); s.Running && s.Pid == cmd.Process.Pid {
				return s, nil
			}
		}
	}
}

func lastLine(path string, from int64) string {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < from {
		return "see " + path
	}
	lines := strings.Split(strings.TrimSpace(string(data[from:])), "\n")
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return "see " + path
	}
	return strings.TrimPrefix(lines[len(lines)-1], "zconfigure: ")
}

// Stop sends SIGTERM and waits for the server to finish its requests and exit.
func Stop(p config.Paths, wait time.Duration) (Status, error) {
	s := ReadStatus(p)
	if !s.Running {
		return s, nil
	}
	if err := syscall.Kill(s.Pid, syscall.SIGTERM); err != nil {
		return s, fmt.Errorf("stop zone server (pid %d): %w", s.Pid, err)
	}
	// Wait for the process itself, not the pid file: the store is closed
	// only after the file is gone.
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if !alive(s.Pid) {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, errkind.New(errkind.Failure, "the zone server (pid %d) did not stop within %s", s.Pid, wait)
}

// alive reports whether pid runs and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: trust kill
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
