// Package proc starts, finds and stops zonekit's background processes
// (the zone server, the preboot services): each runs detached from the
// shell that started it and is found again through its pid file.
package proc

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

	"zonekit/internal/errkind"
)

// Spec describes one background process.
type Spec struct {
	// Title names it in messages ("the zone server"); Name where a
	// message reads better without the article ("zone server").
	Title, Name string
	// PidFile is written by the process itself once it is ready.
	PidFile string
	// OutFile receives its stdout and stderr.
	OutFile string
	// Dirs are created before it starts.
	Dirs []string
	// Exe and Args start it.
	Exe  string
	Args []string
	// Ours tells from a live pid's /proc/PID/cmdline (NUL-separated)
	// whether that pid is still this process and not a reused one.
	Ours func(cmdline []byte) bool
	// Prefix is stripped from its last words ("zconfigure: ").
	Prefix string
}

// Status is whether the process runs, and its pid.
type Status struct {
	Running bool
	Pid     int
}

// ReadStatus reads the pid file and checks that its process is alive and
// ours, so a stale file after a crash reads as stopped.
func ReadStatus(s Spec) Status {
	data, err := os.ReadFile(s.PidFile)
	if err != nil {
		return Status{}
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || !Alive(pid) {
		return Status{}
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && s.Ours != nil && !s.Ours(cmdline) {
		return Status{} // the pid was reused by another program
	}
	return Status{Running: true, Pid: pid}
}

// HasArgs reports whether a NUL-separated command line holds every one of
// args as a whole argument.
func HasArgs(cmdline []byte, args ...string) bool {
	have := bytes.Split(cmdline, []byte{0})
	for _, want := range args {
		found := false
		for _, a := range have {
			if string(a) == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Start launches the process in the background and waits until its pid
// file names it, or fails; a failure carries the process's last words.
func Start(s Spec, wait time.Duration) (Status, error) {
	if st := ReadStatus(s); st.Running {
		return st, errkind.New(errkind.Exists, "%s is already running (pid %d)", s.Title, st.Pid)
	}
	for _, d := range s.Dirs {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return Status{}, fmt.Errorf("create %s: %w", d, err)
		}
	}
	os.Remove(s.PidFile) // stale
	out, err := os.OpenFile(s.OutFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return Status{}, fmt.Errorf("open %s: %w", s.OutFile, err)
	}
	defer out.Close()
	from, _ := out.Seek(0, 2)
	cmd := exec.Command(s.Exe, s.Args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive the shell that started it
	if err := cmd.Start(); err != nil {
		return Status{}, fmt.Errorf("start %s: %w", s.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return Status{}, errkind.New(errkind.Failure, "%s did not start: %s", s.Title, lastLine(s.OutFile, from, s.Prefix))
		case <-deadline.C:
			cmd.Process.Kill()
			return Status{}, errkind.New(errkind.Failure, "%s did not start within %s; see %s", s.Title, wait, s.OutFile)
		case <-tick.C:
			if st := ReadStatus(s); st.Running && st.Pid == cmd.Process.Pid {
				return st, nil
			}
		}
	}
}

func lastLine(path string, from int64, prefix string) string {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < from {
		return "see " + path
	}
	lines := strings.Split(strings.TrimSpace(string(data[from:])), "\n")
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return "see " + path
	}
	return strings.TrimPrefix(lines[len(lines)-1], prefix)
}

// Stop sends SIGTERM and waits for the process itself to exit, not only
// its pid file to go: a server closes its store after removing the file.
func Stop(s Spec, wait time.Duration) (Status, error) {
	st := ReadStatus(s)
	if !st.Running {
		return st, nil
	}
	if err := syscall.Kill(st.Pid, syscall.SIGTERM); err != nil {
		return st, fmt.Errorf("stop %s (pid %d): %w", s.Name, st.Pid, err)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if !Alive(st.Pid) {
			return st, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return st, errkind.New(errkind.Failure, "%s (pid %d) did not stop within %s", s.Title, st.Pid, wait)
}

// Alive reports whether pid runs and is not a zombie waiting to be reaped.
func Alive(pid int) bool {
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
